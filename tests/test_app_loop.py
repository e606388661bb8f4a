"""The tap loop (firmware/app/validator.py) and the service entry points (firmware/app/service.py) on CPython,
with the strict simulated card on a simple reader, the software SAM and a settable clock. The same loop runs on
the virtual board with the real drivers (tests/test_vboard*.py)."""
import binascii
import json

import pytest

from tunion import outcome as O
from tunion import messages
from tunion.config import DEFAULT
from tunion.journal import MemoryJournal
from app.validator import Validator
from app.errlog import ErrorLog
from app import service
from sim.card import make_card, AFTER
from sim.rig import Rig, test_config as make_config
from sim import keys


class Reader:
    """A reader with one slot: place() a card, lift() it."""

    def __init__(self):
        self.card = None
        self.detects = 0

    def place(self, card):
        self.card = card
        card.present()

    def lift(self):
        if self.card is not None:
            self.card.remove()
        self.card = None

    def detect(self):
        self.detects += 1
        return self.card is not None and self.card.in_field

    def present(self):
        return self.card is not None and self.card.in_field

    def transceive(self, apdu):
        return self.card.transceive(apdu)


class Clock:
    def __init__(self, rig, valid=True):
        self.rig = rig
        self.valid = valid

    def now(self):
        return self.rig.now()

    def set_time(self, secs):
        self.rig.secs = secs
        self.valid = True


class Screen:
    def __init__(self):
        self.shown = []

    def show(self, lines):
        self.shown.append(list(lines))

    def flush(self):
        pass


class Feedback:
    def __init__(self):
        self.started = []

    def start(self, status, ms):
        self.started.append(status)

    def poll(self, ms):
        pass


def _app(**kw):
    rig = Rig()
    reader = Reader()
    clock = Clock(rig, kw.pop("valid", True))
    scr, fb = Screen(), Feedback()
    v = Validator(reader, kw.pop("sam", rig.psam), rig.journal, kw.pop("config", rig.config), clock, screen=scr,
                  feedback=fb, log=ErrorLog(), **kw)
    return rig, reader, v, scr, fb


def test_taps_show_and_sound_each_outcome_and_a_resting_card_is_not_tapped_again():
    rig, reader, v, scr, fb = _app()
    a = make_card(balance=5000)
    reader.place(a)
    r = v.step()
    assert r.status == O.PAID and a.debits == 1
    assert scr.shown[-1][0:2] == ["扣款成功", "Paid"] and fb.started == [O.PAID]
    for _ in range(5):  # resting on the reader: never tapped or refused again
        rig.advance(3000)
        assert v.step() is None
    assert a.debits == 1
    reader.lift()
    v.step()
    rig.advance(3000)
    reader.place(a)
    assert v.step().status == O.PAID and a.debits == 2
    poor = make_card(card_no=keys.TEST_CARD_NO + 1, balance=10)
    reader.lift()
    v.step()
    reader.place(poor)
    assert v.step().status == O.REFUSED_INSUFFICIENT and fb.started[-1] == O.REFUSED_INSUFFICIENT


def test_torn_card_then_recovered_through_the_loop():
    rig, reader, v, scr, fb = _app()
    a = make_card(balance=5000)
    a.tear_on_ins(0x54, AFTER)
    reader.place(a)
    assert v.step().status == O.TAP_AGAIN
    reader.lift()
    v.step()
    reader.place(a)
    r = v.step()
    assert r.status == O.PAID_RECOVERED and a.debits == 1 and v.stats()["counts"][O.TAP_AGAIN] == 1


def test_out_of_service_shows_its_reason_never_pays_and_recovers():
    for why, kw in ((O.OOS_CLOCK, {"valid": False}), (O.OOS_CONFIG, {"config": None}), (O.OOS_SAM, {"sam": None})):
        rig, reader, v, scr, fb = _app(**kw)
        fixed = {}

        def retry():
            return fixed.get("config", v.config), fixed.get("sam", v.sam)

        v.retry = retry
        a = make_card(balance=5000)
        reader.place(a)
        for _ in range(3):
            assert v.step() is None
            rig.advance(6000)
        assert a.apdus == 0 and v.reason == why
        assert scr.shown[-1] == list(messages.text(why))
        assert v.stats()["oos_ms"] >= 12000
        if why == O.OOS_CLOCK:
            v.clock.set_time(rig.secs)
        fixed["config"] = make_config()
        fixed["sam"] = rig.psam
        rig.advance(6000)
        r = v.step() or v.step()  # the retry brings the parts back, then the resting card is tapped
        assert r is not None and r.status == O.PAID and a.debits == 1, (why, r)
        assert v.reason is None


def test_a_psam_failing_in_a_tap_is_out_of_service_until_it_is_opened_again():
    # The T=0 driver cold-resets a PSAM to recover a link fault; a reset PSAM has lost its DF selection, so the
    # app must open it again (Psam.open) before the next 8070, not tap on with it (every 8070 would be 6985).
    from tunion.psam import Psam

    rig, reader, v, scr, fb = _app()
    soft = rig.psam.port
    broken = {"on": True}

    class Flaky:
        def transceive(self, apdu):
            if broken["on"] and apdu[1] == 0x70:
                raise OSError(5, "PSAM link fault")
            return soft.transceive(apdu)

    soft.reset()
    v.sam = Psam(Flaky()).open()
    opened = []

    def retry():
        opened.append(broken["on"])
        if broken["on"]:
            return v.config, None
        soft.reset()  # what a cold reset leaves: MF selected
        return v.config, Psam(soft).open()

    v.retry = retry
    a = make_card(balance=5000)
    reader.place(a)
    r = v.step()
    assert r.status == O.OOS_SAM and a.debits == 0 and v.sam is None  # not charged; the PSAM dropped
    n = a.apdus
    assert v.step() is None and a.apdus == n  # resting on the reader: not tapped again
    reader.lift()
    assert v.step() is None and v.reason == O.OOS_SAM and opened == [True]
    assert scr.shown[-1] == list(messages.text(O.OOS_SAM))
    broken["on"] = False
    rig.advance(6000)
    reader.place(a)
    r = v.step() or v.step()  # the retry opens the PSAM again, then the card is tapped
    assert r is not None and r.status == O.PAID and a.debits == 1 and v.reason is None and opened == [True, False]


def test_journal_full_is_out_of_service_until_acknowledged():
    rig, reader, v, scr, fb = _app()
    from tunion.journal import MAX_UNRESOLVED

    v.journal = MemoryJournal(capacity=2 + MAX_UNRESOLVED, terminal=keys.TEST_TERMINAL)
    a = make_card(balance=5000)
    reader.place(a)
    assert v.step().status == O.PAID
    reader.lift()
    v.step()
    rig.advance(3000)
    reader.place(a)
    assert v.step() is None and v.reason == O.OOS_RECORDS_FULL and a.debits == 1
    v.journal.acknowledge(2)
    assert v.step().status == O.PAID and a.debits == 2


def test_the_loop_never_dies_and_logs_what_went_wrong():
    rig, reader, v, scr, fb = _app()

    class Exploding(Reader):
        def detect(self):
            raise RuntimeError("bus fault")

    v.reader = Exploding()
    for _ in range(3):
        assert v.step() is None
    assert v.log.total == 3 and "bus fault" in v.log.entries()[-1][2]
    v.reader = reader
    a = make_card(balance=5000)
    reader.place(a)
    v.step()  # the out-of-service shown by the fault clears on the next good turn
    assert a.debits == 1


def test_kbd_interrupt_is_held_off_during_the_tap_only():
    calls = []
    rig, reader, v, scr, fb = _app(kbd=calls.append)
    reader.place(make_card(balance=5000))
    v.step()
    assert calls == [-1, 3]


def test_a_ctrl_c_waiting_at_the_end_of_a_tap_finds_it_counted_shown_and_sounded():
    """A Ctrl-C held off during a tap is raised when kbd_intr(3) lets it in: by then the tap's bookkeeping is done
    (before, a depot tool's Ctrl-C there left a paid tap out of status and off the screen and the buzzer)."""
    def kbd(n):
        if n == 3:
            raise KeyboardInterrupt
    rig, reader, v, scr, fb = _app(kbd=kbd)
    a = make_card(balance=5000)
    reader.place(a)
    with pytest.raises(KeyboardInterrupt):
        v.step()
    assert a.debits == 1 and v.stats()["counts"] == {O.PAID: 1}
    assert fb.started == [O.PAID] and scr.shown[-1][0:2] == ["扣款成功", "Paid"] and v.resting


def test_service_status_records_ack_clock_and_errors(tmp_path):
    rig, reader, v, scr, fb = _app()
    service.attach(v, board="test", board_id="00", log=v.log)
    a = make_card(balance=5000)
    a.tear_on_ins(0x54, AFTER)
    reader.place(a)
    v.step()
    b = make_card(card_no=keys.TEST_CARD_NO + 9, balance=5000)
    reader.lift()
    v.step()
    reader.place(b)
    assert v.step().status == O.PAID
    st = service.status()
    json.dumps(st)  # JSON-able
    assert st["ok"] and st["records_waiting"] == 4 and st["open_intent"] is None
    assert [u["card"] for u in st["unresolved"]] == [str(a.card_no)] and st["taps"][O.TAP_AGAIN] == 1
    assert service.close_intent() == {"ok": True, "closed": None}
    assert service.ack(4)["ok"] and service.status()["records_waiting"] == 0
    assert service.status()["unresolved"], "acknowledgement never removes an unresolved intent"
    t = rig.secs + 100
    assert service.set_clock(t)["clock"] == t
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    e = service.install("config", str(bad))
    assert e["ok"] is False and e["error"] == "config" and "not valid JSON" in e["detail"]
    assert service.install("keys", str(bad))["error"] == "refused"
    good = tmp_path / "good.json"
    d = dict(DEFAULT)
    good.write_text(json.dumps(d))
    service.attach(v, config_path=str(tmp_path / "config.json"), reload=lambda: (make_config(), v.sam))
    assert service.install("config", str(good)) == {"ok": True, "installed": "config"}
    assert (tmp_path / "config.json").read_text() == json.dumps(d)


def _pull(seq, max_bytes):
    """service.records until end: (raw bytes of every chunk, the nexts), checking each chunk's base64, CRC, len."""
    from tunion.compat import crc32

    chunks, nexts = [], []
    while True:
        r = service.records(seq, max_bytes)
        assert r["ok"] and r["chunks"]
        b = b""
        for c in r["chunks"]:  # base64 pieces of at most 1,020 bytes, each with its CRC, joined in order
            piece = binascii.a2b_base64(c["b64"])
            assert len(piece) == c["len"] <= 1020 and crc32(piece) & 0xFFFFFFFF == c["crc"]
            b += piece
        assert len(b) <= max_bytes
        chunks.append(b)
        nexts.append(r["next"])
        if r["end"]:
            return chunks, nexts
        assert r["next"] > seq
        seq = r["next"]


def test_service_records_are_the_journal_bytes_in_crc_checked_chunks():
    from tunion.flashjournal import FlashJournal
    from tunion.segment import parse_raw
    from sim.nor import NorFlash
    from mpcases.journal_cases import header

    for journal in ("memory", "nor"):
        rig, reader, v, scr, fb = _app()
        if journal == "nor":
            v.journal = FlashJournal(NorFlash(16, 512), header())
            v.journal.prepare()
        service.attach(v, board="test", board_id="00", log=v.log)
        for n in range(12):  # 928 bytes in the journal: one piece of 1,020 at 4096, several chunks at 256
            reader.place(make_card(card_no=keys.TEST_CARD_NO + n, balance=5000))
            assert v.step().status == O.PAID
            reader.lift()
            v.step()
        want = [bytes(r.encode()) for r in v.journal.read_from(1, 1000)]
        assert len(want) == 24
        for max_bytes in (4096, 256):
            chunks, nexts = _pull(1, max_bytes)
            got = [bytes(r.encode()) for c in chunks for f, recs, bad in parse_raw(c) for r in recs]
            assert got == want and nexts[-1] == 25
            assert (len(chunks) > 1) == (max_bytes == 256)
        raw, nxt, end = v.journal.read_raw(1, 4096)
        raw = bytes(raw)
        assert [c["b64"] for c in service.records(1)["chunks"]] == [
            binascii.b2a_base64(raw[a:a + 1020]).decode().strip() for a in range(0, len(raw), 1020)]
        assert service.ack(20)["ok"]
        r = service.records(1)
        recs = [x for f, rs, bad in parse_raw(b"".join(binascii.a2b_base64(c["b64"]) for c in r["chunks"]))
                for x in rs]
        assert [x.seq for x in recs] == [21, 22, 23, 24] and r["next"] == 25 and r["end"]
        assert service.records(1, 100)["error"] == "bad_argument"


def test_service_records_sends_a_big_chunk_in_pieces_that_join_to_the_journal_bytes():
    """A 4 KB chunk goes as base64 pieces of 1,020 bytes (service._PIECE: no 5.5 KB string on a fragmented heap),
    each with its CRC; joined in order they are read_raw's bytes."""
    rig, reader, v, scr, fb = _app()
    service.attach(v, board="test", board_id="00", log=v.log)
    for n in range(60):
        reader.place(make_card(card_no=keys.TEST_CARD_NO + n, balance=5000))
        assert v.step().status == O.PAID
        reader.lift()
        v.step()
    raw = bytes(v.journal.read_raw(1, 4096)[0])
    r = service.records(1, 4096)
    assert len(raw) > 3 * 1020 and len(r["chunks"]) == (len(raw) + 1019) // 1020
    assert [c["len"] for c in r["chunks"][:-1]] == [1020] * (len(r["chunks"]) - 1)
    assert b"".join(binascii.a2b_base64(c["b64"]) for c in r["chunks"]) == raw


class _Memo:
    """RTC memory as drivers.rtc.RtcMemo keeps it: over a restart of the app, not over a power cut."""

    def __init__(self):
        self.v = None

    def save(self, card_no, secs):
        self.v = (card_no, secs)

    def load(self):
        return self.v


def _held_until_lifted(rig, reader, v, card):
    """The card that paid once rests on the reader of a restarted validator `v`: silent turns, not charged again,
    nothing written; lifted and tapped again, it pays for a new ride."""
    n = len(rig.records())
    for _ in range(4):
        r = v.step()
        assert r is None or r.status == O.IGNORED_REPEAT
        rig.advance(2000)
    assert card.debits == 1 and card.balance == 5000 - 200 and len(rig.records()) == n  # not charged, nothing written
    reader.lift()
    v.step()
    rig.advance(3000)
    reader.place(card)
    assert v.step().status == O.PAID and card.debits == 2  # lifted and tapped again: a new ride


def test_a_card_resting_through_a_restart_is_not_charged_again_but_a_new_tap_pays():
    """The depot tool restarts the app (a soft reset) while the last payer's card rests on the reader: the
    repeat check's RAM is gone, the memo in RTC memory is not. The same card is not charged again (silent, no
    record) until lifted; after that it pays; another card at the first poll pays at once."""
    rig, reader, v, scr, fb = _app(memo=_Memo())
    memo = v.memo
    a = make_card(balance=5000)
    reader.place(a)
    assert v.step().status == O.PAID and a.debits == 1 and memo.v[0] == a.card_no
    v.step()  # the card rests; idle draws the result and marks it shown
    rig.advance(40_000)  # the depot pulls, then restarts the app: a new Validator, the same journal and memo
    v2 = Validator(reader, rig.psam, rig.journal, rig.config, v.clock, screen=scr, feedback=fb, log=ErrorLog(),
                   memo=memo)
    _held_until_lifted(rig, reader, v2, a)
    # without the memo (a power cut loses RTC memory) a resting card is a new tap, as before
    reader.lift()
    v3 = Validator(reader, rig.psam, rig.journal, rig.config, v.clock, screen=scr, feedback=fb, log=ErrorLog(),
                   memo=_Memo())
    b = make_card(card_no=keys.TEST_CARD_NO + 77, balance=5000)
    reader.place(b)
    assert v3.step().status == O.PAID and b.debits == 1


def _power_cut(rig, v, scr, fb, reader):
    """Power off and on: RAM and RTC memory are gone (a fresh, empty memo), the journal's flash is not."""
    return Validator(reader, rig.psam, rig.journal, rig.config, v.clock, screen=scr, feedback=fb, log=ErrorLog(),
                     memo=_Memo())


def test_a_card_resting_through_a_power_cut_is_held_by_the_journals_last_payment():
    """A power cut clears RTC memory; the journal's newest record still names the card that paid last. Resting
    on the reader since, it is not charged again until lifted; another passenger's card pays at once; after the
    guard (15 min) the same card at the first poll pays. Card by card against its own debits."""
    rig, reader, v, scr, fb = _app(memo=_Memo())
    a = make_card(balance=5000)
    reader.place(a)
    assert v.step().status == O.PAID and a.debits == 1
    v.step()  # idle: drawn and marked shown
    rig.advance(30_000)
    v2 = _power_cut(rig, v, scr, fb, reader)
    _held_until_lifted(rig, reader, v2, a)
    reader.lift()
    b = make_card(card_no=keys.TEST_CARD_NO + 78, balance=5000)
    reader.place(b)
    v3 = _power_cut(rig, v, scr, fb, reader)
    assert v3.step().status == O.PAID and b.debits == 1  # not the card that paid last: charged
    rig.advance(901_000)
    v4 = _power_cut(rig, v, scr, fb, reader)
    assert v4.step().status == O.PAID and b.debits == 2  # resting 15 min past its payment: a new tap, as before


def test_a_card_torn_before_a_power_cut_is_recovered_not_held():
    """A power cut right after a torn DEBIT (the intent left open), the card resting on the reader: the restart's
    guard does not stand between the card and its recovery; tap() recovers the debit the card proves
    (PAID_RECOVERED) and charges nothing more."""
    rig, reader, v, scr, fb = _app(memo=_Memo())
    a = make_card(balance=5000)
    reader.place(a)
    assert v.step().status == O.PAID and a.debits == 1
    reader.lift()
    v.step()
    rig.advance(5000)
    a.tear_on_ins(0x54, AFTER)  # DEBIT happens on the card, its answer is lost
    reader.place(a)
    assert v.step().status == O.TAP_AGAIN and a.debits == 2
    rig.advance(1000)
    reader.place(a)  # back in the field, resting there while the power goes off and on
    v2 = _power_cut(rig, v, scr, fb, reader)
    r = v2.step()
    assert r.status == O.PAID_RECOVERED and a.debits == 2 and a.balance == 5000 - 400


def test_a_payment_the_power_cut_kept_off_the_screen_is_shown_when_its_card_returns_not_charged():
    """The power goes after the payment's record is durable and before idle() drew it and marked it shown
    (journal.mark_shown): the passenger saw nothing. That card's next tap, inside the recovery window and with
    its counter and balance still those the payment left, is PAID_RECOVERED and charges nothing; a card that paid
    elsewhere in between (its counter moved) pays as usual. Card by card against its own debits."""
    for resting in (True, False):
        rig, reader, v, scr, fb = _app(memo=_Memo())
        a = make_card(balance=5000)
        reader.place(a)
        assert v.step().status == O.PAID and a.debits == 1  # no idle after it: the power went first
        n = len(rig.records())
        if not resting:
            reader.lift()
            rig.advance(20_000)
            reader.place(a)
        v2 = _power_cut(rig, v, scr, fb, reader)
        r = v2.step()
        assert r.status == O.PAID_RECOVERED and r.fare == 200 and r.balance == 4800, r
        assert a.debits == 1 and a.balance == 4800 and len(rig.records()) == n  # not charged, nothing written
        assert scr.shown[-1][1] == messages.screen(r)[1] and fb.started[-1] == O.PAID_RECOVERED
        v2.step()  # drawn: marked shown now
        assert rig.journal.shown() == r.seq
        reader.lift()
        v2.step()
        rig.advance(3000)
        reader.place(a)
        assert v2.step().status == O.PAID and a.debits == 2  # the next tap is a new ride


def test_a_card_that_moved_on_since_its_unshown_payment_pays():
    rig, reader, v, scr, fb = _app(memo=_Memo())
    a = make_card(balance=5000)
    reader.place(a)
    assert v.step().status == O.PAID and a.debits == 1
    reader.lift()
    other = Rig(terminal=b"\x00\x00\x00\x09\x99\x99")  # another validator: the card pays there, moves on
    a.present()
    assert other.tap(a).status == O.PAID and a.debits == 2
    a.remove()
    v2 = _power_cut(rig, v, scr, fb, reader)
    rig.advance(5000)
    reader.place(a)
    assert v2.step().status == O.PAID and a.debits == 3 and v2.state.unshown is None
