"""A PSAM on the ISO 7816-3 T=0 line, byte by byte in model time: the card side of drivers.psam_t0.T0Psam.

    sam = T0Sam()                    # the software SAM (test keys) behind the transport PSAM ATR 3B 6C 00 02 ...
    port = T0Psam(sam.uart, sam.pwm, sam.rst, sam.detect, clock=sam.clock)
    port.transceive(bytes.fromhex("00B095000E"))   # EF15 + 90 00 over T=0; sam.clock.now: microseconds spent

The APDU semantics are tunion.softsam.SoftSam's; this module adds the wire. Model time advances only when the
driver sleeps (clock.sleep_us), so its waits are what the wire costs. Every character takes 12 etu (start, 8 data,
parity, 2 stop) at the rate of its sender, plus TC1's extra guard time for the driver's; it is readable 11 etu
after its leading edge; every byte the driver writes comes back as an echo first. Strict like a card: a byte out
of turn (before the card's last leading edge + 16 etu, or when it expects none), a guard time too short, a wrong
rate or frame format, a bad PPS (wrong PCK, a rate TA1 does not offer), GET RESPONSE without 61xx, RST released
too early: the card goes mute until the next reset and the reason is in `violations`.
Faults to seed: silent (no ATR), silent_after (mute for good after n commands), stall_at (mute at command n
until the next reset), corrupt_at / wrong_echo_at (one byte, counted from 0 over the card's / the driver's
bytes), remove(). Counts: bytes_in, bytes_out, exchanges (command headers), atrs, pps_accepted.
"""
from tunion.compat import ticks_diff
from tunion.softsam import SoftSam, MemoryTtcStore
from drivers.atr import inverse

# The transport PSAM ATR found (notes/board.md: "3B 6C 00 02 ..."): TB1 = 00, TC1 = 02 (2 etu extra guard),
# 12 historical bytes, no TA1 (F = 372 only), no TD1 (T=0 only, no TCK). Its historical bytes were not
# recorded: these 12 are placeholders.
ATR_TRANSPORT = bytes.fromhex("3B6C0002") + b"TEST-PSAM-01"
# A PSAM that offers TA1 = 13 (Fi 372, Di 4: 4x the rate) and TC1 = 1; T=0 only.
ATR_TA1 = bytes.fromhex("3B5413015053414D")
ATR_PLAIN = bytes.fromhex("3B00")  # nothing offered: T=0 at F=372, no extra guard


def with_tck(body):
    """An ATR with its TCK appended (XOR of T0..the last historical byte)."""
    x = 0
    for c in body[1:]:
        x ^= c
    return bytes(body) + bytes((x,))


# TA1 = 13, TC1 = 1, TD1 -> TD2 offering T=0 then T=1: TCK present.
ATR_TA1_T1 = with_tck(bytes.fromhex("3BD41301800150534D31"))

_LEDC_HZ = 80000000  # the ESP32 LEDC's APB source; its divider has 1/16 steps (notes/board.md: 3,571,200 -> 3,575,419)
_CASE3 = (0xA4, 0x70, 0x72, 0x1A, 0xFA, 0xDC, 0xD6)  # commands that carry data to the card (Lc)
_CASE2 = (0xB0, 0xB2, 0x84, 0xCA)  # commands that read (Le)
_CASE4_LE = {(0x80, 0x70): 0x08}  # T=0 sends case 4 as case 3; the card knows its answer length (TTC + MAC1)
_FI = (372, 372, 558, 744, 1116, 1488, 1860, 0, 0, 512, 768, 1024, 1536, 2048, 0, 0)
_DI = (0, 1, 2, 4, 8, 16, 32, 64, 12, 20, 0, 0, 0, 0, 0, 0)
_FMAX = (4e6, 5e6, 6e6, 8e6, 12e6, 16e6, 20e6, 0, 0, 5e6, 7.5e6, 10e6, 15e6, 20e6, 0, 0)  # ISO 7816-3 Table 7
_TOL_US = 1.0


class SimClock:
    """Model time in microseconds; ticks_us wraps as MicroPython's does (2**30)."""

    def __init__(self):
        self.now = 0.0

    def ticks_us(self):
        return int(self.now) & ((1 << 30) - 1)

    def sleep_us(self, us):
        if us < 0:
            raise ValueError("sleep_us(%d)" % us)
        self.now += us

    def ticks_diff(self, a, b):
        return ticks_diff(a, b)


class SimPin:
    def __init__(self, v=0, on_change=None):
        self.v = v
        self.on_change = on_change

    def value(self, v=None):
        if v is None:
            return self.v
        old, self.v = self.v, 1 if v else 0
        if self.on_change is not None and old != self.v:
            self.on_change(self.v)


class SimPwm:
    """machine.PWM for the card clock: freq() answers what the LEDC divider really makes."""

    def __init__(self, card):
        self.card = card
        self.hz = 0
        self.duty = 0

    def freq(self, hz=None):
        if hz is None:
            return self.hz
        self.hz = int(round(_LEDC_HZ * 16.0 / round(_LEDC_HZ * 16.0 / hz)))
        self.card._clock_changed()

    def duty_u16(self, v=None):
        if v is None:
            return self.duty
        self.duty = v
        self.card._clock_changed()


class SimUart:
    """machine.UART on the I/O line: what the driver writes goes on the line (and echoes), reads get the line."""

    def __init__(self, card):
        self.card = card
        self.baud = None
        self.fmt = None
        self.rx = bytearray()
        self.inits = 0

    def init(self, baudrate=9600, bits=8, parity=None, stop=1, timeout=None, timeout_char=None, **kw):
        self._pump(True)  # what arrived at the old setting was decoded at it
        if timeout != 0 or timeout_char != 0:
            self.card.violations.append("UART timeouts must be 0 (deadlines are kept in Python)")
        self.baud = baudrate
        self.fmt = (bits, parity, stop)
        self.inits += 1

    def _pump(self, arrived=False):
        # arrived: hand over whatever has arrived, latency or not (a rate change decodes it at the old rate).
        c = self.card
        due_by = c.clock.now - (0 if arrived else c.rx_latency_us)
        due = sorted((e for e in c.pending if e[0] <= due_by), key=lambda e: e[0])
        if not due:
            return
        c.pending = [e for e in c.pending if e[0] > due_by]
        for ready, b, baud in due:
            if self.baud is None or abs(self.baud - baud) > 0.02 * baud:
                b = 0xFF ^ (b >> 1)  # sampled at the wrong rate: garbage
            self.rx.append(b)

    def any(self):
        self._pump()
        return len(self.rx)

    def read(self, n=None):
        self._pump()
        if not self.rx:
            return None
        n = len(self.rx) if n is None else min(n, len(self.rx))
        out = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return out

    def readinto(self, buf, n=None):
        self._pump()
        n = min(len(buf) if n is None else n, len(self.rx))
        if not n:
            return None
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n

    def write(self, buf):
        buf = bytes(buf)
        for b in buf:
            self.card._from_driver(b)
        return len(buf)


class T0Sam:
    def __init__(self, softsam=None, atr=ATR_TRANSPORT, pps_answer="accept", byte_mode=False, nulls=0, null_gap_us=0,
                 compute_us=0, answer_6c=True, split_response=None, silent=False, silent_after=None,
                 stall_at=None, corrupt_at=None, wrong_echo_at=None, atr_delay_clocks=1000, rx_latency_us=0):
        if softsam is None:
            from sim.rig import sam_keys

            softsam = SoftSam(sam_keys(), MemoryTtcStore(), out=lambda *a: None)
        self.softsam = softsam
        self.atr = bytes(atr)
        self.inverse = self.atr[0] == 0x3F
        self.pps_mode = pps_answer  # "accept", "refuse" (FF 00 FF) or "mute"
        self.byte_mode = byte_mode
        self.nulls = nulls
        self.null_gap_us = null_gap_us
        self.compute_us = compute_us
        self.answer_6c = answer_6c
        self.split_response = split_response
        self.silent = silent
        self.silent_after = silent_after
        self.stall_at = stall_at
        self.corrupt_at = corrupt_at
        self.wrong_echo_at = wrong_echo_at
        self.atr_delay_clocks = atr_delay_clocks
        # A received byte reaches Python this much later than the line (on the board: the UART's FIFO hand-over
        # to its ring buffer, on an idle timeout; psam_t0._SLACK_US assumes <= 2 ms, unmeasured). 0: readable
        # 11 etu after its leading edge.
        self.rx_latency_us = rx_latency_us
        self._parse_atr()
        self.clock = SimClock()
        self.uart = SimUart(self)
        self.pwm = SimPwm(self)
        self.rst = SimPin(0, self._rst_changed)
        self.detect = SimPin(1)
        self.violations = []
        # Guard-time shortfalls up to this many etu are noted in `jitter` instead of muting the card: on the
        # virtual board the line's time is the host's real time, so the latency between the driver's ticks read
        # and its UART write (tens of us, more under load) moves a byte's start (tests/vboard/chips.py sets 1).
        self.jitter_etu = 0.0
        self.jitter = []
        self.pending = []  # (ready_us, line byte, sender's baud)
        self.bytes_in = self.bytes_out = self.exchanges = self.atrs = self.pps_accepted = 0
        self.state = "off"
        self.mute = False
        self.dead = False
        self.clock_on_at = None
        self.last_card_start = -1e18
        self.last_drv_start = -1e18
        self.drv_free = 0.0
        self.card_free = 0.0
        self.F, self.D = 372, 1
        self.expect = 0
        self.buf = []
        self.pending_resp = None
        self.pps_allowed = False
        self.hdr = b""
        self.data = []

    def _parse_atr(self):
        try:
            self._parse_atr_bytes(self.atr)
        except IndexError:
            raise ValueError("simulated ATR %s is shorter than its T0/TDi say" % self.atr.hex())

    def _parse_atr_bytes(self, a):
        y, i, grp = a[1] >> 4, 2, 1
        self.ta1 = None
        self.guard = 0
        while True:
            if y & 1 and grp == 1:
                self.ta1 = a[i]
            if y & 4 and grp == 1:
                self.guard = a[i + (1 if y & 1 else 0) + (1 if y & 2 else 0)]
            n = (y & 1) + ((y >> 1) & 1) + ((y >> 2) & 1) + ((y >> 3) & 1)
            i += n
            if not y & 8:
                break
            y = a[i - 1] >> 4
            grp += 1
        if self.guard == 255:
            self.guard = 0

    # ---- the line ---------------------------------------------------------------------------------------

    @property
    def f(self):
        return self.pwm.hz if self.pwm.duty else 0

    def etu_us(self):
        return self.F * 1e6 / (self.D * self.pwm.hz)

    def card_baud(self):
        return self.pwm.hz * self.D / self.F

    def violate(self, why):
        self.violations.append(why)
        self.mute = True
        self.expect = 0

    def _line(self, b):
        return inverse(b) if self.inverse else b

    def _emit(self, data, t0, gap_us=0.0):
        """Send card bytes from time t0 on, 12 etu apart (or gap_us when larger)."""
        e = self.etu_us()
        t = max(t0, self.card_free)
        for b in data:
            if self.corrupt_at is not None and self.bytes_out == self.corrupt_at:
                b ^= 0x10
                self.corrupt_at = None
            self.bytes_out += 1
            self.pending.append((t + 11 * e, self._line(b), self.card_baud()))
            self.last_card_start = t
            self.card_free = t + 12 * e
            t += max(12 * e, gap_us)
        return t

    def _from_driver(self, b):
        c = self.clock
        drv_char = 12e6 / self.uart.baud
        start = max(c.now, self.drv_free)
        self.drv_free = start + drv_char
        i = self.bytes_in
        self.bytes_in += 1
        if self.wrong_echo_at is not None and i == self.wrong_echo_at:
            b ^= 0x01  # a fault on the line: the card sees it too
            self.wrong_echo_at = None
        self.pending.append((start + 11 * drv_char / 12, b, self.uart.baud))
        prev, self.last_drv_start = self.last_drv_start, start
        if self.state == "off" or self.mute:
            return
        e = self.etu_us()
        fmax = _FMAX[self.ta1 >> 4] if self.ta1 is not None else 5e6
        if self.pwm.hz > fmax:
            return self.violate("card clock %d Hz above the f(max) %d Hz of its TA1" % (self.pwm.hz, fmax))
        if self.uart.fmt != (8, 1 if self.inverse else 0, 2):
            return self.violate("driver byte %d sent as %r, the card wants 8 bits, %s parity, 2 stop bits" % (
                i, self.uart.fmt, "odd (inverse convention)" if self.inverse else "even"))
        if abs(self.uart.baud - self.card_baud()) > 0.02 * self.card_baud():
            return self.violate("driver byte %d at %d baud, the card is at %.0f" % (i, self.uart.baud, self.card_baud()))
        if start + _TOL_US < prev + (12 + self.guard) * e:
            msg = "driver byte %d only %.1f etu after the previous one (guard time %d etu)" % (
                i, (start - prev) / e, 12 + self.guard)
            if start + _TOL_US + self.jitter_etu * e < prev + (12 + self.guard) * e:
                return self.violate(msg)
            self.jitter.append(msg)  # within the host's timing noise (see jitter_etu): noted, not fatal
        if start + _TOL_US < self.last_card_start + 16 * e:
            return self.violate("driver byte %02X sent %.1f etu after the card's last byte: out of turn "
                                "(before the procedure byte, or < 16 etu)" % (b, (start - self.last_card_start) / e))
        if self.expect <= 0:
            return self.violate("driver byte %02X when the card expected none (state %s)" % (b, self.state))
        self._receive(self._line(b), start)

    # ---- activation -------------------------------------------------------------------------------------

    def _cancel(self):
        now = self.clock.now
        self.pending = [p for p in self.pending if p[0] <= now]
        self.card_free = now

    def _off(self):
        self.state = "off"
        self.expect = 0
        self._cancel()

    def _clock_changed(self):
        if self.f:
            if self.clock_on_at is None:
                self.clock_on_at = self.clock.now
            elif self.state != "off":
                self.violate("card clock changed while the card is active")
        else:
            self.clock_on_at = None
            self._off()

    def _rst_changed(self, v):
        if not v:
            self._off()
            return
        if self.dead or self.silent or not self.detect.v:
            return
        if not self.f:
            return
        self.mute = False
        if self.clock.now - self.clock_on_at + _TOL_US < 400 * 1e6 / self.f:
            self.violate("RST released %.0f clocks after the clock started (at least 400)" % (
                (self.clock.now - self.clock_on_at) * self.f / 1e6))
            return
        self.softsam.reset()
        self.F, self.D = 372, 1
        self.atrs += 1
        self.pending_resp = None
        self.card_free = 0.0
        self._emit(self.atr, self.clock.now + self.atr_delay_clocks * 1e6 / self.f)
        self.state = "idle"
        self.pps_allowed = True
        self.buf = []
        self.expect = 5

    def remove(self):
        """The PSAM leaves its slot: the presence switch opens and nothing answers."""
        self.detect.v = 0
        self.dead = True
        self._off()

    def insert(self):
        self.detect.v = 1
        self.dead = False

    # ---- the card's protocol ----------------------------------------------------------------------------

    def _after(self, start, extra_us=0.0):
        return start + 16 * self.etu_us() + extra_us

    def _receive(self, b, start):
        self.expect -= 1
        self.buf.append(b)
        st = self.state
        if st == "idle":
            if len(self.buf) == 1 and b == 0xFF and self.pps_allowed:
                self.state = "pps"
                self.expect = 1
            elif len(self.buf) == 5:
                self._header(start)
        elif st == "pps":
            if len(self.buf) == 2:
                self.expect = ((b >> 4) & 1) + ((b >> 5) & 1) + ((b >> 6) & 1) + 1
            elif self.expect == 0:
                self._pps(start)
        elif st == "data":
            self.data.append(b)
            left = self.hdr[4] - len(self.data)
            if left == 0:
                self._command(self.hdr[:5] + bytes(self.data), start)
            elif self.expect == 0:  # byte mode: the next ~INS
                self._emit(bytes((self.hdr[1] ^ 0xFF,)), self._after(start))
                self.expect = 1

    def _pps(self, start):
        req = bytes(self.buf)
        x = 0
        for c in req:
            x ^= c
        if x:
            return self.violate("PPS %s with a wrong PCK" % req.hex())
        if req[1] & 0x0F:
            return self.violate("PPS for T=%d, the card does T=0" % (req[1] & 0x0F))
        pps1 = req[2] if req[1] & 0x10 else 0x11
        if pps1 != 0x11 and pps1 != self.ta1:
            return self.violate("PPS1 %02X is not what TA1 (%s) offers" % (pps1, self.ta1))
        if self.pps_mode == "mute":
            self.mute = True
            return
        self.state = "idle"
        self.pps_allowed = False
        self.buf = []
        self.expect = 5
        if self.pps_mode == "accept":
            self._emit(req, self._after(start))
            self.F, self.D = _FI[pps1 >> 4], _DI[pps1 & 0x0F]
            self.pps_accepted += 1
        else:
            self._emit(b"\xff\x00\xff", self._after(start))

    def _work(self, t):
        """The card computes for compute_us (microseconds, or a dict of them by INS) from t, sending `nulls` 60 bytes null_gap_us apart meanwhile:
        -> when it answers."""
        c = self.compute_us
        if isinstance(c, dict):  # per INS: {0x70: 12000, 0x72: 3000}
            c = c.get(self.hdr[1] if self.hdr else -1, 0)
        if self.nulls:
            t1 = self._emit(b"\x60" * self.nulls, t + self.null_gap_us, self.null_gap_us)
            return max(t + c, t1)
        return t + c

    def _sw(self, sw, t):
        """Final answer SW1 SW2; the card is ready for the next command."""
        self._emit(sw, max(t, self.card_free))
        self.state = "idle"
        self.buf = []
        self.expect = 5

    def _more(self, rest, t):
        # 61xx: xx bytes wait for GET RESPONSE; a card may announce them in pieces (split_response).
        self.pending_resp = rest
        n = len(rest) if not self.split_response else min(len(rest), self.split_response)
        self._sw(bytes((0x61, n & 0xFF)), t)

    def _header(self, start):
        hdr = bytes(self.buf)
        self.hdr = hdr
        self.exchanges += 1
        self.pps_allowed = False
        self.buf = []
        if self.silent_after is not None and self.exchanges > self.silent_after:
            self.dead = True
            self.mute = True
            return
        if self.stall_at is not None and self.exchanges == self.stall_at:
            self.stall_at = None
            self.mute = True
            return
        cla, ins, p3 = hdr[0], hdr[1], hdr[4]
        t = self._after(start)
        if ins == 0xC0:
            if self.pending_resp is None:
                return self.violate("GET RESPONSE without a 61xx before it")
            return self._send_data(self.pending_resp, p3, t, True)
        self.pending_resp = None
        if ins & 0xF0 in (0x60, 0x90) or (ins not in _CASE3 and ins not in _CASE2):
            return self._sw(b"\x6d\x00", t)
        if ins in _CASE3:
            if p3 == 0:
                return self._command(hdr[:4], start)
            self.state = "data"
            self.data = []
            self.expect = 1 if self.byte_mode else p3
            self._emit(bytes((ins ^ 0xFF if self.byte_mode else ins,)), t)
            return
        r = self.softsam.transceive(hdr)
        t = self._work(t)
        if r[-2:] == b"\x90\x00" and len(r) - 2 == (p3 or 256):
            return self._send_data(r[:-2], p3, t, False)
        if r[-2:] == b"\x67\x00" or r[-2:] == b"\x90\x00":
            probe = self.softsam.transceive(hdr[:4] + b"\x00")
            if probe[-2:] == b"\x90\x00" and self.answer_6c:
                return self._sw(bytes((0x6C, len(probe) - 2)), t)
            return self._sw(b"\x67\x00", t)
        self._sw(r[-2:], t)

    def _send_data(self, data, p3, t, from_pending):
        n = p3 or 256
        if n > len(data):
            return self._sw(bytes((0x6C, len(data))), t)
        ins = self.hdr[1]
        if self.byte_mode:
            out = bytearray()
            for c in data[:n]:
                out += bytes((ins ^ 0xFF, c))
        else:
            out = bytes((ins,)) + bytes(data[:n])
        t = self._emit(out, t)
        rest = data[n:]
        self.pending_resp = None
        if rest:
            return self._more(rest, t)
        self._sw(b"\x90\x00", t)

    def _command(self, apdu, start):
        key = (apdu[0], apdu[1])
        if key in _CASE4_LE and len(apdu) > 5:
            apdu = apdu + bytes((_CASE4_LE[key],))
        r = self.softsam.transceive(apdu)
        t = self._work(self._after(start))
        if len(r) > 2 and r[-2:] == b"\x90\x00":
            return self._more(r[:-2], t)
        self._sw(r[-2:], t)

    # ---- for tests --------------------------------------------------------------------------------------

    def wwt_us(self, wi=10):
        """The work waiting time at the ATR's Fi: 960 * WI * Fi / f (ISO 7816-3 section 10.2)."""
        fi = _FI[self.ta1 >> 4] if self.ta1 is not None else 372
        return 960.0 * wi * fi * 1e6 / self.pwm.hz
