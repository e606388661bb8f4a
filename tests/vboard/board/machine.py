"""`machine` on the virtual board: the ESP32 port's classes and signatures, backed by the host controller.

    from machine import UART, I2C, Pin
    uart = UART(2, baudrate=115200, tx=17, rx=16, timeout=0, timeout_char=0)
    uart.write(b"\x55\x55"); uart.any(); uart.read(6)     # bytes go to the host's device for UART 2

Shadows the unix port's partial built-in `machine` (its folder is first on sys.path). Every bus operation is
one request to the host (tests/vboard/controller.py), which owns the devices, the pins, the RTC, the watchdog
and the simulated clock. What the ESP32 refuses, this refuses: GPIOs that do not exist, outputs on the
input-only pins 34-39, CPU frequencies other than 20/40/80/160/240 MHz, I2C addresses no device acknowledges
(OSError ENODEV). Missing on purpose: SPI, ADC, Timer, time_pulse_us (the firmware does not use them).
"""
import struct
import _vbrpc
from _vbrpc import call

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_GPIOS = tuple(g for g in range(40) if g not in (20, 24, 28, 29, 30, 31))
_INPUT_ONLY = (34, 35, 36, 37, 38, 39)
_FREQS = (20000000, 40000000, 80000000, 160000000, 240000000)


def _pin_no(p):
    n = p.id if isinstance(p, Pin) else p
    if not isinstance(n, int) or n not in _GPIOS:
        raise ValueError("invalid pin")
    return n


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_DOWN = 1
    PULL_UP = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5
    DRIVE_0 = 0
    DRIVE_1 = 1
    DRIVE_2 = 2
    DRIVE_3 = 3

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        self.id = _pin_no(id)
        self._mode = None
        self._pull = None
        self._handler = None
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if mode != -1 and mode is not None:
            if mode in (Pin.OUT, Pin.OPEN_DRAIN) and self.id in _INPUT_ONLY:
                raise ValueError("pin can only be input")
            self._mode = mode
        if pull != -1:
            self._pull = pull
        call(b"p", struct.pack(">Bbb", self.id, -1 if self._mode is None else self._mode,
                               -1 if self._pull is None else self._pull))
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return call(b"Q", bytes((self.id,)))[0]
        call(b"P", bytes((self.id, 1 if v else 0)))

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def mode(self, m=None):
        if m is None:
            return self._mode
        self.init(m)

    def pull(self, p=None):
        if p is None:
            return self._pull
        self.init(-1, p)

    def irq(self, handler=None, trigger=3, *, wake=None, hard=False):
        self._handler = handler  # kept; the host does not raise pin interrupts (yet)
        return None

    def __repr__(self):
        return "Pin(%d)" % self.id


class UART:
    RTS = 1
    CTS = 2
    INV_TX = 32
    INV_RX = 4
    INV_RTS = 64
    INV_CTS = 8
    IRQ_RX = 1
    IRQ_BREAK = 2
    IRQ_RXIDLE = 4096

    def __init__(self, id, baudrate=115200, bits=8, parity=None, stop=1, **kw):
        if id not in (0, 1, 2):
            raise ValueError("UART(%s) does not exist" % id)
        self.id = id
        self._baud = 0
        self._bits = 8
        self._parity = None
        self._stop = 1
        self._timeout = 0
        self._timeout_char = 0
        self.init(baudrate, bits, parity, stop, **kw)

    def init(self, baudrate=None, bits=None, parity=-1, stop=None, *, tx=None, rx=None, rts=None, cts=None,
             txbuf=None, rxbuf=None, timeout=None, timeout_char=None, invert=None, flow=None):
        if baudrate is not None:
            self._baud = baudrate
        if bits is not None:
            if bits not in (5, 6, 7, 8):
                raise ValueError("invalid data bits")
            self._bits = bits
        if parity != -1:
            if parity not in (None, 0, 1):
                raise ValueError("invalid parity")
            self._parity = parity
        if stop is not None:
            if stop not in (1, 2):
                raise ValueError("invalid stop bits")
            self._stop = stop
        if timeout is not None:
            self._timeout = timeout
        if timeout_char is not None:
            self._timeout_char = timeout_char
        # UART.init() discards pending input on the ESP32 (board.md): the host drains the device's line.
        call(b"B", struct.pack(">BIBbB", self.id, self._baud, self._bits,
                               -1 if self._parity is None else self._parity, self._stop))

    def deinit(self):
        pass

    def any(self):
        return struct.unpack(">I", call(b"A", bytes((self.id,))))[0]

    def read(self, nbytes=None):
        n = 0xFFFF if nbytes is None else nbytes
        body = call(b"R", struct.pack(">BHI", self.id, n, self._timeout))
        return body if body else None

    def readinto(self, buf, nbytes=None):
        n = len(buf) if nbytes is None else nbytes
        got = self.read(n)
        if got is None:
            return None
        buf[:len(got)] = got
        return len(got)

    def readline(self):
        out = b""
        while True:
            c = self.read(1)
            if c is None:
                return out or None
            out += c
            if c == b"\n":
                return out

    def write(self, buf):
        call(b"W", bytes((self.id,)) + bytes(buf))
        return len(buf)

    def flush(self):
        pass

    def txdone(self):
        return True

    def sendbreak(self):
        pass

    def irq(self, handler=None, trigger=0, hard=False):
        return None


class I2C:
    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        if id not in (0, 1):
            raise ValueError("I2C(%s) does not exist" % id)
        self.id = id
        self.freq = freq
        if scl is not None:
            _pin_no(scl)
        if sda is not None:
            _pin_no(sda)

    def init(self, *, scl=None, sda=None, freq=400000, timeout=50000):
        self.freq = freq

    def _w(self, addr, data, stop=True):
        return struct.unpack(">I", call(b"I", struct.pack(">BBBI", self.id, addr, 1 if stop else 0, self.freq)
                                        + data))[0]

    def _r(self, addr, n, stop=True):
        return call(b"J", struct.pack(">BBBIH", self.id, addr, 1 if stop else 0, self.freq, n))

    def scan(self):
        return list(call(b"K", bytes((self.id,))))

    def writeto(self, addr, buf, stop=True):
        return self._w(addr, bytes(buf), stop)

    def writevto(self, addr, vector, stop=True):
        return self._w(addr, b"".join(bytes(v) for v in vector), stop)

    def readfrom(self, addr, nbytes, stop=True):
        return self._r(addr, nbytes, stop)

    def readfrom_into(self, addr, buf, stop=True):
        buf[:] = self._r(addr, len(buf), stop)

    def _mem(self, memaddr, addrsize):
        return memaddr.to_bytes(addrsize // 8, "big")

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._w(addr, self._mem(memaddr, addrsize) + bytes(buf))

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        self._w(addr, self._mem(memaddr, addrsize), False)
        return self._r(addr, nbytes)

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        buf[:] = self.readfrom_mem(addr, memaddr, len(buf), addrsize=addrsize)


SoftI2C = I2C


class PWM:
    def __init__(self, dest, freq=None, duty=None, *, duty_u16=None, duty_ns=None, invert=False):
        self.pin = _pin_no(dest)
        if self.pin in _INPUT_ONLY:
            raise ValueError("pin can only be input")
        self._freq = 5000
        self._duty = 32768
        self.init(freq=freq, duty=duty, duty_u16=duty_u16, duty_ns=duty_ns)

    def init(self, *, freq=None, duty=None, duty_u16=None, duty_ns=None, invert=False):
        if freq is not None:
            self._freq = freq
        if duty is not None:
            self._duty = duty * 65535 // 1023
        if duty_u16 is not None:
            self._duty = duty_u16
        if duty_ns is not None:
            self._duty = min(65535, duty_ns * self._freq * 65535 // 1000000000)
        self._set()

    def _set(self):
        self._actual = struct.unpack(">I", call(b"M", struct.pack(">BIH", self.pin, self._freq, self._duty)))[0]

    def freq(self, f=None):
        if f is None:
            return self._actual
        self._freq = f
        self._set()

    def duty(self, d=None):
        if d is None:
            return self._duty * 1023 // 65535
        self._duty = d * 65535 // 1023
        self._set()

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        self._duty = d
        self._set()

    def deinit(self):
        call(b"M", struct.pack(">BIH", self.pin, 0, 0))


class RTC:
    def __init__(self, id=0):
        pass

    def memory(self, data=None):
        """RTC slow memory (ESP32: 2 KB): kept over soft, hard and watchdog resets, lost in a power cut."""
        if data is None:
            return call(b"n")
        if len(data) > 2048:
            raise ValueError("RTC memory is 2048 bytes")
        call(b"m", bytes(data))

    def datetime(self, t=None):
        """(year, month, day, weekday, hours, minutes, seconds, microseconds); weekday 0 = Monday."""
        if t is None:
            return struct.unpack(">HBBBBBBI", call(b"c"))
        call(b"d", struct.pack(">HBBBBBBI", *(tuple(t) + (0,) * (8 - len(t)))))

    def init(self, t):
        self.datetime(t)


class WDT:
    def __init__(self, id=0, timeout=5000):
        if timeout < 1:
            raise ValueError("WDT timeout too short")
        call(b"G", struct.pack(">I", timeout))

    def feed(self):
        call(b"F")


def freq(hz=None):
    if hz is None:
        return struct.unpack(">I", call(b"f", b""))[0]
    if hz not in _FREQS:
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    call(b"f", struct.pack(">I", hz))


def unique_id():
    return bytes(_vbrpc.CONFIG["unique_id"])


def reset_cause():
    return _vbrpc.CONFIG["reset_cause"]


def wake_reason():
    return 0


def reset():
    call(b"X", b"H")  # the host kills and restarts the board: no reply comes
    while True:
        pass


def soft_reset():
    call(b"X", b"S")
    while True:
        pass


def deepsleep(ms=0):
    call(b"X", b"D" + struct.pack(">I", ms))
    while True:
        pass


def lightsleep(ms=0):
    import time
    time.sleep_ms(ms)


def idle():
    import time
    time.sleep_us(1000)  # the ESP32 waits for the next interrupt: at most one 1 ms tick here


def disable_irq():
    return 0


def enable_irq(state=0):
    pass
