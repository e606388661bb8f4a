"""DES, 3DES and PBOC crypto cases that run under pytest and under the MicroPython interpreter.

    case_pboc_purchase_vector()   # tunion-protocol.md section 4: SESPK, MAC1, MAC2, TAC key
The golden values not quoted from a publication were computed with OpenSSL's DES (tests/test_crypto.py reference).
"""
from tunion import crypto
from tunion.des import Des, Tdes, cbc_last

H = bytes.fromhex

DPK = H("11223344556677888877665544332211")
SESPK = H("003238ABC57659DD")
MK = H("404142434445464748494A4B4C4D4E4F")
ISSUER = H("0101100FFFFFFFFF")
SN = H("7001017090798400")


def case_des_grabbe_worked_example():
    d = Des(H("133457799BBCDFF1"))
    assert d.encrypt(H("0123456789ABCDEF")) == H("85E813540F0AB405")
    assert d.decrypt(H("85E813540F0AB405")) == H("0123456789ABCDEF")


def case_des_fips81_now_is_the_time():
    d = Des(H("0123456789ABCDEF"))
    plain = b"Now is the time for all "
    want = H("3FA40E8A984D4815" "6A271787AB8883F9" "893D51EC4B563B53")
    assert b"".join([d.encrypt(plain[i : i + 8]) for i in range(0, 24, 8)]) == want
    assert b"".join([d.decrypt(want[i : i + 8]) for i in range(0, 24, 8)]) == plain


def case_des_known_answers():
    assert Des(H("0101010101010101")).encrypt(H("8000000000000000")) == H("95F8A5E5DD31D900")  # SP 800-17
    assert Des(bytes(8)).encrypt(bytes(8)) == H("8CA64DE9C1B123A7")
    assert Des(b"\xff" * 8).encrypt(b"\xff" * 8) == H("7359B2163E4EDC58")


def case_des_rivest_iterated_test():
    x = H("9474B8E8C73BCA7D")
    for i in range(16):
        d = Des(x)
        x = d.encrypt(x) if i % 2 == 0 else d.decrypt(x)
    assert x == H("1B1A2DDB4C642438")


def case_tdes_vectors():
    t = Tdes(H("0123456789ABCDEF" "23456789ABCDEF01" "456789ABCDEF0123"))  # SP 800-67 rev. 1 appendix B
    assert t.encrypt(b"The qufc") == H("A826FD8CE53B855F")
    assert t.decrypt(H("68D5C05DD9B6B900")) == b"fox jump"
    assert Tdes(DPK).encrypt(H("1122334400000001")) == SESPK
    k = H("133457799BBCDFF1")
    assert Tdes(k + k).encrypt(H("0123456789ABCDEF")) == H("85E813540F0AB405")


def case_decrypt_inverts_encrypt_over_many_keys():
    # A cheap pseudo-random sweep (LCG): keys and blocks of every byte value, both ciphers.
    s = 12345
    for _ in range(24):
        b = bytearray(24)
        for i in range(24):
            s = (s * 1103515245 + 12345) & 0x7FFFFFFF
            b[i] = (s >> 16) & 0xFF
        blk = bytes(b[16:24])
        d = Des(b[0:8])
        assert d.decrypt(d.encrypt(blk)) == blk
        assert d.encrypt(d.decrypt(blk)) == blk
        t = Tdes(b[0:16])
        assert t.decrypt(t.encrypt(blk)) == blk


def case_pboc_purchase_vector():
    sespk = crypto.session_key(DPK, H("11223344"), H("0000"), H("00000001"))
    assert sespk == SESPK
    assert crypto.mac1(sespk, H("00001000"), H("06"), H("001122334455"), H("20120229135100")) == H("F15CAB75")
    assert crypto.mac2(sespk, H("00001000")) == H("56988A13")
    assert crypto.tac_key(H("00112233445566778899AABBCCDDEEFF")) == H("8888888888888888")


def case_tac_golden():
    dtk = H("00112233445566778899AABBCCDDEEFF")
    t = crypto.tac(dtk, H("00001000"), H("06"), H("001122334455"), H("00000001"), H("20120229135100"))
    assert t == H("B3A0D49C")


def case_pad80():
    assert crypto.pad80(b"") == H("8000000000000000")
    assert crypto.pad80(H("01020304050607")) == H("0102030405060780")
    assert crypto.pad80(bytes(8)) == bytes(8) + H("8000000000000000")


def case_retail_mac_golden():
    k16 = H("0123456789ABCDEFFEDCBA9876543210")
    assert crypto.pboc_mac(k16, H("841E000004") + H("1122334400000000")) == H("F59CF280")
    assert crypto.pboc_mac(k16, bytes(8)) == H("1218E5FE")
    assert crypto.pboc_mac(k16, b"") == H("F1FBCF2A")
    k8 = H("133457799BBCDFF1")
    assert crypto.pboc_mac(k8 + k8, b"retail") == crypto.pboc_mac(k8, b"retail")


def case_mac_with_iv_golden():
    assert crypto.pboc_mac(H("0123456789ABCDEF"), H("0102030405"), H("A1B2C3D400000000")) == H("2D0AF60C")


def case_cbc_last_single_block_is_ecb_of_iv_xor_data():
    d = Des(H("0123456789ABCDEF"))
    assert cbc_last(b"Now is t", bytes(8), d) == H("3FA40E8A984D4815")


def case_diversify_and_card_key_golden():
    assert crypto.diversify(MK, ISSUER) == H("41F9F7A65EE1AB7B1703BBB61A2EACB3")
    assert crypto.card_key(MK, ISSUER, SN) == H("B3B8B6898F0F84703B45D3ABF2174207")
    assert crypto.card_key(MK, ISSUER, SN) == crypto.diversify(crypto.diversify(MK, ISSUER), SN)


def case_inputs_may_be_bytearray_or_memoryview():
    assert crypto.tac_key(memoryview(bytearray(H("00112233445566778899AABBCCDDEEFF")))) == H("8888888888888888")
    sespk = crypto.session_key(bytearray(DPK), memoryview(H("11223344")), bytearray(2), memoryview(H("00000001")))
    assert sespk == SESPK
    assert crypto.mac2(memoryview(sespk), bytearray(H("00001000"))) == H("56988A13")


def case_wrong_lengths_raise_value_error():
    bad = (
        lambda: Des(bytes(7)),
        lambda: Tdes(bytes(8)),
        lambda: Des(bytes(8)).encrypt(bytes(9)),
        lambda: crypto.pboc_mac(bytes(12), b"x"),
        lambda: crypto.diversify(bytes(16), bytes(7)),
        lambda: crypto.mac2(DPK, bytes(4)),
    )
    for call in bad:
        try:
            call()
        except ValueError:
            continue
        assert False, "no ValueError"


def case_des_block_allocates_only_its_result():
    # On MicroPython a value >= 2**30 is a heap long: one in the rounds would allocate kilobytes per block.
    import gc

    if not hasattr(gc, "mem_alloc"):  # CPython: tests/test_crypto.py checks the values themselves
        return
    d = Des(H("133457799BBCDFF1"))
    blk = H("0123456789ABCDEF")
    d.encrypt(blk)
    gc.collect()
    gc.disable()
    try:
        a0 = gc.mem_alloc()
        for _ in range(50):
            blk = d.encrypt(blk)
        per_block = (gc.mem_alloc() - a0) // 50
    finally:
        gc.enable()
    assert per_block <= 256, per_block
