"""The PN532 over MicroPython buses, on adafruit_pn532's own base class; the card port the core taps through.

    from drivers.pn532_uart import open_uart
    from drivers.pn532 import Pn532CardPort
    pn = open_uart()                         # UART2: reset, wake-up, SAMConfiguration, MaxRetries, 921600
    port = Pn532CardPort(pn)
    if port.detect():                        # an ISO 14443-4 card: its UID
        result = tap(port, psam, journal, config, state, now)
        port.wait_removed()

The base class is `adafruit_pn532.adafruit_pn532.PN532` (pinned PyPI package adafruit-circuitpython-pn532 2.4.9,
installed on the board at deploy time, never copied here). What of it stays in use:
- `__init__` (reset, wake-up, the GetFirmwareVersion check), `reset()` (the reset-pin pulse, through
  drivers/digitalio.py), `firmware_version`, `SAM_configuration`, `power_down`, `send_command`,
  `process_response`, `read_passive_target` and the MIFARE helpers: they run unchanged over our bus hooks.
What is overridden, and why:
- `_write_frame`, `_read_frame`, `call_function`: the base allocates ~1.6 KB per InDataExchange (a params
  bytearray, a frame bytearray, `bytes(frame)`, a `length + 7` read and three slices). Ours frame into one
  preallocated buffer, read exactly the LEN the frame announces, check LCS and DCS, answer a damaged frame with
  a NACK (the PN532 then repeats its answer, UM0701-02 section 6.2.1.3) instead of re-sending a command to the
  card, and cancel a command that never answers with an ACK.
- the bus hooks `_wakeup`, `_wait_ready`, `_read_data`, `_write_data` (drivers/pn532_uart.py, pn532_i2c.py):
  deadlines in `ticks_us` from an injected clock (default `time`; MicroPython has no `time.monotonic`, which
  only the stock bus classes use, not the base), no 10 ms polling sleeps.
"""
import sys

if sys.implementation.name == "micropython":  # the base imports `digitalio`, which MicroPython has not got
    from drivers import digitalio as _digitalio

    sys.modules["digitalio"] = _digitalio

from adafruit_pn532.adafruit_pn532 import PN532  # pyright: ignore[reportMissingImports]

from tunion.compat import const
from tunion.errors import CardLost
from drivers.bytesum import byte_sum

# Frame layout and commands: PN532 User Manual UM0701-02 sections 6.2.1 (frames) and 7 (commands).
_TFI_HOST = const(0xD4)
_TFI_PN532 = const(0xD5)
_TFI_ERROR = const(0x7F)  # application-level error frame 00 00 FF 01 FF 7F 81 00 (section 6.2.1.5)
_NORMAL_MAX = const(255)  # LEN of a normal information frame counts TFI + PD0..PDn (section 6.2.1.1)
APDU_MAX = const(252)  # InDataExchange: LEN = D4 40 Tg + data <= 255
CMD_GETFIRMWAREVERSION = const(0x02)  # section 7.2.2
CMD_SETSERIALBAUDRATE = const(0x10)  # section 7.2.13
CMD_SAMCONFIGURATION = const(0x14)  # section 7.2.10
CMD_RFCONFIGURATION = const(0x32)  # section 7.3.1
CMD_INDATAEXCHANGE = const(0x40)  # section 7.3.8
CMD_INLISTPASSIVETARGET = const(0x4A)  # section 7.3.5
CMD_INRELEASE = const(0x52)  # section 7.3.11
_STATUS_ERR = const(0x3F)  # status byte bits 0-5: error code (section 7.1)
_STATUS_MI = const(0x40)  # bit 6: more information, fetch the rest with InDataExchange Tg only
_SAK_ISO14443_4 = const(0x20)  # SEL_RES bit 6: the target speaks ISO/IEC 14443-4 (ISO/IEC 14443-3 6.5.3.4)
ACK = b"\x00\x00\xff\x00\xff\x00"  # section 6.2.1.3; sent by the host it also cancels a command
NACK = b"\x00\x00\xff\xff\x00\x00"  # asks the PN532 to send its last answer again
SAM_NORMAL = b"\x01\x14\x01"  # SAMConfiguration: normal mode, 1 s virtual-card timeout, use IRQ (section 7.2.10)
RF_MAX_RETRIES = b"\x05\xff\x01\x01"  # CfgItem 5: MxRtyATR FF, MxRtyPSL 01, MxRtyPassiveActivation 01 (7.3.1)
_LIST_106A = b"\x01\x00"  # InListPassiveTarget: MaxTg 1, BrTy 0 = 106 kbps type A

# Frame kinds a bus reader hands back.
F_NONE = const(0)  # nothing arrived before the deadline
F_BAD = const(1)  # something arrived that is not a whole, valid frame
F_ACK = const(2)
F_NACK = const(3)
F_DATA = const(4)

_ACK_US = const(30000)  # the PN532 ACKs within ~1 ms of a frame's end (UM0701-02 6.2.2); margin for the ESP32
FRAME_SLACK_US = const(5000)  # a started frame may pause this long between bytes before it counts as cut
_SEND_TRIES = const(2)  # a NACK from the chip: the command was not taken, sending it again is safe
_NACK_TRIES = const(2)  # a damaged answer: ask for it again this often
BUF_SIZE = const(264)  # a normal frame with its header, checksum and postamble, and some room

# Status byte error codes, UM0701-02 section 7.1 table "Error code list" (as libnfc's pn53x.c names them).
ERRORS = {
    0x01: "timeout",
    0x02: "CRC error",
    0x03: "parity error",
    0x04: "erroneous bit count",
    0x05: "framing error",
    0x06: "bit collision",
    0x07: "buffer too small",
    0x09: "RF buffer overflow",
    0x0A: "RF field not on in time",
    0x0B: "RF protocol error",
    0x0D: "overheating",
    0x0E: "internal buffer overflow",
    0x10: "invalid parameter",
    0x12: "DEP: command not supported",
    0x13: "data format mismatch",
    0x14: "MIFARE authentication error",
    0x23: "UID check byte wrong",
    0x25: "DEP: invalid device state",
    0x26: "operation not allowed",
    0x27: "command not acceptable in this context",
    0x29: "target released by initiator",
    0x2A: "card ID mismatch",
    0x2B: "card disappeared",
    0x2C: "NFCID3 mismatch",
    0x2D: "over-current",
    0x2E: "NAD missing",
}


class Pn532Error(Exception):
    """The link to the PN532 failed: no ACK, no answer, a damaged frame after retries, an error frame."""


def default_clock(clock):
    """`clock` or the `time` module: anything with ticks_us, ticks_diff, ticks_add, sleep_ms (MicroPython's)."""
    if clock is None:
        import time

        clock = time
    if not hasattr(clock, "ticks_us"):
        raise ValueError("the PN532 driver needs a clock with ticks_us/ticks_diff/ticks_add/sleep_ms")
    return clock


class Pn532Link(PN532):
    """Framing shared by the buses. A bus subclass sets itself up, calls `_link_init(clock)`, then the base
    `__init__`, and provides `_send(buf)`, `_drain()`, `_read_raw(deadline, ack) -> F_*` (the frame from LEN on
    into `_rx`: LEN, LCS, TFI..., DCS, postamble; LCS already checked) and `_byte_us` (wire time of a byte)."""

    def _link_init(self, clock):
        self._clock = c = default_clock(clock)
        self._ticks_us, self._ticks_add, self._ticks_diff = c.ticks_us, c.ticks_add, c.ticks_diff  # bound once
        self._tx = bytearray(BUF_SIZE)
        self._tx[2] = 0xFF  # 00 00 FF: preamble and start code, written once
        self._txmv = memoryview(self._tx)
        self._b1 = bytearray(1)
        self.frames_out = 0  # frames written (commands, ACK, NACK); wake-up bytes count as bytes only
        self.bytes_out = 0
        self.frames_in = 0  # whole frames read (ACK, NACK, answers)
        self.bytes_in = 0
        self.nacks_sent = 0
        self.cancels = 0

    def _deadline(self, us):
        return self._ticks_add(self._ticks_us(), us)

    def _expired(self, deadline):
        return self._ticks_diff(self._ticks_us(), deadline) >= 0

    # ---- frames
    def _put_frame(self, cmd, a, b):
        """D4 cmd a b framed in _tx; returns the frame length."""
        la = len(a)
        lb = len(b)
        ln = 2 + la + lb
        if ln > _NORMAL_MAX:
            raise ValueError("PN532 frame data is at most 255 bytes (normal frame), not %d" % ln)
        tx = self._tx
        tx[3] = ln
        tx[4] = (-ln) & 0xFF
        tx[5] = _TFI_HOST
        tx[6] = cmd
        tx[7 : 7 + la] = a
        tx[7 + la : 7 + la + lb] = b
        tx[5 + ln] = (-(_TFI_HOST + cmd + byte_sum(tx, 7, 5 + ln))) & 0xFF
        tx[6 + ln] = 0
        return ln + 7

    def _send_frame(self, buf):
        self._send(buf)
        self.frames_out += 1

    def _dcs_ok(self):
        rx = self._rx
        return byte_sum(rx, 2, 3 + rx[0]) & 0xFF == 0

    def _cancel(self):
        # An ACK from the host aborts the command the PN532 is working on (UM0701-02 6.2.1.3).
        self._send_frame(ACK)
        self.cancels += 1

    def command(self, cmd, a=b"", b=b"", timeout_us=1000000, during=None):
        """Send D4 cmd a b, take its ACK, return the answer's data length n: `_rx[4 : 4 + n]` is what follows
        D5 cmd+1. `during()` runs once the ACK is in, while the PN532 works (talks to the card). Raises
        Pn532Error; allocates nothing but for a NACK or a cancel."""
        if self.low_power:  # after the base's power_down(): wake-up and SAMConfiguration first
            self._wakeup()
        n = self._put_frame(cmd, a, b)
        frame = self._txmv[:n]
        ack_us = n * self._byte_us + _ACK_US
        for _ in range(_SEND_TRIES):
            self._drain()
            self._send_frame(frame)
            k = self._read_raw(self._deadline(ack_us), True)
            if k == F_ACK:
                break
            if k != F_NACK:
                raise Pn532Error("no ACK to command %02X" % cmd)
        else:
            raise Pn532Error("command %02X refused with NACK" % cmd)
        if during is not None:
            during()
        deadline = self._deadline(timeout_us)
        tries = 0
        rx = self._rx
        while True:
            k = self._read_raw(deadline, False)
            if k == F_DATA and self._dcs_ok():
                if rx[2] == _TFI_PN532 and rx[3] == cmd + 1 and rx[0] >= 2:
                    return rx[0] - 2
                if rx[0] == 1 and rx[2] == _TFI_ERROR:
                    raise Pn532Error("syntax error frame for command %02X" % cmd)
                raise Pn532Error("answer %02X %02X to command %02X" % (rx[2], rx[3], cmd))
            if k == F_NONE:
                self._cancel()
                raise Pn532Error("no answer to command %02X" % cmd)
            tries += 1
            if tries > _NACK_TRIES:
                self._cancel()
                raise Pn532Error("damaged answer to command %02X" % cmd)
            self._drain()
            self._send_frame(NACK)
            self.nacks_sent += 1
            deadline = self._deadline(_ACK_US + BUF_SIZE * self._byte_us)

    # ---- the base class's API, over the same frames
    def call_function(self, command, response_length=0, params=b"", timeout=1):
        """As the base: the answer after D5 cmd+1, or None when the PN532 did not answer properly."""
        if not isinstance(params, (bytes, bytearray, memoryview)):
            params = bytes(params)  # the base passes lists; MicroPython slices only buffers into a bytearray
        try:
            n = self.command(command, params, b"", int(timeout * 1000000))
        except Pn532Error:
            return None
        return bytes(self._rx[4 : 4 + n])

    def _write_frame(self, data):
        n = self._put_frame(data[1], memoryview(data)[2:], b"")
        self._drain()
        self._send_frame(self._txmv[:n])

    def _read_frame(self, length):
        # The base asks for `length` bytes; we read the LEN the frame announces, no more.
        if self._read_raw(self._deadline(1000000), False) != F_DATA or not self._dcs_ok():
            raise RuntimeError("PN532: no valid answer frame")
        return bytes(self._rx[2 : 2 + self._rx[0]])

    # ---- boot steps shared by the buses
    def sam_configuration(self):
        self.command(CMD_SAMCONFIGURATION, SAM_NORMAL, b"", 100000)

    def set_max_retries(self):
        """One passive-activation retry: InListPassiveTarget answers at once when no card is there (board.md)."""
        self.command(CMD_RFCONFIGURATION, RF_MAX_RETRIES, b"", 100000)

    def firmware(self):
        """(IC, Ver, Rev, Support): 0x32 for a PN532."""
        n = self.command(CMD_GETFIRMWAREVERSION, b"", b"", 100000)
        if n != 4:
            raise Pn532Error("GetFirmwareVersion: %d bytes" % n)
        return tuple(self._rx[4:8])

    def counts(self):
        return {"frames_out": self.frames_out, "bytes_out": self.bytes_out, "frames_in": self.frames_in,
                "bytes_in": self.bytes_in, "nacks_sent": self.nacks_sent, "cancels": self.cancels}

    def reset_counts(self):
        self.frames_out = self.bytes_out = self.frames_in = self.bytes_in = self.nacks_sent = self.cancels = 0


class Pn532CardPort:
    """The card port the core taps through: transceive(apdu) -> data + SW1 SW2, or CardLost."""

    # chain_max: the longest answer a short APDU can have is 256 data bytes and SW1 SW2 (ISO 7816-4), two PN532
    # frames with MI; 512 holds it. It was 1024, the largest block the reader took at boot, and a board at its
    # heap found no hole that size now and then (MemoryError at boot on the virtual board, 2026-12-04).
    def __init__(self, pn, exchange_ms=1000, poll_ms=150, list_ms=200, chain_max=512):
        self.pn = pn
        self.exchange_us = exchange_ms * 1000
        self.list_us = list_ms * 1000
        self.poll_ms = poll_ms
        self._tg = bytearray(b"\x01")
        self._acc = bytearray(chain_max)
        self._accmv = memoryview(self._acc)
        self.uid = None
        self.ats = None
        self.sak = 0
        self.last_status = 0
        self.exchanges = 0  # InDataExchange frames, chained ones included

    def _list(self):
        """InListPassiveTarget, one 106 kbps type A target: its data length (0: none). The PN532 sends RATS
        itself when SEL_RES says ISO 14443-4 and appends the ATS (UM0701-02 7.3.5)."""
        n = self.pn.command(CMD_INLISTPASSIVETARGET, _LIST_106A, b"", self.list_us)
        rx = self.pn._rx
        if n < 1 or rx[4] == 0:
            return 0
        if n < 6 or 6 + rx[9] > n:
            raise Pn532Error("InListPassiveTarget: %d bytes" % n)
        return n

    def detect(self):
        """The UID (bytes) of an ISO 14443-4 card in the field, activated for transceive; None when there is
        none (another kind of target is released again)."""
        n = self._list()
        if not n:
            return None
        rx = self.pn._rx
        self._tg[0] = rx[5]
        self.sak = rx[8]
        ulen = rx[9]
        if not self.sak & _SAK_ISO14443_4:
            self.release()
            return None
        self.uid = bytes(rx[10 : 10 + ulen])
        self.ats = bytes(rx[10 + ulen : 4 + n])
        return self.uid

    def transceive(self, apdu):
        return self.transceive_during(apdu, None)

    def transceive_during(self, apdu, during):
        """transceive(apdu), running during() once while the card works on it (tunion.card.Purse.meanwhile:
        the PSAM's next command header goes out meanwhile)."""
        if len(apdu) > APDU_MAX:
            raise ValueError("APDU of %d bytes: one InDataExchange frame carries at most %d" % (len(apdu), APDU_MAX))
        pn = self.pn
        rx = pn._rx
        total = 0
        data = apdu
        try:
            while True:
                n = pn.command(CMD_INDATAEXCHANGE, self._tg, data, self.exchange_us, during)
                during = None
                self.exchanges += 1
                if n < 1:
                    raise CardLost("PN532 InDataExchange: no status byte")
                st = rx[4]
                self.last_status = st
                if st & _STATUS_ERR:
                    e = st & _STATUS_ERR
                    raise CardLost("PN532 InDataExchange: %s (status %02X)" % (ERRORS.get(e, "error"), e))
                k = n - 1
                if not total and not st & _STATUS_MI:
                    return bytes(pn._rxmv[5 : 5 + k])  # one frame (the usual answer): one copy, not two
                if total + k > len(self._acc):
                    raise CardLost("card answer over %d bytes" % len(self._acc))
                self._acc[total : total + k] = pn._rxmv[5 : 5 + k]  # a view: no copy of the answer
                total += k
                if not st & _STATUS_MI:
                    break
                data = b""  # MI: the rest comes for InDataExchange with only Tg (UM0701-02 7.3.8)
        except Pn532Error as e:
            raise CardLost("PN532 link: %s" % e)
        return bytes(self._accmv[:total])

    def release(self):
        """InRelease of our target: the PN532 deselects the card (it halts)."""
        self.pn.command(CMD_INRELEASE, self._tg, b"", self.list_us)

    def removed(self):
        """One poll: True when no target answers; a target found is released again."""
        if self._list():
            self.release()
            return False
        return True

    def wait_removed(self, timeout_ms=10000):
        """InRelease, then InListPassiveTarget every poll_ms until two empty answers in a row (Diagnose is
        unreliable on some cards; board.md): True, or False when the card is still there after timeout_ms."""
        clock = self.pn._clock
        self.release()
        t0 = clock.ticks_us()
        empty = 0
        while True:
            empty = empty + 1 if self.removed() else 0
            if empty >= 2:
                return True
            if clock.ticks_diff(clock.ticks_us(), t0) >= timeout_ms * 1000:
                return False
            clock.sleep_ms(self.poll_ms)
