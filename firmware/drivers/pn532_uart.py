"""The PN532 on a `machine.UART` (HSU): wake-up, baud switch to 921600, frames read to the length they announce.

    from drivers.pn532_uart import Pn532Uart
    pn = Pn532Uart(machine.UART(1, 115200, tx=17, rx=16, timeout=0, timeout_char=0))
    pn.boot(921600)       # MaxRetries, then SetSerialBaudRate with its handshake

The UART is injected: anything with write, read(n) -> bytes|None, readinto(buf) -> n|None, any() and
init(baudrate=...). It must run with timeout=0 and timeout_char=0: machine.UART timeouts come in 10 ms FreeRTOS
ticks and timeout_char delivers lone bytes late (board.md), so every wait here is a ticks_us deadline polled in
Python, and every read asks for exactly the bytes the frame announced (no `length + 7` over-read).
After an ESP32 soft reset the PN532 keeps its last rate: wake-up tries the host's rate, then the others in
`rates`; with a reset pin (drivers/digitalio.DigitalInOut) the base's reset() pulse brings it back to 115200.
"""
from tunion.compat import const
from drivers.pn532 import (Pn532Link, Pn532Error, F_NONE, F_BAD, F_ACK, F_NACK, F_DATA, ACK, BUF_SIZE,
                           FRAME_SLACK_US, CMD_SETSERIALBAUDRATE, default_clock)

# SetSerialBaudRate BR codes 0..8 (UM0701-02 section 7.2.13).
BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1288000)
_POWER_ON_BAUD = const(115200)  # HSU rate after power-up or reset (UM0701-02 6.2.3)
_SWITCH_MS = const(20)  # wait after our ACK before the host changes rate (board.md)
# HSU wake-up: 55 55 then zeros while the PN532's oscillator starts (UM0701-02 6.2.2; libnfc sends 16 bytes).
_WAKEUP = b"\x55\x55" + bytes(14)
_CHUNK = const(64)  # read at least this much at once unless the frame's rest is shorter
_RXBUF = const(512)  # UART receive ring buffer: a whole 264-byte frame fits while we poll
_PREAMBLE = b"\x00\x00\xff"  # preamble and start code (UM0701-02 6.2.1.1)


class Pn532Uart(Pn532Link):
    def __init__(self, uart, baudrate=_POWER_ON_BAUD, rates=(_POWER_ON_BAUD, 921600), reset=None, clock=None,
                 debug=False):
        self._uart = uart
        self._set_rate(baudrate)
        self._rates = rates
        self._rx = bytearray(BUF_SIZE)
        self._rxmv = memoryview(self._rx)
        self._scratch = bytearray(32)
        self._b3 = bytearray(3)
        self._head = self._rxmv[0:3]  # LEN, LCS and the byte after: read straight into _rx
        self.discarded = 0  # stale bytes drained before a command
        self._link_init(clock)
        super().__init__(debug=debug, reset=reset)  # base: reset() -> _wakeup(), then GetFirmwareVersion

    @property
    def baudrate(self):
        return self._rate

    def _set_rate(self, rate):
        self._rate = rate
        self._byte_us = (10000000 + rate - 1) // rate  # 8N1: 10 bits a byte

    def _switch_host(self, rate):
        self._uart.init(baudrate=rate, timeout=0, timeout_char=0)  # init() also discards pending input
        self._set_rate(rate)

    # ---- bus hooks of the base class
    def _wakeup(self):
        """55 55 00.. then SAMConfiguration (the first command after wake-up), at the host's rate and then at
        each other rate in `rates` until the PN532 answers."""
        self.low_power = False
        tried = []
        for rate in (self._rate,) + tuple(self._rates):
            if rate in tried:
                continue
            tried.append(rate)
            if rate != self._rate:
                self._switch_host(rate)
            self._send(_WAKEUP)
            try:
                self.sam_configuration()
                return
            except Pn532Error:
                pass
        raise Pn532Error("no PN532 answers at %s baud" % "/".join(str(r) for r in tried))

    def _wait_ready(self, timeout):
        deadline = self._deadline(int(timeout * 1000000))
        while not self._uart.any():
            if self._expired(deadline):
                return False
        return True

    def _read_data(self, count):
        # As the stock class: up to `count` bytes, BusyError only when none came (the base over-reads).
        buf = bytearray(count)
        got = self._read_into(memoryview(buf), 0, count, self._deadline(count * self._byte_us + FRAME_SLACK_US))
        if not got:
            from adafruit_pn532.adafruit_pn532 import BusyError  # pyright: ignore[reportMissingImports]

            raise BusyError("PN532: no data")
        return bytes(buf[:got])

    def _write_data(self, framebytes):
        self._drain()
        self._send(framebytes)

    # ---- what Pn532Link needs
    def _send(self, buf):
        self._uart.write(buf)
        self.bytes_out += len(buf)

    def _drain(self):
        # machine.UART has no reset_input_buffer: read away whatever is left from an abandoned answer.
        u = self._uart
        while u.any():
            n = u.readinto(self._scratch)
            if not n:
                break
            self.discarded += n
            self.bytes_in += n

    def _read_into(self, mv, off, n, deadline):
        # Read when the rest (or a good chunk of it) is there: each readinto takes a memoryview slice, and
        # bytes trickle in one by one at 921600 while we poll.
        got = 0
        u = self._uart
        while got < n:
            a = u.any()
            if a < n - got and a < _CHUNK:  # not yet: the clock is read only then
                if not self._expired(deadline):
                    continue
                if not a:
                    break  # what arrived by the deadline is still read; nothing did
            k = u.readinto(mv[off + got : off + n])
            if k:
                got += k
        self.bytes_in += got
        return got

    def _read_raw(self, deadline, ack):
        # The board's usual case in as few steps as it takes: a whole frame is in, from its own 00 00 FF (on the
        # board a frame reaches the ring buffer whole, at the UART's receive timeout). Everything else (a frame
        # still coming, stale bytes before it, an ACK or NACK, a damaged one) goes the general way.
        u = self._uart
        a = u.any()
        if a < 6:  # every frame has at least six bytes (an ACK)
            return self._read_search(deadline, None)
        b3 = self._b3
        if u.readinto(b3) != 3:
            return F_BAD  # fewer than any() said: a damaged frame is asked for again
        self.bytes_in += 3
        if b3 != _PREAMBLE:
            return self._read_search(deadline, b3)
        if u.readinto(self._head) != 3:
            return F_BAD
        self.bytes_in += 3
        rx = self._rx
        ln = rx[0]
        if ln + rx[1] != 0x100 or a < ln + 7:  # an ACK or NACK, a bad LCS, or the rest still coming
            return self._read_rest(deadline)
        if u.readinto(self._rxmv[3 : 4 + ln]) != ln + 1:
            return F_BAD
        self.bytes_in += ln + 1
        self.frames_in += 1
        return F_DATA

    def _read_search(self, deadline, first):
        # The start code 00 FF after any zeros or stale bytes, then LEN, LCS and one byte more (an ACK's or
        # NACK's postamble, or an answer's TFI: every frame has at least these three after its start code, so
        # this never reads into the next one). `first`: three bytes _read_raw took that were not 00 00 FF (six
        # or more were in then), or None (fewer than six were in).
        u = self._uart
        b1 = self._b1
        prev = -1
        seen = False
        quick = False
        got_len = -1
        if first is None:
            # Wait for six, but a frame cut short of six waits no longer than the rest of a frame did before
            # (FRAME_SLACK_US) once three are in.
            a = u.any()
            until = deadline
            short = False
            while a < 6:
                if self._expired(until):
                    a = u.any()
                    if not a:
                        return F_NONE
                    break
                if a >= 3 and not short:
                    until = self._deadline(3 * self._byte_us + FRAME_SLACK_US)
                    short = True
                a = u.any()
            if a >= 3 and u.readinto(self._b3) == 3:
                self.bytes_in += 3
                first = self._b3
        else:
            a = 6
        if first is not None:
            seen = True
            if first == _PREAMBLE or (first[1] == 0 and first[2] == 0xFF):
                prev = -2  # found (the second form: one stale byte first)
                quick = a >= 6  # and the next three are in already
            elif first[0] == 0 and first[1] == 0xFF:
                prev = -2  # found, and LEN read with it
                got_len = first[2]
            else:
                prev = first[2]
        while prev != -2:
            if u.any():
                if not u.readinto(b1):
                    continue
                self.bytes_in += 1
                seen = True
                if prev == 0 and b1[0] == 0xFF:
                    break
                prev = b1[0]
            elif self._expired(deadline):
                return F_BAD if seen else F_NONE
        rx = self._rx
        mv = self._rxmv
        slack = FRAME_SLACK_US
        if got_len >= 0:
            rx[0] = got_len
            if self._read_into(mv, 1, 2, self._deadline(2 * self._byte_us + slack)) < 2:
                return F_BAD
        elif quick:  # the three came with the start code, read without a deadline
            k = u.readinto(self._head) or 0
            self.bytes_in += k
            if k < 3 and self._read_into(mv, k, 3 - k, self._deadline(3 * self._byte_us + slack)) < 3 - k:
                return F_BAD
        elif self._read_into(mv, 0, 3, self._deadline(3 * self._byte_us + slack)) < 3:
            return F_BAD
        return self._read_rest(deadline)

    def _read_rest(self, deadline):
        # After LEN, LCS and the byte after them: an ACK or NACK is whole; an answer's rest is read to its length.
        rx = self._rx
        ln = rx[0]
        lcs = rx[1]
        if (ln == 0 and lcs == 0xFF) or (ln == 0xFF and lcs == 0):
            self.frames_in += 1
            return F_ACK if ln == 0 else F_NACK
        if (ln + lcs) & 0xFF:
            return F_BAD  # includes FF FF, an extended frame: the PN532 answers normal frames to normal ones
        u = self._uart
        mv = self._rxmv
        if u.any() >= ln + 1:  # the whole rest is in: one read
            if u.readinto(mv[3 : 4 + ln]) != ln + 1:
                return F_BAD
            self.bytes_in += ln + 1
        elif self._read_into(mv, 3, ln + 1, self._deadline((ln + 1) * self._byte_us + FRAME_SLACK_US)) < ln + 1:
            return F_BAD
        self.frames_in += 1
        return F_DATA

    # ---- boot
    def set_baud(self, rate):
        """SetSerialBaudRate with its handshake (UM0701-02 7.2.13; board.md): the command, its ACK and D5 11 at
        the old rate, our ACK frame, a pause, the host UART switched, GetFirmwareVersion at the new rate."""
        if rate not in BAUDS:
            raise ValueError("PN532 HSU rates are %s, not %r" % (BAUDS, rate))
        if rate == self._rate:
            return
        self.command(CMD_SETSERIALBAUDRATE, bytes((BAUDS.index(rate),)), b"", 100000)
        self._send_frame(ACK)  # the PN532 switches once it has this ACK
        self._clock.sleep_ms(_SWITCH_MS)
        self._switch_host(rate)
        self.firmware()

    def boot(self, rate=921600):
        """After the base's wake-up and SAMConfiguration: MaxRetries, then the fast rate."""
        self.set_max_retries()
        self.set_baud(rate)
        return self


def open_uart(uart_id=2, tx=17, rx=16, reset_pin=4, rate=921600, clock=None):
    """The board's PN532 (boards/esp32-generic/board.py: UART2, TX 17, RX 16, RSTPDN on 4): machine.UART at
    115200 with timeout 0, reset by its pin (None: probe the rates instead), woken, switched to `rate`."""
    import machine
    from drivers.digitalio import DigitalInOut

    uart = machine.UART(uart_id, baudrate=_POWER_ON_BAUD, tx=tx, rx=rx, timeout=0, timeout_char=0, rxbuf=_RXBUF)
    reset = None if reset_pin is None else DigitalInOut(machine.Pin(reset_pin))
    return Pn532Uart(uart, reset=reset, clock=default_clock(clock)).boot(rate)
