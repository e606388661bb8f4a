"""The LittleFS-only journal, for boards with MicroPython's default partition table (no `journal` partition).

    j = FsJournal(OsFs(), SegmentHeader(board_id=uid), reserve=404 * 1024)   # files under /journal
    seq = j.append_intent(rec)     # opened, appended, closed: durable, but LittleFS erases (docs/journal.md)

Same interface as tunion.flashjournal.FlashJournal. Each segment is a file `/journal/s<segno>` (the 64-byte
SegmentHeader, then records, at most `seg_bytes`); an append opens the file, writes and closes it, the only way
LittleFS makes it durable, and that copies the file's last block into a freshly erased one: about two erases per
append on the tap path (measured in bench/bench_journal.py). `/journal/state` (acknowledgement floor, sequence
floor, refusal counters; replaced atomically by write-then-rename) is rewritten on acknowledge and, when counters
changed, in idle(). The head segment file is never removed, so it and `state` keep the sequence floor; the depot's
flashing copies application files and never removes /journal (docs/journal.md).
"""
import os
from tunion.compat import const, crc32, u32, put_u32
from tunion.errors import JournalError
from tunion.journal import check_intent, check_outcome, take
from tunion.record import KIND_INTENT
from tunion.outcome import ALL
from tunion.segment import SegmentHeader, SegmentError, HEADER_SIZE, entries, last_non_ff

_STATE_SIZE = const(84)  # magic 4, ack 4, floor 4, 17 counters * 4, CRC 4
_COUNTERS = const(17)  # counters of outcome.ALL[0:17] (statuses appended later are never refusals)


class OsFs:
    """The board's filesystem (the `vfs` LittleFS) through `os` and `open`."""

    def open(self, path, mode="rb"):
        return open(path, mode)

    def remove(self, path):
        os.remove(path)

    def rename(self, src, dst):
        os.rename(src, dst)

    def listdir(self, path="/"):
        return os.listdir(path)

    def mkdir(self, path):
        os.mkdir(path)

    def statvfs(self, path="/"):
        return os.statvfs(path)


def _read(fs, path, n=-1):
    f = fs.open(path, "rb")
    try:
        return f.read(n) if n >= 0 else f.read()
    finally:
        f.close()


class FsJournal:
    def __init__(self, fs=None, header=None, root="/journal", seg_bytes=4096, reserve=404 * 1024):
        self.fs = fs if fs is not None else OsFs()
        self.header = header if header is not None else SegmentHeader()
        self.root = root
        self.seg_bytes = seg_bytes
        self.reserve = reserve  # bytes one configuration or denylist replacement needs
        try:
            self.fs.mkdir(root)
        except OSError:
            pass  # exists
        self.mount()

    def _path(self, segno):
        return "%s/s%08d" % (self.root, segno)

    def mount(self):
        self.faults = []
        self._open = None
        self._new_segment = False
        self._dirty = False
        self.segs = []  # [segno, first_seq, size] oldest first
        st = self._load_state()
        self.ack, floor = st[0], st[1]
        self._refusals = st[2]
        names = []
        for name in self.fs.listdir(self.root):
            if len(name) == 9 and name[0] == "s" and name[1:].isdigit():
                names.append(int(name[1:]))
        names.sort()
        nxt = max(1, floor)
        for segno in names:
            raw = _read(self.fs, self._path(segno), HEADER_SIZE)  # only the header: boot reads little
            try:
                h, sn, first = SegmentHeader.decode(raw[:HEADER_SIZE])
            except SegmentError:
                self.faults.append(("lost_header", segno, 0, "segment file header damaged"))
                raw = _read(self.fs, self._path(segno))
                first = 0
                for off, rec in entries(raw, HEADER_SIZE, len(raw), last_non_ff(raw, HEADER_SIZE, len(raw))):
                    if rec:
                        first = rec.seq
                        break
                if first == 0:
                    continue
            self.segs.append([segno, first, len(raw)])
            nxt = max(nxt, first)
        self.next_seq = nxt
        if self.segs:
            self.segs[-1][2] = len(_read(self.fs, self._path(self.segs[-1][0])))  # the head's true size
            tail = None
            for rec in self._walk(self.segs[-1]):
                tail = rec
            if tail is not None:
                self.next_seq = max(self.next_seq, tail.seq + 1)
                if tail.kind == KIND_INTENT:
                    self._open = tail
        self._refresh()

    def _load_state(self):
        refusals = {}
        try:
            b = _read(self.fs, self.root + "/state")
        except OSError:
            return 0, 0, refusals
        if len(b) != _STATE_SIZE or b[0:4] != b"TJS1" or crc32(b[:80]) & 0xFFFFFFFF != u32(b, 80):
            self.faults = [("state", 0, 0, "state file damaged: acknowledgement floor and counters reset")]
            return 0, 0, refusals
        for k in range(_COUNTERS):
            n = u32(b, 12 + 4 * k)
            if n:
                refusals[ALL[k]] = n
        return u32(b, 4), u32(b, 8), refusals

    def _save_state(self):
        b = bytearray(_STATE_SIZE)
        b[0:4] = b"TJS1"
        put_u32(b, 4, self.ack)
        put_u32(b, 8, self.next_seq)
        for k in range(_COUNTERS):
            put_u32(b, 12 + 4 * k, self._refusals.get(ALL[k], 0))
        put_u32(b, 80, crc32(memoryview(b)[:80]) & 0xFFFFFFFF)
        tmp = self.root + "/state.new"
        f = self.fs.open(tmp, "wb")
        try:
            f.write(b)
        finally:
            f.close()
        self.fs.rename(tmp, self.root + "/state")
        self._dirty = False

    def _walk(self, seg):
        raw = _read(self.fs, self._path(seg[0]))
        expect = seg[1]
        for off, rec in entries(raw, HEADER_SIZE, len(raw), last_non_ff(raw, HEADER_SIZE, len(raw))):
            if not rec:
                self._fault(("damaged", seg[0], off, "unreadable bytes skipped"))
                continue
            if rec.seq < expect:
                self._fault(("order", seg[0], off, "seq %d after %d: ignored" % (rec.seq, expect - 1)))
                continue
            if rec.seq > expect:
                self._fault(("gap", seg[0], off, "records %d..%d missing" % (expect, rec.seq - 1)))
            expect = rec.seq + 1
            yield rec

    def _fault(self, f):
        if f not in self.faults:
            self.faults.append(f)

    def _append(self, rec, new_segment):
        rec.seq = self.next_seq
        raw = rec.encode()
        if new_segment:
            segno = self.segs[-1][0] + 1 if self.segs else 1
            data = bytes(self.header.encode(segno, rec.seq)) + bytes(raw)
            f = self.fs.open(self._path(segno), "wb")
            self.segs.append([segno, rec.seq, 0])
            self._new_segment = False
            self._free -= self._bsize
        else:
            data = raw
            f = self.fs.open(self._path(self.segs[-1][0]), "ab")
        try:
            f.write(data)
        finally:
            f.close()  # the commit: LittleFS makes the append durable here
        self.segs[-1][2] += len(data)
        self.next_seq += 1
        return rec.seq

    # ---- the journal interface -----------------------------------------------------------------------------
    def _refresh(self):
        # statvfs walks the whole LittleFS (lfs_fs_size): done at mount and in idle(), never during a tap.
        s = self.fs.statvfs(self.root)
        self._bsize = s[0]
        self._free = s[0] * s[3]

    def free_bytes(self):
        return self._free

    def has_room(self):
        # A replacement file, plus a block for the intent, a block for its outcome and a block of slack for
        # LittleFS's copy-on-write metadata. _free is the figure of the last idle(), less a block per segment
        # file opened since.
        return self._free >= self.reserve + 3 * self._bsize

    def append_intent(self, rec):
        check_intent(self._open, rec)
        if not self.has_room():
            raise JournalError("journal full")
        new = not self.segs or self._new_segment or self.segs[-1][2] + rec.size + 24 > self.seg_bytes
        try:
            seq = self._append(rec, new)
        except OSError as e:
            raise JournalError("intent not stored: %s" % e)
        self._open = rec
        return seq

    def append_outcome(self, rec):
        check_outcome(self._open, rec)
        try:
            seq = self._append(rec, False)  # the intent left room for it in the same file
        except OSError as e:
            raise JournalError("outcome not stored: %s" % e)
        self._open = None
        return seq

    def open_intent(self):
        return self._open

    def read_from(self, seq, limit=100):
        out = []
        open_seq = self._open.seq if self._open is not None else -1
        k0 = 0
        for k in range(len(self.segs)):
            if self.segs[k][1] <= seq:
                k0 = k
        for seg in self.segs[k0:]:
            if take(out, self._walk(seg), seq, self.ack, open_seq, limit):
                break
        return out

    def acknowledge(self, upto_seq):
        upto = min(upto_seq, self.next_seq - 1)
        if upto <= self.ack:
            return
        self.ack = upto
        self._save_state()  # durable before any segment file is removed
        open_seq = self._open.seq if self._open is not None else -1
        while len(self.segs) > 1:
            seg, nxt = self.segs[0], self.segs[1]
            if nxt[1] - 1 > self.ack or seg[1] <= open_seq < nxt[1]:
                break
            self.fs.remove(self._path(seg[0]))
            self.segs.pop(0)
        self._refresh()

    def count_refusal(self, status):
        ALL.index(status)  # ValueError for a status that is not an outcome
        self._refusals[status] = self._refusals.get(status, 0) + 1
        self._dirty = True  # saved by idle(): the tap path writes records only

    def refusals(self):
        return dict(self._refusals)

    # ---- housekeeping --------------------------------------------------------------------------------------
    def idle(self, budget=1):
        """Between taps: save changed counters (write and rename: LittleFS erases), refresh the free space."""
        if self._dirty:
            self._save_state()
        self._refresh()
        return 0

    def prepare(self):
        return self.idle()

    def set_header(self, header):
        if not header == self.header:
            self.header = header
            self._new_segment = True

    def raise_floor(self, seq):
        if seq > self.next_seq:
            self.next_seq = seq
            self._new_segment = True
        self._save_state()

    def usage(self):
        """(bytes used, bytes total) of the filesystem the journal shares with configuration and denylist."""
        s = self.fs.statvfs(self.root)
        return s[0] * (s[2] - s[3]), s[0] * s[2]

    def warning(self):
        used, total = self.usage()
        return used * 5 >= total * 4

    def pending(self):
        return self.next_seq - 1 - self.ack

    def scan(self):
        count = first = last = 0
        for seg in self.segs:
            if last and seg[1] > last + 1 and seg[1] - 1 > self.ack:
                self._fault(("lost", seg[0], 0, "records %d..%d missing" % (last + 1, seg[1] - 1)))
            for rec in self._walk(seg):
                count += 1
                first = first or rec.seq
                last = rec.seq
        return {"records": count, "first": first, "last": last, "faults": list(self.faults)}

    def __len__(self):
        return self.pending()
