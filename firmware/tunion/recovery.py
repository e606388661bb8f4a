"""What a returning card proves about a torn purchase: GET TRANSACTION PROVE, then its log (EF18).

    prove = ask_prove(purse, intent)                 # (PROVE_DATA, mac2, tac) / (PROVE_NOTHING,) / (PROVE_UNKNOWN,)
    log = ask_log(purse, intent, terminal)           # LOG_OURS / LOG_NOT_OURS / LOG_UNKNOWN
    end = judge(prove, verified, log)                # DEBITED_TAC / DEBITED_NO_TAC / NOT_DEBITED / UNKNOWN

validator.md section 3 and the table in docs/design.md "Recovery". Only the card's own answers count here; the
caller (tunion.purchase) asks the PSAM to verify a PROVE answer's MAC2 in the intent's own session, and uses
INITIALIZE's counter as the last word when the log cannot tell. A tear (CardLost) is not caught here: a card gone
mid-evidence proves nothing, and the caller keeps the intent unresolved.

    if shown_now(state, card_no, ef15, init, secs, window_s): ...   # a payment a power cut kept off the screen
"""
from tunion.compat import const
from tunion.apdu import SW_CONDITIONS, SW_MAC_NOT_AVAILABLE, SW_RECORD_NOT_FOUND
from tunion.cardfiles import Ef18Entry
from tunion.errors import CardError
from tunion.record import (
    TTYPE_SIMPLE,
    TTYPE_COMPOUND,
    KIND_COMPLETED,
    KIND_NO_TAC,
    KIND_CANCELLED,
    KIND_SETTLED,
    KIND_SETTLED_NO_TAC,
    KIND_SETTLED_NOT_DEBITED,
)

_EF18_RECORDS = const(10)  # EF18 is a cyclic file of 10 records (protocol section 2)

PROVE_DATA = const(1)  # 9000 with MAC2 and TAC: a debit with this counter happened (somewhere)
PROVE_NOTHING = const(2)  # the card has no such transaction to prove (9406, 6985)
PROVE_UNKNOWN = const(3)  # malformed, or a status word that says nothing either way

LOG_OURS = const(1)  # EF18's entry for counter + 1 has the intent's terminal, amount and type
LOG_NOT_OURS = const(2)  # that entry belongs to another terminal/amount/type, or the newest purchase predates it
LOG_UNKNOWN = const(3)  # unreadable, malformed, cut short or disagreeing

DEBITED_TAC = const(1)
DEBITED_NO_TAC = const(2)
NOT_DEBITED = const(3)
UNKNOWN = const(4)

# Status words of GET TRANSACTION PROVE that mean "no such transaction on this card" (protocol section 3: SW only
# -> the debit did not happen; 9406 required MAC not available; 6985 conditions not satisfied).
_PROVE_NOTHING_SWS = (SW_MAC_NOT_AVAILABLE, SW_CONDITIONS)


class Torn:
    """A torn intent being recovered in this tap: the intent, the terminal it was written under, whether it is
    the journal's open intent (else an unresolved-list entry), and whether the tap is inside its recovery
    window."""

    def __init__(self, intent, terminal, is_open, inside):
        self.intent = intent
        self.terminal = terminal
        self.is_open = is_open
        self.inside = inside


def record_kind(end, is_open):
    """The record that writes this end: an outcome for the open intent, a settlement for a closed one."""
    if end == DEBITED_TAC:
        return KIND_COMPLETED if is_open else KIND_SETTLED
    if end == DEBITED_NO_TAC:
        return KIND_NO_TAC if is_open else KIND_SETTLED_NO_TAC
    return KIND_CANCELLED if is_open else KIND_SETTLED_NOT_DEBITED


def wanted_counter(intent):
    """The counter a debit of this intent carries in PROVE and EF18: INITIALIZE's value + 1 (protocol s.7.2)."""
    return (intent.counter + 1) & 0xFFFF


def ask_prove(purse, intent):
    """GET TRANSACTION PROVE for the intent's type and counter + 1."""
    try:
        s, mac2, tac = purse.get_prove(intent.ttype, wanted_counter(intent))
    except CardError:
        return (PROVE_UNKNOWN,)  # 9000 with a body that is not MAC2 || TAC (issue 7 finding 1)
    if mac2 is not None:
        return PROVE_DATA, mac2, tac
    if s in _PROVE_NOTHING_SWS:
        return (PROVE_NOTHING,)
    return (PROVE_UNKNOWN,)


def ask_log(purse, intent, terminal):
    """Walk EF18 newest first for the purchase entry with counter + 1 (loads carry the online counter: skipped).
    `terminal` is the one in force when the intent was written (its segment header), not today's PSAM."""
    want = wanted_counter(intent)
    newer = False  # a purchase entry with a counter above `want` was seen
    for n in range(1, _EF18_RECORDS + 1):
        try:
            s, raw = purse.read_ef18(n)
        except CardError:
            return LOG_UNKNOWN
        if raw is None:
            # 6A83 at the end of the log: every purchase it holds predates ours, unless a newer one was seen
            # (then counter + 1 should have been among them: the log disagrees with itself).
            if s == SW_RECORD_NOT_FOUND and not newer:
                return LOG_NOT_OURS
            return LOG_UNKNOWN
        e = Ef18Entry.decode(raw)
        if e.ttype != TTYPE_SIMPLE and e.ttype != TTYPE_COMPOUND:
            continue
        if e.counter == want:
            if e.terminal == terminal and e.amount == intent.amount and e.ttype == intent.ttype:
                return LOG_OURS
            return LOG_NOT_OURS  # counter + 1 was spent at another terminal (or for another amount)
        if e.counter < want:
            return LOG_UNKNOWN if newer else LOG_NOT_OURS
        newer = True
    return LOG_UNKNOWN  # ten newer purchases: ours (if any) has left the log


def judge(prove, verified, log):
    """The settlement the evidence supports (docs/design.md "Recovery", decided in this order):
    PROVE answered and its MAC2 verified in the intent's own session -> debited with that TAC; the log says not
    ours -> not debited; the log says ours -> debited, with PROVE's TAC if it answered (flagged by the caller),
    else without TAC; anything else -> unknown (the INITIALIZE counter may still prove "not debited")."""
    if prove[0] == PROVE_DATA and verified is True:
        return DEBITED_TAC
    if log == LOG_NOT_OURS:
        return NOT_DEBITED
    if log == LOG_OURS:
        if prove[0] == PROVE_DATA:
            return DEBITED_TAC
        if prove[0] == PROVE_NOTHING:
            return DEBITED_NO_TAC
    return UNKNOWN


def shown_now(state, card_no, ef15, init, secs, window_s):
    """True for the card of the payment a power cut kept off the screen (State.unshown), inside the recovery
    window, when the card proves that payment is still its newest: INITIALIZE's counter one past the intent's and
    its balance the one the payment left. Then the ride is paid: shown, not charged (validator.md section 3, "when
    in doubt, never charge twice"). Any other answer from that card (it moved on) ends the doubt."""
    u, end = state.unshown
    if u.card_no != card_no or u.issuer != ef15.issuer:
        return False
    if init is not None and init.counter == u.counter + 1 and init.balance == end.balance:
        return 0 <= secs - u.time <= window_s
    state.unshown = None
    return False
