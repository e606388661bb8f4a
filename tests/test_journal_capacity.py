"""Capacity on a 4 MB board (validator.md section 4): the 2 MiB for files and records hold the application, the
configuration, a 50,000-entry denylist and its replacement, and at least 20,000 records, all at once. Shown by
filling images of the geometry in boards/esp32-generic/partitions.csv; and the LittleFS-only fallback measured on
MicroPython's default 2 MiB vfs."""
from pathlib import Path

import pytest

from tunion import denylist
from tunion.flashjournal import FlashJournal
from tunion.fsjournal import FsJournal
from tunion.record import Record, KIND_INTENT, KIND_COMPLETED
from sim.nor import NorFlash
from sim.lfsport import LogDevice, LfsPort
from mpcases.journal_cases import header

ROOT = Path(__file__).resolve().parent.parent
BLOCK = 4096
MIB = 1 << 20
APP_BYTES = 150 * 1024
DENY_ENTRIES = 50000


def partitions():
    rows = {}
    for line in (ROOT / "boards" / "esp32-generic" / "partitions.csv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            f = [x.strip() for x in line.split(",")]
            rows[f[0]] = (f[1], f[2], int(f[3], 16), int(f[4], 16))
    return rows


def fill_vfs(fs, replacement_in_progress=True):
    """The application (~150 KB of .mpy in 30-odd files), the configuration, the denylist, and the new denylist
    and configuration being written next to the old ones (the moment before the rename)."""
    fs.mkdir("/lib")
    n = total = 0
    while total < APP_BYTES:
        size = 1500 + (n * 2654435761) % 7000
        fs.write_atomic("/lib/m%02d.mpy" % n, bytes([n]) * size)
        total += size
        n += 1
    cfg = b"{" + b'"fare": 200, ' * 300 + b"}"
    fs.write_atomic("/config.json", cfg)
    deny = bytes(denylist.encode(range(3105170000000000, 3105170000000000 + DENY_ENTRIES), 1))
    assert len(deny) == 32 + 8 * DENY_ENTRIES
    fs.write_atomic("/denylist.bin", deny)
    if replacement_in_progress:
        with fs.lfs.open("/denylist.bin.new", "wb") as f:
            f.write(deny)
        with fs.lfs.open("/config.json.new", "wb") as f:
            f.write(cfg)
    return deny


def pay(j, n):
    r = Record(KIND_INTENT, card_no=3105170000000000 + n, amount=200, balance=5000, counter=n & 0xFFFF, ttc=n)
    j.append_intent(r)
    j.append_outcome(r.outcome(KIND_COMPLETED, balance=4800, tac=b"\x01\x02\x03\x04"))


def test_partition_table_splits_2_mib_between_vfs_and_journal():
    p = partitions()
    assert p["vfs"][3] + p["journal"][3] == 2 * MIB
    end = 0x9000
    for name in ("nvs", "phy_init", "factory", "vfs", "journal"):
        t, sub, off, size = p[name]
        assert off == end and off % BLOCK == 0 and size % BLOCK == 0, name
        end = off + size
    assert end == 4 * MIB and p["factory"][2] % 0x10000 == 0
    assert p["journal"][0] == "data" and p["vfs"][2] == 0x200000  # where MicroPython's vfs has always been


def test_vfs_holds_application_configuration_denylist_and_its_replacement():
    blocks = partitions()["vfs"][3] // BLOCK
    fs = LfsPort(LogDevice(blocks, log=False))
    deny = fill_vfs(fs)
    free = fs.statvfs()[3]
    assert free >= 16, "only %d blocks left beside both denylists" % free  # 64 KB to spare
    fs.rename("/denylist.bin.new", "/denylist.bin")
    assert fs.read_file("/denylist.bin") == deny


def test_journal_partition_holds_at_least_20000_records():
    sectors = partitions()["journal"][3] // BLOCK
    nor = NorFlash(sectors, BLOCK)
    j = FlashJournal(nor, header())
    j.prepare()
    nor.reset_counts()
    n = 0
    warned = 0
    while j.has_room():
        pay(j, n)
        n += 1
        if not warned and j.warning():
            warned = n
    records = 2 * n
    assert records >= 20000 and nor.erases == 0 and nor.conflicts == 0
    assert 0.79 * n <= warned <= 0.81 * n
    got = j.read_from(1, 10**6)
    assert [r.seq for r in got] == list(range(1, records + 1))  # nothing overwritten
    used, total = j.usage()
    assert used > 0.98 * total


@pytest.mark.slow
def test_littlefs_only_fallback_capacity_and_erases_per_append():
    dev = LogDevice(512, log=False)  # MicroPython's default vfs: 2 MiB
    fs = LfsPort(dev)
    deny = fill_vfs(fs, replacement_in_progress=False)
    j = FsJournal(fs, header(), reserve=len(deny) + BLOCK)
    e0, n = dev.erases, 0
    while j.has_room():
        pay(j, n)
        n += 1
        if n % 200 == 0:
            j.idle()  # the app calls it between taps; here often enough to refresh the free space
    j.idle()
    assert not j.has_room()
    per_append = (dev.erases - e0) / (2 * n)
    assert 2 * n >= 20000, "%d records" % (2 * n)
    assert 0.5 <= per_append <= 3
    fs.write_atomic("/denylist.bin", deny)  # the reserve really holds a replacement
    assert len(j.read_from(1, 10**6)) == 2 * n
