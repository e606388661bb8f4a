"""The LittleFS-only journal, for boards with MicroPython's default partition table (no `journal` partition).

    j = FsJournal(OsFs(), SegmentHeader(board_id=uid), reserve=404 * 1024)   # files under /journal
    seq = j.append_intent(rec)     # opened, appended, closed: durable, but LittleFS erases (docs/journal.md)

Same interface as tunion.flashjournal.FlashJournal (the unresolved list included). Each segment is a file `/journal/s<segno>` (the 64-byte
SegmentHeader, then records, at most `seg_bytes`); an append opens the file, writes and closes it, the only way
LittleFS makes it durable, and that copies the file's last block into a freshly erased one: about two erases per
append on the tap path (measured in bench/bench_journal.py). `/journal/state` (tunion/jstate.py: acknowledgement floor, sequence
floor, counters, the unresolved list with its intents and a checkpoint; replaced atomically by write-then-rename)
is rewritten on acknowledge and, when something changed, in idle(): the tap path writes records only, and a mount
replays the records after the checkpoint, so a list change a cut kept from the state file is found again. A segment
file is removed only when it is not the head and holds no open intent and no intent on the list, so the head keeps
the sequence floor; the depot's flashing copies application files and never removes /journal (docs/journal.md).
"""
import os
from tunion.compat import const
from tunion.errors import JournalError
from tunion.journal import check_intent, check_outcome, check_settlement, take, joins_list, list_change, no_tac_key
from tunion.journal import Unresolved, UnresolvedList
from tunion.record import Record, KIND_INTENT, KIND_COMPLETED, OUTCOME_SIZE
from tunion.outcome import ALL
from tunion.segment import SegmentHeader, SegmentError, HEADER_SIZE, entries, last_non_ff
from tunion.segment import RawChunk, stored_header, first_segment
from tunion.jstate import State

_CHECK_EVERY = const(64)  # idle() saves the state once the checkpoint lags this many records: mount replays ~that
_SLACK_BLOCKS = const(5)  # intent, outcome, copy-on-write slack, and the settlements' reserve (one segment file)


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
        # A replacement file, plus a block for the intent, a block for its outcome, a block of slack for
        # LittleFS's copy-on-write metadata, and two for MAX_UNRESOLVED settlements (384 bytes, perhaps in a new
        # segment file). _free is the figure of the last idle(), less a block per segment file opened since.
        return self._free >= self.reserve + _SLACK_BLOCKS * self._bsize

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
        intent = self._open
        self._open = None
        if joins_list(rec):  # RAM only: the state file is written in idle(); a mount replays this record
            self._add(intent, self._seg_holding(intent.seq), rec.kind == KIND_COMPLETED)
        return seq

    def append_settlement(self, rec):
        check_settlement(self._open, self._list.entries, rec)
        new = not self.segs or self.segs[-1][2] + OUTCOME_SIZE > self.seg_bytes
        try:
            seq = self._append(rec, new)  # has_room() kept the reserve for it
        except OSError as e:
            raise JournalError("settlement not stored: %s" % e)
        segno = self._segof.get(rec.ref)
        old = self._remove(rec.ref)
        if joins_list(rec) and old is not None and segno is not None:  # settled with MAC2 rejected: stays, rejected
            self._add(old.intent, segno, True)
        return seq

    def unresolved(self):
        return list(self._list.entries)

    def open_terminal(self):
        """The terminal in the open intent's segment header (in force when it was written)."""
        if self._open is not None:
            segno = self._seg_holding(self._open.seq)
            return self.term.get(segno, self.header.terminal)
        return self.header.terminal

    def drop_unresolved(self, seq, why):
        e = self._remove(seq)
        if e is not None and not e.rejected:
            self._list_fault("unresolved_expired", seq, "intent %d left the unresolved list unsettled (%s)" % (seq, why))

    def count_no_tac(self, card_no):
        k = no_tac_key(self._no_tac, card_no)
        self._no_tac[k] = self._no_tac.get(k, 0) + 1
        self._dirty = True  # saved by idle(), like the refusal counters

    def no_tac_counts(self):
        return dict(self._no_tac)

    def losses(self):
        return self.lost[0], self.lost[1]

    def open_intent(self):
        return self._open

    def read_from(self, seq, limit=100):
        out = []
        open_seq = self._open.seq if self._open is not None else -1
        for seg in self.segs[first_segment([g[1] for g in self.segs], seq) :]:
            if take(out, self._walk(seg), seq, self.ack, open_seq, limit):
                break
        return out

    def read_raw(self, seq, max_bytes):
        """(bytes, next_seq, end): segment files as stored from `seq` on (tunion.segment.RawChunk; a damaged header
        gets a stand-in), at most max_bytes; parse with tunion.segment.parse_raw."""
        c = RawChunk(max_bytes)
        open_seq = self._open.seq if self._open is not None else -1
        for seg in self.segs[first_segment([g[1] for g in self.segs], seq) :]:
            raw = _read(self.fs, self._path(seg[0]))
            if not c.add(stored_header(raw, self.header, seg[1]), raw, HEADER_SIZE, len(raw), seg[1], seq, self.ack, open_seq):
                break
        return c.result(self.next_seq)

    def acknowledge(self, upto_seq):
        upto = min(upto_seq, self.next_seq - 1)
        if upto <= self.ack:
            return
        self.ack = upto
        self._save_state()  # durable (the list too) before any segment file is removed
        keep = {}  # files holding the open intent or an intent on the unresolved list
        for seq in self._segof:
            keep[self._segof[seq]] = 1
        if self._open is not None:
            keep[self._seg_holding(self._open.seq)] = 1
        k = 0
        while k < len(self.segs) - 1:
            seg, nxt = self.segs[k], self.segs[k + 1]
            if nxt[1] - 1 > self.ack:
                break
            if seg[0] in keep:
                k += 1
                continue
            self.fs.remove(self._path(seg[0]))
            self.segs.pop(k)
        self._refresh()

    def count_refusal(self, status):
        ALL.index(status)  # ValueError for a status that is not an outcome
        self._refusals[status] = self._refusals.get(status, 0) + 1
        self._dirty = True  # saved by idle(): the tap path writes records only

    def refusals(self):
        return dict(self._refusals)

    # ---- housekeeping --------------------------------------------------------------------------------------
    def idle(self, budget=1):
        """Between taps: save the state when counters or the list changed or the checkpoint lags _CHECK_EVERY
        records (write and rename: LittleFS erases), refresh the free space."""
        if self._dirty or self.next_seq - 1 - self._check >= _CHECK_EVERY:
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
