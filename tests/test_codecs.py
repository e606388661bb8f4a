"""Round trips of every codec on generated values and bytes (hypothesis); the golden real-card bytes are in
tests/mpcases/codec_cases.py."""
from hypothesis import given, strategies as st

from tunion.cardfiles import Ef15, Ef17, Ef18Entry, Ef1eRecord, InitAnswer
from tunion.errors import CardError
from tunion.record import Record, RecordError, KIND_INTENT, KIND_COMPLETED, KIND_CANCELLED, KIND_UNRESOLVED
from tunion import clock

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u24 = st.integers(0, 0xFFFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


def b(n):
    return st.binary(min_size=n, max_size=n)


def bcd_bytes(n):
    return st.lists(st.integers(0, 99), min_size=n, max_size=n).map(
        lambda xs: bytes(((x // 10) << 4) | (x % 10) for x in xs))


dates = st.integers(1, 2**63).map(lambda v: 10000101 + v % 89991230)  # any 8-digit BCD-representable number


@given(b(8), u8, u8, bcd_bytes(10), dates, dates, b(2))
def test_ef15_round_trip(issuer, t, v, serial, start, expiry, custom):
    e = Ef15(issuer, t, v, serial, start, expiry, custom)
    raw = e.encode()
    assert len(raw) == 30
    back = Ef15.decode(raw)
    assert back.encode() == raw and back.card_no == e.card_no and back.start == start and back.expiry == expiry
    assert back.card_no == int(serial.hex()[1:])


@given(b(30))
def test_ef15_decode_any_bytes_is_card_error_or_round_trip(raw):
    try:
        e = Ef15.decode(raw)
    except CardError:
        return
    assert e.encode() == raw


@given(b(60))
def test_ef17_round_trip_bytes(raw):
    assert Ef17.decode(raw).encode() == raw


@given(b(23))
def test_ef18_round_trip_bytes(raw):
    assert Ef18Entry.decode(raw).encode() == raw


@given(b(48))
def test_ef1e_round_trip_bytes(raw):
    assert bytes(Ef1eRecord.decode(raw).encode()) == raw


@given(b(15))
def test_init_answer_round_trip_bytes(raw):
    a = InitAnswer.decode(raw)
    assert a.balance == int.from_bytes(raw[:4], "big") & 0x7FFFFFFF
    if raw[0] < 0x80:
        assert a.encode() == raw


@given(st.binary(max_size=80).filter(lambda r: len(r) not in (15, 23, 30, 48, 60)))
def test_wrong_lengths_are_card_errors(raw):
    for codec in (Ef15, Ef17, Ef18Entry, Ef1eRecord, InitAnswer):
        try:
            codec.decode(raw)
        except CardError:
            continue
        raise AssertionError(codec)


@given(u32, u8, st.integers(0, 2**64 - 1), b(8), u8, u8, u8, u16, u32, u32, u32, u32)
def test_intent_round_trip(seq, flags, card, issuer, ctype, kv, alg, ctr, amount, bal, ttc, t):
    r = Record(KIND_INTENT, seq, 0, flags, card, issuer, ctype, kv, alg, ctr, amount, bal, ttc, t)
    raw = bytes(r.encode())
    back = Record.decode(raw)
    assert bytes(back.encode()) == raw and back == r


@given(st.sampled_from([KIND_COMPLETED, KIND_CANCELLED, KIND_UNRESOLVED]), u32, u32, u8, u32, b(4))
def test_outcome_round_trip(kind, seq, ref, flags, bal, tac):
    r = Record(kind, seq, ref, flags, balance=bal, tac=tac)
    raw = bytes(r.encode())
    back = Record.decode(raw)
    assert (back.kind, back.seq, back.ref, back.flags, back.balance, back.tac) == (kind, seq, ref, flags, bal, tac)
    buf = bytearray(64)
    assert bytes(r.encode(buf)) == raw  # into a reused buffer: the same bytes


@given(st.binary(max_size=64))
def test_record_decode_never_crashes(raw):
    try:
        Record.decode(raw)
    except RecordError:
        pass


@given(st.integers(0, 4102444799))  # 1970 .. 2099
def test_clock_round_trip(secs):
    assert clock.secs_from_bcd(clock.bcd_datetime(secs)) == secs
    y, mo, d, h, mi, s = clock.civil(secs)
    assert clock.secs_from_civil(y, mo, d, h, mi, s) == secs
