"""The journal on a raw NOR flash area (the `journal` partition): records are only programmed during a tap.

    dev = partition.find_journal()                    # or sim.nor.NorFlash(256) in tests
    j = FlashJournal(dev, SegmentHeader(board_id=uid, psam_no=psam.serial, terminal=psam.terminal))
    j.prepare()                                       # at boot: erase what is free (not on the tap path)
    seq = j.append_intent(rec); j.append_outcome(rec.outcome(KIND_COMPLETED, tac=tac))
    j.idle()                                          # between taps: at most one sector erase

Same interface as tunion.journal.MemoryJournal (see there), plus idle()/prepare(), usage(), warning(), scan(),
set_header(), raise_floor() and `faults`. Layout (docs/journal.md): sectors 0 and 1 hold the MetaStore
(acknowledgement floor, refusal counters); every other sector is one segment: a 64-byte SegmentHeader, then
records back to back. Segments are used in ring order; a sector is erased only when every record in it is
acknowledged and it is not the head (the segment being written), so the head's header and records always carry
the sequence floor. Reserved outcome slot: an intent is programmed only where INTENT_SIZE + 2 * OUTCOME_SIZE bytes
are free in the head, and nothing is written into a segment between an intent and its outcome, so its outcome
(and one retry after a torn outcome write) always fits without an erase.
"""
from tunion.compat import const
from tunion.errors import JournalError
from tunion.journal import check_intent, check_outcome, take
from tunion.record import KIND_INTENT, OUTCOME_SIZE, MAX_SIZE, size_of
from tunion.outcome import ALL
from tunion.segment import SegmentHeader, SegmentError, HEADER_SIZE, entries, last_non_ff, write_point, is_blank
from tunion.jmeta import MetaStore, TAG_ACK, TAG_FLOOR, TAG_REFUSAL

# Sector states
UNKNOWN = const(0)  # header reads blank; not yet checked to be blank all through
READY = const(1)  # verified or freshly erased: may be opened on the tap path
SEG = const(2)  # a valid segment header
LOSTHDR = const(3)  # damaged header, but holds unacknowledged records: kept, read by salvage
FREEABLE = const(4)  # every record acknowledged: erase when idle
DIRTY = const(5)  # torn, half erased or foreign data and nothing unacknowledged: erase when idle

_META = const(2)  # sectors 0 and 1
_NEED = const(96)  # INTENT_SIZE + 2 * OUTCOME_SIZE (record.py): room an intent needs in the head (the reserved outcome slot)


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
        self.head = -1
        self.wp = HEADER_SIZE
        self._open = None
        self._new_segment = False
        self._unsaved = {}  # refusal counters not yet in flash (meta sector full on the tap path)
        m = self.meta.load()
        self.ack = self.meta.get(TAG_ACK, 0)
        self._refusals = {}
        for k in m:
            if k[0] == TAG_REFUSAL and k[1] < len(ALL):
                self._refusals[ALL[k[1]]] = m[k]
        nxt = max(1, self.meta.get(TAG_FLOOR, 0))
        hb = self._hdr
        for i in range(_META, n):
            self.dev.readblocks(i, hb, 0)
            if is_blank(hb):
                self.state[i] = UNKNOWN
                continue
            try:
                h, segno, first = SegmentHeader.decode(hb)
            except SegmentError:
                nxt = max(nxt, self._salvage(i))
                continue
            self.state[i] = SEG
            self.segno[i] = segno
            self.first[i] = first
            if self.head < 0 or segno > self.segno[self.head]:
                self.head = i
            nxt = max(nxt, first)
        self.next_seq = nxt
        if self.head >= 0:
            self._mount_head()
        order = self._order()
        self._check_segnos()
        for i in order:
            if i != self.head and self.first[i] > self.first[self.head]:
                self._new_segment = True  # a salvaged segment holds newer records: do not append behind them
        self._mark_freeable()

    def _salvage(self, i):
        """A sector whose header is damaged: keep it when it holds unacknowledged records, else erase later."""
        buf = self._load(i)
        last = last_non_ff(buf, HEADER_SIZE, self.ss)
        lo = hi = 0
        for off, rec in entries(buf, HEADER_SIZE, self.ss, last):
            if rec and rec.seq > self.ack:
                if lo == 0:
                    lo = rec.seq
                hi = rec.seq
        if lo == 0:
            self.state[i] = DIRTY
            return 0
        self.state[i] = LOSTHDR
        self.first[i] = lo
        self._fault("lost_header", i, 0, "segment header damaged; records %d..%d read without it" % (lo, hi))
        return hi + 1

    def _mount_head(self):
        h = self.head
        buf = self._load(h)
        last = last_non_ff(buf, HEADER_SIZE, self.ss)
        end = HEADER_SIZE
        tail = None  # the last valid record in the head
        torn = -1
        tomb = False
        for off, rec in entries(buf, HEADER_SIZE, self.ss, last):
            if not rec:  # damaged, or a tombstone (False)
                torn = off
                tomb = rec is False
                continue
            torn = -1
            tail = rec
            end = off + rec.size
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
        if tail is None:
            prev = self._previous(h)
            if prev >= 0:  # an intent whose outcome opened a new segment, cut before the outcome landed
                for off, rec in self._walk(prev):
                    tail = rec
        if tail is not None and tail.kind == KIND_INTENT and tail.seq > 0:
            self._open = tail

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
        for k in range(len(order) - 1):
            i = order[k]
            last_seq = self.first[order[k + 1]] - 1
            if i == self.head or last_seq > self.ack:
                break
            if self._open is not None and self.first[i] <= self._open.seq <= last_seq:
                break
            self.state[i] = FREEABLE

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
        self.dev.writeblocks(i, self.header.encode(segno, self.next_seq, self._hdr), 0)
        self.state[i] = SEG
        self.segno[i] = segno
        self.first[i] = self.next_seq
        self.head = i
        self.wp = HEADER_SIZE
        self._new_segment = False
        return True

    def _program(self, rec):
        rec.seq = self.next_seq
        raw = rec.encode(self._rec)
        self.dev.writeblocks(self.head, raw, self.wp)
        self.wp += len(raw)
        self.next_seq += 1
        return rec.seq

    # ---- the journal interface -----------------------------------------------------------------------------
    def has_room(self):
        if self.head >= 0 and not self._new_segment and self.wp + _NEED <= self.ss:
            return True
        return self._find_ready() >= 0

    def append_intent(self, rec):
        check_intent(self._open, rec)
        if self.head < 0 or self._new_segment or self.wp + _NEED > self.ss:
            if not self._open_segment():
                raise JournalError("journal full")
        seq = self._program(rec)
        self._open = rec
        return seq

    def append_outcome(self, rec):
        check_outcome(self._open, rec)
        if self.wp + OUTCOME_SIZE > self.ss and not self._open_segment():
            raise JournalError("journal full: no erased sector for the outcome")
        seq = self._program(rec)
        self._open = None
        return seq

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
        """Between taps: save deferred counters, then erase at most `budget` sectors that are free (oldest
        acknowledged segment first). Returns the number of erases done."""
        for status in list(self._unsaved):
            self.meta.put(TAG_REFUSAL, ALL.index(status), self._unsaved.pop(status), True)
        done = 0
        free = [i for i in range(_META, self.count) if self.state[i] in (FREEABLE, DIRTY)]
        free.sort(key=lambda i: (self.state[i] != FREEABLE, self.segno[i]))
        for i in free:
            if done >= budget:
                return done
            self.dev.ioctl(6, i)
            self.state[i] = READY
            self.segno[i] = -1
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
