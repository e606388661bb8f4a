"""The purse purchase end to end against the strict simulated card and the software SAM.

Plain case_* functions: pytest runs them on CPython (tests/test_mpcases.py) and the MicroPython run runs the
same functions on the real interpreter. Money invariant everywhere: what left the card equals the money in the
completed and unresolved records whose debit happened, and no card is charged twice.
"""
from tunion import outcome as O
from tunion.cardfiles import Ef18Entry, Ef1eRecord
from tunion.record import FLAG_RECOVERED, FLAG_MAC2_UNVERIFIED, FLAG_TEST_KEYS, FLAG_SIMPLE, TTYPE_SIMPLE
from sim.card import make_card, make_other_city_card, BEFORE, AFTER, BLOCKED, ABSENT
from sim.rig import Rig, ledger
from sim import keys

FARE = 200  # the test configuration's base fare on line 101


def debited_intents(card, intents):
    """The intents whose debit really happened on `card`: EF18 holds an entry with this terminal, the
    intent's counter + 1, its amount and its date and time (protocol section 7.2)."""
    out = []
    entries = [Ef18Entry.decode(e) for e in card.ef18]
    for i in intents:
        for e in entries:
            if (e.counter == i.counter + 1 and e.terminal == keys.TEST_TERMINAL and e.amount == i.amount
                    and e.date + e.time == i.dt):
                out.append(i)
                break
    return out


def check_money(rig, card, start_balance):
    """What left the card is exactly the completed records plus the unresolved ones whose debit happened; a
    completed record never claims a debit that did not happen; cancelled ones never were debited."""
    completed, unresolved, cancelled, still_open = ledger(rig.records())
    mine = [i for i in completed + unresolved + cancelled + still_open if i.card_no == card.card_no]
    taken = start_balance - card.balance
    done = [i for i in completed if i.card_no == card.card_no]
    maybe = [i for i in unresolved + still_open if i.card_no == card.card_no]
    assert len(debited_intents(card, done)) == len(done), "a completed record without a debit"
    assert debited_intents(card, [i for i in cancelled if i.card_no == card.card_no]) == []
    paid = sum(i.amount for i in done) + sum(i.amount for i in debited_intents(card, maybe))
    assert taken == paid, "card lost %d, records account for %d" % (taken, paid)
    return mine


def case_full_purchase_compound():
    rig = Rig()
    card = make_card(balance=5000)
    r = rig.tap(card)
    assert r.status == O.PAID and r.fare == FARE and r.balance == 4800, r
    assert card.balance == 4800 and card.counter == 1
    assert card.apdus <= 8, card.apdus  # validator.md section 1
    completed, unresolved, cancelled, still_open = ledger(rig.records())
    assert len(completed) == 1 and not unresolved and not cancelled and not still_open
    intent = completed[0]
    assert intent.counter == 0 and intent.amount == FARE and intent.balance == 5000
    assert intent.flags & FLAG_TEST_KEYS  # signed by the software SAM
    out = rig.records()[-1]
    assert out.ref == intent.seq and out.tac == card.last_tac and out.balance == 4800
    # The card committed the EF1E record the validator cached, atomically with the debit.
    rec = Ef1eRecord.decode(card.ef1e[0])
    assert rec.amount == FARE and rec.balance == 4800 and rec.line == rig.config.line
    assert rec.terminal == b"\x00\x00" + keys.TEST_TERMINAL and rec.dt == intent.dt
    e = Ef18Entry.decode(card.ef18[0])
    assert e.counter == 1 and e.ttype == 0x09 and e.terminal == keys.TEST_TERMINAL
    check_money(rig, card, 5000)


def case_simple_form_without_ef1e():
    rig = Rig()
    card = make_card(balance=1000, has_ef1e=False)
    r = rig.tap(card)
    assert r.status == O.PAID and card.balance == 800
    assert 0xDC not in card.ins_counts  # no UPDATE CAPP DATA CACHE in the simple form
    intent = ledger(rig.records())[0][0]
    assert intent.flags & FLAG_SIMPLE and intent.ttype == TTYPE_SIMPLE
    assert Ef18Entry.decode(card.ef18[0]).ttype == 0x06


def case_no_ppse_and_ef15_read_separately():
    rig = Rig()
    card = make_card(ppse=False, fci_ef15=False)
    r = rig.tap(card)
    assert r.status == O.PAID, r
    assert card.apdus == 8 and card.ins_counts.get(0xB0) == 2  # EF15 and EF17 read: still within 8


def case_tear_inside_debit_then_recovered():
    rig = Rig()
    card = make_card(balance=5000)
    card.tear_on_ins(0x54, AFTER)  # the debit happens, its answer is lost
    r = rig.tap(card)
    assert r.status == O.TAP_AGAIN and card.balance == 4800
    assert rig.journal.open_intent() is not None
    card.present()
    r = rig.tap(card)
    assert r.status == O.PAID_RECOVERED and r.balance == 4800, r
    assert card.balance == 4800 and card.ins_counts.get(0x5A) == 1
    completed = ledger(rig.records())[0]
    assert len(completed) == 1 and rig.records()[-1].tac == card.last_tac
    assert rig.records()[-1].flags & FLAG_RECOVERED
    assert rig.journal.open_intent() is None
    check_money(rig, card, 5000)


def case_tear_before_debit_processed_then_paid():
    rig = Rig()
    card = make_card(balance=5000)
    card.tear_on_ins(0x54, BEFORE)  # DEBIT sent, never reached the card
    assert rig.tap(card).status == O.TAP_AGAIN
    card.present()
    r = rig.tap(card)
    assert r.status == O.PAID and card.balance == 4800, r
    completed, unresolved, cancelled, still_open = ledger(rig.records())
    assert len(completed) == 1 and len(cancelled) == 1 and not unresolved and not still_open
    check_money(rig, card, 5000)


def _purchase_apdus():
    card = make_card()
    Rig().tap(card)
    return card.apdus


def case_tear_at_every_apdu_boundary():
    n = _purchase_apdus()
    for when in (BEFORE, AFTER):
        for i in range(n):
            rig = Rig()
            card = make_card(balance=5000)
            card.tear_at(i, when)
            first = rig.tap(card)
            assert first.status in (O.CARD_ERROR, O.TAP_AGAIN), (i, when, first)
            card.present()
            second = rig.tap(card)
            assert second.status in (O.PAID, O.PAID_RECOVERED), (i, when, second)
            assert card.balance == 4800, (i, when, card.balance)  # charged exactly once
            assert rig.journal.open_intent() is None
            check_money(rig, card, 5000)


def case_second_tear_during_recovery():
    for when in (BEFORE, AFTER):
        rig = Rig()
        card = make_card(balance=5000)
        card.tear_on_ins(0x54, AFTER)
        assert rig.tap(card).status == O.TAP_AGAIN
        card.present()
        card.tear_on_ins(0x5A, when)  # torn again at GET TRANSACTION PROVE
        assert rig.tap(card).status == O.TAP_AGAIN  # nothing proven: not charged (validator.md section 3)
        assert rig.journal.open_intent() is not None  # still open: nothing decided
        card.present()
        r = rig.tap(card)
        assert r.status == O.PAID_RECOVERED and card.balance == 4800, (when, r)
        check_money(rig, card, 5000)


def case_another_card_pays_between_tear_and_return():
    rig = Rig()
    a = make_card(balance=5000)
    b = make_card(card_no=keys.TEST_CARD_NO + 7, balance=3000)
    a.tear_on_ins(0x54, AFTER)
    assert rig.tap(a).status == O.TAP_AGAIN
    r = rig.tap(b)
    assert r.status == O.PAID and b.balance == 2800
    completed, unresolved, cancelled, still_open = ledger(rig.records())
    assert len(unresolved) == 1 and unresolved[0].card_no == a.card_no and not still_open
    a.present()
    r = rig.tap(a)
    assert r.status == O.PAID_RECOVERED and a.balance == 4800, r  # not charged twice
    check_money(rig, a, 5000)
    check_money(rig, b, 3000)


def case_card_never_returns_times_out():
    rig = Rig()
    a = make_card(balance=5000)
    b = make_card(card_no=keys.TEST_CARD_NO + 9, balance=100)  # refused: does not close the intent
    a.tear_on_ins(0x54, AFTER)
    assert rig.tap(a).status == O.TAP_AGAIN
    assert rig.tap(b).status == O.REFUSED_INSUFFICIENT
    assert rig.journal.open_intent() is not None
    rig.advance(rig.config.intent_timeout_s * 1000 + 1000)
    c = make_card(card_no=keys.TEST_CARD_NO + 11, balance=1000)
    assert rig.tap(c).status == O.PAID
    completed, unresolved, cancelled, still_open = ledger(rig.records())
    assert [i.card_no for i in unresolved] == [a.card_no] and not still_open
    check_money(rig, a, 5000)


def case_psam_session_gone_flags_mac2_unverified():
    rig = Rig()
    card = make_card(balance=5000)
    card.tear_on_ins(0x54, AFTER)
    assert rig.tap(card).status == O.TAP_AGAIN
    rig.reboot_sam()
    card.present()
    r = rig.tap(card)
    assert r.status == O.PAID_RECOVERED and r.flags & FLAG_MAC2_UNVERIFIED


def _refused(card, status, rig=None):
    rig = rig or Rig()
    before = (card.balance, card.counter, list(card.ef18), list(card.ef1e))
    r = rig.tap(card)
    assert r.status == status, (status, r)
    assert (card.balance, card.counter, list(card.ef18), list(card.ef1e)) == before  # nothing written
    assert rig.records() == []
    assert 0x54 not in card.ins_counts and 0xDC not in card.ins_counts
    return r, rig


def case_insufficient_balance():
    r, rig = _refused(make_card(balance=150), O.REFUSED_INSUFFICIENT)
    assert r.balance == 150  # shown from GET BALANCE
    assert rig.journal.refusals() == {O.REFUSED_INSUFFICIENT: 1}


def case_blocked_application():
    for sw in (0x6A81, 0x9303, 0x6283):
        _refused(make_card(state=BLOCKED, blocked_sw=sw), O.REFUSED_BLOCKED)


def case_missing_application_and_not_tunion():
    _refused(make_card(state=ABSENT), O.REFUSED_UNSUPPORTED)
    _refused(make_card(state=ABSENT, ppse=False), O.REFUSED_UNSUPPORTED)
    _refused(make_card(state=ABSENT, ppse_cash=False), O.REFUSED_UNSUPPORTED)


def case_unknown_algorithm():
    for alg in (0x01, 0x02, 0x04, 0xFF):
        _refused(make_card(alg_id=alg), O.REFUSED_UNSUPPORTED)


def case_visiting_card_pays():
    rig = Rig()
    card = make_other_city_card(balance=1000)
    r = rig.tap(card)
    assert r.status == O.PAID and card.balance == 1000 - r.fare


def case_many_taps_ttc_and_seq_rise():
    rig = Rig()
    cards = [make_card(card_no=keys.TEST_CARD_NO + i, balance=100000) for i in range(5)]
    for k in range(4):
        for c in cards:
            assert rig.tap(c).status == O.PAID
    completed = ledger(rig.records())[0]
    ttcs = [i.ttc for i in completed]
    assert len(set(ttcs)) == len(ttcs) == 20
    seqs = [r.seq for r in rig.records()]
    assert seqs == list(range(1, 41))
    for c in cards:
        check_money(rig, c, 100000)


class _FailingSam:
    """A SAM port that dies on its nth APDU (or answers an error status there)."""

    def __init__(self, sam, n, answer=None):
        self.sam = sam
        self.n = n
        self.answer = answer
        self.test_keys = True

    def transceive(self, apdu):
        self.n -= 1
        if self.n == 0:
            if self.answer is None:
                from tunion.errors import CardLost

                raise CardLost("PSAM gone")
            return self.answer
        return self.sam.transceive(apdu)


def case_psam_failure_is_out_of_service_and_moves_no_money():
    for answer in (None, b"\x6a\x82", b"\x90"):
        rig = Rig()
        rig.psam.port = _FailingSam(rig.softsam, 1, answer)  # the 8070
        card = make_card(balance=5000)
        r = rig.tap(card)
        assert r.status == O.OOS_SAM, r
        assert card.balance == 5000 and rig.records() == [] and 0x54 not in card.ins_counts


def case_psam_lost_at_8072_keeps_the_payment():
    from tunion.record import KIND_COMPLETED, FLAG_MAC2_BAD

    rig = Rig()
    rig.psam.port = _FailingSam(rig.softsam, 2)  # 8070 fine, 8072 lost: DEBIT already answered 9000
    card = make_card(balance=5000)
    r = rig.tap(card)
    # MAC2 never verified: not shown PAID, but recorded as debited (never cancelled), and not charged again.
    assert r.status == O.MAC2_REJECTED and r.flags & FLAG_MAC2_BAD and card.balance == 4800, r
    out = rig.records()[-1]
    assert out.kind == KIND_COMPLETED and out.flags & FLAG_MAC2_BAD and out.tac == card.last_tac
    rig.psam.port = rig.softsam
    card.present()
    r = rig.tap(card)
    assert r.status == O.MAC2_REJECTED and card.balance == 4800, r
    check_money(rig, card, 5000)


def case_no_configuration_and_no_psam():
    from tunion.purchase import tap
    from tunion.psam import Psam

    rig = Rig()
    card = make_card()
    assert tap(card, rig.psam, rig.journal, None, rig.state, rig.now()).status == O.OOS_CONFIG
    assert tap(card, Psam(rig.softsam), rig.journal, rig.config, rig.state, rig.now()).status == O.OOS_SAM
    assert card.apdus == 0 and rig.records() == []


def case_journal_full_refuses_before_touching_money():
    from tunion.journal import MemoryJournal

    from tunion.journal import MAX_UNRESOLVED

    rig = Rig(journal=MemoryJournal(capacity=3 + MAX_UNRESOLVED))  # the list's settlements keep their room
    a = make_card(balance=5000)
    assert rig.tap(a).status == O.PAID
    a.reset_counts()
    r = rig.tap(a)
    assert r.status == O.OOS_RECORDS_FULL, r
    assert a.balance == 4800 and a.counter == 1 and 0x50 not in a.ins_counts  # no INITIALIZE was sent
    rig.journal.acknowledge(2)
    assert rig.tap(a).status == O.PAID and a.balance == 4600


class _SetDenylist:
    def __init__(self, numbers):
        self.numbers = numbers

    def contains(self, card_no):
        return card_no in self.numbers


def case_denylisted_card_blocked_when_configured():
    from sim.rig import test_config

    for block in (False, True):
        card = make_card(balance=5000)
        cfg = test_config(block_denylisted=block)
        cfg.denylist = _SetDenylist((card.card_no,))
        rig = Rig(config=cfg)
        r = rig.tap(card)
        assert r.status == O.REFUSED_DENYLISTED and card.balance == 5000 and rig.records() == []
        assert (card.state == BLOCKED) == block
        r = rig.tap(card)
        assert r.status == (O.REFUSED_BLOCKED if block else O.REFUSED_DENYLISTED)


class _CountingDenylist:
    """A denylist that says when it was searched: the INS of the card command then in flight (None: between
    commands), and can fail like a damaged file."""

    def __init__(self, numbers, port=None, error=None):
        self.numbers = numbers
        self.port = port
        self.error = error
        self.during = []

    def contains(self, card_no):
        self.during.append(self.port.in_flight if self.port is not None else None)
        if self.error is not None:
            raise self.error
        return card_no in self.numbers


class _DuringPort:
    """A card port with transceive_during, as the PN532's: fn runs while the card has the command. `jobs`: (INS or,
    for READ BINARY, its SFI byte, the job's class name) of each job run."""

    def __init__(self, card):
        self.card = card
        self.in_flight = None
        self.jobs = []

    def transceive(self, apdu):
        return self.transceive_during(apdu, None)

    def transceive_during(self, apdu, fn):
        self.in_flight = apdu[1] if apdu[1] != 0xB0 else apdu[2]  # READ BINARY: its SFI byte (0x97 = EF17)
        try:
            if fn is not None:
                self.jobs.append((self.in_flight, type(fn).__name__))
                fn()
            return self.card.transceive(apdu)
        finally:
            self.in_flight = None


def case_work_runs_while_the_card_works():
    # docs/design.md "Work while the card works": EF15 is taken from the SELECT answer during READ EF17, the
    # denylist is searched during READ RECORD EF1E, the date and cache record made (and 8070's header primed)
    # during INITIALIZE, the intent record built during UPDATE CAPP DATA CACHE, the outcome record built (and
    # 8072's header primed) during DEBIT; the records are those of any tap.
    from sim.rig import test_config

    card = make_card(balance=5000)
    port = _DuringPort(card)
    cfg = test_config()
    cfg.denylist = _CountingDenylist((), port)
    rig = Rig(config=cfg)
    r = rig.tap(port)
    assert r.status == O.PAID and card.balance == 4800, r
    assert [j[0] for j in port.jobs] == [0x97, 0xB2, 0x50, 0xDC, 0x54], port.jobs
    assert [j[1] for j in port.jobs] == ["SelectAhead", "DenylistAhead", "PurchaseAhead", "Ahead", "Ahead"], port.jobs
    check_money(rig, card, 5000)
    # The same tap through a port that runs no jobs writes the same bytes to the journal and to the card.
    card2 = make_card(balance=5000)
    cfg2 = test_config()
    cfg2.denylist = _CountingDenylist(())
    rig2 = Rig(config=cfg2)
    assert rig2.tap(card2).status == O.PAID
    assert [bytes(x.encode()) for x in rig2.records()] == [bytes(x.encode()) for x in rig.records()]
    assert card2.ef18 == card.ef18 and card2.ef1e == card.ef1e and card2.last_tac == card.last_tac


def case_the_denylist_is_searched_while_the_card_reads_ef1e():
    # validator.md section 6: the lookup (16 file reads on a 50,000-entry list) runs in the card's time for READ
    # RECORD EF1E on a port that can run work meanwhile, once per tap; elsewhere it runs in the decision.
    from sim.rig import test_config
    from tunion.denylist import DenylistError

    for listed in (False, True):
        card = make_card(balance=5000)
        port = _DuringPort(card)
        cfg = test_config()
        cfg.denylist = dl = _CountingDenylist((card.card_no,) if listed else (), port)
        r = Rig(config=cfg).tap(port)
        assert r.status == (O.REFUSED_DENYLISTED if listed else O.PAID), r
        assert dl.during == [0xB2], dl.during
        assert card.balance == (5000 if listed else 4800)
    card = make_card(balance=5000)  # a port that cannot run work meanwhile: searched in the decision, once
    cfg = test_config()
    cfg.denylist = dl = _CountingDenylist((card.card_no,))
    assert Rig(config=cfg).tap(card).status == O.REFUSED_DENYLISTED and dl.during == [None]
    # A failing search inside the exchange does not break it: the tap goes out of service at the decision...
    card = make_card(balance=5000)
    port = _DuringPort(card)
    cfg = test_config()
    cfg.denylist = dl = _CountingDenylist((), port, DenylistError("file ends early"))
    rig = Rig(config=cfg)
    r = rig.tap(port)
    assert r.status == O.OOS_CONFIG and "file ends early" in r.detail and card.balance == 5000, r
    assert dl.during == [0xB2] and rig.records() == []
    # ...and a clock that is not set is still the reason shown, as when the list is searched in its place.
    rig = Rig(config=cfg, when=(2020, 1, 1, 8, 0, 0))
    card.present()
    assert rig.tap(_DuringPort(card)).status == O.OOS_CLOCK


def case_a_malformed_select_answer_read_meanwhile_is_a_card_error():
    # The SELECT answer is read during READ EF17: a malformed FCI still ends the tap CARD_ERROR, nothing written,
    # nothing charged, on both kinds of port.
    class BadFci:  # the purse's SELECT answer with its 84 length byte spoilt (runs past the FCI)
        def __init__(self, card):
            self.card = card

        def transceive(self, apdu):
            r = self.card.transceive(apdu)
            return r[:3] + b"\x7f" + r[4:] if r[:3] == b"\x6f\x31\x84" else r

    for during in (False, True):
        card = make_card(balance=5000)
        port = _DuringPort(BadFci(card)) if during else BadFci(card)
        rig = Rig()
        r = rig.tap(port)
        assert r.status == O.CARD_ERROR and "TLV" in r.detail, (during, r)
        assert card.balance == 5000 and card.counter == 0 and rig.records() == [], (during, r)
        if during:
            assert port.jobs == [(0x97, "SelectAhead")], port.jobs


def case_abandoned_intent_forgotten_after_a_while():
    # A card torn during DEBIT whose intent another card's payment closed: back within the window it is not
    # charged again; back much later it is a new ride and pays.
    for later_s, charged in ((30, 200), (3600, 400)):
        rig = Rig()
        a = make_card(balance=5000)
        b = make_card(card_no=keys.TEST_CARD_NO + 7, balance=3000)
        a.tear_on_ins(0x54, AFTER)
        assert rig.tap(a).status == O.TAP_AGAIN
        assert rig.tap(b).status == O.PAID
        rig.advance(later_s * 1000)
        a.present()
        r = rig.tap(a)
        assert r.status == (O.PAID_RECOVERED if charged == 200 else O.PAID), (later_s, r)
        assert 5000 - a.balance == charged
        check_money(rig, a, 5000)
