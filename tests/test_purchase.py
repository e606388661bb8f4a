"""The purchase on CPython: TACs checked with keys the test derives itself through the `cryptography` package,
and malformed card answers generated with hypothesis. The scenario cases shared with MicroPython live in
tests/mpcases/purchase_cases.py."""
from hypothesis import given, settings, strategies as st, HealthCheck
from cryptography.hazmat.primitives.ciphers import Cipher, modes

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

from tunion import outcome as O
from tunion.errors import CardLost
from tunion.record import KIND_COMPLETED, FLAG_TEST_KEYS
from sim.card import make_card, BEFORE, AFTER
from sim.rig import Rig, ledger
from sim import keys
from mpcases.purchase_cases import check_money
from sim.mangle import Mangler


def _ecb(key, block):
    k = key + key[:8] if len(key) == 16 else key * 3
    e = Cipher(TripleDES(k), modes.ECB()).encryptor()
    return e.update(block) + e.finalize()


def _div(mk, f):
    return _ecb(mk, f) + _ecb(mk, bytes(b ^ 0xFF for b in f))


def _des_mac(key8, data):
    data = data + b"\x80"
    data += b"\x00" * (-len(data) % 8)
    x = bytes(8)
    for i in range(0, len(data), 8):
        x = _ecb(key8, bytes(a ^ b for a, b in zip(x, data[i : i + 8])))
    return x[:4]


def _independent_tac(card, intent):
    """TAC = single-DES MAC under DTK_L xor DTK_R, DTK = Div(Div(MTK, issuer), SN8) (protocol sections 4, 7.1)."""
    dtk = _div(_div(keys.MTK, card.issuer), card.sn8)
    k = bytes(a ^ b for a, b in zip(dtk[:8], dtk[8:]))
    data = (intent.amount.to_bytes(4, "big") + bytes([intent.ttype]) + keys.TEST_TERMINAL
            + intent.ttc.to_bytes(4, "big") + intent.dt)
    return _des_mac(k, data)


def test_tac_verifies_under_independently_derived_key():
    rig = Rig()
    for n, kw in enumerate(({}, {"has_ef1e": False}, {"balance": 777})):
        card = make_card(card_no=keys.TEST_CARD_NO + n, **kw)
        assert rig.tap(card).status == O.PAID
        intent = ledger(rig.records())[0][-1]
        outcome = rig.records()[-1]
        assert outcome.kind == KIND_COMPLETED and outcome.flags & FLAG_TEST_KEYS
        assert outcome.tac == _independent_tac(card, intent)


def test_recovered_tac_verifies_too():
    rig = Rig()
    card = make_card()
    card.tear_on_ins(0x54, AFTER)
    assert rig.tap(card).status == O.TAP_AGAIN
    card.present()
    assert rig.tap(card).status == O.PAID_RECOVERED
    intent = ledger(rig.records())[0][0]
    assert rig.records()[-1].tac == _independent_tac(card, intent)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    at=st.integers(0, 9),
    how=st.sampled_from(["truncate", "extend", "garbage", "sw", "sw_only"]),
    junk=st.binary(min_size=0, max_size=40),
    tear=st.one_of(st.none(), st.tuples(st.integers(0, 9), st.sampled_from([BEFORE, AFTER]))),
)
def test_malformed_answers_never_crash_or_overclaim(at, how, junk, tear):
    rig = Rig()
    card = make_card(balance=5000)
    if tear is not None:
        card.tear_at(tear[0], tear[1])
    r = rig.tap(Mangler(card, at, how, junk))
    assert r.status in O.ALL
    check_money(rig, card, 5000)
    # The same card comes back with clean answers: everything settles, never charged twice.
    card.cancel_tear()
    card.present()
    r2 = rig.tap(card)
    assert r2.status in (O.PAID, O.PAID_RECOVERED, O.CARD_ERROR), r2
    check_money(rig, card, 5000)
    # Each payment the passenger was shown charged the card exactly once; a PAID_RECOVERED reports the torn
    # tap's payment rather than making a new one.
    shown = len([x for x in (r, r2) if x.status in (O.PAID, O.PAID_RECOVERED)])
    if r2.status != O.CARD_ERROR:
        assert 5000 - card.balance == 200 * shown, (r, r2, card.balance)
    assert rig.journal.open_intent() is None or r2.status == O.CARD_ERROR


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(1, 2**32 - 1), second=st.integers(1, 2**32 - 1))
def test_random_double_tears_settle_without_double_charge(seed, second):
    rig = Rig()
    card = make_card(balance=5000)
    card.tear_random(seed, within=9)
    rig.tap(card)
    card.present()
    card.tear_random(second, within=9)
    rig.tap(card)
    card.present()
    r = rig.tap(card)
    check_money(rig, card, 5000)
    assert card.balance in (4800, 4600), card.balance
    if r.status in (O.PAID, O.PAID_RECOVERED):
        assert rig.journal.open_intent() is None


def test_lost_card_port_is_card_error_not_exception():
    class Gone:
        def transceive(self, apdu):
            raise CardLost("no card")

    assert Rig().tap(Gone()).status == O.CARD_ERROR


def test_8070_is_sent_before_the_cache_update_and_answered_before_debit():
    # docs/design.md "8070 while the card takes the cache update": on a SAM port that can start a command,
    # 8070 goes out, the card takes UPDATE CAPP DATA CACHE, 8070's answer is read, the intent is appended, and
    # only then DEBIT; the records are those of any tap.
    from sim.card import make_card
    from sim.rig import Rig
    from tunion.psam import Psam

    rig = Rig()
    events = []

    class SplitPort:
        test_keys = True

        def transceive(self, apdu):
            events.append(("sam", apdu[1]))
            return rig.softsam.transceive(apdu)

        def start(self, apdu):
            events.append(("start", apdu[1]))
            self.apdu = bytes(apdu)

        def finish(self):
            events.append(("finish", self.apdu[1], len(rig.records())))
            return rig.softsam.transceive(self.apdu)

    class CardLog:
        def __init__(self, card):
            self.card = card

        def transceive(self, apdu):
            events.append(("card", apdu[1], len(rig.records())))
            return self.card.transceive(apdu)

    rig.softsam.reset()
    rig.psam = Psam(SplitPort()).open()
    card = make_card(balance=5000)
    r = rig.tap(CardLog(card))
    assert r.status == O.PAID and card.balance == 5000 - r.fare
    kinds = [e[:2] for e in events]
    i70, idc, ifin, i54 = (kinds.index(("start", 0x70)), kinds.index(("card", 0xDC)), kinds.index(("finish", 0x70)),
                           kinds.index(("card", 0x54)))
    assert i70 < idc < ifin < i54
    n = events[ifin][2]
    assert events[i54][2] == n + 1  # the intent, appended between 8070's answer and DEBIT
    assert [e for e in events if e[0] == "sam" and e[1] == 0x70] == []  # 8070 went through start/finish only
