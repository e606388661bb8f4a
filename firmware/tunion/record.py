"""The one record layout: written by the firmware's journal, read by the depot tools (validator.md section 4).

    raw = Record(KIND_INTENT, seq=7, card_no=3105170010170907984, amount=200).encode()
    assert Record.decode(raw).seq == 7 and len(raw) == SIZE

Fixed 64 bytes, big-endian, CRC32 (IEEE, as zlib/binascii) over bytes 0..59 at 60..63:

    off len field
      0   1 format version (VERSION)
      1   1 kind: 1 intent, 2 completed, 3 cancelled, 4 unresolved
      2   2 flags (FLAG_*)
      4   4 seq: this record's sequence number (rises for the life of the board, never reused)
      8   4 ref: for an outcome, the sequence number of the intent it closes; 0 for an intent
     12   8 card number (EF15 application serial as an unsigned integer, protocol section 7.7)
     20   8 issuer ID (EF15 bytes 0..7)
     28   1 card type (EF17 byte 10)
     29   1 key version (INITIALIZE answer)
     30   1 algorithm ID (INITIALIZE answer)
     31   1 transaction type: 0x09 compound (CAPP) or 0x06 simple purchase
     32   2 offline counter as INITIALIZE returned it (before the debit)
     34   4 amount, fen
     38   4 balance, fen: before the purchase in an intent, after it in an outcome
     42   4 TTC: the PSAM's terminal transaction sequence number from 8070
     46   7 transaction date and time, BCD YYYYMMDDhhmmss (the values MAC1 and the TAC cover)
     53   4 TAC (zero until known)
     57   3 reserved, zero
     60   4 CRC32

What many records share (board ID, PSAM number, terminal number, line, vehicle, versions) lives once in the
journal's segment header, not here.
"""
from tunion.compat import const, crc32, u16, u32, put_u16, put_u32

VERSION = const(1)
SIZE = const(64)
_CRC_AT = const(60)

KIND_INTENT = const(1)
KIND_COMPLETED = const(2)
KIND_CANCELLED = const(3)
KIND_UNRESOLVED = const(4)
KIND_NAMES = {1: "intent", 2: "completed", 3: "cancelled", 4: "unresolved"}

FLAG_RECOVERED = const(1)  # completed by GET TRANSACTION PROVE or the counter/EF18 evidence after a tear
FLAG_MAC2_UNVERIFIED = const(2)  # the PSAM session was gone: MAC2 could not be checked by 8072
FLAG_TEST_KEYS = const(4)  # signed by the software SAM's test keys: never clear it for money
FLAG_MAC2_BAD = const(8)  # the PSAM rejected MAC2 (the card was still debited: DEBIT answered 9000)

TTYPE_SIMPLE = const(0x06)
TTYPE_COMPOUND = const(0x09)


class RecordError(ValueError):
    """Bytes that are not a valid record: wrong size, unknown version or kind, or CRC mismatch."""


class Record:
    def __init__(
        self,
        kind,
        seq=0,
        ref=0,
        flags=0,
        card_no=0,
        issuer=bytes(8),
        card_type=0,
        key_version=0,
        alg_id=0,
        ttype=TTYPE_COMPOUND,
        counter=0,
        amount=0,
        balance=0,
        ttc=0,
        dt=bytes(7),
        tac=bytes(4),
    ):
        self.kind = kind
        self.seq = seq
        self.ref = ref
        self.flags = flags
        self.card_no = card_no
        self.issuer = bytes(issuer)
        self.card_type = card_type
        self.key_version = key_version
        self.alg_id = alg_id
        self.ttype = ttype
        self.counter = counter
        self.amount = amount
        self.balance = balance
        self.ttc = ttc
        self.dt = bytes(dt)
        self.tac = bytes(tac)

    def outcome(self, kind, seq=0, flags=0, balance=None, tac=None):
        """A new outcome record closing this intent: every payment field copied, `ref` = this intent's seq."""
        r = Record(
            kind,
            seq,
            self.seq,
            self.flags | flags,
            self.card_no,
            self.issuer,
            self.card_type,
            self.key_version,
            self.alg_id,
            self.ttype,
            self.counter,
            self.amount,
            self.balance if balance is None else balance,
            self.ttc,
            self.dt,
            self.tac if tac is None else tac,
        )
        return r

    def encode(self, buf=None):
        """The 64 bytes; written into `buf` (a bytearray of SIZE, reused on hot paths) when given."""
        b = buf if buf is not None else bytearray(SIZE)
        b[0] = VERSION
        b[1] = self.kind
        put_u16(b, 2, self.flags)
        put_u32(b, 4, self.seq)
        put_u32(b, 8, self.ref)
        put_u32(b, 12, self.card_no >> 32)
        put_u32(b, 16, self.card_no & 0xFFFFFFFF)
        b[20:28] = self.issuer
        b[28] = self.card_type
        b[29] = self.key_version
        b[30] = self.alg_id
        b[31] = self.ttype
        put_u16(b, 32, self.counter)
        put_u32(b, 34, self.amount)
        put_u32(b, 38, self.balance)
        put_u32(b, 42, self.ttc)
        b[46:53] = self.dt
        b[53:57] = self.tac
        b[57] = b[58] = b[59] = 0
        put_u32(b, _CRC_AT, crc32(memoryview(b)[:_CRC_AT]) & 0xFFFFFFFF)
        return b

    @staticmethod
    def decode(raw):
        if len(raw) != SIZE:
            raise RecordError("record is %d bytes, not %d" % (len(raw), SIZE))
        if raw[0] != VERSION:
            raise RecordError("unknown record version %d" % raw[0])
        if crc32(memoryview(raw)[:_CRC_AT]) & 0xFFFFFFFF != u32(raw, _CRC_AT):
            raise RecordError("record CRC mismatch")
        if raw[1] not in KIND_NAMES:
            raise RecordError("unknown record kind %d" % raw[1])
        return Record(
            raw[1],
            u32(raw, 4),
            u32(raw, 8),
            u16(raw, 2),
            (u32(raw, 12) << 32) | u32(raw, 16),
            bytes(raw[20:28]),
            raw[28],
            raw[29],
            raw[30],
            raw[31],
            u16(raw, 32),
            u32(raw, 34),
            u32(raw, 38),
            u32(raw, 42),
            bytes(raw[46:53]),
            bytes(raw[53:57]),
        )

    def is_outcome(self):
        return self.kind != KIND_INTENT

    def __eq__(self, other):
        return isinstance(other, Record) and bytes(self.encode()) == bytes(other.encode())

    def __repr__(self):
        return "Record(%s seq=%d ref=%d card=%d amount=%d balance=%d ctr=%d ttc=%d flags=%d)" % (
            KIND_NAMES.get(self.kind, "?"),
            self.seq,
            self.ref,
            self.card_no,
            self.amount,
            self.balance,
            self.counter,
            self.ttc,
            self.flags,
        )
