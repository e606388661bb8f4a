"""The PN532 on CPython: the unmodified adafruit_pn532.uart.PN532_UART against the chip simulator, the
simulator's own strictness, and every single-byte corruption of an answer on the wire. The scenario cases
shared with MicroPython (boot, baud switch, purchase over HSU and I2C, lost cards, NACK, bad checksum,
removal) live in tests/mpcases/pn532_cases.py and run here through tests/test_mpcases.py.
"""
import pytest
from adafruit_pn532.uart import PN532_UART

from tunion import outcome as O
from tunion.errors import CardLost
from drivers.pn532 import Pn532CardPort
from drivers.pn532_uart import Pn532Uart
from sim.card import make_card
from sim.pn532chip import Pn532Chip, SimClock, frame, ACK, NACK
from sim.pn532wire import SimUart, BusioUart
from sim.rig import Rig
from mpcases.pn532_cases import uart_reader, SELECT_EP
from mpcases.purchase_cases import check_money


class StockPort:
    """A card port over the stock driver, used the way its documentation says (tooling.md)."""

    def __init__(self, pn):
        self.pn = pn

    def transceive(self, apdu):
        resp = self.pn.call_function(0x40, params=b"\x01" + apdu, response_length=255)
        if resp is None or resp[0] != 0:
            raise CardLost("stock driver: %r" % (resp,))
        return bytes(resp[1:])


def test_unmodified_stock_uart_driver_runs_a_purchase_on_the_simulator():
    clock = SimClock()
    card = make_card(balance=700)
    chip = Pn532Chip(clock, card=card)
    pn = PN532_UART(BusioUart(SimUart(chip)))
    assert pn.firmware_version == (0x32, 1, 6, 7)
    assert bytes(pn.read_passive_target(timeout=0.5)) == chip.uid
    rig = Rig()
    t0 = clock.now
    r = rig.tap(StockPort(pn))
    assert r.status == O.PAID and r.balance == 500, r
    check_money(rig, card, 700)
    stock_us = clock.now - t0
    # Ours on the same purchase: the stock class reads length + 7 bytes and waits out each short read.
    clock2, chip2, uart2, ours = uart_reader(make_card(balance=700), rate=115200)
    port = Pn532CardPort(ours)
    assert port.detect()
    t0 = clock2.now
    assert Rig().tap(port).status == O.PAID
    assert clock2.now - t0 < stock_us / 5, (clock2.now - t0, stock_us)


def test_driver_on_cpython_needs_a_clock():
    chip = Pn532Chip(SimClock())
    with pytest.raises(ValueError, match="ticks_us"):
        Pn532Uart(SimUart(chip))


@pytest.fixture
def awake():
    clock, chip, uart, pn = uart_reader(rate=115200)
    uart.read()  # nothing left
    return chip, uart


def _settle(uart):
    uart.clock.now += 20000
    return uart.read(256)


@pytest.mark.parametrize("mangle", ["lcs", "dcs", "tfi", "postamble"])
def test_chip_ignores_a_damaged_frame(awake, mangle):
    chip, uart = awake
    good = bytearray(frame(b"\xd4\x02"))
    assert uart.write(good) and _settle(uart)[:6] == ACK  # the good one is taken
    bad = bytearray(good)
    if mangle == "lcs":
        bad[4] ^= 1
    elif mangle == "dcs":
        bad[7] ^= 1
    elif mangle == "tfi":
        bad[5] = 0xD5
        bad[7] = (-(0xD5 + 0x02)) & 0xFF
    else:
        bad[8] = 0x55
    before = chip.commands[0x02]
    uart.write(bad)
    assert _settle(uart) is None  # no ACK, no answer
    assert chip.commands[0x02] == before and chip.ignored == 1


def test_chip_repeats_its_answer_on_nack_and_stops_on_ack(awake):
    chip, uart = awake
    uart.write(frame(b"\xd4\x02"))
    first = _settle(uart)
    uart.write(NACK)
    assert _settle(uart) == first[6:]  # the answer again, without the ACK
    uart.write(frame(b"\xd4\x32\x05\xff\x01\xff"))  # back to the power-on MxRtyPassiveActivation FF
    assert _settle(uart)[6:] == frame(b"\xd5\x33") and chip.max_retries_passive == 0xFF
    uart.write(frame(b"\xd4\x4a\x01\x00"))  # no card: searches forever
    assert _settle(uart) == ACK
    uart.write(ACK)
    assert _settle(uart) is None and chip.cancelled == 1


def test_chip_asleep_until_wakeup():
    clock = SimClock()
    chip = Pn532Chip(clock)
    uart = SimUart(chip)
    uart.write(frame(b"\xd4\x02"))
    assert _settle(uart) is None and chip.frames_in == 0
    uart.write(b"\x55\x55\x00\x00\x00")
    uart.write(frame(b"\xd4\x02"))
    assert _settle(uart)[:6] == ACK


def test_wrong_rate_is_garbage_both_ways(awake):
    chip, uart = awake
    uart.init(baudrate=921600)
    uart.write(frame(b"\xd4\x02"))
    assert _settle(uart) is None and chip.garbled_in == 9  # the chip saw no frame
    uart.init(baudrate=115200)
    uart.write(frame(b"\xd4\x02"))
    uart.init(baudrate=921600)  # before the answer came: it arrives at 115200
    got = _settle(uart)
    assert len(got) == 6 + 13 and ACK not in got and uart.garbled_read == 19


@pytest.mark.parametrize("at", range(0, 108))
def test_any_single_corrupted_answer_byte_gives_the_right_answer_or_card_lost(at):
    # SELECT's answer frame is 7 + 2 + 99 bytes; every offset, the header and the checksum included.
    clock, chip, uart, pn = uart_reader(make_card())
    port = Pn532CardPort(pn)
    assert port.detect()
    want = make_card().transceive(SELECT_EP)
    chip.corrupt_next_answer(at)
    try:
        got = port.transceive(SELECT_EP)
    except CardLost:
        got = None
    assert got is None or got == want
    assert chip.rf_apdus == 1  # whatever happened on the wire, the card saw the SELECT once
    assert port.transceive(SELECT_EP) == want  # and the link is in step again


def test_base_framing_over_our_uart_bus_reads_a_short_frame():
    # The base's own _read_frame asks for length + 7 bytes; our _read_data hands back what came by its
    # deadline (a byte there at the deadline included), as busio's read does for the stock class.
    from adafruit_pn532.adafruit_pn532 import PN532

    class BaseFraming(Pn532Uart):
        _write_frame = PN532._write_frame
        _read_frame = PN532._read_frame
        call_function = PN532.call_function

    clock = SimClock()
    chip = Pn532Chip(clock, card=make_card())
    pn = BaseFraming(SimUart(chip), clock=clock).boot(921600)
    assert Pn532CardPort(pn).detect()
    want = make_card().transceive(SELECT_EP)
    for _ in range(3):
        resp = pn.call_function(0x40, params=b"\x01" + SELECT_EP, response_length=255)
        assert resp is not None and bytes(resp[1:]) == want


def test_the_apps_reader_runs_the_tap_work_during_the_card_exchange():
    # app/boot.ReaderPort is what tap() gets on a board: it must pass transceive_during on, or the PSAM headers
    # (tunion.card.Purse.meanwhile) would silently go out after the card instead of while it works.
    from app.boot import ReaderPort
    from mpcases.pn532_cases import uart_reader
    from sim.card import make_card
    from tunion.card import Purse

    clock, chip, uart, pn = uart_reader(make_card(balance=5000))
    reader = ReaderPort(Pn532CardPort(pn))
    assert reader.detect()
    purse = Purse(reader)
    ran = []
    purse.meanwhile = lambda: ran.append(pn.frames_in)
    s, ef15 = purse.select()
    assert s == 0x9000 and len(ran) == 1 and purse.meanwhile is None


class _Trickle:
    """A UART whose bytes arrive in the given pieces: each any() with nothing left to read lets the next piece
    in, so the reader sees a frame whole, or still coming, as a board's UART hands it over."""

    def __init__(self, pieces):
        self.pieces = [bytes(p) for p in pieces]
        self.buf = b""
        self.reads = 0

    def any(self):
        if not self.buf and self.pieces:
            self.buf = self.pieces.pop(0)
        return len(self.buf)

    def readinto(self, b, n=None):
        n = min(len(b) if n is None else n, len(self.buf))
        if not n:
            return None
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        self.reads += 1
        return n

    def read(self, n=None):
        d, self.buf = self.buf[:n], self.buf[n:] if n is not None else b""
        return d or None

    def write(self, data):
        return len(data)

    def init(self, **kw):
        pass


ANSWER = frame(bytes([0xD5, 0x41, 0x00]) + bytes(range(40)) + b"\x90\x00")


@pytest.mark.parametrize("pieces, kind, rest", [
    ([ANSWER], "data", b""),  # whole, from its own 00 00 FF: the fast path
    ([ACK], "ack", b""),
    ([NACK], "nack", b""),
    ([ACK + ANSWER], "ack", ANSWER),  # never reads into the next frame
    ([b"\x5a" + ANSWER], "data", b""),  # one stale byte before the preamble
    ([b"\x01\x02\x03\x04" + ANSWER], "data", b""),  # several
    ([ANSWER[1:]], "data", b""),  # the preamble's 00 lost: 00 FF LEN in the first three
    ([ANSWER[:4], ANSWER[4:]], "data", b""),  # still coming after four
    ([ANSWER[:10], ANSWER[10:]], "data", b""),  # the head whole, the rest still coming
    ([ANSWER[:3] + b"\x30\x30" + ANSWER[5:]], "bad", None),  # LEN + LCS wrong
    ([ANSWER[:20]], "bad", None),  # cut: nothing more comes
], ids=["whole", "ack", "nack", "ack-then-answer", "one-stale", "four-stale", "no-preamble", "after-four",
        "head-then-rest", "bad-lcs", "cut"])
def test_the_frame_reader_takes_every_way_a_frame_comes(pieces, kind, rest):
    from drivers import pn532 as P

    clock, chip, uart, pn = uart_reader(make_card())
    t = _Trickle(pieces)
    pn._uart = t
    k = pn._read_raw(pn._deadline(20000), False)
    assert k == {"data": P.F_DATA, "ack": P.F_ACK, "nack": P.F_NACK, "bad": P.F_BAD}[kind]
    if kind == "data":
        n = pn._rx[0]
        assert pn._dcs_ok() and bytes(pn._rx[2 : 2 + n]) == ANSWER[5 : 5 + n]
    if rest is not None:
        assert t.buf + b"".join(t.pieces) == rest
    if pieces == [ANSWER]:
        assert t.reads == 3  # preamble, LEN LCS TFI, the rest
