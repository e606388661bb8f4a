"""The journal interface the tap writes through, and an in-memory journal for tests and the demo.

    seq = journal.append_intent(intent)        # durable before the card may be debited
    journal.append_outcome(intent.outcome(KIND_COMPLETED, tac=tac))
    for rec in journal.read_from(1, 100): ...  # the depot pulls in order
    journal.acknowledge(rec.seq)               # only then may records be freed

Any journal (this one, the flash journal) offers:
  has_room() -> bool            False while free space is below what the open intent's outcome and one
                                configuration or denylist replacement need (-> OOS_RECORDS_FULL)
  append_intent(rec) -> seq     assigns rec.seq; refuses (JournalError) while an intent is open or no room
  append_outcome(rec) -> seq    rec.ref must be the open intent's seq; closes it
  open_intent() -> Record|None  the intent with no outcome yet (survives reboots)
  read_from(seq, limit) -> [Record]   records with seq >= seq, in order, at most limit
  acknowledge(upto_seq)         the depot has these durably; never removes the open intent
  count_refusal(status); refusals() -> {status: count}
  intent(seq) -> Record|None    that intent while the journal still holds it, acknowledged or not
  mark_shown(seq); shown() -> seq   the newest payment (its closing record's seq) whose result was on the screen;
                                durable on the flash journal (one meta program), RAM on the others
  next_seq                      the sequence number the next record gets

The durable list of torn intents (validator.md section 3; docs/design.md "Recovery"):
  unresolved() -> [Unresolved]  oldest first: every intent closed `unresolved` (still unknown) or `completed`
                                with FLAG_MAC2_BAD (debited, MAC2 rejected), until its settlement is written or
                                it is dropped; survives reboots, acknowledgement and reflashing the application
  append_settlement(rec) -> seq rec.kind in record.SETTLEMENTS, rec.ref = an unknown entry's intent seq; no intent
                                may be open; never refused for space; removes the entry (a `settled` one flagged
                                FLAG_MAC2_BAD stays, now `rejected`: joins_list)
  open_terminal() -> bytes(6)   the terminal number in the open intent's segment header
  drop_unresolved(seq, why)     removes an entry without a settlement (why: "expired" for an unknown entry past
                                its age limit, "window" for a MAC2-rejected entry past the recovery window)
  count_no_tac(card_no); no_tac_counts() -> {card_no: n}   debited-without-TAC recoveries per card, durable
  faults                        [(kind, where, offset, detail)]; "unresolved_overflow" when the full list lost
                                its oldest entry, "unresolved_expired" when an unknown entry aged out
An entry joins the list when append_outcome stores an `unresolved` outcome or a `completed` one flagged
FLAG_MAC2_BAD; its terminal is the one in the intent's segment header (in force when the intent was written).
"""
from tunion.compat import const
from tunion.errors import JournalError
from tunion.segment import SegmentHeader, RawChunk, HEADER_SIZE
from tunion.record import Record, KIND_INTENT, KIND_UNRESOLVED, KIND_COMPLETED, KIND_SETTLED, FLAG_MAC2_BAD, SETTLEMENTS
from tunion.record import KIND_NO_TAC, KIND_SETTLED_NO_TAC

MAX_UNRESOLVED = const(16)  # validator.md section 3: the list holds at least 16 entries
NO_TAC_CARDS = const(32)  # cards counted one by one for no-TAC recoveries; the rest share key 0 (docs/journal.md)


class Unresolved:
    """One entry of the durable list: the intent Record, the 6-byte terminal number it was written under, and
    `rejected` (True: completed with the MAC2 rejected, so debited; False: the debit is still unknown)."""

    def __init__(self, intent, terminal, rejected=False):
        self.intent = intent
        self.terminal = bytes(terminal)
        self.rejected = rejected

    @property
    def seq(self):
        return self.intent.seq

    def __repr__(self):
        return "Unresolved(seq=%d card=%d rejected=%s)" % (self.intent.seq, self.intent.card_no, self.rejected)


def joins_list(rec):
    """True for an outcome that puts its intent on the unresolved list (as `rejected` unless it is
    `unresolved`), and for a settlement that keeps it there as rejected: debited, MAC2 rejected."""
    if rec.kind == KIND_UNRESOLVED:
        return True
    return (rec.kind == KIND_COMPLETED or rec.kind == KIND_SETTLED) and bool(rec.flags & FLAG_MAC2_BAD)


def check_settlement(open_intent, entries, rec):
    """The rules every journal applies to a settlement: one of the settlement kinds, no intent open, and it cites
    an unknown entry of the list. Returns that entry."""
    if rec.kind not in SETTLEMENTS:
        raise JournalError("append_settlement takes a settlement record")
    if open_intent is not None:
        raise JournalError("a settlement is written only while no intent is open (seq %d is)" % open_intent.seq)
    for e in entries:
        if e.intent.seq == rec.ref and not e.rejected:
            return e
    raise JournalError("settlement cites intent %d, which is not on the unresolved list" % rec.ref)


class UnresolvedList:
    """The list's rules, shared by the journals (which add persistence): bounded, oldest first, overflow is a
    fault. `on_fault(kind, seq, detail)` is told of what leaves without a settlement."""

    def __init__(self, on_fault, limit=MAX_UNRESOLVED):
        self.entries = []
        self.limit = limit
        self.on_fault = on_fault

    def add(self, entry):
        """Returns the entry that had to leave to make room (or None)."""
        for e in self.entries:
            if e.intent.seq == entry.intent.seq:
                return None
        self.entries.append(entry)
        self.entries.sort(key=lambda e: e.intent.seq)
        if len(self.entries) > self.limit:
            old = self.entries.pop(0)
            self.on_fault("unresolved_overflow", old.intent.seq, "unresolved list full: intent %d left it unsettled" % old.intent.seq)
            return old
        return None

    def remove(self, seq):
        for k in range(len(self.entries)):
            if self.entries[k].intent.seq == seq:
                return self.entries.pop(k)
        return None


def list_change(rec):
    """What a record does to the unresolved list, for the journals' rebuild at mount: (1, rejected) for an
    outcome that puts its intent (rec.ref) on it, (-1, False) for a settlement (removes rec.ref), None else."""
    if joins_list(rec):  # an `unresolved` outcome, or a completion / settlement whose MAC2 was rejected
        return 1, rec.kind != KIND_UNRESOLVED
    if rec.kind in SETTLEMENTS:
        return -1, False
    return None


def no_tac_key(counts, card_no):
    """The key a no-TAC recovery of card_no is counted under: the card itself while fewer than NO_TAC_CARDS
    cards are counted (or it already is), else 0 ("other cards")."""
    if card_no in counts:
        return card_no
    n = len(counts) - (1 if 0 in counts else 0)
    return card_no if n < NO_TAC_CARDS and card_no != 0 else 0


def check_intent(open_intent, rec):
    """The rules every journal applies to a new intent: it is one, and no other intent is open."""
    if rec.kind != KIND_INTENT:
        raise JournalError("append_intent takes an intent record")
    if open_intent is not None:
        raise JournalError("an intent is already open (seq %d)" % open_intent.seq)


def check_outcome(open_intent, rec):
    """The rules every journal applies to an outcome: it is one, and it cites the open intent."""
    if rec.kind == KIND_INTENT:
        raise JournalError("append_outcome takes an outcome record")
    if open_intent is None or rec.ref != open_intent.seq:
        raise JournalError("outcome cites intent %d, which is not open" % rec.ref)


def take(out, recs, seq, ack, open_seq, limit):
    """Append to `out` the records of `recs` a read from `seq` returns: not yet acknowledged (or the open intent,
    which an acknowledgement never removes). True once `out` holds `limit` records."""
    for rec in recs:
        if rec.seq >= seq and (rec.seq > ack or rec.seq == open_seq):
            out.append(rec)
            if len(out) >= limit:
                return True
    return False


def last_payment(journal):
    """(intent, closing record) of the journal's newest record when it ends a payment that moved money and was not
    refused by the PSAM (completed or no_tac without FLAG_MAC2_BAD, or a settlement proving a debit, with the
    intent it settles), else None. Reads the last two records (a settlement's intent by its ref); acknowledged
    ones are not read, except a settled intent (journal.intent). app.validator holds a card resting on the
    reader to it after a power cut (validator.md section 2, "not tapped again until it is lifted"), and
    unshown_payment() asks whether it was shown.

        j = MemoryJournal(); i = Record(KIND_INTENT, card_no=7, time=1796112000); j.append_intent(i)
        j.append_outcome(i.outcome(KIND_COMPLETED)); assert last_payment(j)[0].card_no == 7
    """
    n = journal.next_seq
    recs = journal.read_from(n - 2 if n > 2 else 1, 2)
    if not recs:
        return None
    end = recs[-1]
    if end.kind in (KIND_COMPLETED, KIND_NO_TAC):
        intent = recs[0] if len(recs) == 2 and recs[0].seq == end.ref else None
    elif end.kind in (KIND_SETTLED, KIND_SETTLED_NO_TAC):
        intent = journal.intent(end.ref)  # an older intent, the torn tap this one recovered: maybe acknowledged
    else:
        return None  # an intent still open, cancelled, unresolved or not debited: nothing to hold the card to
    if intent is None or intent.kind != KIND_INTENT or end.flags & FLAG_MAC2_BAD:
        return None
    return intent, end


def unshown_payment(journal, p=None):
    """last_payment() (or `p`, what it already returned) when its result never reached the screen (its seq above
    journal.shown()): the power went between the durable record and the display, so the passenger, who saw
    nothing, will tap again. The next tap of that card (tunion.purchase), if the card proves that payment is still
    its newest, shows it paid and charges nothing (validator.md section 3: when in doubt, never charge twice)."""
    if p is None:
        p = last_payment(journal)
    if p is None or p[1].seq <= journal.shown():
        return None
    return p


class MemoryJournal:
    """Records kept as encoded bytes in RAM (so the codec is exercised); `capacity` bounds the records held.
    `terminal` stands for the segment header's terminal number (what unresolved entries carry)."""

    def __init__(self, capacity=100000, first_seq=1, terminal=b"\x00" * 6):
        self.capacity = capacity
        self.next_seq = first_seq
        self.terminal = bytes(terminal)
        self._raw = []  # encoded records, oldest first
        self._open = None  # the open intent, decoded
        self._open_terminal = self.terminal
        self._refusals = {}
        self._shown = 0
        self._ack = first_seq - 1
        self._no_tac = {}
        self.faults = []
        self._list = UnresolvedList(self._fault)

    def _fault(self, kind, seq, detail):
        self.faults.append((kind, seq, 0, detail))

    def has_room(self):
        # Room for an intent and its outcome, beyond the settlements the list may still need.
        return len(self._raw) + 2 + MAX_UNRESOLVED <= self.capacity

    def _append(self, rec):
        rec.seq = self.next_seq
        self._raw.append(bytes(rec.encode()))
        self.next_seq += 1
        return rec.seq

    def append_intent(self, rec):
        check_intent(self._open, rec)
        if not self.has_room():
            raise JournalError("journal full")
        seq = self._append(rec)
        self._open = rec
        self._open_terminal = self.terminal
        return seq

    def append_outcome(self, rec):
        check_outcome(self._open, rec)
        if len(self._raw) >= self.capacity:
            raise JournalError("journal full")
        seq = self._append(rec)
        if joins_list(rec):
            self._list.add(Unresolved(self._open, self._open_terminal, rec.kind == KIND_COMPLETED))
        self._open = None
        return seq

    def append_settlement(self, rec):
        e = check_settlement(self._open, self._list.entries, rec)
        seq = self._append(rec)  # the capacity keeps MAX_UNRESOLVED records for these
        self._list.remove(rec.ref)
        if joins_list(rec):
            self._list.add(Unresolved(e.intent, e.terminal, True))
        return seq

    def open_terminal(self):
        return self._open_terminal

    def unresolved(self):
        return list(self._list.entries)

    def drop_unresolved(self, seq, why):
        e = self._list.remove(seq)
        if e is not None and not e.rejected:
            self._fault("unresolved_expired", seq, "intent %d left the unresolved list unsettled (%s)" % (seq, why))

    def count_no_tac(self, card_no):
        self._no_tac[card_no] = self._no_tac.get(card_no, 0) + 1

    def no_tac_counts(self):
        return dict(self._no_tac)

    def open_intent(self):
        return self._open

    def read_from(self, seq, limit=100):
        out = []
        for raw in self._raw:
            rec = Record.decode(raw)
            if rec.seq >= seq:
                out.append(rec)
                if len(out) >= limit:
                    break
        return out

    def read_raw(self, seq, max_bytes):
        """(bytes, next_seq, end) as the flash journals give them: one block, a header made of `terminal` (segment
        number 0: this journal has no segments), then the encoded records from `seq` on."""
        first = 0
        for raw in self._raw:
            first = Record.decode(raw).seq
            if first >= seq:
                break
        buf = bytearray(HEADER_SIZE) + b"".join(self._raw)
        c = RawChunk(max_bytes)
        open_seq = self._open.seq if self._open is not None else -1
        c.add(SegmentHeader(terminal=self.terminal).encode(0, first), buf, HEADER_SIZE, len(buf), 0, seq, self._ack, open_seq)
        return c.result(self.next_seq)

    def acknowledge(self, upto_seq):
        self._ack = max(self._ack, min(upto_seq, self.next_seq - 1))
        keep = []
        open_seq = self._open.seq if self._open is not None else -1
        for raw in self._raw:
            rec = Record.decode(raw)
            if rec.seq > upto_seq or rec.seq == open_seq:
                keep.append(raw)
        self._raw = keep

    def count_refusal(self, status):
        self._refusals[status] = self._refusals.get(status, 0) + 1

    # The flash journals' housekeeping interface, so the app runs on this journal too.
    def idle(self, budget=1):
        return 0

    def prepare(self):
        return 0

    @property
    def ack(self):
        return self._ack

    def pending(self):
        return self.next_seq - 1 - self._ack

    def usage(self):
        return len(self._raw), self.capacity

    def raise_floor(self, seq):
        if seq > self.next_seq:
            self.next_seq = seq

    def refusals(self):
        return dict(self._refusals)

    def intent(self, seq):
        for raw in self._raw:  # acknowledged records are gone from this journal
            rec = Record.decode(raw)
            if rec.seq == seq:
                return rec if rec.kind == KIND_INTENT else None
        return None

    def mark_shown(self, seq):
        if seq > self._shown:
            self._shown = seq

    def shown(self):
        return self._shown

    def __len__(self):
        return len(self._raw)
