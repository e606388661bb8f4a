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
  next_seq                      the sequence number the next record gets
"""
from tunion.errors import JournalError
from tunion.record import Record, KIND_INTENT


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


class MemoryJournal:
    """Records kept as encoded bytes in RAM (so the codec is exercised); `capacity` bounds the records held."""

    def __init__(self, capacity=100000, first_seq=1):
        self.capacity = capacity
        self.next_seq = first_seq
        self._raw = []  # encoded records, oldest first
        self._open = None  # the open intent, decoded
        self._refusals = {}

    def has_room(self):
        # Room for an intent and its outcome.
        return len(self._raw) + 2 <= self.capacity

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
        return seq

    def append_outcome(self, rec):
        check_outcome(self._open, rec)
        if len(self._raw) >= self.capacity:
            raise JournalError("journal full")
        seq = self._append(rec)
        self._open = None
        return seq

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

    def acknowledge(self, upto_seq):
        keep = []
        open_seq = self._open.seq if self._open is not None else -1
        for raw in self._raw:
            rec = Record.decode(raw)
            if rec.seq > upto_seq or rec.seq == open_seq:
                keep.append(raw)
        self._raw = keep

    def count_refusal(self, status):
        self._refusals[status] = self._refusals.get(status, 0) + 1

    def refusals(self):
        return dict(self._refusals)

    def __len__(self):
        return len(self._raw)
