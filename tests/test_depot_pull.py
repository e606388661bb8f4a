"""`pull` (host_tools/pull.py) against a CPython board: the real firmware/app/service.py and a real
tunion.flashjournal.FlashJournal on the NOR simulator, behind the board link's API (tests/depotboard.py: calls go
through JSON, {"ok": False} raises DepotError). The tests taking `depot_url` run on a SQLite file and on a real
PostgreSQL server (tests/pg.py); the cut sweep runs whole on SQLite and on a sample of its points on PostgreSQL;
the rest (the database's part there already shown on both) on SQLite.
The end to end through real mpremote against the virtual board is tests/test_depot_vboard.py (needs link.py).

What is shown: records match what the board wrote, byte for byte; a second pull stores nothing; settlements
join the intents they cite across pulls; damaged data (a flipped bit, a lost sector, a damaged segment header)
leaves every valid record stored, the damage as fault rows, reported, exit 3, and the board's flash freed; a torn
write's tombstone is a note, not a gap; a board that restarted its numbering is refused. Cut at every step (the
tool killed, the board reset, a power cut inside the board's acknowledgement): rerun, nothing lost, nothing
doubled, and no acknowledgement ever ahead of what the database has committed.
"""
import json

import pytest
from sqlalchemy import func, select

from depotboard import SimBoard, BOARD_ID, Killed
from host_tools import cli
from host_tools import pull as pullmod
from host_tools.db import open_db
from host_tools.errors import DepotError
from host_tools.pull import pull
from pg import depot_url, pg_server  # noqa: F401  (fixtures)

CHUNK = 512  # small chunks: many chunks, so many places to cut


def _records(depot, board_id=BOARD_ID):
    t = depot.t.records
    with depot.read() as c:
        return {r.seq: bytes(r.raw) for r in c.execute(select(t.c.seq, t.c.raw).where(t.c.board_id == board_id))}


def _faults(depot):
    t = depot.t.faults
    with depot.read() as c:
        return [dict(r._mapping) for r in c.execute(select(t).order_by(t.c.after_seq, t.c.fault_id))]


def _guard(board, url):
    """The invariant, checked by the board before it applies an ack, on a connection of its own (so only what
    is committed counts): every record it would free is in the database with its exact bytes, or covered by a
    fault row (a damaged stretch or a gap). Returns the list of acks it checked."""
    seen = []
    check = open_db(url)

    def on_ack(upto):
        held = _records(check)
        covered = check.covered(BOARD_ID)
        for seq, raw in board.held().items():
            if seq <= upto:
                assert held.get(seq) == raw, "ack(%d) ahead of the database: seq %d not stored" % (upto, seq)
        assert upto <= covered, "ack(%d) ahead of the database, which accounts for %d" % (upto, covered)
        seen.append(upto)

    board.on_ack = on_ack
    return seen, check


def test_pull_stores_every_record_then_frees_the_board_and_a_second_pull_stores_nothing(depot_url):
    b = SimBoard()
    b.pay(60)
    d = open_db(depot_url)
    acks, check = _guard(b, depot_url)
    rep = pull(b, d, "north", chunk=CHUNK)
    assert rep["stored"] == 120 and rep["duplicates"] == 0 and rep["faults"] == [] and not rep["damage"]
    assert (rep["first_seq"], rep["last_seq"], rep["acknowledged"]) == (1, 120, 120) and rep["chunks"] > 10
    assert _records(d) == b.written  # byte for byte
    assert b.held() == {} and b.j.pending() == 0 and acks == [120]
    used = b.j.usage()[0]
    again = pull(b, d, "north", chunk=CHUNK)
    assert again["stored"] == 0 and again["duplicates"] == 0 and again["chunks"] == 1
    assert len(_records(d)) == 120 and b.j.usage()[0] <= used
    b.pay(3)
    third = pull(b, d, "north", chunk=CHUNK)
    assert (third["stored"], third["first_seq"], third["last_seq"]) == (6, 121, 126)
    assert b.calls[-3:] == [("status", ()), ("records", (121, CHUNK)), ("ack", (126,))]
    assert b.closed == []  # pull() leaves the link to its caller
    d.close()
    check.close()


def test_a_settlement_joins_the_intent_of_an_earlier_pull(depot_url):
    b = SimBoard()
    b.pay(2)
    u = b.unresolved()
    d = open_db(depot_url)
    pull(b, d, "north")
    t = d.t.payments
    with d.read() as c:
        p = c.execute(select(t).where(t.c.seq == u)).first()._mapping
    assert p["end_state"] == "unknown" and p["settlement_seq"] is None and p["outcome"] == "unresolved"
    assert b.j.unresolved() and b.j.unresolved()[0].seq == u  # acknowledged, still on the board's list
    b.pay(1)
    s = b.settle(u)
    pull(b, d, "south")
    with d.read() as c:
        p = c.execute(select(t).where(t.c.seq == u)).first()._mapping
    assert p["settlement_seq"] == s and p["settlement"] == "settled" and p["end_state"] == "debited_tac"
    assert p["tac"] == "0a0b0c0d" and p["balance_after"] == 600 and p["pull_id"] != p["settlement_pull_id"]
    d.close()


def _cli(tmp_db, board, monkeypatch, *args):
    monkeypatch.setattr(pullmod, "open_board", lambda ctx: board)
    return cli.run(["--port", "sim", "--db", tmp_db] + list(args) + ["pull", "--chunk", str(CHUNK)])


def test_damaged_record_lost_sector_and_damaged_header_are_faults_the_rest_stored_and_flash_freed(
        depot_url, monkeypatch, capsys):
    b = SimBoard()
    b.pay(40)
    b.flip(7)  # a flipped bit in a record
    lost = b.wipe_segment(40)  # a sector reads erased: its records left no bytes
    b.break_header(70)  # a flipped bit in a segment header: the board sends a stand-in
    acks, check = _guard(b, depot_url)
    code = _cli(depot_url, b, monkeypatch, "--json")
    out, err = capsys.readouterr()
    assert code == 3 and "3 damaged stretches on board %s" % BOARD_ID in err and err.count("\n") == 1
    rep = json.loads(out)
    kinds = [(f["kind"], f["first_seq"], f["last_seq"]) for f in rep["faults"]]
    assert ("crc", 7, 7) in kinds and ("gap", lost[0], lost[-1]) in kinds
    assert [k for k in kinds if k[0] == "header"] and len(kinds) == 3
    d = open_db(depot_url)
    want = {s: r for s, r in b.written.items() if s != 7 and s not in lost}
    assert _records(d) == want  # every valid record stored
    with d.read() as c:
        standin = c.execute(select(func.count()).select_from(d.t.records)
                            .where(d.t.records.c.header_standin.is_(True))).scalar()
    assert standin > 0  # the records under the damaged header: stored, marked as under a stand-in
    crc = [f for f in _faults(d) if f["kind"] == "crc"][0]
    assert crc["length"] == 48 and bytes(crc["raw"]) != b.written[7] and crc["reported_pull"] == rep["pull_id"]
    assert rep["acknowledged"] == 80 and b.j.pending() == 0 and b.held() == {}  # the damage freed too
    # a second pull: nothing new, the faults not stored or reported again, exit 0
    assert _cli(depot_url, b, monkeypatch, "--json") == 0
    rep2 = json.loads(capsys.readouterr()[0])
    assert rep2["faults"] == [] and rep2["stored"] == 0 and len(_faults(d)) == 3
    d.close()
    check.close()


def test_a_damaged_record_at_any_place_is_one_fault_for_its_own_seq(tmp_path):
    """Each record in turn damaged, in chunks of 256 bytes: whether it falls in the middle of a chunk, at a
    chunk's end, at a segment's end or is the very last record (an outcome: its intent reads as open again),
    the fault row stands for exactly its seq, everything else is stored, and the board is freed."""
    for seq in range(1, 21):
        b = SimBoard()
        b.pay(10)
        b.flip(seq)
        url = str(tmp_path / ("flip%d.sqlite" % seq))
        acks, check = _guard(b, url)
        d = open_db(url)
        rep = pull(b, d, "north", chunk=256)
        assert [(f["kind"], f["first_seq"], f["last_seq"]) for f in rep["faults"]] == [("crc", seq, seq)], seq
        assert _records(d) == {s: r for s, r in b.written.items() if s != seq}, seq
        assert rep["acknowledged"] == 20 and b.j.pending() == 0, seq
        d.close()
        check.close()


def test_a_torn_writes_tombstone_is_a_note_not_a_gap(depot_url, monkeypatch, capsys):
    b = SimBoard()
    b.pay(3)
    skipped = b.torn_intent()
    b.pay(2)
    code = _cli(depot_url, b, monkeypatch)
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("board %s (sim-nor) depot " % BOARD_ID) and "10 records stored" in lines[0]
    assert len(lines) == 2 and lines[1].startswith("note torn: tombstone") and "seq %d skipped" % skipped in lines[1]
    d = open_db(depot_url)
    f = _faults(d)
    assert [(x["kind"], x["first_seq"], x["last_seq"]) for x in f] == [("torn", skipped, skipped)]
    assert not any(x["kind"] == "gap" for x in f) and _records(d) == b.written and b.j.pending() == 0
    d.close()


def test_a_board_that_restarted_its_numbering_is_refused_and_nothing_stored(depot_url, monkeypatch, capsys):
    b = SimBoard()
    b.pay(5)
    d = open_db(depot_url)
    pull(b, d, "north")
    erased = SimBoard()  # the same board after an erase-flash without raising the sequence floor
    erased.pay(2)
    assert _cli(depot_url, erased, monkeypatch) == 2
    err = capsys.readouterr()[1]
    assert "numbers its next record 5, but the depot already holds seq 10" in err and err.count("\n") == 1
    assert len(_records(d)) == 10 and erased.calls == [("status", ())] and erased.j.pending() == 4
    d.close()


def test_a_board_that_stops_answering_is_one_line_and_a_rerun_completes(depot_url, monkeypatch, capsys):
    b = SimBoard()
    b.pay(20)
    b.reset_at = ("records", 2, "before")
    assert _cli(depot_url, b, monkeypatch) == 1
    err = capsys.readouterr()[1]
    assert err == "error: board stopped answering (it reset)\n" and b.closed == [True]
    assert _cli(depot_url, b, monkeypatch) == 0
    d = open_db(depot_url)
    assert _records(d) == b.written and b.j.pending() == 0
    d.close()


# ---- cut at every step ----------------------------------------------------------------------------------------
def _scenario():
    """A board with payments over many segments, an unresolved tap, a damaged record: what every cut starts from."""
    b = SimBoard()
    b.pay(25)
    u = b.unresolved()
    b.pay(10)
    b.flip(20)
    return b, u


def _count_steps(tmp_path):
    b, _ = _scenario()
    d = open_db(tmp_path / "count.sqlite")
    n = {"insert": 0}
    real = d.insert_ignore

    def counting(*a, **k):
        n["insert"] += 1
        return real(*a, **k)

    d.insert_ignore = counting
    pull(b, d, "north", chunk=CHUNK)
    d.close()
    return b.counts, n["insert"]


def _points(counts, inserts):
    pts = []
    for name in ("status", "records", "ack"):
        for k in range(counts.get(name, 0)):
            for when in ("before", "after"):
                pts.append(("kill", name, k, when))
                pts.append(("reset", name, k, when))
    pts += [("kill", "insert", k, "after") for k in range(inserts)]
    pts += [("powercut", "ack", 0, keep) for keep in (0, 3, 15)]
    return pts


def _run_cut(url, point, second=None):
    """One cut, then a rerun (cut again at its first acknowledgement when `second` is "before" or "after", and
    run a third time); the invariants asserted throughout. Returns the board."""
    b, u = _scenario()
    acks, check = _guard(b, url)
    d = open_db(url)
    how, name, k, when = point
    if how == "kill":
        if name == "insert":
            real, n = d.insert_ignore, [0]

            def dies(*a, **kw):
                out = real(*a, **kw)
                n[0] += 1
                if n[0] == k + 1:
                    raise Killed("killed inside a transaction")
                return out

            d.insert_ignore = dies
        else:
            b.kill_at = (name, k, when)
    elif how == "reset":
        b.reset_at = (name, k, when)
    else:
        b.cut_ack = ("prog", when)
    try:
        pull(b, d, "north", chunk=CHUNK)
        cut = False
    except (Killed, DepotError):
        cut = True
    assert cut, "the cut %r did not happen" % (point,)
    d.close()  # the killed tool's connections are gone; a new tool opens the database
    b.kill_at = b.reset_at = None
    b.pay(2)  # the bus runs on between the two pulls
    d = open_db(url)
    if second is not None:
        held = d.covered(BOARD_ID)
        b.kill_at = ("ack", b.counts.get("ack", 0), second)
        with pytest.raises(Killed):
            pull(b, d, "north", chunk=CHUNK)
        # killed at the first thing after status: freeing what the database holds from the cut pull
        assert held > 0 and b.calls[-1] == (("ack", (held,)) if second == "after" else ("status", ())), point
        b.kill_at = None
    rep = pull(b, d, "north", chunk=CHUNK)
    want = {s: r for s, r in b.written.items() if s != 20}
    assert _records(d) == want, point  # nothing lost
    with d.read() as c:
        total = c.execute(select(func.sum(d.t.pulls.c.records))).scalar()
    assert total == len(want), point  # nothing stored twice: the pulls' counts add up to the rows
    f = _faults(d)
    assert [(x["kind"], x["first_seq"], x["last_seq"]) for x in f] == [("crc", 20, 20)], point
    assert f[0]["reported_pull"] is not None, point  # reported, even when the pull that found it was cut
    if cut and f[0]["reported_pull"] == rep["pull_id"]:
        assert rep["damage"] and [x["kind"] for x in rep["faults"]] == ["crc"], point
    assert b.j.pending() == 0 and b.held() == {}, point  # the flash freed
    assert acks and all(a <= rep["acknowledged"] for a in acks), point
    d.close()
    check.close()
    return b


def test_pull_cut_at_every_step_then_rerun_loses_nothing_and_doubles_nothing(tmp_path):
    counts, inserts = _count_steps(tmp_path)
    pts = _points(counts, inserts)
    assert counts["records"] >= 6 and len(pts) > 40
    for i, p in enumerate(pts):
        _run_cut(str(tmp_path / ("cut%d.sqlite" % i)), p)


def test_a_pull_cut_after_its_commits_then_cut_again_at_the_first_acknowledgement(tmp_path):
    """The rerun first acknowledges what the database holds; cut there too (before and after the board applied
    it), a third pull still loses and doubles nothing."""
    n = 0
    for first in (("kill", "records", 3, "before"), ("kill", "ack", 0, "before"), ("reset", "records", 5, "after")):
        for second in ("before", "after"):
            _run_cut(str(tmp_path / ("twice%d.sqlite" % n)), first, second)
            n += 1


def test_pull_cut_at_a_sample_of_steps_on_postgresql(tmp_path, pg_server):
    counts, inserts = _count_steps(tmp_path)
    pts = _points(counts, inserts)
    sample = [p for p in pts if p[1] in ("status", "ack")] + [p for p in pts if p[1] in ("records", "insert")][::7]
    for p in sample:
        _run_cut(pg_server.new_database(), p)


def test_the_sweep_catches_an_acknowledgement_before_the_commit(tmp_path, monkeypatch):
    """The seeded fault: a pull that acknowledges each chunk before storing it. The board-side check of every ack
    fails at once; without it, a kill inside the transaction loses records and the loss check fails."""
    real = pullmod.store_chunk
    board = {}

    def ack_first(depot, cursor, raw, nxt, pull_id):
        board["b"].service("ack", nxt - 1)  # the mutant: tells the board to free what is not committed yet
        return real(depot, cursor, raw, nxt, pull_id)

    monkeypatch.setattr(pullmod, "store_chunk", ack_first)
    orig_service = SimBoard.service

    def remember(self, *a):
        board["b"] = self
        return orig_service(self, *a)

    monkeypatch.setattr(SimBoard, "service", remember)
    with pytest.raises(AssertionError, match="ahead of the database"):
        _run_cut(str(tmp_path / "m1.sqlite"), ("kill", "records", 1, "after"))
    monkeypatch.setitem(globals(), "_guard", lambda b, url: ([0], open_db(url)))  # the board-side check off
    with pytest.raises(AssertionError):
        _run_cut(str(tmp_path / "m2.sqlite"), ("kill", "insert", 3, "after"))


def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path, monkeypatch, capsys):
    assert cli.run(["--db", str(tmp_path / "no" / "d.sqlite"), "--port", "x", "pull"]) == 2
    assert capsys.readouterr()[1] == "error: --db: folder %s does not exist\n" % (tmp_path / "no")
    b = SimBoard()
    b.pay(1)
    assert _cli(str(tmp_path / "d.sqlite"), b, monkeypatch, "--json") == 0
    capsys.readouterr()

    def refuses(*a):
        raise DepotError("the board refused records: journal: flash read failed")

    monkeypatch.setattr(b, "_service",
                        lambda name, *a: refuses() if name == "records" else SimBoard._service(b, name, *a))
    assert _cli(str(tmp_path / "d.sqlite"), b, monkeypatch) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == "error: the board refused records: journal: flash read failed\n"
    assert cli.run(["pull", "--help"]) == 0 and "--depot" in capsys.readouterr()[0]


def test_a_chunk_damaged_on_the_link_is_asked_for_again(tmp_path):
    b = SimBoard()
    b.pay(10)
    real = SimBoard._service
    bad = {"n": 2}

    def flaky(name, *a):
        r = real(b, name, *a)
        if name == "records" and bad["n"]:
            bad["n"] -= 1
            c = r["chunks"][0]
            c["b64"] = c["b64"][:-8] + ("A" * 8 if not c["b64"].endswith("A" * 8) else "B" * 8)
        return r

    b._service = flaky
    d = open_db(tmp_path / "d.sqlite")
    rep = pull(b, d, "north", chunk=CHUNK)
    assert rep["stored"] == 20 and _records(d) == b.written
    assert [c[0] for c in b.calls].count("records") == 2 + rep["chunks"]  # two asked again
    bad["n"] = 99
    b.pay(1)
    with pytest.raises(DepotError, match="failed their length or CRC check 3 times"):
        pull(b, d, "north", chunk=CHUNK)
    assert b.j.pending() == 2 and len(_records(d)) == 20  # nothing stored, nothing freed
    d.close()


def test_an_open_intent_is_stored_and_its_outcome_joins_it_in_the_next_pull(depot_url):
    from tunion.record import KIND_COMPLETED, KIND_INTENT, Record

    b = SimBoard()
    b.pay(2)
    i = Record(KIND_INTENT, card_no=3105170000000777, amount=200, balance=1000, counter=3, ttc=99, time=1796112300)
    seq = b._append(b.j.append_intent, i)  # the card is being debited: the intent is open while the depot pulls
    d = open_db(depot_url)
    seen = []
    rep = pull(b, d, "north", chunk=CHUNK, progress=lambda done, total, n: seen.append((done, total, n)))
    assert rep["stored"] == 5 and rep["acknowledged"] == seq and b.j.open_intent().seq == seq  # still open
    assert seen[-1] == (5, 5, rep["bytes"]) and [s[0] for s in seen] == sorted(s[0] for s in seen)
    t = d.t.payments
    with d.read() as c:
        p = c.execute(select(t).where(t.c.seq == seq)).first()._mapping
    assert p["end_state"] is None and p["outcome"] is None
    b._append(b.j.append_outcome, i.outcome(KIND_COMPLETED, balance=800, tac=b"\x05\x06\x07\x08"))
    rep = pull(b, d, "north", chunk=CHUNK)
    assert rep["stored"] == 1 and rep["duplicates"] == 0
    with d.read() as c:
        p = c.execute(select(t).where(t.c.seq == seq)).first()._mapping
    assert (p["end_state"], p["outcome_seq"], p["balance_after"], p["tac"]) == ("debited_tac", seq + 1, 800, "05060708")
    d.close()


def test_a_segment_header_naming_another_board_is_a_header_fault():
    import base64

    from host_tools.store import Cursor, check_chunk

    b = SimBoard()
    b.pay(2)
    r = b.service("records", 1, 4096)
    raw = base64.b64decode(r["chunks"][0]["b64"])
    rows, faults, p = check_chunk(Cursor("240ac4999999", 0), raw, r["next"])
    assert len(rows) == 4 and p == 4
    assert [(f["kind"], f["detail"]) for f in faults] == [
        ("header", "segment 1 names board %s0000, not 240ac4999999" % BOARD_ID)]


def test_a_board_freed_by_another_depots_database_is_noted_and_a_cut_pull_marked(tmp_path, monkeypatch, capsys):
    b = SimBoard()
    b.pay(4)
    other = open_db(tmp_path / "other.sqlite")
    pull(b, other, "elsewhere")  # another depot, its own database: the board frees seq 1..8
    other.close()
    b.pay(1)
    b.kill_at = ("records", b.counts["records"], "after")
    d = open_db(tmp_path / "ours.sqlite")
    with pytest.raises(Killed):
        pull(b, d, "north")
    assert _cli(str(tmp_path / "ours.sqlite"), b, monkeypatch) == 0
    lines = capsys.readouterr()[0].splitlines()
    assert "2 records stored" in lines[0] and lines[1].startswith("note: 8 records were acknowledged on the board")
    with d.read() as c:
        states = [r[0] for r in c.execute(select(d.t.pulls.c.state).order_by(d.t.pulls.c.pull_id))]
    assert states == ["cut", "done"] and sorted(_records(d)) == [9, 10]
    d.close()
