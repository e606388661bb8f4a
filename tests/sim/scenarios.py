"""Scripted journeys: the issue 7 findings a SimCard can show, and the tear sweeps' building blocks.

    rep = FINDINGS["3"]("flash").report()        # torn after DEBIT, a bystander pays, reboot, back 20 s later
    rep = torn_twice((6, AFTER), (2, BEFORE), bystander=True).report()

Findings 5 and 6 need a forged card (a DEBIT answer with made-up bytes, an INITIALIZE balance below the fare)
and are the purchase tests' business. Pure Python, runs under MicroPython too.
"""
from sim.card import BEFORE, AFTER
from sim.oracle import ACCEPTED
from sim.journey import Journey, cards

_DEBIT = 6  # APDU index of DEBIT in a clean compound tap: PPSE, AID, EF17, EF1E, INITIALIZE, UPDATE CACHE, DEBIT
_PROVE = 2  # ... and of GET TRANSACTION PROVE in a recovery tap: PPSE, AID, PROVE


def finding1(journal="memory", **kw):
    """Torn after DEBIT; another card pays; back, torn again at GET TRANSACTION PROVE; back once more."""
    j = Journey(cards(2), 1, journal, **kw)
    j.tap(0, 0, tear=(_DEBIT, AFTER))
    j.tap(1, 0, note="bystander")
    j.tap(0, 0, tear=(_PROVE, BEFORE), gap_ms=5000)
    j.tap(0, 0, gap_ms=3000)
    return j


def finding2(journal="memory", **kw):
    """Torn after DEBIT, recovered, and the card is read again 300 ms later."""
    j = Journey(cards(1), 1, journal, **kw)
    j.tap(0, 0, tear=(_DEBIT, AFTER))
    j.tap(0, 0, gap_ms=3000)
    j.tap(0, 0, gap_ms=300, linger=True)
    return j


def finding3(journal="memory", **kw):
    """Torn after DEBIT; another card pays; the validator reboots; back 20 s later."""
    j = Journey(cards(2), 1, journal, **kw)
    j.tap(0, 0, tear=(_DEBIT, AFTER))
    j.tap(1, 0, note="bystander")
    j.reboot(0)
    j.tap(0, 0, gap_ms=20000)
    return j


def finding4(journal="memory", **kw):
    """Front door torn just before its DEBIT reaches the card; the card pays at the rear door; back at the front."""
    j = Journey(cards(1), 2, journal, **kw)
    j.tap(0, 0, tear=(_DEBIT, BEFORE))
    j.give_up(0)
    j.tap(0, 1, gap_ms=4000)
    j.tap(0, 0, gap_ms=4000)
    return j


def finding7(journal="memory", **kw):
    """Torn after DEBIT; another card pays; back: the TAC PROVE gives must be recorded."""
    j = Journey(cards(2), 1, journal, **kw)
    j.tap(0, 0, tear=(_DEBIT, AFTER))
    j.tap(1, 0, note="bystander")
    j.tap(0, 0, gap_ms=5000)
    return j


def finding8(journal="memory", **kw):
    """Torn after DEBIT and back after 250 s (past twice the intent timeout, inside the recovery window)."""
    j = Journey(cards(1), 1, journal, **kw)
    j.tap(0, 0, tear=(_DEBIT, AFTER))
    j.tap(0, 0, gap_ms=250000)
    return j


FINDINGS = {"1": finding1, "2": finding2, "3": finding3, "4": finding4, "7": finding7, "8": finding8}


def torn_twice(first, second, bystander=False, reboot=False, gap_ms=5000, journal="memory", doors=1):
    """One card torn at `first` (APDU index, BEFORE/AFTER), then at `second` in the tap that follows (None: no
    second tear), then tapping clean until accepted (at most 3 more); optionally another card pays between the
    first two taps, and the validator reboots before the return."""
    j = Journey(cards(2), doors, journal)
    j.tap(0, 0, tear=first)
    if bystander:
        j.tap(1, 0, gap_ms=1000, note="bystander")
    if reboot:
        j.reboot(0)
    st = j.tap(0, 0, tear=second, gap_ms=gap_ms)
    n = 0
    while st not in ACCEPTED and n < 3 and j.passengers[0].ride is not None:
        st = j.tap(0, 0, gap_ms=2000)
        n += 1
    return j


def torn_then_other_door(first, gap_ms=4000, journal="memory"):
    """Torn at the front door at `first`; the passenger pays at the rear door instead; later back at the front."""
    j = Journey(cards(1), 2, journal)
    j.tap(0, 0, tear=first)
    j.give_up(0)
    j.tap(0, 1, gap_ms=gap_ms)
    st = j.tap(0, 0, gap_ms=gap_ms)
    if st not in ACCEPTED and j.passengers[0].ride is not None:
        j.tap(0, 0, gap_ms=2000)
    return j
