"""Issue 7's findings 1-8, 12 and 13, each as a case that failed on main at d7bcce7 and passes now.

Plain case_* functions (CPython through tests/test_mpcases.py, MicroPython through tests/test_micropython.py).
Every case checks the ride against the card's own state (its balance and debit count), not against totals.
"""
from tunion import outcome as O
from tunion.record import (
    KIND_COMPLETED,
    KIND_CANCELLED,
    KIND_SETTLED,
    KIND_SETTLED_NOT_DEBITED,
    KIND_SETTLED_NO_TAC,
    FLAG_MAC2_BAD,
    FLAG_RECOVERED,
)
from sim.card import make_card, BEFORE, AFTER
from sim.rig import Rig
from sim import keys

FARE = 200
B_TERMINAL = b"\x99\x99\x00\x00\x00\x02"  # the rear door's PSAM
B_SERIAL = b"\x99\x99\x00\x00\x00\x00\x00\x00\x00\x02"


class Doctor:
    """A card port that answers one instruction its own way: `fix(apdu, real_answer) -> answer` for INS `ins`
    (the real card still processes the APDU unless `skip`), `times` answers at most (0 = always)."""

    def __init__(self, card, ins, fix, skip=False, times=0):
        self.card = card
        self.ins = ins
        self.fix = fix
        self.skip = skip
        self.left = times

    def transceive(self, apdu):
        if apdu[1] != self.ins or self.left < 0:
            return self.card.transceive(apdu)
        if self.left:
            self.left -= 1
            if self.left == 0:
                self.left = -1
        real = None if self.skip else self.card.transceive(apdu)
        return self.fix(apdu, real)


def _torn_after_debit(rig, card):
    card.tear_on_ins(0x54, AFTER)  # the card is debited, the answer is lost
    assert rig.tap(card).status == O.TAP_AGAIN
    card.present()


def _bystander_pays(rig, n=7):
    b = make_card(card_no=keys.TEST_CARD_NO + n, balance=3000)
    assert rig.tap(b).status == O.PAID
    return b


def _kinds(rig):
    return [r.kind for r in rig.records()]


def case_finding1_torn_again_during_recheck_is_not_charged():
    for how in ("tear_before", "tear_after", "short_prove", "both_6f00"):
        rig = Rig()
        a = make_card(balance=5000)
        _torn_after_debit(rig, a)
        _bystander_pays(rig)  # A's intent closes `unresolved`
        if how == "tear_before":
            a.tear_on_ins(0x5A, BEFORE)
            port = a
        elif how == "tear_after":
            a.tear_on_ins(0x5A, AFTER)
            port = a
        elif how == "short_prove":
            port = Doctor(a, 0x5A, lambda apdu, r: r[:3] + b"\x90\x00")
        else:
            def six_f(apdu, r):
                return b"\x6f\x00"

            port = Doctor(Doctor(a, 0x5A, six_f), 0xB2, lambda apdu, r: b"\x6f\x00" if apdu[3] >> 3 == 0x18 else r)
        r = rig.tap(port)
        assert r.status == O.TAP_AGAIN, (how, r)
        assert a.debits == 1 and a.balance == 4800, (how, a.balance)
        a.cancel_tear()
        a.present()
        r = rig.tap(a)  # clean now: the old debit is the ride
        assert r.status == O.PAID_RECOVERED and a.debits == 1 and a.balance == 4800, (how, r)


def case_finding2_repeat_guard_after_every_recovery():
    for bystander in (False, True):
        rig = Rig()
        a = make_card(balance=5000)
        _torn_after_debit(rig, a)
        if bystander:
            _bystander_pays(rig)
        r = rig.tap(a, advance_ms=300)
        assert r.status == O.PAID_RECOVERED, r
        r = rig.tap(a, advance_ms=300)  # 300 ms later: the same tap, not a second rider
        assert r.status == O.IGNORED_REPEAT and a.debits == 1, (bystander, r)
        rig.advance(2000)
        assert rig.tap(a).status == O.PAID and a.debits == 2  # after the 1 s: a second rider pays


def case_finding3_unresolved_intent_survives_a_reboot():
    rig = Rig()
    a = make_card(balance=5000)
    _torn_after_debit(rig, a)
    _bystander_pays(rig)
    rig.reboot()  # RAM gone, SAM session gone; the journal is the flash
    rig.advance(20000)
    r = rig.tap(a)
    assert r.status == O.PAID_RECOVERED and a.debits == 1 and a.balance == 4800, r


def case_finding4_prove_of_another_terminal_is_not_ours():
    front = Rig()
    rear = Rig(terminal=B_TERMINAL, serial=B_SERIAL)
    card = make_card(balance=5000)
    card.tear_on_ins(0x54, BEFORE)  # the front door's DEBIT never reaches the card
    assert front.tap(card).status == O.TAP_AGAIN
    card.present()
    assert rear.tap(card).status == O.PAID and card.debits == 1  # it pays at the rear door
    rear_tac = card.last_tac
    front.advance(3000)
    r = front.tap(card)  # back at the front: PROVE answers with the rear door's MAC2 and TAC
    assert r.status == O.PAID and card.debits == 2, r  # a new ride: the front door's debit never happened
    recs = front.records()
    assert recs[1].kind == KIND_CANCELLED, recs  # the torn intent: not debited
    assert all(x.tac != rear_tac for x in recs), "the rear door's TAC in the front door's journal"
    assert recs[-1].kind == KIND_COMPLETED and recs[-1].tac == card.last_tac


def case_finding5_forged_mac2_is_never_paid():
    rig = Rig()
    card = make_card(balance=5000)
    fake = Doctor(card, 0x54, lambda apdu, r: b"\x11\x22\x33\x44\x55\x66\x77\x88\x90\x00", skip=True)
    r = rig.tap(fake)
    assert r.status == O.MAC2_REJECTED, r
    out = rig.records()[-1]
    assert out.kind == KIND_COMPLETED and out.flags & FLAG_MAC2_BAD and out.tac == b"\x11\x22\x33\x44"
    for _ in range(3):  # again and again inside the window: never PAID, never a second intent
        rig.advance(5000)
        assert rig.tap(fake).status == O.MAC2_REJECTED
    assert len(rig.records()) == 2 and card.debits == 0


def case_finding6_balance_below_fare_is_refused_whatever_the_status_word():
    rig = Rig()
    card = make_card(balance=5000)

    def poor(apdu, r):
        return b"\x00\x00\x00\x64" + r[4:]  # INITIALIZE says 9000 with balance 100 for a fare of 200

    r = rig.tap(Doctor(card, 0x50, poor))
    assert r.status == O.REFUSED_INSUFFICIENT and r.balance == 100, r
    assert card.debits == 0 and 0x54 not in card.ins_counts and rig.records() == []


def case_finding7_settlement_keeps_the_tac_and_says_not_debited():
    # Debited: the settlement carries the card's own TAC.
    rig = Rig()
    a = make_card(balance=5000)
    _torn_after_debit(rig, a)
    _bystander_pays(rig)
    r = rig.tap(a)
    assert r.status == O.PAID_RECOVERED
    s = rig.records()[-1]
    assert s.kind == KIND_SETTLED and s.tac == a.last_tac and s.ref == 1 and s.flags & FLAG_RECOVERED, s
    assert rig.journal.unresolved() == []
    # Not debited: the settlement says so, and the card pays its ride now.
    rig = Rig()
    a = make_card(balance=5000)
    a.tear_on_ins(0x54, BEFORE)
    assert rig.tap(a).status == O.TAP_AGAIN
    a.present()
    _bystander_pays(rig)
    r = rig.tap(a)
    assert r.status == O.PAID and a.debits == 1, r
    assert KIND_SETTLED_NOT_DEBITED in _kinds(rig)
    s = [x for x in rig.records() if x.kind == KIND_SETTLED_NOT_DEBITED][0]
    assert s.ref == 1 and s.tac == b"\x00\x00\x00\x00" and s.balance == 5000


def case_finding8_back_after_twice_the_timeout_is_not_charged_again():
    for bystander in (False, True):
        rig = Rig()
        a = make_card(balance=5000)
        _torn_after_debit(rig, a)
        if bystander:
            _bystander_pays(rig)
        rig.advance(250 * 1000)  # past 2 x intent_timeout_s (240 s), inside recovery_window_s (600 s)
        r = rig.tap(a)
        assert r.status == O.PAID_RECOVERED and a.debits == 1, (bystander, r)


def case_after_the_window_a_new_ride_and_the_old_intent_settled():
    rig = Rig()
    a = make_card(balance=5000)
    _torn_after_debit(rig, a)
    _bystander_pays(rig)
    rig.advance(700 * 1000)  # past the 600 s recovery window
    r = rig.tap(a)
    assert r.status == O.PAID and a.debits == 2 and a.balance == 4600, r
    settled = [x for x in rig.records() if x.kind == KIND_SETTLED_NO_TAC or x.kind == KIND_SETTLED]
    assert len(settled) == 1 and settled[0].ref == 1  # the old debit is still recorded, cited


def case_log_only_proof_is_counted_per_card():
    # The card paid elsewhere after the torn debit: PROVE has nothing, EF18 still shows ours: debited, no TAC.
    front = Rig()
    rear = Rig(terminal=B_TERMINAL, serial=B_SERIAL)
    a = make_card(balance=5000)
    _torn_after_debit(front, a)
    rear.advance(2000)
    assert rear.tap(a).status == O.PAID
    front.advance(5000)
    r = front.tap(a)
    assert r.status == O.PAID_RECOVERED and r.detail == "no TAC" and a.debits == 2, r
    assert front.journal.no_tac_counts() == {a.card_no: 1}


def case_finding12_key_version_the_psam_lacks_refuses_that_card_only():
    rig = Rig()
    odd = make_card(balance=5000, key_version=7)
    r = rig.tap(odd)
    assert r.status == O.REFUSED_UNSUPPORTED and odd.debits == 0, r
    assert rig.journal.refusals() == {O.REFUSED_UNSUPPORTED: 1}
    ok = make_card(card_no=keys.TEST_CARD_NO + 3, balance=5000)
    assert rig.tap(ok).status == O.PAID  # the validator stays in service


class _BrokenStore:
    def __init__(self, good):
        self.good = good

    def reserve(self, n):
        if self.good:
            self.good -= 1
            return 1
        raise OSError(28, "no space")


def case_finding12_ttc_store_failure_is_out_of_service_not_a_crash():
    from tunion.softsam import SoftSam
    from tunion.psam import Psam
    from sim.rig import sam_keys

    rig = Rig()
    soft = SoftSam(sam_keys(), _BrokenStore(1), out=lambda *a: None, reserve=1)
    rig.psam = Psam(soft).open()
    card = make_card(balance=5000)
    assert rig.tap(card).status == O.PAID  # the one reserved TTC
    card2 = make_card(card_no=keys.TEST_CARD_NO + 4, balance=5000)
    r = rig.tap(card2)
    assert r.status == O.OOS_SAM and card2.debits == 0, r


def case_finding12_fci_with_82_length_form_pays():
    rig = Rig()
    card = make_card(balance=5000)

    def long_form(apdu, r):
        if r[0] != 0x6F or r[-2:] != b"\x90\x00":
            return r
        body = r[2:-2]
        return b"\x6f\x82" + bytes((len(body) >> 8, len(body) & 0xFF)) + body + b"\x90\x00"

    r = rig.tap(Doctor(card, 0xA4, long_form))
    assert r.status == O.PAID and card.debits == 1, r


def case_finding13_ticks_wrap_is_not_a_repeat():
    rig = Rig()
    a = make_card(balance=5000)
    assert rig.tap(a, advance_ms=0).status == O.PAID
    rig.advance(1 << 30)  # exactly one MicroPython tick period later (12.4 days)
    r = rig.tap(a)
    assert r.status == O.PAID and a.debits == 2, r


def case_finding12_truncated_denylist_is_out_of_service_not_a_crash():
    import os
    from tunion.denylist import Denylist, encode, install_denylist

    path = "dl_trunc.bin"
    # 2,000 entries (16 KB): bigger than CPython's read buffer, so the lookup really reads the shrunken file.
    install_denylist(encode([keys.TEST_CARD_NO + 100 + i for i in range(2000)], 3), path)
    rig = Rig()
    rig.config.denylist = Denylist(path)
    card = make_card(balance=5000)
    assert rig.tap(card).status == O.PAID
    with open(path, "rb") as f:
        head = f.read(40)
    with open(path, "wb") as f:  # the file shrinks under the open list (a bad flash, a half install)
        f.write(head)
    card2 = make_card(card_no=keys.TEST_CARD_NO + 5000, balance=5000)  # above every entry: new offsets read
    r = rig.tap(card2)
    assert r.status == O.OOS_CONFIG and card2.debits == 0, r
    rig.config.denylist.close()
    os.remove(path)
