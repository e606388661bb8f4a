"""Mounting the LittleFS-only journal: its files, the state file and the replay after the checkpoint (the base of
tunion.fsjournal.FsJournal, which adds the appends, reads and idle work).

    class FsJournal(FsMount): ...          # tunion/fsjournal.py
    j = FsJournal(OsFs(), SegmentHeader(board_id=uid))   # FsMount.__init__ mounts: segments listed, state loaded,
    j.next_seq, j.unresolved()                           # the records after the checkpoint replayed

Split out of fsjournal.py (one idea a module): what boot needs to find the journal's state again, apart from
what the tap path and the depot use. The format and every rule are fsjournal.py's docstring's and docs/journal.md's.
"""
import os
from tunion.journal import Unresolved, UnresolvedList, list_change
from tunion.record import Record, KIND_INTENT
from tunion.outcome import ALL
from tunion.segment import SegmentHeader, SegmentError, HEADER_SIZE, entries, last_non_ff
from tunion.jstate import State


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


class FsMount:
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
        self.term = {}  # segno -> terminal number of its header
        st = self._load_state()
        self.ack = st.ack
        if st.version == 1:
            st.check = st.ack  # a journal from before the list: replay its unacknowledged records once
        self._refusals = {}
        for k in range(min(len(st.counters), len(ALL))):
            if st.counters[k]:
                self._refusals[ALL[k]] = st.counters[k]
        self.lost = list(st.lost)
        self._no_tac = {}
        for card, n in st.no_tac:
            self._no_tac[card] = n
        for kind, k in (("unresolved_overflow", 0), ("unresolved_expired", 1)):
            if self.lost[k]:
                self.faults.append((kind, 0, self.lost[k], "%d intents left the unresolved list unsettled" % self.lost[k]))
        names = []
        for name in self.fs.listdir(self.root):
            if len(name) == 9 and name[0] == "s" and name[1:].isdigit():
                names.append(int(name[1:]))
        names.sort()
        # The floor: never below the acknowledgement floor, the saved floor or any record still readable.
        nxt = max(1, st.floor, st.ack + 1, st.check + 1)
        for segno in names:
            raw = _read(self.fs, self._path(segno), HEADER_SIZE)  # only the header: boot reads little
            try:
                h, sn, first = SegmentHeader.decode(raw[:HEADER_SIZE])
                self.term[segno] = h.terminal
            except SegmentError:
                self.faults.append(("lost_header", segno, 0, "segment file header damaged"))
                raw = _read(self.fs, self._path(segno))
                first = 0
                for off, rec in entries(raw, HEADER_SIZE, len(raw), last_non_ff(raw, HEADER_SIZE, len(raw))):
                    if rec:
                        first = first or rec.seq
                        nxt = max(nxt, rec.seq + 1)
                if first == 0:
                    continue
            self.segs.append([segno, first, len(raw)])
            nxt = max(nxt, first)
        self.next_seq = nxt
        recent = []  # (rec, segno): the records after the checkpoint, oldest first
        for k in range(len(self.segs)):
            seg = self.segs[k]
            last = k == len(self.segs) - 1
            if last:
                seg[2] = len(_read(self.fs, self._path(seg[0])))  # the head's true size
            elif self.segs[k + 1][1] - 1 <= st.check:
                continue
            tail = None
            for rec in self._walk(seg):
                tail = rec
                if rec.seq > st.check:
                    recent.append((rec, seg[0]))
            if tail is not None:
                self.next_seq = max(self.next_seq, tail.seq + 1)
                if last and tail.kind == KIND_INTENT:
                    self._open = tail
        self._check = st.check
        self._rebuild(st, recent)
        self._refresh()

    def _rebuild(self, st, recent):
        """The unresolved list: the state file's, then the list changes of the records after its checkpoint."""
        self._list = UnresolvedList(self._list_fault)
        self._segof = {}  # seq -> segno of each entry's intent (that file is kept while the entry lives)
        for raw, term, rejected in st.entries:
            rec = Record.decode(raw)
            self._list.entries.append(Unresolved(rec, term, rejected))
            self._segof[rec.seq] = self._seg_holding(rec.seq)
        intents = {}
        for rec, segno in recent:
            if rec.kind == KIND_INTENT:
                intents[rec.seq] = (rec, segno)
                continue
            ch = list_change(rec)
            if ch is None:
                continue
            if ch[0] > 0 and rec.ref not in self._segof:
                got = intents.get(rec.ref) or self._find_intent(rec.ref)
                if got is None:
                    self._fault(("unresolved_lost", rec.ref, 0, "intent %d of an unresolved outcome unreadable" % rec.ref))
                    continue
                self._add(got[0], got[1], ch[1])
            elif ch[0] < 0:
                self._remove(rec.ref)

    def _seg_holding(self, seq):
        segno = -1
        for seg in self.segs:
            if seg[1] <= seq:
                segno = seg[0]
        return segno

    def _find_intent(self, seq):
        for seg in self.segs:
            if seg[1] <= seq:
                for rec in self._walk(seg):
                    if rec.seq == seq and rec.kind == KIND_INTENT:
                        return rec, seg[0]
        return None

    def _add(self, intent, segno, rejected):
        if segno not in self.term:  # its header is damaged: the terminal in force now stands in (reported)
            self._fault(("terminal_guessed", segno, 0, "header lost: entry %d takes today's terminal" % intent.seq))
        e = Unresolved(intent, self.term.get(segno, self.header.terminal), rejected)
        old = self._list.add(e)
        if old is not None:
            self._segof.pop(old.seq, None)
        if old is not e:
            self._segof[intent.seq] = segno
        self._dirty = True

    def _remove(self, seq):
        e = self._list.remove(seq)
        if e is not None:
            self._segof.pop(seq, None)
            self._dirty = True
        return e

    def _list_fault(self, kind, seq, detail):
        self._fault((kind, seq, 0, detail))
        self.lost[0 if kind == "unresolved_overflow" else 1] += 1
        self._dirty = True

    def _load_state(self):
        try:
            b = _read(self.fs, self.root + "/state")
        except OSError:
            return State()
        try:
            return State.decode(b)
        except ValueError:
            self.faults = [("state", 0, 0, "state file damaged: acknowledgement floor and counters reset")]
            return State()

    def _save_state(self):
        st = State()
        st.ack = self.ack
        st.floor = self.next_seq
        st.check = self.next_seq - 1  # every list change so far is in this file
        st.lost = list(self.lost)
        st.counters = [self._refusals.get(s, 0) for s in ALL]
        for e in self._list.entries:
            st.entries.append((bytes(e.intent.encode()), e.terminal, e.rejected))
        for card in self._no_tac:
            st.no_tac.append((card, self._no_tac[card]))
        b = st.encode()
        tmp = self.root + "/state.new"
        f = self.fs.open(tmp, "wb")
        try:
            f.write(b)
        finally:
            f.close()
        self.fs.rename(tmp, self.root + "/state")
        self._dirty = False
        self._check = st.check

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

    def _refresh(self):
        # statvfs walks the whole LittleFS (lfs_fs_size): done at mount and in idle(), never during a tap.
        s = self.fs.statvfs(self.root)
        self._bsize = s[0]
        self._free = s[0] * s[3]
