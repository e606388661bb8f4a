"""The ride oracle catches seeded faults: each mutant of the recovery makes it report violations (issue 7).

A mutant test passes when the oracle FAILS the mutant. The mutants patch names of the new recovery in
tunion.purchase (recover, guard_recovered, prove_verified); a missing name fails the test loudly. The oracle's own
checks, against
journeys whose records or card history are tampered with, run on any purchase core.
"""
import pytest
from hypothesis import given, example, settings, strategies as st, HealthCheck

from tunion import purchase
from tunion import outcome as O
from tunion.record import Record, KIND_COMPLETED, KIND_CANCELLED
from sim.card import BEFORE, AFTER
from sim.journey import Journey, cards
from sim.scenarios import FINDINGS, torn_twice, torn_then_other_door
from sim.mangle import Mangler



def _mutate(monkeypatch, name, fn):
    if not hasattr(purchase, name):
        pytest.fail("tunion.purchase.%s is missing: the mutant cannot be applied (issue 7's recovery names it)" % name)
    monkeypatch.setattr(purchase, name, fn, raising=True)


def _violations(journeys):
    return [(name, j.report()) for name, j in journeys]


def _killed(journeys):
    reps = _violations(journeys)
    assert any(rep.violations for name, rep in reps), "the oracle let the mutant through: %r" % (
        [(n, r.figures()) for n, r in reps],)


def _clean(journeys):
    reps = _violations(journeys)
    bad = ["%s: %s" % (n, r.explain(4)) for n, r in reps if r.violations]
    assert not bad, "\n".join(bad)


def _skip_recovery():
    return [("torn after DEBIT, back", torn_twice((6, AFTER), None)),
            ("finding 7", FINDINGS["7"]()), ("finding 3", FINDINGS["3"]("flash"))]


def _repeat():
    return [("finding 2", FINDINGS["2"]()), ("finding 2 flash", FINDINGS["2"]("flash"))]


def _prove():
    return [("finding 4", FINDINGS["4"]()), ("front door torn at DEBIT", torn_then_other_door((6, BEFORE)))]


def _reboot(forget):
    return [("finding 3", FINDINGS["3"]("memory", forget_at_reboot=forget)),
            ("torn, reboot", torn_twice((6, AFTER), None, bystander=True, reboot=True, gap_ms=20000))]


def test_the_unmutated_recovery_passes_the_mutant_journeys():
    _clean(_skip_recovery() + _repeat() + _prove() + _reboot(False))


def test_mutant_skip_the_own_intent_recovery(monkeypatch):
    _mutate(monkeypatch, "recover", lambda *a: None)
    _killed(_skip_recovery())


def test_mutant_drop_the_repeat_guard_after_recovery(monkeypatch):
    _mutate(monkeypatch, "guard_recovered", lambda *a: None)
    _killed(_repeat())


def test_mutant_accept_any_prove_answer(monkeypatch):
    _mutate(monkeypatch, "prove_verified", lambda *a: True)
    _killed(_prove())


def test_mutant_forget_unresolved_intents_at_reboot():
    # The harness drops every entry of journal.unresolved() after each remount (sim.journey.Validator.reboot).
    _killed(_reboot(True))


# ---- malformed card answers ---------------------------------------------------------------------------------

def _malformed(at, how, junk, tear, second):
    """A tap with one answer garbled (and perhaps torn); a bystander pays; the card comes back, garbled again in
    the recovery tap at `second`, then clean until accepted."""
    j = Journey(cards(2), 1, "memory")
    j.tap(0, 0, tear=tear, wrap=lambda c: Mangler(c, at, how, junk))
    j.tap(1, 0, gap_ms=1000, note="bystander")
    st_ = j.tap(0, 0, gap_ms=4000, wrap=lambda c: Mangler(c, second, how, junk))
    n = 0
    while st_ not in (O.PAID, O.PAID_RECOVERED) and n < 3:
        st_ = j.tap(0, 0, gap_ms=2000)
        n += 1
    return j.report()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(
    at=st.integers(0, 9),
    how=st.sampled_from(["truncate", "extend", "garbage", "sw", "sw_only"]),
    junk=st.binary(min_size=0, max_size=24),
    tear=st.one_of(st.none(), st.tuples(st.integers(0, 9), st.sampled_from([BEFORE, AFTER]))),
    second=st.integers(0, 9),
)
@example(at=9, how="sw", junk=b"", tear=(6, AFTER), second=9)  # torn after DEBIT, nothing garbled
@example(at=6, how="truncate", junk=b"\x01", tear=None, second=9)  # the DEBIT answer cut short
def malformed_answers_never_charge_twice(at, how, junk, tear, second):
    rep = _malformed(at, how, junk, tear, second)
    assert not rep.violations, rep.explain()


def test_malformed_answers_never_charge_twice():
    malformed_answers_never_charge_twice()


def test_malformed_answers_fail_on_the_skip_recovery_mutant(monkeypatch):
    _mutate(monkeypatch, "recover", lambda *a: None)
    with pytest.raises(AssertionError):
        malformed_answers_never_charge_twice()


# ---- the oracle's own checks (any purchase core) ------------------------------------------------------------

def _paid_journey():
    j = Journey(cards(2), 2, "memory")
    j.tap(0, 0)
    j.tap(1, 1)
    j.tap(0, 0, gap_ms=5000)
    return j


def test_clean_rides_pass():
    rep = _paid_journey().report()
    assert not rep.violations, rep.explain()
    assert rep.acceptances == 3 and rep.debits == 3 and rep.rides == 3


def test_oracle_sees_a_debit_nobody_recorded():
    j = _paid_journey()
    v = j.validators[0]
    del v.records[max(v.records)]  # the last outcome gone: intent left open under nothing, fine; drop the intent too
    del v.records[max(v.records)]
    rep = j.report()
    assert rep.unexplained_debits == 1 and rep.violations


def test_oracle_sees_a_wrong_and_a_foreign_tac():
    j = _paid_journey()
    v0, v1 = j.validators
    last = v0.records[max(v0.records)]
    assert last.kind == KIND_COMPLETED
    last.tac = v1.records[max(v1.records)].tac  # the rear door's TAC in the front door's record
    rep = j.report()
    assert any("(d)" in m for m in rep.violations), rep.explain()


def test_oracle_sees_a_debit_recorded_as_cancelled():
    j = _paid_journey()
    v = j.validators[0]
    seq = max(v.records)
    old = v.records[seq]
    v.records[seq] = Record(KIND_CANCELLED, seq, old.ref)
    rep = j.report()
    assert rep.lost_records >= 1 and any("(b)" in m for m in rep.violations), rep.explain()


def test_oracle_sees_a_claim_of_a_debit_the_card_never_made():
    j = _paid_journey()
    j.cards[0].history.pop()  # the card "never made" its last debit
    j.taps[2].h1 -= 1
    rep = j.report()
    assert any("(c)" in m for m in rep.violations) and any("(a)" in m for m in rep.violations), rep.explain()


def test_oracle_sees_a_second_charge():
    j = _paid_journey()
    card = j.cards[0]
    h = card.history[-1]
    card.history.append((h[0] + 1, h[1], h[2], h[3], b"\x00\x00\x0f\xff", h[5], h[6], h[7]))  # charged again, same tap
    j.taps[2].h1 += 1
    rep = j.report()
    assert rep.double_charges == 1 and rep.unexplained_debits == 1, rep.explain()
    assert any("PAID backed by 2 debits" in m for m in rep.violations), rep.explain()


def test_oracle_sees_a_lost_tac():
    j = Journey(cards(1), 1, "memory")
    j.tap(0, 0, tear=(6, AFTER))
    j.tap(0, 0, gap_ms=3000)
    v = j.validators[0]
    seq = max(v.records)
    out = v.records[seq]
    if out.tac != bytes(4):  # whatever the core recorded, make it "unresolved, no TAC"
        v.records[seq] = Record(4, seq, out.ref)
    rep = j.report()
    assert rep.lost_tacs == 1, rep.explain()


def test_oracle_sees_records_that_vanish_after_a_remount():
    j = Journey(cards(1), 1, "flash")
    j.tap(0, 0)
    v = j.validators[0]
    v.records[999] = Record(KIND_CANCELLED, 999, 998)  # the validator "returned" it once
    v.reboot()
    rep = j.report()
    assert rep.lost_records >= 1 and any("no longer returned" in m for m in rep.violations), rep.explain()
