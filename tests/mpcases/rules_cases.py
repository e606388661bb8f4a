"""Decision rules, case by case, on real card-file objects (run under pytest and under MicroPython).

    case_checks_run_in_order()   # clock, activation, interoperation, dates, denylist, repeat, concession
"""
import json

from tunion import outcome as O
from tunion.cardfiles import Ef15, Ef17, Ef1eRecord
from tunion.clock import secs_from_civil, bcd_datetime
from tunion.config import Config, ConfigError, DEFAULT, load_config
from tunion.rules import State, decide, fare_for, is_transfer, last_boarding

CITY = b"\x24\x82"
OTHER_CITY = b"\x10\x00"
LOCAL_ISSUER = b"\x05\x21\x24\x82\xff\xff\xff\xff"
OTHER_ISSUER = b"\x01\x01\x10\x00\xff\xff\xff\xff"
SERIAL = b"\x03\x10\x51\x70\x01\x01\x70\x90\x79\x84"  # card number 3105170010170907984
NOW = secs_from_civil(2026, 12, 1, 8, 0, 0)


class Facts:
    """Stands in for tunion.rules.CardFacts: what the tap read from the card."""

    def __init__(self, card_type=1, local=True, interop=1, app_version=1, start=20200101, expiry=20301231,
                 last=None):
        self.ef15 = Ef15(LOCAL_ISSUER if local else OTHER_ISSUER, 2, app_version, SERIAL, start, expiry)
        self.ef17 = Ef17(b"\x00\x00\x01\x56", b"\x00\x00", CITY if local else OTHER_CITY, interop, card_type)
        self.card_no = self.ef15.card_no
        self.last_ef1e = last
        self.compound = True


def boarding(ago_s, line=101, city=CITY, ttype=0x06, industry=0x02, dt=None):
    """An EF1E record of a boarding `ago_s` seconds before NOW, as the tap writes it."""
    return Ef1eRecord(ttype, b"\x00\x00\x00\x00\x00\x00\x00\x01", industry, line, 0, 1, 0, 200, 4800,
                      dt if dt is not None else bcd_datetime(NOW - ago_s), city, LOCAL_ISSUER)


class FakeDenylist:
    def __init__(self, cards):
        self.cards = cards

    def contains(self, card_no):
        return card_no in self.cards


def cfg(**over):
    c = Config.default()
    for k in over:
        setattr(c, k, over[k])
    return c


def d(facts, c=None, state=None, secs=NOW, ticks=5000):
    return decide(facts, c if c is not None else Config.default(), state if state is not None else State(),
                  (secs, ticks))


def case_ordinary_local_card_pays_base_fare():
    assert d(Facts()) == (None, 200)
    assert d(Facts(local=False)) == (None, 200)


def case_clock_before_build_date_is_out_of_service():
    assert d(Facts(), secs=secs_from_civil(2000, 1, 1)) == (O.OOS_CLOCK, 0)
    assert d(Facts(), secs=secs_from_civil(2026, 11, 24, 23, 59, 59)) == (O.OOS_CLOCK, 0)
    assert d(Facts(), secs=secs_from_civil(2026, 11, 25)) == (None, 200)
    assert decide(Facts(), None, State(), (NOW, 0)) == (O.OOS_CONFIG, 0)


def case_activation_and_interoperation():
    assert d(Facts(app_version=0)) == (O.REFUSED_NOT_ENABLED, 0)
    assert d(Facts(app_version=0, local=False)) == (O.REFUSED_NOT_ENABLED, 0)
    # interoperation flag 0000: refused when visiting, accepted at home
    assert d(Facts(interop=0, local=False)) == (O.REFUSED_NOT_ENABLED, 0)
    assert d(Facts(interop=0, local=True)) == (None, 200)


def case_dates_on_the_boundary_days():
    today = 20261201
    assert d(Facts(expiry=today)) == (None, 200)  # valid through its expiry day
    assert d(Facts(expiry=today - 1)) == (O.REFUSED_EXPIRED, 0)
    assert d(Facts(expiry=today), secs=NOW + 16 * 3600 - 1) == (None, 200)  # 23:59:59 on that day
    assert d(Facts(expiry=today), secs=NOW + 16 * 3600) == (O.REFUSED_EXPIRED, 0)  # 00:00 the day after
    assert d(Facts(start=today)) == (None, 200)
    assert d(Facts(start=today + 1)) == (O.REFUSED_NOT_YET_VALID, 0)


def case_checks_run_in_order():
    c = cfg(denylist=FakeDenylist({3105170010170907984}))
    # not activated beats expired beats denylisted beats repeat
    assert d(Facts(app_version=0, expiry=20200101), c) == (O.REFUSED_NOT_ENABLED, 0)
    assert d(Facts(expiry=20200101), c) == (O.REFUSED_EXPIRED, 0)
    s = State()
    s.paid(3105170010170907984, 5000)
    assert d(Facts(), c, s, ticks=5100) == (O.REFUSED_DENYLISTED, 0)
    assert d(Facts(), cfg(), s, ticks=5100) == (O.IGNORED_REPEAT, 0)
    # the clock is checked before anything on the card
    assert d(Facts(app_version=0), c, secs=secs_from_civil(2001, 1, 1)) == (O.OOS_CLOCK, 0)


def case_denylisted_card_is_refused_whatever_its_balance():
    c = cfg(denylist=FakeDenylist({3105170010170907984}))
    assert d(Facts(), c) == (O.REFUSED_DENYLISTED, 0)
    assert d(Facts(card_type=3), c) == (O.REFUSED_DENYLISTED, 0)
    assert d(Facts(), cfg(denylist=FakeDenylist({1}))) == (None, 200)


def case_repeat_at_0_9_and_1_1_seconds():
    s = State()
    s.paid(3105170010170907984, 10000)
    assert d(Facts(), state=s, ticks=10900) == (O.IGNORED_REPEAT, 0)
    assert d(Facts(), state=s, ticks=10999) == (O.IGNORED_REPEAT, 0)
    assert d(Facts(), state=s, ticks=11000) == (None, 200)
    assert d(Facts(), state=s, ticks=11100) == (None, 200)  # an ordinary card may pay for another rider
    # another card inside the second is not a repeat
    other = Facts()
    other.card_no = 3105170010170907985
    assert d(other, state=s, ticks=10100) == (None, 200)


def case_repeat_across_tick_wraparound():
    s = State()
    s.paid(3105170010170907984, (1 << 30) - 300)  # MicroPython ticks_ms wraps at 2**30
    assert d(Facts(), state=s, ticks=500) == (O.IGNORED_REPEAT, 0)  # 800 ms later
    assert d(Facts(), state=s, ticks=800) == (None, 200)  # 1100 ms later


def case_concession_card_inside_and_outside_its_window():
    student = 2
    assert d(Facts(card_type=student)) == (None, 100)
    assert d(Facts(card_type=student, last=boarding(300))) == (O.REFUSED_ALREADY_PAID, 0)
    assert d(Facts(card_type=student, last=boarding(600))) == (O.REFUSED_ALREADY_PAID, 0)  # window is inclusive
    assert d(Facts(card_type=student, last=boarding(601))) == (None, 100)
    # a payment on another line, or in another city, is not "already paid here"
    assert d(Facts(card_type=student, last=boarding(300, line=102))) == (None, 0)  # transfer: 100 - 100
    assert d(Facts(card_type=student, last=boarding(300, city=OTHER_CITY))) == (None, 100)
    # a record from the future (another validator's clock) is not inside the window
    assert d(Facts(card_type=student, last=boarding(-60))) == (None, 100)
    # a metro entry on a line with the same number is not this bus line
    assert d(Facts(card_type=student, last=boarding(300, industry=0x01))) == (None, 0)


def case_local_vs_visiting_concession_card():
    senior = 3
    # local senior: free ride, once per window
    assert d(Facts(card_type=senior)) == (None, 0)
    assert d(Facts(card_type=senior, last=boarding(120))) == (O.REFUSED_ALREADY_PAID, 0)
    # visiting senior: pays the ordinary fare and is not a concession card
    assert d(Facts(card_type=senior, local=False)) == (None, 200)
    assert d(Facts(card_type=senior, local=False, last=boarding(120))) == (None, 200)


def case_local_issuer_makes_a_card_local():
    f = Facts(card_type=2, local=False)
    c = cfg(local_issuers=[OTHER_ISSUER])
    assert d(f, c) == (None, 100)
    assert d(f) == (None, 200)


def case_transfer_inside_and_outside_the_window():
    assert d(Facts(last=boarding(5400, line=102))) == (None, 100)
    assert d(Facts(last=boarding(5401, line=102))) == (None, 200)
    assert d(Facts(last=boarding(60, line=101))) == (None, 200)  # same line: a return, not a transfer
    assert d(Facts(last=boarding(60, line=102, city=OTHER_CITY))) == (None, 200)
    assert d(Facts(last=boarding(60, line=102, ttype=0x04))) == (None, 200)  # a metro exit is no boarding
    assert d(Facts(last=boarding(60, line=7, industry=0x01, ttype=0x03))) == (None, 100)  # metro entry
    assert d(Facts(last=boarding(60, line=102)), cfg(transfer_s=0)) == (None, 200)
    assert d(Facts(last=boarding(60, line=102)), cfg(transfer_discount=500)) == (None, 0)  # never below 0


def case_garbage_ef1e_date_is_no_record():
    bad = boarding(60, line=102, dt=b"\x20\x26\x13\x45\x99\x99\x99")
    assert d(Facts(last=bad)) == (None, 200)
    bad = boarding(60, dt=b"\xff\xff\xff\xff\xff\xff\xff")
    assert d(Facts(card_type=2, last=bad)) == (None, 100)
    assert last_boarding(Facts(last=bad)) is None
    assert not is_transfer(last_boarding(Facts(last=bad)), Config.default(), NOW)


def case_free_ride_on_a_free_line_and_all_cards_discount():
    c = cfg(line=301, base_fare=0)
    assert d(Facts(), c) == (None, 0)
    assert d(Facts(last=boarding(60, line=102)), c) == (None, 0)
    c = cfg(all_cards_percent=90)
    assert d(Facts(local=False)) == (None, 200)
    assert d(Facts(local=False), c) == (None, 180)
    assert d(Facts(local=True), c) == (None, 180)
    assert d(Facts(local=True, card_type=2), c) == (None, 100)  # the better of 50 % and 90 %


def case_unknown_card_types_pay_as_ordinary():
    for t in (0, 1, 4, 6, 0xFF):
        assert fare_for(Facts(card_type=t), Config.default(), NOW) == 200


def case_config_loads_on_this_interpreter():
    c = load_config(json.dumps(DEFAULT))
    assert c.city == CITY and c.base_fare == 200 and c.card_types[2].percent == 50
    try:
        load_config(json.dumps(DEFAULT).replace('"line": 101', '"line": -1'))
    except ConfigError as e:
        assert str(e).startswith("line: "), str(e)
    else:
        raise AssertionError("a negative line was accepted")


def case_every_outcome_screen_draws_on_this_interpreter():
    # The messages the decisions lead to, drawn with the shipped glyphs (UTF-8 lookups behave the same here).
    from tunion import messages
    from tunion.display import Frame, show, fits
    from tunion.glyphs import missing

    assert missing(messages.all_text()) == ""
    for s in O.ALL:
        lines = messages.screen(O.Result(s, 99999, 99999999))
        assert fits(lines), lines
        fb = Frame()
        show(fb, lines)
        assert fb.clipped == 0 and fb.lit() > 0


def case_config_install_is_atomic_on_this_filesystem():
    import os
    from tunion.config import install_config, read_config

    path = "/tmp/config_case.json"
    good = json.dumps(DEFAULT)
    assert install_config(good, path).line == 101
    bad = good.replace('"repeat_ms": 1000', '"repeat_ms": 5')
    try:
        install_config(bad, path)
    except ConfigError as e:
        assert str(e).startswith("windows.repeat_ms: "), str(e)
    else:
        raise AssertionError("a bad configuration was installed")
    assert read_config(path).repeat_ms == 1000
    newer = good.replace('"version": 1', '"version": 2')
    assert install_config(newer, path).version == 2 and read_config(path).version == 2
    for p in (path, path + ".new"):
        try:
            os.remove(p)
        except OSError:
            pass
