"""Decide, on what the card showed, whether and how much to charge (validator.md s.2, protocol s.7.7).

    status, fare = decide(facts, config, state, now)   # status None: pay `fare` fen; else an outcome status
    ...; state.paid(facts.card_no, now[1], now[0])     # the tap, after every accepted tap: the 1 s repeat check

Checks run in the order of validator.md s.2 (the SELECT-level "blocked" check is the tap's, before this):
clock, activation and interoperation, dates, denylist, repeat within 1 s, concession window, then the fare.
The balance check is the card's own (INITIALIZE answers 9401). `decide` reads no clock and writes nothing.
"""
from tunion import outcome
from tunion.clock import date_int, secs_from_bcd
from tunion.compat import const, ticks_diff
from tunion.version import BUILD_DATE

_INDUSTRY_BUS = const(0x02)  # EF1E byte 9 (protocol s.2): 01 metro, 02 bus
# EF1E byte 0 values that are a boarding (protocol s.2): 02/06 single fare, 03 entry. The tap writes 06.
_BOARDING = (0x02, 0x03, 0x06)


class CardFacts:
    """What the card showed, for the rules: card number, EF15, EF17, its newest EF1E record (None if none),
    and whether it has EF1E at all (compound purchase)."""

    def __init__(self, card_no, ef15, ef17, last_ef1e, compound):
        self.card_no = card_no
        self.ef15 = ef15
        self.ef17 = ef17
        self.last_ef1e = last_ef1e
        self.compound = compound


class State:
    """What the decision keeps in RAM between taps: the last card accepted here, its tick and its wall-clock
    second. A reboot clears it, which is safe: the repeat check only suppresses a double beep, the concession
    check reads the card, and torn intents live in the journal's durable list, not here."""

    def __init__(self):
        self.last_card = None
        self.last_tick = 0
        self.last_secs = None
        self.pending = None  # tunion.purchase: a torn intent whose proof waits for this tap's INITIALIZE counter
        # (intent, closing record) of a payment whose result never reached the screen (tunion.journal
        # .unshown_payment, set at boot): that card's next tap shows it paid if the card proves it (purchase.py).
        self.unshown = None

    def hold_unshown(self, payment):
        """payment: tunion.journal.unshown_payment's (intent, closing record), or None."""
        self.unshown = payment

    def paid(self, card_no, ticks, secs=None):
        self.last_card = card_no
        self.last_tick = ticks
        self.last_secs = secs

    def is_repeat(self, card_no, ticks, repeat_ms, secs=None):
        if self.last_card is None or card_no != self.last_card:
            return False
        # ticks wrap (MicroPython: every 2**30 ms, 12.4 days): a tick difference alone would call a card seen
        # exactly one period later a repeat (issue 7 finding 13). The wall clock, when both taps have it, must
        # agree that little time passed.
        if secs is not None and self.last_secs is not None:
            ds = secs - self.last_secs
            if ds < 0 or ds > repeat_ms // 1000 + 1:
                return False
        d = ticks_diff(ticks, self.last_tick)
        return 0 <= d < repeat_ms


def last_boarding(facts):
    """(secs, record) of the card's latest EF1E record when it is a boarding with a real date, else None.
    A garbage date on the card means "no usable record", never a refusal."""
    rec = facts.last_ef1e
    if rec is None or rec.ttype not in _BOARDING:
        return None
    try:
        return secs_from_bcd(rec.dt), rec
    except ValueError:
        return None


def is_concession(facts, config, local=None):
    """A local card whose card type the fare table marks as a concession (validator.md s.2)."""
    rule = config.card_types.get(facts.ef17.card_type)
    if rule is None or not rule.concession:
        return False
    return config.is_local(facts.ef15, facts.ef17) if local is None else local


def paid_here_within(lb, config, secs, window):
    """`lb` (from last_boarding) is a boarding on this bus line, in this city, 0..window seconds before secs."""
    if lb is None:
        return False
    t, rec = lb
    if rec.line != config.line or rec.city != config.city or rec.industry != _INDUSTRY_BUS:
        return False
    return 0 <= secs - t <= window


def is_transfer(lb, config, secs):
    """`lb` (from last_boarding) is a boarding in this city on another line (or another mode, e.g. metro) within
    the transfer window. A boarding on this same line is a return trip, not a transfer."""
    if lb is None or config.transfer_s <= 0:
        return False
    t, rec = lb
    if rec.city != config.city:
        return False
    if rec.industry == _INDUSTRY_BUS and rec.line == config.line:
        return False
    return 0 <= secs - t <= config.transfer_s


def fare_for(facts, config, secs, lb=0, local=None):
    """The fare in fen, 0 <= fare <= the line's base fare. Local cards: the better of their card type's percent
    and the all-cards percent; visiting cards (异地卡): the all-cards percent only; then the transfer discount.
    `lb` and `local` are computed here unless the caller has them (lb=0 means "not given")."""
    if local is None:
        local = config.is_local(facts.ef15, facts.ef17)
    base = config.base_fare
    pct = config.all_cards_percent
    if local:
        rule = config.card_types.get(facts.ef17.card_type)
        if rule is not None and rule.percent < pct:
            pct = rule.percent
    fare = base * pct // 100
    if fare > 0 and config.transfer_discount > 0:
        if lb == 0:
            lb = last_boarding(facts)
        if is_transfer(lb, config, secs):
            fare -= config.transfer_discount
            if fare < 0:
                fare = 0
    return fare


def check_card(facts, config, today, local, lookup=None):
    """The card-only checks (no RAM state) for `today` (YYYYMMDD): an outcome status, or None. `lookup`: the
    denylist's answer for this card, taken ahead (tunion.purchase: while the card reads out EF17); without it the
    list is searched here."""
    ef15 = facts.ef15
    # protocol s.7.7: EF15 byte 9 = 00 is not activated; EF17 bytes 8..9 = 0000 on a visiting card is not
    # enabled for interoperation (a local card needs no interoperation flag).
    if ef15.app_version == 0:
        return outcome.REFUSED_NOT_ENABLED
    if facts.ef17.interop == 0 and not local:
        return outcome.REFUSED_NOT_ENABLED
    if today < ef15.start:
        return outcome.REFUSED_NOT_YET_VALID
    if today > ef15.expiry:  # the expiry day itself is still valid
        return outcome.REFUSED_EXPIRED
    dl = config.denylist
    if dl is not None and (dl.contains(facts.card_no) if lookup is None else lookup.answer()):
        return outcome.REFUSED_DENYLISTED
    return None


def decide(facts, config, state, now, lookup=None):
    """(status, fare): status None means "pay `fare` fen"; otherwise a refusal, IGNORED_REPEAT, OOS_CLOCK or
    OOS_CONFIG, and fare is 0. `lookup` (optional): an object whose answer() says whether the card is on the
    denylist, asked at the denylist's place in the order of checks (tunion.meanwhile.DenylistAhead)."""
    if config is None:
        return outcome.OOS_CONFIG, 0
    secs, ticks = now
    today = date_int(secs)
    if today < BUILD_DATE:
        return outcome.OOS_CLOCK, 0  # validator.md s.5: a clock before the firmware existed is not set
    local = config.is_local(facts.ef15, facts.ef17)
    status = check_card(facts, config, today, local, lookup)
    if status is not None:
        return status, 0
    if state is not None and state.is_repeat(facts.card_no, ticks, config.repeat_ms, secs):
        return outcome.IGNORED_REPEAT, 0
    lb = last_boarding(facts)
    if is_concession(facts, config, local) and paid_here_within(lb, config, secs, config.concession_s):
        return outcome.REFUSED_ALREADY_PAID, 0
    return None, fare_for(facts, config, secs, lb, local)
