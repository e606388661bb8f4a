"""Journeys: passengers riding a bus with one or two validators, torn, rebooted and power-cut, judged by the oracle.

    rep = run(seed=7, passengers=6, doors=2, journal="flash", reboot_p=0.05)   # a random journey, replayable
    assert not rep.violations, rep.explain()

    j = Journey(cards(3), doors=2)                      # or scripted, step by step:
    j.tap(0, 0, tear=(6, AFTER)); j.give_up(0)          # passenger 0 torn at the DEBIT answer at the front door
    j.tap(1, 0); j.reboot(0); j.tap(0, 0, gap_ms=20000) # a bystander pays, the validator reboots, 0 returns
    rep = j.report()

Each validator is a bench rig of its own (software SAM with its own terminal number, PSAM serial and TTC store,
configuration, rules State, journal: tunion.journal.MemoryJournal, or tunion.flashjournal.FlashJournal over a
simulated NOR flash). Taps go through the real tunion.purchase.tap, looked up at each call so monkeypatched
mutants apply. A reboot is a new State, the SAM powered up afresh over the same TTC store, and the journal
remounted from the same flash (the MemoryJournal object stands for flash that survives). A power cut
(sim.nor.PowerCut at a chosen flash operation) reboots the validator where it stood. Nothing is acknowledged:
every record a journal ever returned is kept and must stay (sim.oracle checks the rest); with ack_every the depot
acknowledges what was kept. A reboot takes 1.5 s on the clock. Scripted journeys of issue 7's findings:
sim.scenarios. Pure Python, runs under MicroPython too.
"""
from tunion import outcome as O
from tunion import purchase
from tunion.flashjournal import FlashJournal
from tunion.journal import MemoryJournal, unshown_payment
from tunion.psam import Psam
from tunion.segment import SegmentHeader
from tunion.rules import State
from tunion.softsam import SoftSam, MemoryTtcStore
from tunion.clock import secs_from_civil
from sim import keys
from sim.card import make_card, make_other_city_card, BEFORE, AFTER
from sim.nor import NorFlash, PowerCut, cuts_for
from sim.oracle import Tap, Ride, check, ACCEPTED
from sim.rig import test_config, sam_keys

POWER_CUT = "POWER_CUT"  # pseudo-status of a tap the validator's power cut short
EXCEPTION = "EXCEPTION"  # pseudo-status of a tap that raised (an uncaught exception: a WDT reboot on the board)

TERMINALS = (keys.TEST_TERMINAL, b"\x99\x99\x00\x00\x00\x02", b"\x99\x99\x00\x00\x00\x03")
PSAM_SERIALS = (keys.TEST_PSAM_SERIAL, b"\x99\x99\x00\x00\x00\x00\x00\x00\x00\x02", b"\x99\x99\x00\x00\x00\x00\x00\x00\x00\x03")
KINDS = ("ordinary", "concession", "visiting", "low", "simple")
_START = secs_from_civil(2026, 12, 1, 8, 0, 0)
_TAP_MS = 150  # how long a tap takes on the clock
_BOOT_MS = 1500  # a reboot: MicroPython boots, mounts the journal and opens the PSAM before the next tap


def _quiet(*a):
    pass


class RunawayFlash(Exception):
    """The journal did more flash operations than any journey needs (a loop that erases forever, say)."""


class _Nor(NorFlash):
    """NorFlash with a bound on the operations of a journey, so a journal that never stops erasing fails the run
    with a message instead of hanging it."""

    limit = 20000

    def _op(self, op):
        if self.ops >= self.limit:
            raise RunawayFlash("more than %d flash operations in one journey (last: %s)" % (self.limit, op[0]))
        NorFlash._op(self, op)


class Rng:
    """xorshift32: the same numbers on CPython and MicroPython, so a seed replays a journey anywhere."""

    def __init__(self, seed):
        self.x = (seed * 2654435761 + 0x9E3779B9) & 0xFFFFFFFF or 1
        for _ in range(3):
            self.next()

    def next(self):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x & 0xFFFFFFFF
        return self.x

    def below(self, n):
        return self.next() % n if n > 0 else 0

    def between(self, lo, hi):
        return lo + self.below(hi - lo + 1)

    def chance(self, p):
        return self.below(1000000) < int(p * 1000000)

    def pick(self, seq):
        return seq[self.below(len(seq))]


def card_for(kind, n, balance=None):
    """A passenger's card: ordinary, concession (local card type 2: half fare, one ride per line in the concession
    window), visiting (another city's card), low (balance for at most two rides) or simple (no EF1E: type 06)."""
    no = keys.TEST_CARD_NO + 100 + n
    if kind == "concession":
        return make_card(card_no=no, card_type=2, balance=3000 if balance is None else balance)
    if kind == "visiting":
        return make_other_city_card(card_no=no + 5000, balance=5000 if balance is None else balance)
    if kind == "low":
        return make_card(card_no=no, balance=250 if balance is None else balance)
    if kind == "simple":
        return make_card(card_no=no, has_ef1e=False, balance=5000 if balance is None else balance)
    return make_card(card_no=no, balance=5000 if balance is None else balance)


def cards(n, kinds=("ordinary",)):
    return [card_for(kinds[i % len(kinds)], i) for i in range(n)]


class Validator:
    """One validator (a door): its own software SAM identity, TTC store, configuration, State and journal."""

    def __init__(self, vi, journal="memory", config=None, sectors=16, sector_size=4096, forget_at_reboot=False):
        self.vi = vi
        self.name = "door%d" % vi
        self.keys = sam_keys()
        self.keys["terminal"] = TERMINALS[vi]  # each door its own identity (a PSAM of its own)
        self.keys["serial"] = PSAM_SERIALS[vi]
        self.ttc_store = MemoryTtcStore()
        self.config = config if config is not None else test_config()
        self.kind = journal
        self.forget_at_reboot = forget_at_reboot
        self.records = {}  # seq -> Record: everything the journal ever returned
        self._raw = {}  # seq -> bytes, to see a record change
        self.lost = []
        self.top = 0
        self.acked = 0  # the depot's acknowledgement: records up to here may leave the journal
        self.reboots = 0
        self.mark_lost = False  # the last idle()'s power cut lost the shown mark of the tap before it
        self._sam()
        self.terminal = self.psam.terminal
        if journal == "flash":
            self.nor = _Nor(sectors, sector_size, log=True)
            self.header = SegmentHeader(("BOARD%03d" % vi).encode(), self.psam.serial, self.terminal, "101", "B-1234", 1)
            self.journal = None
            self._mount()
            self.first_op = self.nor.ops  # flash operations of the set-up; a sweep cuts from here on
        elif journal == "memory":
            self.nor = None
            self.journal = MemoryJournal(terminal=self.terminal)
        else:
            raise ValueError("journal is 'memory' or 'flash', not %r" % (journal,))
        self.state = State()

    def _sam(self):
        # Power-up: a new SoftSam over the surviving TTC store (it reserves ahead: no TTC repeats).
        self.softsam = SoftSam(self.keys, self.ttc_store, out=_quiet)
        self.psam = Psam(self.softsam).open()

    def _mount(self):
        while True:
            try:
                self.journal = FlashJournal(self.nor, self.header)
                self.journal.prepare()
                return
            except PowerCut:
                pass  # the cut fires once; mount again from what the flash holds

    def reboot(self):
        self.reboots += 1
        self.state = State()
        self._sam()
        if self.nor is not None:
            self._mount()
        self.state.hold_unshown(unshown_payment(self.journal))  # as app.validator at boot
        if self.forget_at_reboot:  # the mutant: the durable list forgotten
            for e in self.journal.unresolved():
                self.journal.drop_unresolved(e.seq, "mutant")
        self.sync(True)

    def idle(self, shown=0):
        """Between taps: the app's housekeeping: the shown payment's mark (app.validator: after the screen is
        drawn), flash erases, the software SAM's TTC reserve."""
        self.mark_lost = False
        try:
            if shown:
                self.journal.mark_shown(shown)
            if self.nor is not None:
                self.journal.idle()
            self.softsam.top_up()
        except PowerCut:
            self.reboot()
            # The cut fell before the shown mark was in flash: the validator cannot know the passenger saw PAID
            # (sim.oracle lets one later PAID_RECOVERED show that debit again).
            self.mark_lost = bool(shown) and self.journal.shown() < shown
            return True
        return False

    def acknowledge(self):
        """The depot pulls everything (kept here first) and acknowledges it; the flash may then free it."""
        self.sync()
        self.acked = self.top
        try:
            self.journal.acknowledge(self.top)
        except PowerCut:
            self.reboot()
            return True
        return False

    def sync(self, full=False):
        """Read the journal: new records are kept; a record returned before must come back unchanged."""
        got = self.journal.read_from(0 if full else self.top + 1, 1000000)
        seen = {}
        for r in got:
            raw = bytes(r.encode())
            seen[r.seq] = True
            old = self._raw.get(r.seq)
            if old is not None and old != raw:
                self.lost.append("record %d changed: %r, was %r" % (r.seq, r, self.records[r.seq]))
                continue
            self._raw[r.seq] = raw
            self.records[r.seq] = r
            if r.seq > self.top:
                self.top = r.seq
        if full:
            for seq in self.records:
                if seq not in seen and seq > self.acked:
                    self.lost.append("record %d (%r) no longer returned after a remount" % (seq, self.records[seq]))


class _Passenger:
    def __init__(self, ci, card, kind):
        self.ci = ci
        self.card = card
        self.kind = kind
        self.ride = None  # current Ride (not accepted, not given up)
        self.last = None  # the last ride (for a lingering card)
        self.rides_left = 0
        self.attempts = 0


class Journey:
    def __init__(self, card_list, doors=1, journal="memory", config=None, sectors=16, forget_at_reboot=False,
                 kinds=None, sector_size=4096):
        if doors < 1 or doors > len(TERMINALS):
            raise ValueError("1..%d doors" % len(TERMINALS))
        self.validators = [Validator(i, journal, config, sectors, sector_size, forget_at_reboot) for i in range(doors)]
        self.config = self.validators[0].config
        self.passengers = [_Passenger(i, card_list[i], (kinds[i] if kinds else "")) for i in range(len(card_list))]
        self.taps = []
        self.rides = []
        self.ms = 0
        self.tears = 0
        self.second_tears = 0
        self.bystanders = 0
        self.cuts = 0
        self.exceptions = []

    @property
    def cards(self):
        return [p.card for p in self.passengers]

    def now(self):
        return (_START + self.ms // 1000, self.ms)

    def advance(self, ms):
        self.ms += ms

    def reboot(self, vi):
        self.validators[vi].reboot()
        self.advance(_BOOT_MS)

    def give_up(self, p):
        ps = self.passengers[p]
        if ps.ride is not None:
            ps.ride.gave_up = True
            ps.last = ps.ride
            ps.ride = None
        ps.attempts = 0

    def tap(self, p, vi=0, tear=None, gap_ms=2000, linger=False, note="", wrap=None):
        """Passenger p's card at door vi after gap_ms, torn at (APDU index from now, BEFORE/AFTER) if given.
        A linger tap belongs to p's last accepted ride (the card seen again right after). `wrap(card)` gives the
        port the validator talks to (e.g. one that garbles an answer). Returns the status."""
        ps = self.passengers[p]
        v = self.validators[vi]
        self.advance(gap_ms)
        if linger and ps.last is not None and ps.last.accepted is not None:
            ride = ps.last
        else:
            linger = False
            if ps.ride is not None and ps.ride.vi != vi:
                self.give_up(p)  # walked to the other door: that is another ride
            if ps.ride is None:
                ps.ride = Ride(len(self.rides), p, vi)
                self.rides.append(ps.ride)
                ps.attempts = 0
            ride = ps.ride
        prev_torn = bool(ride.taps) and self.taps[ride.taps[-1]].torn
        card = ps.card
        card.present()
        if tear is not None:
            card.tear_at(tear[0], tear[1])
        h0 = len(card.history)
        tears0 = card.tears
        now = self.now()
        seq = None
        try:
            port = wrap(card) if wrap is not None else card
            r = purchase.tap(port, v.psam, v.journal, v.config, v.state, now)
            status, seq = r.status, r.seq
        except PowerCut:
            status = POWER_CUT
            self.cuts += 1
            v.reboot()
            self.advance(_BOOT_MS)
        except RunawayFlash:
            raise
        except Exception as e:  # an uncaught exception: on the board the WDT reboots the validator
            status = EXCEPTION
            self.exceptions.append("%s tap of card%d: %s: %s" % (v.name, p, e.__class__.__name__, e))
            v.reboot()
            self.advance(_BOOT_MS)
        card.cancel_tear()
        torn = card.tears > tears0
        card.remove()
        self.advance(_TAP_MS)
        if status != POWER_CUT and status != EXCEPTION:
            if v.idle(seq if status in (O.PAID, O.PAID_RECOVERED) and seq else 0):
                self.cuts += 1
                self.advance(_BOOT_MS)
            v.sync()
        if torn:
            self.tears += 1
            if prev_torn:
                self.second_tears += 1
        t = Tap(len(self.taps), vi, p, status, seq, now[0], now[1], h0, len(card.history), torn, ride.idx,
                linger, note)
        t.mark_lost = status != POWER_CUT and status != EXCEPTION and v.mark_lost
        self.taps.append(t)
        ride.taps.append(t.idx)
        if linger:
            return status
        if status in ACCEPTED:
            ride.accepted = t.idx
            ps.last = ride
            ps.ride = None
            ps.attempts = 0
        elif status in O.REFUSALS:
            self.give_up(p)
        else:
            ps.attempts += 1
        return status

    def report(self):
        for ps in self.passengers:
            if ps.ride is not None:
                ps.ride.gave_up = True
        window = getattr(self.config, "recovery_window_s", 600)
        rep = check(self.cards, self.validators, self.taps, self.rides, window, self.config.repeat_ms)
        rep.tears = self.tears
        rep.second_tears = self.second_tears
        rep.bystanders = self.bystanders
        rep.reboots = sum([v.reboots for v in self.validators])
        rep.cuts = self.cuts
        rep.exceptions = len(self.exceptions)
        for e in self.exceptions:
            rep.add("uncaught exception: " + e)
        return rep


def _gap(rng):
    """Seconds to minutes between taps, past intent_timeout_s (120) and recovery_window_s (600) now and then."""
    b = rng.below(100)
    if b < 55:
        return rng.between(1000, 4000)
    if b < 77:
        return rng.between(5000, 60000)
    if b < 92:
        return rng.between(60000, 300000)
    return rng.between(300000, 900000)


def random_journey(seed, passengers=6, rides=3, doors=1, journal="memory", tear_p=0.35, second_tear_p=0.35,
                   bystander_p=0.5, reboot_p=0.0, give_up_p=0.15, linger_p=0.3, max_attempts=5, forget_at_reboot=False,
                   cut=None, sectors=16, config=None, sector_size=4096, ack_every=0):
    """Build and play a random journey (replayable from the seed); returns the Journey (then .report()).
    cut = (door, flash operation index, partial) cuts that door's power at that NOR operation (sim.nor);
    ack_every = n: the depot acknowledges everything every n taps (so the flash ring frees, erases and wraps)."""
    rng = Rng(seed)
    kinds = [rng.pick(KINDS) for _ in range(passengers)]
    cl = [card_for(kinds[i], i) for i in range(passengers)]
    j = Journey(cl, doors, journal, config, sectors, forget_at_reboot, kinds, sector_size)
    if cut is not None:
        j.validators[cut[0]].nor.cut_at = (cut[1], cut[2])
    for ps in j.passengers:
        ps.rides_left = rng.between(1, rides)
    active = [ps.ci for ps in j.passengers]
    acks = 0
    while active:
        p = rng.pick(active)
        ps = j.passengers[p]
        vi = ps.ride.vi if ps.ride is not None else rng.below(doors)
        if reboot_p and rng.chance(reboot_p):
            j.reboot(vi)
        tear = None
        prev_torn = ps.ride is not None and ps.ride.taps and j.taps[ps.ride.taps[-1]].torn
        if rng.chance(second_tear_p if prev_torn else tear_p):
            tear = (rng.below(12), BEFORE if rng.below(2) else AFTER)
        st = j.tap(p, vi, tear, _gap(rng))
        if st in ACCEPTED:
            if rng.chance(linger_p):
                j.tap(p, vi, None, rng.between(100, 800), linger=True)
            ps.rides_left -= 1
        elif ps.ride is None:  # refused: the ride is over
            ps.rides_left -= 1
        elif ps.attempts >= max_attempts or rng.chance(give_up_p):
            j.give_up(p)
            ps.rides_left -= 1
        if j.taps[-1].torn and bystander_p and rng.chance(bystander_p):
            others = [q for q in active if q != p and j.passengers[q].ride is None]
            if others:
                q = rng.pick(others)
                j.bystanders += 1
                st = j.tap(q, vi, None, rng.between(300, 3000), note="bystander")
                qs = j.passengers[q]
                if st in ACCEPTED or qs.ride is None:
                    qs.rides_left -= 1
        if ack_every and len(j.taps) // ack_every != acks:
            acks = len(j.taps) // ack_every
            for v in j.validators:
                if v.acknowledge():
                    j.cuts += 1
                    j.advance(_BOOT_MS)
        active = [q for q in active if j.passengers[q].rides_left > 0]
    return j


def run(seed, **kw):
    """The oracle's Report of random_journey(seed, **kw)."""
    return random_journey(seed, **kw).report()


def cut_points(seed, door=0, inside=True, **kw):
    """The power cuts a sweep tries on door's NOR flash for random_journey(seed, journal="flash", **kw): every
    operation after the set-up not started (partial None) and, with `inside`, cut inside as sim.nor.cuts_for says.
    Returns [(operation index, partial)]; pass each as cut=(door, index, partial)."""
    kw["journal"] = "flash"
    v = random_journey(seed, **kw).validators[door]
    out = []
    for k in range(v.first_op, v.nor.ops):
        out.append((k, None))
        if inside:
            for partial in cuts_for(v.nor.log[k]):
                out.append((k, partial))
    return out
