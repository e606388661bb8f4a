"""The one record format: written by the firmware's journal, read by the depot tools (validator.md section 4).

    raw = Record(KIND_INTENT, seq=7, card_no=3105170010170907984, amount=200).encode()
    assert Record.decode(raw).seq == 7 and len(raw) == INTENT_SIZE

Two fixed layouts, big-endian, told apart by byte 1 (kind), each ending in a CRC32 (IEEE, as zlib/binascii)
over the bytes before it. Sizes are multiples of 8 so that flash programs stay word-aligned.

Format versions: 1 (kinds 1..4) and 2 (kinds 1..8, the same two layouts). New records are written as 2; both are
read, here, on the board and in the depot, and a decoded record re-encodes to its own bytes (`rec.version`).

Intent (INTENT_SIZE = 48): everything clearing needs about the payment, written before the card may be debited.

    off len field
      0   1 format version (VERSION)
      1   1 kind: 1 intent
      2   1 flags (FLAG_*): FLAG_SIMPLE marks the simple (06) purchase, else compound (09)
      3   4 seq: this record's sequence number (rises for the life of the board, never reused)
      7   8 card number (EF15 application serial as an unsigned integer, protocol section 7.7)
     15   8 issuer ID (EF15 bytes 0..7)
     23   1 card type (EF17 byte 10)
     24   1 key version (INITIALIZE answer)
     25   1 algorithm ID (INITIALIZE answer)
     26   2 offline counter as INITIALIZE returned it (before the debit)
     28   4 amount, fen
     32   4 balance before the purchase, fen (INITIALIZE answer)
     36   4 TTC: the PSAM's terminal transaction sequence number from 8070
     40   4 transaction time: CST seconds since 1970-01-01 (the date and time MAC1 and the TAC cover)
     44   4 CRC32 of bytes 0..43

Outcome (OUTCOME_SIZE = 24): how the intent it cites ended.

      0   1 format version
      1   1 kind: 2 completed, 3 cancelled, 4 unresolved, 5 no_tac (outcomes: they close the open intent);
              6 settled, 7 settled_no_tac, 8 settled_not_debited (settlements: they cite an intent an earlier
              outcome closed `unresolved`; format 2 only)
      2   1 flags (FLAG_*)
      3   1 reserved, zero
      4   4 seq
      8   4 ref: the sequence number of the intent this outcome closes
     12   4 balance after, fen (debited kinds; the balance before for cancelled, unresolved, settled_not_debited)
     16   4 TAC (zero when unknown: no_tac, settled_no_tac, and the not-debited kinds)
     20   4 CRC32 of bytes 0..19

Two small records per payment instead of one large one keep a 4 MB board inside its 2 MiB budget (20,000 records,
the configuration and two 50,000-entry denylists; validator.md section 4). What many records share (board ID,
PSAM number, terminal number, line, vehicle, versions) lives once in the journal's segment header.
"""
from struct import pack_into

from tunion.compat import const, crc32, u32, put_u32
from tunion.clock import bcd_datetime

VERSION = const(2)  # what this firmware writes
VERSION_1 = const(1)  # kinds 1..4 only; still read
INTENT_SIZE = const(48)
OUTCOME_SIZE = const(24)
MAX_SIZE = const(48)
_INTENT_FMT = ">BBBIQ8sBBBHIIII"  # bytes 0..43 of an intent, as tabled above
_OUTCOME_FMT = ">BBBBIII4s"  # bytes 0..19 of an outcome
_U32 = const(0xFFFFFFFF)
_U64 = 0xFFFFFFFFFFFFFFFF  # not a const(): a big integer

KIND_INTENT = const(1)
KIND_COMPLETED = const(2)
KIND_CANCELLED = const(3)
KIND_UNRESOLVED = const(4)
KIND_NO_TAC = const(5)  # the open intent was debited: EF18 proves it, no TAC could be had
KIND_SETTLED = const(6)  # settlement: the unresolved intent was debited, with the card's TAC
KIND_SETTLED_NO_TAC = const(7)  # settlement: debited, proven by EF18 only (no TAC)
KIND_SETTLED_NOT_DEBITED = const(8)  # settlement: the card proves the intent's debit never happened
KIND_NAMES = {
    1: "intent",
    2: "completed",
    3: "cancelled",
    4: "unresolved",
    5: "no_tac",
    6: "settled",
    7: "settled_no_tac",
    8: "settled_not_debited",
}
_LAST_KIND_V1 = const(4)
SETTLEMENTS = (KIND_SETTLED, KIND_SETTLED_NO_TAC, KIND_SETTLED_NOT_DEBITED)

# How an intent ended (validator.md section 3: every intent ends as exactly one of these). An `unresolved`
# outcome is END_UNKNOWN until a settlement that cites the intent says otherwise.
END_DEBITED_TAC = "debited_tac"
END_DEBITED_NO_TAC = "debited_no_tac"
END_NOT_DEBITED = "not_debited"
END_UNKNOWN = "unknown"
_ENDS = {
    2: END_DEBITED_TAC,
    3: END_NOT_DEBITED,
    4: END_UNKNOWN,
    5: END_DEBITED_NO_TAC,
    6: END_DEBITED_TAC,
    7: END_DEBITED_NO_TAC,
    8: END_NOT_DEBITED,
}

FLAG_SIMPLE = const(1)  # intent: simple purchase (type 06), else compound (09)
FLAG_RECOVERED = const(2)  # completed by GET TRANSACTION PROVE or the counter/EF18 evidence after a tear
FLAG_MAC2_UNVERIFIED = const(4)  # the PSAM session was gone: MAC2 could not be checked by 8072
FLAG_MAC2_BAD = const(8)  # the PSAM rejected MAC2 (DEBIT answered 9000: the card was debited all the same)
FLAG_TEST_KEYS = const(16)  # signed by the software SAM's test keys: never clear it for money
FLAG_ABANDONED = const(32)  # unresolved: the intent timed out, another card paid, or the depot closed it

TTYPE_SIMPLE = const(0x06)
TTYPE_COMPOUND = const(0x09)


class RecordError(ValueError):
    """Bytes that are not a valid record: wrong size, unknown version or kind, or CRC mismatch."""


def end_of(kind):
    """The END_* an outcome or settlement kind stands for (None for an intent or an unknown kind)."""
    return _ENDS.get(kind)


def is_settlement(kind):
    return kind in SETTLEMENTS


def is_version(b):
    """True for a byte that starts a record of a format this module reads (1 or 2): the journal walk uses it to
    tell a record from erased flash (0xFF) or a tombstone (0x00)."""
    return b == VERSION or b == VERSION_1


def size_of(kind):
    """Bytes a record of this kind takes (0 for an unknown kind): readers walk the journal with it."""
    if kind == KIND_INTENT:
        return INTENT_SIZE
    if kind in KIND_NAMES:
        return OUTCOME_SIZE
    return 0


def _crc(b, n):
    return crc32(memoryview(b)[:n]) & 0xFFFFFFFF


class Record:
    def __init__(
        self,
        kind,
        seq=0,
        ref=0,
        flags=0,
        card_no=0,
        issuer=b"\x00\x00\x00\x00\x00\x00\x00\x00",
        card_type=0,
        key_version=0,
        alg_id=0,
        counter=0,
        amount=0,
        balance=0,
        ttc=0,
        time=0,
        tac=b"\x00\x00\x00\x00",
        version=VERSION,
    ):
        self.version = version
        self.kind = kind
        self.seq = seq
        self.ref = ref
        self.flags = flags
        self.card_no = card_no
        self.issuer = bytes(issuer)
        self.card_type = card_type
        self.key_version = key_version
        self.alg_id = alg_id
        self.counter = counter
        self.amount = amount
        self.balance = balance
        self.ttc = ttc
        self.time = time
        self.tac = bytes(tac)

    @property
    def ttype(self):
        return TTYPE_SIMPLE if self.flags & FLAG_SIMPLE else TTYPE_COMPOUND

    @property
    def dt(self):
        """The 7-byte BCD date-time MAC1 and the TAC cover."""
        return bcd_datetime(self.time)

    @property
    def size(self):
        return size_of(self.kind)

    def outcome(self, kind, flags=0, balance=None, tac=None):
        """A new outcome closing this intent: `ref` = this intent's seq; the intent's fields are carried along in
        memory (only the outcome's own fields are encoded)."""
        r = Record(
            kind,
            0,
            self.seq,
            (self.flags & ~FLAG_SIMPLE) | flags,
            self.card_no,
            self.issuer,
            self.card_type,
            self.key_version,
            self.alg_id,
            self.counter,
            self.amount,
            self.balance if balance is None else balance,
            self.ttc,
            self.time,
            tac if tac is not None else b"\x00\x00\x00\x00",
        )
        return r

    def encode(self, buf=None):
        """The record's bytes; written into `buf` (a bytearray of at least MAX_SIZE, reused on hot paths) when
        given, and then a memoryview of the used part is returned."""
        n = size_of(self.kind)
        if n == 0:
            raise RecordError("unknown record kind %d" % self.kind)
        b = buf if buf is not None else bytearray(n)
        if self.version == VERSION_1 and self.kind > _LAST_KIND_V1:
            raise RecordError("kind %d needs record format %d" % (self.kind, VERSION))
        # One pack_into per layout (the module docstring's tables): a C call instead of ~40 byte stores, ~40 -> 3 us
        # on the interpreter for an intent (bench/bench_tap.py). Values are masked as put_u32 masked them.
        if self.kind == KIND_INTENT:
            pack_into(_INTENT_FMT, b, 0, self.version, self.kind, self.flags & 0xFF, self.seq & _U32,
                      self.card_no & _U64, self.issuer, self.card_type, self.key_version, self.alg_id,
                      self.counter & 0xFFFF, self.amount & _U32, self.balance & _U32, self.ttc & _U32,
                      self.time & _U32)
        else:
            pack_into(_OUTCOME_FMT, b, 0, self.version, self.kind, self.flags & 0xFF, 0, self.seq & _U32,
                      self.ref & _U32, self.balance & _U32, self.tac)
        put_u32(b, n - 4, _crc(b, n - 4))
        if buf is not None:
            return memoryview(b)[:n]
        return b

    @staticmethod
    def decode(raw):
        """A Record from bytes (exactly one record); RecordError when they are not a valid record."""
        if len(raw) < 2:
            raise RecordError("record too short")
        v = raw[0]
        if not is_version(v):
            raise RecordError("unknown record version %d" % v)
        n = size_of(raw[1])
        if n == 0 or (v == VERSION_1 and raw[1] > _LAST_KIND_V1):
            raise RecordError("unknown record kind %d (format %d)" % (raw[1], v))
        if len(raw) != n:
            raise RecordError("%s record is %d bytes, not %d" % (KIND_NAMES[raw[1]], len(raw), n))
        if _crc(raw, n - 4) != u32(raw, n - 4):
            raise RecordError("record CRC mismatch")
        if raw[1] == KIND_INTENT:
            return Record(
                KIND_INTENT,
                u32(raw, 3),
                0,
                raw[2],
                (u32(raw, 7) << 32) | u32(raw, 11),
                bytes(raw[15:23]),
                raw[23],
                raw[24],
                raw[25],
                (raw[26] << 8) | raw[27],
                u32(raw, 28),
                u32(raw, 32),
                u32(raw, 36),
                u32(raw, 40),
                version=v,
            )
        return Record(raw[1], u32(raw, 4), u32(raw, 8), raw[2], balance=u32(raw, 12), tac=bytes(raw[16:20]), version=v)

    def __eq__(self, other):
        return isinstance(other, Record) and bytes(self.encode()) == bytes(other.encode())

    def __repr__(self):
        if self.kind == KIND_INTENT:
            return "Record(intent seq=%d card=%d amount=%d balance=%d ctr=%d ttc=%d flags=%d)" % (
                self.seq,
                self.card_no,
                self.amount,
                self.balance,
                self.counter,
                self.ttc,
                self.flags,
            )
        return "Record(%s seq=%d ref=%d balance=%d tac=%s flags=%d)" % (
            KIND_NAMES.get(self.kind, "?"),
            self.seq,
            self.ref,
            self.balance,
            self.tac.hex(),
            self.flags,
        )
