"""Denylist: the host builder and checker, the in-place search, atomic install (MicroPython cases in mpcases)."""
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from host_tools import denylist as tool
from host_tools.cli import run as depot
from host_tools.errors import DepotError
from tunion.denylist import Denylist, DenylistError, install_denylist, encode, verify, HEADER_SIZE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LIST = """\
# stolen cards, 2026-11-25
3105170010170907984
3104895199900000003   # reported by the depot
3104895199900000003

3100000000000000000
"""


def test_build_from_text_list_then_search(tmp_path):
    data, warnings = tool.build(LIST, 12)
    assert warnings == ["line 4: 3104895199900000003 is listed twice (kept once)"]
    path = str(tmp_path / "dl.bin")
    assert install_denylist(data, path) == (3, 12)
    dl = Denylist(path)
    assert dl.contains(3105170010170907984) and dl.contains(3104895199900000003)
    assert dl.contains(3100000000000000000)
    assert not dl.contains(3105170010170907985)
    assert dl.reads <= 4 * 2
    dl.close()


def test_bad_lines_are_reported_with_their_numbers():
    text = "3105170010170907984\n31051700101709X7984\n\n123\n99999999999999999999999\n"
    with pytest.raises(DepotError) as e:
        tool.build(text, 1)
    msg = str(e.value)
    assert "line 2:" in msg and "digits only" in msg
    assert "line 4:" in msg and "19-digit" in msg
    assert "line 5:" in msg and "64-bit" in msg
    assert "line 1:" not in msg
    # --lenient keeps short numbers as a warning but still refuses what cannot be a u64
    nums, warnings = tool.parse_list("123\n", strict=False)
    assert nums == [123] and "line 1" in warnings[0]
    with pytest.raises(DepotError):
        tool.build("3105170010170907984\n", 1 << 32)


def _cli(*args, module="host_tools.cli"):
    """The depot CLI as a real process (python -m, this checkout first on the path)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "firmware")]))
    return subprocess.run([sys.executable, "-m", module] + [str(a) for a in args], capture_output=True, text=True,
                          env=env, cwd=ROOT)


def test_cli_build_check_stats(tmp_path, capsys):
    src = tmp_path / "cards.txt"
    src.write_text(LIST)
    out = tmp_path / "dl.bin"
    r = _cli("denylist", "build", src, "-o", out, "--list-version", "3", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["entries"] == 3 and info["list_version"] == 3 and info["verified"]
    assert info["first"] == 3100000000000000000 and info["last"] == 3105170010170907984
    assert "listed twice" in r.stderr
    assert depot(["--json", "denylist", "check", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["entries_crc"] == info["entries_crc"]
    assert depot(["denylist", "stats", str(out)]) == 0
    assert "list_version          3" in capsys.readouterr().out
    raw = bytearray(out.read_bytes())
    raw[-1] ^= 0xFF
    out.write_bytes(bytes(raw))
    r = _cli("check", out, module="host_tools.denylist")  # the old entry point: the same group
    assert r.returncode == 2 and r.stderr.strip().endswith("entries CRC mismatch")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("hello\n3105170010170907984\n12\n")
    r = _cli("denylist", "build", bad, "-o", tmp_path / "x.bin", "--list-version", "1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "line 1:" in r.stderr and "line 3:" in r.stderr
    assert not (tmp_path / "x.bin").exists() and not (tmp_path / "x.bin.tmp").exists()
    r = _cli("denylist", "check", tmp_path / "missing.bin")
    assert r.returncode == 2 and "No such file" in r.stderr and "Traceback" not in r.stderr


def test_install_from_uploaded_file_and_rejects_keep_old(tmp_path):
    path = str(tmp_path / "denylist.bin")
    install_denylist(encode([3105170010170907984], 1), path)
    up = str(tmp_path / "upload.bin")
    with open(up, "wb") as fh:
        fh.write(encode([3100000000000000001, 3100000000000000002], 2))
    assert install_denylist(up, path) == (2, 2)
    assert not os.path.exists(up)  # renamed into place
    with open(up, "wb") as fh:
        fh.write(encode([3100000000000000009], 3)[:-2])
    with pytest.raises(DenylistError):
        install_denylist(up, path)
    assert verify(path) == (2, 2)
    assert not os.path.exists(up)  # a rejected upload is removed


def test_open_rejects_a_file_whose_size_does_not_match(tmp_path):
    path = str(tmp_path / "dl.bin")
    with open(path, "wb") as fh:
        fh.write(encode([3100000000000000001, 3100000000000000002], 1) + b"\x00" * 8)
    with pytest.raises(DenylistError):
        Denylist(path)


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=(1 << 64) - 1), max_size=300),
       st.lists(st.integers(min_value=0, max_value=(1 << 64) - 1), max_size=30))
def test_search_agrees_with_a_set(tmp_path_factory, members, others):
    path = str(tmp_path_factory.mktemp("dl") / "dl.bin")
    install_denylist(encode(members, 1), path)
    dl = Denylist(path)
    try:
        for v in list(members)[:30] + others:
            before = dl.reads
            assert dl.contains(v) == (v in members)
            assert dl.reads - before <= len(members).bit_length()
    finally:
        dl.close()


def test_one_million_entries_for_16mb_boards(tmp_path):
    n = 1000000
    body = bytearray(n * 8)
    base = 3100000000000000000
    for i in range(0, n):
        body[i * 8:i * 8 + 8] = (base + i * 1000).to_bytes(8, "big")
    import zlib
    from tunion.denylist import pack_header
    path = str(tmp_path / "dl.bin")
    assert install_denylist(bytes(pack_header(n, 9, zlib.crc32(body))) + bytes(body), path) == (n, 9)
    assert os.path.getsize(path) == HEADER_SIZE + 8 * n
    dl = Denylist(path)
    for i in (0, 1, 499999, n - 1):
        before = dl.reads
        assert dl.contains(base + i * 1000)
        assert not dl.contains(base + i * 1000 + 1)
        assert dl.reads - before <= 2 * 20  # log2(1e6) = 19.9
    dl.close()


class _LfsCounter:
    """A LittleFS image (littlefs-python, the C library) with MicroPython's ESP32 settings: read_size 32,
    prog_size 32, cache 128 bytes, 4 KB blocks; counts the flash reads the library makes."""

    def __init__(self, blocks=512):
        import littlefs

        outer = self

        class Ctx(littlefs.UserContext):
            def read(self, cfg, block, off, size):
                outer.reads += 1
                outer.bytes += size
                return super().read(cfg, block, off, size)

        self.reads = 0
        self.bytes = 0
        self.fs = littlefs.LittleFS(context=Ctx(4096 * blocks), block_size=4096, block_count=blocks, read_size=32,
                                    prog_size=32, cache_size=128, lookahead_size=32, block_cycles=100)

    def stat(self, p):
        return (0, 0, 0, 0, 0, 0, self.fs.stat(p).size)

    def remove(self, p):
        self.fs.remove(p)

    def rename(self, a, b):
        self.fs.rename(a, b)

    def open(self, p, mode="rb"):
        return self.fs.open(p, mode)


def test_lookup_on_littlefs_reads_a_few_kilobytes_not_the_file(monkeypatch):
    pytest.importorskip("littlefs")
    import tunion.denylist as D

    lfs = _LfsCounter()
    monkeypatch.setattr(D, "os", lfs)
    monkeypatch.setattr(D, "open", lfs.open, raising=False)
    n, base, step = 50000, 3100000000000000000, 7919
    assert install_denylist(encode([base + i * step for i in range(n)], 4), "denylist.bin") == (n, 4)
    install_denylist(encode([base + i * step for i in range(n)], 5), "denylist.bin")  # replaces the old list
    dl = Denylist("denylist.bin")
    assert dl.list_version == 5
    worst = 0
    for k in (base, base + 1, base + 25000 * step, base + (n - 1) * step + 1, base + 1234 * step + 3):
        r0, b0, e0 = lfs.reads, lfs.bytes, dl.reads
        assert dl.contains(k) == ((k - base) % step == 0)
        assert dl.reads - e0 <= 16
        worst = max(worst, lfs.bytes - b0)
        assert lfs.reads - r0 <= 160
    assert worst < 16 * 1024  # the file is 400 KB; a lookup reads a few KB of it
    dl.close()
