"""The clock, screen and feedback drivers on simulated chips, under CPython and under MicroPython.

    case_screen_paid_matches_core_render()   # the panel shows what tunion.display draws, pixel for pixel

Plain case_* functions (tests/mp/run.mjs --cases). The board stand-ins (machine.RTC, PWM, Pin) live here too, and
tests/test_drivers_feedback.py imports them. Under MicroPython the screen converts frames with the real framebuf
(the WebAssembly build has it); on CPython with the driver's pure-Python conversion; the pixels must agree.
"""
from drivers.feedback import HOLD_MS, Feedback
from drivers.rtc import EARLIEST, Clock, DS3231, weekday
from drivers.screen import Screen, hlsb_to_pages
from sim.ds3231 import DS3231Sim
from sim.i2cbus import I2CBus
from sim.ssd1306 import SSD1306Sim
from tunion import messages
from tunion import outcome as O
from tunion.clock import civil, secs_from_civil
from tunion.display import Frame, show

try:
    import framebuf  # MicroPython (the WebAssembly build included)
except ImportError:  # CPython: the driver's own conversion
    framebuf = None

T0 = secs_from_civil(2026, 12, 2, 20, 5, 7)  # a Wednesday


class MachineRTC:
    """machine.RTC as on the ESP32 port: datetime(8-tuple) sets (the weekday given is ignored), datetime() reads;
    it counts on the host-driven `ms` clock it shares with the test."""

    def __init__(self, clock):
        self.clock = clock  # object with .ms
        self._base = 946684800  # the ESP32 RTC after a power cut: 2000-01-01 00:00:00
        self._base_ms = clock.ms
        self.sets = 0

    def datetime(self, t=None):
        if t is None:
            secs = self._base + (self.clock.ms - self._base_ms) // 1000
            y, mo, d, h, mi, s = civil(secs)
            return (y, mo, d, weekday(secs), h, mi, s, 0)
        if len(t) != 8:
            raise TypeError("datetime tuple needs 8 fields")
        y, mo, d, _wd, h, mi, s, _sub = t
        self._base = secs_from_civil(y, mo, d, h, mi, s)
        self._base_ms = self.clock.ms
        self.sets += 1
        return None


class Ms:
    def __init__(self, ms=0):
        self.ms = ms

    def ticks(self):
        return self.ms


class PWMRec:
    """machine.PWM: freq() and duty_u16(), each change recorded with the time it happened."""

    def __init__(self, clock):
        self.clock = clock
        self.f = None
        self.duty = None
        self.log = []

    def freq(self, f=None):
        if f is None:
            return self.f
        self.f = f
        return None

    def duty_u16(self, d=None):
        if d is None:
            return self.duty
        if not 0 <= d <= 65535:
            raise ValueError("duty_u16 out of range")
        if d != self.duty:
            self.log.append((self.clock.ms, d))
        self.duty = d
        return None


class PinRec:
    def __init__(self):
        self.v = None

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = 1 if v else 0
        return None


class Result:
    def __init__(self, status, fare=None, balance=None):
        self.status = status
        self.fare = fare
        self.balance = balance


def board():
    """A bus with a DS3231 and an SSD1306 on it, sharing one host clock."""
    ms = Ms(0)
    bus = I2CBus()
    ds = DS3231Sim()
    oled = SSD1306Sim()
    bus.attach(0x68, ds)
    bus.attach(0x3C, oled)
    return ms, bus, ds, oled


def _advance(ms, ds, n):
    ms.ms += n
    ds.advance(n)


def case_rtc_set_and_read_back():
    ms, bus, ds, _ = board()
    rtc = DS3231(bus)
    rtc.set(T0)
    assert ds.time() == T0 and not ds.osf
    # The register bytes the chip holds, against golden BCD: 07 s, 05 min, 20 h, Wednesday = 3, 02, 12, 26.
    assert bytes(bus.readfrom_mem(0x68, 0, 7)) == bytes((0x07, 0x05, 0x20, 3, 0x02, 0x12, 0x26))
    assert rtc.read() == T0
    _advance(ms, ds, 61500)
    assert rtc.read() == T0 + 61
    assert civil(rtc.read()) == (2026, 12, 2, 20, 6, 8)


def case_rtc_osf_means_unknown():
    _, bus, ds, _ = board()
    rtc = DS3231(bus)
    assert rtc.read() is None and rtc.lost_power()  # fresh from the factory: OSF set
    rtc.set(T0)
    assert rtc.read() == T0 and not rtc.lost_power()
    ds.stop_oscillator()
    assert rtc.read() is None and rtc.lost_power()


def case_clock_without_rtc_invalid_until_set():
    ms = Ms(5000)
    clock = Clock(MachineRTC(ms), None, ms.ticks)
    assert not clock.boot() and not clock.valid
    assert clock.now()[0] < EARLIEST  # 2000-01-01: what the ESP32's RTC holds after a power cut
    clock.set_time(T0)
    assert clock.valid and clock.fault is None
    ms.ms += 2000
    assert clock.now() == (T0 + 2, 7000)


def case_clock_copies_ds3231_into_machine_rtc():
    ms, bus, ds, _ = board()
    ds.set_time(T0)
    mrtc = MachineRTC(ms)
    clock = Clock(mrtc, DS3231(bus), ms.ticks)
    assert clock.boot() and clock.valid and mrtc.sets == 1
    assert mrtc.datetime() == (2026, 12, 2, 2, 20, 5, 7, 0)  # weekday 2: Wednesday, Monday = 0
    assert clock.now() == (T0, 0)


def _screen(bus):
    scr = Screen(bus, framebuf=framebuf)
    scr.init()
    return scr


def _same_as_core(oled, lines):
    f = Frame()
    show(f, lines)
    for y in range(64):
        for x in range(128):
            if f.pixel(x, y) != oled.pixel(x, y):
                return False
    return True


def case_screen_paid_matches_core_render():
    _, bus, _, oled = board()
    scr = _screen(bus)
    r = Result(O.PAID, fare=200, balance=4800)
    scr.result(r)
    assert scr.pending()
    scr.draw()
    assert not scr.pending()
    assert _same_as_core(oled, messages.screen(r))
    assert oled.on and oled.charge_pump


def case_screen_sends_only_changed_pages():
    _, bus, _, oled = board()
    scr = _screen(bus)
    scr.result(Result(O.PAID, fare=200, balance=4800))
    scr.draw()
    oled.reset_counts()
    scr.result(Result(O.PAID, fare=200, balance=4600))  # only the balance row (pages 6 and 7) changes
    scr.draw()
    assert scr.pages_sent == 8 + 2
    assert 0 < oled.data_bytes < 2 * 128
    assert _same_as_core(oled, messages.screen(Result(O.PAID, fare=200, balance=4600)))
    oled.reset_counts()
    scr.result(Result(O.PAID, fare=200, balance=4600))
    assert not scr.pending()
    scr.draw()
    assert oled.transfers == 0


def case_framebuf_conversion_matches_pure_python():
    if framebuf is None:
        return  # CPython has no framebuf: the pure conversion is the only one there
    f = Frame()
    show(f, messages.screen(Result(O.REFUSED_INSUFFICIENT, balance=35)))
    pure = bytearray(1024)
    hlsb_to_pages(f.buf, pure)
    fast = bytearray(1024)
    dst = framebuf.FrameBuffer(fast, 128, 64, framebuf.MONO_VLSB)
    dst.blit(framebuf.FrameBuffer(f.buf, 128, 64, framebuf.MONO_HLSB), 0, 0)
    assert fast == pure and any(pure)


def _play(status):
    """Run a pattern with polls every 5 ms; returns the buzzer's (ms, duty) log and the LED pins."""
    ms = Ms(1000)
    pwm, g, r = PWMRec(ms), PinRec(), PinRec()
    fb = Feedback(pwm, g, r)
    pwm.log = []
    fb.start(status, ms.ms)
    lit = (g.v, r.v)
    while fb.poll(ms.ms):
        ms.ms += 5
    return pwm.log, lit, (g.v, r.v), ms.ms - 1000


def _durations(log):
    return tuple(log[i + 1][0] - log[i][0] for i in range(len(log) - 1))


def case_feedback_patterns_step():
    log, lit, after, total = _play(O.PAID)
    assert _durations(log) == messages.BEEPS[messages.ACCEPTED] and lit == (1, 0) and after == (0, 0)
    assert total == 120 + HOLD_MS
    log, lit, after, _ = _play(O.REFUSED_EXPIRED)
    assert _durations(log) == messages.BEEPS[messages.REFUSED] and lit == (0, 1) and after == (0, 0)
    log, lit, after, _ = _play(O.OOS_CLOCK)
    assert _durations(log) == (800,) and lit == (0, 1) and after == (0, 1)  # red stays: still out of service
    log, lit, _, total = _play(O.IGNORED_REPEAT)
    assert log == [] and lit == (0, 0) and total == 0
