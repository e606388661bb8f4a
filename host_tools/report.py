"""What the operator reads after a pull: taps, riders, revenue, refusals, recoveries, doubtful records, faults
and each board's health, per day, line, vehicle and hour, from the depot database.

    rep = build_report(depot, "2026-12-01", "2026-12-01", city="9990")
    print_report(rep)                                   # rich tables
    json.dumps(rep)                                     # what `report --json` prints
    draw_charts(rep, "out/")                            # PNGs (matplotlib, Agg; a CJK font where one exists)

Days are CST calendar days of the tap's own time (validator.md section 2: the board's clock is CST). Money is
what the cards say moved: an intent counts as paid when its outcome or a later settlement says it was debited
(the `payments` view, host_tools/db.py); unresolved intents are money at risk, listed apart. Refusal counters are
cumulative on the board and carry no times: a day's refusals are the last snapshot taken in the period (by the
board's clock) minus the last one before it (depot.md "Reports"). Cards from other cities (异地卡) are counted apart from local card types.
"""
import datetime
import json

import click
from sqlalchemy import and_, func, select

from host_tools.db import cst
from host_tools.errors import DepotError

CARD_TYPES = {1: "ordinary 普通", 2: "student 学生", 3: "senior 老人", 4: "test 测试", 5: "military 军人"}
OTHER_CITY = "other city 异地"


def _day(s):
    try:
        return datetime.date.fromisoformat(s)
    except (TypeError, ValueError):
        raise DepotError("bad day %r: give YYYY-MM-DD" % (s,), code=2)


def rider_class(card_type, issuer, city):
    """A rider's column: the local card type's name, or 'other city' for a card whose issuer city (issuer ID
    bytes 2..3, docs/test-keys.md) is not the depot's city. Without a configured city every card is local."""
    if city and issuer and issuer[4:8].lower() != city:
        return OTHER_CITY
    return CARD_TYPES.get(card_type, "type %s" % card_type)


def build_report(depot, day_from, day_to=None, city=None, board=None):
    """The report as plain JSON-able data (dicts and lists) for the CST days day_from..day_to."""
    d0 = _day(day_from)
    d1 = _day(day_to or day_from)
    if d1 < d0:
        raise DepotError("report: --to %s is before --day %s" % (d1, d0), code=2)
    t0 = datetime.datetime.combine(d0, datetime.time())
    t1 = datetime.datetime.combine(d1 + datetime.timedelta(days=1), datetime.time())
    p = depot.t.payments
    cond = [p.c.time_cst >= t0, p.c.time_cst < t1]
    if board:
        cond.append(p.c.board_id == board)
    hours = {}
    no_tac = {}
    doubtful = []
    unresolved = []
    totals = {"taps": 0, "paid": 0, "revenue": 0, "recovered": 0, "unresolved": 0, "not_debited": 0,
              "test_keys": 0, "mac2_unverified": 0, "mac2_rejected": 0, "no_tac": 0, "riders": {}}
    with depot.read() as conn:
        rows = conn.execute(select(p).where(and_(*cond)).order_by(p.c.time_cst, p.c.board_id, p.c.seq)).mappings()
        for r in rows:
            t = r["time_cst"]
            key = (t.date().isoformat(), r["line"] or "", r["vehicle"] or "", t.hour)
            h = hours.get(key)
            if h is None:
                h = hours[key] = {"day": key[0], "line": key[1], "vehicle": key[2], "hour": key[3], "taps": 0,
                                  "paid": 0, "revenue": 0, "recovered": 0, "unresolved": 0, "riders": {}}
            end = r["end_state"] or "unknown"
            for agg in (h, totals):
                agg["taps"] += 1
            if end in ("debited_tac", "debited_no_tac"):
                who = rider_class(r["card_type"], r["issuer"], city)
                for agg in (h, totals):
                    agg["paid"] += 1
                    agg["revenue"] += int(r["amount"])
                    agg["riders"][who] = agg["riders"].get(who, 0) + 1
                    if r["recovered"]:
                        agg["recovered"] += 1
                if end == "debited_no_tac":
                    totals["no_tac"] += 1
                    no_tac[r["card_no"]] = no_tac.get(r["card_no"], 0) + 1
            elif end == "unknown":
                for agg in (h, totals):
                    agg["unresolved"] += 1
                unresolved.append(_ref(r))
            else:
                totals["not_debited"] += 1
            if r["test_keys"]:
                totals["test_keys"] += 1
            if r["mac2_unverified"] or r["mac2_bad"]:
                totals["mac2_rejected" if r["mac2_bad"] else "mac2_unverified"] += 1
                doubtful.append(dict(_ref(r), why="mac2_rejected" if r["mac2_bad"] else "mac2_unverified"))
        refusals = _refusals(depot, conn, t0, t1, board)
        faults = _faults(depot, conn, board)
        health = _health(depot, conn, board)
    return {
        "from": d0.isoformat(), "to": d1.isoformat(), "city": city, "board": board, "totals": totals,
        "by_hour": [hours[k] for k in sorted(hours)], "refusals": refusals,
        "no_tac_by_card": [{"card_no": k, "count": no_tac[k]} for k in sorted(no_tac)],
        "unresolved": unresolved, "mac2": doubtful, "faults": faults, "health": health,
    }


def _ref(r):
    return {"board": r["board_id"], "seq": int(r["seq"]), "card_no": r["card_no"], "amount": int(r["amount"]),
            "time": r["time_cst"].isoformat(sep=" ")}


def _refusals(depot, conn, t0, t1, board):
    """Per board and reason: refusals counted in the period. The board's counters are cumulative and carry no
    times, so a snapshot's refusals belong to the CST day of the board's own clock when it was taken (the laptop's
    clock + 8 h when the board's was not set): last snapshot in the period minus the last one before it."""
    s, rf = depot.t.board_status, depot.t.refusals
    out = {}
    q = select(s.c.board_id, s.c.snapshot_id, s.c.taken_utc, s.c.clock_s).order_by(s.c.board_id, s.c.snapshot_id)
    if board:
        q = q.where(s.c.board_id == board)
    before, last = {}, {}
    for b, sid, taken, clock_s in conn.execute(q):
        when = cst(clock_s) if clock_s is not None else taken + datetime.timedelta(hours=8)
        if when < t0:
            before[b] = sid
        elif when < t1:
            last[b] = sid
    for b in sorted(last):
        now = _counts(conn, rf, last[b])
        was = _counts(conn, rf, before[b]) if b in before else {}
        for reason in sorted(now):
            n = now[reason] - was.get(reason, 0)
            if n < 0:  # the board's counters started again (a new journal): its count since then
                n = now[reason]
            if n:
                out.setdefault(b, {})[reason] = n
    return out


def _counts(conn, rf, sid):
    return {reason: int(n) for reason, n in conn.execute(select(rf.c.reason, rf.c["count"]).where(
        rf.c.snapshot_id == sid))}


def _faults(depot, conn, board):
    f = depot.t.faults
    q = select(f.c.board_id, f.c.kind, f.c.after_seq, f.c.first_seq, f.c.last_seq, f.c.length, f.c.detail,
               f.c.found_utc).order_by(f.c.board_id, f.c.after_seq)
    if board:
        q = q.where(f.c.board_id == board)
    return [{"board": r[0], "kind": r[1], "after_seq": r[2], "first_seq": r[3], "last_seq": r[4], "bytes": r[5],
             "detail": r[6], "found_utc": r[7].isoformat(sep=" ") if r[7] else None} for r in conn.execute(q)]


def _health(depot, conn, board):
    """A row per board: its latest status snapshot and what the database holds for it."""
    s, rec, f = depot.t.board_status, depot.t.records, depot.t.faults
    latest = select(s.c.board_id, func.max(s.c.snapshot_id).label("sid")).group_by(s.c.board_id).subquery()
    q = select(s).join(latest, s.c.snapshot_id == latest.c.sid).order_by(s.c.board_id)
    if board:
        q = q.where(s.c.board_id == board)
    out = []
    for r in conn.execute(q).mappings():
        b = r["board_id"]
        stored = conn.execute(select(func.count(), func.max(rec.c.seq)).where(rec.c.board_id == b)).one()
        nf = conn.execute(select(func.count()).where(and_(f.c.board_id == b, f.c.kind != "torn"))).scalar()
        used, total = r["flash_used"], r["flash_total"]
        out.append({
            "board": b, "seen_utc": r["taken_utc"].isoformat(sep=" "), "firmware": r["firmware"],
            "config_version": r["config_version"], "clock": cst(r["clock_s"]).isoformat(sep=" ") if r["clock_s"]
            is not None else None, "drift_s": r["drift_s"], "records_waiting": r["records_waiting"],
            "flash_used_pct": round(100.0 * used / total, 1) if used is not None and total else None,
            "unresolved": r["unresolved"], "errors_total": r["errors_total"], "out_of_service": r["out_of_service"],
            "test_keys": bool(r["test_keys"]), "records_stored": int(stored[0]), "last_seq": stored[1],
            # what the board had numbered at its last status and the database still lacks (0 after a full pull)
            "records_unpulled": max(0, int(r["next_seq"]) - 1 - int(stored[1] or 0)) if r["next_seq"] else None,
            "faults": int(nf),
        })
    return out


def print_report(rep, console=None):
    """The report as rich tables on the terminal."""
    from rich.console import Console
    from rich.table import Table

    c = console or Console()
    t = rep["totals"]
    c.print("[bold]Report %s .. %s[/]%s" % (rep["from"], rep["to"], "  board " + rep["board"] if rep["board"] else ""))
    c.print("taps %d  paid %d  revenue %s  recovered %d  unresolved %d  no TAC %d  MAC2 unverified %d  "
            "MAC2 rejected %d  test keys %d" % (t["taps"], t["paid"], yuan(t["revenue"]), t["recovered"],
                                               t["unresolved"], t["no_tac"], t["mac2_unverified"],
                                               t["mac2_rejected"], t["test_keys"]))
    kinds = sorted(t["riders"])
    tab = Table(title="by day, line, vehicle and hour")
    for h in ("day", "line", "vehicle", "hour", "taps", "paid", "revenue"):
        tab.add_column(h, justify="right" if h in ("hour", "taps", "paid", "revenue") else "left")
    for k in kinds:
        tab.add_column(k, justify="right")
    tab.add_column("recovered", justify="right")
    tab.add_column("unresolved", justify="right")
    for h in rep["by_hour"]:
        tab.add_row(h["day"], h["line"], h["vehicle"], "%02d" % h["hour"], str(h["taps"]), str(h["paid"]),
                    yuan(h["revenue"]), *[str(h["riders"].get(k, 0)) for k in kinds], str(h["recovered"]),
                    str(h["unresolved"]))
    c.print(tab)
    if rep["refusals"]:
        tab = Table(title="refusals by reason")
        tab.add_column("board")
        tab.add_column("reason")
        tab.add_column("count", justify="right")
        for b in rep["refusals"]:
            for reason, n in rep["refusals"][b].items():
                tab.add_row(b, reason, str(n))
        c.print(tab)
    for title, rows, cols in (("unresolved taps (money at risk)", rep["unresolved"], ("board", "seq", "card_no",
                                                                                      "amount", "time")),
                              ("MAC2 unverified / rejected", rep["mac2"], ("board", "seq", "card_no", "amount",
                                                                           "why")),
                              ("debited without TAC, by card", rep["no_tac_by_card"], ("card_no", "count")),
                              ("gaps and faults", rep["faults"], ("board", "kind", "first_seq", "last_seq", "bytes",
                                                                  "detail")),
                              ("board health", rep["health"], ("board", "seen_utc", "firmware", "config_version",
                                                               "drift_s", "records_waiting", "flash_used_pct",
                                                               "unresolved", "errors_total", "faults",
                                                               "out_of_service"))):
        if not rows:
            continue
        tab = Table(title=title)
        for k in cols:
            tab.add_column(k)
        for r in rows:
            tab.add_row(*["" if r.get(k) is None else str(r.get(k)) for k in cols])
        c.print(tab)


def yuan(fen):
    return "¥%d.%02d" % divmod(int(fen), 100)



def _today_cst():
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=8)).date().isoformat()


@click.command("report")
@click.option("--day", help="first CST day, YYYY-MM-DD (default: today in CST)")
@click.option("--to", help="last CST day (default: --day)")
@click.option("--board", help="one board's ID (default: every board)")
@click.option("--chart", type=click.Path(file_okay=False), help="also draw PNG charts into this folder")
@click.pass_obj
def report_command(ctx, day, to, board, chart):
    """Taps, riders, revenue, refusals, recoveries, doubtful records, faults and board health."""
    from host_tools.db import open_db

    depot = open_db(ctx.db)
    try:
        rep = build_report(depot, day or _today_cst(), to, city=ctx.conf.city, board=board)
    finally:
        depot.close()
    if chart:
        from host_tools.charts import draw_charts

        rep["charts"] = draw_charts(rep, chart)
    if ctx.json:
        click.echo(json.dumps(rep, indent=2, ensure_ascii=False))
    else:
        print_report(rep)
        for p in rep.get("charts", ()):
            click.echo("chart: %s" % p)
