"""A strict PN532 on a simulated wire: real frames over a UART or I2C stand-in, a microsecond clock, counts.

    clock = SimClock(); chip = Pn532Chip(clock, card=make_card())
    uart = SimUart(chip)                          # sim.pn532wire: machine.UART as the driver sees it
    pn = Pn532Uart(uart, clock=clock).boot()      # the driver reads clock.ticks_us()
    chip.corrupt_next_answer(); chip.nack_next(); chip.drop_answer_bytes(3)   # faults, once each
    chip.corrupt_next_ack(); chip.drop_command_bytes(4); chip.rf_error_next(0x02)

Frames per PN532 User Manual UM0701-02 6.2: 00 00 FF LEN LCS D4 cmd.. DCS 00, ACK 00 00 FF 00 FF 00, NACK
00 00 FF FF 00 00, error frame 00 00 FF 01 FF 7F 81 00. Like the chip, a frame with a bad LCS or DCS (or no
D4) is ignored: no ACK. Commands: GetFirmwareVersion, SAMConfiguration, RFConfiguration, PowerDown, SetSerialBaudRate
(the rate changes once the host's ACK has arrived; a byte sent at one rate and received at another is
garbage to either side), InListPassiveTarget (106 kbps type A, RATS when SAK says ISO 14443-4; with the
power-on MxRtyPassiveActivation FF and no card it never answers until the host's ACK cancels it),
InDataExchange to `card.transceive` (a CardLost from the card becomes status 01; answers over 252 bytes go
out in pieces with MI), InRelease. Anything else gets the error frame.
Times (estimates, not measured): ACK 100 us after a frame, commands 200 us, activation 4 ms, a passive
activation attempt without a card 2 ms, RF at 106 kbps 85 us a byte plus the card's `card_us`, a card that
does not answer 51.2 ms; UART bytes 10 bits at the current rate, I2C bytes 9 bits at `freq`.
"""
from tunion.errors import CardLost

FOREVER = 1 << 62
TICKS_MASK = 0x3FFFFFFF  # MicroPython's ticks wrap at 2**30 (a mask: 2**30 itself is no small int there)
_TICKS_HALF = 0x20000000
ACK = bytes((0, 0, 0xFF, 0, 0xFF, 0))
NACK = bytes((0, 0, 0xFF, 0xFF, 0, 0))
ERROR_FRAME = bytes((0, 0, 0xFF, 1, 0xFF, 0x7F, 0x81, 0))
BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1288000)  # SetSerialBaudRate codes 0..8
FIRMWARE = bytes((0x32, 0x01, 0x06, 0x07))  # IC PN532, version 1.6, ISO 14443 A + B + 18092
CHUNK = 252  # card data in one normal answer frame: D5 41 status + 252 = LEN 255
ACK_US = 100
CMD_US = 200
ACTIVATE_US = 4000
ATTEMPT_US = 2000
RF_BYTE_US = 85  # 9 bits (8 + parity) at 105.9 kbit/s
RF_TIMEOUT_US = 51200
SWITCH_US = 1000  # the chip takes its new rate this long after the host's ACK
_RF_ITEM_LEN = {0x01: 1, 0x02: 3, 0x04: 1, 0x05: 3, 0x0A: 11, 0x0B: 8, 0x0C: 3, 0x0D: 9}  # UM0701-02 7.3.1


def frame(payload):
    """00 00 FF LEN LCS payload DCS 00 for a normal information frame."""
    n = len(payload)
    if not 0 < n <= 255:
        raise ValueError("normal frame payload is 1..255 bytes")
    return bytes((0, 0, 0xFF, n, (-n) & 0xFF)) + bytes(payload) + bytes(((-sum(payload)) & 0xFF, 0))


def garble(b):
    # A byte clocked at the wrong rate: never itself, never 00 (so a false start code stays unlikely).
    return ((b * 7) + 0x3D) & 0xFF or 0x3D


class SimClock:
    """Microsecond clock with MicroPython's ticks API. Each ticks_us() read costs `poll_us` (the host's loop);
    a stand-in that just told the host "nothing yet" sets `wake_at`, and the next read jumps to it, but by
    at most `max_jump_us`, so a host deadline before that byte is still seen within that much of its time."""

    def __init__(self, poll_us=20, max_jump_us=500):
        self.now = 0
        self.poll_us = poll_us
        self.max_jump_us = max_jump_us
        self.wake_at = None

    def ticks_us(self):
        self.now += self.poll_us
        if self.wake_at is not None:
            w = min(self.wake_at, self.now + self.max_jump_us)
            if w > self.now:
                self.now = int(w) + (1 if w > int(w) else 0)  # whole microseconds: ints never touch the heap
            self.wake_at = None
        return self.now & TICKS_MASK

    def ticks_ms(self):
        return (self.now // 1000) & TICKS_MASK

    def ticks_add(self, t, d):
        return (t + d) & TICKS_MASK

    def ticks_diff(self, a, b):
        return ((a - b + _TICKS_HALF) & TICKS_MASK) - _TICKS_HALF

    def sleep_us(self, us):
        self.now += us

    def sleep_ms(self, ms):
        self.now += ms * 1000


class Pn532Chip:
    def __init__(self, clock, card=None, uid=b"\x04\xa1\xb2\xc3", sak=0x20, ats=b"\x05\x78\x80\x70\x02",
                 card_us=2000):
        self.clock = clock
        self.card = card
        self.uid = bytes(uid)
        self.sak = sak
        self.ats = bytes(ats)
        self.card_us = card_us
        self.transport = None
        self.i2c = False  # set by the I2C wire: no 55 55 wake-up there
        self.power_on()
        self.frames_in = self.frames_out = self.bytes_in = self.bytes_out = 0
        self.acks_in = self.nacks_in = self.ignored = self.garbled_in = self.cancelled = 0
        self.commands = {}  # command code -> count
        self.rf_apdus = 0
        self._nack_next = False
        self._corrupt_next = None
        self._drop_answer = None  # (count, offset)
        self._drop_in = 0
        self._rf_error = 0
        self._corrupt_ack = False

    def power_on(self):
        """Power-up or reset: asleep (HSU needs the 55 55 wake-up), 115200 baud, power-on RF settings."""
        self.asleep = True
        self.baud = 115200
        self._switch = None  # (time, new rate)
        self._pending_baud = None
        self.max_retries_passive = 0xFF
        self.sam_mode = None
        self.target = None
        self._rest = b""  # MI remainder of a card answer
        self._last = None
        self._busy_until = 0
        self._sleep_after = False
        self._st = 0
        self._prev = -1
        self._wake = 0

    # ---- faults, once each
    def nack_next(self):
        """Answer the next command with a NACK (not executed)."""
        self._nack_next = True

    def corrupt_next_answer(self, at=None):
        """Send the next answer frame with one byte changed on the wire: its DCS, or the byte at offset `at`
        (the chip keeps the good frame: a NACK brings it)."""
        self._corrupt_next = -2 if at is None else at

    def corrupt_next_ack(self):
        """Send the next ACK with its LEN byte changed on the wire (the command still runs)."""
        self._corrupt_ack = True

    def drop_answer_bytes(self, n, at=6):
        """The next answer frame loses n bytes from offset `at` on the wire."""
        self._drop_answer = (n, at)

    def rf_error_next(self, code):
        """The next InDataExchange to the card fails on the RF side with this status (02 CRC, 03 parity...),
        after the card processed the APDU (its answer is lost)."""
        self._rf_error = code

    def drop_command_bytes(self, n):
        """The next n bytes from the host never reach the chip."""
        self._drop_in = n

    # ---- the wire
    def baud_at(self, t):
        if self._switch is not None and t >= self._switch[0]:
            self.baud = self._switch[1]
            self._switch = None
        return self.baud

    def receive(self, b, t, baud=None):
        """One byte from the host arriving at time t (sent at `baud`, None on I2C)."""
        if self._drop_in:
            self._drop_in -= 1
            return
        self.bytes_in += 1
        if baud is not None and baud != self.baud_at(t):
            b = garble(b)
            self.garbled_in += 1
        if self.asleep:
            self._wake = self._wake + 1 if b == 0x55 else 0
            if self._wake >= 2:
                self.asleep = False
            return
        self._parse(b, t)

    def _emit(self, data, t, answer=True):
        if answer:
            self._last = data
            if self._corrupt_next is not None:
                i = self._corrupt_next % len(data)
                self._corrupt_next = None
                data = data[:i] + bytes(((data[i] ^ 0x5A),)) + data[i + 1 :]
            if self._drop_answer is not None:
                n, at = self._drop_answer
                self._drop_answer = None
                data = data[:at] + data[at + n :]
        elif self._corrupt_ack and data == ACK:
            self._corrupt_ack = False
            data = data[:3] + b"\x5a" + data[4:]
        self.frames_out += 1
        self.bytes_out += len(data)
        self.transport.emit(data, t, self.baud_at(t))

    # ---- the frame parser (states: 0 start code, 1 LEN, 2 LCS, 3 data, 4 DCS, 5 postamble, 6 ACK/NACK end)
    def _parse(self, b, t):
        st = self._st
        if st == 0:
            if self._prev == 0 and b == 0xFF:
                self._st = 1
            self._prev = b
            return
        self._prev = -1
        if st == 1:
            self._len = b
            self._st = 2
        elif st == 2:
            n = self._len
            if (n == 0 and b == 0xFF) or (n == 0xFF and b == 0):
                self._st = 6
            elif (n + b) & 0xFF or n == 0:
                self.ignored += 1  # bad LCS, or FF FF (extended frames are not modelled): no ACK
                self._st = 0
            else:
                self._data = bytearray()
                self._st = 3
        elif st == 3:
            self._data.append(b)
            if len(self._data) == self._len:
                self._st = 4
        elif st == 4:
            self._dcs_ok = (sum(self._data) + b) & 0xFF == 0
            self._st = 5
        elif st == 5:
            self._st = 0
            if self._dcs_ok and b == 0 and self._data[0] == 0xD4 and len(self._data) >= 2:
                self.frames_in += 1
                self._command(bytes(self._data), t)
            else:
                self.ignored += 1
        elif st == 6:
            self._st = 0
            self.frames_in += 1
            if self._len == 0:
                self._host_ack(t)
            else:
                self._host_nack(t)

    def _host_ack(self, t):
        self.acks_in += 1
        if self._pending_baud is not None:
            self._switch = (t + SWITCH_US, self._pending_baud)
            self._pending_baud = None
        elif t < self._busy_until:
            self.cancelled += 1  # UM0701-02 6.2.1.3: an ACK aborts the command in progress
            self.transport.cancel(t)
            self._busy_until = t

    def _host_nack(self, t):
        self.nacks_in += 1
        if self._last is not None and t >= self._busy_until:
            self._emit(self._last, t + ACK_US)

    def _command(self, data, t):
        if t < self._busy_until:
            self.ignored += 1  # still working on the previous command
            return
        self._pending_baud = None
        if self._nack_next:
            self._nack_next = False
            self._emit(NACK, t + ACK_US, answer=False)
            return
        cmd = data[1]
        self.commands[cmd] = self.commands.get(cmd, 0) + 1
        self._emit(ACK, t + ACK_US, answer=False)
        handler = {0x02: self._firmware, 0x14: self._sam, 0x32: self._rf, 0x10: self._baud, 0x4A: self._list,
                   0x40: self._exchange, 0x52: self._release, 0x16: self._power_down}.get(cmd)
        payload, us = handler(data[2:]) if handler else (None, CMD_US)
        t_done = t + ACK_US + len(ACK) * self._byte_us() + us
        if us >= FOREVER:
            self._busy_until = FOREVER
            return
        self._busy_until = t_done
        if handler is None or payload is None:
            self._emit(ERROR_FRAME, t_done)
        else:
            self._emit(frame(bytes((0xD5, cmd + 1)) + payload), t_done)
        if self._sleep_after:
            self._sleep_after = False
            self.asleep = not self.i2c  # the I2C address wakes it anyway
            self._wake = 0

    def _byte_us(self):
        return self.transport.byte_us(self.baud)

    # ---- commands: (payload after D5 cmd+1, or None for the error frame; microseconds)
    def _firmware(self, p):
        return (FIRMWARE if not p else None), CMD_US

    def _sam(self, p):
        if not 1 <= len(p) <= 3 or not 1 <= p[0] <= 4:
            return None, CMD_US
        self.sam_mode = p[0]
        return b"", CMD_US

    def _rf(self, p):
        if not p or _RF_ITEM_LEN.get(p[0]) != len(p) - 1:
            return None, CMD_US
        if p[0] == 0x05:
            self.max_retries_passive = p[3]
        return b"", CMD_US

    def _baud(self, p):
        if len(p) != 1 or p[0] >= len(BAUDS):
            return None, CMD_US
        self._pending_baud = BAUDS[p[0]]  # taken once the host ACKs this answer (UM0701-02 7.2.13)
        return b"", CMD_US

    def _card_here(self):
        return self.card is not None and getattr(self.card, "in_field", True)

    def _list(self, p):
        if len(p) < 2 or not 1 <= p[0] <= 2:
            return None, CMD_US
        self.target = None
        self._rest = b""
        if p[1] != 0x00 or not self._card_here():
            if self.max_retries_passive == 0xFF:
                return b"", FOREVER
            return b"\x00", ATTEMPT_US * (self.max_retries_passive + 1)
        if hasattr(self.card, "present"):
            self.card.present()  # a fresh activation: the card starts with nothing selected
        self.target = 1
        out = bytes((1, 1, 0x00, 0x04, self.sak, len(self.uid))) + self.uid
        if self.sak & 0x20:
            out += self.ats  # RATS done by the chip; the ATS with its TL byte
        return out, ACTIVATE_US

    def _exchange(self, p):
        if not p:
            return None, CMD_US
        if self.target is None or p[0] & 0x3F != self.target:
            return b"\x27", CMD_US  # command not acceptable in the current context
        data = p[1:]
        if not data:
            if not self._rest:
                return b"\x27", CMD_US
            return self._piece(), CMD_US
        self._rest = b""
        self.rf_apdus += 1
        try:
            resp = self.card.transceive(bytes(data))
        except CardLost:
            return b"\x01", RF_TIMEOUT_US  # the target did not answer
        if self._rf_error:
            code = self._rf_error
            self._rf_error = 0
            return bytes((code,)), RF_TIMEOUT_US
        self._rest = bytes(resp)
        us = (len(data) + 3 + len(resp) + 3) * RF_BYTE_US + self.card_us
        return self._piece(), us

    def _piece(self):
        piece = self._rest[:CHUNK]
        self._rest = self._rest[CHUNK:]
        return bytes((0x40 if self._rest else 0x00,)) + piece

    def _power_down(self, p):
        # PowerDown (UM0701-02 7.2.11): WakeUpEnable [GenerateIRQ]; asleep once the answer is out, after
        # which HSU needs 55 55 again. The RF field goes off: the target is gone.
        if not 1 <= len(p) <= 2:
            return None, CMD_US
        self._sleep_after = True
        self.target = None
        return b"\x00", CMD_US

    def _release(self, p):
        if len(p) != 1:
            return None, CMD_US
        if p[0] == 0 or p[0] == self.target:
            self.target = None
            self._rest = b""
        return b"\x00", CMD_US

    def counts(self):
        return {"frames_in": self.frames_in, "frames_out": self.frames_out, "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out, "ignored": self.ignored, "nacks_in": self.nacks_in,
                "cancelled": self.cancelled, "rf_apdus": self.rf_apdus}
