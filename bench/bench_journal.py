"""The journal, measured: wear per 1,000 taps, erases on the tap path, append time, capacity on a 4 MB board.

    python bench/bench_journal.py            # CPython figures, then the append time under MicroPython
    python bench/bench_journal.py --json     # one JSON object
    python bench/bench_journal.py --quick    # skip the LittleFS-only capacity fill (about 20 s)

Raw journal: FlashJournal on simulated NOR with the geometry of boards/esp32-generic/partitions.csv (journal
0.875 MiB = 224 sectors of 4096). Fallback: FsJournal on a real LittleFS image (littlefs-python) of MicroPython's
default 2 MiB vfs, holding the application, configuration and a 50,000-entry denylist. A tap here is what the
journal sees of a paid tap: append_intent, append_outcome, then idle() in the app loop; the depot acknowledges
every 500 taps. Append time is the journal's own Python work plus the simulated flash's bookkeeping (on the board
add the flash program itself: about 0.1 ms for 48 bytes; an erase is tens of ms).
"""
import sys
import time

try:
    import tunion  # noqa: F401
except ImportError:  # CPython from a checkout
    import os

    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:0] = [os.path.join(_root, "firmware"), os.path.join(_root, "tests"), _root]

from tunion.flashjournal import FlashJournal
from tunion.segment import SegmentHeader
from tunion.record import Record, KIND_INTENT, KIND_COMPLETED, KIND_UNRESOLVED, KIND_SETTLED, FLAG_ABANDONED
from sim.nor import NorFlash, BareFlash

MICROPYTHON = sys.implementation.name == "micropython"
JOURNAL_SECTORS = 224  # 0xE0000 / 4096 (boards/esp32-generic/partitions.csv)
HDR = SegmentHeader(b"\x24\x0a\xc4\x11\x22\x33", b"PSAM000001", b"\x00\x00\x00\x01\x23\x45", "B12", "10086", 7)


def now_us():
    if MICROPYTHON:
        return time.ticks_us()
    return time.perf_counter_ns() // 1000


def diff_us(a, b):
    if MICROPYTHON:
        return time.ticks_diff(a, b)
    return a - b


def append_time(taps=300, sectors=16):
    """Microseconds per intent + outcome pair, journal code only."""
    j = FlashJournal(BareFlash(sectors), HDR)
    j.prepare()
    total = 0
    for n in range(taps):
        r = intent(n)
        t0 = now_us()
        j.append_intent(r)
        j.append_outcome(r.outcome(KIND_COMPLETED, balance=4800, tac=b"\x01\x02\x03\x04"))
        total += diff_us(now_us(), t0)
        j.acknowledge(j.next_seq - 1)
        j.idle()
    return total // taps


def append_heap(pairs=50):
    """Heap bytes the journal allocates per intent + outcome pair (MicroPython: gc.mem_alloc deltas)."""
    import gc

    j = FlashJournal(BareFlash(16), HDR)
    j.prepare()
    recs = []
    for n in range(pairs):
        r = intent(n)
        recs.append((r, r.outcome(KIND_COMPLETED)))
    gc.collect()
    gc.disable()
    m0 = gc.mem_alloc()
    for r, o in recs:
        j.append_intent(r)
        o.ref = r.seq
        j.append_outcome(o)
    used = gc.mem_alloc() - m0
    gc.enable()
    return used // pairs


def intent(n):
    return Record(KIND_INTENT, card_no=3105170000000000 + n, amount=200, balance=5000, counter=n & 0xFFFF, ttc=n)


def journal_tap(j, n, torn_every):
    """What the journal sees of one tap: a paid tap, or (every `torn_every`-th) a tear after DEBIT closed
    `unresolved` (it joins the list: a pin), whose card comes back on the next tap and settles it first."""
    r = intent(n)
    j.append_intent(r)
    if torn_every and n % torn_every == 0:
        j.append_outcome(r.outcome(KIND_UNRESOLVED, FLAG_ABANDONED))
        return r.seq
    j.append_outcome(r.outcome(KIND_COMPLETED, balance=4800, tac=b"\x01\x02\x03\x04"))
    return 0


def settle(j, seq):
    j.append_settlement(Record(KIND_SETTLED, ref=seq, balance=4800, tac=b"\x05\x06\x07\x08"))


def wear_raw(taps=1000, ack_every=500, sectors=JOURNAL_SECTORS, warmup=15000, torn_every=0):
    """Steady state: `warmup` taps first (the ring wraps: every sector used once), then `taps` measured; every
    `torn_every`-th tap torn (0: none)."""
    nor = NorFlash(sectors)
    j = FlashJournal(nor, HDR)
    j.prepare()
    pending = 0
    for n in range(warmup):
        if pending:
            settle(j, pending)
        pending = journal_tap(j, n, torn_every)
        if n % ack_every == ack_every - 1:
            j.acknowledge(j.next_seq - 1)
        j.idle()
    nor.reset_counts()
    tap_erases = 0
    t_append = 0
    for n in range(taps):
        e = nor.erases
        t0 = now_us()
        if pending:
            settle(j, pending)
        pending = journal_tap(j, n, torn_every)
        t_append += diff_us(now_us(), t0)
        tap_erases += nor.erases - e
        if n % ack_every == ack_every - 1:
            j.acknowledge(j.next_seq - 1)
        j.idle()
    out = {
        "torn_share": "%d %%" % (100 // torn_every) if torn_every else "0 %",
        "programs_per_1000_taps": nor.programs * 1000 // taps,
        "erases_per_1000_taps": nor.erases * 1000 // taps,
        "bytes_programmed_per_tap": nor.bytes_programmed // taps,
        "erases_on_tap_path": tap_erases,
        "max_erases_of_one_sector": max(nor.wear),
        "append_pair_us_with_nor_sim": t_append // taps,
    }
    if not torn_every:
        out["append_pair_us"] = append_time()
    return out


def mount_time(sectors=JOURNAL_SECTORS, taps=9000, torn_every=50):
    """A full 4 MB board's partition with 16 entries on the unresolved list: records and meta reads at mount."""
    nor = NorFlash(sectors)
    j = FlashJournal(nor, HDR)
    j.prepare()
    for n in range(taps):
        journal_tap(j, n, torn_every if n < 16 * torn_every else 0)
        j.idle()
    nor.reset_counts()
    t0 = now_us()
    j = FlashJournal(nor, HDR)
    return {"mount_us_cpython_sim": diff_us(now_us(), t0), "sector_reads": nor.reads, "list_entries": len(j.unresolved())}


def capacity_raw(sectors=JOURNAL_SECTORS):
    nor = NorFlash(sectors)
    j = FlashJournal(nor, HDR)
    j.prepare()
    n = 0
    while j.has_room():
        r = intent(n)
        j.append_intent(r)
        j.append_outcome(r.outcome(KIND_COMPLETED))
        n += 1
    return {"journal_bytes": sectors * 4096, "records": 2 * n, "payments": n, "tap_path_erases": 0}


def fallback(quick):
    from sim.lfsport import LogDevice, LfsPort
    from tunion.fsjournal import FsJournal
    from test_journal_capacity import fill_vfs

    dev = LogDevice(512, log=False)
    fs = LfsPort(dev)
    deny = fill_vfs(fs, replacement_in_progress=False)
    j = FsJournal(fs, HDR, reserve=len(deny) + 4096)
    e0, p0, n = dev.erases, dev.programs, 0
    t_append = 0
    limit = 500 if quick else 10**9
    while j.has_room() and n < limit:
        r = intent(n)
        t0 = now_us()
        j.append_intent(r)
        j.append_outcome(r.outcome(KIND_COMPLETED))
        t_append += diff_us(now_us(), t0)
        n += 1
        if n % 200 == 0:
            j.idle()
    out = {
        "erases_per_append": round((dev.erases - e0) / (2 * n), 2),
        "programs_per_append": round((dev.programs - p0) / (2 * n), 2),
        "erases_per_1000_taps": (dev.erases - e0) * 1000 // n,
        "erases_on_tap_path_per_tap": round((dev.erases - e0) / n, 2),
        "append_pair_us": t_append // n,
    }
    if not quick:
        out["records"] = 2 * n
        out["payments"] = n
    return out


def vfs_headroom():
    from sim.lfsport import LogDevice, LfsPort
    from test_journal_capacity import fill_vfs

    fs = LfsPort(LogDevice(288, log=False))  # 0x120000 / 4096
    fill_vfs(fs, replacement_in_progress=True)
    return {"vfs_blocks": 288, "free_blocks_with_both_denylists": fs.statvfs()[3]}


def main(argv):
    if MICROPYTHON:
        print("MP_APPEND_PAIR_US %d" % append_time())
        print("MP_APPEND_PAIR_HEAP %d" % append_heap())
        return
    quick = "--quick" in argv
    res = {
        "raw": wear_raw(),
        "raw_2pct_torn": wear_raw(torn_every=50),
        "raw_mount": mount_time(),
        "raw_capacity": capacity_raw(),
        "vfs": vfs_headroom(),
        "fallback": fallback(quick),
    }
    try:
        from tools import mprun

        out = mprun.run_script(__file__, ["--mp"])
        for line in out.splitlines():
            if line.startswith("MP_APPEND_PAIR_US"):
                res["raw"]["append_pair_us_micropython_wasm"] = int(line.split()[1])
            if line.startswith("MP_APPEND_PAIR_HEAP"):
                res["raw"]["append_pair_heap_bytes_micropython"] = int(line.split()[1])
    except Exception as e:  # no Node / npm ci: CPython figures only
        res["raw"]["append_pair_us_micropython_wasm"] = "not run (%s)" % e.__class__.__name__
    if "--json" in argv:
        import json

        print(json.dumps(res))
        return
    print("journal bench (bench/bench_journal.py)")
    for part in res:
        for k in res[part]:
            print("  %-16s %-36s %s" % (part, k, res[part][k]))


main(sys.argv[1:])
