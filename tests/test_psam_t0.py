"""drivers.psam_t0 (the PSAM over ISO 7816-3 T=0) against the byte-level simulator tests/sim/t0sam.py.

Every test ends in the right answer or a clear SamError, and (unless a fault was seeded to make the card mute)
the strict card saw no protocol violation.
"""
import pytest

from drivers.atr import Atr, need, inverse
from drivers.psam_t0 import T0Psam, CLOCK_HZ, LinkFault
from sim import keys
from sim.card import make_card
from sim.rig import Rig
from sim.t0sam import T0Sam, ATR_TRANSPORT, ATR_TA1, ATR_TA1_T1, ATR_PLAIN, with_tck
from tunion import crypto, outcome as O
from tunion.errors import SamError
from tunion.psam import Psam

EF15 = bytes.fromhex("00B095000E")
SELECT = bytes.fromhex("00A40000028011")
DT7 = bytes.fromhex("20261201080000")
SN8 = bytes(range(1, 9))
RANDOM4 = b"\x11\x22\x33\x44"


def link(clock_hz=CLOCK_HZ, pps=True, **kw):
    sam = T0Sam(**kw)
    port = T0Psam(sam.uart, sam.pwm, sam.rst, sam.detect, clock_hz=clock_hz, clock=sam.clock, pps=pps)
    return sam, port


def ef15(port):
    r = port.transceive(EF15)
    assert r == keys.TEST_PSAM_SERIAL + b"\x01\x00\x00\x00\x90\x00", r.hex()
    return r


def purchase(psam):
    """8070 then 8072 with the right MAC2: -> (ttc, mac1, credited)."""
    ttc, mac1 = psam.init_purchase(RANDOM4, 7, 200, 0x09, DT7, keys.KEY_VERSION, 0, SN8, keys.TEST_ISSUER)
    dpk = crypto.card_key(keys.MPK, keys.TEST_ISSUER, SN8)
    ses = crypto.session_key(dpk, RANDOM4, b"\x00\x07", ttc.to_bytes(4, "big"))
    return ttc, mac1, psam.credit(crypto.mac2(ses, (200).to_bytes(4, "big")))


# ---- the ATR ----------------------------------------------------------------------------------------------

def test_atr_transport_psam_has_no_ta1_and_two_etu_guard():
    a = Atr(ATR_TRANSPORT)
    assert a.ta1 is None and a.guard == 2 and a.protocols == (0,) and a.fi == 372 and a.di == 1
    assert a.historical == b"TEST-PSAM-01" and a.wi == 10 and not a.pps_wanted()


def test_atr_ta1_and_tck():
    a = Atr(ATR_TA1_T1)
    assert a.ta1 == 0x13 and a.di == 4 and a.guard == 1 and a.protocols == (0, 1) and a.pps_wanted()
    bad = ATR_TA1_T1[:-1] + bytes((ATR_TA1_T1[-1] ^ 1,))
    with pytest.raises(ValueError, match="TCK"):
        Atr(bad)
    with pytest.raises(ValueError, match="TCK|say"):
        Atr(ATR_TA1_T1[:-1])  # TCK missing although T=1 is offered


def test_atr_length_is_known_byte_by_byte():
    for raw in (ATR_TRANSPORT, ATR_TA1, ATR_TA1_T1, ATR_PLAIN):
        n = 1
        while need(raw, n) > n:
            n += 1
        assert n == len(raw)


def test_atr_rejects_bad_ts_and_reserved_ta1_and_wi_zero():
    with pytest.raises(ValueError, match="TS"):
        Atr(b"\x3c\x00")
    with pytest.raises(ValueError, match="reserved"):
        Atr(bytes.fromhex("3B1070"))  # Fi index 7: RFU
    with pytest.raises(ValueError, match="WI"):
        Atr(bytes.fromhex("3B8040") + b"\x00" + b"")  # TD1 -> TC2 = 00


def test_inverse_convention_coding():
    assert inverse(0x3F) == 0x03 and all(inverse(inverse(i)) == i for i in range(256))


# ---- activation and rate ----------------------------------------------------------------------------------

@pytest.mark.parametrize("hz,baud", [(3571200, 9611), (5000000, 13441)])
def test_transport_atr_stays_at_f372_baud_from_the_real_clock(hz, baud):
    sam, port = link(clock_hz=hz)
    ef15(port)
    assert sam.pwm.freq() == (3575419 if hz == 3571200 else 5000000)
    assert port.baud == baud == round(sam.pwm.freq() / 372)  # derived from what the PWM makes
    assert port.pps == 0 and sam.pps_accepted == 0 and port.atr.raw == ATR_TRANSPORT
    assert sam.violations == [] and sam.atrs == 1 and port.resets == 1


def test_pps_to_ta1_accepted():
    sam, port = link(atr=ATR_TA1)
    ef15(port)
    assert sam.pps_accepted == 1 and port.pps == 1 and port.di == 4
    assert port.baud == round(5000000 * 4 / 372) and sam.violations == []


def test_pps_with_tck_atr_and_inverse_convention():
    for atr in (ATR_TA1_T1, bytes.fromhex("3F6000020000")[:4]):
        sam, port = link(atr=atr)
        ef15(port)
        assert sam.violations == [], (atr.hex(), sam.violations)
    assert port.atr.ts == 0x3F and sam.inverse and sam.uart.fmt == (8, 1, 2)


def test_pps_refused_keeps_default_rate():
    sam, port = link(atr=ATR_TA1, pps_answer="refuse")
    ef15(port)
    assert port.pps == 0 and port.baud == 13441 and sam.violations == [] and port.faults == 0


def test_pps_unanswered_is_a_fault_and_the_retry_goes_without():
    sam, port = link(atr=ATR_TA1, pps_answer="mute")
    ef15(port)
    assert port.faults == 1 and port.resets == 2 and port.baud == 13441 and port.pps == 0
    assert sam.atrs == 2 and sam.violations == []


def test_clock_lowered_to_what_ta1_allows():
    sam, port = link(atr=bytes.fromhex("3B500100"), clock_hz=5000000)  # TA1 = 01: Fi 372 with f(max) 4 MHz
    ef15(port)
    assert sam.pwm.freq() == 4000000 and port.baud == 10753 and port.clock_hz == 4000000
    assert sam.atrs == 2 and port.faults == 0 and sam.violations == []


def test_no_pps_when_disabled():
    sam, port = link(atr=ATR_TA1, pps=False)
    ef15(port)
    assert port.baud == 13441 and port.sent == len(EF15)


# ---- procedure bytes --------------------------------------------------------------------------------------

def test_null_procedure_bytes_extend_the_waiting_time():
    sam, port = link(atr=ATR_PLAIN, nulls=4, null_gap_us=0)
    wwt = 960 * 10 * 372 / 5.0  # WWT at 5 MHz, WI = 10, Fi = 372: 714 ms
    sam.null_gap_us = 0.8 * wwt
    sam.compute_us = 3 * wwt  # three work waiting times in all: only the 60s keep the link alive
    t0 = sam.clock.now
    ef15(port)
    assert sam.clock.now - t0 > 3 * wwt and port.faults == 0 and sam.violations == []


def test_card_slower_than_wwt_without_nulls_is_a_timeout():
    sam, port = link(atr=ATR_PLAIN)
    sam.compute_us = 1.5 * 960 * 10 * 372 / 5.0  # 1.5 WWT at 5 MHz
    with pytest.raises(SamError, match="nothing within .*again after a cold reset"):
        ef15(port)
    assert port.resets == 2 and port.faults == 2


def test_one_byte_at_a_time_both_directions():
    sam, port = link(byte_mode=True)
    psam = Psam(port).open()
    assert psam.serial == keys.TEST_PSAM_SERIAL
    assert purchase(psam)[2] is True and sam.violations == []


def test_61xx_get_response_chained():
    sam, port = link(split_response=3)
    psam = Psam(port).open()
    n = port.exchanges
    ttc, mac1, ok = purchase(psam)
    assert ok and len(mac1) == 4
    assert port.exchanges - n == 1 + 3 + 1  # 8070, GET RESPONSE 3 + 3 + 2 bytes, 8072
    assert sam.violations == []


def test_6cxx_resends_with_the_card_length():
    sam, port = link()
    r = port.transceive(bytes.fromhex("00B0950000"))  # Le 00 = 256 in T=0: the card says 6C0E
    assert r == keys.TEST_PSAM_SERIAL + b"\x01\x00\x00\x00\x90\x00" and port.exchanges == 2
    sam, port = link(answer_6c=False)
    assert port.transceive(bytes.fromhex("00B0950000")) == b"\x67\x00"  # a status word is an answer


def test_status_words_are_answers():
    sam, port = link()
    assert port.transceive(bytes.fromhex("00EE000000")) == b"\x6d\x00"
    assert port.transceive(bytes.fromhex("80700000")) == b"\x67\x00"  # case 1 8070: wrong length
    assert port.faults == 0 and sam.violations == []


def test_a_quiet_spell_past_half_the_ticks_period_does_not_sleep_for_minutes():
    # ticks_us wrap at 2**30 us: the turnaround wait after the card's last byte must not read a byte from
    # ~9 minutes ago as one from the future (a sleep of minutes, then the watchdog: found on the virtual board).
    sam, port = link()
    ef15(port)
    for gap in ((1 << 29) + 5000, (1 << 30) - 20000):
        sam.clock.now += gap
        t0 = sam.clock.now
        ef15(port)
        assert sam.clock.now - t0 < 100000, "the exchange took %d us" % (sam.clock.now - t0)
    assert sam.violations == []


def test_a_stall_between_polling_and_the_clock_read_is_not_a_silent_card():
    # The CPU taken away for 6 ms (more than an echo's 4.8 ms wait) right after the driver found nothing yet:
    # the byte arrived meanwhile, so the deadline check must look once more before calling the line dead.
    sam, port0 = link()

    class Stalling:
        def __init__(self):
            self.n = 0

        def ticks_us(self):
            self.n += 1
            if self.n % 5 == 0:
                sam.clock.now += 6000
            return sam.clock.ticks_us()

        def sleep_us(self, us):
            sam.clock.sleep_us(us)

    port = T0Psam(sam.uart, sam.pwm, sam.rst, sam.detect, clock=Stalling(), pps=False)
    for _ in range(3):
        ef15(port)
    assert port.faults == 0 and port.resets == 1 and sam.violations == []


def test_bad_apdu_is_a_value_error():
    sam, port = link()
    for bad in (b"\x00\xa4", b"\x00\xa4\x00\x00\x02\x80", b"\x00\xa4\x00\x00\x00\x80"):
        with pytest.raises(ValueError):
            port.transceive(bad)


# ---- faults -----------------------------------------------------------------------------------------------

def test_silent_card_no_atr():
    sam, port = link(silent=True)
    with pytest.raises(SamError, match="ATR.*again after a cold reset.*ATR"):
        ef15(port)
    assert port.resets == 2 and sam.atrs == 0 and sam.clock.now < 50000  # 2 x (500 + 40,000 clocks) and slack


def test_card_dies_mid_session():
    sam, port = link(silent_after=1)
    ef15(port)
    with pytest.raises(SamError, match="procedure byte"):
        ef15(port)


def test_stall_is_recovered_and_the_application_selected_again():
    sam, port = link(stall_at=5)  # EF15, EF16, SELECT, EF17, then the 8070 stalls
    psam = Psam(port).open()
    ttc, mac1, ok = purchase(psam)
    assert ok and port.faults == 1 and sam.atrs == 2
    assert sam.softsam.ins_counts[0xA4] == 2 and sam.violations == []


def test_8072_is_never_retried_across_a_reset():
    sam, port = link(stall_at=7)  # 8070 and its GET RESPONSE are 5 and 6; 8072 is 7
    psam = Psam(port).open()
    with pytest.raises(SamError, match="8072.*not retried"):
        purchase(psam)
    assert sam.atrs == 1 and port.faults == 1 and sam.softsam.ins_counts.get(0x72, 0) == 0
    ef15(port)  # the next exchange cold-resets
    assert sam.atrs == 2


@pytest.mark.parametrize("at", [0, 1, len(ATR_TRANSPORT), len(ATR_TRANSPORT) + 15])  # TS, T0, INS, SW1
def test_corrupted_byte_then_recovered(at):
    sam, port = link(corrupt_at=at)
    ef15(port)
    assert port.faults == 1 and port.resets == 2


def test_corrupted_tck():
    sam, port = link(atr=ATR_TA1_T1, corrupt_at=len(ATR_TA1_T1) - 1)
    ef15(port)
    assert port.faults == 1 and sam.pps_accepted == 1


def test_corrupted_data_byte_passes_to_the_macs():
    # T=0 has no checksum and the UART hides parity errors: a data byte corrupted on the wire is not seen here;
    # MAC1/MAC2/TAC catch it cryptographically (notes/board.md).
    sam, port = link(corrupt_at=len(ATR_TRANSPORT) + 1)
    r = port.transceive(EF15)
    assert r[-2:] == b"\x90\x00" and r[:10] != keys.TEST_PSAM_SERIAL and port.faults == 0


def test_wrong_echo_is_a_link_fault():
    sam, port = link(wrong_echo_at=2)
    ef15(port)
    assert port.faults == 1 and port.resets == 2


def test_card_removed():
    sam, port = link()
    ef15(port)
    sam.remove()
    with pytest.raises(SamError, match="not in its slot"):
        ef15(port)
    sam.insert()
    ef15(port)


def test_host_needs_an_injected_clock():
    sam = T0Sam()
    with pytest.raises(ValueError, match="clock"):
        T0Psam(sam.uart, sam.pwm, sam.rst)


# ---- the simulator is strict ------------------------------------------------------------------------------

def test_sim_mutes_on_a_missing_guard_time():
    sam, port = link()
    port._cold_reset()
    port._extra = 0  # forget TC1 = 2: bytes back to back
    with pytest.raises(LinkFault):
        port._exchange(EF15)
    assert sam.mute and "guard time 14" in sam.violations[0]


def test_sim_mutes_on_data_before_the_procedure_byte():
    sam, port = link(atr=ATR_PLAIN)
    port._cold_reset()
    with pytest.raises(LinkFault, match="echo"):  # the card's procedure byte collides with our data
        port._send(SELECT)  # header and data at once; the echoes are checked before the next read
        port._check_echo()
    assert "out of turn" in sam.violations[0] or "expected none" in sam.violations[0]


def test_sim_mutes_on_bad_pps():
    for req, why in ((b"\xff\x10\x13\x00", "PCK"), (b"\xff\x10\x18\xf7", "not what TA1")):
        sam, port = link(atr=ATR_TA1, pps=False)
        port._cold_reset()
        port._send(req)
        assert why in sam.violations[0]


def test_sim_mutes_on_get_response_without_61():
    sam, port = link()
    with pytest.raises(SamError):
        port.transceive(bytes.fromhex("00C0000008"))
    assert "GET RESPONSE without" in sam.violations[0]


def test_sim_mutes_on_wrong_rate_and_early_rst():
    sam, port = link()
    port._cold_reset()
    port.baud = 9600
    sam.uart.init(baudrate=9600, bits=8, parity=0, stop=2, timeout=0, timeout_char=0)
    sam.uart.write(EF15)
    assert "baud" in sam.violations[0]
    sam = T0Sam()
    sam.pwm.freq(5000000)
    sam.pwm.duty_u16(32768)
    sam.rst.value(1)
    assert "400" in sam.violations[0] and sam.atrs == 0


# ---- end to end ---------------------------------------------------------------------------------------------

def _wire_ms(atr, hz):
    sam, port = link(atr=atr, clock_hz=hz)
    psam = Psam(port).open()
    t0, sent, received, exchanges = sam.clock.now, port.sent, port.received, port.exchanges
    ttc, mac1, ok = purchase(psam)
    assert ok and sam.violations == []
    return (sam.clock.now - t0) / 1000.0, (port.sent - sent, port.received - received, port.exchanges - exchanges)


def test_psam_open_8070_8072_over_t0():
    sam, port = link()
    psam = Psam(port).open()
    assert psam.serial == keys.TEST_PSAM_SERIAL and psam.terminal == keys.TEST_TERMINAL
    ttc, mac1, ok = purchase(psam)
    assert ok and ttc == sam.softsam.ttc and psam.session_ttc is None
    assert sam.softsam.ins_counts[0x70] == 1 and sam.softsam.ins_counts[0x72] == 1


def test_wire_time_of_8070_8072():
    slow, _ = _wire_ms(ATR_TRANSPORT, 3571200)
    fast, counts = _wire_ms(ATR_TRANSPORT, 5000000)
    pps, _ = _wire_ms(ATR_TA1, 5000000)
    assert 90 < slow < 120 and 60 < fast < 90 and pps < 25  # notes/board.md: ~70-90 ms without TA1
    assert abs(slow / fast - 5000000 / 3575419) < 0.02  # it is all wire: scales with the clock
    # 8070 as a case 3 TPDU (5 + 36), GET RESPONSE (5), 8072 (5 + 4); back: INS, 61 08, C0 + 8 + 90 00, INS, 90 00
    assert counts == (41 + 5 + 9, 3 + 11 + 3, 3)


def test_a_tap_through_the_t0_psam():
    rig = Rig()
    sam, port = link(softsam=rig.softsam)
    rig.psam = Psam(port).open()
    card = make_card(balance=5000)
    r = rig.tap(card)
    assert r.status == O.PAID and card.balance == 4800 and sam.violations == []


# ---- 8070 sent ahead: start() / finish() ------------------------------------------------------------------

def _purchase_started(psam, sam, busy_us):
    """begin_purchase, `busy_us` of other work (the card's cache update), end_purchase, 8072: -> (ttc, credited)."""
    psam.begin_purchase(RANDOM4, 7, 200, 0x09, DT7, keys.KEY_VERSION, 0, SN8, keys.TEST_ISSUER)
    sam.clock.sleep_us(busy_us)
    ttc, mac1 = psam.end_purchase()
    dpk = crypto.card_key(keys.MPK, keys.TEST_ISSUER, SN8)
    ses = crypto.session_key(dpk, RANDOM4, b"\x00\x07", ttc.to_bytes(4, "big"))
    assert mac1 == crypto.mac1(ses, (200).to_bytes(4, "big"), 0x09, keys.TEST_TERMINAL, DT7)
    return ttc, psam.credit(crypto.mac2(ses, (200).to_bytes(4, "big")))


@pytest.mark.parametrize("atr", [ATR_TRANSPORT, ATR_TA1], ids=["TC1=2", "TA1+PPS"])
def test_the_psam_works_on_8070_while_the_tap_does_something_else(atr):
    # 12 ms of PSAM work (bench_purchase's assumption) against 12 ms of card work done between start and finish:
    # the two overlap, so the whole costs about the 12 ms less than one after the other.
    times = []
    for overlap in (False, True):
        sam, port = link(atr=atr, compute_us=12000)
        psam = Psam(port).open()
        t0 = sam.clock.now
        if overlap:
            ttc, ok = _purchase_started(psam, sam, 12000)
        else:
            ttc, _, ok = purchase(psam)
            sam.clock.sleep_us(12000)
        times.append(sam.clock.now - t0)
        assert ok and ttc == sam.softsam.ttc and sam.violations == [] and port.faults == 0
        assert sam.softsam.ins_counts[0x70] == 1 and sam.softsam.ins_counts[0x72] == 1
    serial, overlapped = times
    assert 11000 < serial - overlapped <= 12100, times


def test_start_returns_once_the_body_is_on_the_line():
    sam, port = link(compute_us=12000)
    psam = Psam(port).open()
    sent, received, t0 = port.sent, port.received, sam.clock.now
    psam.begin_purchase(RANDOM4, 7, 200, 0x09, DT7, keys.KEY_VERSION, 0, SN8, keys.TEST_ISSUER)
    # all 41 bytes of 8070 out, only its procedure byte (INS) in, and back before the PSAM's 12 ms of work
    assert (port.sent - sent, port.received - received) == (41, 1)
    assert sam.clock.now - t0 < 41 * 14 * 1e6 / 13441 + 2000 and sam.pending  # 61 08 not even sent yet
    psam.end_purchase()
    assert (port.sent - sent, port.received - received) == (41 + 5, 1 + 2 + 11)
    assert sam.clock.now - t0 > 12000 and sam.violations == []


def test_a_link_fault_inside_start_is_recovered_by_finish():
    sam, port = link(stall_at=5)  # the 8070 header goes unanswered: start keeps the fault, finish resets
    psam = Psam(port).open()
    ttc, ok = _purchase_started(psam, sam, 5000)
    assert ok and port.faults == 1 and sam.atrs == 2 and sam.softsam.ins_counts[0xA4] == 2


def test_finish_without_start_is_an_error():
    sam, port = link()
    with pytest.raises(ValueError, match="without start"):
        port.finish()


HDR_8070 = bytes.fromhex("8070000024")
HDR_8072 = bytes.fromhex("8072000004")


def test_a_primed_header_takes_its_line_time_off_the_command():
    # prime() while the card works (INITIALIZE, DEBIT): start() then sends only the body. 8070 + 8072 from the
    # first body byte on is shorter by both headers and their procedure bytes (~7 ms each at 13,441 baud, TC1=2).
    times = []
    for primed in (False, True):
        sam, port = link()
        psam = Psam(port).open()
        if primed:
            port.prime(HDR_8070)
        t0 = sam.clock.now
        psam.begin_purchase(RANDOM4, 7, 200, 0x09, DT7, keys.KEY_VERSION, 0, SN8, keys.TEST_ISSUER)
        ttc, mac1 = psam.end_purchase()
        if primed:
            t1 = sam.clock.now
            port.prime(HDR_8072)
            t0 += sam.clock.now - t1  # the 8072 prime is the card's time, not the tap's
        dpk = crypto.card_key(keys.MPK, keys.TEST_ISSUER, SN8)
        ses = crypto.session_key(dpk, RANDOM4, b"\x00\x07", ttc.to_bytes(4, "big"))
        assert psam.credit(crypto.mac2(ses, (200).to_bytes(4, "big")))
        times.append(sam.clock.now - t0)
        assert sam.violations == [] and port.faults == 0 and sam.softsam.ins_counts[0x72] == 1
    assert 12000 < times[0] - times[1] < 16000, times


def test_priming_twice_sends_the_header_once_and_another_command_resets():
    sam, port = link()
    psam = Psam(port).open()
    n = sam.exchanges
    port.prime(HDR_8072)  # 8072's header after a DEBIT whose answer was lost: nothing came to take it
    port.prime(HDR_8072)
    port.prime(HDR_8070)  # the next tap's INITIALIZE: another header while one waits is left as it is
    assert sam.exchanges == n + 1 and sam.atrs == 1
    # 8070 cannot wait: a cold reset, the application selected again, then 8070 and 8072 as usual
    ttc, mac1, ok = purchase(psam)
    assert ok and sam.atrs == 2 and port.faults == 0 and sam.violations == []
    assert sam.softsam.ins_counts[0xA4] == 2


def test_a_header_answered_at_once_is_sent_whole_later_after_a_reset():
    sam, port = link()
    psam = Psam(port).open()
    port.prime(bytes.fromhex("8099000004"))  # an instruction this PSAM does not know: a status word at once
    assert port._primed is None and port.atr is None and port.faults == 0
    ttc, mac1, ok = purchase(psam)  # cold reset, DF 8011 selected again, then 8070 and 8072 as usual
    assert ok and sam.atrs == 2 and sam.softsam.ins_counts[0xA4] == 2 and sam.violations == []


def test_a_fault_while_priming_shows_at_the_command():
    sam, port = link(stall_at=5)  # the primed 8070 header goes unanswered
    psam = Psam(port).open()
    t0 = sam.clock.now
    port.prime(HDR_8070)
    ttc, mac1, ok = purchase(psam)  # start() hands the fault to finish(): cold reset, SELECT again, 8070 again
    assert ok and port.faults == 1 and sam.atrs == 2
    assert sam.clock.now - t0 < 1.5 * port._wwt  # one waiting time lost, not a second one on the mute line
    sam, port = link(stall_at=7)  # 8070, GET RESPONSE, then the primed 8072 header goes unanswered
    psam = Psam(port).open()
    ttc, mac1 = psam.init_purchase(RANDOM4, 7, 200, 0x09, DT7, keys.KEY_VERSION, 0, SN8, keys.TEST_ISSUER)
    port.prime(HDR_8072)
    with pytest.raises(SamError, match="8072.*not retried"):
        psam.credit(b"\x00" * 4)
    assert sam.softsam.ins_counts.get(0x72, 0) == 0


def test_a_tap_primes_both_headers_on_a_port_that_runs_work_during_the_card():
    rig = Rig()
    sam, port = link(softsam=rig.softsam)
    rig.psam = Psam(port).open()
    card = make_card(balance=5000)
    seen = []

    class During:
        def transceive(self, apdu):
            return card.transceive(apdu)

        def transceive_during(self, apdu, fn):
            fn()
            seen.append((apdu[1], port._primed))
            return card.transceive(apdu)

    r = rig.tap(During())
    assert r.status == O.PAID and card.balance == 4800 and sam.violations == [] and port.faults == 0
    # The headers go out with INITIALIZE's and DEBIT's jobs (8070 has taken its own by UPDATE CAPP DATA CACHE).
    assert seen == [(0xB0, None), (0x50, HDR_8070), (0xDC, None), (0x54, HDR_8072)] and port._primed is None


@pytest.mark.parametrize("atr", [ATR_TRANSPORT, ATR_PLAIN], ids=["TC1=2: paced", "back to back"])
def test_echoes_are_checked_per_write_not_waited_for_byte_by_byte(atr):
    # The board's UART hands received bytes to Python late (its FIFO's idle timeout; 2 ms assumed): a driver that
    # waited for each echo before writing the next byte would pay that 55 times a tap; this one pays it per read.
    times = []
    for idle in (0, 2000):
        sam, port = link(atr=atr, rx_latency_us=idle)
        psam = Psam(port).open()
        t0 = sam.clock.now
        ttc, mac1, ok = purchase(psam)
        assert ok and sam.violations == []
        times.append(sam.clock.now - t0)
    # 8070, GET RESPONSE, 8072: each first read after a write (procedure byte, SW, data) waits it once
    assert times[1] - times[0] < 10 * 2000, times


# ---- the board factory and the documented examples -------------------------------------------------------

class _FakeMachine:
    """Just enough of `machine` to see what open_psam builds (the board's own objects are the simulator's)."""

    def __init__(self, sam):
        self.sam = sam
        self.made = []
        fake = self

        class Pin:
            OUT, IN = 1, 0

            def __init__(self, n, mode=None, value=None):
                fake.made.append(("Pin", n, mode, value))
                self.n = n

        self.Pin = Pin

    def UART(self, uart_id, **kw):
        self.made.append(("UART", uart_id, kw))
        return self.sam.uart

    def PWM(self, pin, **kw):
        self.made.append(("PWM", pin.n, kw))
        return self.sam.pwm


def test_open_psam_builds_uart1_pwm_and_pins_from_the_board(monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "boards" / "esp32-generic" / "pins.py"
    spec = importlib.util.spec_from_file_location("board_t0", path)
    board = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(board)
    sam = T0Sam()
    fake = _FakeMachine(sam)
    monkeypatch.setitem(sys.modules, "machine", fake)
    from drivers.psam_t0 import open_psam

    port = open_psam(board.PINS, clock=sam.clock)
    io = board.PINS["psam_io"][0]
    uart = [m for m in fake.made if m[0] == "UART"][0]
    assert uart[1] == 1 and uart[2]["tx"] == uart[2]["rx"] == io
    assert uart[2]["timeout"] == 0 and uart[2]["timeout_char"] == 0 and uart[2]["stop"] == 2
    assert ("PWM", board.PINS["psam_clk"][0], {"freq": CLOCK_HZ, "duty_u16": 0}) in fake.made
    assert ("Pin", board.PINS["psam_rst"][0], 1, 0) in fake.made
    assert ("Pin", board.PINS["psam_detect"][0], 0, None) in fake.made
    # The pins arrive wired to the simulated slot: the SAM port answers through them.
    port.rst, port.present = sam.rst, sam.detect
    ef15(port)


def test_docstring_examples():
    a = Atr(bytes.fromhex("3B6C0002") + b"0123456789AB")  # drivers/atr.py
    assert a.protocols == (0,) and a.guard == 2 and a.ta1 is None
    sam, port = link()  # tests/sim/t0sam.py
    assert port.transceive(bytes.fromhex("00B095000E"))[-2:] == b"\x90\x00" and sam.clock.now > 0
