"""The refusal-counter layout and the journals' derived sizes, pinned: outcome.ALL's order is an on-flash index
(both journals store counters by position), and the room figures in flashjournal.py follow record.py's sizes."""
from tunion import outcome as O
from tunion import flashjournal, fsjournal, jstate
from tunion.journal import MAX_UNRESOLVED, NO_TAC_CARDS
from tunion.record import INTENT_SIZE, OUTCOME_SIZE, MAX_SIZE, KIND_INTENT, SETTLEMENTS, size_of
from tunion.segment import HEADER_SIZE, HEADER_TEXT_LIMITS, CONFIG_VERSION_RANGE, SegmentHeader
from tunion.jmeta import ENTRY

FIRST_18 = (
    "PAID",
    "PAID_RECOVERED",
    "IGNORED_REPEAT",
    "TAP_AGAIN",
    "REFUSED_BLOCKED",
    "REFUSED_NOT_ENABLED",
    "REFUSED_EXPIRED",
    "REFUSED_NOT_YET_VALID",
    "REFUSED_DENYLISTED",
    "REFUSED_ALREADY_PAID",
    "REFUSED_INSUFFICIENT",
    "REFUSED_UNSUPPORTED",
    "CARD_ERROR",
    "OOS_CLOCK",
    "OOS_RECORDS_FULL",
    "OOS_CONFIG",
    "OOS_SAM",
    "MAC2_REJECTED",
)


def test_outcome_order_is_the_on_flash_index():
    assert tuple(O.ALL[:18]) == FIRST_18
    assert len(set(O.ALL)) == len(O.ALL)
    assert len(O.ALL) < 255  # a meta entry's index byte, a state file's counter count


def test_derived_sizes_follow_the_record_sizes():
    assert flashjournal._NEED == INTENT_SIZE + 2 * OUTCOME_SIZE
    assert flashjournal._RESERVE == MAX_UNRESOLVED * OUTCOME_SIZE
    assert all(size_of(k) == OUTCOME_SIZE for k in SETTLEMENTS)  # the reserve is counted in outcome-size records
    assert size_of(KIND_INTENT) == INTENT_SIZE and MAX_SIZE == max(INTENT_SIZE, OUTCOME_SIZE)
    assert INTENT_SIZE % 8 == 0 and OUTCOME_SIZE % 8 == 0 and HEADER_SIZE % 8 == 0
    assert jstate._ENTRY == INTENT_SIZE + 6 + 2
    assert fsjournal._SLACK_BLOCKS * 512 >= 3 * 512 + MAX_UNRESOLVED * OUTCOME_SIZE  # smallest block size tested


def test_meta_sector_holds_every_value_the_raw_journal_keeps():
    # ack, floor, checkpoint, every counter, the pins, two loss counters, the no-TAC cards, their counts, "other"
    values = 3 + len(O.ALL) + MAX_UNRESOLVED + 2 + 2 * NO_TAC_CARDS + 1
    assert (values + 1) * ENTRY + 2 * flashjournal._META_LOW * ENTRY <= 4096  # the board's sector, with room to spare


def test_header_limits_are_what_the_header_enforces():
    assert HEADER_TEXT_LIMITS == {"line": 8, "vehicle": 10}
    assert CONFIG_VERSION_RANGE == (0, 2**32 - 1)
    SegmentHeader(line="x" * 8, vehicle="沪AD1234", config_version=2**32 - 1).encode(1, 1)
    for kw in ({"line": "x" * 9}, {"vehicle": "沪AD123456"}, {"config_version": 2**32}, {"config_version": -1}):
        try:
            SegmentHeader(**kw)
            assert False, kw
        except ValueError:
            pass
