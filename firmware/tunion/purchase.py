"""The tap: one purse purchase with the card and the PSAM, torn-tap recovery, and the records it leaves.

    result = tap(card_port, psam, journal, config, state, now)   # now = (CST seconds, ms tick)
    if result.status == PAID: show(result.fare, result.balance)

validator.md sections 1-3; the recovery table is in docs/design.md "Recovery". Order: select, read EF17 (EF15 taken
from the SELECT answer meanwhile, or read); if this card has a torn intent (the open one, or one on the journal's
durable unresolved list), ask for the evidence of that intent (`recover`); read EF1E (the denylist searched
meanwhile), decide, INITIALIZE (its counter settles a torn intent the log could
not), PSAM 8070 sent, UPDATE CAPP DATA CACHE while the PSAM works, 8070's answer, append the intent, DEBIT,
PSAM 8072, append the outcome. Nothing is
written to the card before the decision says pay; when the evidence is missing the card is never charged.
"""
from tunion.compat import const
from tunion import outcome as O
from tunion import recovery as R
from tunion.apdu import SW_OK, SW_INSUFFICIENT_BALANCE, SW_KEY_INDEX, BLOCKED_SWS, sw_name
from tunion.cardfiles import Ef17, Ef1eRecord, InitAnswer
from tunion.card import Purse
from tunion.denylist import DenylistError
from tunion.errors import CardError, CardLost, SamError, SamKeyMissing, JournalError
from tunion.record import (
    Record,
    KIND_INTENT,
    KIND_COMPLETED,
    KIND_CANCELLED,
    KIND_UNRESOLVED,
    KIND_SETTLED,
    FLAG_SIMPLE,
    FLAG_RECOVERED,
    FLAG_MAC2_UNVERIFIED,
    FLAG_MAC2_BAD,
    FLAG_TEST_KEYS,
    FLAG_ABANDONED,
    TTYPE_SIMPLE,
    TTYPE_COMPOUND,
)
from tunion.meanwhile import SelectAhead, DenylistAhead, PurchaseAhead, CacheRecord, Ahead
from tunion.rules import decide, CardFacts

# Protocol section 7.8: algorithm IDs this validator can pay with. 00 = 3DES/DES. SM4 (04) is not built.
SUPPORTED_ALGS = (0x00,)
# An unknown entry stays on the unresolved list this long (docs/design.md "Recovery": a week, far past the
# recovery window; by then the card's 10-entry log has usually moved on and the depot settles it with clearing).
UNRESOLVED_MAX_AGE_S = const(7 * 86400)


def _result(status, fare=None, balance=None, card_no=None, seq=None, flags=0, detail=""):
    return O.Result(status, fare, balance, card_no, seq, flags, detail)


def _close(journal, intent, kind, flags=0, balance=None, tac=None):
    rec = intent.outcome(kind, flags, balance, tac)
    journal.append_outcome(rec)
    return rec


def resolve_open_intent(journal, state=None):
    """The depot's (or the app's) way to end the open intent, if any, as `unresolved` (it joins the durable
    list, so its card is still never charged twice). Returns the outcome or None."""
    intent = journal.open_intent()
    if intent is None:
        return None
    return _close(journal, intent, KIND_UNRESOLVED, FLAG_ABANDONED)


def _housekeep(journal, now):
    """Unknown entries leave the list after UNRESOLVED_MAX_AGE_S (the journal records a fault); MAC2-rejected
    ones leave when their card is seen after the recovery window (recover())."""
    for e in journal.unresolved():
        if not e.rejected and now[0] - e.intent.time > UNRESOLVED_MAX_AGE_S:
            journal.drop_unresolved(e.intent.seq, "expired")


def tap(card, sam, journal, config, state, now):
    """One tap; see the module docstring. Only a journal that cannot store raises (JournalError); every other
    fault is a Result (docs/design.md "Faults"): configuration or denylist unreadable -> OOS_CONFIG, PSAM or
    its TTC store failing -> OOS_SAM, a key the PSAM lacks -> REFUSED_UNSUPPORTED, a card fault -> CARD_ERROR."""
    if config is None:
        return _result(O.OOS_CONFIG, detail="no valid configuration")
    if sam is None or sam.terminal is None:
        return _result(O.OOS_SAM, detail="PSAM not open")
    state.pending = None
    _housekeep(journal, now)
    purse = Purse(card)
    try:
        return _tap(purse, sam, journal, config, state, now)
    except CardLost:
        return _result(O.CARD_ERROR, detail="card left the field")
    except CardError as e:
        return _result(O.CARD_ERROR, detail=str(e))
    except SamKeyMissing as e:
        return _refuse(journal, O.REFUSED_UNSUPPORTED, detail=str(e))
    except SamError as e:
        return _result(O.OOS_SAM, detail=str(e))
    except DenylistError as e:
        return _result(O.OOS_CONFIG, detail="denylist: %s" % e)
    # (No RecursionError clause: MicroPython has no such name, and TLV nesting is capped in tunion.apdu.)


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


def _close_other(journal, card_no, issuer, now, config):
    """Another card's open intent: it ends `unresolved` (it stays on the durable list) before this card writes
    anything (validator.md section 3: one intent may be open at a time)."""
    other = journal.open_intent()
    if other is not None and not (other.card_no == card_no and other.issuer == issuer):
        _close(journal, other, KIND_UNRESOLVED, FLAG_ABANDONED)


def _tap(purse, sam, journal, config, state, now):
    s, fci = purse.select_fci()
    if s != SW_OK:
        if s in BLOCKED_SWS:
            return _refuse(journal, O.REFUSED_BLOCKED, detail=sw_name(s))
        return _refuse(journal, O.REFUSED_UNSUPPORTED, detail="no T-Union purse: " + sw_name(s))
    # READ EF17 goes out at once (a read: it changes nothing on the card), and the SELECT answer's EF15 is
    # found and decoded while the card works on it (tunion/meanwhile.py).
    first = SelectAhead(fci)
    purse.meanwhile = first
    ef17_raw = purse.read_ef17()
    ef15 = first.answer(purse)
    card_no = ef15.card_no
    other = journal.open_intent()
    if other is not None and now[0] - other.time > config.intent_timeout_s:
        if not (other.card_no == card_no and other.issuer == ef15.issuer):
            _close(journal, other, KIND_UNRESOLVED, FLAG_ABANDONED)  # timed out (validator.md section 3)
    r = recover(purse, sam, journal, config, state, now, ef15)
    if r is not None:
        return r
    ahead = DenylistAhead(config.denylist, card_no) if config.denylist is not None else None
    purse.meanwhile = ahead  # the denylist is searched while the card reads out its newest EF1E record
    ef17 = Ef17.decode(ef17_raw)
    compound, ef1e_raw = purse.read_last_ef1e()
    last_ef1e = Ef1eRecord.decode(ef1e_raw) if ef1e_raw is not None else None
    facts = CardFacts(card_no, ef15, ef17, last_ef1e, compound)

    status, fare = decide(facts, config, state, now, ahead)
    if status is not None:
        if status == O.REFUSED_DENYLISTED and config.block_denylisted:
            _block(purse, sam, ef15)
        return _refuse(journal, status, card_no, detail="rules")
    if not journal.has_room():
        return _result(O.OOS_RECORDS_FULL, card_no=card_no, detail="journal full")

    ahead = PurchaseAhead(sam, now[0], CacheRecord(sam, config, fare) if compound else None)
    purse.meanwhile = ahead  # 8070's header to the PSAM while the card works; the date and cache record made
    s, init_raw = purse.init_purchase(compound, sam.key_index, fare, sam.terminal)
    init = InitAnswer.decode(init_raw) if s == SW_OK else None
    torn = state.pending
    if torn is not None:
        state.pending = None
        if init is not None and init.counter == torn.intent.counter:
            _settle(journal, state, torn, R.NOT_DEBITED, None, 0, now, config)  # counter unchanged
        elif torn.inside:
            # The counter moved (or INITIALIZE failed) and the log could not say where: never charge twice.
            return _result(O.TAP_AGAIN, card_no=card_no, seq=torn.intent.seq, detail="torn purchase not proven either way")
    if state.unshown is not None and R.shown_now(state, card_no, ef15, init, now[0], config.recovery_window_s):
        u, end = state.unshown
        state.unshown = None
        guard_recovered(state, card_no, now)
        return _result(O.PAID_RECOVERED, u.amount, init.balance, card_no, end.seq, end.flags,
                       "paid before a restart and not shown then; not charged again")
    if s != SW_OK:
        if s == SW_INSUFFICIENT_BALANCE:
            return _refuse(journal, O.REFUSED_INSUFFICIENT, card_no, purse.get_balance(), "balance below fare")
        if s == SW_KEY_INDEX:
            return _refuse(journal, O.REFUSED_UNSUPPORTED, card_no, detail="key index not supported")
        return _result(O.CARD_ERROR, card_no=card_no, detail="INITIALIZE: " + sw_name(s))
    if init.balance < fare:
        # No overdraft on T-Union cards (protocol section 7.4), whatever the status word said (finding 6).
        return _refuse(journal, O.REFUSED_INSUFFICIENT, card_no, init.balance, "balance below fare")
    if init.alg_id not in SUPPORTED_ALGS:
        return _refuse(journal, O.REFUSED_UNSUPPORTED, card_no, init.balance, "algorithm %02X" % init.alg_id)
    other = journal.open_intent()
    if other is not None:  # a torn tap (another card's, or this card's still unproven): this payment ends it
        _close(journal, other, KIND_UNRESOLVED, FLAG_ABANDONED)

    dt7 = ahead.answer()
    ttype = TTYPE_COMPOUND if compound else TTYPE_SIMPLE
    after = init.balance - fare
    # 8070 goes to the PSAM first and is answered after UPDATE CAPP DATA CACHE: the PSAM derives its keys while
    # the card takes the cache update (docs/design.md "8070 while the card takes the cache update"). The cache
    # counts only with DEBIT, which still follows the durable intent (validator.md section 1, step 5).
    sam.begin_purchase(
        init.random, init.counter, fare, ttype, dt7, init.key_version, init.alg_id, ef15.sn8, ef15.issuer
    )
    flags = (0 if compound else FLAG_SIMPLE) | (FLAG_TEST_KEYS if sam.test_keys else 0)
    made = Ahead(_intent_record, (flags, card_no, ef15, ef17, init, fare, now[0]))
    cache = None
    if compound:
        purse.meanwhile = made  # the intent record is built while the card takes the cache update
        cache = _update_cache(purse, ahead.cache_record(after))
    ttc, mac1 = sam.end_purchase()
    intent = made.answer()
    intent.ttc = ttc
    try:
        journal.append_intent(intent)
    except JournalError as e:
        return _result(O.OOS_RECORDS_FULL, card_no=card_no, detail=str(e))
    if cache is not None:
        # The cache update failed: DEBIT is never sent, nothing happened on the card; the intent (its TTC is
        # spent) is closed at once.
        _close(journal, intent, KIND_CANCELLED)
        return _result(O.CARD_ERROR, card_no=card_no, detail=cache)
    return _pay(purse, sam, journal, config, state, now, intent, fare, after, dt7, mac1)


def _intent_record(flags, card_no, ef15, ef17, init, fare, secs):
    # The intent before its TTC, which 8070's answer brings (the tap sets it before the append).
    return Record(
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
        time=secs,
    )


def _update_cache(purse, record):
    """UPDATE CAPP DATA CACHE (EF1E): None when the card took it, else why not (the tap ends before DEBIT)."""
    try:
        s = purse.update_cache(record)
    except (CardLost, CardError) as e:
        return "before DEBIT: %s" % e
    if s != SW_OK:
        return "UPDATE CAPP DATA CACHE: " + sw_name(s)
    return None


def _pay(purse, sam, journal, config, state, now, intent, fare, after, dt7, mac1):
    card_no = intent.card_no
    done = Ahead(intent.outcome, (KIND_COMPLETED, 0, after, None), sam.prime_credit)
    try:
        purse.meanwhile = done  # 8072's header likewise, and the outcome record built, during the card's DEBIT
        s, tac, mac2 = purse.debit(intent.ttc, dt7, mac1)
    except CardLost as e:
        # DEBIT was sent and its answer is lost: the card may have been debited. Keep the intent open.
        return _result(O.TAP_AGAIN, fare, card_no=card_no, seq=intent.seq, detail="DEBIT answer lost: %s" % e)
    except CardError as e:
        s, tac = -1, None  # no status word at all
    if s != SW_OK or tac is None:
        # An answer that is not a clean 9000 with TAC and MAC2 cannot be trusted to mean "not debited": ask the
        # card at once (its PSAM session is still ours, so a PROVE answer can be verified). A 9000 with a
        # malformed body is never settled "not debited".
        why = "DEBIT: %s" % (sw_name(s) if s >= 0 else "no status word")
        torn = R.Torn(intent, sam.terminal, True, True)
        try:
            r = _evidence(purse, sam, journal, config, state, now, torn, s == SW_OK)
        except (CardLost, CardError):
            r = None
        state.pending = None  # this tap already ends here
        if r is None or r is _NOT_CHARGED:
            if journal.open_intent() is None:  # proven not debited: it was settled `cancelled`
                return _result(O.CARD_ERROR, card_no=card_no, detail=why)
            return _result(O.TAP_AGAIN, fare, card_no=card_no, seq=intent.seq, detail=why)
        return r
    try:
        ok = sam.credit(mac2)
        why = "PSAM rejected MAC2"
    except SamError as e:
        ok = False  # 8072 is one shot: a PSAM that did not answer it verified nothing (see the driver)
        why = str(e)
    if not ok:
        # DEBIT answered 9000: the card was debited, so never `cancelled`; but MAC2 did not verify, so no PAID:
        # the record says so, the intent joins the durable list (validator.md section 3, "MAC2 must verify").
        rec = _close(journal, intent, KIND_COMPLETED, FLAG_MAC2_BAD, after, tac)
        return _result(O.MAC2_REJECTED, fare, after, card_no, rec.seq, rec.flags, why)
    rec = done.answer()
    rec.tac = bytes(tac)
    journal.append_outcome(rec)
    state.paid(card_no, now[1], now[0])
    return _result(O.PAID, fare, after, card_no, rec.seq, rec.flags)


# ---- recovery (validator.md section 3; docs/design.md "Recovery") ----------------------------------------------
_NOT_CHARGED = _result(O.TAP_AGAIN)  # marker: evidence inconclusive, the caller decides what to show


def guard_recovered(state, card_no, now):
    """The 1 s repeat guard after a PAID_RECOVERED (issue 7 finding 2): as after a PAID."""
    state.paid(card_no, now[1], now[0])


def prove_verified(sam, intent, mac2):
    """Does the PSAM verify this PROVE answer's MAC2 in the intent's own 8070 session? True / False (rejected),
    None when that session is gone (another 8070, a reboot) or the PSAM cannot tell."""
    if sam.session_ttc != intent.ttc:
        return None
    try:
        return sam.credit(mac2)
    except SamError:
        return None


def _torn_for(journal, config, now, ef15):
    """This card's torn intent: the open one, else its newest entry on the unresolved list; None if neither."""
    card_no, issuer = ef15.card_no, ef15.issuer
    i = journal.open_intent()
    if i is not None and i.card_no == card_no and i.issuer == issuer:
        terminal = journal.open_terminal()
        return R.Torn(i, terminal, True, now[0] - i.time <= config.recovery_window_s), None
    found = None
    for e in journal.unresolved():
        if e.intent.card_no == card_no and e.intent.issuer == issuer:
            found = e
    if found is None:
        return None, None
    return R.Torn(found.intent, found.terminal, False, now[0] - found.intent.time <= config.recovery_window_s), found


def recover(purse, sam, journal, config, state, now, ef15):
    """A returning card with a torn intent: ask for the evidence of that intent, write what it proves, and say
    what this tap does. Returns a Result to end the tap with, or None to go on to the purchase (nothing torn,
    the debit proven not to have happened, the recovery window over, or the proof waits for INITIALIZE's
    counter: then state.pending holds the intent)."""
    torn, entry = _torn_for(journal, config, now, ef15)
    if torn is None:
        return None
    if entry is not None and entry.rejected:
        # Debited with a rejected MAC2: inside the window neither charged again nor shown PAID for it.
        i = torn.intent
        if torn.inside:
            return _result(O.MAC2_REJECTED, i.amount, i.balance - i.amount, i.card_no, i.seq, FLAG_MAC2_BAD, "MAC2 rejected earlier")
        journal.drop_unresolved(i.seq, "window")
        return None
    try:
        r = _evidence(purse, sam, journal, config, state, now, torn, False)
    except CardLost:
        r = _NOT_CHARGED  # torn again during the recovery (finding 1): nothing proven
    if r is _NOT_CHARGED:
        if torn.inside:
            return _result(O.TAP_AGAIN, card_no=ef15.card_no, seq=torn.intent.seq, detail="torn purchase not proven")
        return None  # past the window: a new ride; the old intent stays unresolved
    return r


def _evidence(purse, sam, journal, config, state, now, torn, debit_said_ok):
    """Gather PROVE (verified in the intent's own session when it still is) and the log, settle what they prove.
    Returns a Result (the ride is paid or MAC2-rejected), None (go on paying), or _NOT_CHARGED (nothing proven;
    state.pending is set when INITIALIZE's counter may still prove "not debited")."""
    intent = torn.intent
    prove = R.ask_prove(purse, intent)
    verified = None
    if prove[0] == R.PROVE_DATA:
        verified = prove_verified(sam, intent, prove[1])
    log = R.LOG_UNKNOWN if verified is True else R.ask_log(purse, intent, torn.terminal)
    end = R.judge(prove, verified, log)
    if end == R.NOT_DEBITED and debit_said_ok:
        end = R.UNKNOWN  # a DEBIT that answered 9000 is never recorded as not debited
    if end == R.UNKNOWN:
        if not debit_said_ok:
            state.pending = torn
        return _NOT_CHARGED
    flags = FLAG_RECOVERED
    tac = None
    if end == R.DEBITED_TAC:
        tac = prove[2]
        if verified is False:
            flags |= FLAG_MAC2_BAD
        elif verified is None:
            flags |= FLAG_MAC2_UNVERIFIED
    return _settle(journal, state, torn, end, tac, flags, now, config)


def _settle(journal, state, torn, end, tac, flags, now, config):
    """Write what the evidence proved about the torn intent (an outcome when it is the open intent, else a
    settlement citing it) and say what the passenger sees: None (go on paying) or a Result."""
    intent = torn.intent
    card_no, issuer = intent.card_no, intent.issuer
    after = intent.balance - intent.amount
    if end == R.NOT_DEBITED:
        balance, flags = intent.balance, 0
    else:
        balance = after
    rec = intent.outcome(R.record_kind(end, torn.is_open), flags, balance, tac)
    if torn.is_open:
        journal.append_outcome(rec)
    else:
        _close_other(journal, card_no, issuer, now, config)  # a settlement is written with no intent open
        journal.append_settlement(rec)
    if end == R.DEBITED_NO_TAC:
        journal.count_no_tac(card_no)
    if end == R.NOT_DEBITED or not torn.inside:
        return None  # the purchase runs on: a new ride (after the window the proof is still recorded)
    if flags & FLAG_MAC2_BAD:
        return _result(O.MAC2_REJECTED, intent.amount, after, card_no, rec.seq, rec.flags, "MAC2 rejected")
    guard_recovered(state, card_no, now)  # the 1 s repeat guard follows every accepted tap
    detail = "TAC recovered" if rec.kind == KIND_COMPLETED or rec.kind == KIND_SETTLED else "no TAC"
    return _result(O.PAID_RECOVERED, intent.amount, after, card_no, rec.seq, rec.flags, detail)
