"""`pull`: copy a board's journal into the depot database, then let the board free what the database holds.

    tunion-depot --port /dev/ttyUSB0 --db depot.sqlite pull [--depot north-yard]
    rep = pull(board, open_db("depot.sqlite"), "north-yard")   # board: anything with .service(name, *args)

The order that makes a cut at any point harmless (../shared/notes/depot.md, "Resume proof"):
1. `status`: the board's ID, next seq and acknowledgement floor; a snapshot (and its refusal counters) is stored.
2. Acknowledge what the database already holds (a pull cut between its commit and its acknowledgement).
3. `records(seq, 4096)` from the first seq the database lacks: each chunk is base64 with its own length and CRC
   (checked; a chunk that fails is asked for again, the link drops bytes), then checked record by record and
   stored in one transaction (host_tools/store.py), committed before the next is asked for.
4. `ack(upto)` with upto = what the database now accounts for (records, and fault rows for damaged stretches and
   gaps, so damaged flash is freed too): never more than the committed database holds.
Killed, unplugged or reset at any step, the next pull stores nothing twice (ON CONFLICT DO NOTHING on
(board, seq)) and loses nothing (the board frees only what was acknowledged). Faults found (and those a cut pull
found but never reported) are reported one line each; damage makes the command exit 3.
"""
import base64
import binascii
import json
import time

import click
from sqlalchemy import insert, select, update

from tunion.compat import crc32

from host_tools.db import laptop_cst_secs, open_db, utcnow
from host_tools.errors import DepotError
from host_tools.store import DAMAGE, Cursor, store_chunk

CHUNK = 4096  # depot.md: base64 chunks of 4 KB per exec reach ~75 % of a 115200 link
MIN_CHUNK = 512  # the smallest records() chunk a fragmented board is asked for (service: 256..4096)
RETRIES = 3  # a chunk that fails its length or CRC is asked for again this many times


def _decode_chunk(c):
    """The chunk's bytes, or None when its base64, length or CRC is wrong (damaged on the link)."""
    try:
        b = base64.b64decode(c["b64"], validate=True)
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
    if len(b) != c.get("len") or crc32(b) & 0xFFFFFFFF != c.get("crc"):
        return None
    return b


def _records(board, seq, chunk):
    """records(seq, chunk), and the chunk size that worked: a board whose heap has no block for the chunk's base64
    (MemoryError on the board, after a long day: the free heap in small holes) is asked for half as much, down to
    MIN_CHUNK. records() only reads, so asking again changes nothing on the board."""
    while True:
        try:
            return board.service("records", seq, chunk), chunk
        except DepotError as e:
            if getattr(e, "kind", None) != "exception" or "MemoryError" not in str(e) or chunk <= MIN_CHUNK:
                raise
            chunk = max(MIN_CHUNK, chunk // 2)


def _fetch(board, seq, chunk):
    """(raw bytes, next, end, chunk size used) of one records() call, retried while the link damages it."""
    for _ in range(RETRIES):
        r, chunk = _records(board, seq, chunk)
        chunks = r.get("chunks")
        if not isinstance(chunks, list) or not isinstance(r.get("next"), int):
            raise DepotError("board answered records(%d) without chunks/next: %.80r" % (seq, r))
        parts = [_decode_chunk(c) for c in chunks]
        if all(p is not None for p in parts):
            return b"".join(parts), r["next"], bool(r.get("end")), chunk
    raise DepotError("records from seq %d failed their length or CRC check %d times: the link is damaging data"
                     % (seq, RETRIES))


def _start(depot, st, depot_name):
    """Store the board row, the status snapshot and its refusal counters, and open the pull row: its id."""
    t = depot.t
    bid = st["board_id"]
    now = utcnow()
    clock = st.get("clock") if st.get("clock_valid", True) else None
    with depot.write() as conn:
        # a board has one cable: an earlier pull of it still "running" was cut (killed, unplugged, reset)
        conn.execute(update(t.pulls).where(t.pulls.c.board_id == bid, t.pulls.c.state == "running")
                     .values(state="cut"))
        depot.insert_ignore(conn, t.boards, [{"board_id": bid, "first_seen_utc": now}])
        conn.execute(update(t.boards).where(t.boards.c.board_id == bid).values(
            name=st.get("board"), last_seen_utc=now, last_depot=depot_name, firmware=st.get("firmware"),
            config_version=st.get("config_version"), next_seq=st.get("next_seq")))
        pull_id = conn.execute(insert(t.pulls).values(
            board_id=bid, depot=depot_name, started_utc=now, state="running", records=0, duplicates=0, faults=0,
            chunks=0, bytes=0, board_acked_before=st.get("acknowledged")).returning(t.pulls.c.pull_id)).scalar()
        snap = conn.execute(insert(t.board_status).values(
            board_id=bid, pull_id=pull_id, taken_utc=now, clock_s=clock,
            drift_s=clock - laptop_cst_secs() if clock is not None else None,
            records_waiting=st.get("records_waiting"), next_seq=st.get("next_seq"),
            acknowledged=st.get("acknowledged"), flash_used=st.get("flash_used"), flash_total=st.get("flash_total"),
            firmware=st.get("firmware"), config_version=st.get("config_version"), test_keys=st.get("test_keys"),
            out_of_service=st.get("out_of_service") or None, errors_total=st.get("errors_total"),
            unresolved=len(st.get("unresolved") or ()), board_faults=len(st.get("faults") or ()),
            status=json.dumps(st, sort_keys=True)).returning(t.board_status.c.snapshot_id)).scalar()
        refusals = st.get("refusals") or {}
        if refusals:
            conn.execute(insert(t.refusals), [{"snapshot_id": snap, "reason": str(k), "board_id": bid,
                                               "count": int(v)} for k, v in sorted(refusals.items())])
    return pull_id


def _finish(depot, bid, pull_id, acked):
    """Mark the pull done and take the faults not yet reported (this pull's and any a cut pull left)."""
    t = depot.t
    f = t.faults
    with depot.write() as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            select(f.c.fault_id, f.c.kind, f.c.after_seq, f.c.first_seq, f.c.last_seq, f.c.length, f.c.segno,
                   f.c.detail, f.c.pull_id).where(f.c.board_id == bid, f.c.reported_pull.is_(None))
            .order_by(f.c.after_seq, f.c.fault_id))]
        conn.execute(update(f).where(f.c.board_id == bid, f.c.reported_pull.is_(None)).values(reported_pull=pull_id))
        damaged = any(r["kind"] in DAMAGE for r in rows)
        conn.execute(update(t.pulls).where(t.pulls.c.pull_id == pull_id).values(
            finished_utc=utcnow(), state="damaged" if damaged else "done", acknowledged=acked))
        conn.execute(update(t.boards).where(t.boards.c.board_id == bid).values(acknowledged=acked))
        p = conn.execute(select(t.pulls).where(t.pulls.c.pull_id == pull_id)).first()._mapping
    for r in rows:
        r["damage"] = r["kind"] in DAMAGE
    return rows, dict(p)


def pull(board, depot, depot_name, chunk=CHUNK, progress=None):
    """Pull every waiting record of `board` into `depot`; returns the report (a dict, JSON-able).
    progress(done_records, total_records, bytes) is called after each stored chunk."""
    t0 = time.monotonic()
    st = board.service("status")
    bid = st.get("board_id")
    if not bid or not isinstance(st.get("next_seq"), int):
        raise DepotError("the board's status has no board_id/next_seq: is its firmware older than the depot tool?")
    bid = str(bid).lower()
    st["board_id"] = bid
    held = depot.covered(bid)
    if st["next_seq"] - 1 < held:
        # Its journal restarted below what we hold (erased without raising the floor, or another board with the
        # same ID): its new records would collide with stored ones and be dropped as duplicates. Refuse.
        raise DepotError("board %s numbers its next record %d, but the depot already holds seq %d for it: its "
                         "journal was erased without raising the sequence floor (flash --raise-floor); nothing "
                         "pulled" % (bid, st["next_seq"], held), code=2)
    pull_id = _start(depot, st, depot_name)
    acked = st.get("acknowledged")
    acked = acked if isinstance(acked, int) else 0
    if held > acked:  # a cut pull committed more than it acknowledged: free that first
        acked = board.service("ack", held).get("acknowledged", held)
    cur = Cursor(bid, max(held, acked))
    start = cur.seq
    total = max(0, st["next_seq"] - 1 - start)
    nbytes = stored = dups = 0
    seq = cur.seq + 1
    asked = chunk
    while True:
        raw, nxt, end, chunk = _fetch(board, seq, chunk)  # a smaller chunk, once the board needed it, from then on
        res = store_chunk(depot, cur, raw, nxt, pull_id)  # committed when it returns
        cur = res.cursor
        nbytes += len(raw)
        stored += len(res.stored)
        dups += res.duplicates
        if progress is not None:
            progress(min(total, cur.seq - start), total, nbytes)
        if end:
            break
        if nxt <= seq:
            raise DepotError("board sent no progress at seq %d (records answered next=%d)" % (seq, nxt))
        seq = nxt
    upto = depot.covered(bid)
    got = board.service("ack", upto)
    faults, p = _finish(depot, bid, pull_id, upto)
    return {
        "board_id": bid, "board": st.get("board"), "depot": depot_name, "pull_id": pull_id,
        "stored": stored, "duplicates": dups, "first_seq": p["first_seq"], "last_seq": p["last_seq"],
        "chunks": p["chunks"], "bytes": nbytes, "seconds": round(time.monotonic() - t0, 3), "chunk_bytes": chunk,
        "chunk_asked": asked,
        "acknowledged": got.get("acknowledged", upto), "acked_elsewhere": max(0, (st.get("acknowledged") or 0) - held),
        "faults": faults, "damage": any(f["damage"] for f in faults),
    }


def open_board(ctx):
    """The board link (host_tools/link.py, the one module that talks to a board)."""
    try:
        from host_tools import link
    except ImportError as e:
        raise DepotError("host_tools.link is not installed: cannot talk to a board (%s)" % e) from e
    return link.Board(ctx.need_port(), baud=ctx.baud)


def _lines(rep):
    out = ["board %s (%s) depot %s: %d records stored, %d already held%s, %d chunks, %.1f KB in %.1f s; "
           "acknowledged up to %s" % (
               rep["board_id"], rep["board"] or "?", rep["depot"], rep["stored"], rep["duplicates"],
               ", seq %s..%s" % (rep["first_seq"], rep["last_seq"]) if rep["first_seq"] is not None else "",
               rep["chunks"], rep["bytes"] / 1024.0, rep["seconds"], rep["acknowledged"])]
    if rep["chunk_bytes"] < rep["chunk_asked"]:
        out.append("note: the board's heap had no room for %d-byte chunks (MemoryError): pulled in %d-byte chunks"
                   % (rep["chunk_asked"], rep["chunk_bytes"]))
    if rep["acked_elsewhere"]:
        out.append("note: %d records were acknowledged on the board before this database saw them (another "
                   "depot's database holds them)" % rep["acked_elsewhere"])
    for f in rep["faults"]:
        out.append("%s %s: %s" % ("fault" if f["damage"] else "note", f["kind"], f["detail"]))
    return out


@click.command("pull")
@click.option("--depot", "depot_name", envvar="TUNION_DEPOT", default=None,
              help="this depot's name, stored with the pull (default: the host name)")
@click.option("--chunk", default=CHUNK, show_default=True, type=click.IntRange(256, 4096),
              help="journal bytes per records() call")
@click.pass_obj
def pull_command(ctx, depot_name, chunk):
    """Copy the board's records into the database, then let the board free them.

    Every record is checked (CRC, sequence, segment header) and stored before the board is told it may free it;
    damaged data is kept as fault rows, reported one line each, and makes the exit status 3. A cut pull is
    simply run again: nothing is stored twice, nothing is lost."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    name = depot_name or ctx.conf.name  # --depot, else the depot configuration's name (hostname by default)
    depot = open_db(ctx.db)
    err = Console(stderr=True)
    try:
        board = open_board(ctx)
        with board:
            try:
                with Progress(TextColumn("pull"), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
                              TextColumn("{task.fields[kb]:.1f} KB"), TimeRemainingColumn(), console=err,
                              disable=ctx.json or not err.is_terminal, transient=True) as bar:
                    task = bar.add_task("pull", total=None, kb=0.0)

                    def progress(done, total, nbytes):
                        bar.update(task, completed=done, total=total, kb=nbytes / 1024.0)

                    rep = pull(board, depot, name, chunk=chunk, progress=progress)
            except BaseException:
                try:
                    board.close(restart_app=True)
                except DepotError:
                    pass  # the first error is the one to show
                raise
            # the report first: what is stored and acknowledged is shown even if the app then fails to restart
            if ctx.json:
                click.echo(json.dumps(rep, sort_keys=True, default=str))
            else:
                for line in _lines(rep):
                    click.echo(line)
            board.close(restart_app=True)
    finally:
        depot.close()
    n = sum(1 for f in rep["faults"] if f["damage"])
    if n:
        raise DepotError("%d damaged stretch%s on board %s: stored as fault rows, the flash freed"
                         % (n, "" if n == 1 else "es", rep["board_id"]), code=3)
