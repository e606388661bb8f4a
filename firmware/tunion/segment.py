"""Journal segments: the 64-byte header both flash journals write, and the walk that finds records after a cut.

    hdr = SegmentHeader(board_id=b"\\x24\\x0a\\xc4\\x11\\x22\\x33", line="B12", vehicle="10086")
    raw = hdr.encode(segno=5, first_seq=1001)         # 64 bytes, CRC-protected
    h, segno, first = SegmentHeader.decode(raw)       # SegmentError when the CRC or magic is wrong
    for off, rec in entries(buf, HEADER_SIZE, len(buf), last_non_ff(buf, HEADER_SIZE, len(buf))): ...
    raw, nxt, end = journal.read_raw(1, 4096)        # the depot's pull (app.service.records): RawChunk below
    for fields, records, damaged in parse_raw(raw): ...

What many records share lives once per segment (validator.md section 4). Header layout, big-endian:

    off len field
      0   2 magic b"TJ"
      2   1 header format version (HEADER_VERSION)
      3   4 segment number: +1 for every segment the board opens, for its whole life
      7   4 first seq: the sequence number the segment's first record gets (the floor survives full acknowledgement)
     11   8 board ID (machine.unique_id(), zero-padded)
     19  10 PSAM number (PSAM EF15 serial)
     29   6 terminal number (PSAM EF16)
     35   8 line (text, zero-padded)
     43  10 vehicle (text, zero-padded; a plate like "沪AD12345" is 10 bytes of UTF-8)
     53   4 configuration version
     57   3 firmware version major, minor, patch (tunion.version)
     60   4 CRC32 of bytes 0..59

Records follow the header back to back (record.py sizes are multiples of 8). Unwritten flash reads 0xFF, and a
record starts with its format version (1), so a blank area is told from a record by its first byte; a torn or
damaged record fails its CRC and is skipped 8 bytes at a time until the next valid record (`entries`).
"""
from tunion.compat import const, crc32, u32, put_u32
from tunion.record import Record, RecordError, MAX_SIZE, is_version, size_of
from tunion.version import FIRMWARE_VERSION

HEADER_SIZE = const(64)
HEADER_VERSION = const(1)
ALIGN = const(8)  # record sizes and write offsets are multiples of 8 (record.py)
_MAGIC0 = const(0x54)  # "T"
_MAGIC1 = const(0x4A)  # "J"


# The limits of every configuration field a segment header holds (finding 11: load_config checks these, so a
# configuration that loads never breaks the journal): text fields in bytes of UTF-8, the configuration version
# as an unsigned 32-bit number. The other header fields come from the board and the PSAM, not the configuration.
HEADER_TEXT_LIMITS = {"line": 8, "vehicle": 10}
CONFIG_VERSION_RANGE = (0, 0xFFFFFFFF)


class SegmentError(ValueError):
    """Bytes that are not a valid segment header."""


def _field(v, n):
    if isinstance(v, int):
        v = str(v)
    if isinstance(v, str):
        v = v.encode()
    v = bytes(v)
    if len(v) > n:
        raise ValueError("header field %r longer than %d bytes" % (v, n))
    return v + bytes(n - len(v))


def _text(b):
    end = len(b)
    while end and b[end - 1] == 0:
        end -= 1
    try:
        return bytes(b[:end]).decode()
    except Exception:  # not UTF-8: keep the bytes
        return bytes(b[:end])


def _fw_tuple(s):
    parts = (s.split(".") + ["0", "0", "0"])[:3]
    return (int(parts[0]) & 0xFF, int(parts[1]) & 0xFF, int(parts[2]) & 0xFF)


class SegmentHeader:
    """What the records of one segment share; the journal stamps it into every segment it opens."""

    def __init__(
        self,
        board_id=b"",
        psam_no=b"",
        terminal=b"",
        line="",
        vehicle="",
        config_version=0,
        fw_version=FIRMWARE_VERSION,
    ):
        self.board_id = _field(board_id, 8)
        self.psam_no = _field(psam_no, 10)
        self.terminal = _field(terminal, 6)
        self.line = _field(line, HEADER_TEXT_LIMITS["line"])
        self.vehicle = _field(vehicle, HEADER_TEXT_LIMITS["vehicle"])
        if not isinstance(config_version, int) or not CONFIG_VERSION_RANGE[0] <= config_version <= CONFIG_VERSION_RANGE[1]:
            raise ValueError("configuration version %r outside 0..2**32-1" % (config_version,))
        self.config_version = config_version
        self.fw_version = fw_version if isinstance(fw_version, str) else "%d.%d.%d" % tuple(fw_version)
        _fw_tuple(self.fw_version)  # ValueError now rather than at the first append

    def encode(self, segno, first_seq, buf=None):
        b = buf if buf is not None else bytearray(HEADER_SIZE)
        b[0] = _MAGIC0
        b[1] = _MAGIC1
        b[2] = HEADER_VERSION
        put_u32(b, 3, segno)
        put_u32(b, 7, first_seq)
        b[11:19] = self.board_id
        b[19:29] = self.psam_no
        b[29:35] = self.terminal
        b[35:43] = self.line
        b[43:53] = self.vehicle
        put_u32(b, 53, self.config_version)
        b[57:60] = bytes(_fw_tuple(self.fw_version))
        put_u32(b, 60, crc32(memoryview(b)[:60]) & 0xFFFFFFFF)
        return b

    @staticmethod
    def decode(raw):
        """(SegmentHeader, segno, first_seq) from 64 bytes; SegmentError when they are not a valid header."""
        if len(raw) < HEADER_SIZE or raw[0] != _MAGIC0 or raw[1] != _MAGIC1:
            raise SegmentError("no segment magic")
        if crc32(memoryview(raw)[:60]) & 0xFFFFFFFF != u32(raw, 60):
            raise SegmentError("segment header CRC mismatch")
        if raw[2] != HEADER_VERSION:
            raise SegmentError("unknown segment header version %d" % raw[2])
        h = SegmentHeader(
            bytes(raw[11:19]),
            bytes(raw[19:29]),
            bytes(raw[29:35]),
            bytes(raw[35:43]),
            bytes(raw[43:53]),
            u32(raw, 53),
            "%d.%d.%d" % (raw[57], raw[58], raw[59]),
        )
        return h, u32(raw, 3), u32(raw, 7)

    def fields(self):
        """The header as plain values (text fields decoded), for the depot and the service module."""
        return {
            "board_id": self.board_id,
            "psam_no": self.psam_no,
            "terminal": self.terminal,
            "line": _text(self.line),
            "vehicle": _text(self.vehicle),
            "config_version": self.config_version,
            "fw_version": self.fw_version,
        }

    def __eq__(self, other):
        return isinstance(other, SegmentHeader) and bytes(self.encode(0, 0)) == bytes(other.encode(0, 0))


def is_blank(raw):
    """True when every byte is 0xFF (erased flash)."""
    for x in raw:
        if x != 0xFF:
            return False
    return True


def last_non_ff(buf, start, end):
    """Index of the last byte in buf[start:end] that is not 0xFF, or start - 1 when the area is blank."""
    i = end - 1
    # 8 bytes at a time while blank (each slice compare runs in C), then byte by byte.
    ff8 = b"\xff\xff\xff\xff\xff\xff\xff\xff"
    while i - 7 >= start and buf[i - 7 : i + 1] == ff8:
        i -= 8
    while i >= start and buf[i] == 0xFF:
        i -= 1
    return i


def _zeros(buf, a, b):
    for i in range(a, b):
        if buf[i]:
            return False
    return True


def entries(buf, start, end, last):
    """Yield (offset, Record) for each valid record in buf[start:end], (offset, None) where a damaged or torn
    stretch begins, and (offset, False) for a tombstone (a torn write the journal zeroed: known harmless);
    `last` = last_non_ff(buf, start, end). A damaged stretch is skipped 8 bytes at a time, so a flipped bit or a
    torn record never hides the records after it."""
    o = start
    damaged = -1
    while o + ALIGN <= end and o <= last:
        if is_version(buf[o]):
            n = size_of(buf[o + 1])
            if n and o + n <= end:
                try:
                    rec = Record.decode(bytes(buf[o : o + n]))
                except RecordError:
                    rec = None
                if rec is not None:
                    if damaged >= 0:
                        yield damaged, (False if _zeros(buf, damaged, o) else None)
                        damaged = -1
                    yield o, rec
                    o += n
                    continue
        if damaged < 0:
            damaged = o
        o += ALIGN
    if damaged >= 0:
        yield damaged, (False if _zeros(buf, damaged, min(o, last + 1)) else None)


def write_point(end_of_last_record, last, start):
    """Where the next record may be programmed: after the last valid record and after any torn bytes (so a new
    record never lands on bits a cut left programmed), 8-aligned."""
    wp = end_of_last_record if end_of_last_record > start else start
    torn_end = last + 1
    if torn_end > wp:
        wp = start + ((torn_end - start + ALIGN - 1) // ALIGN) * ALIGN
    return wp


# ---- raw reads for the depot (issue 8: service.records) -------------------------------------------------------
# A chunk is blocks back to back, each a 64-byte segment header followed by that segment's bytes as stored: whole
# records and the damaged or torn stretches between them (8-aligned), never 0xFF tail. A sector whose header is
# damaged gets a stand-in: the journal's current header with segment number 0, its first valid seq, and the
# STANDIN bit set in the version byte (CRC over the marked bytes), so the depot knows the fields are a guess.
STANDIN = const(0x80)  # version-byte flag of a stand-in header (not read from flash)


def standin_header(header, first_seq):
    """64 bytes: `header` marked as a stand-in for a segment whose own header is damaged."""
    b = header.encode(0, first_seq)
    b[2] = HEADER_VERSION | STANDIN
    put_u32(b, 60, crc32(memoryview(b)[:60]) & 0xFFFFFFFF)
    return b


def stored_header(raw, header, first_seq):
    """raw[:64] when it is a valid stored header, else a stand-in made of `header` (a damaged one)."""
    try:
        SegmentHeader.decode(raw[:HEADER_SIZE])
        return raw[:HEADER_SIZE]
    except SegmentError:
        return standin_header(header, first_seq)


def first_segment(firsts, seq):
    """Index of the segment a read from `seq` starts in: the last whose first seq is <= seq (0 when none)."""
    k0 = 0
    for k in range(len(firsts)):
        if firsts[k] <= seq:
            k0 = k
    return k0


def _block_header(raw, o):
    """(fields, segno, first_seq, standin) when raw[o:o+64] is a header (stored or stand-in), else None."""
    if o + HEADER_SIZE > len(raw) or raw[o] != _MAGIC0 or raw[o + 1] != _MAGIC1:
        return None
    b = bytearray(raw[o : o + HEADER_SIZE])
    if crc32(memoryview(b)[:60]) & 0xFFFFFFFF != u32(b, 60) or b[2] & 0x7F != HEADER_VERSION:
        return None
    standin = bool(b[2] & STANDIN)
    b[2] = HEADER_VERSION
    put_u32(b, 60, crc32(memoryview(b)[:60]) & 0xFFFFFFFF)
    h, segno, first = SegmentHeader.decode(b)
    return h.fields(), segno, first, standin


_RAW_BUF = None


def reserve_raw(n):
    """Take the depot reads' chunk buffer now (at boot, while the heap is whole); RawChunk reuses it, so a chunk's
    bytes are valid until the next read_raw call."""
    global _RAW_BUF
    if _RAW_BUF is None or len(_RAW_BUF) < n:
        _RAW_BUF = bytearray(n)


class RawChunk:
    """Builds one read_raw chunk at most `max_bytes` long; the journals call add() per segment, oldest first.

        c = RawChunk(4096)
        c.add(hdr64, buf, HEADER_SIZE, len(buf), first_seq, seq, ack, open_seq)   # False: the chunk is full
        raw, next_seq, end = c.result(journal.next_seq)

    A record is sent when seq >= `seq` and it is unacknowledged (or the open intent, as read_from does); a
    damaged stretch stands for the seq after the record before it and is sent under the same rule. A record
    is never cut; a stretch is cut (its first bytes sent, the rest skipped) only when it cannot fit even an
    empty chunk."""

    def __init__(self, max_bytes):
        if max_bytes < HEADER_SIZE + MAX_SIZE:  # an empty chunk always takes a header and the biggest record
            raise ValueError("max_bytes must be at least %d" % (HEADER_SIZE + MAX_SIZE))
        self.max = max_bytes
        # One buffer of the chunk's size, filled in place: after a day of taps the board's heap is fragmented
        # (largest free block ~8 KB of ~85 KB free on the virtual board), so no bytearray grown by appends (each
        # growth copies) and no copy of it; one module-level buffer, reused by every read (reserve_raw() can take it early).
        global _RAW_BUF
        if _RAW_BUF is None or len(_RAW_BUF) < max_bytes:
            _RAW_BUF = bytearray(max_bytes)  # taken at the first depot read (after the link's gc), then kept
        self.buf = _RAW_BUF
        self.n = 0
        self.next = -1  # seq of the first item left out; -1 while everything fitted

    def _put(self, src, a, b):
        self.buf[self.n : self.n + b - a] = src[a:b]
        self.n += b - a

    def add(self, hdr, buf, start, end, first, seq, ack, open_seq):
        last = last_non_ff(buf, start, end)
        tail = start + ((last + 1 - start + ALIGN - 1) // ALIGN) * ALIGN
        tail = end if tail > end else tail
        self._p = first - 1 if first > 0 else 0  # seq of the record before the item
        self._hdr = hdr
        # entries() one at a time with one item of lookahead (a stretch's length is where the next item starts):
        # a list of a sector's ~110 decoded records would hold tens of KB of the board's heap at once.
        prev = None
        for item in entries(buf, start, end, last):
            if prev is not None and not self._item(buf, prev[0], prev[1], item[0], seq, ack, open_seq):
                return False
            prev = item
        if prev is not None and not self._item(buf, prev[0], prev[1], tail, seq, ack, open_seq):
            return False
        return True

    def _item(self, buf, off, rec, nxt, seq, ack, open_seq):
        if rec:
            s, n = rec.seq, rec.size
            keep = s >= seq and (s > ack or s == open_seq)
            self._p = s
        else:
            s = self._p + 1
            n = nxt - off
            keep = s >= seq and s > ack
        if not keep:
            return True
        need_hdr = self._hdr is not None
        room = self.max - self.n - (HEADER_SIZE if need_hdr else 0)
        if n > room:
            if rec or self.n:
                self.next = s
                return False
            n = room - room % ALIGN  # a stretch bigger than any chunk: its first bytes
        if need_hdr:
            self._put(self._hdr, 0, HEADER_SIZE)
            self._hdr = None
        self._put(buf, off, off + n)
        return True

    def result(self, journal_next):
        """(a memoryview of the chunk's bytes, next seq, end)."""
        return memoryview(self.buf)[: self.n], (self.next if self.next >= 0 else journal_next), self.next < 0


def parse_raw(raw):
    """Split a read_raw chunk back into blocks: [(header fields + "segno", "first_seq", "standin",
    [Record], [(offset in chunk, damaged bytes)])]. ValueError when the chunk does not start with a header.
    A header is recognised at an 8-aligned offset by its magic and CRC (so damaged bytes never pass for one)."""
    blocks = []
    o = 0
    bad = -1
    while o + ALIGN <= len(raw):
        h = _block_header(raw, o)
        rec = None
        n = 0
        if h is None and blocks and is_version(raw[o]):
            n = size_of(raw[o + 1])
            if n and o + n <= len(raw):
                try:
                    rec = Record.decode(bytes(raw[o : o + n]))
                except RecordError:
                    rec = None
        if (h is not None or rec is not None) and bad >= 0:
            blocks[-1][2].append((bad, bytes(raw[bad:o])))
            bad = -1
        if h is not None:
            f = h[0]
            f["segno"], f["first_seq"], f["standin"] = h[1], h[2], h[3]
            blocks.append((f, [], []))
            o += HEADER_SIZE
        elif rec is not None:
            blocks[-1][1].append(rec)
            o += n
        elif not blocks:
            raise ValueError("raw chunk does not start with a segment header")
        else:
            bad = o if bad < 0 else bad
            o += ALIGN
    if bad >= 0 or o < len(raw):
        b = bad if bad >= 0 else o
        if not blocks:
            raise ValueError("raw chunk does not start with a segment header")
        blocks[-1][2].append((b, bytes(raw[b:])))
    return blocks
