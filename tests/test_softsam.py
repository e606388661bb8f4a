"""The software SAM: PSAM APDUs, a full hand-built purchase with the simulated card, TTCs that never repeat
across reboots, and key files rejected with a message that says what is wrong."""
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import keys
from sim.card import make_card
from test_simcard import DT, EF1E_REC, SELECT_AID, H, ref_card_key, ref_div, ref_mac, ref_sespk, ref_tac, sw, xor
from tunion.psam import Psam
from tunion.softsam import FileTtcStore, KeyFileError, MemoryTtcStore, SoftSam, load_keys


def new_sam(store=None, out=None):
    lines = [] if out is None else out
    return SoftSam(load_keys(keys.key_file_text()), store or MemoryTtcStore(), out=lines.append)


def opened(sam):
    assert sam.transceive(H("00B095000E"))[:10] == keys.TEST_PSAM_SERIAL
    assert sam.transceive(H("00B0960006")) == keys.TEST_TERMINAL + H("9000")
    assert sam.transceive(H("00A40000028011")) == H("9000")
    assert sam.transceive(H("00B0970001")) == H("01 9000")
    return sam


def apdu_8070(ia, amount, ttype, card, dt=DT, levels=2, key_version=None, alg=None):
    data = ia[11:15] + ia[4:6] + amount.to_bytes(4, "big") + bytes((ttype,)) + dt
    data += bytes((ia[9] if key_version is None else key_version, ia[10] if alg is None else alg))
    data += card.sn8 + (card.issuer if levels == 2 else b"")
    return H("807000") + b"\x00" + bytes((len(data),)) + data + b"\x08"


def test_announces_test_keys():
    lines = []
    sam = new_sam(out=lines)
    assert sam.test_keys is True and any("TEST KEYS" in s for s in lines)


def test_full_manual_purchase_with_the_simulated_card():
    sam = opened(new_sam())
    card = make_card(balance=5000, counter=9)
    fci = card.transceive(SELECT_AID)
    ef15 = fci[-32:-2]  # 9F0C, the last TLV of the FCI
    assert ef15 == card.ef15
    issuer, sn8 = ef15[0:8], ef15[12:20]
    ia = card.transceive(H("805003020B01 0000012C") + keys.TEST_TERMINAL + b"\x0f")
    assert sw(ia) == "9000"
    r = sam.transceive(apdu_8070(ia, 300, 0x09, card))
    assert sw(r) == "9000" and len(r) == 10
    ttc4, mac1 = r[0:4], r[4:8]
    # MAC1 as the card will check it, computed independently
    sespk = ref_sespk(ref_card_key(keys.MPK, issuer, sn8), ia[11:15], ia[4:6], ttc4)
    assert mac1 == ref_mac(sespk, H("0000012C 09") + keys.TEST_TERMINAL + DT)
    assert sw(card.transceive(H("80DC00F030") + EF1E_REC)) == "9000"
    d = card.transceive(H("805401000F") + ttc4 + DT + mac1 + b"\x08")
    assert sw(d) == "9000"
    tac, mac2 = d[0:4], d[4:8]
    assert sam.transceive(H("8072000004") + mac2) == H("9000")
    dtk = ref_card_key(keys.MTK, issuer, sn8)
    assert tac == ref_tac(dtk, H("0000012C"), 0x09, keys.TEST_TERMINAL, ttc4, DT)
    assert card.balance == 4700 and card.counter == 10 and card.ef18[0][10:16] == keys.TEST_TERMINAL
    assert sam.ttc == int.from_bytes(ttc4, "big") == 1


def test_single_level_8070():
    sam = opened(new_sam())
    card = make_card()
    card.transceive(SELECT_AID)
    ia = card.transceive(H("805001020B01 00000064") + keys.TEST_TERMINAL + b"\x0f")
    r = sam.transceive(apdu_8070(ia, 100, 0x06, card, levels=1))
    sespk = ref_sespk(ref_div(keys.MPK, card.sn8), ia[11:15], ia[4:6], r[0:4])
    assert sw(r) == "9000" and r[4:8] == ref_mac(sespk, H("00000064 06") + keys.TEST_TERMINAL + DT)


def test_mac2_mismatch_is_refused_and_ends_the_session():
    sam = opened(new_sam())
    card = make_card()
    card.transceive(SELECT_AID)
    ia = card.transceive(H("805003020B01 00000064") + keys.TEST_TERMINAL + b"\x0f")
    r = sam.transceive(apdu_8070(ia, 100, 0x09, card))
    d = card.transceive(H("805401000F") + r[0:4] + DT + r[4:8] + b"\x08")
    assert sw(d) == "9000"
    assert sam.transceive(H("8072000004") + xor(d[4:8], H("80000000"))) == H("9302")
    assert sam.transceive(H("8072000004") + d[4:8]) == H("6985")  # one 8072 per 8070


def test_psam_commands_are_strict():
    sam = new_sam()
    card = make_card()
    card.transceive(SELECT_AID)
    ia = card.transceive(H("805003020B01 00000064") + keys.TEST_TERMINAL + b"\x0f")
    good = apdu_8070(ia, 100, 0x09, card)
    assert sam.transceive(good) == H("6985")  # DF 8011 not selected
    assert sam.transceive(H("00B0970001")) == H("6A82")  # EF17 lives in DF 8011
    assert sam.transceive(H("8072000004 00000000")) == H("6985")
    opened(sam)
    assert sam.transceive(H("00B095000E")) == H("6A82")  # EF15 is the MF's
    assert sam.transceive(good[:-1]) == H("6700")  # no Le
    assert sam.transceive(good[:5] + good[6:]) == H("6700")  # Lc disagrees
    assert sam.transceive(apdu_8070(ia, 100, 0x05, card)) == H("6A80")
    assert sam.transceive(apdu_8070(ia, 100, 0x09, card, alg=0x04)) == H("6A80")
    assert sam.transceive(apdu_8070(ia, 100, 0x09, card, key_version=2)) == H("9403")
    assert sam.transceive(H("807001") + good[3:]) == H("6A86")
    assert sam.transceive(H("00A40000021003")) == H("6A82")
    assert sam.transceive(H("8470000000")) == H("6E00")
    assert sam.transceive(H("80CA000000")) == H("6D00")
    assert sam.transceive(H("00B0")) == H("6700")
    assert sam.ttc is None  # no 8070 succeeded: no TTC used


def test_psam_client_runs_against_the_soft_sam():
    sam = new_sam()
    client = Psam(sam).open()
    assert client.terminal == keys.TEST_TERMINAL and client.serial == keys.TEST_PSAM_SERIAL
    assert client.key_index == 1 and client.test_keys is True
    card = make_card()
    card.transceive(SELECT_AID)
    ia = card.transceive(H("805003020B01 00000064") + keys.TEST_TERMINAL + b"\x0f")
    ttc, mac1 = client.init_purchase(ia[11:15], 0, 100, 0x09, DT, 1, 0, card.sn8, card.issuer)
    d = card.transceive(H("805401000F") + ttc.to_bytes(4, "big") + DT + mac1 + b"\x08")
    assert sw(d) == "9000" and client.credit(d[4:8]) is True


# ---- TTC reservation


def test_ttc_rises_and_is_reserved_in_blocks():
    store = MemoryTtcStore()
    sam = opened(SoftSam(load_keys(keys.key_file_text()), store, out=lambda s: None, reserve=32))
    assert store.writes == 1 and sam.ttc_left == 32
    card = make_card()
    card.transceive(SELECT_AID)
    ia = card.transceive(H("805003020B01 00000001") + keys.TEST_TERMINAL + b"\x0f")
    ttcs = [int.from_bytes(sam.transceive(apdu_8070(ia, 1, 0x09, card))[:4], "big") for _ in range(33)]
    assert ttcs == list(range(1, 34)) and store.writes == 2
    sam.top_up(low=40)
    assert store.writes == 3 and sam.ttc_left == 32  # the rest of the old block is skipped, never reused


def _ttcs(sam, card, n):
    card.present()
    card.transceive(SELECT_AID)
    ia = card.transceive(H("805003020B01 00000001") + keys.TEST_TERMINAL + b"\x0f")
    return [sam.transceive(apdu_8070(ia, 1, 0x09, card))[:4] for _ in range(n)]


def test_ttc_never_repeats_across_reboots_with_a_file_store(tmp_path):
    path = str(tmp_path / "ttc")
    card = make_card()
    seen = []
    for boot in range(4):
        sam = opened(SoftSam(keys.key_file_text(), FileTtcStore(path), out=lambda s: None, reserve=32))
        seen += _ttcs(sam, card, 5 + 20 * (boot == 2))  # boot 2 uses all but 7 of its block
    assert len(seen) == len(set(seen)) == 40
    assert int.from_bytes(seen[5], "big") == 33  # a reboot skips to the next block
    assert open(path).read().strip() == str(1 + 4 * 32)
    assert not os.path.exists(path + ".new")


def test_file_store_recovers_from_a_rename_that_stopped_halfway(tmp_path):
    path = str(tmp_path / "ttc")
    with open(path + ".new", "w") as f:  # old file removed, new one complete, rename not done
        f.write("500\n")
    assert FileTtcStore(path).reserve(32) == 500
    assert open(path).read().strip() == "532"
    with open(path + ".new", "w") as f:  # a torn new file next to a good old one is ignored
        f.write("1")
    assert FileTtcStore(path).reserve(32) == 532
    os.remove(path)  # a first reservation torn while writing: nothing was handed out yet
    with open(path + ".new", "w") as f:
        f.write("")
    assert FileTtcStore(path, first=7).reserve(32) == 7
    with open(path, "w") as f:
        f.write("5x2")
    with pytest.raises(ValueError, match="damaged"):
        SoftSam(keys.key_file_text(), FileTtcStore(path), out=lambda s: None)


def test_file_store_on_a_filesystem_whose_rename_will_not_replace(tmp_path, monkeypatch):
    path = str(tmp_path / "ttc")
    FileTtcStore(path).reserve(32)
    real = os.rename

    def fat_rename(a, b):
        if os.path.exists(b):
            raise OSError(17, "exists")
        real(a, b)

    monkeypatch.setattr(os, "rename", fat_rename)
    assert FileTtcStore(path).reserve(32) == 33
    assert open(path).read().strip() == "65" and not os.path.exists(path + ".new")


# ---- key files


def test_key_file_text_and_json_agree():
    k = load_keys(keys.key_file_text())
    assert k["mpk"] == keys.MPK and k["mtk"] == keys.MTK and k["mbk"] == keys.MBK
    assert k["terminal"] == keys.TEST_TERMINAL and k["serial"] == keys.TEST_PSAM_SERIAL
    assert (k["key_index"], k["key_version"]) == (1, 1)
    j = {"mpk": keys.MPK.hex().upper(), "terminal": keys.TEST_TERMINAL.hex(), "serial": keys.TEST_PSAM_SERIAL.hex(),
         "key_index": 2}
    kj = load_keys(json.dumps(j))
    assert kj["mpk"] == keys.MPK and kj["mtk"] is None and kj["key_index"] == 2


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace("mpk =", "# mpk ="), "mpk is missing"),
        (lambda t: t.replace(keys.MPK.hex(), keys.MPK.hex()[:30]), "line 2: mpk must be 32 hex digits"),
        (lambda t: t.replace(keys.MTK.hex(), "zz" + keys.MTK.hex()[2:]), "line 3: mtk has a character 'z'"),
        (lambda t: t.replace(keys.TEST_TERMINAL.hex(), "99990000000A"), "terminal has a character 'A'"),
        (lambda t: t.replace("serial = 9999", "serial = 99"), "serial must be 20 decimal digits"),
        (lambda t: t + "mpx = 00\n", "unknown name 'mpx'"),
        (lambda t: t + "mpk = 00\n", "mpk given twice"),
        (lambda t: t.replace("key_index = 1", "key_index = 300"), "key_index must be a number 0..255"),
        (lambda t: t + "just words\n", "line 9: expected `name = value`"),
        (lambda t: "{ not json", "not valid JSON"),
        (lambda t: '{"mpk": 5, "terminal": "999900000001", "serial": "99990000000000000001"}',
         "key file: mpk must be a text of hex digits"),
        (lambda t: "", "mpk is missing"),
    ],
)
def test_bad_key_files_are_rejected_clearly(edit, message):
    with pytest.raises(KeyFileError, match=message.replace("(", r"\(")):
        load_keys(edit(keys.key_file_text()))


# ---- APPLICATION BLOCK through the SAM


def test_block_mac_from_the_sam_blocks_the_card():
    sam = opened(new_sam())
    card = make_card()
    card.transceive(SELECT_AID)
    rnd = card.transceive(H("0084000004"))[:4]
    assert sam.transceive(H("801A450210") + card.sn8 + card.issuer) == H("9000")
    r = sam.transceive(H("80FA050010") + rnd + bytes(4) + H("841E000004 800000"))
    assert sw(r) == "9000"
    dbk = ref_card_key(keys.MBK, card.issuer, card.sn8)
    assert r[:4] == ref_mac(dbk, H("841E000004"), rnd + bytes(4))
    assert card.transceive(H("841E000004") + r[:4]) == H("9000")
    assert card.transceive(SELECT_AID) == H("6A81")
    assert sam.transceive(H("801A420210") + card.sn8 + card.issuer) == H("6A86")  # purchase key: not here
    assert sam.transceive(H("80FA050010") + bytes(16)) == H("6985")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.binary(max_size=50),
    st.tuples(st.sampled_from((0x00, 0x80)), st.sampled_from((0xB0, 0xA4, 0x70, 0x72, 0x1A, 0xFA)),
              st.integers(0, 255), st.integers(0, 255), st.binary(max_size=45), st.booleans()).map(
        lambda t: bytes(t[:4]) + (bytes((len(t[4]),)) + t[4] if t[4] else b"") + (b"\x08" if t[5] else b""))),
    max_size=12))
def test_random_apdus_never_crash_the_sam(apdus):
    sam = opened(new_sam())
    for a in apdus:
        r = sam.transceive(a)
        assert isinstance(r, bytes) and len(r) >= 2
