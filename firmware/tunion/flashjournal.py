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
holds; the open intent is the newest record overall when it is an intent, in whatever sector it reads
(tunion/flashmount.py).
"""
from tunion.compat import const
from tunion.errors import JournalError
from tunion.journal import check_intent, check_outcome, check_settlement, take, joins_list
from tunion.record import KIND_COMPLETED, OUTCOME_SIZE
from tunion.outcome import ALL
from tunion.segment import HEADER_SIZE, RawChunk, standin_header, first_segment
from tunion.jmeta import TAG_FLOOR, TAG_ACK, TAG_REFUSAL, TAG_CHECK, TAG_SHOWN
from tunion.flashmount import FlashMount, META_SECTORS, READY, SEG, LOSTHDR, FREEABLE, DIRTY, UNKNOWN

_NEED = const(96)  # INTENT_SIZE + 2 * OUTCOME_SIZE (record.py): room an intent needs in the head (the reserved outcome slot)
_RESERVE = const(384)  # MAX_UNRESOLVED * OUTCOME_SIZE: one settlement per list entry, never refused (issue 7)
_CHECK_EVERY = const(32)  # idle() moves the checkpoint once it lags this many records: mount replays at most ~that
_META_LOW = const(8)  # idle() compacts the meta sector when fewer entries are left (the tap path then never finds it full)


class FlashJournal(FlashMount):
    def _open_segment(self):
        i = self._find_ready()
        if i < 0:
            return False
        segno = self.segno[self.head] + 1 if self.head >= 0 else 1
        for k in range(META_SECTORS, self.count):  # a salvaged sector's records may be newer than the head's number
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
        want = _RESERVE // OUTCOME_SIZE
        if self._room_for(_NEED) and not self._new_segment:
            spare, need = (self.ss - self.wp - _NEED) // OUTCOME_SIZE, 0
        else:
            spare, need = (self.ss - HEADER_SIZE - _NEED) // OUTCOME_SIZE, 1
        if spare < want:
            need += (want - spare + per - 1) // per
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
        loc = self._loc.get(rec.ref)
        e = self._remove(rec.ref)
        if joins_list(rec) and e is not None and loc is not None:  # settled with MAC2 rejected: stays, rejected
            self._add(e.intent, loc[0], loc[1], True)
        self.pins.checkpoint(self.next_seq - 1)
        return seq

    def unresolved(self):
        return list(self._list.entries)

    def open_terminal(self):
        """The terminal in the open intent's segment header (in force when it was written)."""
        if self._open_loc is not None:
            return self._terminal(self._open_loc[0])
        return self.header.terminal

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
        open_seq = self._open.seq if self._open is not None else -1
        for i in order[first_segment([self.first[i] for i in order], seq) :]:
            if take(out, (rec for off, rec in self._walk(i)), seq, self.ack, open_seq, limit):
                break
        return out

    def read_raw(self, seq, max_bytes):
        """(bytes, next_seq, end): segment blocks as stored from `seq` on (tunion.segment.RawChunk; a sector with a
        damaged header gets a stand-in header), at most max_bytes; parse with tunion.segment.parse_raw."""
        c = RawChunk(max_bytes)
        order = self._order()
        open_seq = self._open.seq if self._open is not None else -1
        for i in order[first_segment([self.first[i] for i in order], seq) :]:
            buf = self._load(i)
            hdr = buf[:HEADER_SIZE] if self.state[i] == SEG else standin_header(self.header, self.first[i])
            if not c.add(hdr, buf, HEADER_SIZE, self.ss, self.first[i], seq, self.ack, open_seq):
                break
        return c.result(self.next_seq)

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

    def intent(self, seq):
        """The intent `seq` while its sector is in flash, acknowledged or not (tunion.journal.last_payment)."""
        found = self._find_intent(seq)
        return found[0] if found is not None else None

    def mark_shown(self, seq):
        """The payment closed by record `seq` was on the screen: one 16-byte program (deferred to idle() when the
        meta sector is full). Values only rise: an older seq changes nothing."""
        if not self.meta.put(TAG_SHOWN, 0, seq):
            self._unsaved_shown = max(self._unsaved_shown, seq)

    def shown(self):
        return max(self.meta.get(TAG_SHOWN, 0), self._unsaved_shown)

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
        if self._unsaved_shown:
            m.put(TAG_SHOWN, 0, self._unsaved_shown, True)
            self._unsaved_shown = 0
        deferred = bool(self.pins.unsaved)
        self.pins.flush()
        if deferred or self.next_seq - 1 - m.get(TAG_CHECK, 0) >= _CHECK_EVERY:
            self.pins.checkpoint(self.next_seq - 1, True)
        done = 0
        if m.room() < _META_LOW and m.room_after_compact() >= 2 * _META_LOW:
            m.compact()
            done += 1
        self._mark_freeable()
        free = [i for i in range(META_SECTORS, self.count) if self.state[i] in (FREEABLE, DIRTY)]
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
            for i in range(META_SECTORS, self.count):
                if self.state[i] == UNKNOWN:
                    self.state[i] = READY if self._blank(i) else DIRTY
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
        total = (self.count - META_SECTORS) * per
        used = 0
        for i in range(META_SECTORS, self.count):
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
