"""tunion.des and tunion.crypto: published vectors, and properties against an independent DES (`cryptography`)."""

import pytest
from hypothesis import given, settings, strategies as st

from cryptography.hazmat.primitives.ciphers import Cipher, modes

try:  # cryptography >= 43 moved TripleDES to the "decrepit" package
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

from tunion import crypto
from tunion.des import Des, Tdes, cbc_last

H = bytes.fromhex


# ---- the independent reference: OpenSSL's DES through `cryptography` ---------------------------------------
def _ref_key(key):
    # OpenSSL takes 24-byte 3DES keys; K1 = K2 = K3 is single DES, K1 = K3 is 2-key EDE.
    if len(key) == 8:
        return key * 3
    if len(key) == 16:
        return key + key[:8]
    return key


def ref_encrypt(key, data):
    e = Cipher(TripleDES(_ref_key(key)), modes.ECB()).encryptor()
    return e.update(data) + e.finalize()


def ref_decrypt(key, data):
    d = Cipher(TripleDES(_ref_key(key)), modes.ECB()).decryptor()
    return d.update(data) + d.finalize()


def ref_cbc_last(key, data, iv):
    e = Cipher(TripleDES(_ref_key(key)), modes.CBC(iv)).encryptor()
    return (e.update(data) + e.finalize())[-8:]


def ref_pad80(data):
    out = bytearray(data) + b"\x80"
    while len(out) % 8:
        out.append(0)
    return bytes(out)


def ref_pboc_mac(key, data, iv=bytes(8)):
    padded = ref_pad80(data)
    if len(key) == 8:
        return ref_cbc_last(key, padded, iv)[:4]
    chain = iv if len(padded) == 8 else ref_cbc_last(key[:8], padded[:-8], iv)
    last = bytes(a ^ b for a, b in zip(chain, padded[-8:]))
    return ref_encrypt(key, last)[:4]


def ref_diversify(mk, f):
    return ref_encrypt(mk, f) + ref_encrypt(mk, bytes(x ^ 0xFF for x in f))


keys8 = st.binary(min_size=8, max_size=8)
keys16 = st.binary(min_size=16, max_size=16)
keys24 = st.binary(min_size=24, max_size=24)
blocks = st.binary(min_size=8, max_size=8)
messages = st.binary(min_size=0, max_size=64)


# ---- published DES vectors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, plain, cipher",
    [
        # J. Orlin Grabbe, "The DES Algorithm Illustrated" (worked example)
        ("133457799BBCDFF1", "0123456789ABCDEF", "85E813540F0AB405"),
        # FIPS 81 appendix B, ECB: "Now is the time for all "
        ("0123456789ABCDEF", "4E6F772069732074", "3FA40E8A984D4815"),
        ("0123456789ABCDEF", "68652074696D6520", "6A271787AB8883F9"),
        ("0123456789ABCDEF", "666F7220616C6C20", "893D51EC4B563B53"),
        # NIST SP 800-17 table 1 (variable plaintext, first entry)
        ("0101010101010101", "8000000000000000", "95F8A5E5DD31D900"),
        # all-zero and all-one keys and blocks (parity bits are ignored)
        ("0000000000000000", "0000000000000000", "8CA64DE9C1B123A7"),
        ("FFFFFFFFFFFFFFFF", "FFFFFFFFFFFFFFFF", "7359B2163E4EDC58"),
    ],
)
def test_des_published_vectors(key, plain, cipher):
    d = Des(H(key))
    assert d.encrypt(H(plain)) == H(cipher)
    assert d.decrypt(H(cipher)) == H(plain)


def test_des_rivest_iterated_test():
    # R. Rivest, "Testing implementations of DES" (1985): X(i+1) = E(X(i), X(i)) for even i, D for odd; X16 known.
    x = H("9474B8E8C73BCA7D")
    for i in range(16):
        d = Des(x)
        x = d.encrypt(x) if i % 2 == 0 else d.decrypt(x)
    assert x == H("1B1A2DDB4C642438")


def test_tdes_3key_sp800_67_example():
    # NIST SP 800-67 rev. 1, appendix B: 3-key TDEA ECB over "The qufck brown fox jump".
    t = Tdes(H("0123456789ABCDEF" "23456789ABCDEF01" "456789ABCDEF0123"))
    plain = b"The qufck brown fox jump"
    want = H("A826FD8CE53B855F" "CCE21C8112256FE6" "68D5C05DD9B6B900")
    got = b"".join(t.encrypt(plain[i : i + 8]) for i in range(0, 24, 8))
    assert got == want
    assert b"".join(t.decrypt(want[i : i + 8]) for i in range(0, 24, 8)) == plain


def test_tdes_2key_pboc_session_key_vector():
    # tunion-protocol.md section 4: SESPK = 3DES(DPK, 11223344 0000 0001)
    t = Tdes(H("11223344556677888877665544332211"))
    assert t.encrypt(H("1122334400000001")) == H("003238ABC57659DD")
    assert t.decrypt(H("003238ABC57659DD")) == H("1122334400000001")


def test_tdes_with_equal_halves_is_single_des():
    k = H("133457799BBCDFF1")
    assert Tdes(k + k).encrypt(H("0123456789ABCDEF")) == H("85E813540F0AB405")


# ---- the published PBOC purchase vector (tunion-protocol.md section 4) -----------------------------------------
DPK = H("11223344556677888877665544332211")
SESPK = H("003238ABC57659DD")


def test_pboc_purchase_vector():
    sespk = crypto.session_key(DPK, H("11223344"), H("0000"), H("00000001"))
    assert sespk == SESPK
    assert crypto.mac1(sespk, H("00001000"), H("06"), H("001122334455"), H("20120229135100")) == H("F15CAB75")
    assert crypto.mac2(sespk, H("00001000")) == H("56988A13")
    assert crypto.tac_key(H("00112233445566778899AABBCCDDEEFF")) == H("8888888888888888")


def test_session_key_uses_only_the_low_half_of_the_ttc():
    a = crypto.session_key(DPK, H("11223344"), H("0000"), H("00000001"))
    assert crypto.session_key(DPK, H("11223344"), H("0000"), H("FFFF0001")) == a
    assert crypto.session_key(DPK, H("11223344"), H("0000"), H("00000002")) != a


def test_mac1_is_the_pboc_mac_of_the_18_byte_message():
    msg = H("00001000" "06" "001122334455" "20120229135100")
    assert crypto.pboc_mac(SESPK, msg) == H("F15CAB75")
    assert ref_pboc_mac(SESPK, msg) == H("F15CAB75")


def test_tac_is_a_single_des_mac_under_the_xored_key():
    dtk = H("00112233445566778899AABBCCDDEEFF")
    amount, ttype, term, ttc, dt = H("00001000"), H("06"), H("001122334455"), H("00000001"), H("20120229135100")
    want = ref_pboc_mac(H("8888888888888888"), amount + ttype + term + ttc + dt)
    assert crypto.tac(dtk, amount, ttype, term, ttc, dt) == want
    # a different TTC changes the TAC (the TTC is inside the MAC, unlike MAC1)
    assert crypto.tac(dtk, amount, ttype, term, H("00000002"), dt) != want


def test_pad80():
    assert crypto.pad80(b"") == H("8000000000000000")
    assert crypto.pad80(H("01020304")) == H("0102030480000000")
    assert crypto.pad80(H("01020304050607")) == H("0102030405060780")
    assert crypto.pad80(bytes(8)) == bytes(8) + H("8000000000000000")


def test_card_key_is_two_levels_issuer_first():
    mk = H("404142434445464748494A4B4C4D4E4F")
    issuer, sn = H("0101100FFFFFFFFF"), H("7001017090798400")
    k1 = ref_diversify(mk, issuer)
    assert crypto.card_key(mk, issuer, sn) == ref_diversify(k1, sn)
    assert crypto.card_key(mk, issuer, sn) != ref_diversify(ref_diversify(mk, sn), issuer)


def test_inputs_may_be_bytearray_or_memoryview():
    buf = bytearray(H("00112233445566778899AABBCCDDEEFF"))
    assert crypto.tac_key(memoryview(buf)) == H("8888888888888888")
    sespk = crypto.session_key(bytearray(DPK), memoryview(H("11223344")), bytearray(2), memoryview(H("00000001")))
    assert sespk == SESPK
    assert crypto.mac2(memoryview(sespk), bytearray(H("00001000"))) == H("56988A13")
    d = Des(bytearray(H("133457799BBCDFF1")))
    assert d.encrypt(memoryview(H("0123456789ABCDEF"))) == H("85E813540F0AB405")


def test_transaction_type_may_be_an_int():
    args = (H("00001000"), 6, H("001122334455"), H("20120229135100"))
    assert crypto.mac1(SESPK, *args) == H("F15CAB75")
    dtk = H("00112233445566778899AABBCCDDEEFF")
    assert crypto.tac(dtk, H("00001000"), 9, bytes(6), bytes(4), bytes(7)) == crypto.tac(
        dtk, H("00001000"), H("09"), bytes(6), bytes(4), bytes(7)
    )


def test_key_caches_stay_bounded_and_do_not_change_results():
    crypto.forget_keys()
    assert crypto._cache == [] and crypto._issuer_keys == {}
    first = [crypto.card_key(bytes([i]) * 16, bytes([i + 1]) * 8, bytes(8)) for i in range(20)]
    assert len(crypto._cache) <= crypto._CACHE_MAX
    assert len(crypto._issuer_keys) <= crypto._CACHE_MAX
    again = [crypto.card_key(bytes([i]) * 16, bytes([i + 1]) * 8, bytes(8)) for i in range(20)]
    assert again == first
    assert first[3] == ref_diversify(ref_diversify(bytes([3]) * 16, bytes([4]) * 8), bytes(8))
    crypto.forget_keys()
    assert crypto.card_key(bytes([3]) * 16, bytes([4]) * 8, bytes(8)) == first[3]


def test_results_are_bytes():
    assert type(crypto.mac2(SESPK, H("00001000"))) is bytes
    assert type(crypto.diversify(DPK, bytes(8))) is bytes
    assert type(Des(bytes(8)).encrypt(bytes(8))) is bytes


@pytest.mark.parametrize(
    "call",
    [
        lambda: Des(bytes(7)),
        lambda: Des(bytes(16)),
        lambda: Tdes(bytes(8)),
        lambda: Des(bytes(8)).encrypt(bytes(9)),
        lambda: Tdes(bytes(16)).decrypt(bytes(7)),
        lambda: crypto.pboc_mac(bytes(12), b"x"),
        lambda: crypto.pboc_mac(bytes(8), b"x", iv=bytes(4)),
        lambda: crypto.diversify(bytes(8), bytes(8)),
        lambda: crypto.diversify(bytes(16), bytes(7)),
        lambda: crypto.session_key(DPK, bytes(4), bytes(2), bytes(3)),
        lambda: crypto.mac1(SESPK, bytes(4), bytes(1), bytes(5), bytes(7)),
        lambda: crypto.mac2(DPK, bytes(4)),
        lambda: crypto.tac_key(bytes(8)),
        lambda: cbc_last(bytes(12), bytes(8), Des(bytes(8))),
        lambda: cbc_last(b"", bytes(8), Des(bytes(8))),
    ],
)
def test_wrong_lengths_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


# ---- properties against the independent implementation --------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(keys8, blocks)
def test_des_matches_reference(key, block):
    d = Des(key)
    c = d.encrypt(block)
    assert c == ref_encrypt(key, block)
    assert d.decrypt(c) == block
    assert d.decrypt(block) == ref_decrypt(key, block)


@settings(max_examples=200, deadline=None)
@given(st.one_of(keys16, keys24), blocks)
def test_tdes_matches_reference(key, block):
    t = Tdes(key)
    c = t.encrypt(block)
    assert c == ref_encrypt(key, block)
    assert t.decrypt(c) == block
    assert t.decrypt(block) == ref_decrypt(key, block)


@settings(max_examples=200, deadline=None)
@given(st.one_of(keys8, keys16), messages, blocks)
def test_pboc_mac_matches_reference(key, data, iv):
    assert crypto.pboc_mac(key, data, iv) == ref_pboc_mac(key, data, iv)
    assert crypto.pboc_mac(key, data) == ref_pboc_mac(key, data)


@settings(max_examples=100, deadline=None)
@given(keys8, messages)
def test_retail_mac_with_equal_halves_is_the_single_des_mac(key, data):
    assert crypto.pboc_mac(key + key, data) == crypto.pboc_mac(key, data)


@settings(max_examples=100, deadline=None)
@given(keys16, st.binary(min_size=1, max_size=5).map(lambda b: b * 8), blocks)
def test_cbc_last_matches_reference(key, data, iv):
    assert cbc_last(data, iv, Tdes(key)) == ref_cbc_last(key, data, iv)


@settings(max_examples=200, deadline=None)
@given(keys16, blocks)
def test_diversify_matches_reference(mk, factor):
    dk = crypto.diversify(mk, factor)
    assert dk == ref_diversify(mk, factor)
    assert len(dk) == 16


@settings(max_examples=100, deadline=None)
@given(keys16, blocks, blocks, st.binary(min_size=4, max_size=4), st.binary(min_size=2, max_size=2),
       st.binary(min_size=4, max_size=4))
def test_purchase_chain_matches_reference(mk, issuer, sn, rnd, counter, ttc):
    # The same chain the PSAM and the card each compute (protocol s.4 and s.7.1), end to end.
    dpk = crypto.card_key(mk, issuer, sn)
    assert dpk == ref_diversify(ref_diversify(mk, issuer), sn)
    sespk = crypto.session_key(dpk, rnd, counter, ttc)
    assert sespk == ref_encrypt(dpk, rnd + counter + ttc[2:])
    amount, ttype, term, dt = H("000001F4"), H("09"), H("100000000123"), H("20261125081500")
    assert crypto.mac1(sespk, amount, ttype, term, dt) == ref_pboc_mac(sespk, amount + ttype + term + dt)
    assert crypto.mac2(sespk, amount) == ref_pboc_mac(sespk, amount)
    want_tac = ref_pboc_mac(bytes(a ^ b for a, b in zip(mk[:8], mk[8:])), amount + ttype + term + ttc + dt)
    assert crypto.tac(mk, amount, ttype, term, ttc, dt) == want_tac


@given(messages)
def test_pad80_matches_reference(data):
    p = crypto.pad80(data)
    assert p == ref_pad80(data)
    assert len(p) % 8 == 0 and len(data) < len(p) <= len(data) + 8


# ---- MicroPython small ints: a value >= 2**30 would be a heap-allocated long on the board ----------------------
SMALL = 1 << 30


def test_tables_and_round_keys_fit_micropython_small_ints():
    from tunion import des

    for table in des._EV + des._OD + des._PC2T + (des._HI, des._LO):
        assert all(0 <= v < SMALL for v in table)
    for key in (bytes(8), b"\xff" * 8, H("133457799BBCDFF1")):
        ks = des._schedule(key)
        assert all(0 <= v < SMALL for t in ks for v in t)


@settings(max_examples=20, deadline=None)
@given(keys16, blocks, blocks)
def test_every_intermediate_value_fits_micropython_small_ints(key, block, iv):
    import sys

    from tunion import des

    seen = []

    def tracer(frame, event, arg):
        if frame.f_code.co_name not in ("_crypt", "_schedule", "cbc_last"):
            return None
        if event in ("line", "return"):
            for name, v in frame.f_locals.items():
                if type(v) is int:
                    seen.append(v)
                    assert 0 <= v < SMALL, (frame.f_code.co_name, name, hex(v))
        return tracer

    sys.settrace(tracer)
    try:
        t = Tdes(key)
        t.decrypt(t.encrypt(block))
        crypto.pboc_mac(key, block + block[:5], iv)
        des._schedule(key[:8])
    finally:
        sys.settrace(None)
    assert len(seen) > 1000  # the tracer did look inside the rounds
