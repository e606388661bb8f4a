"""The journal on a raw NOR flash area (the `journal` partition): records are only programmed during a tap.

    dev = partition.find_journal()                    # or sim.nor.NorFlash(256) in tests
    j = FlashJournal(dev, SegmentHeader(board_id=uid, psam_no=psam.serial, terminal=psam.terminal))
    j.prepare()                                       # at boot: erase what is free (not on the tap path)
    seq = j.append_intent(rec); j.append_outcome(rec.outcome(KIND_COMPLETED, tac=tac))
    j.idle()                                          # between taps: at most one sector erase

Same interface as tunion.journal.MemoryJournal (see there), plus idle()/prepare(), usage(), warning(), scan(),
set_header(), raise_floor(), losses() and `faults`. Layout (docs/journal.md): sectors 0 and 1 hold the MetaStore
(acknowledgement floor, refusal counters, the unresolved list's pins: tunion/jpins.py); every other sector is one
segment: a 64-byte SegmentHeader, then records back to back. Segments are used in ring order; a sector is erased
only when every record in it is acknowledged, it is not the head (the segment being written) and it holds neither
the open intent nor an intent on the unresolved list, so the head's header and records always carry the sequence
floor and every list entry's intent and terminal stay readable. Reserved outcome slot: an intent is programmed
only where INTENT_SIZE + 2 * OUTCOME_SIZE bytes are free in the head, and nothing is written into a segment
between an intent and its outcome, so its outcome (and one retry after a torn outcome write) always fits without
an erase; beyond it has_room() keeps MAX_UNRESOLVED settlements' room (_RESERVE) in programmable flash.
Mount never moves below the acknowledgement floor, the sequence floor, the checkpoint or any seq a readable record
holds; the open intent is the newest record overall when it is an intent, in whatever sector it reads.
"""
from tunion.compat import const
from tunion.errors import JournalError
from tunion.journal import check_intent, check_outcome, check_settlement, take, joins_list, list_change
from tunion.journal import Unresolved, UnresolvedList, MAX_UNRESOLVED
from tunion.record import Record, RecordError, KIND_INTENT, KIND_COMPLETED, INTENT_SIZE, OUTCOME_SIZE, MAX_SIZE
from tunion.record import size_of
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

_META = const(2)  # sectors 0 and 1
_NEED = const(96)  # INTENT_SIZE + 2 * OUTCOME_SIZE (record.py): room an intent needs in the head (the reserved outcome slot)
_RESERVE = const(384)  # MAX_UNRESOLVED * OUTCOME_SIZE: one settlement per list entry, never refused (issue 7)
_CHECK_EVERY = const(32)  # idle() moves the checkpoint once it lags this many records: mount replays at most ~that
_META_LOW = const(8)  # idle() compacts the meta sector when fewer entries are left (the tap path then never finds it full)


class FlashJournal:
    def __init__(self, dev, header=None):
        self.dev = dev
        self.ss = dev.ioctl(5, 0)
        self.count = dev.ioctl(4, 0)
        if self.count < _META + 2:
            raise ValueError("a flash journal needs at least 4 sectors")
        self.header = header if header is not None else SegmentHeader()
        self._buf = bytearray(self.ss)
        self._ff = b"\xff" * self.ss
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
        self.meta.load()
        self.ack = self.meta.get(TAG_ACK, 0)
        self._refusals = {}
        for k in self.meta.values:
            if k[0] == TAG_REFUSAL and k[1] < len(ALL):
                self._refusals[ALL[k[1]]] = self.meta.values[k]
        self.pins = Pins(self.meta)
        pinned, released = self.pins.load()
        check = self.meta.get(TAG_CHECK, 0)
        if self.pins.lost[0]:
            self._fault("unresolved_overflow", 0, self.pins.lost[0], "%d intents left the full unresolved list unsettled" % self.pins.lost[0])
        if self.pins.lost[1]:
            self._fault("unresolved_expired", 0, self.pins.lost[1], "%d unknown intents aged out of the unresolved list" % self.pins.lost[1])
        # The floor: never below what the depot acknowledged, the checkpoint, a pin or any record still readable.
        nxt = max(1, self.meta.get(TAG_FLOOR, 0), self.ack + 1, check + 1)
        for p in pinned:
            nxt = max(nxt, p[0] + 1)
        recent = []  # (rec, sector, offset) with seq > check: the list changes the pins may lack
        tails = []  # (rec, sector, offset): the last valid record of the head and of each salvaged sector
        hb = self._hdr
        for i in range(_META, n):
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
            self.term[i] = h.terminal
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
                        if rec.seq > check:
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
                    if rec.seq > check:
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
            if rec.seq > check:
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
            if rec.seq > check:
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
        intents = {}
        changed = False
        recent.sort(key=lambda t: t[0].seq)
        for t in recent:
            rec = t[0]
            if rec.kind == KIND_INTENT:
                intents[rec.seq] = t
                continue
            ch = list_change(rec)
            if ch is None or rec.ref in released:
                continue
            if ch[0] > 0 and rec.ref not in self._loc:
                got = intents.get(rec.ref) or self._find_intent(rec.ref)
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
        if _META <= sector < self.count and (self.state[sector] == SEG or self.state[sector] == LOSTHDR):
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
        for i in range(_META, self.count):
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
        segs = [i for i in range(_META, self.count) if self.state[i] == SEG]
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

    def _order(self):
        """Sectors holding records (or the head), oldest first."""
        live = [i for i in range(_META, self.count) if self.state[i] == SEG or self.state[i] == LOSTHDR]
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
        for i in range(_META, self.count):
            st = self.state[i]
            if st == UNKNOWN:
                st = READY if self._load(i) == self._ff else DIRTY
                self.state[i] = st
            if st == READY:
                got += 1
                if got >= want:
                    break
        return got

    def _find_ready(self):
        """A sector that may be opened now without an erase, in ring order after the head (reads only)."""
        n = self.count - _META
        start = self.head if self.head >= 0 else _META
        for k in range(1, n + 1):
            i = _META + (start - _META + k) % n
            st = self.state[i]
            if st == UNKNOWN:
                st = READY if self._load(i) == self._ff else DIRTY
                self.state[i] = st
            if st == READY:
                return i
        return -1

    def _open_segment(self):
        i = self._find_ready()
        if i < 0:
            return False
        segno = self.segno[self.head] + 1 if self.head >= 0 else 1
        for k in range(_META, self.count):  # a salvaged sector's records may be newer than the head's number
            if self.segno[k] >= segno:
                segno = self.segno[k] + 1
        self.dev.writeblocks(i, self.header.encode(segno, self.next_seq, self._hdr), 0)
        self.state[i] = SEG
        self.segno[i] = segno
        self.first[i] = self.next_seq
        self.term[i] = self.header.terminal
        self.head = i
        self.wp = HEADER_SIZE
        self._new_segment = False
        self._behind = False
        return True

    def _program(self, rec):
        rec.seq = self.next_seq
        raw = rec.encode(self._rec)
        self.dev.writeblocks(self.head, raw, self.wp)
        self.wp += len(raw)
        self.next_seq += 1
        return rec.seq

    def _room_for(self, n):
        """The head takes n more bytes (else the record opens an erased sector)."""
        return self.head >= 0 and not self._behind and self.wp + n <= self.ss

    # ---- the journal interface -----------------------------------------------------------------------------
    def has_room(self):
        # Room for the intent and its outcome slot, and beyond it for MAX_UNRESOLVED settlements (_RESERVE), all
        # in the head or in sectors already erased: the tap path never waits for an erase.
        per = (self.ss - HEADER_SIZE) // OUTCOME_SIZE
        if self._room_for(_NEED) and not self._new_segment:
            spare, need = (self.ss - self.wp - _NEED) // OUTCOME_SIZE, 0
        else:
            spare, need = (self.ss - HEADER_SIZE - _NEED) // OUTCOME_SIZE, 1
        if spare < MAX_UNRESOLVED:
            need += (MAX_UNRESOLVED - spare + per - 1) // per
        return need == 0 or self._ready(need) >= need

    def append_intent(self, rec):
        check_intent(self._open, rec)
        if not self.has_room():
            raise JournalError("journal full")
        if not self._room_for(_NEED) or self._new_segment:
            if not self._open_segment():
                raise JournalError("journal full")
        loc = (self.head, self.wp)
        seq = self._program(rec)
        self._open = rec
        self._open_loc = loc
        return seq

    def append_outcome(self, rec):
        check_outcome(self._open, rec)
        if not self._room_for(OUTCOME_SIZE) and not self._open_segment():
            raise JournalError("journal full: no erased sector for the outcome")
        seq = self._program(rec)
        intent, loc = self._open, self._open_loc
        self._open = None
        self._open_loc = None
        if joins_list(rec):  # one pin program (and, when nothing is deferred, the checkpoint's)
            self._add(intent, loc[0], loc[1], rec.kind == KIND_COMPLETED)
            self.pins.checkpoint(self.next_seq - 1)
        return seq

    def append_settlement(self, rec):
        check_settlement(self._open, self._list.entries, rec)
        if not self._room_for(OUTCOME_SIZE) and not self._open_segment():  # has_room() kept the reserve for it
            raise JournalError("journal full: no erased sector for the settlement")
        seq = self._program(rec)
        self._remove(rec.ref)
        self.pins.checkpoint(self.next_seq - 1)
        return seq

    def unresolved(self):
        return list(self._list.entries)

    def drop_unresolved(self, seq, why):
        e = self._remove(seq)
        if e is not None:
            if not e.rejected:
                self._list_fault("unresolved_expired", seq, "intent %d left the unresolved list unsettled (%s)" % (seq, why))
            self.pins.checkpoint(self.next_seq - 1)

    def count_no_tac(self, card_no):
        self.pins.count_no_tac(card_no)

    def no_tac_counts(self):
        return self.pins.no_tac_counts()

    def losses(self):
        """(entries that left the full list, unknown entries dropped unsettled): for the board's life."""
        return self.pins.lost[0], self.pins.lost[1]

    def open_intent(self):
        return self._open

    def read_from(self, seq, limit=100):
        out = []
        order = self._order()
        k0 = 0
        for k in range(len(order)):
            if self.first[order[k]] <= seq:
                k0 = k
        open_seq = self._open.seq if self._open is not None else -1
        for i in order[k0:]:
            if take(out, (rec for off, rec in self._walk(i)), seq, self.ack, open_seq, limit):
                break
        return out

    def acknowledge(self, upto_seq):
        upto = min(upto_seq, self.next_seq - 1)
        if upto <= self.ack:
            return
        self.pins.flush()  # every list change durable before any segment becomes erasable
        self.pins.checkpoint(self.next_seq - 1, True)
        self.ack = upto
        self.meta.put(TAG_ACK, 0, upto, True)  # durable before anything is erased
        self._mark_freeable()

    def count_refusal(self, status):
        n = self._refusals.get(status, 0) + 1
        self._refusals[status] = n
        if not self.meta.put(TAG_REFUSAL, ALL.index(status), n):  # a program; never an erase on the tap path
            self._unsaved[status] = n

    def refusals(self):
        return dict(self._refusals)

    # ---- housekeeping (not on the tap path) ----------------------------------------------------------------
    def idle(self, budget=1):
        """Between taps: save deferred counters and pins, move the checkpoint, compact a nearly full meta sector,
        then erase free sectors (oldest acknowledged segment first), at most `budget` erases in all. Returns the
        number of erases done."""
        m = self.meta
        for status in list(self._unsaved):
            m.put(TAG_REFUSAL, ALL.index(status), self._unsaved.pop(status), True)
        deferred = bool(self.pins.unsaved)
        self.pins.flush()
        if deferred or self.next_seq - 1 - m.get(TAG_CHECK, 0) >= _CHECK_EVERY:
            self.pins.checkpoint(self.next_seq - 1, True)
        done = 0
        if m.room() < _META_LOW and m.room_after_compact() >= 2 * _META_LOW:
            m.compact()
            done += 1
        self._mark_freeable()
        free = [i for i in range(_META, self.count) if self.state[i] in (FREEABLE, DIRTY)]
        free.sort(key=lambda i: (self.state[i] != FREEABLE, self.segno[i]))
        for i in free:
            if done >= budget:
                return done
            self.dev.ioctl(6, i)
            self.state[i] = READY
            self.segno[i] = -1
            self.term[i] = None
            done += 1
        if done < budget:
            for i in range(_META, self.count):
                if self.state[i] == UNKNOWN:
                    self.state[i] = READY if self._load(i) == self._ff else DIRTY
        return done

    def prepare(self):
        """Erase everything free now (boot, after the depot's acknowledgement). Returns the erases done."""
        total = 0
        while True:
            d = self.idle(1000)
            total += d
            if d == 0:
                return total

    def set_header(self, header):
        """New line, vehicle, configuration or PSAM: the next intent opens a segment with this header."""
        if not header == self.header:
            self.header = header
            self._new_segment = True

    def raise_floor(self, seq):
        """The depot knows this board used sequence numbers below seq (e.g. after a full erase): never reuse."""
        if seq > self.next_seq:
            self.next_seq = seq
            self._new_segment = True
        self.meta.put(TAG_FLOOR, 0, self.next_seq, True)

    def usage(self):
        """(bytes used, bytes total) of the record area; acknowledged segments count as free."""
        per = self.ss - HEADER_SIZE
        total = (self.count - _META) * per
        used = 0
        for i in range(_META, self.count):
            st = self.state[i]
            if st == SEG or st == LOSTHDR:
                used += (self.wp - HEADER_SIZE) if i == self.head else per
        return used, total

    def warning(self):
        used, total = self.usage()
        return used * 5 >= total * 4  # from 80 % (validator.md section 4)

    def pending(self):
        """Records not yet acknowledged (what the depot has to pull)."""
        return self.next_seq - 1 - self.ack

    def scan(self):
        """Walk every record: returns {"records", "first", "last", "faults"}; faults also land in self.faults."""
        count = 0
        first = last = 0
        prev_end = 0
        for i in self._order():
            if prev_end and self.first[i] > prev_end + 1 and self.first[i] - 1 > self.ack:
                self._fault("lost", i, 0, "records %d..%d missing" % (prev_end + 1, self.first[i] - 1))
            for off, rec in self._walk(i):
                count += 1
                if first == 0:
                    first = rec.seq
                last = rec.seq
                prev_end = rec.seq
        return {"records": count, "first": first, "last": last, "faults": list(self.faults)}

    def __len__(self):
        return self.pending()
