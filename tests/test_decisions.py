"""The decision table end to end: the real tap, the simulated card, the software SAM, the journal.

Each case asserts the outcome, the fare, the message the passenger sees, and whether the card was debited
(balance, offline counter and EF1E as the card itself reports them). validator.md s.2, issue 3.
"""
import copy
import json

import pytest
from hypothesis import given, settings, strategies as st

from sim import keys
from sim.card import BLOCKED, ABSENT, make_card, make_other_city_card
from tunion import messages, outcome as O
from tunion.clock import secs_from_civil
from tunion.config import DEFAULT, load_config
from tunion.denylist import Denylist, encode, install_denylist
from tunion.journal import MemoryJournal
from tunion.psam import Psam
from tunion.purchase import tap
from tunion.record import KIND_INTENT
from tunion.rules import State
from tunion.softsam import MemoryTtcStore, SoftSam, load_keys

T0 = secs_from_civil(2026, 12, 1, 8, 0, 0)  # a Tuesday morning, after the build date
TICK0 = 100000
CARD = keys.TEST_CARD_NO


def config(line=101, **windows):
    d = copy.deepcopy(DEFAULT)
    d["city"] = keys.TEST_CITY.hex()
    d["local_issuers"] = [keys.TEST_ISSUER.hex()]
    d["line"] = line
    d["windows"].update(windows)
    return load_config(json.dumps(d))


class Validator:
    """One validator: its PSAM (software SAM), journal, configuration and RAM state."""

    def __init__(self, cfg=None, journal=None):
        self.sam = Psam(SoftSam(load_keys(keys.key_file_text()), MemoryTtcStore(), lambda s: None)).open()
        self.journal = journal if journal is not None else MemoryJournal()
        self.config = cfg if cfg is not None else config()
        self.state = State()

    def tap(self, card, secs, ticks):
        card.present()
        return tap(card, self.sam, self.journal, self.config, self.state, (secs, ticks))

    def reboot(self):
        self.state = State()  # RAM lost; the journal (and its refusal counters) survive


def snapshot(card):
    return card.balance, card.counter, list(card.ef1e)


def check(result, status, fare, debited, card, before):
    assert result.status == status, result
    zh, en = messages.text(status)
    shown = messages.screen(result)
    assert shown[:2] == [zh, en]
    after = snapshot(card)
    if debited:
        assert result.fare == fare
        assert after[0] == before[0] - fare and after[1] == before[1] + 1
        assert result.balance == after[0]
        assert shown[2:] == ["扣款 " + messages.yuan(fare), "余额 " + messages.yuan(after[0])]
        if card.has_ef1e:
            assert after[2][0][17:21] == fare.to_bytes(4, "big")  # EF1E amount: the ride is on the card
    else:
        assert after == before, "a card that was not charged was written to"


# (name, card factory, config kwargs, history: [(line, seconds after T0)], tap at (s, ms), state, status, fare)
CASES = [
    ("ordinary local card", lambda: make_card(), {}, [], (0, 0), O.PAID, 200),
    ("local student: half fare", lambda: make_card(card_type=2), {}, [], (0, 0), O.PAID, 100),
    ("local senior: free ride, still recorded", lambda: make_card(card_type=3), {}, [], (0, 0), O.PAID, 0),
    ("visiting senior pays the ordinary fare", lambda: make_other_city_card(card_type=3), {}, [], (0, 0),
     O.PAID, 200),
    ("local concession inside its window", lambda: make_card(card_type=2), {}, [(101, 0)], (300, 0),
     O.REFUSED_ALREADY_PAID, 0),
    ("local concession on the window's last second", lambda: make_card(card_type=2), {}, [(101, 0)], (600, 0),
     O.REFUSED_ALREADY_PAID, 0),
    ("local concession after its window", lambda: make_card(card_type=2), {}, [(101, 0)], (601, 0),
     O.PAID, 100),
    ("visiting concession card inside the window", lambda: make_other_city_card(card_type=2), {},
     [(101, 0)], (300, 0), O.PAID, 200),
    ("transfer inside the window", lambda: make_card(), {}, [(102, 0)], (5400, 0), O.PAID, 100),
    ("transfer outside the window", lambda: make_card(), {}, [(102, 0)], (5401, 0), O.PAID, 200),
    ("same line again is not a transfer", lambda: make_card(), {}, [(101, 0)], (60, 0), O.PAID, 200),
    ("expiry on the boundary day", lambda: make_card(expiry=20261201), {}, [], (0, 0), O.PAID, 200),
    ("expired the day before", lambda: make_card(expiry=20261130), {}, [], (0, 0), O.REFUSED_EXPIRED, 0),
    ("start date tomorrow", lambda: make_card(start=20261202), {}, [], (0, 0), O.REFUSED_NOT_YET_VALID, 0),
    ("not activated", lambda: make_card(app_version=0), {}, [], (0, 0), O.REFUSED_NOT_ENABLED, 0),
    ("visiting card not enabled for interoperation", lambda: make_other_city_card(interop=0), {}, [], (0, 0),
     O.REFUSED_NOT_ENABLED, 0),
    ("local card without the interoperation flag", lambda: make_card(interop=0), {}, [], (0, 0), O.PAID, 200),
    ("application blocked", lambda: make_card(state=BLOCKED), {}, [], (0, 0), O.REFUSED_BLOCKED, 0),
    ("not a T-Union card", lambda: make_card(state=ABSENT), {}, [], (0, 0), O.REFUSED_UNSUPPORTED, 0),
    ("balance below the fare", lambda: make_card(balance=150), {}, [], (0, 0), O.REFUSED_INSUFFICIENT, 0),
    ("exactly the fare", lambda: make_card(balance=200), {}, [], (0, 0), O.PAID, 200),
    ("clock before the build date", lambda: make_card(), {}, [], (-86400 * 30, 0), O.OOS_CLOCK, 0),
    ("card without EF1E (simple purchase)", lambda: make_card(has_ef1e=False), {}, [], (0, 0), O.PAID, 200),
]


@pytest.mark.parametrize("name,factory,cfg_kw,history,at,status,fare", CASES, ids=[c[0] for c in CASES])
def test_decision_table(name, factory, cfg_kw, history, at, status, fare):
    card = factory()
    for line, s in history:  # earlier rides on this or other vehicles: they are on the card's EF1E
        r = Validator(config(line)).tap(card, T0 + s, TICK0)
        assert r.status == O.PAID
    v = Validator(config(**cfg_kw))
    before = snapshot(card)
    r = v.tap(card, T0 + at[0], TICK0 + at[1])
    check(r, status, fare, status == O.PAID, card, before)
    if status in O.REFUSALS:
        assert v.journal.refusals() == {status: 1}
        if status == O.REFUSED_INSUFFICIENT:
            assert r.balance == 150 and messages.screen(r)[2] == "余额 " + messages.yuan(150)
    else:
        assert v.journal.refusals() == {}
    if status == O.PAID and fare == 0:
        intents = [x for x in v.journal.read_from(1, 10) if x.kind == KIND_INTENT]
        assert len(intents) == 1 and intents[0].amount == 0  # the free ride is in the records


def test_repeat_at_0_9_s_is_ignored_and_at_1_1_s_pays_again():
    v = Validator()
    card = make_card()
    before = snapshot(card)
    check(v.tap(card, T0, TICK0), O.PAID, 200, True, card, before)
    before = snapshot(card)
    r = v.tap(card, T0, TICK0 + 900)
    check(r, O.IGNORED_REPEAT, 0, False, card, before)
    assert messages.beep(r.status) == messages.SILENT
    before = snapshot(card)
    check(v.tap(card, T0 + 1, TICK0 + 1100), O.PAID, 200, True, card, before)
    assert v.journal.refusals() == {}  # a repeat is not a refusal


def test_multi_rider_ordinary_card_pays_for_each_rider():
    v = Validator()
    card = make_card(balance=1000)
    for i in range(3):
        before = snapshot(card)
        check(v.tap(card, T0 + 2 * i, TICK0 + 1100 * i), O.PAID, 200, True, card, before)
    assert card.balance == 400


def test_concession_refusal_survives_a_reboot():
    v = Validator()
    card = make_card(card_type=2)
    assert v.tap(card, T0, TICK0).status == O.PAID
    v.reboot()
    before = snapshot(card)
    check(v.tap(card, T0 + 120, 50), O.REFUSED_ALREADY_PAID, 0, False, card, before)


def test_denylisted_card_with_enough_balance(tmp_path):
    path = str(tmp_path / "denylist.bin")
    install_denylist(encode([CARD, CARD + 7], 3), path)
    cfg = config()
    cfg.denylist = Denylist(path)
    v = Validator(cfg)
    card = make_card(balance=100000)
    before = snapshot(card)
    r = v.tap(card, T0, TICK0)
    check(r, O.REFUSED_DENYLISTED, 0, False, card, before)
    assert messages.text(r.status) == ("黑名单卡", "Card denylisted")
    other = make_other_city_card()
    before = snapshot(other)
    check(v.tap(other, T0, TICK0), O.PAID, 200, True, other, before)
    assert 1 <= cfg.denylist.reads <= 2 * 2
    cfg.denylist.close()


def test_refusals_are_counted_per_reason_through_tap():
    v = Validator()
    for card in (make_card(expiry=20200101), make_card(expiry=20200101), make_card(app_version=0),
                 make_card(balance=10), make_card(state=BLOCKED)):
        v.tap(card, T0, TICK0)
    ok = make_card()
    v.tap(ok, T0, TICK0)
    v.tap(ok, T0, TICK0 + 10)  # a silent repeat is not a refusal
    assert v.journal.refusals() == {
        O.REFUSED_EXPIRED: 2,
        O.REFUSED_NOT_ENABLED: 1,
        O.REFUSED_INSUFFICIENT: 1,
        O.REFUSED_BLOCKED: 1,
    }


@settings(max_examples=150, deadline=None)
@given(
    card_type=st.sampled_from((1, 2, 3, 5, 0, 4, 6)),
    visiting=st.booleans(),
    interop=st.sampled_from((1, 1, 1, 0)),
    app_version=st.sampled_from((1, 1, 1, 0)),
    start=st.sampled_from((20200101, 20200101, 20261201, 20261202)),
    expiry=st.sampled_from((20301231, 20301231, 20261201, 20261130)),
    balance=st.integers(0, 1000),
    history=st.lists(st.tuples(st.sampled_from((101, 102)), st.integers(-1200, 0)), max_size=2),
    at=st.integers(0, 900),
    denylisted=st.booleans(),
)
def test_a_refused_card_is_never_debited(card_type, visiting, interop, app_version, start, expiry, balance,
                                         history, at, denylisted):
    mk = make_other_city_card if visiting else make_card
    card = mk(card_type=card_type, interop=interop, app_version=app_version, start=start, expiry=expiry,
              balance=balance + 10000)
    for line, s in sorted(history, key=lambda h: h[1]):
        Validator(config(line)).tap(card, T0 + s, TICK0)  # earlier rides (refused ones leave nothing)
    card.balance = balance
    cfg = config()

    class Deny:
        def contains(self, n):
            return denylisted and n == card.card_no
    cfg.denylist = Deny()
    v = Validator(cfg)
    before = snapshot(card)
    r = v.tap(card, T0 + at, TICK0)
    assert r.status in O.ALL
    if r.status == O.PAID:
        assert 0 <= r.fare <= cfg.base_fare
        assert card.balance == before[0] - r.fare and card.counter == before[1] + 1
    else:
        assert snapshot(card) == before
        assert r.status in O.REFUSALS
        assert v.journal.refusals() == {r.status: 1}
        assert [x for x in v.journal.read_from(1, 10)] == []  # refusals write no record
    if visiting:
        assert r.status != O.REFUSED_ALREADY_PAID
        if r.status == O.PAID:
            assert r.fare in (200, 100)  # the ordinary fare, or with the transfer discount


def test_optional_block_of_a_denylisted_card(tmp_path):
    """block_denylisted (off by default): what the tap does after REFUSED_DENYLISTED when it is on. The tap
    itself does not call it yet (purchase.py belongs to the integrator); this drives the same card session."""
    from tunion.cardfiles import Ef15
    from tunion.denylist import block_application

    assert config().block_denylisted is False
    path = str(tmp_path / "denylist.bin")
    install_denylist(encode([CARD], 1), path)
    cfg = config()
    cfg.denylist = Denylist(path)
    v = Validator(cfg)
    card = make_card()
    before = snapshot(card)
    r = v.tap(card, T0, TICK0)
    assert r.status == O.REFUSED_DENYLISTED
    # The purse is still selected after the refusal: block it with the PSAM's maintenance key MAC.
    ef15 = Ef15.decode(card.ef15)  # what the tap read from the SELECT answer
    assert ef15.card_no == CARD
    assert block_application(card, v.sam, ef15) is True
    assert card.state == BLOCKED and snapshot(card) == before  # no money moved
    r = v.tap(card, T0 + 5, TICK0 + 5000)
    assert r.status == O.REFUSED_BLOCKED
    assert v.journal.refusals() == {O.REFUSED_DENYLISTED: 1, O.REFUSED_BLOCKED: 1}
    # A wrong MAC (another card's factors) leaves the card as it was.
    other = make_card(card_no=CARD + 1)
    other.present()
    assert v.tap(other, T0 + 10, TICK0 + 10000).status == O.PAID
    assert block_application(other, v.sam, ef15) is False
    assert other.state != BLOCKED
    cfg.denylist.close()


def test_refusal_counters_through_tap_survive_a_reboot_with_the_flash_journal():
    from sim.nor import NorFlash
    from tunion.flashjournal import FlashJournal
    from tunion.segment import SegmentHeader

    def header():
        return SegmentHeader(b"\x24\x0a\xc4\x11\x22\x33", b"PSAM000001", keys.TEST_TERMINAL, "B-1234", "101", 1)

    nor = NorFlash(8, 4096)
    j = FlashJournal(nor, header())
    j.prepare()
    v = Validator(journal=j)
    v.tap(make_card(expiry=20200101), T0, TICK0)
    v.tap(make_other_city_card(interop=0), T0, TICK0)
    ok = make_card()
    assert v.tap(ok, T0, TICK0).status == O.PAID
    student = make_card(card_type=2, card_no=CARD + 1)
    assert v.tap(student, T0, TICK0).status == O.PAID
    assert v.tap(student, T0 + 60, TICK0 + 60000).status == O.REFUSED_ALREADY_PAID
    v.reboot()
    j2 = FlashJournal(nor, header())  # power cycle: the journal is read back from flash
    j2.prepare()
    assert j2.refusals() == {O.REFUSED_EXPIRED: 1, O.REFUSED_NOT_ENABLED: 1, O.REFUSED_ALREADY_PAID: 1}
    v.journal = j2
    assert v.tap(student, T0 + 120, 7).status == O.REFUSED_ALREADY_PAID  # the card, not RAM, says so
    assert j2.refusals()[O.REFUSED_ALREADY_PAID] == 2
