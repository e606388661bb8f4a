"""The LittleFS-only journal, for boards with MicroPython's default partition table (no `journal` partition).

    j = FsJournal(OsFs(), SegmentHeader(board_id=uid), reserve=404 * 1024)   # files under /journal
    seq = j.append_intent(rec)     # opened, appended, closed: durable, but LittleFS erases (docs/journal.md)

Same interface as tunion.flashjournal.FlashJournal (the unresolved list included); mounting is tunion/fsmount.py. Each segment is a file `/journal/s<segno>` (the 64-byte
SegmentHeader, then records, at most `seg_bytes`); an append opens the file, writes and closes it, the only way
LittleFS makes it durable, and that copies the file's last block into a freshly erased one: about two erases per
append on the tap path (measured in bench/bench_journal.py). `/journal/state` (tunion/jstate.py: acknowledgement floor, sequence
floor, counters, the unresolved list with its intents and a checkpoint; replaced atomically by write-then-rename)
is rewritten on acknowledge and, when something changed, in idle(): the tap path writes records only, and a mount
replays the records after the checkpoint, so a list change a cut kept from the state file is found again. A segment
file is removed only when it is not the head and holds no open intent and no intent on the list, so the head keeps
the sequence floor; the depot's flashing copies application files and never removes /journal (docs/journal.md).
"""
from tunion.compat import const
from tunion.errors import JournalError
from tunion.journal import check_intent, check_outcome, check_settlement, take, joins_list, no_tac_key
from tunion.record import KIND_COMPLETED, KIND_INTENT, OUTCOME_SIZE
from tunion.outcome import ALL
from tunion.segment import HEADER_SIZE, RawChunk, entries, stored_header, first_segment
from tunion.fsmount import FsMount, OsFs, _read  # noqa: F401  (OsFs: the callers' `from tunion.fsjournal import OsFs`)


_CHECK_EVERY = const(64)  # idle() saves the state once the checkpoint lags this many records: mount replays ~that
_SLACK_BLOCKS = const(5)  # intent, outcome, copy-on-write slack, and the settlements' reserve (one segment file)


class FsJournal(FsMount):
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

    def intent(self, seq):
        """That intent while unacknowledged (an acknowledged one is not looked for in the segment files)."""
        found = self.read_from(seq, 1)
        return found[0] if found and found[0].seq == seq and found[0].kind == KIND_INTENT else None

    def mount(self):
        FsMount.mount(self)
        self._shown = self.next_seq - 1

    def mark_shown(self, seq):
        """Kept in RAM only (a state-file rewrite per payment would cost LittleFS erases): after a restart every
        payment made before it counts as shown, as before the mark existed (docs/journal.md)."""
        if seq > self._shown:
            self._shown = seq

    def shown(self):
        return self._shown

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
