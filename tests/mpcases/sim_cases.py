"""The simulated card and the software SAM under both interpreters: a hand-built purchase, tears, strictness.

Plain case_* functions: they run under pytest and under MicroPython (tests/mp/run.mjs --cases).
"""
from sim import keys
from sim.card import AFTER, BEFORE, make_card
from tunion.errors import CardLost
from tunion.softsam import KeyFileError, MemoryTtcStore, SoftSam, load_keys

H = bytes.fromhex
SELECT_AID = H("00A4040008A00000063201010500")
DT = H("20261125083000")
EF1E_REC = H("09") + bytes(2) + keys.TEST_TERMINAL + bytes(16) + DT + keys.TEST_CITY + keys.TEST_ISSUER + bytes(6)


def _sam():
    lines = []
    sam = SoftSam(load_keys(keys.key_file_text()), MemoryTtcStore(), lines.append)
    assert "TEST KEYS" in lines[0] and sam.test_keys
    for apdu in ("00B095000E", "00B0960006", "00A40000028011", "00B0970001"):
        assert sam.transceive(H(apdu))[-2:] == b"\x90\x00"
    return sam


def _to_debit(card, sam, amount):
    """Select, INIT-CAPP, PSAM 8070, cache: returns the DEBIT APDU."""
    fci = card.transceive(SELECT_AID)
    assert fci[-2:] == b"\x90\x00"
    ef15 = fci[-32:-2]
    a4 = bytes(((amount >> 24) & 255, (amount >> 16) & 255, (amount >> 8) & 255, amount & 255))
    ia = card.transceive(H("805003020B01") + a4 + keys.TEST_TERMINAL + b"\x0f")
    assert ia[-2:] == b"\x90\x00" and len(ia) == 17
    d = ia[11:15] + ia[4:6] + a4 + b"\x09" + DT + ia[9:11] + ef15[12:20] + ef15[0:8]
    r = sam.transceive(H("8070000024") + d + b"\x08")
    assert r[-2:] == b"\x90\x00" and len(r) == 10
    assert card.transceive(H("80DC00F030") + EF1E_REC) == H("9000")
    return H("805401000F") + r[0:4] + DT + r[4:8] + b"\x08"


def case_full_manual_purchase():
    sam = _sam()
    card = make_card(balance=5000, counter=2)
    d = card.transceive(_to_debit(card, sam, 200))
    assert d[-2:] == b"\x90\x00" and len(d) == 10
    assert sam.transceive(H("8072000004") + d[4:8]) == H("9000")
    assert card.balance == 4800 and card.counter == 3 and card.ef1e[0] == EF1E_REC
    assert card.ef18[0] == H("0003000000000000C809") + keys.TEST_TERMINAL + DT
    assert card.transceive(H("805A0009020003 08")) == d[4:8] + d[0:4] + H("9000")


def case_tear_after_debit_then_prove():
    sam = _sam()
    card = make_card(balance=1000)
    debit = _to_debit(card, sam, 300)
    card.tear_on_ins(0x54, AFTER)
    try:
        card.transceive(debit)
        assert False, "the tear did not happen"
    except CardLost:
        pass
    assert card.balance == 700 and card.counter == 1  # debited, answer lost
    try:
        card.transceive(SELECT_AID)
        assert False, "a torn card stays out of the field"
    except CardLost:
        pass
    card.present()
    assert card.transceive(SELECT_AID)[-2:] == b"\x90\x00"
    prove = card.transceive(H("805A0009020001 08"))
    assert prove[-2:] == b"\x90\x00" and prove[4:8] == card.last_tac
    assert sam.transceive(H("8072000004") + prove[0:4]) == H("9000")  # same PSAM session: MAC2 verifies


def case_tear_before_debit_moves_nothing():
    sam = _sam()
    card = make_card(balance=1000)
    debit = _to_debit(card, sam, 300)
    card.tear_at(0, BEFORE)
    try:
        card.transceive(debit)
        assert False, "the tear did not happen"
    except CardLost:
        pass
    card.present()
    card.transceive(SELECT_AID)
    assert card.balance == 1000 and card.counter == 0 and card.ef1e == [] and card.ef18 == []
    assert card.transceive(H("805A0009020001 08")) == H("9406")
    assert card.transceive(debit) == H("6985")  # the session died with the tear


def case_strict_card_and_counts():
    card = make_card()
    assert card.transceive(H("00B095001E")) == H("6A82")  # nothing selected
    card.transceive(SELECT_AID)
    assert card.transceive(H("80B095001E")) == H("6E00")
    assert card.transceive(H("00CA000000")) == H("6D00")
    assert card.transceive(H("805C000205")) == H("6700")
    assert card.transceive(H("805C000204")) == H("00001388 9000")
    assert card.apdus == 6 and card.ins_counts[0xB0] == 2 and card.bytes_out == 2 + 53 + 2 + 2 + 2 + 6


def case_insufficient_balance_and_ttc_rises():
    sam = _sam()
    card = make_card(balance=100)
    card.transceive(SELECT_AID)
    assert card.transceive(H("805003020B0100000065") + keys.TEST_TERMINAL + b"\x0f") == H("9401")
    ttcs = []
    for _ in range(3):
        ttcs.append(_to_debit(card, sam, 1)[5:9])
    assert ttcs == [H("00000001"), H("00000002"), H("00000003")]


def case_bad_key_file_is_refused():
    try:
        load_keys("mpk = 0011\nterminal = 999900000001\nserial = 99990000000000000001\n")
        assert False, "a short key was accepted"
    except KeyFileError as e:
        assert "line 1: mpk must be 32 hex digits" in str(e)
