"""The tap loop: wait for a card, tap() it, show and sound the result, wait for it to be lifted, then idle work.

    v = Validator(reader, sam, journal, config, clock, screen=scr, feedback=fb, wdt=wdt, log=errlog)
    while True: v.step()          # what main.py runs; service.status() reads v.stats()

Parts arrive as duck-typed objects (boot.py builds them from the board file):
  reader    detect() -> bool (a card is activated), transceive(apdu), present() -> bool (still in the field)
  sam       tunion.psam.Psam (over the T=0 driver or the software SAM), or None while there is none
  journal   tunion.flashjournal.FlashJournal or tunion.fsjournal.FsJournal
  config    tunion.config.Config, or None when missing or bad
  clock     now() -> (CST seconds, ms tick), valid (False until the time is known: validator.md section 5)
  screen    show(lines) (draws later, between taps), flush(); feedback start(status, ms), poll(ms); optional
  wdt       feed(); kbd(n) is micropython.kbd_intr on the board (Ctrl-C held off during a tap)
  retry     a callable that tries to fix what put the validator out of service; returns (config, sam)

The loop never pays while out of service (its reason on screen, retried every `retry_ms`), never taps a card that
rests on the reader twice, and never dies: an unexpected exception goes to the error log, shows out of service,
and the loop goes on (issue 8, "The app").
"""
import gc

from tunion.compat import const, ticks_diff
from tunion import outcome as O
from tunion import messages
from tunion.errors import JournalError
from tunion.purchase import tap
from tunion.journal import last_payment, unshown_payment
from tunion.rules import State

_RETRY_MS = const(5000)
_RESULT_MS = const(2000)  # a result stays on screen this long after the card is lifted
# A card found on the reader at the first poll after a restart (the depot tool restarts the app; a watchdog or
# soft reset) that is the card paid last, this recently, is the passenger's card resting there since: not tapped
# again (the repeat check's RAM was lost with the restart; the memo in RTC memory survives it, and after a power
# cut, which clears RTC memory, the journal's newest record says the same: tunion.journal.last_payment).
_RESTART_GUARD_S = const(900)
# Collect between taps once this much was allocated since the last collection: a full collection every turn of
# the loop costs milliseconds of CPU for nothing, and the next tap still starts with the heap collected.
_GC_EVERY = const(8192)
_mem_alloc = getattr(gc, "mem_alloc", None)
_COUNTED = (O.CARD_ERROR, O.TAP_AGAIN, O.PAID, O.PAID_RECOVERED, O.MAC2_REJECTED)


def _noop(*a):
    return None


class Validator:
    def __init__(self, reader, sam, journal, config, clock, screen=None, feedback=None, wdt=None, log=None,
                 kbd=None, retry=None, ticks=None, memo=None):
        self.reader = reader
        self.memo = memo  # load() -> (card_no, secs) | None, save(card_no, secs): the last payment, kept over resets
        self._first_poll = True
        self._journal_memo = None  # (card_no, secs) of the journal's newest payment
        self._to_mark = 0  # seq of a payment on the screen, to mark shown once drawn (idle)
        unshown = None
        try:  # read at boot, not at the first poll: a card may already be there, and this walks a flash sector
            p = last_payment(journal)
            if p is not None:
                self._journal_memo = (p[0].card_no, p[0].time)
                unshown = unshown_payment(journal, p)
        except Exception:  # noqa: BLE001 - a damaged tail only loses the guard; the journal reports its own faults
            pass
        self.sam = sam
        self.journal = journal
        self.config = config
        self.clock = clock
        self.screen = screen
        self.feedback = feedback
        self.wdt = wdt
        self.log = log
        self.kbd = kbd if kbd is not None else _noop
        self.retry = retry
        self.ticks = ticks if ticks is not None else (lambda: clock.now()[1])
        self.state = State()
        self.state.hold_unshown(unshown)  # a power cut between a payment's record and the screen (tunion/journal.py)
        self.resting = False  # the last card tapped is still on the reader
        self.reason = None  # out of service: its status (OOS_*), else None
        self.oos_since = None
        self.oos_ms = 0  # time out of service so far (ms)
        self.counts = {}
        self.last = None  # the last tap's Result
        self._last_retry = None
        self._shown = None
        self._result_at = None
        self._gc_base = 0
        self.tap_heap = 0  # bytes the last tap allocated (gc.mem_alloc() across tap(); 0 on CPython)

    # ---- out of service ----------------------------------------------------------------------------------
    def why_out_of_service(self):
        """The OOS_* status that stops payments now, or None (validator.md sections 4-5)."""
        if self.config is None:
            return O.OOS_CONFIG
        if self.sam is None or self.sam.terminal is None:
            return O.OOS_SAM
        if not self.clock.valid:
            return O.OOS_CLOCK
        if not self.journal.has_room():
            return O.OOS_RECORDS_FULL
        return None

    def _enter(self, reason, t):
        if self.reason is None:
            self.oos_since = t
        elif self.oos_since is not None:
            self.oos_ms += ticks_diff(t, self.oos_since)
            self.oos_since = t
        self.reason = reason
        self._show([messages.text(reason)[0], messages.text(reason)[1]])

    def _leave(self, t):
        if self.reason is not None and self.oos_since is not None:
            self.oos_ms += ticks_diff(t, self.oos_since)
        if self.reason is not None and self.feedback is not None and hasattr(self.feedback, "clear"):
            self.feedback.clear()  # the out-of-service red LED stays lit until now (drivers/feedback.py)
        self.reason = None
        self.oos_since = None

    def _show(self, lines):
        if self.screen is not None and lines != self._shown:
            self._shown = lines
            self.screen.show(lines)

    # ---- one turn of the loop ----------------------------------------------------------------------------
    def step(self):
        """One turn: returns the tap's Result when a card was tapped, else None. Never raises."""
        try:
            return self._step()
        except Exception as e:  # the loop never dies (JournalError included: shown as records full)
            t = self.ticks()
            if self.log is not None:
                self.log.add(self.clock.now()[0], "loop", e)
            self._enter(O.OOS_RECORDS_FULL if isinstance(e, JournalError) else O.OOS_CONFIG, t)
            self.resting = False
            return None

    def _step(self):
        if self.wdt is not None:
            self.wdt.feed()
        t = self.ticks()
        if self.resting:
            if self.reader.present():
                self.idle()
                return None
            self.resting = False  # lifted: the next card is a new tap
        reason = self.why_out_of_service()
        if reason is not None:
            self._enter(reason, t)
            if self.retry is not None and (self._last_retry is None or ticks_diff(t, self._last_retry) >= _RETRY_MS):
                self._last_retry = t
                self.config, self.sam = self.retry()
            self.idle()
            return None
        self._leave(t)
        first, self._first_poll = self._first_poll, False
        if not self.reader.detect():
            self.idle()
            return None
        if first:
            self._guard_restart(t)
        self.kbd(-1)  # validator.md section 1: nothing may interrupt a tap (the depot waits for the loop)
        try:
            return self._tap()
        finally:
            # Only after the tap's bookkeeping: a Ctrl-C let in between tap() and the lines below left a paid
            # tap uncounted in status, unshown, unbeeped and missing from the RTC memo (a resting card then paid
            # again after the tool restarted the app).
            self.kbd(3)

    def _tap(self):
        a0 = _mem_alloc() if _mem_alloc is not None else 0
        r = tap(self.reader, self.sam, self.journal, self.config, self.state, self.clock.now())
        # Heap per tap, drivers included (docs/performance.md): must stay below what the idle gc leaves free.
        self.tap_heap = _mem_alloc() - a0 if _mem_alloc is not None else 0
        self.resting = True
        if self.memo is not None and r.status in (O.PAID, O.PAID_RECOVERED) and self.state.last_card is not None:
            try:
                self.memo.save(self.state.last_card, self.state.last_secs or 0)
            except (OSError, ValueError):
                pass
        self.last = r
        if r.status == O.OOS_SAM:
            # The PSAM failed inside the tap (the card was not charged: 8070 comes before DEBIT). Its driver left
            # it deactivated; the next transceive would cold-reset it without selecting DF 8011 again, so every
            # later 8070 would answer 6985 while the screen says "please tap". Out of service until retry() opens
            # it again (Psam.open selects the DF and reads the terminal afresh).
            self.sam = None
        if r.status in _COUNTED:
            self.counts[r.status] = self.counts.get(r.status, 0) + 1
        if r.status in (O.PAID, O.PAID_RECOVERED) and r.seq:
            self._to_mark = r.seq  # marked shown by idle() once the screen has drawn it
        if r.status != O.IGNORED_REPEAT:
            if self.feedback is not None:
                self.feedback.start(r.status, self.ticks())
            self._show(messages.screen(r))
            self._result_at = self.ticks()
        return r

    def _guard_restart(self, t):
        """The first card seen after a restart: if it is the card paid last (the memo, or the journal after a power
        cut), within the guard, seed the repeat check with it, so tap() answers IGNORED_REPEAT (silent, no record)
        and the loop waits for it to be lifted. A new passenger's card, or the same card much later, pays as usual."""
        m = None
        if self.memo is not None:
            try:
                m = self.memo.load()
            except (OSError, ValueError):
                m = None
        j = self._journal_memo
        if j is not None and (m is None or j[1] > m[1]):
            m = j  # a power cut cleared RTC memory (or it holds an older payment): the journal's newest record
        u = self.state.unshown
        if u is not None and m is not None and u[0].card_no == m[0]:
            return  # never shown: not held silently; tap() shows it paid, without charging, if the card proves it
        now = self.clock.now()[0] if self.clock.valid else None
        if m is None or now is None or not 0 <= now - m[1] <= _RESTART_GUARD_S:
            return
        self.state.paid(m[0], t, now)

    def idle(self):
        """Between taps: erase ahead, refill the software SAM's TTC block, draw, play patterns, collect garbage.
        Never inside a tap (validator.md section 6: the tap path waits for no erase and no collection)."""
        if self.screen is not None:
            self.screen.flush()  # first: the result is drawn before any erase
        if self._to_mark:
            # After the draw: a power cut before this line leaves the payment unshown, and the card's next tap
            # shows it paid instead of charging it again (validator.md section 3). One meta program.
            seq, self._to_mark = self._to_mark, 0
            self.journal.mark_shown(seq)
        self.journal.idle()
        port = getattr(self.sam, "port", None)
        if port is not None and hasattr(port, "top_up"):
            port.top_up()
        if self.feedback is not None:
            self.feedback.poll(self.ticks())
        if not self.resting and self.reason is None:
            if self._result_at is None or ticks_diff(self.ticks(), self._result_at) >= _RESULT_MS:
                self._show([messages.IDLE[0], messages.IDLE[1]])
        if _mem_alloc is None:
            gc.collect()  # CPython (the host tests): no mem_alloc
        elif _mem_alloc() - self._gc_base >= _GC_EVERY:
            gc.collect()
            self._gc_base = _mem_alloc()

    def stats(self):
        """Counts for service.status(): taps by status, time out of service (ms), the current reason."""
        oos = self.oos_ms
        if self.reason is not None and self.oos_since is not None:
            oos += ticks_diff(self.ticks(), self.oos_since)
        return {"counts": dict(self.counts), "oos_ms": oos, "out_of_service": self.reason}
