"""Denylist cases that run under pytest and under the MicroPython interpreter (file on the VM's filesystem).

    case_50000_entries_about_16_reads()   # builds a 400 KB list in the VM, then searches it in place
"""
import os

from tunion.denylist import Denylist, DenylistError, install_denylist, encode, verify, HEADER_SIZE

_BASE = 3100000000000000000  # card numbers are 19 digits starting 31 (protocol s.7.7)
_STEP = 7919
_N = 50000


def _dir():
    # A writable directory: the VM's MEMFS has /tmp; on CPython the tests run with a tmp cwd anyway.
    for d in ("/tmp", "."):
        try:
            os.stat(d)
            return d
        except OSError:
            pass
    return "."


def _card(i):
    # Deterministic, sorted by construction: entry i lies in [BASE + i*STEP, BASE + i*STEP + 100).
    return _BASE + i * _STEP + (i * 37) % 100


def _absent(i):
    return _BASE + i * _STEP + 500  # between entries i and i+1


def _big_list(path, n):
    # Built directly (not through encode) so the VM never holds the numbers as a list of big ints.
    from tunion.denylist import pack_header, put_u64, ENTRY_SIZE
    from tunion.compat import crc32

    body = bytearray(n * ENTRY_SIZE)
    for i in range(n):
        put_u64(body, i * ENTRY_SIZE, _card(i))
    hdr = pack_header(n, 42, crc32(body) & 0xFFFFFFFF)
    install_denylist(bytes(hdr) + bytes(body), path)


def _rm(path):
    try:
        os.remove(path)
    except OSError:
        pass


def case_50000_entries_about_16_reads():
    path = _dir() + "/dl50k.bin"
    _big_list(path, _N)
    dl = Denylist(path)
    try:
        assert dl.count == _N and dl.list_version == 42
        worst = 0
        probes = (0, 1, 2, 999, 12345, 25000, 37777, 49998, _N - 1)
        for i in probes:
            before = dl.reads
            assert dl.contains(_card(i))
            worst = max(worst, dl.reads - before)
            before = dl.reads
            assert not dl.contains(_absent(i))
            r = dl.reads - before
            assert 15 <= r <= 17, r  # log2(50000) = 15.6
            worst = max(worst, r)
        assert worst <= 17
        assert not dl.contains(_BASE - 1)
        assert not dl.contains(0xFFFFFFFFFFFFFFFF)
        assert not dl.contains(-1)
        assert dl.lookups == 2 * len(probes) + 3
    finally:
        dl.close()
        _rm(path)


def case_small_list_roundtrip_and_edges():
    path = _dir() + "/dlsmall.bin"
    nums = [3105170010170907984, 3104895199900000003, 3104895199900000003, 0, 0xFFFFFFFFFFFFFFFF]
    assert install_denylist(encode(nums, 7), path) == (4, 7)
    dl = Denylist(path)
    try:
        for v in nums:
            assert dl.contains(v)
        assert not dl.contains(3105170010170907985)
        assert not dl.contains(1)
    finally:
        dl.close()
    empty = _dir() + "/dlempty.bin"
    install_denylist(encode([], 1), empty)
    dl = Denylist(empty)
    assert not dl.contains(3105170010170907984) and dl.reads == 0
    dl.close()
    _rm(path)
    _rm(empty)


def _rejected(data, path, what):
    try:
        install_denylist(data, path)
    except DenylistError as e:
        assert what in str(e), str(e)
        return
    raise AssertionError("installed a bad list: " + what)


def case_bad_files_are_rejected_and_old_list_stays():
    path = _dir() + "/dlbad.bin"
    good = encode([3100000000000000001, 3100000000000000002, 3100000000000000003], 5)
    install_denylist(good, path)
    bad_crc = bytearray(good)
    bad_crc[HEADER_SIZE] ^= 1  # an entry bit flipped: only the entries CRC sees it
    _rejected(bad_crc, path, "entries CRC")
    _rejected(good[:-1], path, "bytes")  # truncated
    bad_magic = bytearray(good)
    bad_magic[0] = 0x58
    _rejected(bad_magic, path, "magic")
    bad_hdr = bytearray(good)
    bad_hdr[13] ^= 1  # list version changed without its header CRC
    _rejected(bad_hdr, path, "header CRC")
    unsorted = bytearray(encode([3100000000000000001, 3100000000000000002], 6))
    a = bytes(unsorted[HEADER_SIZE:HEADER_SIZE + 8])
    unsorted[HEADER_SIZE:HEADER_SIZE + 8] = unsorted[HEADER_SIZE + 8:HEADER_SIZE + 16]
    unsorted[HEADER_SIZE + 8:HEADER_SIZE + 16] = a
    from tunion.denylist import pack_header
    from tunion.compat import crc32

    unsorted[0:HEADER_SIZE] = pack_header(2, 6, crc32(bytes(unsorted[HEADER_SIZE:])) & 0xFFFFFFFF)
    _rejected(unsorted, path, "ascending")
    # The old list is still in force, and no temporary file was left behind.
    assert verify(path) == (3, 5)
    try:
        os.stat(path + ".new")
        raise AssertionError("temporary file left behind")
    except OSError:
        pass
    _rm(path)
