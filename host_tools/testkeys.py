"""TEST KEYS ONLY, for the depot's TAC check: the documented public master key the test cards' TACs come from.

    from host_tools.testkeys import TEST_MTK
    keys = {(0x01, 0x00): TEST_MTK}      # (key version, algorithm ID) -> TAC master key

The same value as tests/sim/keys.py MTK and docs/test-keys.md (a test keeps the copies equal). Real TAC keys
never reach a laptop: the clearing centre checks real TACs; the depot checks only what test keys signed.
"""

TEST_MTK = bytes.fromhex("544553542D4D544B2D30303030303031")  # "TEST-MTK-0000001"
TEST_KEY_VERSION = 0x01
TEST_ALG_ID = 0x00  # 3DES/DES (protocol section 7.8)
TEST_TAC_KEYS = {(TEST_KEY_VERSION, TEST_ALG_ID): TEST_MTK}
