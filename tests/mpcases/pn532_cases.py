"""The PN532 driver (firmware/drivers/pn532*.py on adafruit_pn532's real base class) against the strict chip
simulator: boot and baud switch, a purchase over HSU and I2C, cards lost, damaged and missing frames, removal.

Plain case_* functions: tests/test_mpcases.py runs them on CPython, tests/test_micropython.py under the
MicroPython interpreter (the runner mirrors the installed adafruit_pn532 package into the VM).
"""
from tunion import outcome as O
from tunion.errors import CardLost
from drivers.pn532 import Pn532CardPort, Pn532Error
from drivers.pn532_uart import Pn532Uart
from drivers.pn532_i2c import Pn532I2c
from drivers.digitalio import DigitalInOut
from sim.card import make_card, AFTER, BEFORE
import gc

from sim.pn532chip import Pn532Chip, SimClock
from sim.pn532wire import SimUart, SimI2C, SimResetPin, MeteredUart, mem
from sim.rig import Rig
from mpcases.purchase_cases import check_money

SELECT_EP = bytes.fromhex("00A4040008A000000632010105")  # protocol section 1: MOT_T_EP


def uart_reader(card=None, rate=921600, boot=True, **chip_kw):
    clock = SimClock()
    chip = Pn532Chip(clock, card=card, **chip_kw)
    uart = SimUart(chip)
    pn = Pn532Uart(uart, clock=clock)
    if boot:
        pn.boot(rate)
    return clock, chip, uart, pn


def i2c_reader(card=None, **chip_kw):
    clock = SimClock()
    chip = Pn532Chip(clock, card=card, **chip_kw)
    bus = SimI2C(chip)
    pn = Pn532I2c(bus, clock=clock)
    pn.set_max_retries()
    return clock, chip, bus, pn


class LongCard:
    """A card whose every answer is `n` bytes of data and 90 00: more than one PN532 frame holds."""

    in_field = True

    def __init__(self, n):
        self.n = n
        self.apdus = 0

    def transceive(self, apdu):
        self.apdus += 1
        return bytes(i & 0xFF for i in range(self.n)) + b"\x90\x00"


def raises(exc, fn, *a):
    try:
        fn(*a)
    except exc as e:
        return e
    raise AssertionError("%s not raised" % exc.__name__)


def case_boot_wakes_configures_and_switches_to_921600():
    clock, chip, uart, pn = uart_reader(boot=False)
    assert not chip.asleep and chip.sam_mode == 1  # woken by 55 55, SAMConfiguration first (base __init__)
    assert chip.commands == {0x14: 1, 0x02: 1}, chip.commands
    pn.boot(921600)
    assert chip.max_retries_passive == 1  # RFConfiguration D4 32 05 FF 01 01
    assert chip.baud == 921600 and uart.baudrate == 921600 and pn.baudrate == 921600
    assert chip.commands == {0x14: 1, 0x02: 2, 0x32: 1, 0x10: 1}, chip.commands  # confirmed by GetFirmwareVersion
    assert chip.ignored == 0 and chip.garbled_in == 0 and uart.garbled_read == 0
    assert pn.firmware() == (0x32, 1, 6, 7)
    assert pn.frames_out == chip.frames_in and pn.bytes_out == chip.bytes_in
    assert pn.frames_in == chip.frames_out and pn.bytes_in == chip.bytes_out


def case_bytes_at_the_old_rate_are_garbage_after_the_switch():
    clock, chip, uart, pn = uart_reader()
    pn._switch_host(115200)  # the host forgets the switch: the PN532 stays at 921600
    raises(Pn532Error, pn.firmware)
    assert chip.garbled_in > 0 and chip.commands[0x02] == 2  # the command never parsed as one
    pn._switch_host(921600)
    assert pn.firmware()[0] == 0x32


def case_soft_reset_finds_the_chip_at_its_new_rate():
    clock, chip, uart, pn = uart_reader()
    uart.init(baudrate=115200)  # ESP32 soft reset: the host UART is back at 115200, the PN532 is not
    pn2 = Pn532Uart(uart, clock=clock)  # wake-up at 115200 gets no ACK; the probe at 921600 does
    assert pn2.baudrate == 921600 and uart.baudrate == 921600
    assert chip.garbled_in > 0
    pn2.boot(921600)
    port = Pn532CardPort(pn2)
    assert port.detect() is None


def case_reset_pin_brings_the_chip_back_to_115200():
    clock, chip, uart, pn = uart_reader()
    pin = SimResetPin(chip)
    uart.init(baudrate=115200)
    pn2 = Pn532Uart(uart, clock=clock, reset=DigitalInOut(pin))  # the base's reset(): low, high, wake-up
    assert pin.resets == 1 and chip.baud == 115200 and pn2.baudrate == 115200
    assert chip.garbled_in == 0


def case_purchase_over_hsu():
    card = make_card(balance=5000)
    clock, chip, uart, pn = uart_reader(card)
    port = Pn532CardPort(pn)
    assert port.detect() == chip.uid and port.ats == chip.ats
    rig = Rig()
    pn.reset_counts()
    r = rig.tap(port)
    assert r.status == O.PAID and r.balance == 4800, r
    check_money(rig, card, 5000)
    assert chip.rf_apdus == card.apdus == port.exchanges  # one InDataExchange per APDU, none repeated
    assert pn.frames_out == card.apdus and pn.frames_in == 2 * card.apdus  # command; ACK + answer
    assert pn.nacks_sent == 0 and pn.cancels == 0 and chip.ignored == 0


def case_purchase_over_i2c():
    card = make_card(balance=300)
    clock, chip, bus, pn = i2c_reader(card)
    port = Pn532CardPort(pn)
    assert port.detect() == chip.uid
    rig = Rig()
    r = rig.tap(port)
    assert r.status == O.PAID and r.balance == 100, r
    check_money(rig, card, 300)
    assert chip.rf_apdus == card.apdus and chip.ignored == 0


def case_no_card_answers_at_once():
    clock, chip, uart, pn = uart_reader()
    port = Pn532CardPort(pn)
    t0 = clock.now
    assert port.detect() is None
    assert clock.now - t0 < 10000  # MaxRetries 1: two activation attempts, not forever


def case_without_max_retries_the_poll_is_cancelled():
    clock, chip, uart, pn = uart_reader(boot=False)  # MxRtyPassiveActivation still FF
    port = Pn532CardPort(pn, list_ms=50)
    raises(Pn532Error, port.detect)
    assert chip.cancelled == 1 and pn.cancels == 1  # our ACK stopped the endless search
    assert pn.firmware()[0] == 0x32  # and the chip takes commands again


def case_card_torn_after_debit_is_tap_again_then_recovered():
    card = make_card(balance=1000)
    clock, chip, uart, pn = uart_reader(card)
    port = Pn532CardPort(pn)
    rig = Rig()
    assert port.detect()
    card.tear_on_ins(0x54, AFTER)  # DEBIT done on the card, its answer lost: the PN532 reports a timeout
    r = rig.tap(port)
    assert r.status == O.TAP_AGAIN, r
    assert port.last_status == 0x01
    assert port.detect() is None  # gone from the field
    card.present()
    assert port.detect()
    r = rig.tap(port)
    assert r.status == O.PAID_RECOVERED, r
    check_money(rig, card, 1000)


def case_card_torn_before_debit_is_a_card_error_and_no_money_moves():
    card = make_card(balance=1000)
    clock, chip, uart, pn = uart_reader(card)
    port = Pn532CardPort(pn)
    assert port.detect()
    card.tear_at(1, BEFORE)
    rig = Rig()
    r = rig.tap(port)
    assert r.status == O.CARD_ERROR, r
    assert card.balance == 1000
    check_money(rig, card, 1000)


def case_rf_errors_are_card_lost():
    for code, word in ((0x02, "CRC"), (0x03, "parity"), (0x0B, "RF protocol"), (0x2B, "disappeared")):
        card = make_card()
        clock, chip, uart, pn = uart_reader(card)
        port = Pn532CardPort(pn)
        assert port.detect()
        chip.rf_error_next(code)
        e = raises(CardLost, port.transceive, SELECT_EP)
        assert word in str(e) and port.last_status == code, str(e)
        assert port.transceive(SELECT_EP)[-2:] == b"\x90\x00"  # the next exchange goes through


def case_bad_checksum_answer_is_asked_again_not_resent_to_the_card():
    card = make_card()
    clock, chip, uart, pn = uart_reader(card)
    port = Pn532CardPort(pn)
    assert port.detect()
    chip.corrupt_next_answer()
    resp = port.transceive(SELECT_EP)
    assert resp[-2:] == b"\x90\x00" and resp[0] == 0x6F
    assert pn.nacks_sent == 1 and chip.nacks_in == 1
    assert card.apdus == 1  # the SELECT reached the card once


def case_nack_from_the_chip_resends_the_command_once():
    card = make_card()
    clock, chip, uart, pn = uart_reader(card)
    port = Pn532CardPort(pn)
    assert port.detect()
    sent = pn.frames_out
    chip.nack_next()
    assert port.transceive(SELECT_EP)[-2:] == b"\x90\x00"
    assert pn.frames_out == sent + 2 and card.apdus == 1


def case_cut_answer_is_asked_again():
    card = make_card()
    clock, chip, uart, pn = uart_reader(card)
    port = Pn532CardPort(pn)
    assert port.detect()
    chip.drop_answer_bytes(3)
    assert port.transceive(SELECT_EP)[-2:] == b"\x90\x00"
    assert pn.nacks_sent == 1 and card.apdus == 1


def case_lost_command_bytes_are_card_lost_without_reaching_the_card():
    card = make_card()
    clock, chip, uart, pn = uart_reader(card)
    port = Pn532CardPort(pn)
    assert port.detect()
    chip.drop_command_bytes(4)
    raises(CardLost, port.transceive, SELECT_EP)
    assert card.apdus == 0 and chip.ignored == 0  # a frame without its start is no frame at all
    assert port.transceive(SELECT_EP)[-2:] == b"\x90\x00"


def case_late_answer_after_a_lost_ack_is_drained():
    card = make_card()
    clock, chip, uart, pn = uart_reader(card)
    port = Pn532CardPort(pn)
    assert port.detect()
    chip.corrupt_next_ack()
    raises(CardLost, port.transceive, SELECT_EP)  # no ACK seen: the core treats the card as gone
    assert card.apdus == 1  # yet the chip ran it: its answer lands in the UART buffer afterwards
    clock.sleep_ms(20)
    assert port.transceive(SELECT_EP)[-2:] == b"\x90\x00"  # the stale answer was read away first
    assert pn.discarded > 0 and card.apdus == 2


def case_the_longest_short_apdu_answer_fits_the_default_port():
    # 256 data bytes and the status word (ISO 7816-4's longest short-APDU answer): a 252-byte frame with MI and
    # the last 6 bytes; a longer answer (extended length, which no T-Union command uses) is a clear CardLost.
    clock, chip, uart, pn = uart_reader(LongCard(256))
    port = Pn532CardPort(pn)
    assert port.detect()
    resp = port.transceive(b"\x00\xb0\x00\x00\x00")
    assert resp == bytes(range(256)) + b"\x90\x00" and port.exchanges == 2
    clock, chip, uart, pn = uart_reader(LongCard(600))
    port = Pn532CardPort(pn)
    assert port.detect()
    e = raises(CardLost, port.transceive, b"\x00\xb0\x00\x00\x00")
    assert "over 512 bytes" in str(e), e


def case_long_answer_comes_in_pieces_with_mi():
    card = LongCard(600)
    clock, chip, uart, pn = uart_reader(card)
    port = Pn532CardPort(pn, chain_max=1024)
    assert port.detect()
    resp = port.transceive(b"\x00\xb0\x00\x00\x00")
    assert len(resp) == 602 and resp[:600] == bytes(i & 0xFF for i in range(600)) and resp[600:] == b"\x90\x00"
    assert port.exchanges == 3 and card.apdus == 1  # 252 + 252 + 98 bytes: two MI pieces and the last


def case_work_during_an_exchange_runs_once_after_the_ack_while_the_card_works():
    # transceive_during: the tap's PSAM header goes out while the PN532 talks to the card (tunion.card.Purse
    # .meanwhile); once per APDU, MI pieces included, after the chip has ACKed and before its answer is read.
    card = LongCard(256)
    clock, chip, uart, pn = uart_reader(card)
    port = Pn532CardPort(pn)
    assert port.detect()
    seen = []

    def during():
        seen.append((port.exchanges - n, pn.frames_in - frames))

    frames, n = pn.frames_in, port.exchanges
    resp = port.transceive_during(b"\x00\xb0\x00\x00\x00", during)
    assert len(resp) == 258 and port.exchanges == n + 2
    assert seen == [(0, 1)]  # the first piece's ACK read, its answer not yet


def case_apdu_longer_than_a_frame_is_refused():
    clock, chip, uart, pn = uart_reader(make_card())
    port = Pn532CardPort(pn)
    assert port.detect()
    raises(ValueError, port.transceive, bytes(253))


def case_removal_needs_two_empty_polls():
    card = make_card()
    clock, chip, uart, pn = uart_reader(card)
    port = Pn532CardPort(pn, poll_ms=150)
    assert port.detect()
    t0 = clock.now
    assert port.wait_removed(timeout_ms=1000) is False  # still there: found again after the InRelease
    assert 1000000 <= clock.now - t0 < 1400000
    card.remove()
    lists = chip.commands[0x4A]
    assert port.wait_removed(timeout_ms=1000) is True
    assert chip.commands[0x4A] == lists + 2
    assert chip.target is None


def case_other_kinds_of_card_are_not_detected():
    clock, chip, uart, pn = uart_reader(make_card(), sak=0x08)  # a MIFARE Classic: no ISO 14443-4
    port = Pn532CardPort(pn)
    assert port.detect() is None
    assert chip.commands.get(0x52) == 1 and chip.target is None


def case_i2c_damaged_answer_is_asked_again():
    card = make_card()
    clock, chip, bus, pn = i2c_reader(card)
    port = Pn532CardPort(pn)
    assert port.detect()
    chip.corrupt_next_answer()
    assert port.transceive(SELECT_EP)[-2:] == b"\x90\x00"
    assert pn.nacks_sent == 1 and card.apdus == 1


def case_base_class_api_runs_over_our_bus():
    # adafruit's own read_passive_target (send_command + process_response) over our hooks.
    clock, chip, uart, pn = uart_reader(make_card())
    assert bytes(pn.read_passive_target(timeout=0.5)) == chip.uid
    assert pn.firmware_version == (0x32, 1, 6, 7)
    resp = pn.call_function(0x40, params=b"\x01" + SELECT_EP, response_length=255)
    assert resp[0] == 0 and resp[-2:] == b"\x90\x00"


def case_an_exchange_allocates_little():
    # Under MicroPython: the driver's own heap per InDataExchange, the simulators' allocations left out. The
    # base class's path allocates ~1.6 KB; ours is the answer's bytes and a few views. (0 == 0 on CPython.)
    clock = SimClock()
    chip = Pn532Chip(clock, card=make_card())
    meter = MeteredUart(SimUart(chip))
    pn = Pn532Uart(meter, clock=clock).boot(921600)
    port = Pn532CardPort(pn)
    assert port.detect()
    port.transceive(SELECT_EP)
    gc.collect()
    gc.disable()
    try:
        meter.sim = 0
        m0 = mem()
        for _ in range(5):
            port.transceive(SELECT_EP)
        per = (mem() - m0 - meter.sim) // 5
    finally:
        gc.enable()
    assert per <= 160, per  # 176 before a one-frame answer was copied once (2026-12-03); 128 since


def case_power_down_between_taps_wakes_on_the_next_command():
    clock, chip, uart, pn = uart_reader(make_card())
    assert pn.power_down() is True and chip.asleep  # the base's soft power-down: PowerDown B0 00
    port = Pn532CardPort(pn)
    assert port.detect() == chip.uid  # our command() wakes it first (55 55, SAMConfiguration)
    assert not chip.asleep and chip.commands[0x14] == 2


def case_slow_answer_is_cancelled_and_the_link_stays_in_step():
    card = make_card()
    clock, chip, uart, pn = uart_reader(card, card_us=30000)  # the card works 30 ms per APDU
    port = Pn532CardPort(pn, exchange_ms=10)
    assert port.detect()
    raises(CardLost, port.transceive, SELECT_EP)
    assert pn.cancels == 1 and chip.cancelled == 1  # our ACK stopped the PN532 waiting for it
    port.exchange_us = 100000
    assert port.transceive(SELECT_EP)[-2:] == b"\x90\x00" and card.apdus == 2


def case_i2c_cut_answer_and_missing_device():
    card = make_card()
    clock, chip, bus, pn = i2c_reader(card)
    port = Pn532CardPort(pn)
    assert port.detect()
    chip.drop_answer_bytes(2)
    assert port.transceive(SELECT_EP)[-2:] == b"\x90\x00"
    assert pn.nacks_sent == 1 and card.apdus == 1
    bus.address = 0x25  # nobody answers at 0x24 any more: OSError from the bus, CardLost from the port
    e = raises(CardLost, port.transceive, SELECT_EP)
    assert "I2C" in str(e)
