"""TEST KEYS ONLY: the documented master keys and identities the simulators and the software SAM use.

    from sim.keys import MPK, MTK, TEST_ISSUER, TEST_TERMINAL
    card = SimCard(issuer=TEST_ISSUER)  # its DPK = card_key(MPK, issuer, sn8), protocol section 7.1

These values are public (docs/test-keys.md). They sign nothing of value: every record the software SAM signs
carries the test-keys flag. They are the only keys this repository may hold. Each 16-byte key spells its own
name in ASCII so that it is recognisable wherever it shows up in a dump.
"""

# Master keys (2-key 3DES, 16 bytes), diversified per card in two levels, issuer first (protocol section 7.1).
MPK = b"TEST-MPK-0000001"  # 544553542D4D504B2D30303030303031: purchase (消费) master key
MTK = b"TEST-MTK-0000001"  # 544553542D4D544B2D30303030303031: TAC master key
MBK = b"TEST-MBK-0000001"  # 544553542D4D424B2D30303030303031: application block (应用维护) master key

KEY_INDEX = 0x01  # purchase key index: PSAM EF17 byte 0, INITIALIZE's first data byte (protocol section 3)
KEY_VERSION = 0x01  # key version the test cards answer in INITIALIZE
ALG_ID = 0x00  # 3DES/DES (protocol section 7.8)

# Test identities. Issuer ID layout as observed on real cards: issuer code (2) city (2) FFFFFFFF.
TEST_CITY = b"\x99\x90"  # EF17 bytes 6..7 of a local test card; the validator's configured city code
TEST_PROVINCE = b"\x99\x00"  # EF17 bytes 4..5
TEST_ISSUER = b"\x01\x99\x99\x90\xff\xff\xff\xff"  # EF15 bytes 0..7 of a local test card
OTHER_CITY = b"\x99\x80"  # a second test city, for cards from elsewhere (异地卡)
OTHER_PROVINCE = b"\x98\x00"
OTHER_ISSUER = b"\x02\x99\x99\x80\xff\xff\xff\xff"

TEST_TERMINAL = b"\x99\x99\x00\x00\x00\x01"  # PSAM EF16 terminal number, 6 bytes BCD
TEST_PSAM_SERIAL = b"\x99\x99\x00\x00\x00\x00\x00\x00\x00\x01"  # PSAM EF15 serial, 10 bytes BCD
TEST_CARD_NO = 3199990000000000001  # 19 digits starting 31 (protocol section 7.6)


def key_file_text():
    """The software SAM's key file (softsam.load_keys format) holding these test keys and identities."""
    return (
        "# software SAM key file: TEST KEYS ONLY (docs/test-keys.md)\n"
        "mpk = %s\nmtk = %s\nmbk = %s\nterminal = %s\nserial = %s\nkey_index = %d\nkey_version = %d\n"
        % (MPK.hex(), MTK.hex(), MBK.hex(), TEST_TERMINAL.hex(), TEST_PSAM_SERIAL.hex(), KEY_INDEX, KEY_VERSION)
    )
