"""read_raw (issue 8, app.service.records): segment blocks as stored, parsed back with tunion.segment.parse_raw,
on the raw NOR journal, the LittleFS journal and MemoryJournal."""
import pytest

from tunion.flashjournal import FlashJournal
from tunion.fsjournal import FsJournal
from tunion.journal import MemoryJournal
from tunion.segment import SegmentHeader, HEADER_SIZE, parse_raw, standin_header
from sim.nor import NorFlash
from sim.lfsport import LogDevice, LfsPort
from mpcases.journal_cases import header, pay, intent

SS = 512  # 5 payments per NOR segment (journal_cases)
FS_SEG = 1024  # segment files of 13 payments


class Nor:
    name = "nor"

    def __init__(self):
        self.nor = NorFlash(16, SS)
        self.j = FlashJournal(self.nor, header())
        self.j.prepare()

    def reboot(self):
        self.j = FlashJournal(self.nor, header())
        return self.j

    def flip(self, seq, byte=10):
        """Flip a bit inside record `seq`; returns the record's stored bytes after the flip."""
        for i in self.j._order():
            for off, rec in self.j._walk(i):
                if rec.seq == seq:
                    a = i * SS + off
                    self.nor.mem[a + byte] ^= 0x04
                    return bytes(self.nor.mem[a : a + rec.size])
        raise AssertionError("no record %d" % seq)

    def break_header(self):
        i = self.j._order()[0]
        self.nor.mem[i * SS + 5] ^= 0x80


class Fs:
    name = "fs"

    def __init__(self):
        self.fs = LfsPort(LogDevice(48))
        self.j = FsJournal(self.fs, header(), "/journal", FS_SEG, 4 * 4096)

    def reboot(self):
        self.j = FsJournal(self.fs, header(), "/journal", FS_SEG, 4 * 4096)
        return self.j

    def _edit(self, segno, at, bit):
        path = "/journal/s%08d" % segno
        raw = bytearray(self.fs.read_file(path))
        raw[at] ^= bit
        with self.fs.lfs.open(path, "wb") as f:
            f.write(raw)
        return raw

    def flip(self, seq, byte=10):
        for seg in self.j.segs:
            raw = self.fs.read_file("/journal/s%08d" % seg[0])
            o = HEADER_SIZE
            for rec in self.j._walk(seg):
                if rec.seq == seq:
                    raw = self._edit(seg[0], o + byte, 0x04)
                    return bytes(raw[o : o + rec.size])
                o += rec.size
        raise AssertionError("no record %d" % seq)

    def break_header(self):
        self._edit(self.j.segs[0][0], 5, 0x80)


class Mem:
    name = "mem"

    def __init__(self):
        self.j = MemoryJournal(terminal=header().terminal)


FLASH = [Nor, Fs]
ALL = [Nor, Fs, Mem]


def read_all(j, seq=1, max_bytes=4096):
    """Every chunk from seq until end: [(fields, [Record], [(off, bytes)])], checking sizes and next/end."""
    blocks = []
    n = 0
    while True:
        raw, nxt, end = j.read_raw(seq, max_bytes)
        assert len(raw) <= max_bytes
        got = parse_raw(raw)
        for f, recs, bad in got:
            assert all(r.seq >= seq and r.seq < nxt for r in recs)
        blocks += got
        if end:
            assert nxt == j.next_seq
            assert j.read_raw(nxt, max_bytes)[0] == b""
            return blocks
        assert raw and nxt > seq or (got and got[0][2]), "a chunk that is not the end makes progress"
        seq = nxt
        n += 1
        assert n < 10000


def records(blocks):
    return [r for f, recs, bad in blocks for r in recs]


def damage(blocks):
    return [b for f, recs, bad in blocks for off, b in bad]


def expected(j):
    return [bytes(r.encode()) for r in j.read_from(1, 10**6)]


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.name)
@pytest.mark.parametrize("max_bytes", [4096, 256])
def test_every_record_once_in_order_with_its_header(kind, max_bytes):
    k = kind()
    j = k.j
    for n in range(30):
        pay(j, n)
    if hasattr(j, "set_header"):
        j.set_header(SegmentHeader(header().board_id, line="B13", terminal=b"\x00\x00\x00\x09\x99\x99"))
    for n in range(30, 40):
        pay(j, n)
    s = j.append_intent(intent(99))  # the open intent is read too
    blocks = read_all(j, 1, max_bytes)
    recs = records(blocks)
    assert [bytes(r.encode()) for r in recs] == expected(j) and [r.seq for r in recs] == list(range(1, s + 1))
    assert damage(blocks) == []
    for f, rs, bad in blocks:
        assert rs and f["first_seq"] <= rs[0].seq and not f["standin"]
        if kind is not Mem:
            assert f["line"] == ("B12" if rs[-1].seq <= 60 else "B13")
            assert f["terminal"] == (header().terminal if rs[-1].seq <= 60 else b"\x00\x00\x00\x09\x99\x99")
    if kind is not Mem:
        segnos = [f["segno"] for f, rs, bad in blocks]
        assert segnos == sorted(segnos) and len(set(segnos)) > 2  # across segment boundaries


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.name)
def test_acknowledged_records_are_not_sent(kind):
    k = kind()
    j = k.j
    for n in range(20):
        pay(j, n)
    j.acknowledge(17)
    assert [r.seq for r in records(read_all(j, 1))] == list(range(18, 41))
    assert [r.seq for r in records(read_all(j, 30))] == list(range(30, 41))
    j.acknowledge(40)
    raw, nxt, end = j.read_raw(1, 4096)
    assert raw == b"" and nxt == 41 and end


@pytest.mark.parametrize("kind", FLASH, ids=lambda k: k.name)
def test_damaged_record_reaches_the_reader_as_damage(kind):
    k = kind()
    for n in range(10):
        pay(k.j, n)
    stored = k.flip(3)
    j = k.reboot()
    for max_bytes in (4096, 256):
        blocks = read_all(j, 1, max_bytes)
        assert [r.seq for r in records(blocks)] == [1, 2] + list(range(4, 21))
        assert damage(blocks) == [stored]  # the raw bytes as on flash, once
    # Reading from just after record 2 starts with the damage; from 4 it is behind the reader.
    assert damage(read_all(j, 3)) == [stored] and damage(read_all(j, 4)) == []
    j.acknowledge(3)
    assert damage(read_all(j, 1)) == []


@pytest.mark.parametrize("kind", FLASH, ids=lambda k: k.name)
def test_damaged_header_reaches_the_reader_as_a_standin(kind):
    k = kind()
    for n in range(20):
        pay(k.j, n)
    k.break_header()
    j = k.reboot()
    assert "lost_header" in [f[0] for f in j.faults]
    blocks = read_all(j, 1)
    assert [r.seq for r in records(blocks)] == list(range(1, 41))
    f = blocks[0][0]
    assert f["standin"] and f["segno"] == 0 and f["first_seq"] == 1 and f["line"] == "B12"
    assert not any(b[0]["standin"] for b in blocks[1:])
    raw = j.read_raw(1, 4096)[0]
    assert bytes(raw[:HEADER_SIZE]) == bytes(standin_header(header(), 1))
    with pytest.raises(Exception):
        SegmentHeader.decode(raw[:HEADER_SIZE])  # a stand-in never passes for a stored header


def test_torn_write_tombstone_reaches_the_reader():
    from sim.nor import PowerCut

    k = Nor()
    for n in range(2):
        pay(k.j, n)
    k.nor.cut_at = (k.nor.ops, ("prog", 20, 0x0F))  # intent 5 cut after 20 bytes and half a byte
    with pytest.raises(PowerCut):
        k.j.append_intent(intent(9))
    k.nor.cut_at = None
    j = k.reboot()  # zeroes the torn bytes (a tombstone)
    pay(j, 10)
    blocks = read_all(j, 1)
    assert [r.seq for r in records(blocks)] == [1, 2, 3, 4, 6, 7]
    assert damage(blocks) == [bytes(24)]


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.name)
def test_bad_arguments_and_a_record_is_never_cut(kind):
    k = kind()
    for n in range(3):
        pay(k.j, n)
    with pytest.raises(ValueError):
        k.j.read_raw(1, 100)
    raw, nxt, end = k.j.read_raw(1, 64 + 48 + 24 + 47)  # room for intent 1, outcome 2 and not intent 3
    assert len(raw) == 64 + 72 and nxt == 3 and not end
    assert [r.seq for r in records(parse_raw(raw))] == [1, 2]


def test_parser_rejects_a_chunk_without_a_header():
    with pytest.raises(ValueError):
        parse_raw(bytes(intent(1).encode()))
    assert parse_raw(b"") == []


def test_a_stretch_bigger_than_a_chunk_sends_its_first_bytes_and_reading_goes_on():
    k = Nor()
    for n in range(5):
        pay(k.j, n)
    stored = b"".join(k.flip(s) for s in range(3, 9))  # 216 damaged bytes back to back: more than 256 - 64
    j = k.reboot()
    blocks = read_all(j, 1, 256)
    assert [r.seq for r in records(blocks)] == [1, 2, 9, 10]
    assert damage(blocks) == [stored[:192]]
    assert damage(read_all(j, 1, 4096)) == [stored]  # a 4 KB chunk holds any stretch of a 4 KB sector
