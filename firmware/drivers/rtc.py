"""The wall clock: a DS3231 on I2C (board-only) and the `Clock` the app reads `now` from.

    clock = make_clock(i2c)          # i2c = machine.I2C(0, scl=Pin(22), sda=Pin(21), freq=400000), or None
    clock.boot()                     # at every boot: DS3231 -> machine.RTC; valid False = OOS_CLOCK
    secs, ticks = clock.now()        # (CST seconds since 1970, time.ticks_ms()): docs/design.md "Time"
    clock.set_time(secs)             # the depot's set_clock: DS3231 (OSF cleared) and machine.RTC

    rtc = DS3231(i2c); rtc.read()    # CST seconds, or None when the oscillator-stop flag says time is unknown

A small driver of ours rather than PyPI `urtc` 1.0 (MIT, 2016, the last release). urtc imports on today's
MicroPython (the `ucollections`/`utime` aliases remain) but: its DS3231.datetime(t) clears OSF *before* writing
the time, so an I2C fault in the time write leaves garbage trusted as set (ours writes the time first and clears
OSF last); it reads the month and hour registers unmasked, so the century bit or a chip left in 12-hour mode
gives wrong fields silently; `seconds2tuple` ignores its argument, and `alarm_time` calls `redfrom_mem_into`;
every read allocates a buffer and a namedtuple. We need four registers' worth of it, and the civil conversion is
the core's (tunion.clock), so a pinned dependency would add deploy weight and no tested code.
`adafruit-circuitpython-ds3231` (maintained) needs CircuitPython's busio/bus_device/adafruit_register, not
machine.I2C.

Datasheet (Maxim DS3231, rev. 10): 00h-06h seconds, minutes, hours (bit 6 = 12-hour, bit 5 = PM), day (1-7),
date, month (bit 7 = century), year, BCD; 0Eh control (bit 7 EOSC stops the oscillator on battery); 0Fh status
(bit 7 OSF, set whenever the oscillator stopped, cleared only by writing 0). A burst read is taken from a
secondary buffer, so one read of 00h-0Fh never tears across a rollover.

machine.RTC keeps time across soft and watchdog resets, not across a power cut (notes/board.md), hence the copy at
every boot. validator.md s.5: a board without an RTC refuses payments (OOS_CLOCK) after every power cut until the
depot sets the time.
"""
from tunion.clock import civil, secs_from_civil, secs_from_date_int, valid_civil
from tunion.compat import const
from tunion.version import BUILD_DATE

ADDR = const(0x68)  # DS3231 datasheet: fixed 7-bit address 1101000
_REG_TIME = const(0x00)
_REG_CONTROL = const(0x0E)
_REG_STATUS = const(0x0F)
_OSF = const(0x80)  # status bit 7: oscillator stop flag
_EOSC = const(0x80)  # control bit 7: 1 = oscillator stops when on battery (power-on value 0)
_HOUR12 = const(0x40)
_PM = const(0x20)
_CENTURY = const(0x80)
_NREAD = const(16)  # 00h..0Fh in one burst: time, alarms, control, status
_DAY = const(86400)
_DAYS_THU = const(3)  # 1970-01-01 was a Thursday: (days + 3) % 7 = 0 on a Monday
EARLIEST = secs_from_date_int(BUILD_DATE)  # a time before the firmware existed is not a set clock (rules.decide)


def _bcd(v):
    return ((v // 10) << 4) | (v % 10)


def _unbcd(b):
    hi = b >> 4
    lo = b & 15
    if hi > 9 or lo > 9:
        return -1  # never a valid field: valid_civil rejects it
    return hi * 10 + lo


def weekday(secs):
    """0 = Monday .. 6 = Sunday (machine.RTC's order; the DS3231's day register holds this + 1)."""
    return (secs // _DAY + _DAYS_THU) % 7


def _check(secs):
    if not isinstance(secs, int):
        raise TypeError("clock seconds must be an int")
    if secs < EARLIEST:
        raise ValueError("time before the firmware's build date: not a real time")
    if civil(secs)[0] > 2099:
        raise ValueError("DS3231 years end at 2099 here (century bit not used)")


class DS3231:
    def __init__(self, i2c, addr=ADDR):
        self.i2c = i2c
        self.addr = addr
        self._r = bytearray(_NREAD)
        self._w = bytearray(7)
        self._one = bytearray(1)

    def read(self):
        """CST seconds, or None when OSF is set (the oscillator stopped: time unknown) or the registers hold no
        real date and time. OSError when the chip does not answer."""
        r = self._r
        self.i2c.readfrom_mem_into(self.addr, _REG_TIME, r)
        if r[_REG_STATUS] & _OSF:
            return None
        h = r[2]
        if h & _HOUR12:
            hour = _unbcd(h & 0x1F)
            if not 1 <= hour <= 12:
                return None
            hour = hour % 12 + (12 if h & _PM else 0)
        else:
            hour = _unbcd(h & 0x3F)
        y = 2000 + _unbcd(r[6]) + (100 if r[5] & _CENTURY else 0)
        mo = _unbcd(r[5] & 0x1F)
        d = _unbcd(r[4] & 0x3F)
        mi = _unbcd(r[1] & 0x7F)
        s = _unbcd(r[0] & 0x7F)
        if y < 2000 or not valid_civil(y, mo, d, hour, mi, s):
            return None
        return secs_from_civil(y, mo, d, hour, mi, s)

    def lost_power(self):
        """True when OSF is set: the time is unknown until set()."""
        return bool(self._reg(_REG_STATUS) & _OSF)

    def set(self, secs):
        """Write the time (24-hour mode), keep the oscillator running on battery, then clear OSF: in that order,
        so a write cut halfway leaves OSF set and the time distrusted."""
        _check(secs)
        y, mo, d, h, mi, s = civil(secs)
        w = self._w
        w[0] = _bcd(s)
        w[1] = _bcd(mi)
        w[2] = _bcd(h)
        w[3] = weekday(secs) + 1
        w[4] = _bcd(d)
        w[5] = _bcd(mo)
        w[6] = _bcd(y - 2000)
        self.i2c.writeto_mem(self.addr, _REG_TIME, w)
        c = self._reg(_REG_CONTROL)
        if c & _EOSC:
            self._put(_REG_CONTROL, c & ~_EOSC & 0xFF)
        # Writing 1 to OSF/A2F/A1F leaves them as they are; writing 0 to OSF clears it (datasheet, status register).
        self._put(_REG_STATUS, self._reg(_REG_STATUS) & ~_OSF & 0xFF)

    def to_machine_rtc(self, rtc):
        """Copy the time into machine.RTC; returns the seconds copied, or None (time unknown: nothing copied)."""
        secs = self.read()
        if secs is not None:
            set_machine_rtc(rtc, secs)
        return secs

    def _reg(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self._one)
        return self._one[0]

    def _put(self, reg, v):
        self._one[0] = v
        self.i2c.writeto_mem(self.addr, reg, self._one)


def set_machine_rtc(rtc, secs):
    y, mo, d, h, mi, s = civil(secs)
    rtc.datetime((y, mo, d, weekday(secs), h, mi, s, 0))  # (year, month, day, weekday, h, m, s, subseconds)


class Clock:
    """`now` for the app. `valid` False means OOS_CLOCK: the DS3231 lost its time, does not answer, or the board
    has none and the depot has not set the time since the last power cut. `fault` says which."""

    def __init__(self, rtc, ds3231=None, ticks_ms=None):
        self.rtc = rtc  # machine.RTC
        self.ds3231 = ds3231
        self._ticks = ticks_ms
        self.valid = False
        self.fault = "not read"

    def boot(self, warm=False):
        """At every boot. With a DS3231: its time into machine.RTC (also fine as an idle-time resync, since the
        ESP32's own clock drifts). Without one: invalid, unless `warm` (the app passes True after a soft or
        watchdog reset, which machine.RTC survives) and the time kept is not before the build date."""
        if self.ds3231 is None:
            self.valid = bool(warm) and self.now()[0] >= EARLIEST
            self.fault = None if self.valid else "no RTC: set by the depot"
            return self.valid
        try:
            secs = self.ds3231.to_machine_rtc(self.rtc)
        except OSError:
            self.valid = False
            self.fault = "RTC does not answer"
            return False
        if secs is None:
            self.fault = "RTC oscillator stopped: time unknown"
        elif secs < EARLIEST:
            self.fault = "RTC time before the build date"
        else:
            self.fault = None
        self.valid = self.fault is None
        return self.valid

    def now(self):
        dt = self.rtc.datetime()
        return secs_from_civil(dt[0], dt[1], dt[2], dt[4], dt[5], dt[6]), self._ticks()

    def set_time(self, secs):
        """Set the DS3231 (if any) and machine.RTC. ValueError for a time before the build date or past 2099;
        OSError when the DS3231 does not answer (then the clock stays invalid)."""
        _check(secs)
        if self.ds3231 is not None:
            self.valid = False
            self.ds3231.set(secs)
        set_machine_rtc(self.rtc, secs)
        self.valid = True
        self.fault = None


def make_clock(i2c=None, addr=ADDR):
    """The board's Clock: machine.RTC and time.ticks_ms, with a DS3231 when `i2c` is given."""
    import machine
    import time

    return Clock(machine.RTC(), DS3231(i2c, addr) if i2c is not None else None, time.ticks_ms)


class RtcMemo:
    """The last payment (card number, CST seconds) in the ESP32's RTC memory (`machine.RTC().memory()`): it survives
    a soft reset, the watchdog and machine.reset(), not a power cut. app.validator reads it at the first poll after
    a restart, so the card resting on the reader since its payment is not charged again (issue 9 finding).

        memo = RtcMemo(machine.RTC()); memo.save(3199990000000000001, 1796112000); memo.load()
    """

    def __init__(self, rtc):
        self.rtc = rtc
        self._buf = bytearray(16)

    def save(self, card_no, secs):
        b = self._buf
        b[0:4] = b"TUM1"
        for i in range(8):
            b[4 + i] = (card_no >> (56 - 8 * i)) & 0xFF
        for i in range(4):
            b[12 + i] = (secs >> (24 - 8 * i)) & 0xFF
        self.rtc.memory(b)

    def load(self):
        m = self.rtc.memory()
        if len(m) < 16 or m[0:4] != b"TUM1":
            return None
        card = 0
        for i in range(8):
            card = (card << 8) | m[4 + i]
        secs = 0
        for i in range(4):
            secs = (secs << 8) | m[12 + i]
        return card, secs
