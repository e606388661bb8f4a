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
from tunion.apdu import SW_OK, SW_INSUFFICIENT_BALANCE, SW_KEY_INDEX, BLOCKED_SWS, sw_name
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


def resolve_open_intent(journal, flags=FLAG_ABANDONED):
    """Turn the open intent, if any, into an `unresolved` outcome (another card pays, it timed out, or the depot
    says so: validator.md section 3). Returns the outcome record or None."""
    intent = journal.open_intent()
    if intent is None:
        return None
    return _close(journal, intent, KIND_UNRESOLVED, flags)


def tap(card, sam, journal, config, state, now):
    """One tap; see the module docstring. Only journal faults raise (JournalError); everything else is a Result."""
    if config is None:
        return _result(O.OOS_CONFIG, detail="no valid configuration")
    if sam is None or sam.terminal is None:
        return _result(O.OOS_SAM, detail="PSAM not open")
    intent = journal.open_intent()
    if intent is not None and now[0] - intent.time > config.intent_timeout_s:
        _close(journal, intent, KIND_UNRESOLVED, FLAG_ABANDONED)
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
    pending = None  # this card's open intent whose debit is not proven
    if intent is not None and intent.card_no == card_no and intent.issuer == ef15.issuer:
        done = _recover_by_prove(purse, sam, journal, intent)
        if done is not None:
            return done
        done = _recover_by_log(purse, sam, journal, intent)
        if done is not None:
            return done
        if journal.open_intent() is not None:
            pending = intent
    ef17 = Ef17.decode(purse.read_ef17())
    compound, ef1e_raw = purse.read_last_ef1e()
    last_ef1e = Ef1eRecord.decode(ef1e_raw) if ef1e_raw is not None else None
    facts = CardFacts(card_no, ef15, ef17, last_ef1e, compound)

    status, fare = decide(facts, config, state, now)
    if status is not None:
        if pending is not None:  # EF18 shows no debit for it: the torn purchase did not happen
            _close(journal, pending, KIND_CANCELLED)
        return _refuse(journal, status, card_no, detail="rules")
    if not journal.has_room():
        return _result(O.OOS_RECORDS_FULL, card_no=card_no, detail="journal full")

    s, init_raw = purse.init_purchase(compound, sam.key_index, fare, sam.terminal)
    if s != SW_OK:
        if pending is not None:
            _close(journal, pending, KIND_CANCELLED)
        if s == SW_INSUFFICIENT_BALANCE:
            return _refuse(journal, O.REFUSED_INSUFFICIENT, card_no, purse.get_balance(), "balance below fare")
        if s == SW_KEY_INDEX:
            return _refuse(journal, O.REFUSED_UNSUPPORTED, card_no, detail="key index not supported")
        return _result(O.CARD_ERROR, card_no=card_no, detail="INITIALIZE: " + sw_name(s))
    init = InitAnswer.decode(init_raw)
    if pending is not None:
        if init.counter != pending.counter and init.counter == (pending.counter + 1) & 0xFFFF:
            # The counter moved by one but EF18 showed no entry of ours: in doubt, never charge twice.
            _close(journal, pending, KIND_UNRESOLVED, FLAG_RECOVERED)
            return _result(O.CARD_ERROR, card_no=card_no, detail="torn purchase: counter moved, no log entry")
        _close(journal, pending, KIND_CANCELLED)  # counter unchanged (or moved elsewhere): ours did not happen
    if init.alg_id not in SUPPORTED_ALGS:
        return _refuse(journal, O.REFUSED_UNSUPPORTED, card_no, init.balance, "algorithm %02X" % init.alg_id)
    other = journal.open_intent()
    if other is not None:  # another card's torn tap: this payment ends it (validator.md section 3)
        _close(journal, other, KIND_UNRESOLVED, FLAG_ABANDONED)

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
    except (CardLost, CardError) as e:
        # DEBIT was sent and its answer is lost or unusable: the card may have been debited. Keep the intent open.
        return _result(O.TAP_AGAIN, fare, card_no=card_no, seq=intent.seq, detail="DEBIT answer lost: %s" % e)
    if s != SW_OK:
        _close(journal, intent, KIND_CANCELLED)
        return _result(O.CARD_ERROR, card_no=card_no, detail="DEBIT: " + sw_name(s))
    flags = 0
    try:
        if not sam.credit(mac2):
            flags = FLAG_MAC2_BAD
    except SamError:
        flags = FLAG_MAC2_UNVERIFIED  # a DEBIT that answered 9000 is never cancelled
    rec = _close(journal, intent, KIND_COMPLETED, flags, after, tac)
    state.paid(card_no, now[1])
    return _result(O.PAID, fare, after, card_no, rec.seq, rec.flags)


def _recover_by_prove(purse, sam, journal, intent):
    """GET TRANSACTION PROVE for the intent's counter + 1 (protocol section 7.2): an answer means the debit
    happened, and the record completes with its TAC."""
    got = purse.get_prove(intent.ttype, (intent.counter + 1) & 0xFFFF)
    if got is None:
        return None
    mac2, tac = got
    flags = FLAG_RECOVERED
    if sam.session_ttc == intent.ttc:
        try:
            if not sam.credit(mac2):
                flags |= FLAG_MAC2_BAD
        except SamError:
            flags |= FLAG_MAC2_UNVERIFIED
    else:
        flags |= FLAG_MAC2_UNVERIFIED  # the PSAM session is gone (another 8070, a reboot)
    after = intent.balance - intent.amount
    rec = _close(journal, intent, KIND_COMPLETED, flags, after, tac)
    return _result(O.PAID_RECOVERED, intent.amount, after, intent.card_no, rec.seq, rec.flags, "TAC recovered")


def _recover_by_log(purse, sam, journal, intent):
    """The card's EF18 log: an entry with this terminal and counter + 1 means the debit happened without a TAC
    we can get: the outcome is `unresolved` and the card is not charged again (validator.md section 3)."""
    want = (intent.counter + 1) & 0xFFFF
    for n in range(1, _EF18_RECORDS + 1):
        raw = purse.read_ef18(n)
        if raw is None:
            break
        e = Ef18Entry.decode(raw)
        if e.counter == want:
            if e.terminal == sam.terminal and e.amount == intent.amount:
                after = intent.balance - intent.amount
                rec = _close(journal, intent, KIND_UNRESOLVED, FLAG_RECOVERED, after)
                return _result(O.PAID_RECOVERED, intent.amount, after, intent.card_no, rec.seq, rec.flags, "no TAC")
            _close(journal, intent, KIND_CANCELLED)  # that counter value was spent elsewhere: ours did not happen
            return None
        if e.counter <= intent.counter:
            break  # older than the torn purchase: no need to look further
    return None
