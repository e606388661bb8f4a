"""`tunion-depot status`: what a board says about itself, with its clock against the laptop's (both CST).

    tunion-depot --port /dev/ttyUSB0 status          # rich tables
    tunion-depot --port u0 --json status             # the board's status() plus laptop_cst and drift_s

Board times are CST wall-clock seconds since 1970 (tunion/clock.py), not Unix time: the laptop's CST is Unix time
plus 8 hours (China has no daylight saving). Drift is board minus laptop: positive means the board is ahead.
"""
import json
import time
from datetime import datetime, timezone

import click

from host_tools.link import Board

CST_OFFSET_S = 8 * 3600  # UTC+8 all year


def laptop_cst():
    """The laptop's clock as the board counts time: CST seconds since 1970-01-01 00:00 CST."""
    return int(time.time()) + CST_OFFSET_S


def fmt_cst(secs):
    if secs is None:
        return "not set"
    return datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%d %H:%M:%S CST")


def fmt_drift(d):
    if d is None:
        return "unknown (the board's clock is not set)"
    if d == 0:
        return "0 s"
    return "%+d s (board %s)" % (d, "ahead" if d > 0 else "behind")


def read_status(b):
    """The board's status with the laptop's clock and the drift beside it."""
    st = b.service("status")
    now = laptop_cst()
    st["laptop_cst"] = now
    st["drift_s"] = st["clock"] - now if st.get("clock") is not None else None
    return st


def _kib(n):
    return "?" if n is None else "%.0f KiB" % (n / 1024.0)


def show(st):
    """Rich tables: the board, its counters, then the lists (unresolved intents, faults, errors)."""
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title="board %s (%s)" % (st.get("board_id"), st.get("board")), show_header=False)
    t.add_column(style="bold")
    t.add_column()
    oos = st.get("out_of_service")
    rows = [
        ("state", "OUT OF SERVICE: %s" % oos if oos else "in service"),
        ("firmware", st.get("firmware")),
        ("configuration", "none installed" if st.get("config_version") is None else "version %s" %
         st["config_version"]),
        ("denylist", "none" if st.get("denylist_version") is None else "version %s (%s entries)" % (
            st["denylist_version"], st.get("denylist_entries"))),
        ("SAM", "software SAM, TEST KEYS" if st.get("test_keys") else "PSAM"),
        ("board clock", fmt_cst(st.get("clock"))),
        ("laptop clock", fmt_cst(st.get("laptop_cst"))),
        ("drift", fmt_drift(st.get("drift_s"))),
        ("records waiting", "%s (next sequence %s)" % (st.get("records_waiting"), st.get("next_seq"))),
        ("journal", "%s of %s used" % (_kib(st.get("flash_used")), _kib(st.get("flash_total")))),
        ("free flash", "%s of %s" % (_kib(st.get("fs_free")), _kib(st.get("fs_total")))),
        ("taps", ", ".join("%s %s" % kv for kv in sorted((st.get("taps") or {}).items())) or "none"),
        ("refusals", ", ".join("%s %s" % kv for kv in sorted((st.get("refusals") or {}).items())) or "none"),
        ("open intent", "none" if st.get("open_intent") is None else "sequence %s" % st["open_intent"]),
        ("last reset", st.get("reset_cause")),
        ("errors logged", st.get("errors_total")),
    ]
    for k, v in rows:
        t.add_row(k, str(v))
    con.print(t)
    if st.get("unresolved"):
        u = Table(title="unresolved intents (never charge these cards again without a proof)")
        for c in ("seq", "card", "amount", "time", "terminal", "rejected"):
            u.add_column(c)
        for i in st["unresolved"]:
            u.add_row(str(i["seq"]), i["card"], "%.2f" % (i["amount"] / 100.0), fmt_cst(i["time"]), i["terminal"],
                      str(i["rejected"]))
        con.print(u)
    for title, key in (("faults", "faults"), ("error log", "errors")):
        if st.get(key):
            f = Table(title=title, show_header=False)
            f.add_column()
            for x in st[key]:
                f.add_row(" ".join(str(y) for y in x))
            con.print(f)


@click.command("status")
@click.pass_obj
def status(obj):
    """Firmware and configuration versions, clock and drift, records waiting, free flash, counters, faults."""
    with Board(obj.need_port(), baud=obj.baud) as b:
        st = read_status(b)
    if obj.json:
        click.echo(json.dumps(st, sort_keys=True))
    else:
        show(st)
