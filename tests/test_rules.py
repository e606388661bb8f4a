"""Property tests of the decision rules (the case table is tests/mpcases/rules_cases.py, also run on
MicroPython; the end-to-end table through tap is tests/test_decisions.py)."""
from hypothesis import given, settings, strategies as st

from tunion import outcome as O
from tunion.config import CardTypeRule, Config
from tunion.rules import State, decide, fare_for
from mpcases.rules_cases import Facts, boarding, NOW, OTHER_CITY, CITY

LOCAL_ONLY = (O.REFUSED_ALREADY_PAID,)


@st.composite
def configs(draw):
    c = Config.default()
    c.base_fare = draw(st.integers(0, 99999))
    c.all_cards_percent = draw(st.integers(0, 100))
    c.transfer_discount = draw(st.integers(0, 99999))
    c.transfer_s = draw(st.integers(0, 86400))
    c.concession_s = draw(st.integers(0, 86400))
    c.card_types = {}
    for t in draw(st.lists(st.integers(0, 255), max_size=6, unique=True)):
        c.card_types[t] = CardTypeRule(draw(st.integers(0, 100)), draw(st.booleans()))
    return c


@st.composite
def histories(draw):
    if draw(st.booleans()):
        return None
    return boarding(
        draw(st.integers(-3600, 3 * 86400)),
        line=draw(st.sampled_from((101, 102, 7))),
        city=draw(st.sampled_from((CITY, OTHER_CITY))),
        ttype=draw(st.sampled_from((0x02, 0x03, 0x04, 0x06, 0x09))),
        industry=draw(st.sampled_from((0x01, 0x02))),
    )


cards = st.builds(
    Facts,
    card_type=st.integers(0, 255),
    local=st.booleans(),
    interop=st.sampled_from((0, 1)),
    app_version=st.sampled_from((0, 1, 2)),
    start=st.sampled_from((20200101, 20261201, 20261202)),
    expiry=st.sampled_from((20261130, 20261201, 20301231)),
    last=histories(),
)


@settings(max_examples=400, deadline=None)
@given(configs(), cards, st.integers(0, 86400 * 400))
def test_fare_is_never_negative_nor_above_the_base_fare(c, f, dt):
    fare = fare_for(f, c, NOW + dt)
    assert 0 <= fare <= c.base_fare
    status, fare2 = decide(f, c, State(), (NOW + dt, 0))
    if status is None:
        assert 0 <= fare2 <= c.base_fare
    else:
        assert status in O.ALL and fare2 == 0


@settings(max_examples=400, deadline=None)
@given(configs(), cards)
def test_a_visiting_card_never_gets_a_local_only_concession(c, f):
    f.ef17.city = OTHER_CITY
    f.ef15.issuer = b"\x01\x01\x10\x00\xff\xff\xff\xff"
    assert not c.is_local(f.ef15, f.ef17)
    status, fare = decide(f, c, State(), (NOW, 0))
    assert status not in LOCAL_ONLY
    # whatever its card type, it pays what an ordinary visiting card with the same history pays
    ordinary = Facts(card_type=1, local=False, last=f.last_ef1e)
    assert fare_for(f, c, NOW) == fare_for(ordinary, c, NOW)
    assert fare_for(f, c, NOW) >= c.base_fare * c.all_cards_percent // 100 - c.transfer_discount


@settings(max_examples=300, deadline=None)
@given(configs(), cards, st.integers(0, 1 << 30), st.integers(0, 5000))
def test_decide_changes_no_state_and_repeats_only_within_the_window(c, f, t0, dt):
    s = State()
    s.paid(f.card_no, t0)
    before = (s.last_card, s.last_tick)
    status, _ = decide(f, c, s, (NOW, (t0 + dt) & ((1 << 30) - 1)))
    assert (s.last_card, s.last_tick) == before
    if status == O.IGNORED_REPEAT:
        assert dt < c.repeat_ms
    fresh, _ = decide(f, c, State(), (NOW, t0))
    if dt >= c.repeat_ms:
        assert status == fresh  # after the window the card is judged as if never seen


@settings(max_examples=200, deadline=None)
@given(configs(), st.integers(0, 255), st.integers(0, 86400))
def test_local_concession_refused_only_inside_its_window_on_this_line(c, card_type, ago):
    f = Facts(card_type=card_type, local=True, last=boarding(ago))
    status, _ = decide(f, c, State(), (NOW, 0))
    rule = c.card_types.get(card_type)
    expect = rule is not None and rule.concession and ago <= c.concession_s
    assert (status == O.REFUSED_ALREADY_PAID) == expect
