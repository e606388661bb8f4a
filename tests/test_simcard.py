"""The simulated T-Union card, driven with hand-built APDUs; its cryptography checked against an independent
implementation (the `cryptography` package, keys derived here from the documented test master keys)."""
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from sim import keys
from sim.card import AFTER, BEFORE, BLOCKED, SimCard, make_card, make_other_city_card
from tunion.errors import CardLost

H = bytes.fromhex

# ---- reference cryptography (independent of tunion.crypto and tunion.des)


def ecb(key, block):
    k = key * 3 if len(key) == 8 else key + key[:8]  # 1-key and 2-key EDE as 3-key TripleDES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = Cipher(TripleDES(k), modes.ECB()).encryptor()
    return e.update(bytes(block)) + e.finalize()


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def ref_mac(key, data, iv=bytes(8)):
    d = bytes(data) + b"\x80"
    d += bytes(-len(d) % 8)
    x = bytes(iv)
    for i in range(0, len(d), 8):
        last = i + 8 == len(d)
        x = ecb(key if last else key[:8], xor(x, d[i : i + 8]))
    return x[:4]


def ref_div(mk, f):
    return ecb(mk, f) + ecb(mk, bytes(0xFF ^ b for b in f))


def ref_card_key(mk, issuer, sn8):
    return ref_div(ref_div(mk, issuer), sn8)


def ref_sespk(dpk, random4, counter2, ttc4):
    return ecb(dpk, random4 + counter2 + ttc4[2:4])


def ref_tac(dtk, amount4, ttype, term6, ttc4, dt7):
    return ref_mac(xor(dtk[:8], dtk[8:]), amount4 + bytes((ttype,)) + term6 + ttc4 + dt7)


def test_reference_crypto_matches_the_published_pboc_vector():
    # tunion-protocol.md section 4: the published purchase vector
    s = ref_sespk(H("11223344556677888877665544332211"), H("11223344"), H("0000"), H("00000001"))
    assert s == H("003238ABC57659DD")
    assert ref_mac(s, H("00001000 06 001122334455 20120229135100")) == H("F15CAB75")
    assert ref_mac(s, H("00001000")) == H("56988A13")


# ---- a terminal that builds every APDU by hand

SELECT_PPSE = H("00A404000E") + b"2PAY.SYS.DDF01" + b"\x00"
SELECT_AID = H("00A4040008 A000000632010105 00")
TERM = keys.TEST_TERMINAL
DT = H("20261125083000")
EF1E_REC = H("09") + bytes(2) + TERM + H("02 0010 0000 0000 00 000000C8 00001324") + DT + keys.TEST_CITY + \
    keys.TEST_ISSUER + bytes(6)


def sw(r):
    return r[-2:].hex().upper()


def init(card, amount, p1=0x03, key_index=1):
    return card.transceive(bytes((0x80, 0x50, p1, 0x02, 0x0B, key_index)) + amount.to_bytes(4, "big") + TERM + b"\x0f")


def debit_apdu(card, init_resp, amount, ttype=0x09, ttc=H("00000007"), dt=DT, bad_mac=False):
    dpk = ref_card_key(keys.MPK, card.issuer, card.sn8)
    sespk = ref_sespk(dpk, init_resp[11:15], init_resp[4:6], ttc)
    mac1 = ref_mac(sespk, amount.to_bytes(4, "big") + bytes((ttype,)) + TERM + dt)
    if bad_mac:
        mac1 = xor(mac1, b"\x00\x00\x00\x01")
    return H("805401000F") + ttc + dt + mac1 + b"\x08", sespk


def purchase(card, amount, ttype=0x09, ttc=H("00000007"), cache=EF1E_REC):
    """Select, INIT, (cache), DEBIT: returns (DEBIT answer, session key, INIT answer)."""
    assert sw(card.transceive(SELECT_AID)) == "9000"
    ia = init(card, amount, 0x03 if ttype == 0x09 else 0x01)
    assert sw(ia) == "9000", sw(ia)
    if cache is not None and ttype == 0x09:
        assert sw(card.transceive(H("80DC00F030") + cache)) == "9000"
    apdu, sespk = debit_apdu(card, ia, amount, ttype, ttc)
    return card.transceive(apdu), sespk, ia


# ---- selection


def test_ppse_answers_the_personalised_fci_with_both_entries():
    r = make_card().transceive(SELECT_PPSE)
    assert r == H(
        "6F49840E325041592E5359532E4444463031A537BF0C34"
        "61194F08A000000632010106500A4D4F545F545F43415348870101"
        "61174F08A00000063201010550084D4F545F545F4550870102 9000"
    )


def test_ppse_options_ep_only_none_and_not_tunion():
    assert make_card(ppse_cash=False).transceive(SELECT_PPSE) == H(
        "6F2E840E325041592E5359532E4444463031A51CBF0C19"
        "61174F08A00000063201010550084D4F545F545F4550870102 9000"
    )
    assert sw(make_card(ppse=False).transceive(SELECT_PPSE)) == "6A82"
    absent = make_card(state="absent")
    assert b"MOT_T_EP" not in absent.transceive(SELECT_PPSE)
    assert sw(absent.transceive(SELECT_AID)) == "6A82"
    assert sw(make_card(state="absent", ppse_cash=False).transceive(SELECT_PPSE)) == "6A82"


def test_select_aid_fci_carries_ef15_in_9f0c():
    c = make_card()
    r = c.transceive(SELECT_AID)
    assert r == H("6F318408A000000632010105A5259F0801029F0C1E") + c.ef15 + H("9000")
    assert c.transceive(SELECT_AID[:-1]) == r  # Le is optional
    assert sw(c.transceive(H("00A4040008A000000632010106"))) == "6A82"


def test_fci_without_9f0c_so_ef15_must_be_read():
    c = make_card(fci_ef15=False)
    assert c.transceive(SELECT_AID) == H("6F108408A000000632010105A5049F080102 9000")
    assert c.transceive(H("00B095001E")) == c.ef15 + H("9000")


@pytest.mark.parametrize("blocked_sw", [0x6A81, 0x9303])
def test_blocked_application_answers_its_status_word(blocked_sw):
    c = make_card(state=BLOCKED, blocked_sw=blocked_sw)
    assert c.transceive(SELECT_AID) == blocked_sw.to_bytes(2, "big")
    assert sw(init(c, 100)) == "6985"  # nothing selected


def test_blocked_6283_selects_with_a_warning_and_refuses_purchases():
    c = make_card(state=BLOCKED, blocked_sw=0x6283)
    r = c.transceive(SELECT_AID)
    assert sw(r) == "6283" and r[:-2] == c.fci()
    assert sw(c.transceive(H("00B097003C"))) == "9000"
    assert sw(init(c, 100)) == "9303"


# ---- files


def test_files_hold_the_constructor_fields():
    c = make_card(card_no=3104895199900000003, start=20240101, expiry=20291231, app_version=0x00,
                  card_type=3, interop=0, custom=H("0011"))
    c.transceive(SELECT_AID)
    ef15 = c.transceive(H("00B095001E"))
    assert ef15 == keys.TEST_ISSUER + H("02 00 03104895199900000003 20240101 20291231 0011 9000")
    assert c.card_no == 3104895199900000003 and c.sn8 == H("4895199900000003")
    ef17 = c.transceive(H("00B097003C"))
    assert ef17[:11] == H("00000156") + keys.TEST_PROVINCE + keys.TEST_CITY + H("0000 03") and len(ef17) == 62
    ef16 = c.transceive(H("00B0960037"))
    assert ef16 == H("0000") + b" " * 52 + H("00 9000")
    assert make_other_city_card().ef17[6:8] == keys.OTHER_CITY != keys.TEST_CITY


def test_read_binary_is_strict():
    c = make_card()
    assert sw(c.transceive(H("00B095001E"))) == "6A82"  # nothing selected yet
    c.transceive(SELECT_AID)
    assert sw(c.transceive(H("00B095001F"))) == "6700"  # longer than the file
    assert c.transceive(H("00B0950000")) == c.ef15 + H("9000")  # Le 00: the whole file
    assert c.transceive(H("00B095140A")) == c.ef15[20:30] + H("9000")  # offset 20
    assert sw(c.transceive(H("00B0951E01"))) == "6B00"
    assert sw(c.transceive(H("00B0980000"))) == "6981"  # EF18 is a record file
    assert sw(c.transceive(H("00B0990000"))) == "6A82"
    assert sw(c.transceive(H("00B0150000"))) == "6986"  # no current EF
    assert sw(c.transceive(H("00B095"))) == "6700"
    assert sw(c.transceive(H("00B09500"))) == "6700"  # no Le


def test_records_empty_card_and_strictness():
    c = make_card()
    c.transceive(SELECT_AID)
    assert sw(c.transceive(H("00B201C400"))) == "6A83"
    assert sw(c.transceive(H("00B201F400"))) == "6A83"
    assert sw(c.transceive(H("00B200C400"))) == "6A86"
    assert sw(c.transceive(H("00B201C000"))) == "6A86"
    assert sw(c.transceive(H("00B201AC00"))) == "6981"  # EF15 is binary
    nc = make_card(has_ef1e=False)
    nc.transceive(SELECT_AID)
    assert sw(nc.transceive(H("00B201F400"))) == "6A82"


def test_get_balance_p1_rules():
    c = make_card(balance=1234)
    c.transceive(SELECT_AID)
    for p1, want in ((0, 1234), (3, 1234), (1, 0), (2, 0)):
        assert c.transceive(bytes((0x80, 0x5C, p1, 2, 4))) == want.to_bytes(4, "big") + H("9000")
    assert sw(c.transceive(H("805C040204"))) == "6A86"
    assert sw(c.transceive(H("805C000104"))) == "6A86"
    assert sw(c.transceive(H("805C000200"))) == "6700"


# ---- INITIALIZE


def test_initialize_answer_and_checks():
    c = make_card(balance=500, counter=0x2D, key_version=0x01)
    c.transceive(SELECT_AID)
    r = init(c, 500)
    assert sw(r) == "9000" and len(r) == 17
    assert r[0:4] == H("000001F4") and r[4:6] == H("002D") and r[6:9] == bytes(3) and r[9:11] == H("0100")
    assert sw(init(c, 501)) == "9401"  # no overdraft
    assert sw(init(c, 1, key_index=2)) == "9403"
    assert sw(init(c, 1, p1=0x00)) == "6A86"
    assert sw(c.transceive(H("805003010B01000000") + TERM + b"\x0f")) == "6A86"  # ED
    assert sw(c.transceive(H("805003020B0100000001") + TERM)) == "6700"  # no Le
    assert sw(c.transceive(H("805003020A01000000") + TERM[:5] + b"\x0f")) == "6700"
    assert sw(init(make_card(), 1)) == "6985"  # purse not selected


def test_initialize_counter_at_maximum():
    c = make_card(counter=0xFFFF)
    c.transceive(SELECT_AID)
    assert sw(init(c, 1)) == "9402"


def test_random_is_fresh_per_init_and_replays_per_card():
    a, b = make_card(), make_card()
    a.transceive(SELECT_AID)
    b.transceive(SELECT_AID)
    ra = [init(a, 1)[11:15] for _ in range(3)]
    rb = [init(b, 1)[11:15] for _ in range(3)]
    assert ra == rb and len(set(ra)) == 3
    other = make_card(card_no=keys.TEST_CARD_NO + 1)
    other.transceive(SELECT_AID)
    assert init(other, 1)[11:15] != ra[0]


def test_other_algorithm_id_is_answered_and_its_debit_refused():
    c = make_card(alg_id=0x04)
    c.transceive(SELECT_AID)
    ia = init(c, 100)
    assert ia[10] == 0x04
    apdu, _ = debit_apdu(c, ia, 100)
    assert sw(c.transceive(apdu)) == "9302" and c.balance == 5000


# ---- DEBIT and what it leaves on the card


def test_compound_purchase_debits_logs_and_signs():
    c = make_card(balance=5000, counter=4)
    r, sespk, ia = purchase(c, 200, ttc=H("0000ABCD"))
    assert sw(r) == "9000" and len(r) == 10
    dtk = ref_card_key(keys.MTK, keys.TEST_ISSUER, c.sn8)
    tac = ref_tac(dtk, H("000000C8"), 0x09, TERM, H("0000ABCD"), DT)
    assert r[0:4] == tac == c.last_tac
    assert r[4:8] == ref_mac(sespk, H("000000C8")) == c.last_mac2
    assert c.balance == 4800 and c.counter == 5 and ia[4:6] == H("0004")
    assert c.ef18 == [H("0005 000000 000000C8 09") + TERM + DT]
    assert c.ef1e == [EF1E_REC]
    c.transceive(SELECT_AID)
    assert c.transceive(H("00B201C400")) == c.ef18[0] + H("9000")
    assert c.transceive(H("00B201F430")) == EF1E_REC + H("9000")
    assert c.transceive(H("805C000204")) == H("000012C0 9000")


def test_simple_purchase_has_type_06_and_no_cache():
    c = make_card()
    c.transceive(SELECT_AID)
    init(c, 100, p1=0x01)
    assert sw(c.transceive(H("80DC00F030") + EF1E_REC)) == "6985"  # not a CAPP session: and it ends it
    r, _, _ = purchase(c, 100, ttype=0x06)
    assert sw(r) == "9000" and c.ef18[0][9] == 0x06 and c.ef1e == []


def test_amount_zero_and_whole_balance():
    c = make_card(balance=300)
    assert sw(purchase(c, 0)[0]) == "9000" and c.balance == 300 and c.counter == 1
    assert sw(purchase(c, 300)[0]) == "9000" and c.balance == 0 and c.counter == 2


def test_wrong_mac1_is_refused_and_kills_the_session():
    c = make_card()
    c.transceive(SELECT_AID)
    ia = init(c, 100)
    bad, _ = debit_apdu(c, ia, 100, bad_mac=True)
    good, _ = debit_apdu(c, ia, 100)
    assert sw(c.transceive(bad)) == "9302"
    assert sw(c.transceive(good)) == "6985"
    assert c.balance == 5000 and c.counter == 0 and c.mac1_failures == 1 and c.ef18 == []


def test_mac1_covers_amount_type_terminal_and_time():
    c = make_card()
    c.transceive(SELECT_AID)
    ia = init(c, 100)
    apdu, _ = debit_apdu(c, ia, 100, ttype=0x06)  # card is in a CAPP (09) session
    assert sw(c.transceive(apdu)) == "9302"
    c.transceive(SELECT_AID)
    ia = init(c, 100)
    apdu, _ = debit_apdu(c, ia, 101)
    assert sw(c.transceive(apdu)) == "9302"


def test_order_rules():
    c = make_card()
    c.transceive(SELECT_AID)
    ia = init(c, 100)
    apdu, _ = debit_apdu(c, ia, 100)
    assert sw(c.transceive(apdu)) == "9000"
    assert sw(c.transceive(apdu)) == "6985"  # a session serves one DEBIT
    ia = init(c, 100)
    c.transceive(H("805C000204"))  # anything between INIT and DEBIT ends the session
    apdu, _ = debit_apdu(c, ia, 100)
    assert sw(c.transceive(apdu)) == "6985"
    assert sw(make_card().transceive(apdu)) == "6985"  # DEBIT on a fresh card
    d = make_card()
    d.transceive(SELECT_AID)
    ia = init(d, 100)
    apdu, _ = debit_apdu(d, ia, 100)
    assert sw(d.transceive(apdu[:-1])) == "6700"  # no Le: and the session is gone
    assert sw(d.transceive(apdu)) == "6985"
    assert sw(d.transceive(H("805402000F") + apdu[5:])) == "6A86"


def test_update_cache_rules():
    c = make_card()
    c.transceive(SELECT_AID)
    assert sw(c.transceive(H("80DC00F030") + EF1E_REC)) == "6985"  # before INIT
    init(c, 100)
    assert sw(c.transceive(H("80DC00F02F") + EF1E_REC[:47])) == "6700"
    init(c, 100)
    assert sw(c.transceive(H("80DC02D080") + bytes(128))) == "6A82"  # no EF1A on this card
    init(c, 100)
    assert sw(c.transceive(H("80DC00F130") + EF1E_REC)) == "6A86"
    ia = init(c, 100)
    assert sw(c.transceive(H("80DC00F030") + EF1E_REC)) == "9000"
    assert sw(c.transceive(H("80DC00F030") + EF1E_REC)) == "6985"  # once
    nc = make_card(has_ef1e=False)
    nc.transceive(SELECT_AID)
    init(nc, 100)
    assert sw(nc.transceive(H("80DC00F030") + EF1E_REC)) == "6A82"
    assert ia  # the session above was opened


def test_ef18_is_cyclic_newest_first():
    c = make_card(balance=10000)
    for i in range(12):
        assert sw(purchase(c, 10 + i, ttc=(i + 1).to_bytes(4, "big"))[0]) == "9000"
    assert len(c.ef18) == 10 and c.counter == 12
    assert [int.from_bytes(e[0:2], "big") for e in c.ef18] == list(range(12, 2, -1))
    c.transceive(SELECT_AID)
    assert c.transceive(H("00B20AC400"))[:-2] == c.ef18[9]
    assert sw(c.transceive(H("00B20BC400"))) == "6A83"


# ---- GET TRANSACTION PROVE


def test_get_transaction_prove_answers_for_the_last_purchase_only():
    c = make_card(counter=7)
    r, _, _ = purchase(c, 150)
    assert c.transceive(H("805A0009020008 08")) == r[4:8] + r[0:4] + H("9000")  # right after the DEBIT
    c.present()  # next tap: power-up, select again
    assert sw(c.transceive(H("805A0009020008 08"))) == "6985"
    c.transceive(SELECT_AID)
    assert c.transceive(H("805A0009020008 08")) == r[4:8] + r[0:4] + H("9000")  # MAC2 then TAC
    assert sw(c.transceive(H("805A0009020007 08"))) == "9406"  # the INIT counter is not it
    assert sw(c.transceive(H("805A0006020008 08"))) == "9406"  # another type
    assert sw(c.transceive(H("805A0007020008 08"))) == "6A86"
    assert sw(c.transceive(H("805A00090200 08"))) == "6700"
    assert sw(make_card().transceive(H("805A0009020001 08"))) == "6985"  # purse not selected


# ---- strictness of the command layer


def test_class_instruction_and_length_errors():
    c = make_card()
    c.transceive(SELECT_AID)
    assert sw(c.transceive(H("80A4040008A000000632010105"))) == "6E00"
    assert sw(c.transceive(H("90B095001E"))) == "6E00"
    assert sw(c.transceive(H("00CA9F1700"))) == "6D00"
    assert sw(c.transceive(H("00B0"))) == "6700"
    assert sw(c.transceive(H("00A4040009A000000632010105"))) == "6700"  # Lc says 9, 8 follow
    assert sw(c.transceive(H("00A4040408A000000632010105"))) == "6A86"
    assert sw(c.transceive(H("00A40000023F00"))) == "9000"  # MF: the purse is no longer selected
    assert sw(c.transceive(H("00B095001E"))) == "6A82"


# ---- tears, presence, counts


def test_tear_before_debit_discards_the_cache_and_moves_no_money():
    c = make_card()
    c.tear_on_ins(0x54, BEFORE)
    with pytest.raises(CardLost):
        purchase(c, 100)
    assert c.balance == 5000 and c.counter == 0 and c.ef18 == [] and c.ef1e == [] and c.last_prove is None
    assert c.last_tear == (3, BEFORE, 0x54) and c.tears == 1
    with pytest.raises(CardLost):  # out of the field until presented again
        c.transceive(SELECT_AID)
    c.present()
    assert sw(c.transceive(SELECT_AID)) == "9000"
    assert init(c, 1)[4:6] == H("0000")


def test_tear_after_debit_debited_and_prove_recovers_mac2_and_tac():
    c = make_card(counter=3)
    c.tear_on_ins(0x54, AFTER)
    sel = c.transceive(SELECT_AID)
    ia = init(c, 200)
    c.transceive(H("80DC00F030") + EF1E_REC)
    apdu, sespk = debit_apdu(c, ia, 200, ttc=H("00000011"))
    with pytest.raises(CardLost):
        c.transceive(apdu)
    assert c.balance == 4800 and c.counter == 4 and c.ef1e == [EF1E_REC]
    assert c.bytes_out == len(sel) + len(ia) + 2  # the DEBIT answer never left the card
    c.present()
    assert sw(c.transceive(H("805A0009020004 08"))) == "6985"  # the tear lost the selection
    c.transceive(SELECT_AID)
    r = c.transceive(H("805A0009020004 08"))
    dtk = ref_card_key(keys.MTK, keys.TEST_ISSUER, c.sn8)
    assert r[0:4] == ref_mac(sespk, H("000000C8"))
    assert r[4:8] == ref_tac(dtk, H("000000C8"), 0x09, TERM, H("00000011"), DT)


def test_tear_at_relative_and_absolute_and_session_lost_on_tear():
    c = make_card()
    c.transceive(SELECT_AID)
    ia = init(c, 100)
    c.tear_at(0, AFTER)  # the next APDU is processed, its answer lost: the session does not survive the tear
    with pytest.raises(CardLost):
        c.transceive(H("80DC00F030") + EF1E_REC)
    c.present()
    c.transceive(SELECT_AID)
    apdu, _ = debit_apdu(c, ia, 100)
    assert sw(c.transceive(apdu)) == "6985" and c.balance == 5000
    c.tear_at(c.apdus + 1, BEFORE, absolute=True)
    assert sw(c.transceive(SELECT_AID)) == "9000"
    with pytest.raises(CardLost):
        c.transceive(SELECT_AID)
    c.present()
    c.remove()
    with pytest.raises(CardLost):
        c.transceive(SELECT_AID)


def test_random_tears_replay_and_never_lose_money():
    for seed in range(1, 60):
        c = make_card(balance=100000)
        n, when = c.tear_random(seed, within=4)
        assert (n, when) == make_card().tear_random(seed, within=4) and 0 <= n < 4
        paid = 0
        for _ in range(3):
            try:
                r, _, _ = purchase(c, 100)
                paid += 100 if sw(r) == "9000" else 0
            except CardLost:
                c.present()
        # every debit, answered or torn after it, shows in balance, counter and EF18
        assert c.balance == 100000 - 100 * c.debits and c.counter == c.debits == len(c.ef18)
        assert paid <= 100 * c.debits <= paid + 100


def test_counts_and_reset():
    c = make_card()
    r = c.transceive(SELECT_AID)
    c.transceive(H("00B097003C"))
    assert c.apdus == 2 and c.bytes_in == len(SELECT_AID) + 5 and c.bytes_out == len(r) + 62
    assert c.ins_counts == {0xA4: 1, 0xB0: 1}
    c.reset_counts()
    assert (c.apdus, c.bytes_in, c.bytes_out, c.ins_counts) == (0, 0, 0, {})
    c.tear_at(0, BEFORE)
    with pytest.raises(CardLost):
        c.transceive(SELECT_AID)
    assert c.apdus == 1 and c.bytes_out == 0
    with pytest.raises(CardLost):
        c.transceive(SELECT_AID)
    assert c.apdus == 1  # out of the field: nothing reaches the card


# ---- APPLICATION BLOCK


def test_application_block_with_the_block_key():
    c = make_card()
    c.transceive(SELECT_AID)
    assert sw(c.transceive(H("841E000004 00000000"))) == "6985"  # no challenge
    rnd = c.transceive(H("0084000004"))[:4]
    dbk = ref_card_key(keys.MBK, keys.TEST_ISSUER, c.sn8)
    mac = ref_mac(dbk, H("841E000004"), rnd + bytes(4))
    assert sw(c.transceive(H("841E000004") + xor(mac, H("00000001")))) == "6988"
    rnd = c.transceive(H("0084000004"))[:4]
    c.transceive(H("805C000204"))  # a challenge is good for the next command only
    assert sw(c.transceive(H("841E000004") + ref_mac(dbk, H("841E000004"), rnd + bytes(4)))) == "6985"
    rnd = c.transceive(H("0084000004"))[:4]
    assert sw(c.transceive(H("841E000004") + ref_mac(dbk, H("841E000004"), rnd + bytes(4)))) == "9000"
    assert c.state == BLOCKED
    assert sw(c.transceive(SELECT_AID)) == "6A81"


def test_constructor_rejects_bad_fields():
    with pytest.raises(ValueError):
        SimCard(card_no=10**19)
    with pytest.raises(ValueError):
        SimCard(issuer=b"\x01")


# ---- fuzz: any bytes get a status word, never an exception, and never move money


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.binary(max_size=60),
    st.tuples(st.sampled_from((0x00, 0x80, 0x84)), st.sampled_from((0xA4, 0xB0, 0xB2, 0x5C, 0x50, 0xDC, 0x54,
                                                                    0x5A, 0x84, 0x1E)),
              st.integers(0, 255), st.integers(0, 255), st.binary(max_size=50)).map(
        lambda t: bytes(t[:4]) + (bytes((len(t[4]),)) + t[4] if t[4] else b""))), max_size=12))
def test_random_apdus_never_crash_the_card_or_move_money(apdus):
    c = make_card()
    c.transceive(SELECT_AID)
    for a in apdus:
        r = c.transceive(a)
        assert isinstance(r, bytes) and len(r) >= 2
    assert c.balance == 5000 and c.counter == 0 and c.ef18 == [] and c.ef1e == []
