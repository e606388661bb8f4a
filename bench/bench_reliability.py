"""Reliability figures of one run: nobody charged twice, no TAC or record lost (issue 7, "Measured").

    python bench/bench_reliability.py           # the quick run (make bench; about 20 s)
    python bench/bench_reliability.py --full    # every seed and cut point (make reliability; exits 1 on a fault)
    python bench/bench_reliability.py --json    # one JSON object
    python bench/bench_reliability.py --show 5  # also the first violations of each sweep

Sweeps, each judged by the ride oracle (tests/sim/oracle.py: rides counted against the cards' own history):
tears at every APDU of a tap then of the recovery tap (plain, with a bystander paying between, back after the
intent timeout, with a reboot); random journeys (one door, two doors sharing cards, reboots on the flash journal,
the depot acknowledging as it goes); and a power cut at every flash operation of small runs (and, --full, inside
each). Per sweep: journeys, rides, taps, tears, second tears, reboots, cut points, and the count of double
charges, lost TACs, lost records, unexplained debits, false claims (a record claiming a debit the card did
not make, or another terminal's TAC), unbacked acceptances and uncaught exceptions (target: all zero), and besides
them `reshown`: PAIDs shown again as PAID_RECOVERED, free rides, after a power cut kept their shown mark out of
flash (sim.oracle (a'): the validator cannot know the passenger saw them). Then the APDUs a
recovery costs, card and PSAM, next to a clean tap's.
"""
import sys
import time

try:
    import tunion  # noqa: F401
except ImportError:  # CPython from a checkout
    import os

    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:0] = [os.path.join(_root, "firmware"), os.path.join(_root, "tests"), _root]

from tunion import purchase
from sim.card import BEFORE, AFTER
from sim.journey import Journey, cards, random_journey, cut_points
from sim.scenarios import torn_twice, torn_then_other_door

FIRST = [(i, w) for i in range(8) for w in (BEFORE, AFTER)]
SECOND = [None] + [(i, w) for i in range(11) for w in (BEFORE, AFTER)]
FIELDS = ("journeys", "rides", "taps", "tears", "second_tears", "bystanders", "reboots", "cuts", "double_charges",
          "lost_tacs", "lost_records", "unexplained_debits", "false_claims", "unbacked_acceptances", "reshown",
          "exceptions", "bad_journeys")
FAULTS = ("double_charges", "lost_tacs", "lost_records", "unexplained_debits", "false_claims", "unbacked_acceptances",
          "exceptions")
SMALL = {"passengers": 12, "rides": 5, "sector_size": 1024, "sectors": 6, "ack_every": 4}


class Sweep:
    def __init__(self, name):
        self.name = name
        self.t = {}
        for f in FIELDS:
            self.t[f] = 0
        self.points = 0  # power-cut points tried
        self.examples = []

    def add(self, rep, what):
        self.t["journeys"] += 1
        fig = rep.figures()
        for f in FIELDS[1:-1]:
            self.t[f] += fig.get(f, 0)
        if rep.violations:
            self.t["bad_journeys"] += 1
            if len(self.examples) < 20:
                self.examples.append("%s: %s" % (what, rep.violations[0]))


def tears(full):
    out = []
    variants = [("tears", {}), ("tears+bystander", {"bystander": True}),
                ("tears, back after 200 s", {"gap_ms": 200000}),
                ("tears+reboot", {"reboot": True, "gap_ms": 20000, "journal": "flash"})]
    if full:
        variants += [("tears+bystander+reboot", {"bystander": True, "reboot": True, "gap_ms": 20000,
                                                  "journal": "flash"}),
                     ("tears, back after 700 s", {"gap_ms": 700000})]
    for name, kw in variants:
        s = Sweep(name)
        seconds = SECOND if full or name == "tears" else SECOND[::2]
        for a in FIRST:
            for b in seconds:
                s.add(torn_twice(a, b, **kw).report(), "%r then %r" % (a, b))
        out.append(s)
    s = Sweep("torn at front, paid at rear")
    for a in FIRST:
        s.add(torn_then_other_door(a).report(), "%r" % (a,))
    out.append(s)
    return out


def journeys(full):
    out = []
    n = 300 if full else 25
    for name, kw in (("random, one door", {}), ("random, two doors", {"doors": 2}),
                     ("random, reboots (flash)", {"journal": "flash", "reboot_p": 0.08}),
                     ("random, 2 doors, reboots, acks", {"doors": 2, "journal": "flash", "reboot_p": 0.05,
                                                         "ack_every": 5, "sector_size": 1024, "sectors": 8})):
        s = Sweep(name)
        for seed in range(1, n + 1):
            s.add(random_journey(seed, **kw).report(), "seed %d" % seed)
        out.append(s)
    return out


def power_cuts(full):
    s = Sweep("power cuts, every flash op" + (" and inside" if full else ""))
    for seed in (range(11, 21) if full else (11,)):
        for k, partial in cut_points(seed, inside=full, **SMALL):
            s.points += 1
            s.add(random_journey(seed, journal="flash", cut=(0, k, partial), **SMALL).report(),
                  "seed %d cut at op %d %r" % (seed, k, partial))
    return [s]


def recovery_apdus():
    """APDUs (card, PSAM) of a clean tap, and of the tap that settles a card torn after DEBIT: its own open intent,
    and one a bystander's payment closed `unresolved`."""
    out = {}
    for name, bystander in (("own open intent", False), ("after a bystander paid", True)):
        j = Journey(cards(2), 1, "memory")
        card = j.cards[0]
        v = j.validators[0]
        c0, s0 = card.apdus, v.softsam.apdus
        j.tap(0, 0)
        out["clean tap"] = (card.apdus - c0, v.softsam.apdus - s0)
        j.tap(0, 0, tear=(6, AFTER), gap_ms=5000)
        if bystander:
            j.tap(1, 0)
        c0, s0 = card.apdus, v.softsam.apdus
        st = j.tap(0, 0, gap_ms=4000)
        out["recovery, " + name] = (card.apdus - c0, v.softsam.apdus - s0, st)
    return out


def main(argv):
    full = "--full" in argv
    show = 0
    if "--show" in argv:
        show = int(argv[argv.index("--show") + 1])
    t0 = time.time()
    sweeps = tears(full) + journeys(full) + power_cuts(full)
    apdus = recovery_apdus()
    secs = time.time() - t0
    total = Sweep("total")
    for s in sweeps:
        for f in FIELDS:
            total.t[f] += s.t[f]
        total.points += s.points
    if "--json" in argv:
        import json

        d = {"full": full, "new_recovery": hasattr(purchase, "recover"), "seconds": round(secs, 1), "sweeps": {},
             "recovery_apdus": dict((k, list(v[:2])) for k, v in apdus.items())}
        for s in sweeps + [total]:
            d["sweeps"][s.name] = dict(s.t, cut_points=s.points)
        print(json.dumps(d, indent=1))
    else:
        print("reliability (%s run, %.1f s; purchase core %s issue 7's recovery)" % (
            "full" if full else "quick", secs, "with" if hasattr(purchase, "recover") else "without"))
        head = ("sweep", "journeys", "rides", "taps", "tears", "2nd tear", "bystand.", "reboots", "cut pts",
                "double", "lost TAC", "lost rec", "unexpl.", "false cl", "unbacked", "reshown", "exc.", "bad")
        print("%-31s" % head[0] + "".join(["%9s" % h for h in head[1:]]))
        for s in sweeps + [total]:
            t = s.t
            row = [t["journeys"], t["rides"], t["taps"], t["tears"], t["second_tears"], t["bystanders"],
                   t["reboots"], s.points, t["double_charges"], t["lost_tacs"], t["lost_records"],
                   t["unexplained_debits"], t["false_claims"], t["unbacked_acceptances"], t["reshown"],
                   t["exceptions"], t["bad_journeys"]]
            print("%-31s" % s.name[:31] + "".join(["%9d" % x for x in row]))
        print("APDUs (card, PSAM):")
        for k in apdus:
            v = apdus[k]
            print("  %-36s card %2d  PSAM %2d%s" % (k, v[0], v[1], ("  -> " + v[2]) if len(v) > 2 else ""))
        if show:
            for s in sweeps:
                for e in s.examples[:show]:
                    print("  [%s] %s" % (s.name, e))
    faults = sum([total.t[f] for f in FAULTS]) + total.t["bad_journeys"]
    if full and faults:
        sys.exit(1)


main(sys.argv[1:])
