"""A simulated bus day on one validator: taps of every kind, what each showed, and the records it kept.

    make demo-core             # or: PYTHONPATH=.:firmware:tests .venv/bin/python -m tools.demo_core [--screens]

Everything here is the real firmware core (tunion.*) against the strict simulated cards and the software SAM
(test keys), writing its records to the real flash journal on a simulated NOR `journal` partition of a 4 MB
board (0.875 MiB, programs only while a card is on the reader, erases while idle): ordinary fares, a second rider, a repeat within 1 s, a concession rider inside and outside the
concession window, a visiting card, insufficient balance, refusals, and cards torn away mid-payment that are
recovered without charging twice. `--screens` also draws each 128x64 screen the passenger saw.
"""
import argparse
import sys

from rich.console import Console
from rich.table import Table

from tunion import outcome as O
from tunion import messages
from tunion.clock import civil
from tunion.display import Frame, show
from tunion.record import KIND_NAMES, KIND_INTENT, FLAG_RECOVERED, FLAG_MAC2_UNVERIFIED, FLAG_TEST_KEYS
from sim.card import make_card, make_other_city_card, AFTER, BEFORE, BLOCKED, ABSENT
from sim.rig import Rig
from sim.nor import NorFlash
from sim import keys
from tunion.flashjournal import FlashJournal
from tunion.segment import SegmentHeader

FLAG_NAMES = ((FLAG_RECOVERED, "recovered"), (FLAG_MAC2_UNVERIFIED, "MAC2 unverified"), (FLAG_TEST_KEYS, "test keys"))


def _hms(secs):
    return "%02d:%02d:%02d" % civil(secs)[3:6]


def _flags(f):
    return ", ".join(n for bit, n in FLAG_NAMES if f & bit)


def _frame_text(result):
    fb = Frame()
    show(fb, messages.screen(result))
    rows = []
    for y in range(0, 64, 2):  # two pixel rows per text row: upper/lower half blocks
        line = ""
        for x in range(128):
            top, bottom = fb.pixel(x, y), fb.pixel(x, y + 1)
            line += "█" if top and bottom else "▀" if top else "▄" if bottom else " "
        rows.append("│" + line + "│")
    return "┌" + "─" * 128 + "┐\n" + "\n".join(rows) + "\n└" + "─" * 128 + "┘"


JOURNAL_SECTORS = 0xE0000 // 4096  # boards/esp32-generic/partitions.csv: the journal partition


def bus_day(console, screens=False):
    flash = NorFlash(JOURNAL_SECTORS)
    rig = Rig(when=(2026, 12, 1, 7, 58, 0))
    header = SegmentHeader(b"BUS00042", rig.psam.serial, rig.psam.terminal, str(rig.config.line),
                           rig.config.vehicle, rig.config.version)
    rig.journal = FlashJournal(flash, header)
    prepared = rig.journal.prepare()
    tap_erases = [0]
    alice = make_card(card_no=keys.TEST_CARD_NO + 1, balance=5000)
    bob = make_card(card_no=keys.TEST_CARD_NO + 2, balance=150)
    carol = make_card(card_no=keys.TEST_CARD_NO + 3, balance=3000)
    dave = make_card(card_no=keys.TEST_CARD_NO + 4, balance=2000, card_type=3)  # senior: concession
    erin = make_card(card_no=keys.TEST_CARD_NO + 5, balance=2000, card_type=2)  # student: half fare
    frank = make_card(card_no=keys.TEST_CARD_NO + 6, balance=2000, expiry=20251231)
    grace = make_card(card_no=keys.TEST_CARD_NO + 7, state=BLOCKED, blocked_sw=0x9303)
    henry = make_card(card_no=keys.TEST_CARD_NO + 8, state=ABSENT)  # a bank card: no T-Union purse
    ivan = make_other_city_card(balance=4000)
    judy = make_card(card_no=keys.TEST_CARD_NO + 9, balance=1000, has_ef1e=False)  # old card: simple purchase

    day = Table(title="Line %d, vehicle %s: taps" % (rig.config.line, rig.config.vehicle))
    for col in ("time", "who", "what happened", "outcome", "screen", "fare", "balance", "card APDUs"):
        day.add_column(col)

    def tap(who, card, what, wait_ms=4000, tear=None):
        if tear is not None:
            card.tear_on_ins(tear[0], tear[1])
        card.reset_counts()
        t = rig.secs
        e0 = flash.erases
        r = rig.tap(card, advance_ms=wait_ms)
        tap_erases[0] += flash.erases - e0
        rig.journal.idle()  # between taps: erase ahead
        zh, en = messages.text(r.status)
        fare = messages.yuan(r.fare) if r.fare is not None and r.status in (O.PAID, O.PAID_RECOVERED) else ""
        bal = messages.yuan(r.balance) if r.balance is not None else ""
        day.add_row(_hms(t), who, what, r.status, zh + " / " + en, fare, bal, str(card.apdus))
        if screens:
            console.print("%s  %s: %s" % (_hms(t), who, r.status))
            console.print(_frame_text(r), highlight=False)
        if tear is not None:
            card.present()  # the passenger brings the card back
        return r

    tap("Alice", alice, "ordinary card, ¥50.00", wait_ms=500)
    tap("Alice", alice, "same card again 0.5 s later (silent)", wait_ms=3000)
    tap("Alice", alice, "pays for a second rider")
    tap("Bob", bob, "¥1.50 on the card")
    tap("Carol", carol, "card pulled away during DEBIT", tear=(0x54, AFTER))
    tap("Carol", carol, "taps again: GET TRANSACTION PROVE")
    tap("Judy", judy, "old card, no EF1E: simple purchase", tear=(0x54, BEFORE))
    tap("Judy", judy, "taps again: the debit never reached it")
    tap("Dave", dave, "senior card (concession): free ride", wait_ms=120000)
    tap("Dave", dave, "senior card again 2 min later, same line")
    tap("Erin", erin, "student card: half fare")
    tap("Ivan", ivan, "card from another city (异地卡)")
    tap("Frank", frank, "expired 2025-12-31")
    tap("Grace", grace, "application locked (9303)")
    tap("Henry", henry, "bank card, no T-Union purse")
    console.print(day)

    recs = Table(title="Records in the journal (what the depot will pull)")
    for col in ("seq", "kind", "cites", "card", "amount", "balance", "counter", "TTC", "time", "TAC", "flags"):
        recs.add_column(col)
    intents = {}
    for r in rig.records():
        if r.kind == KIND_INTENT:
            intents[r.seq] = r
            recs.add_row(str(r.seq), "intent", "", str(r.card_no), messages.yuan(r.amount), messages.yuan(r.balance),
                          str(r.counter), str(r.ttc), _hms(r.time), "", _flags(r.flags))
        else:
            i = intents.get(r.ref)
            recs.add_row(str(r.seq), KIND_NAMES[r.kind], str(r.ref), str(i.card_no) if i else "?",
                         messages.yuan(i.amount) if i else "", messages.yuan(r.balance), "", "", "",
                         r.tac.hex().upper(), _flags(r.flags))
    console.print(recs)
    console.print("Refusals counted for the depot: %s" % (rig.journal.refusals(),))
    used, total = rig.journal.usage()
    console.print("Journal: %d records waiting for the depot, %d of %d bytes used%s; segment header: board %s, "
                  "PSAM %s, terminal %s, line %s, vehicle %s, config v%d, firmware %s" % (
                      rig.journal.pending(), used, total, " (WARNING: above 80 %)" if rig.journal.warning() else "",
                      header.board_id.rstrip(b"\x00").decode(), header.psam_no.hex(), header.terminal.hex(), header.line.rstrip(b"\x00").decode(),
                      header.vehicle.rstrip(b"\x00").decode(), header.config_version, header.fw_version))
    console.print("Flash: %d sector erases while preparing at boot, %d erases during taps, %d programs, %d bytes "
                  "programmed" % (prepared, tap_erases[0], flash.programs, flash.bytes_programmed))
    # A power cut now: mount the same flash afresh and read the records back.
    again = FlashJournal(NorFlash(JOURNAL_SECTORS, image=flash.image()), header)
    back = again.read_from(0, 100000)
    console.print("After a power cut: %d records read back from flash, sequence %d..%d, open intent: %s, "
                  "faults: %s" % (len(back), back[0].seq, back[-1].seq, again.open_intent(), again.faults or "none"))
    for who, card, start in (("Alice", alice, 5000), ("Carol", carol, 3000), ("Judy", judy, 1000)):
        console.print("%s: card balance %s (started %s): charged %d time(s)" % (
            who, messages.yuan(card.balance), messages.yuan(start), (start - card.balance) // rig.config.base_fare))
    return rig


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--screens", action="store_true", help="draw every 128x64 screen")
    a = p.parse_args(argv)
    console = Console(width=200)
    console.print("[bold]T-Union bus validator: a simulated day[/bold] (software SAM, TEST KEYS)")
    bus_day(console, a.screens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
