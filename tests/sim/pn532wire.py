"""The wires to the simulated PN532: machine.UART and machine.I2C stand-ins, busio's UART for the stock
adafruit class, the reset pin, and a heap meter for the MicroPython figures.

    chip = Pn532Chip(SimClock(), card=make_card())
    uart = SimUart(chip)                 # write/read/readinto/any/init, bytes timed at the current rate
    bus = SimI2C(chip)                   # writeto/readfrom_into at 0x24, status byte first
    pn = PN532_UART(BusioUart(SimUart(chip)))   # the unmodified stock driver

The chip (sim.pn532chip) calls `transport.emit(frame, t, rate)`, `cancel(t)` and `byte_us(rate)`.
"""
import gc
import sys

from sim.pn532chip import garble

_MICROPYTHON = sys.implementation.name == "micropython"


class SimResetPin:
    """machine.Pin on the PN532's RSTPD_N: low holds the chip in reset, the rising edge powers it up afresh."""

    IN = 0
    OUT = 1

    def __init__(self, chip):
        self.chip = chip
        self.level = 1
        self.resets = 0

    def init(self, mode=None, *a, **kw):
        pass

    def value(self, v=None):
        if v is None:
            return self.level
        v = 1 if v else 0
        if v and not self.level:
            self.resets += 1
            self.chip.power_on()
            self.chip.asleep = not self.chip.i2c  # the I2C address wakes it
        self.level = v


class SimUart:
    """machine.UART wired to the chip's HSU: write, read(n) -> bytes|None, readinto, any(), init(baudrate=).
    Only timeout=0 and timeout_char=0 are modelled (board.md: wait in Python). Like the ESP32 port, init()
    discards input already received; bytes still on the wire arrive at the old rate, so as garbage."""

    def __init__(self, chip, baudrate=115200, timeout=0, timeout_char=0):
        self.chip = chip
        self.clock = chip.clock
        chip.transport = self
        self._inq = []  # [time available, byte, rate it was sent at]
        self._tx_free = 0
        self._chip_free = 0
        self.init(baudrate=baudrate, timeout=timeout, timeout_char=timeout_char)
        self.bytes_written = self.bytes_read = self.garbled_read = 0

    def init(self, baudrate=None, timeout=0, timeout_char=0, **kw):
        if timeout or timeout_char:
            raise ValueError("SimUart models timeout=0, timeout_char=0 only")
        if baudrate is not None:
            self.baudrate = baudrate
        now = self.clock.now
        self._inq = [x for x in self._inq if x[0] > now]

    @staticmethod
    def byte_us(rate):
        return 10000000 / rate

    def write(self, buf):
        buf = bytes(buf)
        t = max(self.clock.now, self._tx_free)
        for b in buf:
            t += self.byte_us(self.baudrate)
            self.chip.receive(b, t, self.baudrate)
        self._tx_free = t
        self.bytes_written += len(buf)
        return len(buf)

    def emit(self, data, t, rate):
        t = max(t, self._chip_free)
        for b in data:
            t += self.byte_us(rate)
            self._inq.append([t, b, rate])
        self._chip_free = t

    def cancel(self, t):
        # Bytes not yet started when the cancelling ACK arrived are never sent.
        keep = [x for x in self._inq if x[0] - self.byte_us(x[2]) <= t]
        self._inq = keep
        self._chip_free = keep[-1][0] if keep else t

    def any(self):
        now = self.clock.now
        n = 0
        for x in self._inq:
            if x[0] > now:
                break
            n += 1
        if not n and self._inq:
            self.clock.wake_at = self._inq[0][0]
        return n

    def _take(self, n):
        k = min(n, self.any())
        out = bytearray()
        for x in self._inq[:k]:
            if x[2] != self.baudrate:
                out.append(garble(x[1]))
                self.garbled_read += 1
            else:
                out.append(x[1])
        del self._inq[:k]
        self.bytes_read += k
        return out

    def read(self, n=-1):
        out = self._take(n if n >= 0 else 1 << 30)
        return bytes(out) if out else None

    def readinto(self, buf, nbytes=None):
        out = self._take(len(buf) if nbytes is None else min(nbytes, len(buf)))
        if not out:
            return None
        buf[: len(out)] = out
        return len(out)


class BusioUart:
    """What adafruit_pn532.uart.PN532_UART expects of busio.UART (in_waiting, read(n) waiting up to `timeout`
    seconds, reset_input_buffer, write) over a SimUart; waits run on the simulated clock."""

    def __init__(self, uart, timeout=0.1):
        self.uart = uart
        self.timeout = timeout

    @property
    def in_waiting(self):
        n = self.uart.any()
        if not n:
            self.uart.clock.ticks_us()  # the host's poll: jumps to the next byte on its way, if any
            n = self.uart.any()
        return n

    def read(self, n):
        clock = self.uart.clock
        end = clock.now + int(self.timeout * 1000000)
        out = b""
        while len(out) < n:
            got = self.uart.read(n - len(out))
            if got:
                out += got
            elif clock.now >= end:
                break
            else:
                clock.ticks_us()
        return out or None

    def reset_input_buffer(self):
        while self.uart.read(256):
            pass

    def write(self, buf):
        return self.uart.write(buf)


class SimI2C:
    """machine.I2C wired to the chip at 0x24: writeto, readfrom_into, readfrom. Each transaction takes its wire
    time on the clock. A read gives the status byte (01 ready) then the pending frame from its start; the frame
    is used up only when a read reaches its end (UM0701-02 6.2.4, as modelled here)."""

    def __init__(self, chip, freq=400000, address=0x24):
        self.chip = chip
        self.clock = chip.clock
        self.freq = freq
        self.address = address
        chip.transport = self
        chip.i2c = True
        chip.asleep = False  # the I2C address wakes it
        self._out = []  # [time ready, frame]
        self.transactions = self.bytes_written = self.bytes_read = 0

    def byte_us(self, rate=None):
        return 9000000 / self.freq

    def _start(self, addr, n):
        if addr != self.address:
            raise OSError(19)  # ENODEV, as MicroPython's I2C when nobody ACKs the address
        self.transactions += 1
        t0 = self.clock.now
        self.clock.now += int((n + 1) * self.byte_us()) + 10
        return t0

    def writeto(self, addr, buf, stop=True):
        buf = bytes(buf)
        t = self._start(addr, len(buf))
        self.chip.asleep = False
        for i, b in enumerate(buf):
            self.chip.receive(b, t + (i + 2) * self.byte_us())
        self.bytes_written += len(buf)
        return len(buf)

    def emit(self, data, t, rate):
        self._out.append([t, bytes(data)])

    def cancel(self, t):
        self._out = [x for x in self._out if x[0] <= t]

    def readfrom_into(self, addr, buf):
        n = len(buf)
        t = self._start(addr, n)
        ready = bool(self._out) and self._out[0][0] <= t
        data = self._out[0][1] if ready else b""
        out = bytes((1 if ready else 0,)) + data
        out = (out + bytes(n))[:n]
        buf[:n] = out
        if ready and n - 1 >= len(data):
            self._out.pop(0)
        self.bytes_read += n

    def readfrom(self, addr, n):
        buf = bytearray(n)
        self.readfrom_into(addr, buf)
        return bytes(buf)


def mem():
    """gc.mem_alloc() under MicroPython, 0 on CPython (where the heap is not the board's question)."""
    return gc.mem_alloc() if _MICROPYTHON else 0


class MeteredUart:
    """The SimUart as the driver sees it, counting the heap the simulator allocates inside write and read
    calls (any() and the integer SimClock allocate nothing). gc.mem_alloc() scans the heap, so it is called
    only around those."""

    def __init__(self, u):
        self.u = u
        self.sim = 0

    def write(self, buf):
        m = mem()
        r = self.u.write(buf)
        self.sim += mem() - m
        return r

    def any(self):
        return self.u.any()

    def readinto(self, buf, nbytes=None):
        m = mem()
        r = self.u.readinto(buf) if nbytes is None else self.u.readinto(buf, nbytes)
        self.sim += mem() - m
        return r

    def read(self, n=-1):
        m = mem()
        r = self.u.read(n)
        self.sim += mem() - m
        return r

    def init(self, **kw):
        self.u.init(**kw)
