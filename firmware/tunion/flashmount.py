"""The raw journal's mount: the partition read back after a reboot or a power cut (tunion.flashjournal builds on it).

    j = FlashJournal(dev, header)     # FlashMount.__init__ mounts: sector states, head, next_seq, open intent, list
    j.faults                          # what the mount found damaged, torn or lost

Mount rules (issue 7; docs/journal.md "Mount"): next_seq is never below the acknowledgement floor, the sequence
floor, the list's checkpoint, a pin, or any seq a readable record holds (acknowledged ones included); a sector with
a damaged header is reported (`lost_header`) and read without it while it holds any valid record, and is erased
only by the rules every segment follows (all acknowledged, not the head, no open intent or list entry in it); the
open intent is the newest record overall, by seq, when it is an intent, whichever sector it is in. The unresolved
list is the pins (tunion/jpins.py: one 48-byte read each) and the list changes of the records after the checkpoint.
"""
from tunion.compat import const
from tunion.journal import Unresolved, UnresolvedList, list_change
from tunion.record import Record, RecordError, KIND_INTENT, INTENT_SIZE, MAX_SIZE, size_of
from tunion.outcome import ALL
from tunion.segment import SegmentHeader, SegmentError, HEADER_SIZE, entries, last_non_ff, write_point, is_blank
from tunion.jmeta import MetaStore, TAG_ACK, TAG_FLOOR, TAG_REFUSAL, TAG_CHECK
from tunion.jpins import Pins, LOST_OVERFLOW, LOST_EXPIRED

# Sector states
UNKNOWN = const(0)  # header reads blank; not yet checked to be blank all through
READY = const(1)  # verified or freshly erased: may be opened on the tap path
SEG = const(2)  # a valid segment header
LOSTHDR = const(3)  # damaged header, but holds valid records: kept, read by salvage
FREEABLE = const(4)  # every record acknowledged, nothing pinned: erase when idle
DIRTY = const(5)  # torn, half erased or foreign data, no valid record: erase when idle
META_SECTORS = const(2)  # sectors 0 and 1 hold the MetaStore
# A sector is checked blank 256 bytes at a time (a C compare per slice) against this, not against a sector-long
# b"\xff" * 4096 kept for the journal's life: 4 KB of the ESP32's ~100 KB heap (docs/performance.md, heap).
_FF_LEN = const(256)
_FF = b"\xff" * _FF_LEN


class FlashMount:
    def __init__(self, dev, header=None):
        self.dev = dev
        self.ss = dev.ioctl(5, 0)
        self.count = dev.ioctl(4, 0)
        if self.count < META_SECTORS + 2:
            raise ValueError("a flash journal needs at least 4 sectors")
        self.header = header if header is not None else SegmentHeader()
        self._buf = bytearray(self.ss)
        self._rec = bytearray(MAX_SIZE)  # preallocated: the tap path encodes into it
        self._hdr = bytearray(HEADER_SIZE)
        self._one = bytearray(INTENT_SIZE)
        self.meta = MetaStore(dev, 0, 1)
        self.mount()

    # ---- mount -------------------------------------------------------------------------------------------
    def mount(self):
        n = self.count
        self.faults = []
        self._fault_keys = {}
        self.state = [READY] * n
        self.segno = [-1] * n
        self.first = [0] * n
        self.term = [None] * n  # each segment's terminal number (its header's)
        self.head = -1
        self.wp = HEADER_SIZE
        self._open = None
        self._open_loc = None  # (sector, offset) of the open intent
        self._new_segment = False  # the next intent opens a segment (header changed, floor raised)
        self._behind = False  # newer records than the head's sit in a salvaged sector: the next record opens one
        self._unsaved = {}  # refusal counters not yet in flash (meta sector full on the tap path)
        self._unsaved_shown = 0  # a shown mark likewise (FlashJournal.mark_shown)
        self.meta.load()
        self.ack = self.meta.get(TAG_ACK, 0)
        self._refusals = {}
        for k in self.meta.values:
            if k[0] == TAG_REFUSAL and k[1] < len(ALL):
                self._refusals[ALL[k[1]]] = self.meta.values[k]
        self.pins = Pins(self.meta)
        pinned, released = self.pins.load()
        check = self.meta.get(TAG_CHECK, 0)
        if (TAG_CHECK, 0) not in self.meta.values:
            check = self.ack  # a journal from before the list: replay its unacknowledged records once
        if self.pins.lost[0]:
            self._fault("unresolved_overflow", 0, self.pins.lost[0], "%d intents left the full unresolved list unsettled" % self.pins.lost[0])
        if self.pins.lost[1]:
            self._fault("unresolved_expired", 0, self.pins.lost[1], "%d unknown intents aged out of the unresolved list" % self.pins.lost[1])
        # The floor: never below what the depot acknowledged, the checkpoint, a pin or any record still readable.
        nxt = max(1, self.meta.get(TAG_FLOOR, 0), self.ack + 1, check + 1)
        for p in pinned:
            nxt = max(nxt, p[0] + 1)
        # (rec, sector, offset) of the list changes after the checkpoint, which the pins may lack: only those, not
        # every record after it (their intents are read again where needed, rarely): a journal whose checkpoint
        # lags (a stuck meta sector, one from before the list) must still mount in a bounded heap.
        recent = []
        tails = []  # (rec, sector, offset): the last valid record of the head and of each salvaged sector
        hb = self._hdr
        last_term = None
        for i in range(META_SECTORS, n):
            self.dev.readblocks(i, hb, 0)
            if is_blank(hb):
                self.state[i] = UNKNOWN
                continue
            try:
                h, segno, first = SegmentHeader.decode(hb)
            except SegmentError:
                nxt = max(nxt, self._salvage(i, check, recent, tails))
                continue
            self.state[i] = SEG
            self.segno[i] = segno
            self.first[i] = first
            # One object per distinct terminal, not one per sector: a header's bytes kept for each of ~220
            # sectors, each allocated amid that sector's garbage, left the heap in ~800-byte holes after a full
            # journal's mount (a 2 KB block then failed with 200 KB free; docs/performance.md, depot).
            t = h.terminal
            if t == self.header.terminal:
                t = self.header.terminal
            elif t == last_term:
                t = last_term
            last_term = t
            self.term[i] = t
            if self.head < 0 or segno > self.segno[self.head]:
                self.head = i
            nxt = max(nxt, first)
        self.next_seq = nxt
        head_last = 0
        prev = -1
        if self.head >= 0:
            t = self._mount_head(check, recent)
            if t is None:
                prev = self._previous(self.head)
                if prev >= 0:  # an intent whose outcome opened a new segment, cut before the outcome landed
                    for off, rec in self._walk(prev):
                        t = (rec, prev, off)
                        if rec.seq > check and list_change(rec) is not None:
                            recent.append(t)
            if t is not None:
                tails.append(t)
                head_last = t[0].seq
        newest = None
        for t in tails:
            if newest is None or t[0].seq > newest[0].seq:
                newest = t
            if t[1] != self.head and self.state[t[1]] == LOSTHDR and t[0].seq > head_last:
                self._behind = True  # do not append behind newer records
        if newest is not None and newest[0].kind == KIND_INTENT and newest[0].seq > 0:
            self._open = newest[0]
            self._open_loc = (newest[1], newest[2])
        self._check_segnos()
        order = self._order()
        for k in range(len(order) - 1):  # older segments with records after the checkpoint (rarely any)
            i = order[k]
            if self.state[i] == SEG and i != self.head and i != prev and self.first[order[k + 1]] - 1 > check:
                for off, rec in self._walk(i):
                    if rec.seq > check and list_change(rec) is not None:
                        recent.append((rec, i, off))
        self._rebuild(pinned, released, recent)
        self._mark_freeable()

    def _salvage(self, i, check, recent, tails):
        """A sector whose header is damaged: kept and read without it while it holds any valid record (its
        records may be unacknowledged, the open intent or on the unresolved list); their highest seq (acknowledged
        ones included) returns, +1 for unreadable bytes after it (a record that may have been seen)."""
        buf = self._load(i)
        last = last_non_ff(buf, HEADER_SIZE, self.ss)
        lo = hi = 0
        tail = None
        junk = False
        for off, rec in entries(buf, HEADER_SIZE, self.ss, last):
            if not rec:
                junk = True
                continue
            junk = False
            if lo == 0 or rec.seq < lo:
                lo = rec.seq
            if rec.seq > hi:
                hi = rec.seq
                tail = (rec, i, off)
            if rec.seq > check and list_change(rec) is not None:
                recent.append((rec, i, off))
        if lo == 0:
            self.state[i] = DIRTY
            return 0
        self._fault("lost_header", i, 0, "segment header damaged; records %d..%d read without it" % (lo, hi))
        self.state[i] = LOSTHDR
        self.first[i] = lo
        tails.append(tail)
        return hi + (2 if junk else 1)

    def _mount_head(self, check, recent):
        h = self.head
        buf = self._load(h)
        last = last_non_ff(buf, HEADER_SIZE, self.ss)
        end = HEADER_SIZE
        tail = None  # the last valid record in the head
        tail_off = 0
        torn = -1
        tomb = False
        for off, rec in entries(buf, HEADER_SIZE, self.ss, last):
            if not rec:  # damaged, or a tombstone (False)
                torn = off
                tomb = rec is False
                continue
            torn = -1
            tail = rec
            tail_off = off
            end = off + rec.size
            if rec.seq > check and list_change(rec) is not None:
                recent.append((rec, h, off))
        self.wp = write_point(end, last, HEADER_SIZE)
        if tail is not None:
            self.next_seq = max(self.next_seq, tail.seq + 1)
        if torn >= 0:
            # Unreadable bytes after the last record: their sequence number may have been seen, so it is not
            # reused (idempotent over repeated boots). When the record's last byte is still erased it is a write
            # cut short: its bytes are programmed to zero (a tombstone), so every later walk knows the skipped
            # number is a torn write, not a lost record. A whole record that fails its CRC stays as it is and is
            # reported as damage.
            burnt = (tail.seq if tail is not None else self.first[h] - 1) + 1
            n = size_of(buf[torn + 1]) or MAX_SIZE
            partial = tomb or torn + n > self.ss or buf[torn + n - 1] == 0xFF
            self._fault("torn" if partial else "damaged", h, torn, "unfinished or damaged record; seq %d skipped" % burnt)
            self.next_seq = max(self.next_seq, burnt + 1)
            if partial and not tomb and self.wp > torn:
                self.dev.writeblocks(h, bytes(self.wp - torn), torn)
        return (tail, h, tail_off) if tail is not None else None

    def _rebuild(self, pinned, released, recent):
        """The unresolved list: the pins, then the list changes of the records after the checkpoint (an
        `unresolved` or MAC2-rejected outcome adds its intent, a settlement removes it)."""
        self._list = UnresolvedList(self._list_fault)
        self._loc = {}  # seq -> (sector, offset) of each entry's intent
        pinned.sort()
        for seq, sector, off, rejected in pinned:
            got = self._intent_at(seq, sector, off)
            if got is None:
                self._fault("unresolved_lost", seq, 0, "intent %d of the unresolved list unreadable: entry dropped" % seq)
                self.pins.release(seq)
                continue
            self._list.entries.append(Unresolved(got[0], self._terminal(got[1]), rejected))
            self._loc[seq] = (got[1], got[2])
        changed = False
        recent.sort(key=lambda t: t[0].seq)
        for t in recent:
            rec = t[0]
            ch = list_change(rec)
            if ch is None or rec.ref in released:
                continue
            if ch[0] > 0 and rec.ref not in self._loc:
                got = self._find_intent(rec.ref)
                if got is None:
                    self._fault("unresolved_lost", rec.ref, 0, "intent %d of an unresolved outcome unreadable" % rec.ref)
                    continue
                self._add(got[0], got[1], got[2], ch[1])
                changed = True
            elif ch[0] < 0 and rec.ref in self._loc:
                self._remove(rec.ref)
                changed = True
        if changed:
            self.pins.checkpoint(self.next_seq - 1)

    def _intent_at(self, seq, sector, off):
        """(Record, sector, offset) of intent seq, read where its pin says (one record), else searched."""
        if META_SECTORS <= sector < self.count and (self.state[sector] == SEG or self.state[sector] == LOSTHDR):
            if off + INTENT_SIZE <= self.ss:
                self.dev.readblocks(sector, self._one, off)
                try:
                    rec = Record.decode(self._one)
                    if rec.kind == KIND_INTENT and rec.seq == seq:
                        return rec, sector, off
                except RecordError:
                    pass
        return self._find_intent(seq)

    def _find_intent(self, seq):
        order = self._order()
        for k in range(len(order) - 1, -1, -1):
            i = order[k]
            if self.first[i] <= seq:
                for off, rec in self._walk(i):
                    if rec.seq == seq and rec.kind == KIND_INTENT:
                        return rec, i, off
        return None

    def _terminal(self, sector):
        """The terminal an intent in this sector was written under: its header's; for a salvaged sector the
        nearest older readable header's (reported)."""
        if self.term[sector] is not None:
            return self.term[sector]
        best = -1
        for i in range(META_SECTORS, self.count):
            if self.term[i] is not None and self.state[i] == SEG and self.first[i] <= self.first[sector]:
                if best < 0 or self.first[i] > self.first[best]:
                    best = i
        t = self.term[best] if best >= 0 else self.header.terminal
        self._fault("terminal_guessed", sector, 0, "header lost: unresolved entries take terminal %s" % bytes(t).hex())
        return t

    def _add(self, intent, sector, off, rejected):
        e = Unresolved(intent, self._terminal(sector), rejected)
        old = self._list.add(e)
        if old is not None:
            self._loc.pop(old.seq, None)
            self.pins.release(old.seq)
        if old is not e:
            self._loc[intent.seq] = (sector, off)
            self.pins.pin(intent.seq, sector, off, rejected)

    def _remove(self, seq):
        e = self._list.remove(seq)
        if e is not None:
            self._loc.pop(seq, None)
            self.pins.release(seq)
        return e

    def _list_fault(self, kind, seq, detail):
        self._fault(kind, seq, 0, detail)
        self.pins.count_lost(LOST_OVERFLOW if kind == "unresolved_overflow" else LOST_EXPIRED)

    def _previous(self, i):
        order = self._order()
        k = order.index(i) if i in order else -1
        return order[k - 1] if k > 0 else -1

    def _check_segnos(self):
        segs = [i for i in range(META_SECTORS, self.count) if self.state[i] == SEG]
        segs.sort(key=lambda i: self.segno[i])
        for k in range(1, len(segs)):
            a, b = segs[k - 1], segs[k]
            if self.segno[b] - self.segno[a] > 1 and self.first[b] - 1 > self.ack:
                self._fault(
                    "lost_segment",
                    b,
                    0,
                    "segments %d..%d missing: records before %d lost" % (self.segno[a] + 1, self.segno[b] - 1, self.first[b]),
                )

    # ---- helpers -----------------------------------------------------------------------------------------
    def _fault(self, kind, sector, off, detail):
        key = (kind, sector, off)
        if key not in self._fault_keys:
            self._fault_keys[key] = 1
            self.faults.append((kind, sector, off, detail))

    def _load(self, i):
        self.dev.readblocks(i, self._buf, 0)
        return self._buf

    def _blank(self, i):
        """True when sector i is erased all through (a few small memoryview slices, no sector-sized constant)."""
        mv = memoryview(self._load(i))
        n = self.ss - self.ss % _FF_LEN
        for k in range(0, n, _FF_LEN):
            if not _FF == mv[k:k + _FF_LEN]:
                return False
        return is_blank(mv[n:])

    def _order(self):
        """Sectors holding records (or the head), oldest first."""
        live = [i for i in range(META_SECTORS, self.count) if self.state[i] == SEG or self.state[i] == LOSTHDR]
        live.sort(key=lambda i: (self.first[i], self.segno[i]))
        return live

    def _walk(self, i):
        """Yield the valid records of sector i in order; damaged stretches and sequence gaps become faults."""
        buf = self._load(i)
        last = last_non_ff(buf, HEADER_SIZE, self.ss)
        expect = self.first[i] if self.state[i] == SEG else 0  # a salvaged segment's first seq is unknown
        tomb = False
        for off, rec in entries(buf, HEADER_SIZE, self.ss, last):
            if rec is None:
                self._fault("damaged", i, off, "unreadable bytes skipped")
                tomb = False
                continue
            if rec is False:
                tomb = True
                continue
            if rec.seq < expect:
                self._fault("order", i, off, "seq %d after %d: ignored" % (rec.seq, expect - 1))
                continue
            if rec.seq > expect and expect:
                if tomb and rec.seq == expect + 1:
                    self._fault("torn", i, off, "seq %d skipped after an interrupted write" % expect)
                else:
                    self._fault("gap", i, off, "records %d..%d missing" % (expect, rec.seq - 1))
            tomb = False
            expect = rec.seq + 1
            yield off, rec

    def _mark_freeable(self):
        order = self._order()
        keep = {}  # sectors that hold the open intent or an intent on the unresolved list
        for seq in self._loc:
            keep[self._loc[seq][0]] = 1
        if self._open_loc is not None:
            keep[self._open_loc[0]] = 1
        for k in range(len(order) - 1):
            i = order[k]
            if self.first[order[k + 1]] - 1 > self.ack:
                break  # unacknowledged from here on
            if i != self.head and i not in keep:
                self.state[i] = FREEABLE

    def _ready(self, want):
        """How many sectors (up to want) may be opened now without an erase (reads only)."""
        got = 0
        for i in range(META_SECTORS, self.count):
            st = self.state[i]
            if st == UNKNOWN:
                st = READY if self._blank(i) else DIRTY
                self.state[i] = st
            if st == READY:
                got += 1
                if got >= want:
                    break
        return got

    def _find_ready(self):
        """A sector that may be opened now without an erase, in ring order after the head (reads only)."""
        n = self.count - META_SECTORS
        start = self.head if self.head >= 0 else META_SECTORS
        for k in range(1, n + 1):
            i = META_SECTORS + (start - META_SECTORS + k) % n
            st = self.state[i]
            if st == UNKNOWN:
                st = READY if self._blank(i) else DIRTY
                self.state[i] = st
            if st == READY:
                return i
        return -1

