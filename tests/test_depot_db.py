"""The depot database (host_tools/db.py) and one chunk's store (host_tools/store.py), each test on a SQLite file
and on a real PostgreSQL server the session starts (tests/pg.py). The chunks are real journal bytes: what
app.service.records answers over a tunion.flashjournal.FlashJournal on the NOR simulator (tests/depotboard.py)."""
import base64

import pytest
from sqlalchemy import func, select, text

from depotboard import SimBoard, BOARD_ID, Killed
from host_tools import db as dbm
from host_tools.db import open_db, migrate, SCHEMA_VERSION
from host_tools.errors import DepotError
from host_tools.pull import pull
from host_tools.store import Cursor, store_chunk
from pg import depot_url, pg_server  # noqa: F401  (fixtures)
from tunion.clock import civil


def _chunk(board, seq, n=4096):
    r = board.service("records", seq, n)
    return base64.b64decode(r["chunks"][0]["b64"]), r["next"], r["end"]


def _pull_row(depot, board_id=BOARD_ID, name="t"):
    from host_tools.pull import _start

    return _start(depot, {"board_id": board_id, "next_seq": 1, "board": "x"}, name)


def _count(depot, table, **where):
    t = getattr(depot.t, table)
    q = select(func.count()).select_from(t)
    for k, v in where.items():
        q = q.where(t.c[k] == v)
    with depot.read() as c:
        return c.execute(q).scalar()


def test_a_new_database_gets_the_schema_and_reopening_changes_nothing(depot_url):
    d = open_db(depot_url)
    assert d.version() == SCHEMA_VERSION == 2
    with d.read() as c:
        for name in ("boards", "pulls", "records", "faults", "board_status", "refusals", "schema_info"):
            assert c.dialect.has_table(c, name), name
        assert c.execute(select(func.count()).select_from(d.t.payments)).scalar() == 0
    assert migrate(d) == 2  # found at 2: nothing to do
    d.close()
    d = open_db(depot_url, upgrade=False)
    assert d.version() == 2
    d.close()


def test_a_version_1_database_is_migrated_and_a_newer_one_refused(depot_url):
    url, sqlite = dbm._url(depot_url)
    from sqlalchemy import create_engine

    eng = create_engine(url)
    if sqlite:
        dbm._sqlite_setup(eng)
    d = dbm.Depot(eng, sqlite)
    assert migrate(d, upto=1) == 0 and d.version() == 1
    from sqlalchemy.exc import SQLAlchemyError

    with pytest.raises(SQLAlchemyError), d.read() as c:
        c.execute(select(func.count()).select_from(d.t.payments))  # no view before migration 2
    with pytest.raises(DepotError, match="schema version 1, not 2"):
        open_db(depot_url, upgrade=False)
    d2 = open_db(depot_url)  # migration 2: the payments view
    assert d2.version() == 2
    with d2.read() as c:
        assert c.execute(select(func.count()).select_from(d2.t.payments)).scalar() == 0
    with d2.write() as c:
        c.execute(d2.t.schema_info.update().values(value="99"))
    with pytest.raises(DepotError, match="schema version 99; this tool knows up to 2: update the tool"):
        open_db(depot_url)
    d2.close()
    eng.dispose()


def test_sqlite_runs_wal_with_synchronous_full(tmp_path):
    d = open_db(tmp_path / "d.sqlite")
    with d.read() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL: a commit is on disk
    d.close()


def test_bad_database_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(DepotError, match="does not exist") as e:
        open_db(tmp_path / "no" / "such" / "d.sqlite")
    assert e.value.code == 2
    with pytest.raises(DepotError, match="neither a SQLite path nor a postgresql"):
        open_db("mysql://x/y")
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    with pytest.raises(DepotError) as e:
        open_db("postgresql://postgres@127.0.0.1:%d/x?connect_timeout=2" % port)
    assert "\n" not in str(e.value) and str(e.value).startswith("--db:")


def test_a_chunk_is_stored_once_with_text_card_numbers_and_board_times(depot_url):
    d = open_db(depot_url)
    b = SimBoard()
    b.pay(2, card=18446744073709551000)  # above 2**63: SQLite's integers would overflow
    pid = _pull_row(d)
    raw, nxt, end = _chunk(b, 1)
    assert end and nxt == 5
    res = store_chunk(d, Cursor(BOARD_ID, 0), raw, nxt, pid)
    assert res.stored == [1, 2, 3, 4] and res.duplicates == 0 and res.faults == [] and res.cursor.seq == 4
    again = store_chunk(d, Cursor(BOARD_ID, 0), raw, nxt, pid)  # the same chunk after a cut: nothing twice
    assert again.stored == [] and again.duplicates == 4 and again.cursor.seq == 4
    assert _count(d, "records") == 4
    with d.read() as c:
        rows = [r._mapping for r in c.execute(select(d.t.records).order_by(d.t.records.c.seq))]
        p = c.execute(select(d.t.pulls).where(d.t.pulls.c.pull_id == pid)).first()._mapping
    assert rows[0]["card_no"] == "18446744073709551000" and rows[2]["card_no"] == "18446744073709551001"
    secs = rows[0]["time_s"]
    assert secs == 1796112000  # the board's CST seconds as written
    t = rows[0]["time_cst"]
    assert (t.year, t.month, t.day, t.hour, t.minute, t.second) == civil(secs)  # no 8-hour shift
    assert rows[1]["kind_name"] == "completed" and rows[1]["ref_seq"] == 1 and rows[1]["tac"] == "01020304"
    assert rows[1]["balance_after"] == 4800 and rows[0]["balance_before"] == 5000 and rows[0]["ttype"] == 6
    assert rows[0]["line"] == "B12" and rows[0]["vehicle"] == "10086" and rows[0]["terminal"] == "000000012345"
    assert bytes(rows[3]["raw"]) == b.written[4]
    assert p["records"] == 4 and p["duplicates"] == 4 and p["chunks"] == 2 and p["first_seq"] == 1
    d.close()


def test_a_chunk_is_stored_whole_or_not_at_all(depot_url):
    d = open_db(depot_url)
    b = SimBoard()
    b.pay(3)
    b.flip(3)  # a damaged record: the chunk has records and a fault row to store
    pid = _pull_row(d)
    raw, nxt, end = _chunk(b, 1)
    real = d.insert_ignore

    def dies_after_faults(conn, table, rows, returning=None):
        out = real(conn, table, rows, returning)
        if table is d.t.faults:
            raise Killed("killed inside the chunk's transaction")
        return out

    d.insert_ignore = dies_after_faults
    with pytest.raises(Killed):
        store_chunk(d, Cursor(BOARD_ID, 0), raw, nxt, pid)
    del d.insert_ignore
    assert _count(d, "records") == 0 and _count(d, "faults") == 0
    with d.read() as c:
        assert c.execute(select(d.t.pulls.c.chunks).where(d.t.pulls.c.pull_id == pid)).scalar() == 0
    res = store_chunk(d, Cursor(BOARD_ID, 0), raw, nxt, pid)
    assert res.stored == [1, 2, 4, 5, 6] and [f["kind"] for f in res.faults] == ["crc"]
    assert res.faults[0]["first_seq"] == res.faults[0]["last_seq"] == 3
    assert store_chunk(d, Cursor(BOARD_ID, 0), raw, nxt, pid).faults == []  # no fault row twice either
    assert _count(d, "faults") == 1 and d.covered(BOARD_ID) == 6
    d.close()


def test_two_depots_and_two_boards_share_one_database(depot_url):
    """Boards with the same seq numbers side by side; a board moved from one depot to another continues there."""
    a, b = SimBoard(board_id=BOARD_ID), SimBoard(board_id="240ac4000099")
    a.pay(5)
    b.pay(7)
    north, south = open_db(depot_url), open_db(depot_url)  # two depot laptops, one database
    ra = pull(a, north, "north", chunk=512)
    rb = pull(b, south, "south", chunk=512)
    assert (ra["stored"], rb["stored"]) == (10, 14)
    a.pay(2)
    ra2 = pull(a, south, "south", chunk=512)  # bus a now parks at the south depot
    assert ra2["stored"] == 4 and ra2["first_seq"] == 11 and ra2["faults"] == []
    assert north.last_seq(BOARD_ID) == 14 and north.last_seq("240ac4000099") == 14
    assert _count(north, "records", board_id=BOARD_ID) == 14 and _count(north, "records", board_id="240ac4000099") == 14
    with north.read() as c:
        pulls = c.execute(select(north.t.pulls.c.board_id, north.t.pulls.c.depot, north.t.pulls.c.records)
                          .order_by(north.t.pulls.c.pull_id)).fetchall()
        boards = c.execute(select(north.t.boards.c.board_id, north.t.boards.c.last_depot)
                           .order_by(north.t.boards.c.board_id)).fetchall()
    assert [tuple(p) for p in pulls] == [(BOARD_ID, "north", 10), ("240ac4000099", "south", 14), (BOARD_ID, "south", 4)]
    assert [tuple(r) for r in boards] == [("240ac4000099", "south"), (BOARD_ID, "south")]
    for d in (north, south):
        d.close()


def test_status_snapshots_and_refusal_counters_are_kept_per_pull(depot_url):
    from tunion import outcome as O

    d = open_db(depot_url)
    b = SimBoard()
    b.pay(1)
    for _ in range(3):
        b.j.count_refusal(O.REFUSED_INSUFFICIENT)
    b.j.count_refusal(O.REFUSED_DENYLISTED)
    pull(b, d, "north")
    b.j.count_refusal(O.REFUSED_INSUFFICIENT)
    pull(b, d, "north")
    with d.read() as c:
        ref = c.execute(select(d.t.refusals.c.snapshot_id, d.t.refusals.c.reason, d.t.refusals.c.count)
                        .order_by(d.t.refusals.c.snapshot_id, d.t.refusals.c.reason)).fetchall()
        snaps = c.execute(select(d.t.board_status).order_by(d.t.board_status.c.snapshot_id)).fetchall()
    s1, s2 = snaps[0]._mapping, snaps[1]._mapping
    assert [tuple(r)[1:] for r in ref] == [("REFUSED_DENYLISTED", 1), ("REFUSED_INSUFFICIENT", 3),
                                           ("REFUSED_DENYLISTED", 1), ("REFUSED_INSUFFICIENT", 4)]
    assert s1["records_waiting"] == 2 and s1["next_seq"] == 3 and s2["records_waiting"] == 0
    assert s1["acknowledged"] == 0 and s2["acknowledged"] == 2 and s1["firmware"] and abs(s1["drift_s"]) >= 0
    d.close()


def test_the_database_accepts_its_own_sql_on_both_dialects(depot_url):
    """The payments view's flag arithmetic and booleans behave the same on SQLite and PostgreSQL."""
    d = open_db(depot_url)
    b = SimBoard()
    b.pay(1)
    pull(b, d, "north")
    with d.read() as c:
        p = c.execute(select(d.t.payments)).first()._mapping
        n = c.execute(text("SELECT count(*) FROM payments WHERE end_state = 'debited_tac'")).scalar()
    assert p["recovered"] is False and p["test_keys"] is False and p["end_state"] == "debited_tac" and n == 1
    assert p["outcome"] == "completed" and p["tac"] == "01020304" and p["balance_after"] == 4800
    d.close()


def _threads(fns):
    import threading

    errors = []

    def run(fn):
        try:
            fn()
        except BaseException as e:  # noqa: B036 (reported below)
            errors.append(e)

    ts = [threading.Thread(target=run, args=(fn,)) for fn in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert errors == []


def test_depots_opening_a_new_database_at_once_migrate_it_once(depot_url):
    _threads([lambda: open_db(depot_url).close() for _ in range(4)])
    d = open_db(depot_url)
    with d.read() as c:
        assert c.execute(select(func.count()).select_from(d.t.schema_info)).scalar() == 1
    assert d.version() == 2
    d.close()


def test_two_depots_pulling_at_the_same_time_into_one_database(depot_url):
    boards = [SimBoard(board_id="240ac40000%02d" % k) for k in range(3)]
    for k, b in enumerate(boards):
        b.pay(20 + k)
    open_db(depot_url).close()
    reps = {}

    def one(b, name):
        d = open_db(depot_url)
        reps[b.board_id] = pull(b, d, name, chunk=256)
        d.close()

    _threads([lambda b=b, k=k: one(b, "depot%d" % (k % 2)) for k, b in enumerate(boards)])
    d = open_db(depot_url)
    for k, b in enumerate(boards):
        assert reps[b.board_id]["stored"] == 40 + 2 * k and reps[b.board_id]["chunks"] > 3
        t = d.t.records
        with d.read() as c:
            got = {r.seq: bytes(r.raw) for r in c.execute(select(t.c.seq, t.c.raw).where(t.c.board_id == b.board_id))}
        assert got == b.written and b.j.pending() == 0
    d.close()
