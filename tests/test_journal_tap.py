"""The real tap (tunion.purchase) writing through the flash journal: reboots between DEBIT and the outcome record,
a full journal, and no erase during any tap (validator.md sections 3 and 4)."""
from tunion import outcome as O
from tunion.flashjournal import FlashJournal
from tunion.record import KIND_INTENT, KIND_COMPLETED, FLAG_RECOVERED
from tunion.rules import State
from sim.card import make_card, AFTER
from sim.nor import NorFlash, PowerCut
from sim.rig import Rig, ledger
from tunion.segment import SegmentHeader
from sim import keys


def header():
    # The segment header carries the PSAM's terminal number: the one torn-tap evidence is compared with.
    return SegmentHeader(b"\x24\x0a\xc4\x11\x22\x33", keys.TEST_PSAM_SERIAL, keys.TEST_TERMINAL, "B12", "10086", 7)


def _rig(sectors=8, ss=4096):
    nor = NorFlash(sectors, ss)
    j = FlashJournal(nor, header())
    j.prepare()
    return nor, Rig(journal=j)


def _reboot(rig, nor):
    """Power cycle: RAM state gone, the journal mounted again from flash, the PSAM session gone."""
    rig.journal = FlashJournal(nor, header())
    rig.journal.prepare()
    rig.state = State()
    rig.reboot_sam()


def test_power_cut_between_debit_and_outcome_record_is_recovered():
    for keep in (0, 5, 23):  # the outcome program never started, or wrote 5 or 23 of its 24 bytes
        nor, rig = _rig()
        card = make_card(balance=1000)
        assert rig.tap(card).status == O.PAID
        before = card.balance
        real = rig.journal.append_outcome

        def cut_in_outcome(rec):
            nor.cut_at = (nor.ops, ("prog", keep) if keep else None)
            return real(rec)

        rig.journal.append_outcome = cut_in_outcome
        try:
            rig.tap(card)
            assert False, "the power cut should stop the tap"
        except PowerCut:
            pass
        nor.cut_at = None
        charged = before - card.balance
        assert charged > 0  # the DEBIT happened: only the outcome record is missing
        _reboot(rig, nor)
        intent = rig.journal.open_intent()
        assert intent is not None and intent.kind == KIND_INTENT and intent.card_no == card.card_no
        card.present()
        r = rig.tap(card)
        assert r.status == O.PAID_RECOVERED and before - card.balance == charged  # not charged twice
        recs = rig.records()
        assert recs[-1].kind == KIND_COMPLETED and recs[-1].ref == intent.seq and recs[-1].flags & FLAG_RECOVERED
        assert recs[-1].tac == card.last_tac
        assert rig.journal.open_intent() is None
        assert len(ledger(recs)[0]) == 2 and ledger(recs)[3] == []


def test_tear_after_debit_then_reboot_keeps_intent_open_until_recovered():
    nor, rig = _rig()
    card = make_card(balance=1000)
    card.tear_on_ins(0x54, AFTER)
    assert rig.tap(card).status == O.TAP_AGAIN
    seq = rig.journal.open_intent().seq
    _reboot(rig, nor)
    rig.journal.acknowledge(rig.journal.next_seq - 1)  # the depot acknowledging does not close it
    _reboot(rig, nor)
    intent = rig.journal.open_intent()
    assert intent.seq == seq and [x.seq for x in rig.records()] == [seq]  # still offered to the depot
    card.present()
    assert rig.tap(card).status == O.PAID_RECOVERED
    assert card.balance == 1000 - intent.amount
    assert [(x.kind, x.ref) for x in rig.records()] == [(KIND_COMPLETED, seq)]


def test_full_journal_refuses_payments_then_resumes_after_acknowledgement():
    nor, rig = _rig(sectors=5, ss=512)  # 3 segments of 5 payments; the third is the settlements' reserve
    card = make_card(balance=100000)
    paid = 0
    for _ in range(15):
        r = rig.tap(card)
        if r.status == O.PAID:
            paid += 1
        else:
            assert r.status == O.OOS_RECORDS_FULL
        rig.journal.idle()
    assert paid == 10 and not rig.journal.has_room()
    assert [x.seq for x in rig.records()] == list(range(1, 21))  # nothing overwritten
    assert card.balance == 100000 - sum(x.amount for x in ledger(rig.records())[0])
    rig.journal.acknowledge(20)
    rig.journal.idle()
    assert rig.tap(card).status == O.PAID
    assert [x.seq for x in rig.journal.read_from(1, 100)] == [21, 22]


def test_no_erase_during_any_tap_over_many_taps():
    nor, rig = _rig(sectors=6, ss=4096)
    card = make_card(balance=10**7)
    tap_erases = 0
    for n in range(600):  # 4 segments of 55 payments: the ring wraps about three times
        e = nor.erases
        assert rig.tap(card).status == O.PAID
        tap_erases += nor.erases - e
        if n % 50 == 49:
            rig.journal.acknowledge(rig.journal.next_seq - 1)
        rig.journal.idle()
    assert tap_erases == 0 and nor.conflicts == 0 and nor.erases >= 8
