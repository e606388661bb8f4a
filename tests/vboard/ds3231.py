"""DS3231 real-time clock on I2C (address 0x68), driven by the virtual board's simulated clock.

    rtc = DS3231(clock, datetime(2026, 12, 2, 8, 30))     # or DS3231(clock): a chip whose battery just went in
    board.i2c_devices[0][0x68] = rtc
    rtc.lose_power()                                        # battery out: time resets, OSF (0x0F bit 7) set

Registers as the datasheet (Maxim DS3231, "Timekeeping Registers", Figure 1): 0x00-0x06 seconds, minutes,
hours, day (1-7), date, month (bit 7 century), year, in BCD; 0x07-0x0D alarms; 0x0E control; 0x0F status
(OSF bit 7, set when the oscillator stopped, cleared only by writing 0); 0x10 aging; 0x11-0x12 temperature
(read-only). A write sets the register pointer (first byte) and stores the rest with auto-increment, wrapping
after 0x12; writing the seconds register restarts the one-second countdown. 12-hour mode (hours bit 6) is kept
as written. Counts its transactions and bytes.
"""
from datetime import datetime, timedelta

_NREG = 0x13  # 0x00-0x12
_OSF = 0x80  # status register 0x0F bit 7: oscillator stop flag
_TEMP = (0x19, 0x40)  # 25.25 degrees C in registers 0x11-0x12


def _bcd(v):
    return ((v // 10) << 4) | (v % 10)


def _unbcd(b):
    return (b >> 4) * 10 + (b & 15)


class DS3231:
    ADDR = 0x68

    def __init__(self, clock, when=None):
        self.clock = clock
        self.regs = bytearray(_NREG)
        self.ptr = 0
        self.writes = 0
        self.reads = 0
        self.bytes = 0
        self.regs[0x0E] = 0x1C  # control at power-up: INTCN, RS2, RS1 (datasheet "Control Register")
        if when is None:
            self.lose_power()
        else:
            self.set(when)

    # ---- host side -------------------------------------------------------------------------------------------
    def lose_power(self):
        """Main supply and battery gone, then back: 2000-01-01 00:00:00, OSF set."""
        self._set_time(datetime(2000, 1, 1), weekday=1)
        self.regs[0x0F] |= _OSF

    def set(self, when):
        """Set the chip's time from the host (as a depot would, then clears OSF)."""
        self._set_time(when, weekday=when.isoweekday())
        self.regs[0x0F] &= ~_OSF & 0xFF

    def now(self):
        """The chip's current time as a datetime (None when its registers hold no valid time)."""
        self._tick()
        return self._decode()

    @property
    def osf(self):
        return bool(self.regs[0x0F] & _OSF)

    # ---- internals ------------------------------------------------------------------------------------------
    def _set_time(self, when, weekday):
        self._base = when.replace(microsecond=0)
        self._base_t = self.clock.now_us()
        self._wd = weekday
        self._encode(self._base)

    def _encode(self, t):
        r = self.regs
        r[0] = _bcd(t.second)
        r[1] = _bcd(t.minute)
        if r[2] & 0x40:  # 12-hour mode: bit 5 PM
            h = t.hour % 12 or 12
            r[2] = 0x40 | (0x20 if t.hour >= 12 else 0) | _bcd(h)
        else:
            r[2] = _bcd(t.hour)
        days = (t.date() - self._base.date()).days
        r[3] = (self._wd - 1 + days) % 7 + 1
        r[4] = _bcd(t.day)
        r[5] = _bcd(t.month) | (0x80 if t.year >= 2100 else 0)
        r[6] = _bcd(t.year % 100)

    def _decode(self):
        r = self.regs
        try:
            if r[2] & 0x40:
                h = _unbcd(r[2] & 0x1F) % 12 + (12 if r[2] & 0x20 else 0)
            else:
                h = _unbcd(r[2] & 0x3F)
            year = 2000 + _unbcd(r[6]) + (100 if r[5] & 0x80 else 0)
            return datetime(year, _unbcd(r[5] & 0x1F), _unbcd(r[4]), h, _unbcd(r[1]), _unbcd(r[0]))
        except ValueError:
            return None

    def _tick(self):
        if self._base is None:
            return  # garbage in the time registers: the chip counts nonsense; we hold still
        secs = (self.clock.now_us() - self._base_t) // 1_000_000
        self._encode(self._base + timedelta(seconds=secs))

    # ---- the I2C device interface (tests/vboard/devices.py) -------------------------------------------------
    def write(self, data, t_us, stop=True):
        self.writes += 1
        self.bytes += len(data)
        if not data:
            return True
        self._tick()
        self.ptr = data[0] % _NREG
        touched_time = False
        for b in data[1:]:
            if self.ptr <= 6:
                touched_time = True
            if self.ptr == 0x0F:  # status: OSF and the alarm flags can only be cleared; BSY is read-only
                b = (self.regs[0x0F] & b & 0x83) | (b & 0x08) | (self.regs[0x0F] & 0x04)
            if self.ptr < 0x11:  # 0x11-0x12 temperature: read-only
                self.regs[self.ptr] = b
            self.ptr = (self.ptr + 1) % _NREG
        if touched_time:
            t = self._decode()
            self._base = t
            self._base_t = self.clock.now_us()
            self._wd = self.regs[3] or 1
        return True

    def read(self, n, t_us):
        self.reads += 1
        self.bytes += n
        self._tick()
        self.regs[0x11], self.regs[0x12] = _TEMP
        out = bytearray()
        for _ in range(n):
            out.append(self.regs[self.ptr])
            self.ptr = (self.ptr + 1) % _NREG
        return bytes(out)

    def power_cycle(self):
        pass  # battery-backed: keeps time while the board is off
