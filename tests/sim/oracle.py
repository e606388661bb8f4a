"""The ride oracle: did anyone pay twice, or ride on a debit nobody recorded? Counted from the cards' own state.

    rep = check(cards, validators, taps, rides, window_s=600)   # what sim.journey collected
    assert not rep.violations, rep.explain()

It never balances totals (money taken = completed + unresolved balances even when a torn passenger paid twice).
It pairs each card's own `history` (every debit the SimCard made: counter after, amount, type, terminal, TTC,
date-time, TAC, MAC2) with every record each validator's journal ever returned, and each tap's Result
(issue 7, "Shown by tests"; validator.md sections 3 and 4):

  (a) every acceptance (PAID, PAID_RECOVERED) is backed by exactly one debit the card made at that validator's
      terminal: a PAID by the debit of its own tap, a PAID_RECOVERED by the torn debit (an earlier tap's, or its
      own tap's when the DEBIT answer was garbled) that backs nothing else, inside the recovery window; no debit
      backs two acceptances;
  (a') except that a PAID_RECOVERED may show again the card's latest debit, made at that validator inside the
      window, when it backs an acceptance whose shown mark (journal.mark_shown) a power cut kept out of flash: the
      validator cannot know that result reached the passenger, and does not charge twice; counted as `reshown`
      (a free ride each), not as a violation;
  (b) every debit the card made at a validator is claimed by exactly one of its intents (same card, terminal and
      TTC), whose end is debited with the card's own TAC, debited without TAC, or still unknown;
  (c) no record claims a debit the card did not make: a debited end has one, with counter + 1, the intent's
      amount and type; a cancelled or not-debited end has none;
  (d) no record carries a TAC other than the card's own for that debit (another terminal's, above all).

Counted besides: double charges (a debit in a ride accepted less than repeat_ms before, or inside the recovery window of the ride's
earlier debit, or of an earlier debit at the same validator that no acceptance took), lost TACs (a
debit recorded without TAC or still unknown although a later untorn tap of the card at that validator, with that
debit still the card's latest, inside the window, could have had it from GET TRANSACTION PROVE), lost records
(what a validator returned once and no longer does, outcomes citing a missing intent, an intent left open under
a later one) and unexplained debits. Pure Python; runs under MicroPython too.
"""
from tunion import outcome as O
from tunion.clock import secs_from_bcd
from tunion.compat import u32
from tunion.record import (
    KIND_INTENT,
    SETTLEMENTS,
    END_DEBITED_TAC,
    END_DEBITED_NO_TAC,
    END_NOT_DEBITED,
    END_UNKNOWN,
    end_of,
    KIND_NAMES,
)

ACCEPTED = (O.PAID, O.PAID_RECOVERED)
_ZERO_TAC = b"\x00\x00\x00\x00"
_POWER_CUT = "POWER_CUT"  # sim.journey's pseudo-status of a tap the validator's power cut short
_SLACK_S = 2  # the rig rounds ticks up to whole seconds: a window edge may land a second late


class Tap:
    """One tap as the journey saw it: validator index `vi`, card index `ci`, the Result's status and seq, the
    clock (secs, ticks), the card's history length before/after (`h0`, `h1`: debits made in this tap are
    history[h0:h1]), whether the card was torn, the ride it belongs to, `linger` (the card seen again right after
    its acceptance) and `note` (what the journey did: tear, reboot, cut)."""

    def __init__(self, idx, vi, ci, status, seq, secs, ticks, h0, h1, torn, ride, linger=False, note=""):
        self.idx = idx
        self.vi = vi
        self.ci = ci
        self.status = status
        self.seq = seq
        self.secs = secs
        self.ticks = ticks
        self.mark_lost = False  # a power cut in the idle after it kept its shown mark out of flash (sim.journey)
        self.h0 = h0
        self.h1 = h1
        self.torn = torn
        self.ride = ride
        self.linger = linger
        self.note = note

    def __repr__(self):
        return "tap#%d(v%d card%d %s seq=%s t=%d%s%s)" % (
            self.idx, self.vi, self.ci, self.status, self.seq, self.secs, " torn" if self.torn else "",
            (" " + self.note) if self.note else "")


class Ride:
    """A passenger's ride: the taps of one card at one validator until it is accepted or given up."""

    def __init__(self, idx, ci, vi):
        self.idx = idx
        self.ci = ci
        self.vi = vi
        self.taps = []  # Tap indices, lingering taps included
        self.accepted = None  # the accepting Tap's index
        self.gave_up = False


class Debit:
    def __init__(self, ci, k, h):
        self.ci = ci
        self.k = k  # index in the card's history
        self.counter = h[0]  # after the debit
        self.amount = h[1]
        self.ttype = h[2]
        self.terminal = h[3]
        self.ttc = u32(h[4], 0)
        self.dt = h[5]
        self.tac = h[6]
        try:
            self.secs = secs_from_bcd(h[5])
        except ValueError:
            self.secs = 0
        self.vi = None  # the validator whose terminal it carries
        self.tap = None  # the Tap index it happened in
        self.backs = None  # the accepting Tap index
        self.reshown = None  # the PAID_RECOVERED Tap index that showed it again (a')
        self.claims = []  # (vi, intent seq, end)
        self.double = False

    def name(self, cards):
        return "card%d debit #%d (counter %d, %d fen, TTC %d, terminal %s)" % (
            self.ci, self.k, self.counter, self.amount, self.ttc, self.terminal.hex())


def _reshown(t, taps, per_card, window_s):
    """(a') The debit a PAID_RECOVERED may show again: the card's latest debit before this tap (none since), made
    at this validator inside the window, backing an acceptance whose shown mark a power cut kept out of flash
    (Tap.mark_lost: the validator cannot know the passenger saw it; validator.md section 3, never charge twice),
    and not shown again before. Else None."""
    if t.h0 < 1:
        return None
    d = per_card[t.ci][t.h0 - 1]
    if d.vi != t.vi or d.backs is None or d.reshown is not None or not 0 <= t.secs - d.secs <= window_s + _SLACK_S:
        return None
    a = taps[d.backs]
    return d if a.status in ACCEPTED and a.mark_lost else None


class Report:
    def __init__(self):
        self.rides = 0
        self.taps = 0
        self.acceptances = 0
        self.gave_up = 0
        self.debits = 0
        self.double_charges = 0
        self.lost_tacs = 0
        self.lost_records = 0
        self.unexplained_debits = 0
        self.false_claims = 0  # (c), (d): a record claiming a debit the card did not make, or a TAC not its own
        self.unbacked_acceptances = 0  # (a): PAID or PAID_RECOVERED with no debit of the card at that terminal
        self.reshown = 0  # (a'): a PAID shown again as PAID_RECOVERED after a cut lost its shown mark: a free ride
        self.violations = []
        # filled by the journey
        self.tears = 0
        self.second_tears = 0
        self.bystanders = 0
        self.reboots = 0
        self.cuts = 0
        self.exceptions = 0

    def add(self, msg):
        self.violations.append(msg)
        if msg.endswith("(c)") or msg.endswith("(d)"):
            self.false_claims += 1
        elif msg.endswith("(a)"):
            self.unbacked_acceptances += 1

    def figures(self):
        return {
            "rides": self.rides,
            "taps": self.taps,
            "acceptances": self.acceptances,
            "gave_up": self.gave_up,
            "debits": self.debits,
            "tears": self.tears,
            "second_tears": self.second_tears,
            "bystanders": self.bystanders,
            "reboots": self.reboots,
            "cuts": self.cuts,
            "double_charges": self.double_charges,
            "lost_tacs": self.lost_tacs,
            "lost_records": self.lost_records,
            "unexplained_debits": self.unexplained_debits,
            "false_claims": self.false_claims,
            "unbacked_acceptances": self.unbacked_acceptances,
            "reshown": self.reshown,
            "exceptions": self.exceptions,
            "violations": len(self.violations),
        }

    def explain(self, limit=40):
        lines = ["%d violation(s); %r" % (len(self.violations), self.figures())]
        for v in self.violations[:limit]:
            lines.append("  " + v)
        if len(self.violations) > limit:
            lines.append("  ... %d more" % (len(self.violations) - limit))
        return "\n".join(lines)

    def __repr__(self):
        return "Report(%r)" % (self.figures(),)


def _ends(v, rep):
    """{intent seq: (intent, end, tac, how)} for validator v's records, with the journal-level violations."""
    recs = v.records
    intents = {}
    outs = {}
    setts = {}
    for seq in recs:
        r = recs[seq]
        if r.kind == KIND_INTENT:
            intents[seq] = r
        elif r.kind in SETTLEMENTS:
            setts.setdefault(r.ref, []).append(r)
        else:
            outs.setdefault(r.ref, []).append(r)
    for ref in outs:
        if ref not in intents:
            rep.lost_records += 1
            rep.add("%s: outcome seq %d cites intent %d, which the journal never returned" % (
                v.name, outs[ref][0].seq, ref))
    for ref in setts:
        if ref not in intents:
            rep.lost_records += 1
            rep.add("%s: settlement seq %d cites intent %d, which the journal never returned" % (
                v.name, setts[ref][0].seq, ref))
    last_intent = max(list(intents) + [0])
    res = {}
    for seq in intents:
        o = outs.get(seq, [])
        s = setts.get(seq, [])
        if len(o) > 1:
            rep.add("%s: intent %d has %d outcomes (%s)" % (
                v.name, seq, len(o), ", ".join([KIND_NAMES.get(x.kind, "?") for x in o])))
        if len(s) > 1:
            rep.add("%s: intent %d has %d settlements" % (v.name, seq, len(s)))
        if not o:
            end, tac, how = END_UNKNOWN, _ZERO_TAC, "open"
            if seq != last_intent:
                rep.lost_records += 1
                rep.add("%s: intent %d has no outcome although later intents were written (open intent lost)" % (
                    v.name, seq))
            if s:
                rep.add("%s: intent %d is settled while it has no outcome" % (v.name, seq))
        else:
            end, tac, how = end_of(o[0].kind), o[0].tac, KIND_NAMES.get(o[0].kind, "?")
            if s:
                if end != END_UNKNOWN:
                    rep.add("%s: intent %d ended %s and is settled again (%s)" % (
                        v.name, seq, how, KIND_NAMES.get(s[0].kind, "?")))
                else:
                    end, tac, how = end_of(s[-1].kind), s[-1].tac, how + "+" + KIND_NAMES.get(s[-1].kind, "?")
        res[seq] = (intents[seq], end, tac, how)
    return res


def check(cards, validators, taps, rides, window_s=600, repeat_ms=1000):
    """The Report of one journey (see the module docstring). `cards`: SimCards; `validators`: objects with
    `name`, `terminal` (6 bytes), `records` ({seq: Record}, every record the journal ever returned) and `lost`
    (messages about records that vanished or changed); `taps`: Tap list in order; `rides`: Ride list."""
    rep = Report()
    rep.rides = len(rides)
    rep.taps = len(taps)
    vi_of = {}
    for vi in range(len(validators)):
        vi_of[bytes(validators[vi].terminal)] = vi
    ci_of = {}
    for ci in range(len(cards)):
        ci_of[(cards[ci].card_no, bytes(cards[ci].issuer))] = ci

    # ---- the cards' truth
    debits = []
    by_key = {}  # (ci, terminal, ttc) -> Debit
    by_tac = {}  # tac -> [Debit]
    per_card = []
    for ci in range(len(cards)):
        mine = []
        for k in range(len(cards[ci].history)):
            d = Debit(ci, k, cards[ci].history[k])
            d.vi = vi_of.get(bytes(d.terminal))
            debits.append(d)
            mine.append(d)
            key = (ci, bytes(d.terminal), d.ttc)
            if key in by_key:
                rep.add("%s: a second debit with the same terminal and TTC" % d.name(cards))
            by_key[key] = d
            by_tac.setdefault(bytes(d.tac), []).append(d)
        per_card.append(mine)
    rep.debits = len(debits)
    for t in taps:
        for k in range(t.h0, t.h1):
            per_card[t.ci][k].tap = t.idx
    for d in debits:
        if d.vi is None:
            rep.unexplained_debits += 1
            rep.add("%s: made at a terminal no validator of the journey has" % d.name(cards))

    # ---- (b), (c), (d): every intent against the card's history
    for vi in range(len(validators)):
        v = validators[vi]
        term = bytes(v.terminal)
        for rec in v.lost:
            rep.lost_records += 1
            rep.add("%s: %s" % (v.name, rec))
        ends = _ends(v, rep)
        for seq in ends:
            intent, end, tac, how = ends[seq]
            ci = ci_of.get((intent.card_no, bytes(intent.issuer)))
            if ci is None:
                rep.add("%s: intent %d is for card %d, which no passenger has" % (v.name, seq, intent.card_no))
                continue
            d = by_key.get((ci, term, intent.ttc))
            tac = bytes(tac)
            where = "%s: intent %d (card%d, counter %d, %d fen, TTC %d) ended %s" % (
                v.name, seq, ci, intent.counter, intent.amount, intent.ttc, how)
            if tac != _ZERO_TAC and end != END_DEBITED_TAC:
                rep.add("%s but carries TAC %s" % (where, tac.hex()))
            if tac != _ZERO_TAC:
                for o in by_tac.get(tac, ()):
                    if bytes(o.terminal) != term or o.ci != ci:
                        rep.add("%s with the TAC of %s, made elsewhere (d)" % (where, o.name(cards)))
            if end == END_DEBITED_TAC or end == END_DEBITED_NO_TAC:
                if d is None:
                    rep.add("%s: claims a debit the card never made at this terminal (c)" % where)
                    continue
                if d.counter != (intent.counter + 1) & 0xFFFF or d.amount != intent.amount or d.ttype != intent.ttype:
                    rep.add("%s: the card's debit disagrees (counter after %d, %d fen, type %02X) (c)" % (
                        where, d.counter, d.amount, d.ttype))
                if end == END_DEBITED_TAC and tac != bytes(d.tac):
                    rep.add("%s with TAC %s, not the card's own %s (d)" % (where, tac.hex(), bytes(d.tac).hex()))
            elif end == END_NOT_DEBITED:
                if d is not None:
                    rep.lost_records += 1
                    rep.add("%s, but the card made that debit: %s (b)" % (where, d.name(cards)))
                    d.claims.append((vi, seq, end))
                continue
            if d is not None:
                d.claims.append((vi, seq, end))
    for d in debits:
        if d.vi is None:
            continue
        good = [c for c in d.claims if c[2] != END_NOT_DEBITED]
        if not d.claims:
            rep.unexplained_debits += 1
            rep.add("%s: no intent of %s claims it (b)" % (d.name(cards), validators[d.vi].name))
        elif len(good) > 1:
            rep.add("%s: claimed by %d intents (b)" % (d.name(cards), len(good)))

    # ---- (a) and double charges, in the order things happened
    unbacked = {}  # (ci, vi) -> [Debit] with no acceptance yet
    ride_debits = {}
    for t in taps:
        here = [per_card[t.ci][k] for k in range(t.h0, t.h1)]
        key = (t.ci, t.vi)
        waiting = unbacked.setdefault(key, [])
        r = rides[t.ride] if t.ride is not None else None
        for d in here:
            if d.vi != t.vi:
                rep.add("%r: the card was debited at another terminal during this tap" % t)
            if r is not None:
                prev = ride_debits.get(r.idx)
                ride_debits[r.idx] = d
                # After its acceptance the ride is over for good only within the repeat window: later, one card
                # may pay for another rider (validator.md section 2), and that is the passenger's choice.
                done = r.accepted is not None and r.accepted < t.idx
                after_ok = done and 0 <= t.ticks - taps[r.accepted].ticks < repeat_ms
                if after_ok or (not done and prev is not None and 0 <= d.secs - prev.secs <= window_s):
                    d.double = True
                    rep.add("%r: %s is the ride's second charge (ride %d already %s)" % (
                        t, d.name(cards), r.idx, "accepted" if after_ok else "charged %d s before" % (
                            d.secs - prev.secs)))
            for e in waiting:
                if 0 <= d.secs - e.secs <= window_s and not d.double:
                    d.double = True
                    rep.add("%r: %s charged %d s after %s at this validator, which no acceptance took" % (
                        t, d.name(cards), d.secs - e.secs, e.name(cards)))
        if t.status == O.PAID:
            rep.acceptances += 1
            mine = [d for d in here if d.vi == t.vi]
            if len(mine) != 1:
                rep.add("%r: PAID backed by %d debits of the card at this terminal (a)" % (t, len(mine)))
            else:
                mine[0].backs = t.idx
            for d in here:
                if d.backs is None and d not in waiting:
                    waiting.append(d)
        elif t.status == O.PAID_RECOVERED:
            rep.acceptances += 1
            # Backed by the torn debit: an earlier tap's, or this tap's own when its DEBIT answer was garbled and
            # the evidence was asked for at once (the card still in the field).
            if len(here) > 1:
                rep.add("%r: PAID_RECOVERED, yet the card was debited %d times in this tap" % (t, len(here)))
            for d in here:
                if d not in waiting:
                    waiting.append(d)
            cand = [d for d in waiting if d.k < t.h1]
            # A waiting debit inside the window is a torn one this tap recovered; an older one (settled later as
            # debited, the card charged anew: validator.md section 3) leaves room for (a').
            stale = not cand or t.secs - cand[-1].secs > window_s + _SLACK_S
            again = _reshown(t, taps, per_card, window_s) if stale else None
            if again is not None:
                again.reshown = t.idx
                rep.reshown += 1
            elif not cand:
                rep.add("%r: PAID_RECOVERED without an earlier debit at this terminal that no acceptance took (a)" % t)
            else:
                d = cand[-1]
                d.backs = t.idx
                waiting.remove(d)
                if t.secs - d.secs > window_s + _SLACK_S:
                    rep.add("%r: PAID_RECOVERED on %s, %d s old: past the recovery window" % (
                        t, d.name(cards), t.secs - d.secs))
        else:
            for d in here:
                if d not in waiting:
                    waiting.append(d)
        if t.status in ACCEPTED and t.linger and r is not None and r.accepted is not None and r.accepted < t.idx:
            a = taps[r.accepted]
            if 0 <= t.ticks - a.ticks < repeat_ms:
                rep.add("%r: accepted again %d ms after its acceptance (repeat guard)" % (t, t.ticks - a.ticks))
    for d in debits:
        if d.double:
            rep.double_charges += 1

    # ---- lost TACs
    for d in debits:
        if d.vi is None or d.tap is None:
            continue
        ends = [c[2] for c in d.claims]
        if END_DEBITED_TAC in ends or not ends:
            continue
        for t in taps:
            if t.idx <= d.tap or t.ci != d.ci or t.vi != d.vi or t.torn or t.status == _POWER_CUT:
                continue  # a tap the power cut short could record nothing: the card's next one still can
            if t.h0 != d.k + 1:
                break  # the card debited again: PROVE can no longer give this TAC
            if t.secs - d.secs > window_s:
                break
            rep.lost_tacs += 1
            rep.add("%s ended %s although %r ran untorn while it was the card's latest debit (TAC not recorded)" % (
                d.name(cards), "/".join(ends), t))
            break

    for r in rides:
        if r.gave_up:
            rep.gave_up += 1
    return rep
