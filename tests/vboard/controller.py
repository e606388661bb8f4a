"""The virtual board's host controller: answers the board's machine/time/esp32 stand-ins over a unix socket.

    ctl = Controller(SimClock(fast=True), "/tmp/board1/ctl.sock", on_reset=relay.reset)
    ctl.uarts[2] = pn532_sim              # devices, per UART id and per (I2C bus, address): devices.py
    ctl.i2c[0][0x68] = DS3231(ctl.clock)
    ctl.start(); ...; ctl.stop()

Wire format (tests/vboard/board/_vbrpc.py): 4-byte length, 4-byte sequence number, then the body; requests
start with one opcode byte, replies with one status byte (0, or `!` for a refusal), so that data which happens
to start with `!` (a UART byte 0x21) is never taken for one. One thread per connection (a board process holds
one; a restarted board opens a new one). A device that raises, or arguments the ESP32 would refuse, answer `!` +
errno: an OSError on the board, and the fault is kept in `faults` for the test to see.
"""
import os
import socket
import struct
import threading
from datetime import datetime, timedelta

EPOCH = datetime(1970, 1, 1)
RTC_POWER_ON = datetime(2000, 1, 1)  # the ESP32's RTC after a power cut (ports/esp32: 2000-01-01)
ENODEV = 19
EIO = 5
EINVAL = 22
_REFUSED = 0x21  # b"!": the reply's status byte for an OSError on the board
_INTERRUPT = 0x4B  # b"K": a Ctrl-C came (tests/vboard/relay.PendingInterrupt): the board raises KeyboardInterrupt


class _Refuse(Exception):
    def __init__(self, errno, msg):
        super().__init__(msg)
        self.errno = errno


def pwm_actual(freq):
    """The frequency an ESP32 LEDC channel gives: 80 MHz over a divider in eighths (board.md: 3,571,200 Hz asked
    gives 3,575,419 Hz; 5 MHz is exact). Low frequencies (buzzer tones) are within a hertz of what was asked."""
    if freq <= 0:
        return 0
    if freq < 1_000_000:
        return freq
    return round(80_000_000 * 8 / (80_000_000 * 8 // freq))


class Controller:
    def __init__(self, clock, path, on_reset=None, interrupt=None):
        self.clock = clock
        self.path = path
        self.on_reset = on_reset
        self.interrupt = interrupt  # relay.PendingInterrupt: a Ctrl-C the next reply carries
        self.busy = 0  # requests being worked on
        self.uarts = {}  # id -> UART device
        self.uart_format = {}  # id -> (baud, bits, parity, stop)
        self.i2c = {0: {}, 1: {}}  # bus -> {address: I2C device}
        self.pins = {}  # gpio -> level last driven by the board
        self.pin_modes = {}  # gpio -> (mode, pull)
        self.inputs = {}  # gpio -> level the host applies to an input
        self.pwm = {}  # gpio -> (asked freq, actual freq, duty_u16)
        self.pin_hooks = {}  # gpio -> fn(level): a simulator wired to an output (the PSAM's RST)
        self.pwm_hooks = {}  # gpio -> fn(asked freq, duty_u16): a simulator clocked by a PWM (the PSAM's CLK)
        self.cpu_freq = 160_000_000  # ESP32_GENERIC boots at 160 MHz (board.md)
        self.faults = []
        self.calls = 0
        self._lock = threading.RLock()
        self._server = None
        self._threads = []
        self._conns = []
        self.power_on()

    # ---- board life -----------------------------------------------------------------------------------------
    def power_on(self):
        """Power cut and back: ticks restart, the RTC forgets the time, the watchdog is off, CPU at 160 MHz."""
        self.boot_us = self.clock.now_us()
        self.rtc_offset_us = self._epoch_us(RTC_POWER_ON) - self.clock.now_us()
        self.wdt_timeout_us = None
        self.wdt_deadline = None
        self.cpu_freq = 160_000_000
        self.reset_cause = 1  # PWRON_RESET
        self.rtc_memory = b""  # RTC slow memory: lost with the power only

    def hard_reset(self, cause):
        """machine.reset() or the watchdog: ticks restart; the RTC keeps counting; the watchdog stops."""
        self.boot_us = self.clock.now_us()
        self.wdt_timeout_us = None
        self.wdt_deadline = None
        self.cpu_freq = 160_000_000
        self.reset_cause = cause

    @staticmethod
    def _epoch_us(dt):
        return int((dt - EPOCH).total_seconds()) * 1_000_000 + dt.microsecond

    def rtc_now(self):
        us = self.clock.now_us() + self.rtc_offset_us
        return EPOCH + timedelta(microseconds=us)

    def set_rtc(self, dt):
        self.rtc_offset_us = self._epoch_us(dt) - self.clock.now_us()

    def check_watchdog(self):
        """True (and the board reset) when the watchdog ran out."""
        d = self.wdt_deadline
        if d is not None and self.clock.now_us() > d:
            self.wdt_deadline = None
            if self.on_reset:
                self.on_reset("wdt")
            return True
        return False

    # ---- server ---------------------------------------------------------------------------------------------
    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.path)
        s.listen(4)
        self._server = s
        t = threading.Thread(target=self._accept, name="vboard-ctl", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self):
        if self._server:
            try:
                self._server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._server.close()
            self._server = None
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self._conns = []

    def _accept(self):
        while self._server is not None:
            try:
                c, _ = self._server.accept()
            except OSError:
                return
            self._conns.append(c)
            threading.Thread(target=self._serve, args=(c,), name="vboard-conn", daemon=True).start()

    @staticmethod
    def _recv(c, n):
        buf = b""
        while len(buf) < n:
            d = c.recv(n - len(buf))
            if not d:
                raise EOFError
            buf += d
        return buf

    def _serve(self, c):
        try:
            while True:
                n, seq = struct.unpack(">II", self._recv(c, 8))
                body = self._recv(c, n - 4)
                status = 0
                self.busy += 1
                try:
                    out = self.handle(body)
                except _Refuse as e:
                    status, out = _REFUSED, b"%04d%s" % (e.errno, str(e).encode())
                except Exception as e:  # a device fault: the board sees EIO, the test sees the fault
                    self.faults.append(repr(e))
                    status, out = _REFUSED, b"%04d%s" % (EIO, repr(e).encode()[:200])
                finally:
                    self.busy -= 1
                if out is None:
                    continue  # the board is being reset: no answer
                if self.interrupt is not None and self.interrupt.take():
                    status = _INTERRUPT  # the request was carried out; the board raises KeyboardInterrupt after it
                c.sendall(struct.pack(">IIB", len(out) + 5, seq, status) + out)
        except (EOFError, OSError):
            pass
        finally:
            c.close()

    # ---- requests -------------------------------------------------------------------------------------------
    def handle(self, body):
        self.calls += 1
        op, a = body[:1], body[1:]
        clock = self.clock
        if self.check_watchdog():
            return None
        if op == b"T":
            return struct.pack(">Q", clock.now_us() - self.boot_us)
        if op == b"S":
            (us,) = struct.unpack(">Q", a)
            if self.interrupt is None or not self.interrupt.pending():  # a Ctrl-C came first: no sleep
                clock.sleep_us(us)
            if self.check_watchdog():
                return None
            return struct.pack(">Q", clock.now_us() - self.boot_us)
        with self._lock:
            if op == b"W":
                self._uart(a[0]).write(bytes(a[1:]), clock.now_us())
                return b""
            if op == b"A":
                return struct.pack(">I", self._uart(a[0]).any(clock.now_us()))
            if op == b"R":
                uid, n, timeout = struct.unpack(">BHI", a)
                return self._uart_read(uid, n, timeout)
            if op == b"B":
                uid, baud, bits, parity, stop = struct.unpack(">BIBbB", a)
                dev = self.uarts.get(uid)
                self.uart_format[uid] = (baud, bits, None if parity < 0 else parity, stop)
                if dev is not None:
                    dev.set_baud(baud)
                    if hasattr(dev, "set_format"):
                        dev.set_format(bits, None if parity < 0 else parity, stop)
                    now = clock.now_us()
                    k = dev.any(now)
                    if k:
                        dev.read(k, now)  # UART.init() discards pending input (board.md)
                return b""
            if op in (b"I", b"J"):
                return self._i2c(op, a)
            if op == b"K":
                return bytes(sorted(self.i2c.get(a[0], {})))
            if op == b"p":
                pin, mode, pull = struct.unpack(">Bbb", a)
                self.pin_modes[pin] = (mode, pull)
                return b""
            if op == b"P":
                self.pins[a[0]] = a[1]
                if a[0] in self.pin_hooks:
                    self.pin_hooks[a[0]](a[1])
                return b""
            if op == b"Q":
                return bytes((self._pin_level(a[0]),))
            if op == b"M":
                pin, f, duty = struct.unpack(">BIH", a)
                actual = pwm_actual(f)
                self.pwm[pin] = (f, actual, duty)
                if pin in self.pwm_hooks:
                    self.pwm_hooks[pin](f, duty)
                return struct.pack(">I", actual)
            if op == b"m":
                self.rtc_memory = bytes(a)
                return b""
            if op == b"n":
                return self.rtc_memory
            if op == b"c":
                t = self.rtc_now()
                return struct.pack(">HBBBBBBI", t.year, t.month, t.day, t.weekday(), t.hour, t.minute, t.second,
                                   t.microsecond)
            if op == b"d":
                y, mo, d, _wd, h, mi, s, us = struct.unpack(">HBBBBBBI", a)
                try:
                    self.set_rtc(datetime(y, mo, d, h, mi, s, us))
                except ValueError as e:
                    raise _Refuse(EINVAL, str(e))
                return b""
            if op == b"C":
                us = clock.now_us() + self.rtc_offset_us
                return struct.pack(">QI", us // 1_000_000, us % 1_000_000)
            if op == b"G":
                (ms,) = struct.unpack(">I", a)
                self.wdt_timeout_us = ms * 1000
                self.wdt_deadline = clock.now_us() + self.wdt_timeout_us
                return b""
            if op == b"F":
                if self.wdt_timeout_us is not None:
                    self.wdt_deadline = clock.now_us() + self.wdt_timeout_us
                return b""
            if op == b"f":
                if a:
                    (self.cpu_freq,) = struct.unpack(">I", a)
                    return b""
                return struct.pack(">I", self.cpu_freq)
            if op == b"X":
                if self.on_reset:
                    self.on_reset({b"H": "hard", b"S": "soft", b"D": "deepsleep"}[a[:1]])
                return None
        raise _Refuse(EINVAL, "unknown request %r" % op)

    def _uart(self, uid):
        dev = self.uarts.get(uid)
        if dev is None:
            raise _Refuse(EIO, "nothing wired to UART %d" % uid)
        return dev

    def _uart_read(self, uid, n, timeout_ms):
        dev = self._uart(uid)
        baud = self.uart_format.get(uid, (115200,))[0] or 115200
        step = max(1, 10_000_000 // baud)  # one byte time (10 bits), microseconds
        clock = self.clock
        now = clock.now_us()
        deadline = now + timeout_ms * 1000
        while True:
            avail = dev.any(now)
            if avail >= n or now >= deadline or (self.interrupt is not None and self.interrupt.pending()):
                break
            if clock.fast:
                clock.advance(step)
            else:
                self._lock.release()
                try:
                    clock.sleep_us(max(step, 200))
                finally:
                    self._lock.acquire()
            now = clock.now_us()
        return dev.read(min(n, avail), now) if avail else b""

    def _i2c(self, op, a):
        bus, addr, stop, freq = struct.unpack(">BBBI", a[:7])
        dev = self.i2c.get(bus, {}).get(addr)
        if op == b"I":
            data = bytes(a[7:])
            n = len(data)
        else:
            (n,) = struct.unpack(">H", a[7:9])
        if self.clock.fast and freq:
            self.clock.advance((n + 1) * 9 * 1_000_000 // freq + 1)  # address + data bytes, 9 clocks each
        if dev is None:
            raise _Refuse(ENODEV, "no device at 0x%02X on I2C %d" % (addr, bus))
        now = self.clock.now_us()
        if op == b"I":
            if dev.write(data, now, bool(stop)) is False:
                raise _Refuse(ENODEV, "0x%02X did not acknowledge" % addr)
            return struct.pack(">I", n)
        got = bytes(dev.read(n, now))
        if len(got) != n:
            raise ValueError("I2C device 0x%02X returned %d bytes for a %d-byte read" % (addr, len(got), n))
        return got

    def _pin_level(self, pin):
        mode, pull = self.pin_modes.get(pin, (-1, -1))
        if mode in (3, 7) and pin in self.pins:  # OUT, OPEN_DRAIN: reads back what it drives
            return self.pins[pin]
        if pin in self.inputs:
            return self.inputs[pin]
        return 1 if pull == 2 else 0
