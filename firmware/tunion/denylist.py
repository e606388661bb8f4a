"""The denylist file: sorted 8-byte card numbers searched in place on flash, never loaded into RAM.

    dl = Denylist("/denylist.bin"); dl.contains(3105170010170907984) -> bool; dl.reads  # reads so far
    install_denylist(data_or_path, "/denylist.bin")   # new file, verify, os.rename (validator.md s.5)

Layout (big-endian; one module defines it: the firmware searches with it, host_tools/denylist.py builds with it):

    off len field
      0   4 magic b"TUDL"
      4   2 format version (FORMAT)
      6   2 header size (HEADER_SIZE = 32)
      8   4 entry count n
     12   4 list version (set by the depot; rises with every list)
     16   4 CRC32 of the n*8 entry bytes (checked at install, not on every lookup)
     20   8 reserved, zero
     28   4 CRC32 of bytes 0..27
     32 n*8 card numbers (protocol s.7.7: the EF15 application serial as an unsigned 64-bit integer),
            strictly ascending

50,000 entries are 400 KB (a 4 MB board keeps the list and its replacement); 1,000,000 are 8 MB (16 MB boards).
A lookup is a binary search: about log2(n) + 1 reads of 8 bytes (17 for 50,000) into one preallocated buffer.
"""
import os

from tunion.compat import const, crc32, u16, u32, put_u16, put_u32

MAGIC = b"TUDL"
FORMAT = const(1)
HEADER_SIZE = const(32)
ENTRY_SIZE = const(8)
_MAX_ENTRIES = const(4000000)  # 32 MB: more than any board's flash
_CHUNK = const(4096)  # install-time reads: one flash block at a time
_U64_MAX = 0xFFFFFFFFFFFFFFFF


class DenylistError(ValueError):
    """A denylist file that must not be used: bad header, wrong size, CRC mismatch, entries out of order."""


def _crc(data, crc=0):
    return crc32(data, crc) & 0xFFFFFFFF


def pack_header(count, list_version, entries_crc):
    h = bytearray(HEADER_SIZE)
    h[0:4] = MAGIC
    put_u16(h, 4, FORMAT)
    put_u16(h, 6, HEADER_SIZE)
    put_u32(h, 8, count)
    put_u32(h, 12, list_version)
    put_u32(h, 16, entries_crc)
    put_u32(h, 28, _crc(memoryview(h)[:28]))
    return h


def parse_header(h):
    """(count, list_version, entries_crc) from the first HEADER_SIZE bytes; DenylistError when they are wrong."""
    if len(h) < HEADER_SIZE:
        raise DenylistError("file shorter than its header")
    if bytes(h[0:4]) != MAGIC:
        raise DenylistError("not a denylist file (magic)")
    if _crc(memoryview(h)[:28]) != u32(h, 28):
        raise DenylistError("header CRC mismatch")
    if u16(h, 4) != FORMAT:
        raise DenylistError("denylist format %d, this firmware reads %d" % (u16(h, 4), FORMAT))
    if u16(h, 6) != HEADER_SIZE:
        raise DenylistError("header size %d, expected %d" % (u16(h, 6), HEADER_SIZE))
    n = u32(h, 8)
    if n > _MAX_ENTRIES:
        raise DenylistError("entry count %d too large" % n)
    return n, u32(h, 12), u32(h, 16)


def put_u64(buf, off, v):
    put_u32(buf, off, v >> 32)
    put_u32(buf, off + 4, v & 0xFFFFFFFF)


def encode(card_numbers, list_version):
    """The file's bytes from card numbers (any order; duplicates dropped). ValueError on a number outside u64."""
    nums = sorted(set(card_numbers))
    body = bytearray(len(nums) * ENTRY_SIZE)
    off = 0
    for v in nums:
        if v < 0 or v >= 1 << 64:
            raise ValueError("card number %d does not fit 64 bits" % v)
        put_u64(body, off, v)
        off += ENTRY_SIZE
    return bytes(pack_header(len(nums), list_version, _crc(body))) + bytes(body)


def _file_size(path):
    return os.stat(path)[6]


def verify(path):
    """Check a whole file (header, size, entries CRC, strict order), reading it in 4 KB chunks.
    Returns (count, list_version); DenylistError when it must not be installed. Install time only."""
    with open(path, "rb") as fh:
        h = fh.read(HEADER_SIZE)
        n, version, want = parse_header(h)
        size = _file_size(path)
        if size != HEADER_SIZE + n * ENTRY_SIZE:
            raise DenylistError("file is %d bytes, header says %d entries (%d bytes)" % (
                size, n, HEADER_SIZE + n * ENTRY_SIZE))
        crc = 0
        prev = None
        left = n * ENTRY_SIZE
        buf = bytearray(_CHUNK)
        mv = memoryview(buf)
        while left > 0:
            k = _CHUNK if left > _CHUNK else left
            got = fh.readinto(mv[:k])
            if got != k:
                raise DenylistError("file ends early")
            crc = _crc(mv[:k], crc)
            for off in range(0, k, ENTRY_SIZE):
                e = bytes(mv[off:off + ENTRY_SIZE])
                if prev is not None and e <= prev:
                    raise DenylistError("entries not strictly ascending at entry %d" % (
                        (n * ENTRY_SIZE - left + off) // ENTRY_SIZE))
                prev = e
            left -= k
        if crc != want:
            raise DenylistError("entries CRC mismatch")
    return n, version


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def install_denylist(src, path):
    """Install a new list at `path` atomically: `src` is the file's bytes (written to `path`.new first) or the
    path of a file already on this filesystem (e.g. uploaded by the depot). The new file is verified whole,
    then renamed over `path`; on DenylistError the old list stays. Close an open Denylist on `path` first, and
    open a new one after. Returns (count, list_version)."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        tmp = path + ".new"
        try:
            with open(tmp, "wb") as fh:
                mv = memoryview(src)
                for off in range(0, len(mv), _CHUNK):
                    fh.write(mv[off:off + _CHUNK])
        except Exception:
            _remove(tmp)
            raise
    else:
        tmp = src
    try:
        info = verify(tmp)
    except Exception:
        _remove(tmp)
        raise
    os.rename(tmp, path)  # LittleFS: the old list or the new one, never a torn file
    return info


class Denylist:
    """An open denylist file. `contains` does a binary search with seek/readinto into a preallocated buffer;
    `reads` counts the entry reads (tests and the bench bound it). The header is checked on open; the entries
    CRC was checked by install_denylist (a 1,000,000-entry file is not re-read on every boot)."""

    def __init__(self, path):
        self.path = path
        self._fh = open(path, "rb")
        try:
            self.count, self.list_version, self.entries_crc = parse_header(self._fh.read(HEADER_SIZE))
            if _file_size(path) != HEADER_SIZE + self.count * ENTRY_SIZE:
                raise DenylistError("file size does not match its entry count")
        except Exception:
            self._fh.close()
            raise
        self.reads = 0
        self.lookups = 0
        self._buf = bytearray(ENTRY_SIZE)
        self._key = bytearray(ENTRY_SIZE)

    def close(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _cmp_at(self, i):
        """Entry i compared with the key: -1, 0, 1. Byte by byte on small ints (no big-int allocation)."""
        fh = self._fh
        fh.seek(HEADER_SIZE + i * ENTRY_SIZE)
        if fh.readinto(self._buf) != ENTRY_SIZE:
            raise DenylistError("file ends early")
        self.reads += 1
        b = self._buf
        k = self._key
        for j in range(ENTRY_SIZE):
            if b[j] != k[j]:
                return -1 if b[j] < k[j] else 1
        return 0

    def contains(self, card_no):
        """True when card_no is on the list."""
        self.lookups += 1
        if card_no < 0 or card_no > _U64_MAX:
            return False
        put_u64(self._key, 0, card_no)
        lo = 0
        hi = self.count - 1
        while lo <= hi:
            mid = (lo + hi) >> 1
            c = self._cmp_at(mid)
            if c == 0:
                return True
            if c < 0:
                lo = mid + 1
            else:
                hi = mid - 1
        return False

    def __repr__(self):
        return "Denylist(%s: %d entries, version %d)" % (self.path, self.count, self.list_version)


# Optional (configuration `block_denylisted`, protocol s.7 point 9): block a denylisted card's application.
_GET_CHALLENGE = b"\x00\x84\x00\x00\x04"
_APP_BLOCK = b"\x84\x1e\x00\x00\x04"  # APPLICATION BLOCK, secure messaging: MAC over this header
_PSAM_INIT_BLOCK_KEY = b"\x80\x1a\x45\x02\x10"  # P1 = 2 levels << 5 | usage 05 (maintenance key), protocol s.5
_PSAM_MAC = b"\x80\xfa\x05\x00\x10"  # single-block MAC, data = IV(8) || padded header(8)
_PAD_HEADER = b"\x84\x1e\x00\x00\x04\x80\x00\x00"  # the header with ISO 9797-1 method 2 padding


def _ok(resp):
    return len(resp) >= 2 and resp[-2] == 0x90 and resp[-1] == 0x00


def block_application(card_port, sam, ef15):
    """APPLICATION BLOCK on the selected purse (protocol s.3 "Blacklist lock"): card GET CHALLENGE, PSAM 801A
    with cardSN8 || issuerID8, PSAM 80FA over challenge || 00000000 || padded header, card 84 1E with that MAC.
    `sam` is a tunion.psam.Psam (its port is used; its purchase session is over afterwards). Returns True when
    the card answered 9000. CardLost/SamError propagate: the caller has already refused the card either way."""
    from tunion.errors import SamError

    r = card_port.transceive(_GET_CHALLENGE)
    if not _ok(r) or len(r) != 6:
        return False
    challenge = bytes(r[0:4])
    sam.session_ttc = None  # 801A replaces the PSAM's session key: no 8072 after this
    r = sam.port.transceive(_PSAM_INIT_BLOCK_KEY + ef15.sn8 + ef15.issuer)
    if not _ok(r):
        raise SamError("PSAM 801A (block key): %02X%02X" % (r[-2], r[-1]) if len(r) >= 2 else "PSAM 801A")
    r = sam.port.transceive(_PSAM_MAC + challenge + b"\x00\x00\x00\x00" + _PAD_HEADER + b"\x04")
    if not _ok(r) or len(r) != 6:
        raise SamError("PSAM 80FA (block MAC) failed")
    r = card_port.transceive(_APP_BLOCK + bytes(r[0:4]))
    return _ok(r)
