"""`export`: one day's clearing batch from the depot database (host_tools/clearing.py writes the files).

    tunion-depot --db depot.sqlite export --day 2026-12-01 --out clearing/
    m = export_day(open_db("depot.sqlite"), "2026-12-01", "clearing/", load_depot_config())

A payment belongs to the batch of its own CST day with the outcome the board gave it then (completed, no_tac,
unresolved...); a settlement that a later pull brought (an unresolved intent proven debited or not) belongs to
the batch of the day it was pulled, in the settlements file, citing the original (board, seq). So a payment is
cleared once: an unresolved intent is never re-sent as a payment when its settlement arrives.
"""
import datetime

import click
from sqlalchemy import and_, select

from host_tools import clearing
from host_tools.db import cst_secs, open_db
from host_tools.errors import DepotError
from tunion import record as R

_END_OF_OUTCOME = {"completed": "debited_tac", "cancelled": "cancelled", "unresolved": "unknown",
                   "no_tac": "debited_no_tac"}


def _row(i, o_kind, o_seq, o_balance, o_tac, o_flags):
    flags = int(i["flags"]) | int(o_flags or 0)
    end = _END_OF_OUTCOME.get(o_kind, "unknown")
    debited = end in ("debited_tac", "debited_no_tac")
    return {
        "board": i["board_id"], "seq": int(i["seq"]), "outcome_seq": o_seq, "card_no": i["card_no"],
        "issuer": i["issuer"], "city": (i["issuer"] or "")[4:8], "card_type": i["card_type"],
        "counter": i["counter"], "amount": int(i["amount"]),
        "balance_after": int(o_balance) if debited and o_balance is not None else None,
        "ttype": "%02x" % int(i["ttype"]), "ttc": int(i["ttc"]), "time": clearing.cst_iso(int(i["time_s"])),
        "tac": o_tac if end == "debited_tac" else None, "key_version": i["key_version"], "alg_id": i["alg_id"],
        "recovered": bool(flags & R.FLAG_RECOVERED), "mac2_unverified": bool(flags & R.FLAG_MAC2_UNVERIFIED),
        "mac2_rejected": bool(flags & R.FLAG_MAC2_BAD), "test_keys": bool(flags & R.FLAG_TEST_KEYS), "end": end,
        "psam": i["psam_no"], "terminal": i["terminal"], "line": i["line"], "vehicle": i["vehicle"],
        "config_version": i["config_version"], "firmware": i["fw_version"],
    }


def export_day(depot, day, folder, conf, batch_id=None, keys=None):
    """Write the clearing batch of CST day `day` (YYYY-MM-DD) into `folder`; returns the manifest."""
    try:
        d = datetime.date.fromisoformat(day)
    except (TypeError, ValueError):
        raise DepotError("bad day %r: give YYYY-MM-DD" % (day,), code=2)
    t0 = datetime.datetime.combine(d, datetime.time())
    t1 = t0 + datetime.timedelta(days=1)
    batch = clearing.Batch(batch_id or "%s-%s" % (conf.name, d.strftime("%Y%m%d")), d.isoformat(), conf.name, keys)
    rec, pulls = depot.t.records, depot.t.pulls
    i, o, s = rec.alias("i"), rec.alias("o"), rec.alias("s")
    with depot.read() as conn:
        q = (select(i, o.c.kind_name.label("o_kind"), o.c.seq.label("o_seq"), o.c.balance_after.label("o_balance"),
                    o.c.tac.label("o_tac"), o.c.flags.label("o_flags"))
             .select_from(i.outerjoin(o, and_(o.c.board_id == i.c.board_id, o.c.ref_seq == i.c.seq,
                                              o.c.kind.between(R.KIND_COMPLETED, R.KIND_NO_TAC))))
             .where(and_(i.c.kind == R.KIND_INTENT, i.c.time_s >= cst_secs(t0), i.c.time_s < cst_secs(t1)))
             .order_by(i.c.board_id, i.c.seq))
        for r in conn.execute(q).mappings():
            batch.add(_row(r, r["o_kind"], r["o_seq"], r["o_balance"], r["o_tac"], r["o_flags"]))
        # Settlements by the CST day of the pull that brought them (pulls are stamped in UTC).
        u0, u1 = t0 - datetime.timedelta(hours=8), t1 - datetime.timedelta(hours=8)
        q = (select(i, s.c.seq.label("s_seq"), s.c.kind_name.label("s_kind"), s.c.end_state.label("s_end"),
                    s.c.balance_after.label("s_balance"), s.c.tac.label("s_tac"), s.c.flags.label("s_flags"))
             .select_from(s.join(i, and_(i.c.board_id == s.c.board_id, i.c.seq == s.c.ref_seq,
                                         i.c.kind == R.KIND_INTENT))
                          .join(pulls, pulls.c.pull_id == s.c.pull_id))
             .where(and_(s.c.kind.between(R.KIND_SETTLED, R.KIND_SETTLED_NOT_DEBITED),
                         pulls.c.started_utc >= u0, pulls.c.started_utc < u1))
             .order_by(s.c.board_id, s.c.seq))
        for r in conn.execute(q).mappings():
            row = _row(r, "completed", None, r["s_balance"], r["s_tac"], r["s_flags"])
            row.update({"seq": int(r["s_seq"]), "kind": r["s_kind"], "end": r["s_end"],
                        "settles_board": r["board_id"], "settles_seq": int(r["seq"])})
            if r["s_end"] != "debited_tac":
                row["tac"] = None
            if r["s_end"] == "not_debited":
                row["balance_after"] = None
            batch.add_settlement(row)
    return batch.write(folder, template=conf.template, formats=conf.formats)


@click.command("export")
@click.option("--day", required=True, help="the CST day to export, YYYY-MM-DD")
@click.option("--out", "folder", required=True, type=click.Path(file_okay=False), help="folder for the batch files")
@click.option("--batch", "batch_id", help="batch ID (default: <depot>-<YYYYMMDD>)")
@click.pass_obj
def export_command(ctx, day, folder, batch_id):
    """Write one day's clearing batch: payments, the doubtful kinds apart, settlements, and a manifest."""
    import json

    depot = open_db(ctx.db)
    keys = None
    if ctx.conf.test_fleet:  # the depot's PSAMs hold the documented test keys: check every TAC with them
        from host_tools.testkeys import TEST_TAC_KEYS

        keys = TEST_TAC_KEYS
    try:
        m = export_day(depot, day, folder, ctx.conf, batch_id, keys=keys)
    finally:
        depot.close()
    if ctx.json:
        click.echo(json.dumps(m, indent=2, ensure_ascii=False))
    else:
        for f in m["files"]:
            if f["format"] == m["files"][0]["format"]:
                click.echo("%-16s %6d records  %10s  %s" % (f["kind"], f["records"], clearing_yuan(f["amount_total"]),
                                                            f["name"]))
        click.echo("TACs: %(ok)d verified, %(bad)d bad, %(no_key)d without a known key, %(no_tac)d without a TAC"
                   % m["tac"])
        click.echo("batch %s written to %s" % (m["batch_id"], folder))
    if m["tac"]["bad"]:
        raise DepotError("%d TAC(s) failed their check (listed in the manifest's bad_tacs): do not send this batch"
                         % m["tac"]["bad"], code=3)


def clearing_yuan(fen):
    return "¥%d.%02d" % divmod(int(fen), 100)
