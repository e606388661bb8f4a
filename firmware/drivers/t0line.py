"""ISO 7816-3 T=0 on one open-drain UART line: the card clock, cold reset, ATR, PPS, characters and echoes.

    line = T0Line(uart, pwm, rst, clock=time)   # drivers/psam_t0.T0Psam builds on it: TPDUs and the SAM port
    atr = line._cold_reset()                    # RST, the ATR read and parsed (drivers/atr.py), PPS if offered

The character layer of drivers/psam_t0.py, in a module of its own. A write returns at once; its echoes (every
byte written comes back on the shared line) are checked together before the next read. With TC1 the driver
writes one character per 12 + N etu slot, timed from after each write. Parity and framing errors never reach
Python (notes/board.md): a bad byte shows as a timeout, a wrong echo or a byte out of place, a LinkFault.
"""
import time

from tunion.compat import const, ticks_diff
from drivers.atr import Atr, need, inverse, TS_DIRECT, TS_INVERSE, TS_INVERSE_RAW

# The card clock. 5 MHz is what the LEDC divides cleanly from 80 MHz (notes/board.md) and gives 13,441 baud at
# F=372: a PSAM without TA1 (the transport PSAM ATR 3B 6C 00 02 ... has none) stays at F=372, and at 3.57 MHz
# (9,600 baud) 8070 + 8072 alone take most of the PSAM's share of the 200 ms tap (validator.md section 6).
# ISO 7816-3 class A/B cards take 1..5 MHz (section 5.2.3).
CLOCK_HZ = const(5000000)

_F_DEFAULT = const(372)  # Fd, ISO 7816-3 section 7.1: the rate of the ATR and of every card without PPS
_RESET_LOW_CLOCKS = const(500)  # RST low >= 400 clocks after the clock starts (section 6.2.2), with margin
_ATR_FIRST_CLOCKS = const(40000)  # the ATR starts within 400..40,000 clocks after RST rises (section 6.2.2)
_ATR_CHAR_ETU = const(9600)  # at most 9,600 etu between two ATR characters (section 8.1)
_CHAR_ETU = const(12)  # one character: start, 8 data, parity, 2 stop bits (8E2; guard time 12 etu, section 7.2)
_SEEN_ETU = const(10)  # a character is readable at the earliest 10 etu after its leading edge (start + 8 + parity)
_TURNAROUND_ETU = const(16)  # >= 16 etu from the card's last leading edge to ours (section 7.2)
_SLACK_ETU = const(24)  # deadlines count from when we saw a byte, not from its leading edge: two characters more
_SLACK_US = const(2000)  # the UART driver's RX latency (FIFO idle timeout); measure on the board
_DUTY_ON = const(32768)  # 50 % duty cycle for the card clock (section 5.2.3: duty 40..60 %)
_ECHO_MAX = const(261)  # the longest write: a header, or a body of up to 255 bytes, or a PPS request


class LinkFault(Exception):
    """The T=0 link failed (no ATR, bad ATR, timeout, wrong echo, procedure byte out of place, failed PPS)."""


_INVERSE = bytes(inverse(i) for i in range(256))  # the inverse convention's coding, as a direct UART sees it


class T0Line:
    """The line and its activation. Counts: sent, received (card bytes, echoes not counted), resets (cold
    resets), pps (accepted). baud, fi/di, atr: the link as it stands."""

    def __init__(self, uart, pwm, rst, present=None, clock_hz=CLOCK_HZ, clock=None, present_level=1, pps=True):
        if clock is None:
            if not hasattr(time, "ticks_us"):
                raise ValueError("T0Psam on a host needs clock= (an object with ticks_us and sleep_us)")
            clock = time
        self.uart = uart
        self.pwm = pwm
        self.rst = rst
        self.present = present
        self.present_level = present_level
        self.clock_hz = clock_hz
        self._ticks = clock.ticks_us
        self._sleep = clock.sleep_us
        self._try_pps = pps
        self.atr = None
        self.f = 0
        self.fi = _F_DEFAULT
        self.di = 1
        self.baud = 0
        self._etu = 0.0  # microseconds
        self._turn_us = 0
        self._extra = 0  # TC1: extra guard time N, etu (section 8.3)
        self._wwt = 0  # microseconds, with slack
        self._parity = 0
        self._table = None  # the inverse convention's byte table, or None
        self._last_rx = 0
        self._primed = None  # the header T0Psam.prime() sent, its body not yet (a reset forgets it)
        self._b1 = bytearray(1)
        self._echo = bytearray(_ECHO_MAX)
        self._echomv = memoryview(self._echo)
        self._pend = None  # what the last _send wrote, until its echoes are checked
        self._pend_t = self._pend_us = 0
        self._tx = bytearray(1)
        self._rx = bytearray(256)
        self._rxmv = memoryview(self._rx)
        self._raw = bytearray(33)
        self._pps_req = bytearray(4)
        self.sent = self.received = self.exchanges = self.apdus = 0
        self.resets = self.faults = self.pps = 0

    # ---- the line ---------------------------------------------------------------------------------------

    def _us(self, etu):
        return int(self._etu * etu) + 1

    def _set_rate(self, f_, d):
        # The UART baud from the clock the PWM really makes (notes/board.md): clock * D / F.
        self.baud = (self.f * d + f_ // 2) // f_
        self._etu = f_ * 1000000.0 / (d * self.f)
        self._turn_us = self._us(_TURNAROUND_ETU - _SEEN_ETU)  # per rate, not per write
        self.uart.init(baudrate=self.baud, bits=8, parity=self._parity, stop=2, timeout=0, timeout_char=0)

    def _drain(self):
        while self.uart.any():
            self.uart.read()

    def _rawc(self, wait_us, what):
        b = self._b1
        u = self.uart
        if u.any() and u.readinto(b, 1):  # already in (the usual case after a wait elsewhere): no clock read
            return b[0]
        t0 = self._ticks()
        q = self._us(1)
        while True:
            if self.uart.any() and self.uart.readinto(b, 1):
                return b[0]
            if ticks_diff(self._ticks(), t0) > wait_us:
                # Once more: the byte may have come while something else held the CPU between our any() and
                # the clock read (an interrupt, another task): a late look is not a silent card.
                if self.uart.any() and self.uart.readinto(b, 1):
                    return b[0]
                raise LinkFault("%s: nothing within %d us" % (what, wait_us))
            self._sleep(q)

    def _getc(self, wait_us, what):
        if self._pend is not None:
            self._check_echo()
        c = self._rawc(wait_us, what)
        self._last_rx = self._ticks()
        self.received += 1
        return self._table[c] if self._table else c

    def _getn(self, got, n, wait_us):
        # _rx[got:n] from the card, for the data after an INS procedure byte: in one read when all of it is in
        # (the board's UART hands a burst over at once), else character by character, each within wait_us (WWT).
        if self._pend is not None:
            self._check_echo()
        if self._table is None and self.uart.any() >= n - got:
            k = self.uart.readinto(self._rxmv[got:n]) or 0
            if k:
                got += k
                self.received += k
                self._last_rx = self._ticks()
        rx = self._rx
        while got < n:
            rx[got] = self._getc(wait_us, "data")
            got += 1
        return got

    def _send(self, data):
        # Writes and returns: the echoes are checked together before the next byte is read (_check_echo), not
        # one by one. On the board the echo of a lone byte reaches the UART's ring buffer only after its
        # receive-idle timeout, and waiting for each would stretch every character by it; and while the bytes
        # are on the line the CPU is free to prepare the next ones (or, after start(), to talk to the card).
        #
        # The card's last leading edge was >= 10 etu before we saw it: wait the rest of the 16 etu turnaround.
        # Only when that byte is that recent: ticks_us wrap every 2**30 us (17.9 min), so after a quiet spell of
        # more than half that, ticks_diff comes out negative and w would be minutes (the watchdog resets the board
        # in the middle of the next tap).
        turn = self._turn_us
        w = turn - ticks_diff(self._ticks(), self._last_rx)
        if 0 < w <= turn:
            self._sleep(w)
        t = self._table
        n = len(data)
        if self._extra == 0 and t is None:
            # Back to back: the UART's 2 stop bits are the 12 etu guard time (section 7.2).
            t0 = self._ticks()
            if self.uart.write(data) != n:
                raise LinkFault("UART took fewer than %d bytes" % n)
            self._pend_t = t0
            self._pend_us = self._us(n * _CHAR_ETU + _SLACK_ETU) + _SLACK_US
        else:
            # TC1 extra guard time (or the inverse convention's coding): one character per 12 + N etu slot,
            # each written once the previous one's slot is over (section 8.3); the UART sends it meanwhile.
            tx = self._tx
            char = self._us(_CHAR_ETU + self._extra)
            t0 = 0
            for i in range(n):
                tx[0] = t[data[i]] if t else data[i]
                if i:
                    w = char - ticks_diff(self._ticks(), t0)
                    if w > 0:
                        self._sleep(w)
                if self.uart.write(tx) != 1:
                    raise LinkFault("UART took no byte")
                t0 = self._ticks()  # after the write: the byte is on the line by now, not before
            self._pend_t = t0
            self._pend_us = self._us(_CHAR_ETU + _SLACK_ETU) + _SLACK_US
        self._pend = data
        self.sent += n

    def _check_echo(self):
        # The echoes of the last _send, all of them, by its deadline: a missing or different one is a line fault
        # (a card that pulled the line, a short, a collision).
        data = self._pend
        self._pend = None
        n = len(data)
        e = self._echo
        mv = self._echomv
        u = self.uart
        got = 0
        while got < n:
            if u.any():
                k = u.readinto(mv[got:n])
                if k:
                    got += k
                continue
            if ticks_diff(self._ticks(), self._pend_t) > self._pend_us:
                if u.any():
                    continue  # a late look (see _rawc) before calling the line silent
                raise LinkFault("echo: %d of %d bytes came back" % (got, n))
            self._sleep(self._us(1))
        t = self._table
        if t is None and e[:n] == data:
            return
        for i in range(n):  # the inverse convention's coding, or a mismatch to name
            if e[i] != (t[data[i]] if t else data[i]):
                raise LinkFault("wrong echo of byte %d (%02X sent): line fault" % (i, data[i]))

    # ---- activation ---------------------------------------------------------------------------------------

    def _deactivate(self):
        # ISO 7816-3 section 6.4: RST low, then the clock stopped (VCC stays: the slot has no power switch).
        self.atr = None
        self._pend = None
        self._primed = None
        self.rst.value(0)
        self.pwm.duty_u16(0)
        self._drain()

    def _cold_reset(self):
        self.atr = None
        self._pend = None
        self._primed = None
        self.resets += 1
        self.rst.value(0)
        self.pwm.freq(self.clock_hz)
        self.pwm.duty_u16(_DUTY_ON)
        self.f = self.pwm.freq()
        if self.f <= 0:
            raise LinkFault("card clock not running")
        self._table = None
        self._parity = 0
        self._extra = 0
        self.fi, self.di = _F_DEFAULT, 1
        self._set_rate(_F_DEFAULT, 1)
        self._wwt = self._us(_ATR_CHAR_ETU + _SLACK_ETU) + _SLACK_US
        clocks = 1000000.0 / self.f
        self._sleep(int(_RESET_LOW_CLOCKS * clocks) + 1)
        self._drain()
        self.rst.value(1)
        ts = self._rawc(int(_ATR_FIRST_CLOCKS * clocks) + self._us(_CHAR_ETU) + _SLACK_US, "ATR")
        self._last_rx = self._ticks()
        self.received += 1
        raw = self._raw
        if ts == TS_INVERSE_RAW:
            self._table = _INVERSE
            ts = TS_INVERSE
        elif ts != TS_DIRECT:
            raise LinkFault("ATR TS %02X is neither 3B nor 3F" % ts)
        raw[0] = ts
        n = 1
        try:
            while need(raw, n) > n:
                raw[n] = self._getc(self._wwt, "ATR byte %d" % n)
                n += 1
            atr = Atr(raw[:n])
        except ValueError as e:
            raise LinkFault("bad ATR: %s" % e)
        if 0 not in atr.protocols:
            raise LinkFault("the card offers no T=0 (ATR %s)" % atr.raw.hex())
        if self.f > atr.fmax and self.clock_hz > atr.fmax:
            # TA1 says the card takes a slower clock (Table 7): start again at its f(max), from now on.
            self.clock_hz = atr.fmax
            self._deactivate()
            return self._cold_reset()
        if self._table is not None:
            # Inverse convention: what a direct UART calls odd parity is the card's even parity (section 8.1).
            self._parity = 1
            self._set_rate(_F_DEFAULT, 1)
        self._extra = atr.guard if atr.guard != 255 else 0  # TC1 = 255: 12 etu in T=0 (section 8.3)
        self.fi = atr.fi
        if atr.specific is not None:
            if not atr.specific & 0x10:  # TA2 bit 5 = 0: TA1's Fi/Di apply at once (section 6.3.1)
                self.di = atr.di
                self._set_rate(atr.fi, atr.di)
        elif self._try_pps and atr.pps_wanted():
            self._pps(atr)
        # WWT = 960 * WI * Fi / f (section 10.2): a deadline per byte, the 60 procedure byte restarts it.
        self._wwt = int(960.0 * atr.wi * atr.fi * 1000000.0 / self.f) + self._us(_SLACK_ETU) + _SLACK_US
        self.atr = atr
        return atr

    def _pps(self, atr):
        # PPS to exactly what TA1 offers: FF 10 TA1 PCK (section 9.2); an identical answer accepts it.
        r = self._pps_req
        r[0] = 0xFF
        r[1] = 0x10
        r[2] = atr.ta1
        r[3] = 0xFF ^ 0x10 ^ atr.ta1
        self._try_pps = False  # until it works: a retry after a failed PPS stays at F=372
        self._send(r)
        a = self._rx
        a[0] = self._getc(self._wwt, "PPS answer")
        a[1] = self._getc(self._wwt, "PPS0")
        n = 2
        for bit in (0x10, 0x20, 0x40):
            if a[1] & bit:
                a[n] = self._getc(self._wwt, "PPS answer")
                n += 1
        a[n] = self._getc(self._wwt, "PCK")
        n += 1
        x = 0
        for i in range(n):
            x ^= a[i]
        if a[0] != 0xFF or x:
            raise LinkFault("PPS answer %s malformed" % bytes(a[:n]).hex())
        if n == 4 and a[1] == r[1] and a[2] == r[2]:
            self.pps += 1
            self._try_pps = True
            self.di = atr.di
            self._set_rate(atr.fi, atr.di)
        elif a[1] & 0x1F == 0:
            pass  # PPS1 absent: the card keeps Fd/Dd (section 9.3); so do we
        else:
            raise LinkFault("PPS answer %s is neither our request nor a refusal" % bytes(a[:n]).hex())
