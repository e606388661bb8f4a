"""The hands and eyes the app tests share on the virtual board: event-driven waits, the screen and the buzzer and
LEDs as a rider sees and hears them, the depot's journal read through the real mpremote or from flash.bin.

    b = app_board(folder, config=city_config())   # the seeded manifest, APP_HEAP, a set DS3231
    w = Watch(b); scr = ScreenLog(b); fb = Beeper(b)   # before b.start(): they wrap the controller's hooks
    with b:
        w.until(lambda: w.feeds > 0, "the loop's first turn")      # woken by every request the board makes
        b.place_card(card); status, ram = scr.next_status(w)      # the status the panel shows, from its GDDRAM
        t = transport(b); recs = read_records(t); resume_loop(t)  # raw REPL; the loop goes on afterwards

Waits are woken by the board's own requests to the controller (each loop turn's watchdog feed, every I2C, pin and
PWM request notifies a condition), never by sleeping a fixed time: a wait ends as soon as its condition holds,
and its timeout is only a guard against a hang.
"""
import base64
import binascii
import json
import threading
import time
from datetime import datetime

from tools import manifest
from vboard.chips import _pins
from vboard.virtual import DEFAULT_HEAP

APP_HEAP = DEFAULT_HEAP  # the 64-bit equivalent of the ESP32's ~100 KB for a frozen app (vboard/virtual.py)
RTC_AT = datetime(2026, 12, 1, 8, 0, 0)  # after tunion.version.BUILD_DATE: a set clock
INLIST = 0x4A  # PN532 InListPassiveTarget (UM0701-02 7.3.5): one per poll of the loop
GUARD_S = 30.0  # a wait's timeout: only a hang reaches it (each wait ends when its event happens)
PINS = _pins()
# Requests that wake no wait: the UART and clock traffic of a tap (thousands a tap). Waking the test thread on
# each would make it compete for the GIL with the controller thread in the middle of a T=0 exchange.
_QUIET = (b"W", b"A", b"R", b"T", b"S")


def city_config(**changes):
    """docs/configuration.md's example set for sim.keys' test city (sim.rig.test_config as a JSON-able dict)."""
    from sim import keys
    from tunion.config import DEFAULT

    d = json.loads(json.dumps(DEFAULT))
    d["city"] = keys.TEST_CITY.hex()
    d["local_issuers"] = [keys.TEST_ISSUER.hex()]
    d["acquirer"] = keys.TEST_ISSUER.hex()
    d.update(changes)
    return d


def app_files(folder, config=None, denylist=None, pins_changes=None, extra=()):
    """(src, board path) pairs: the esp32-generic manifest, /config.json (a dict, raw text, or None for none),
    /denylist.bin from card numbers, and pins.py with text replacements (old, new) applied."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = list(manifest.board_files("esp32-generic"))
    if pins_changes:
        src = [s for s, d in files if d == "/lib/pins.py"][0]
        text = Path(src).read_text()
        for old, new in pins_changes:
            if old not in text:
                raise ValueError("pins.py has no %r" % old)
            text = text.replace(old, new)
        p = folder / "pins.py"
        p.write_text(text)
        files = [(s, d) for s, d in files if d != "/lib/pins.py"] + [(p, "/lib/pins.py")]
    if config is not None:
        cfg = folder / "config.json"
        cfg.write_text(config if isinstance(config, str) else json.dumps(config))
        files.append((cfg, "/config.json"))
    if denylist is not None:
        from tunion.denylist import encode

        dl = folder / "denylist.bin"
        dl.write_bytes(bytes(encode(sorted(denylist), 1)))
        files.append((dl, "/denylist.bin"))
    return files + list(extra)


def app_board(folder, rtc=RTC_AT, **kw):
    """A Board (not started) with the app's files and APP_HEAP; keywords as app_files."""
    from pathlib import Path

    from vboard import Board

    folder = Path(folder)
    return Board(folder / "board", files=app_files(folder, **kw), rtc=rtc, heap=APP_HEAP)


class Watch:
    """Counts the board's requests (the loop's watchdog feeds above all) and wakes waits on each one."""

    def __init__(self, board):
        self.board = board
        self.cv = threading.Condition()
        self.feeds = 0
        self.requests = 0
        self.jumps = []  # clock jumps (us) to make at the next watchdog feeds, one a feed
        self._hold = threading.Event()
        self._held = threading.Event()
        self._release = threading.Event()
        ctl = board.controller
        orig = ctl.handle

        def handle(body):
            op = body[:1]
            if op == b"F" and self._hold.is_set():
                self._held.set()  # the board waits for this feed's answer: Ctrl-C now lands here
                end = time.monotonic() + GUARD_S
                while not self._release.is_set() and not board.interrupt.pending() and time.monotonic() < end:
                    self._release.wait(0.005)  # this answer carries the Ctrl-C (relay.PendingInterrupt)
            out = orig(body)
            if op == b"F" and self.jumps:
                # Right after the feed, before the board has its answer: the top of a loop turn, no exchange in
                # flight, and a whole watchdog period ahead.
                board.advance(us=self.jumps.pop(0))
            self.requests += 1
            if op not in _QUIET:
                with self.cv:
                    if op == b"F":
                        self.feeds += 1
                    self.cv.notify_all()
            return out

        ctl.handle = handle

    def until(self, cond, what, timeout=GUARD_S):
        """Return cond()'s value once it is true; woken by every board request (and every 0.2 s, for host-side
        conditions such as the console output). AssertionError after `timeout` seconds."""
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                v = cond()
                if v:
                    return v
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
                self.cv.wait(min(left, 0.2))

    def interrupt(self, open_transport):
        """Open the depot's connection (its Ctrl-C) while the loop waits at the top of a turn, in its watchdog
        feed, whose answer then carries the Ctrl-C: never inside a tap (Ctrl-C is held off there), so a test
        knows where the loop stopped. Returns what open_transport() did."""
        self._release.clear()
        self._held.clear()
        self._hold.set()
        try:
            self._held.wait(GUARD_S) or _fail("the loop's next watchdog feed")
            self._hold.clear()
            return open_transport()
        finally:
            self._hold.clear()
            self._release.set()

    def turns(self, n=1):
        """Wait for n more turns of the loop (each step() feeds the watchdog first)."""
        f = self.feeds
        self.until(lambda: self.feeds >= f + n, "%d more turns of the loop" % n)

    def advance(self, seconds, step=4.0, until=None):
        """Move the simulated clock on by `seconds`, in jumps of at most `step` seconds (under the 8 s watchdog)
        made at the top of a loop turn (at its watchdog feed), so that no jump lands inside a PN532 or PSAM
        exchange and times its deadline out: a board that keeps polling through a quiet minute. Stops early once
        until() holds. Needs the loop running."""
        left = int(seconds * 1_000_000)
        step_us = int(step * 1_000_000)
        while left > 0:
            if until is not None and until():
                return
            d = min(step_us, left)
            with self.cv:
                self.jumps.append(d)
            self.until(lambda: not self.jumps, "a turn of the loop to move the clock at")
            left -= d


def wait_real(cond, timeout=20.0, what="condition"):
    """Poll cond() in real time (for what the host side does: another process, a thread); the seconds it took.
    Waits for the board itself go through Watch.until."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)
    return time.monotonic() - t0


def polls(reader):
    return reader.chip.commands.get(INLIST, 0)


def more_polls(w, reader, n=3):
    p = polls(reader)
    w.until(lambda: polls(reader) >= p + n, "%d more reader polls" % n)


# ---- the screen ---------------------------------------------------------------------------------------------

def panel_ram(lines):
    """The GDDRAM bytes the board's drivers.screen leaves in the panel for these lines (same renderer, pure
    Python path: tests/mpcases/feedback_cases.py shows framebuf's path draws the same pixels)."""
    from drivers.screen import hlsb_to_pages
    from tunion.display import Frame, show

    f = Frame(128, 64)
    show(f, list(lines))
    out = bytearray(128 * 8)
    hlsb_to_pages(f.buf, out)
    return bytes(out)


def _status_table():
    from tunion import messages
    from tunion import outcome as O

    table = {panel_ram(messages.IDLE)[:512]: "IDLE"}
    for st in O.ALL:
        try:
            table[panel_ram(messages.text(st))[:512]] = st
        except KeyError:
            pass
    return table


class ScreenLog:
    """Every frame the SSD1306 sink held after a write that changed it: [(sim us, GDDRAM bytes, display on)].
    The top two 16 px rows (pages 0-3) say the status; the rest the amounts."""

    _table = None

    def __init__(self, board):
        self.oled = board.oled
        self.clock = board.clock
        self.frames = []
        if ScreenLog._table is None:
            ScreenLog._table = _status_table()
        orig = self.oled.write
        last = [None]

        def write(data, t_us, stop=True):
            r = orig(data, t_us, stop)
            ram = bytes(self.oled.ram)
            if ram != last[0] or (self.frames and self.frames[-1][2] != self.oled.on):
                last[0] = ram
                self.frames.append((self.clock.now_us(), ram, self.oled.on))
            return r

        self.oled.write = write

    @staticmethod
    def status_of(ram):
        """The outcome status (or "IDLE") whose two lines the top half shows; None for anything else."""
        return ScreenLog._table.get(bytes(ram[:512]))

    def shown(self):
        """(status, ram) of the panel now: status None while a draw is half-way or the panel is off."""
        if not self.frames or not self.frames[-1][2]:
            return None, None
        ram = self.frames[-1][1]
        return self.status_of(ram), ram

    def wait_status(self, w, since, what, want=None, timeout=GUARD_S):
        """The first whole status frame after frame index `since` (not IDLE unless want says so): (status, ram,
        index). `want`: a status or a tuple of statuses to wait for."""
        found = []

        def cond():
            for i in range(max(since, 0), len(self.frames)):
                t, ram, on = self.frames[i]
                st = self.status_of(ram) if on else None
                if st is None:
                    continue
                if (want is None and st != "IDLE") or (want is not None and st in (want if isinstance(want, tuple) else (want,))):
                    found.append((st, ram, i))
                    return True
            return False

        w.until(cond, what, timeout)
        return found[0]

    def text(self, ram):
        """The frame as '#'/'.' rows (for failure messages)."""
        rows = []
        for y in range(64):
            rows.append("".join("#" if ram[(y >> 3) * 128 + x] >> (y & 7) & 1 else "." for x in range(128)))
        return "\n".join(rows)


# ---- the buzzer and LEDs ------------------------------------------------------------------------------------

class Beeper:
    """What the buzzer (PWM duty) and the two LEDs did, in simulated time: events [(us, what, on)], what one of
    "buzzer", "green", "red". Wired through the controller's pin and PWM hooks (the ones the PSAM uses)."""

    def __init__(self, board):
        self.clock = board.clock
        self.events = []
        self.state = {"buzzer": False, "green": False, "red": False}
        ctl = board.controller
        names = {PINS.PINS["led_green"][0]: "green", PINS.PINS["led_red"][0]: "red"}
        for gpio, name in names.items():
            ctl.pin_hooks[gpio] = (lambda n: lambda level: self._set(n, bool(level)))(name)
        ctl.pwm_hooks[PINS.PINS["buzzer"][0]] = lambda freq, duty: self._set("buzzer", bool(duty) and freq > 0)

    def _set(self, what, on):
        if self.state[what] != on:
            self.state[what] = on
            self.events.append((self.clock.now_us(), what, on))

    def quiet(self, steady_red=False):
        s = self.state
        return not s["buzzer"] and not s["green"] and s["red"] == steady_red

    def beeps(self, since):
        """[(on us, off us or None)] of the buzzer from event index `since` on."""
        out = []
        for t, what, on in self.events[since:]:
            if what != "buzzer":
                continue
            if on:
                out.append([t, None])
            elif out and out[-1][1] is None:
                out[-1][1] = t
        return [tuple(x) for x in out]

    def lit(self, since):
        return set(what for t, what, on in self.events[since:] if what != "buzzer" and on)


_SLACK_MS = 10


def check_feedback(fb, since, status):
    """The buzzer pattern and LED of `status` (tunion.messages) played from event index `since`: one beep per
    "on" step, each at least as long as the pattern says (a late poll only lengthens a step; less _SLACK_MS of host
    latency in the stamps), the right LED."""
    from tunion import messages

    name = messages.beep(status)
    pattern = messages.BEEPS[name]
    got = fb.beeps(since)
    want_on = pattern[0::2]
    assert len(got) == len(want_on), "%s: %d beeps, the %s pattern has %d (%r)" % (status, len(got), name,
                                                                               len(want_on), got)
    for (a, z), ms in zip(got, want_on):
        # stamped when the controller saw the PWM request: the board decided a few ms earlier under load
        assert z is not None and (z - a) // 1000 >= ms - _SLACK_MS, "%s: a beep of %s ms, the pattern says %d" % (
            status, None if z is None else (z - a) // 1000, ms)
    want_led = {"accepted": {"green"}, "refused": {"red"}, "tap_again": {"red"}, "out_of_service": {"red"},
                "silent": set()}[name]
    assert fb.lit(since) == want_led, "%s: LEDs lit %r, want %r" % (status, fb.lit(since), want_led)


# ---- the depot's side: mpremote ------------------------------------------------------------------------------

def transport(board, watch=None):
    """The real mpremote SerialTransport in the raw REPL; its Ctrl-C stops main.py's loop between taps (with a
    Watch: at the top of a loop turn, see Watch.interrupt)."""
    from mpremote.transport_serial import SerialTransport

    def open_it():
        t = SerialTransport(board.port, baudrate=115200, timeout=2)
        t.enter_raw_repl(soft_reset=False)
        return t

    return watch.interrupt(open_it) if watch is not None else open_it()


def _fail(what):
    raise AssertionError("timed out after %.0f s waiting for %s" % (GUARD_S, what))


def service(t, call):
    """app.service.<call> through mpremote's eval, after a garbage collection (as host_tools.link does: the loop
    was interrupted with its garbage uncollected, and a 4 KB chunk needs a block of the fragmented heap)."""
    # json.dump to the stream (not eval's repr): the board writes the answer piecewise, no 5.6 KB string
    out = t.exec("import gc, json, sys, app.service as _s\ngc.collect()\njson.dump(_s.%s, sys.stdout)" % call)
    return json.loads(out)


def resume_loop(t):
    """Run the running Validator's loop again (main.py's `while True: v.step()`) and let go of the port: the
    board goes on tapping as it did before the depot interrupted it."""
    t.exec_raw_no_follow("import app.service as _s\nwhile True:\n    _s._V.step()\n")
    t.close()


def read_records(t, start=1):
    """Every record the board's journal returns from `start` on, through service.records() (4 KB base64 chunks,
    CRC-checked, parsed with tunion.segment.parse_raw): ({seq: Record}, [raw chunk bytes])."""
    from tunion.segment import parse_raw

    recs, raws = {}, []
    seq = start
    while True:
        r = service(t, "records(%d, 4096)" % seq)
        assert r["ok"], r
        raw = b""
        for c in r["chunks"]:  # base64 pieces (service.records), each CRC-checked, joined before parsing
            piece = base64.b64decode(c["b64"])
            assert binascii.crc32(piece) == c["crc"] and len(piece) == c["len"], "chunk CRC or length wrong"
            raw += piece
        raws.append(raw)
        for block in parse_raw(raw):
            assert not block[2], "damaged bytes in the journal: %r" % (block[2],)
            for rec in block[1]:
                assert rec.seq not in recs or recs[rec.seq].encode() == rec.encode(), rec
                recs[rec.seq] = rec
        if r["end"] or r["next"] <= seq:
            return recs, raws
        seq = r["next"]


# ---- the journal partition in flash.bin (board off) ----------------------------------------------------------

class PartitionImage:
    """The `journal` partition of a board's flash.bin as a NOR block device for tunion.flashjournal on the host.
    write=False reads a copy (nothing reaches the file); write=True programs the file as the board would."""

    def __init__(self, board, label="journal", write=False):
        rows = [r for r in board.partitions if r[4] == label]
        if not rows:
            raise ValueError("no %s partition" % label)
        self.off, self.size = rows[0][2], rows[0][3]
        self.path = board.flash
        self.write = write
        with open(self.path, "rb") as f:
            f.seek(self.off)
            self.mem = bytearray(f.read(self.size))

    def readblocks(self, block, buf, offset=0):
        a = block * 4096 + offset
        buf[:] = self.mem[a:a + len(buf)]

    def writeblocks(self, block, buf, offset=0):
        a = block * 4096 + offset
        for i in range(len(buf)):
            self.mem[a + i] &= buf[i]

    def ioctl(self, op, arg=0):
        if op == 4:
            return self.size // 4096
        if op == 5:
            return 4096
        if op == 6:
            self.mem[arg * 4096:(arg + 1) * 4096] = b"\xff" * 4096
        return 0

    def save(self):
        if not self.write:
            raise ValueError("a read-only image")
        with open(self.path, "r+b") as f:
            f.seek(self.off)
            f.write(self.mem)


def flash_records(board):
    """{seq: Record} the journal in flash.bin returns (the board must be off), read by the core's FlashJournal."""
    from tunion.flashjournal import FlashJournal
    from tunion.segment import SegmentHeader

    j = FlashJournal(PartitionImage(board), SegmentHeader(b"host", b"", b"", "", "", 0))
    return {r.seq: r for r in j.read_from(0, 1 << 30)}
