"""`report` and `export` (host_tools/report.py, export.py, clearing.py) over a depot database filled by the real
`pull` from a CPython board (tests/depotboard.py) on which real taps ran: strict simulated cards, the software SAM
(test keys), the real purchase core and flash journal. Checked against the cards' own state, card by card: each
card's balance fell by what the report and the clearing files say it paid, every TAC in the batch verifies, the
torn tap is unresolved until the pull that brings its settlement, which lands in the settlements file of the day
it was pulled citing the original (board, seq), and is never a second payment. SQLite and PostgreSQL."""
import csv
import datetime
import json

import pytest

from depotboard import SimBoard
from host_tools import cli
from host_tools.db import open_db
from host_tools.depotconf import DepotConfig
from host_tools.export import export_day
from host_tools.pull import pull
from host_tools.report import OTHER_CITY, build_report
from pg import depot_url, pg_server  # noqa: F401  (fixtures)
from sim import keys
from sim.card import AFTER, make_card, make_other_city_card
from tunion import outcome as O
from tunion.segment import SegmentHeader
from tunion.flashjournal import FlashJournal

DAY = "2026-12-01"  # sim.rig.Rig's clock starts 2026-12-01 08:00 CST


class TapBoard(SimBoard):
    """SimBoard whose segment header carries the software SAM's terminal (the TAC covers it)."""

    def boot(self):
        super().boot()
        hdr = SegmentHeader(bytes.fromhex(self.board_id), keys.TEST_PSAM_SERIAL, keys.TEST_TERMINAL, "B12",
                            "10086", 7)
        self.j = FlashJournal(self.nor, hdr)
        self.j.prepare()
        self.rig.journal = self.j
        self.v.journal = self.j


def _pull_day_cst():
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=8)).date().isoformat()


@pytest.fixture
def day(depot_url, tmp_path):
    """A morning of taps, pulled twice: the torn card's settlement comes in the second pull."""
    b = TapBoard(sectors=64)
    rig = b.rig
    cards = {
        "a": make_card(card_no=keys.TEST_CARD_NO + 1, balance=1000),
        "b": make_card(card_no=keys.TEST_CARD_NO + 2, balance=1000),
        "student": make_card(card_no=keys.TEST_CARD_NO + 3, balance=1000, card_type=2),
        "visitor": make_other_city_card(balance=1000),
        "torn": make_card(card_no=keys.TEST_CARD_NO + 4, balance=1000),
        "poor": make_card(card_no=keys.TEST_CARD_NO + 5, balance=10),
    }
    before = {k: c.balance for k, c in cards.items()}
    seen = []
    for k in ("a", "b", "student", "visitor", "a", "poor"):
        seen.append(rig.tap(cards[k], advance_ms=400_000).status)
    cards["torn"].tear_on_ins(0x54, AFTER)  # debited, the answer lost
    seen.append(rig.tap(cards["torn"], advance_ms=10_000).status)
    seen.append(rig.tap(cards["b"], advance_ms=10_000).status)  # another card: the torn intent ends unresolved
    assert seen == [O.PAID] * 5 + [O.REFUSED_INSUFFICIENT, O.TAP_AGAIN, O.PAID]
    depot = open_db(depot_url)
    with b:
        pull(b, depot, "D1")
    first = build_report(depot, DAY, city=keys.TEST_CITY.hex())
    cards["torn"].present()
    assert rig.tap(cards["torn"], advance_ms=1000).status == O.PAID_RECOVERED
    with b:
        pull(b, depot, "D1")
    yield depot, cards, before, first, b
    depot.close()


def test_report_matches_the_cards(day):
    depot, cards, before, first, b = day
    rep = build_report(depot, DAY, city=keys.TEST_CITY.hex())
    paid = {k: before[k] - c.balance for k, c in cards.items()}
    t = rep["totals"]
    assert t["revenue"] == sum(paid.values())
    assert t["paid"] == 7 and t["taps"] == 7  # 5 + the torn (settled) + b again; a refusal writes no record
    assert t["unresolved"] == 0 and first["totals"]["unresolved"] == 1
    assert first["unresolved"][0]["card_no"] == str(cards["torn"].card_no)
    assert t["recovered"] == 1  # the torn tap, settled with the card's TAC
    assert t["riders"] == {"ordinary 普通": 5, "student 学生": 1, OTHER_CITY: 1}
    # the recovered tap's MAC2 could not be checked (the PSAM session of the torn tap was gone): listed apart
    assert t["test_keys"] == 7 and t["mac2_unverified"] == 1 and t["mac2_rejected"] == 0
    assert [d["card_no"] for d in rep["mac2"]] == [str(cards["torn"].card_no)]
    hours = {(h["hour"], h["line"], h["vehicle"]): h["paid"] for h in rep["by_hour"]}
    assert sum(hours.values()) == 7 and all(k[1:] == ("B12", "10086") for k in hours)
    assert rep["refusals"][b.board_id] == {"REFUSED_INSUFFICIENT": 1}
    assert [h["board"] for h in rep["health"]] == [b.board_id] and rep["health"][0]["records_unpulled"] == 0
    json.dumps(rep)  # what --json prints


def test_export_clears_each_payment_once_and_every_tac_verifies(day, tmp_path):
    depot, cards, before, first, b = day
    conf = DepotConfig(name="D1")
    m = export_day(depot, DAY, tmp_path / "day", conf)
    files = {(f["kind"], f["format"]): f for f in m["files"]}
    rows = list(csv.DictReader((tmp_path / "day" / files[("test_keys", "csv")]["name"]).open()))
    # software SAM: every record is a test-key record, so nothing reaches the payments file (never money)
    assert files[("payments", "csv")]["records"] == 0
    assert m["tac"]["bad"] == 0 and m["tac"]["ok"] == 6
    by_card = {}
    for r in rows:
        if r["end"] == "debited_tac":
            by_card[r["card_no"]] = by_card.get(r["card_no"], 0) + int(r["amount"])
    for k, c in cards.items():
        if k != "torn":
            assert by_card.get(str(c.card_no), 0) == before[k] - c.balance, k
    torn = [r for r in rows if r["card_no"] == str(cards["torn"].card_no)]
    assert [r["end"] for r in torn] == ["unknown"]  # the day's own outcome; its money is in the settlement
    pulled = export_day(depot, _pull_day_cst(), tmp_path / "pulled", conf)
    st = [f for f in pulled["files"] if f["kind"] == "settlements" and f["format"] == "jsonl"][0]
    lines = [json.loads(x) for x in (tmp_path / "pulled" / st["name"]).read_text().splitlines()]
    if _pull_day_cst() == DAY:
        pytest.skip("the pull's day is the taps' day")
    assert len(lines) == 1
    s = lines[0]
    assert (s["settles_board"], s["settles_seq"]) == (b.board_id, int(torn[0]["seq"]))
    assert s["end"] == "debited_tac" and s["tac_check"] == "ok"
    assert int(s["amount"]) == before["torn"] - cards["torn"].balance


def test_cli_report_json_chart_and_export_exit_codes(day, tmp_path, depot_url, capsys):
    depot = day[0]
    assert cli.run(["--db", depot_url, "--json", "report", "--day", DAY, "--chart", str(tmp_path / "ch")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["totals"]["paid"] == 7
    for p in out["charts"]:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert cli.run(["--db", depot_url, "report", "--day", "2026-13-01"]) == 2
    assert "bad day" in capsys.readouterr().err
    assert cli.run(["--db", depot_url, "export", "--day", DAY, "--out", str(tmp_path / "x")]) == 0
    assert "batch" in capsys.readouterr().out
    with depot.write() as conn:  # a TAC changed in the database: the batch is written but the exit says so
        t = depot.t.records
        conn.execute(t.update().where(t.c.kind == 2).values(tac="00000000"))
    assert cli.run(["--db", depot_url, "export", "--day", DAY, "--out", str(tmp_path / "y")]) == 3
    assert "failed their check" in capsys.readouterr().err
