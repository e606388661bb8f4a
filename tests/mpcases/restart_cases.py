"""tunion.journal.last_payment: the card a restarted validator holds a resting card to, read from the journal's
newest records when a power cut has cleared RTC memory. Run by pytest and under MicroPython (test_mpcases.py).

    j = MemoryJournal(); pay(j, 1); assert last_payment(j) == (intent(1).card_no, intent(1).time)
"""
from tunion.flashjournal import FlashJournal
from tunion.journal import MemoryJournal, last_payment
from tunion.record import (Record, KIND_COMPLETED, KIND_CANCELLED, KIND_UNRESOLVED, KIND_NO_TAC, KIND_SETTLED,
                           KIND_SETTLED_NO_TAC, KIND_SETTLED_NOT_DEBITED)
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


def _each(steps, expect):
    for make in _journals():
        j, reboot = make()
        steps(j)
        got = last_payment(reboot())
        assert got == expect(j), (make.__name__, got, expect(j))


def _torn(j, n):
    r = intent(n)
    j.append_intent(r)
    j.append_outcome(r.outcome(KIND_UNRESOLVED))
    return r


def case_the_docstring_example_holds():
    j = MemoryJournal()
    pay(j, 1)
    assert last_payment(j) == (intent(1).card_no, intent(1).time)


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
