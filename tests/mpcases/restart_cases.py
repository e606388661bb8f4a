"""tunion.journal.last_payment and unshown_payment: the payment a restarted validator holds a resting card to,
and whether its result was shown (journal.mark_shown), read from the journal after a power cut. Run by pytest and
under MicroPython (test_mpcases.py).

    j = MemoryJournal(); pay(j, 1); assert _who(last_payment(j)) == (intent(1).card_no, intent(1).time)
"""
from tunion.flashjournal import FlashJournal
from tunion.journal import MemoryJournal, last_payment, unshown_payment
from tunion.record import (Record, KIND_COMPLETED, KIND_CANCELLED, KIND_UNRESOLVED, KIND_NO_TAC, KIND_SETTLED,
                           KIND_SETTLED_NO_TAC, KIND_SETTLED_NOT_DEBITED, FLAG_MAC2_BAD)
from sim.nor import NorFlash
from mpcases.journal_cases import header, intent, pay, SS


def _journals():
    """A memory journal and a flash journal (rebooted from its flash, as after a power cut) with the same
    records: built by the same steps."""
    def flash():
        nor = NorFlash(8, SS)
        j = FlashJournal(nor, header())
        j.prepare()
        return j, lambda: FlashJournal(nor, header())

    def memory():
        j = MemoryJournal()
        return j, lambda: j

    return (memory, flash)


def _who(p):
    return None if p is None else (p[0].card_no, p[0].time)


def _each(steps, expect):
    for make in _journals():
        j, reboot = make()
        steps(j)
        got = _who(last_payment(reboot()))
        assert got == expect(j), (make.__name__, got, expect(j))


def _torn(j, n):
    r = intent(n)
    j.append_intent(r)
    j.append_outcome(r.outcome(KIND_UNRESOLVED))
    return r


def case_the_docstring_example_holds():
    j = MemoryJournal()
    pay(j, 1)
    assert _who(last_payment(j)) == (intent(1).card_no, intent(1).time)


def case_an_empty_journal_has_no_last_payment():
    _each(lambda j: None, lambda j: None)


def case_the_newest_payment_is_found_after_many():
    def steps(j):
        for n in range(1, 13):  # past two segments of the small geometry: the newest is in the head segment
            pay(j, n)

    _each(steps, lambda j: (intent(12).card_no, intent(12).time))


def case_a_debit_proven_without_tac_counts_as_a_payment():
    def steps(j):
        pay(j, 1)
        r = intent(2)
        j.append_intent(r)
        j.append_outcome(r.outcome(KIND_NO_TAC, balance=4800))

    _each(steps, lambda j: (intent(2).card_no, intent(2).time))


def case_no_payment_when_the_newest_moved_no_money_or_is_unknown():
    # An open intent (power cut before its outcome), a cancelled one and an unresolved one: the resting card
    # must reach tap(), which recovers or charges it; the older payment of card 1 is not what happened last.
    def opened(j):
        pay(j, 1)
        j.append_intent(intent(2))

    def cancelled(j):
        pay(j, 1)
        r = intent(2)
        j.append_intent(r)
        j.append_outcome(r.outcome(KIND_CANCELLED))

    def torn(j):
        pay(j, 1)
        _torn(j, 2)

    for steps in (opened, cancelled, torn):
        _each(steps, lambda j: None)


def case_a_recovery_is_the_payment_of_the_intent_it_settles():
    for kind in (KIND_SETTLED, KIND_SETTLED_NO_TAC):
        def steps(j, kind=kind):
            r = _torn(j, 3)
            pay(j, 4)  # another card paid in between
            j.append_settlement(Record(kind, ref=r.seq, balance=4800, tac=b"\x01\x02\x03\x04"))

        _each(steps, lambda j: (intent(3).card_no, intent(3).time))


def case_a_settlement_proving_no_debit_is_not_a_payment():
    def steps(j):
        r = _torn(j, 3)
        pay(j, 4)
        j.append_settlement(Record(KIND_SETTLED_NOT_DEBITED, ref=r.seq, balance=5000))

    _each(steps, lambda j: None)


def case_acknowledged_records_are_not_read():
    # The depot pulled them (hours after the last ride): nothing to hold a card to, and nothing is re-read.
    def steps(j):
        pay(j, 1)
        j.acknowledge(j.next_seq - 1)

    _each(steps, lambda j: None)


def case_a_payment_the_psam_refused_is_not_a_payment_here():
    # Debited, MAC2 rejected: the passenger saw MAC2_REJECTED and the entry is on the unresolved list, which
    # recovery reads first; nothing to hold or show again here.
    def steps(j):
        pay(j, 1)
        r = intent(2)
        j.append_intent(r)
        j.append_outcome(r.outcome(KIND_COMPLETED, FLAG_MAC2_BAD, balance=4800, tac=b"\x01\x02\x03\x04"))

    _each(steps, lambda j: None)


def case_the_shown_mark_survives_a_power_cut_on_flash_and_only_rises():
    nor = NorFlash(8, SS)
    j = FlashJournal(nor, header())
    j.prepare()
    pay(j, 1)
    assert unshown_payment(j)[1].seq == 2  # the power went before the screen: unshown
    j.mark_shown(2)
    assert unshown_payment(j) is None
    j = FlashJournal(nor, header())  # power cut and mount
    assert j.shown() == 2 and unshown_payment(j) is None
    pay(j, 2)
    j.mark_shown(1)  # an older payment shown again later: the mark does not go back
    assert j.shown() == 2
    j = FlashJournal(nor, header())
    assert _who(unshown_payment(j)) == (intent(2).card_no, intent(2).time)  # record 4 not shown


def case_a_shown_mark_deferred_by_a_full_meta_sector_is_saved_by_idle():
    nor = NorFlash(8, SS)
    j = FlashJournal(nor, header())
    j.prepare()
    while j.meta.room() > 0:  # fill the meta sector with refusal counts (programs only on the tap path)
        j.count_refusal("REFUSED_BLOCKED")
    pay(j, 1)
    j.mark_shown(2)
    assert j.shown() == 2 and unshown_payment(j) is None  # in RAM until idle
    assert FlashJournal(nor, header()).shown() == 0  # not yet in flash
    j.idle()
    assert FlashJournal(nor, header()).shown() == 2


def case_the_memory_journal_keeps_the_mark():
    j = MemoryJournal()
    pay(j, 1)
    assert unshown_payment(j) is not None
    j.mark_shown(2)
    assert unshown_payment(j) is None
