"""The tap: one purse purchase with the card and the PSAM, torn-card recovery, and the records it leaves.

    result = tap(card_port, psam, journal, config, state, now)   # now = (CST seconds, ms tick)
    if result.status == PAID: show(result.fare, result.balance)

validator.md sections 1-3. The order is: recover an open intent of this card (GET TRANSACTION PROVE, then the
EF18 evidence), read the card, decide, INITIALIZE, PSAM 8070, append the intent, UPDATE CAPP DATA CACHE, DEBIT,
PSAM 8072, append the outcome. Nothing is written to the card before the decision says pay; nothing is charged
twice: when in doubt the intent ends `unresolved` and the card is not charged again.
"""
from tunion.compat import const
from tunion import outcome as O
from tunion.apdu import SW_OK, SW_INSUFFICIENT_BALANCE, SW_KEY_INDEX, SW_RECORD_NOT_FOUND, BLOCKED_SWS, sw_name
from tunion.cardfiles import Ef15, Ef17, Ef18Entry, Ef1eRecord, InitAnswer, EF1E_SIZE
from tunion.card import Purse
from tunion.clock import bcd_datetime
from tunion.errors import CardError, CardLost, SamError, JournalError
from tunion.record import (
    Record,
    KIND_INTENT,
    KIND_COMPLETED,
    KIND_CANCELLED,
    KIND_UNRESOLVED,
    FLAG_SIMPLE,
    FLAG_RECOVERED,
    FLAG_MAC2_UNVERIFIED,
    FLAG_MAC2_BAD,
    FLAG_TEST_KEYS,
    FLAG_ABANDONED,
    TTYPE_SIMPLE,
    TTYPE_COMPOUND,
)
from tunion.rules import decide

# Protocol section 7.8: algorithm IDs this validator can pay with. 00 = 3DES/DES. SM4 (04) is not built.
SUPPORTED_ALGS = (0x00,)
_EF18_RECORDS = const(10)  # EF18 is a cyclic file of 10 records
_EF1E_TTYPE_FARE = const(0x06)  # EF1E 交易类型: single fare
_EF1E_INDUSTRY_BUS = const(0x02)
_ef1e_buf = bytearray(EF1E_SIZE)


class CardFacts:
    """What the card showed, for the rules: card number, EF15, EF17, its newest EF1E record (None if none),
    and whether it has EF1E at all (compound purchase) ."""

    def __init__(self, card_no, ef15, ef17, last_ef1e, compound):
        self.card_no = card_no
        self.ef15 = ef15
        self.ef17 = ef17
        self.last_ef1e = last_ef1e
        self.compound = compound


def _result(status, fare=None, balance=None, card_no=None, seq=None, flags=0, detail=""):
    return O.Result(status, fare, balance, card_no, seq, flags, detail)


def _close(journal, intent, kind, flags=0, balance=None, tac=None):
    rec = intent.outcome(kind, flags, balance, tac)
    journal.append_outcome(rec)
    return rec


_ABANDONED_KEPT = const(4)


def _abandon(journal, state, intent):
    """Close an open intent `unresolved` (another card pays, or it timed out: validator.md section 3) and
    remember it in RAM, so that if its card comes back its debit is looked for before it is charged again."""
    rec = _close(journal, intent, KIND_UNRESOLVED, FLAG_ABANDONED)
    ab = state.abandoned
    ab.append(intent)
    if len(ab) > _ABANDONED_KEPT:
        ab.pop(0)
    return rec


def resolve_open_intent(journal, state=None):
    """The depot's (or the app's) way to end the open intent, if any, as `unresolved`. Returns the outcome or
    None."""
    intent = journal.open_intent()
    if intent is None:
        return None
    if state is None:
        return _close(journal, intent, KIND_UNRESOLVED, FLAG_ABANDONED)
    return _abandon(journal, state, intent)


def tap(card, sam, journal, config, state, now):
    """One tap; see the module docstring. Only journal faults raise (JournalError); everything else is a Result."""
    if config is None:
        return _result(O.OOS_CONFIG, detail="no valid configuration")
    if sam is None or sam.terminal is None:
        return _result(O.OOS_SAM, detail="PSAM not open")
    intent = journal.open_intent()
    if intent is not None and now[0] - intent.time > config.intent_timeout_s:
        _abandon(journal, state, intent)
        intent = None
    purse = Purse(card)
    try:
        return _tap(purse, sam, journal, config, state, now, intent)
    except CardLost:
        # Lost before anything was written (the DEBIT path handles its own losses).
        return _result(O.CARD_ERROR, detail="card left the field")
    except CardError as e:
        return _result(O.CARD_ERROR, detail=str(e))
    except SamError as e:
        return _result(O.OOS_SAM, detail=str(e))


def _block(purse, sam, ef15):
    """Optional (configuration block_denylisted; protocol section 7.9): APPLICATION BLOCK on a denylisted card,
    MAC from the PSAM. Best effort: the card is refused whether or not the block lands."""
    from tunion.denylist import block_application

    try:
        block_application(purse.port, sam, ef15)
    except (CardLost, CardError, SamError):
        pass


def _refuse(journal, status, card_no=None, balance=None, detail=""):
    if status in O.REFUSALS:
        journal.count_refusal(status)
    return _result(status, balance=balance, card_no=card_no, detail=detail)


def _tap(purse, sam, journal, config, state, now, intent):
    s, ef15_raw = purse.select()
    if s != SW_OK:
        if s in BLOCKED_SWS:
            return _refuse(journal, O.REFUSED_BLOCKED, detail=sw_name(s))
        return _refuse(journal, O.REFUSED_UNSUPPORTED, detail="no T-Union purse: " + sw_name(s))
    ef15 = Ef15.decode(ef15_raw if ef15_raw is not None else purse.read_ef15())
    card_no = ef15.card_no
    pending = None  # this card's open intent whose debit is not proven either way
    pending_sure = False  # True when EF18 showed it did not happen
    if intent is not None and intent.card_no == card_no and intent.issuer == ef15.issuer:
        ev = _evidence(purse, sam, intent)
        if ev[0] == _PROVE or ev[0] == _LOG:
            return _complete_recovered(journal, sam, intent, ev)
        if ev[0] == _ELSEWHERE:
            _close(journal, intent, KIND_CANCELLED)  # its counter value was spent elsewhere: ours did not happen
        else:
            pending = intent
            pending_sure = ev[0] == _NOT_DONE
    else:
        old = _find_abandoned(state, card_no, ef15.issuer, now[0] - 2 * config.intent_timeout_s)
        if old is not None:
            state.abandoned.remove(old)
            ev = _evidence(purse, sam, old)
            if ev[0] == _PROVE or ev[0] == _LOG:
                # Debited before its intent was closed unresolved: that record stands, nothing is charged again.
                after = old.balance - old.amount
                return _result(O.PAID_RECOVERED, old.amount, after, card_no, old.seq, FLAG_RECOVERED, "already paid")
    ef17 = Ef17.decode(purse.read_ef17())
    compound, ef1e_raw = purse.read_last_ef1e()
    last_ef1e = Ef1eRecord.decode(ef1e_raw) if ef1e_raw is not None else None
    facts = CardFacts(card_no, ef15, ef17, last_ef1e, compound)

    status, fare = decide(facts, config, state, now)
    if status is not None:
        if status == O.REFUSED_DENYLISTED and config.block_denylisted:
            _block(purse, sam, ef15)
        if pending is not None:  # in doubt it ends unresolved: never claim "not debited" without proof
            _close(journal, pending, KIND_CANCELLED if pending_sure else KIND_UNRESOLVED, FLAG_RECOVERED)
        return _refuse(journal, status, card_no, detail="rules")
    if not journal.has_room():
        return _result(O.OOS_RECORDS_FULL, card_no=card_no, detail="journal full")

    s, init_raw = purse.init_purchase(compound, sam.key_index, fare, sam.terminal)
    if s != SW_OK:
        if pending is not None:
            _close(journal, pending, KIND_CANCELLED if pending_sure else KIND_UNRESOLVED, FLAG_RECOVERED)
        if s == SW_INSUFFICIENT_BALANCE:
            return _refuse(journal, O.REFUSED_INSUFFICIENT, card_no, purse.get_balance(), "balance below fare")
        if s == SW_KEY_INDEX:
            return _refuse(journal, O.REFUSED_UNSUPPORTED, card_no, detail="key index not supported")
        return _result(O.CARD_ERROR, card_no=card_no, detail="INITIALIZE: " + sw_name(s))
    init = InitAnswer.decode(init_raw)
    if pending is not None:
        if init.counter != pending.counter and not pending_sure:
            # The counter moved and the log could not say where: in doubt, never charge twice.
            _close(journal, pending, KIND_UNRESOLVED, FLAG_RECOVERED)
            return _result(O.CARD_ERROR, card_no=card_no, detail="torn purchase: counter moved, log unreadable")
        _close(journal, pending, KIND_CANCELLED)  # counter unchanged, or EF18 shows no debit of ours
    if init.alg_id not in SUPPORTED_ALGS:
        return _refuse(journal, O.REFUSED_UNSUPPORTED, card_no, init.balance, "algorithm %02X" % init.alg_id)
    other = journal.open_intent()
    if other is not None:  # another card's torn tap: this payment ends it (validator.md section 3)
        _abandon(journal, state, other)

    dt7 = bcd_datetime(now[0])
    ttype = TTYPE_COMPOUND if compound else TTYPE_SIMPLE
    ttc, mac1 = sam.init_purchase(
        init.random, init.counter, fare, ttype, dt7, init.key_version, init.alg_id, ef15.sn8, ef15.issuer
    )
    flags = (0 if compound else FLAG_SIMPLE) | (FLAG_TEST_KEYS if sam.test_keys else 0)
    intent = Record(
        KIND_INTENT,
        flags=flags,
        card_no=card_no,
        issuer=ef15.issuer,
        card_type=ef17.card_type,
        key_version=init.key_version,
        alg_id=init.alg_id,
        counter=init.counter,
        amount=fare,
        balance=init.balance,
        ttc=ttc,
        time=now[0],
    )
    try:
        journal.append_intent(intent)
    except JournalError as e:
        return _result(O.OOS_RECORDS_FULL, card_no=card_no, detail=str(e))
    after = init.balance - fare
    return _pay(purse, sam, journal, state, now, intent, compound, config, fare, after, dt7, mac1)


def _pay(purse, sam, journal, state, now, intent, compound, config, fare, after, dt7, mac1):
    card_no = intent.card_no
    try:
        if compound:
            rec = Ef1eRecord(
                _EF1E_TTYPE_FARE,
                b"\x00\x00" + sam.terminal,
                _EF1E_INDUSTRY_BUS,
                config.line,
                config.station,
                config.operator,
                0,
                fare,
                after,
                dt7,
                config.city,
                config.acquirer,
            )
            s = purse.update_cache(rec.encode(_ef1e_buf))
            if s != SW_OK:
                _close(journal, intent, KIND_CANCELLED)
                return _result(O.CARD_ERROR, card_no=card_no, detail="UPDATE CAPP DATA CACHE: " + sw_name(s))
    except (CardLost, CardError) as e:
        _close(journal, intent, KIND_CANCELLED)  # DEBIT was never sent: nothing happened on the card
        return _result(O.CARD_ERROR, card_no=card_no, detail="before DEBIT: %s" % e)
    try:
        s, tac, mac2 = purse.debit(intent.ttc, dt7, mac1)
    except CardLost as e:
        # DEBIT was sent and its answer is lost: the card may have been debited. Keep the intent open.
        return _result(O.TAP_AGAIN, fare, card_no=card_no, seq=intent.seq, detail="DEBIT answer lost: %s" % e)
    except CardError as e:
        s = -1
    if s != SW_OK:
        # An answer that is not a clean 9000 cannot be trusted to mean "not debited": ask the card at once.
        return _settle_now(purse, sam, journal, intent, fare, "DEBIT: %s" % (sw_name(s) if s >= 0 else "garbled"))
    flags = 0
    try:
        if not sam.credit(mac2):
            flags = FLAG_MAC2_BAD
    except SamError:
        flags = FLAG_MAC2_UNVERIFIED  # a DEBIT that answered 9000 is never cancelled
    rec = _close(journal, intent, KIND_COMPLETED, flags, after, tac)
    state.paid(card_no, now[1])
    return _result(O.PAID, fare, after, card_no, rec.seq, rec.flags)


_PROVE = "prove"
_LOG = "log"
_ELSEWHERE = "elsewhere"
_NOT_DONE = "not done"
_UNKNOWN = "unknown"


def _find_abandoned(state, card_no, issuer, since):
    """This card's abandoned intent from `since` on (older ones are forgotten: a card back hours later is a new
    ride, and the depot settles the unresolved record with the clearing centre)."""
    ab = state.abandoned
    while ab and ab[0].time < since:
        ab.pop(0)
    for i in ab:
        if i.card_no == card_no and i.issuer == issuer:
            return i
    return None


def _evidence(purse, sam, intent):
    """What the card says about a torn purchase (validator.md section 3):
    (_PROVE, mac2, tac): GET TRANSACTION PROVE for counter + 1 answered: the debit happened, with its TAC;
    (_LOG,): EF18 has an entry with this terminal, counter + 1 and the amount: it happened, no TAC to be had;
    (_ELSEWHERE,): EF18 shows counter + 1 spent at another terminal: ours did not happen;
    (_NOT_DONE,): EF18 was read and holds no entry with counter + 1: ours did not happen;
    (_UNKNOWN,): no proof either way (the counter from INITIALIZE decides later)."""
    want = (intent.counter + 1) & 0xFFFF  # protocol section 7.2: PROVE and EF18 use the incremented counter
    got = purse.get_prove(intent.ttype, want)
    if got is not None:
        return _PROVE, got[0], got[1]
    for n in range(1, _EF18_RECORDS + 1):
        s, raw = purse.read_ef18(n)
        if raw is None:
            # No more records (6A83): the log was read to its end. Anything else: the log cannot tell.
            return (_NOT_DONE,) if s == SW_RECORD_NOT_FOUND else (_UNKNOWN,)
        e = Ef18Entry.decode(raw)
        if e.ttype != TTYPE_SIMPLE and e.ttype != TTYPE_COMPOUND:
            continue  # a load: its counter is the online counter, another sequence
        if e.counter == want:
            if e.terminal == sam.terminal and e.amount == intent.amount:
                return (_LOG,)
            return (_ELSEWHERE,)
        if e.counter < want:
            return (_NOT_DONE,)  # newest first: from here on everything predates the torn purchase
    return (_UNKNOWN,)


def _settle_now(purse, sam, journal, intent, fare, why):
    """DEBIT answered something other than TAC and MAC2: the card is most likely still in the field, so look for
    the evidence now (GET TRANSACTION PROVE, EF18). Unknown: the intent stays open (TAP_AGAIN)."""
    try:
        ev = _evidence(purse, sam, intent)
    except (CardLost, CardError):
        ev = (_UNKNOWN,)
    if ev[0] == _PROVE or ev[0] == _LOG:
        return _complete_recovered(journal, sam, intent, ev)
    if ev[0] == _UNKNOWN:
        return _result(O.TAP_AGAIN, fare, card_no=intent.card_no, seq=intent.seq, detail=why)
    _close(journal, intent, KIND_CANCELLED)
    return _result(O.CARD_ERROR, card_no=intent.card_no, detail=why)


def _complete_recovered(journal, sam, intent, ev):
    after = intent.balance - intent.amount
    flags = FLAG_RECOVERED
    if ev[0] == _LOG:
        rec = _close(journal, intent, KIND_UNRESOLVED, flags, after)
        return _result(O.PAID_RECOVERED, intent.amount, after, intent.card_no, rec.seq, rec.flags, "no TAC")
    mac2, tac = ev[1], ev[2]
    if sam.session_ttc == intent.ttc:
        try:
            if not sam.credit(mac2):
                flags |= FLAG_MAC2_BAD
        except SamError:
            flags |= FLAG_MAC2_UNVERIFIED
    else:
        flags |= FLAG_MAC2_UNVERIFIED  # the PSAM session is gone (another 8070, a reboot)
    rec = _close(journal, intent, KIND_COMPLETED, flags, after, tac)
    return _result(O.PAID_RECOVERED, intent.amount, after, intent.card_no, rec.seq, rec.flags, "TAC recovered")
