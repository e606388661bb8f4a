"""Golden-byte tests of the card-file codecs, the APDU/TLV helpers, the record format and the clock.

Plain case_* functions: they run under pytest (tests/test_mpcases.py) and under MicroPython (test_micropython.py).
The card bytes are the real ones quoted in tunion-protocol.md.
"""
from tunion.cardfiles import Ef15, Ef17, Ef18Entry, Ef1eRecord, InitAnswer
from tunion.apdu import sw, data, tlv_find, tlv_items
from tunion.errors import CardError
from tunion.record import (
    Record,
    RecordError,
    KIND_INTENT,
    KIND_COMPLETED,
    KIND_CANCELLED,
    KIND_UNRESOLVED,
    INTENT_SIZE,
    OUTCOME_SIZE,
    FLAG_SIMPLE,
    TTYPE_SIMPLE,
    TTYPE_COMPOUND,
)
from tunion import clock

H = bytes.fromhex
# tunion-protocol.md section 2: the Beijing EF15
BEIJING_EF15 = H("01011000FFFFFFFF" + "02" + "01" + "03105170010170907984" + "20190806" + "20401231" + "0000")
# section 1: the SELECT answer of a real Beijing card (HCE), EF15 inside 9F0C
SELECT_ANSWER = H("6F318408A000000632010105A5259F0801029F0C1E") + BEIJING_EF15 + H("9000")
# section 2: real EF18 and EF1E records (Flipper T-Union Master)
EF18_REAL = H("042D000000000001F409300089000340" + "20241229" + "141740")
EF1E_REAL = H("04" + "0000300089000340" + "01" + "0800" + "1900" + "3000" + "00" + "000001F4" + "00000E01"
              + "20241229141740" + "1000" + "01011000FFFFFFFF" + "000000000000")
# section 1: the PPSE FCI as personalised
PPSE_FCI = H("6F49840E325041592E5359532E4444463031A537BF0C34"
             "6119" "4F08A000000632010106" "500A4D4F545F545F43415348" "870101"
             "6117" "4F08A000000632010105" "50084D4F545F545F4550" "870102")
# section 4: the 住建部-style INITIALIZE answer (shape only)
INIT_REAL = H("000162AF0036000320010084176AD7")


def case_ef15_beijing_golden():
    e = Ef15.decode(BEIJING_EF15)
    assert e.issuer == H("01011000FFFFFFFF")
    assert e.app_type == 2 and e.app_version == 1
    assert e.card_no == 3105170010170907984  # section 7.7: 19 digits without the pad nibble
    assert e.start == 20190806 and e.expiry == 20401231
    assert e.sn8 == H("5170010170907984")  # rightmost 8 bytes: the diversification factor
    assert e.encode() == BEIJING_EF15


def case_ef15_rejects_wrong_length_and_non_bcd():
    for bad in (BEIJING_EF15[:29], BEIJING_EF15 + b"\x00", BEIJING_EF15[:10] + b"\xab" + BEIJING_EF15[11:]):
        try:
            Ef15.decode(bad)
        except CardError:
            continue
        assert False, "accepted %s" % bad.hex()


def case_select_answer_carries_ef15():
    assert sw(SELECT_ANSWER) == 0x9000
    fci = data(SELECT_ANSWER)
    a, b = tlv_find(fci, 0x9F0C)
    assert bytes(fci[a:b]) == BEIJING_EF15
    a, b = tlv_find(fci, 0x84)
    assert bytes(fci[a:b]) == H("A000000632010105")


def case_ppse_lists_both_applications():
    a, b = tlv_find(PPSE_FCI, 0xBF0C)
    aids = []
    for t, x, y in tlv_items(PPSE_FCI, a, b):
        assert t == 0x61
        v = tlv_find(PPSE_FCI, 0x4F, x, y)
        aids.append(bytes(PPSE_FCI[v[0] : v[1]]))
    assert aids == [H("A000000632010106"), H("A000000632010105")]


def case_tlv_rejects_overrun():
    # runs past the end; truncated tag; truncated length; 82 form longer than the data; indefinite; 85 form
    for bad in (H("6F05840A00"), H("9F"), H("6F"), H("6F82000500"), H("6F8000"), H("6F850000000001")):
        try:
            tlv_find(bad, 0x84)
        except CardError:
            continue
        assert False, bad.hex()


def case_tlv_every_ber_length_form():
    # The same FCI with its outer length in each BER form a 254-byte answer can hold (issue 7 finding 12).
    inner = H("8408A000000632010105")
    for head in (H("6F0A"), H("6F810A"), H("6F82000A"), H("6F8300000A"), H("6F840000000A")):
        a, b = tlv_find(head + inner, 0x84)
        assert bytes((head + inner)[a:b]) == H("A000000632010105"), head.hex()


def case_tlv_depth_is_bounded():
    # 40 nested constructed templates: a CardError, never a RecursionError (a fault, not a card answer).
    deep = H("8400")
    for _ in range(40):
        deep = bytes((0x61, len(deep))) + deep if len(deep) < 128 else bytes((0x61, 0x81, len(deep))) + deep
    try:
        tlv_find(deep, 0x84)
    except CardError:
        return
    assert False, "no error for 40 levels"


def case_ef18_real_golden():
    e = Ef18Entry.decode(EF18_REAL)
    assert e.counter == 0x042D and e.amount == 500 and e.ttype == 0x09
    assert e.terminal == H("300089000340") and e.date == H("20241229") and e.time == H("141740")
    assert e.encode() == EF18_REAL


def case_ef1e_real_golden():
    r = Ef1eRecord.decode(EF1E_REAL)
    assert r.ttype == 0x04 and r.terminal == H("0000300089000340") and r.industry == 1
    assert r.line == 0x0800 and r.station == 0x1900 and r.operator == 0x3000
    assert r.amount == 500 and r.balance == 0xE01 and r.dt == H("20241229141740")
    assert r.city == H("1000") and r.acquirer == H("01011000FFFFFFFF")
    assert bytes(r.encode()) == EF1E_REAL
    assert clock.civil(clock.secs_from_bcd(r.dt)) == (2024, 12, 29, 14, 17, 40)


def case_ef17_round_trip():
    raw = H("00000156" + "1100" + "2482" + "0001" + "03") + b"\x20" * 49
    e = Ef17.decode(raw)
    assert e.country == H("00000156") and e.city == H("2482") and e.interop == 1 and e.card_type == 3
    assert e.encode() == raw


def case_init_answer_golden():
    a = InitAnswer.decode(INIT_REAL)
    assert a.balance == 0x162AF and a.counter == 0x36 and a.overdraft == 0x320
    assert a.key_version == 1 and a.alg_id == 0 and a.random == H("84176AD7")
    assert a.encode() == INIT_REAL
    masked = InitAnswer.decode(H("8000164E") + INIT_REAL[4:])  # section 7.3: bit 31 masked
    assert masked.balance == 0x164E


def _intent():
    return Record(KIND_INTENT, 41, 0, FLAG_SIMPLE, 3105170010170907984, H("01011000FFFFFFFF"), 3, 1, 0, 0x0036,
                  200, 5000, 0x1234, clock.secs_from_civil(2026, 11, 25, 8, 30, 5))


def case_record_intent_round_trip():
    r = _intent()
    raw = bytes(r.encode())
    assert len(raw) == INTENT_SIZE
    back = Record.decode(raw)
    assert bytes(back.encode()) == raw
    assert back.seq == 41 and back.card_no == 3105170010170907984 and back.amount == 200
    assert back.ttype == TTYPE_SIMPLE and back.dt == H("20261125083005")


def case_record_outcomes_round_trip():
    i = _intent()
    for kind in (KIND_COMPLETED, KIND_CANCELLED, KIND_UNRESOLVED):
        o = i.outcome(kind, 2, 4800, H("A1B2C3D4"))
        o.seq = 42
        raw = bytes(o.encode())
        assert len(raw) == OUTCOME_SIZE
        back = Record.decode(raw)
        assert back.kind == kind and back.ref == 41 and back.balance == 4800 and back.tac == H("A1B2C3D4")
        assert bytes(back.encode()) == raw
    assert Record(KIND_INTENT).ttype == TTYPE_COMPOUND


def case_record_detects_damage():
    raw = bytearray(_intent().encode())
    for i in range(len(raw)):
        for bit in (0, 3, 7):
            b = bytearray(raw)
            b[i] ^= 1 << bit
            try:
                Record.decode(bytes(b))
            except RecordError:
                continue
            assert False, "flip at %d.%d not detected" % (i, bit)
    for bad in (raw[:-1], raw + b"\x00", b"", b"\xff" * 48):
        try:
            Record.decode(bytes(bad))
        except RecordError:
            continue
        assert False


def case_clock_round_trips():
    for y, mo, d, h, mi, s in ((1970, 1, 1, 0, 0, 0), (2000, 2, 29, 23, 59, 59), (2026, 12, 31, 12, 0, 1),
                               (2099, 3, 1, 0, 0, 0)):
        t = clock.secs_from_civil(y, mo, d, h, mi, s)
        assert clock.civil(t) == (y, mo, d, h, mi, s)
        assert clock.secs_from_bcd(clock.bcd_datetime(t)) == t
    assert clock.date_int(clock.secs_from_civil(2024, 2, 29)) == 20240229
    for bad in ("20230229000000", "20241301000000", "20241229246000", "2024122914AB00"):
        try:
            clock.secs_from_bcd(H(bad))
        except ValueError:
            continue
        assert False, bad
