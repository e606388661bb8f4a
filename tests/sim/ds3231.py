"""A DS3231 real-time clock on the simulated I2C bus: its register map, BCD, the century and 12-hour bits, and
the oscillator-stop flag, counting on a host-driven millisecond clock (never the host's own time).

    rtc = DS3231Sim(); bus.attach(0x68, rtc)     # as from the factory: OSF set, 2000-01-01 00:00:00
    rtc.set_time(secs_from_civil(2026, 12, 2, 8, 0, 0)); rtc.advance(1500); rtc.time()  # -> ... 08:00:01
    rtc.power_off(); rtc.advance(3600 * 1000); rtc.power_on()   # on its battery: kept; without: OSF and 2000

Datasheet (Maxim DS3231, rev. 10): registers 00h-06h seconds..year in BCD (02h bit 6 = 12-hour mode, bit 5 = PM;
05h bit 7 = century), 07h-0Dh alarms, 0Eh control (bit 7 EOSC: 1 stops the oscillator on battery power),
0Fh status (bit 7 OSF: set when the oscillator stopped, cleared only by writing 0), 10h aging, 11h-12h
temperature. The register pointer auto-increments and wraps from 12h to 00h; a read copies the time registers
into a secondary buffer at START, so one burst read never tears across a rollover; writing the seconds register
resets the countdown chain (the next second comes a full second later).
Civil conversion uses tunion.clock; tests check the register bytes against golden values independently.
"""
from tunion.clock import civil, secs_from_civil, valid_civil

ADDR = 0x68
_NREGS = 0x13
_CONTROL = 0x0E
_STATUS = 0x0F
_OSF = 0x80
_EOSC = 0x80
_POR_CONTROL = 0x1C  # INTCN, RS2, RS1 (datasheet: control register power-on value)
_POR_STATUS = 0x88  # OSF, EN32kHz
_STATUS_WRITABLE = 0x08  # EN32kHz; OSF, A2F, A1F can only be written to 0; BSY is read-only
_CLEAR_ONLY = 0x83
_EPOCH = 946684800  # 2000-01-01 00:00:00 in the driver's seconds: what the counters hold after power-on


def _bcd(v):
    return ((v // 10) << 4) | (v % 10)


def _unbcd(b):
    hi, lo = b >> 4, b & 15
    if hi > 9 or lo > 9:
        return None
    return hi * 10 + lo


def encode_time(secs, weekday=1, hour12=False, century=None):
    """The seven time registers (00h-06h) for a time: golden values for tests, computed as the chip counts."""
    y, mo, d, h, mi, s = civil(secs)
    if not 2000 <= y <= 2199:
        raise ValueError("DS3231 counts years 2000..2199")
    if hour12:
        hh = 0x40 | (0x20 if h >= 12 else 0) | _bcd(h % 12 or 12)
    else:
        hh = _bcd(h)
    cen = (y >= 2100) if century is None else century
    return bytes((_bcd(s), _bcd(mi), hh, weekday, _bcd(d), (0x80 if cen else 0) | _bcd(mo), _bcd(y % 100)))


def decode_time(r):
    """(secs, weekday, hour12) from the seven time registers, or None when they are not a real date and time."""
    s, mi, d, mo, yy = _unbcd(r[0] & 0x7F), _unbcd(r[1] & 0x7F), _unbcd(r[4] & 0x3F), _unbcd(r[5] & 0x1F), \
        _unbcd(r[6])
    hour12 = bool(r[2] & 0x40)
    if hour12:
        h = _unbcd(r[2] & 0x1F)
        if h is not None:
            if not 1 <= h <= 12:
                return None
            h = h % 12 + (12 if r[2] & 0x20 else 0)
    else:
        h = _unbcd(r[2] & 0x3F)
    if None in (s, mi, h, d, mo, yy) or r[0] & 0x80 or r[1] & 0x80 or not 1 <= r[3] <= 7:
        return None
    y = 2000 + yy + (100 if r[5] & 0x80 else 0)
    if not valid_civil(y, mo, d, h, mi, s):
        return None
    return secs_from_civil(y, mo, d, h, mi, s), r[3], hour12


class DS3231Sim:
    def __init__(self, ms=0, battery=True):
        self.ms = ms  # the host-driven clock: tests and the virtual board advance it
        self.battery = battery
        self.powered = True
        self._por()
        self.reads = 0  # read transactions
        self.writes = 0  # write transactions
        self.time_writes = 0  # write transactions that touched 00h-06h
        self.bad_time_writes = 0  # of those, ones that left no real date and time (the chip keeps the garbage)

    def _por(self):
        self.regs = bytearray(_NREGS)
        self.regs[_CONTROL] = _POR_CONTROL
        self.regs[_STATUS] = _POR_STATUS
        self.regs[0x11] = 25  # 25.00 degC
        self._base = _EPOCH
        self._base_ms = self.ms
        self._weekday = 1
        self._hour12 = False
        self._garbage = None  # raw time registers when a write left no real time
        self._frozen = None  # secs at which the oscillator stopped, while stopped
        self._ptr = 0

    # ---- the host side
    def advance(self, ms):
        if ms < 0:
            raise ValueError("time runs forward")
        if self.powered or (self.battery and not self.regs[_CONTROL] & _EOSC):
            self.ms += ms
        else:
            self._stop()
            self.ms += ms

    def _stop(self):
        if self._frozen is None:
            self._frozen = self._count()
        self.regs[_STATUS] |= _OSF

    def _count(self):
        if self._frozen is not None:
            return self._frozen
        return self._base + (self.ms - self._base_ms) // 1000

    def time(self):
        """The chip's time in the driver's seconds (None while its registers hold garbage)."""
        if self._garbage is not None:
            return None
        return self._count()

    @property
    def osf(self):
        return bool(self.regs[_STATUS] & _OSF)

    def set_time(self, secs, weekday=1, hour12=False):
        """Set as the depot would have: running, OSF clear."""
        self._set(secs, weekday, hour12)
        self.regs[_STATUS] &= ~_OSF & 0xFF

    def _set(self, secs, weekday, hour12):
        self._base, self._base_ms = secs, self.ms
        self._weekday, self._hour12 = weekday, hour12
        self._garbage = None
        if self._frozen is not None:
            self._frozen = secs

    def stop_oscillator(self):
        """A failed crystal or a flat battery seen while powered: the time stops, OSF is set."""
        self._stop()

    def start_oscillator(self):
        if self._frozen is not None:
            self._base, self._base_ms, self._frozen = self._frozen, self.ms, None

    def power_off(self):
        self.powered = False
        if not self.battery or self.regs[_CONTROL] & _EOSC:
            self._stop()

    def power_on(self):
        if self.powered:
            return
        self.powered = True
        if not self.battery:
            self._por()
        else:
            self.start_oscillator()  # counts on from where it stopped; OSF stays set until the depot clears it

    def poke(self, reg, data):
        """Raw register contents, as a failing chip or another master might leave them."""
        self._apply(reg, bytes(data))

    # ---- the registers
    def _time_regs(self):
        if self._garbage is not None:
            return self._garbage
        secs = self._count()
        # The day-of-week counter advances at midnight: count the midnights crossed since it was set.
        days = secs // 86400 - self._base // 86400
        wd = (self._weekday - 1 + days) % 7 + 1
        return encode_time(secs, wd, self._hour12)

    def _image(self):
        img = bytearray(self.regs)
        img[0:7] = self._time_regs()
        return img

    def _apply(self, start, data):
        img = self._image()
        touched_time = False
        seconds_written = False
        p = start
        for b in data:
            if p == _STATUS:
                old = img[_STATUS]
                v = (old & ~_STATUS_WRITABLE & ~_CLEAR_ONLY) | (b & _STATUS_WRITABLE) | (old & b & _CLEAR_ONLY)
                img[_STATUS] = v & 0xFF
            elif p in (0x11, 0x12):
                pass  # temperature: read-only
            else:
                img[p] = b
            if p <= 6:
                touched_time = True
                seconds_written = seconds_written or p == 0
            p = (p + 1) % _NREGS
        self._ptr = p
        self.regs[7:] = img[7:]
        if touched_time:
            self.time_writes += 1
            got = decode_time(img[0:7])
            if got is None:
                self.bad_time_writes += 1
                self._garbage = bytes(img[0:7])
            else:
                secs, wd, h12 = got
                if not seconds_written and self._frozen is None:
                    # The countdown chain keeps its phase when only other fields are written.
                    base_ms = self._base_ms + (self.ms - self._base_ms) // 1000 * 1000
                    self._set(secs, wd, h12)
                    self._base_ms = base_ms
                else:
                    self._set(secs, wd, h12)

    def i2c_write(self, data, stop=True):
        if not self.powered:
            raise OSError(19)
        self.writes += 1
        self._ptr = data[0] % _NREGS if data[0] < _NREGS else None
        if self._ptr is None:
            raise ValueError("DS3231 has no register 0x%02X" % data[0])
        if len(data) > 1:
            self._apply(self._ptr, data[1:])

    def i2c_read(self, n):
        if not self.powered:
            raise OSError(19)
        self.reads += 1
        img = self._image()  # the secondary buffer, copied at START
        out = bytearray(n)
        p = self._ptr
        for i in range(n):
            out[i] = img[p]
            p = (p + 1) % _NREGS
        self._ptr = p
        return bytes(out)
