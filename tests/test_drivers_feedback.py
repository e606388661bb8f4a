"""The clock, screen and feedback drivers against the DS3231 and SSD1306 simulators on the I2C bus stand-in.

Board stand-ins (machine.RTC, PWM, Pin) come from mpcases/feedback_cases.py, whose cases also run here
(tests/test_mpcases.py) and under MicroPython.
"""
import pytest

from drivers.feedback import HOLD_MS, Feedback
from drivers.rtc import EARLIEST, Clock, DS3231
from drivers.screen import Screen
from mpcases.feedback_cases import T0, MachineRTC, Ms, PinRec, PWMRec, Result, board
from sim.ds3231 import decode_time, encode_time
from sim.i2cbus import ENODEV, ETIMEDOUT, I2CBus
from sim.ssd1306 import SSD1306Sim
from tunion import messages
from tunion import outcome as O
from tunion.clock import civil, secs_from_civil
from tunion.display import Frame, show


# ---- DS3231 ----------------------------------------------------------------------------------------------------

def test_set_writes_golden_registers_and_reads_back_as_time_passes():
    ms, bus, ds, _ = board()
    rtc = DS3231(bus)
    t = secs_from_civil(2026, 12, 31, 23, 59, 58)  # a Thursday
    rtc.set(t)
    assert bytes(bus.readfrom_mem(0x68, 0, 7)) == bytes.fromhex("58592304" "311226")
    assert rtc.read() == t
    ds.advance(2000)  # across midnight and the new year: the chip's counters roll, the day of week too
    assert civil(rtc.read()) == (2027, 1, 1, 0, 0, 0)
    assert bytes(bus.readfrom_mem(0x68, 0, 7)) == bytes.fromhex("00000005" "010127")


def test_read_is_one_burst_of_sixteen_registers():
    _, bus, ds, _ = board()
    ds.set_time(T0)
    rtc = DS3231(bus)
    bus.reset_counts()
    rtc.read()
    assert bus.transactions == 2  # register pointer, then the read: one snapshot, never torn across a second
    assert bus.bytes_written == 1 and bus.bytes_read == 16


def test_oscillator_stop_flag_means_unknown_until_set():
    _, bus, ds, _ = board()
    rtc = DS3231(bus)
    assert rtc.read() is None  # power-on: OSF set
    rtc.set(T0)
    assert rtc.read() == T0
    ds.stop_oscillator()
    assert rtc.read() is None
    rtc.set(T0 + 100)
    assert rtc.read() == T0 + 100


def test_time_write_cut_halfway_leaves_the_time_distrusted():
    # urtc clears OSF before writing the time; ours clears it last, so a cut write never looks set.
    _, bus, ds, _ = board()
    rtc = DS3231(bus)
    bus.cut_after(4)  # pointer + 3 of the 7 time registers reach the chip
    with pytest.raises(OSError) as e:
        rtc.set(T0)
    assert e.value.args[0] == ETIMEDOUT
    assert ds.osf and rtc.read() is None


def test_power_cut_on_battery_keeps_time_without_battery_loses_it():
    ms, bus, ds, _ = board()
    rtc = DS3231(bus)
    rtc.set(T0)
    ds.power_off()
    ds.advance(3600 * 1000)
    ds.power_on()
    assert rtc.read() == T0 + 3600
    ds.battery = False
    ds.power_off()
    ds.advance(1000)
    ds.power_on()
    assert rtc.read() is None and rtc.lost_power()


def test_set_restarts_an_oscillator_told_to_stop_on_battery():
    _, bus, ds, _ = board()
    ds.poke(0x0E, b"\x9C")  # EOSC set: the oscillator would stop at the first power cut
    rtc = DS3231(bus)
    rtc.set(T0)
    assert bus.readfrom_mem(0x68, 0x0E, 1) == b"\x1C"
    ds.power_off()
    ds.advance(5000)
    ds.power_on()
    assert rtc.read() == T0 + 5


def test_twelve_hour_mode_and_century_bit_are_read_right():
    _, bus, ds, _ = board()
    rtc = DS3231(bus)
    rtc.set(T0)
    ds.poke(0x02, bytes((0x40 | 0x20 | 0x08,)))  # 12-hour mode, PM, 8 o'clock
    assert civil(rtc.read())[3] == 20
    ds.poke(0x02, bytes((0x40 | 0x12,)))  # 12 AM = 00 h
    assert civil(rtc.read())[3] == 0
    ds.poke(0x05, bytes((0x80 | 0x12,)))  # century bit: 2126
    assert civil(rtc.read())[0] == 2126


@pytest.mark.parametrize("reg,val", [(0x00, 0x6A), (0x04, 0x00), (0x05, 0x13), (0x02, 0x24), (0x04, 0x31)])
def test_registers_that_are_no_real_time_read_as_unknown(reg, val):
    _, bus, ds, _ = board()
    rtc = DS3231(bus)
    rtc.set(secs_from_civil(2026, 11, 30, 8, 0, 0))  # November: the 31st does not exist
    ds.poke(reg, bytes((val,)))
    assert ds.bad_time_writes == 1
    assert rtc.read() is None


@pytest.mark.parametrize("secs,err", [(EARLIEST - 1, ValueError), (secs_from_civil(2100, 1, 1), ValueError),
                                      (float(T0), TypeError)])
def test_set_refuses_times_it_cannot_hold(secs, err):
    _, bus, ds, _ = board()
    with pytest.raises(err):
        DS3231(bus).set(secs)
    assert ds.time_writes == 0


def test_missing_chip_is_an_oserror():
    bus = I2CBus()
    with pytest.raises(OSError) as e:
        DS3231(bus).read()
    assert e.value.args[0] == ENODEV


def test_simulator_register_codec_is_symmetric():
    for t in (T0, secs_from_civil(2000, 1, 1), secs_from_civil(2099, 12, 31, 23, 59, 59)):
        for h12 in (False, True):
            raw = encode_time(t, 4, h12)
            assert decode_time(raw) == (t, 4, h12)
            assert encode_time(*decode_time(raw)) == raw


# ---- Clock -----------------------------------------------------------------------------------------------------

def test_board_without_rtc_refuses_after_every_power_up_until_set():
    ms = Ms(0)
    mrtc = MachineRTC(ms)
    clock = Clock(mrtc, None, ms.ticks)
    assert not clock.boot() and clock.fault
    clock.set_time(T0)
    assert clock.valid
    # A watchdog or soft reset keeps machine.RTC: the app says warm, and the kept time is trusted.
    clock2 = Clock(mrtc, None, ms.ticks)
    assert clock2.boot(warm=True) and clock2.now()[0] == T0
    # A power cut does not: a cold boot is invalid whatever the RTC holds.
    assert not Clock(mrtc, None, ms.ticks).boot(warm=False)
    # And a warm boot on a never-set RTC (2000-01-01) is invalid too.
    assert not Clock(MachineRTC(ms), None, ms.ticks).boot(warm=True)


def test_boot_copies_the_ds3231_and_set_time_sets_both():
    ms, bus, ds, _ = board()
    mrtc = MachineRTC(ms)
    clock = Clock(mrtc, DS3231(bus), ms.ticks)
    assert not clock.boot() and "oscillator" in clock.fault and mrtc.sets == 0  # OSF: nothing copied
    clock.set_time(T0)
    assert clock.valid and ds.time() == T0 and not ds.osf and mrtc.sets == 1
    ms.ms += 3000
    ds.advance(3000)
    assert clock.now() == (T0 + 3, 3000)
    assert Clock(MachineRTC(ms), DS3231(bus), ms.ticks).boot()


def test_clock_with_a_silent_ds3231_is_invalid_and_set_time_raises():
    ms, bus, ds, _ = board()
    bus.detach(0x68)
    clock = Clock(MachineRTC(ms), DS3231(bus), ms.ticks)
    assert not clock.boot() and clock.fault == "RTC does not answer"
    with pytest.raises(OSError):
        clock.set_time(T0)
    assert not clock.valid


def test_ds3231_holding_a_time_before_the_build_date_is_invalid():
    ms, bus, ds, _ = board()
    ds.set_time(secs_from_civil(2001, 1, 1))
    assert not Clock(MachineRTC(ms), DS3231(bus), ms.ticks).boot()


# ---- Screen ----------------------------------------------------------------------------------------------------

def _core(lines):
    f = Frame()
    show(f, lines)
    return ["".join("#" if f.pixel(x, y) else "." for x in range(128)) for y in range(64)]


def _screen():
    _, bus, _, oled = board()
    scr = Screen(bus)
    scr.init()
    return bus, oled, scr


def test_paid_screen_shows_fare_and_balance_as_the_core_draws_them():
    bus, oled, scr = _screen()
    r = Result(O.PAID, fare=200, balance=4800)
    scr.result(r)
    scr.draw()
    assert messages.screen(r) == ["扣款成功", "Paid", "扣款 ¥2.00", "余额 ¥48.00"]
    assert oled.rows() == _core(messages.screen(r))
    assert sum(row.count("#") for row in oled.rows()) > 500


@pytest.mark.parametrize("status", O.ALL)
def test_every_outcome_screen_matches_the_core(status):
    bus, oled, scr = _screen()
    r = Result(status, fare=150, balance=99)
    if status in (O.OOS_CLOCK, O.OOS_RECORDS_FULL, O.OOS_CONFIG, O.OOS_SAM):
        scr.out_of_service(status)
        lines = list(messages.text(status))
    else:
        scr.result(r)
        lines = messages.screen(r)
    scr.draw()
    assert oled.rows() == _core(lines)


def test_idle_screen_with_a_note():
    bus, oled, scr = _screen()
    scr.idle("TEST KEYS")
    scr.draw()
    assert oled.rows() == _core(["请刷卡", "Please tap card", "TEST KEYS"])


def test_first_frame_is_whole_and_the_panel_is_lit_only_after_it():
    bus, oled, scr = _screen()
    assert not oled.on
    scr.idle()
    bus.reset_counts()
    oled.reset_counts()
    scr.draw()
    assert oled.data_bytes == 1024  # power-on RAM is garbage: every page once
    assert oled.commands[-1] == (0xAF, ())  # display on after the frame is in RAM
    assert oled.rows() == _core(list(messages.IDLE))


def test_second_draw_sends_only_changed_pages_and_columns():
    bus, oled, scr = _screen()
    scr.result(Result(O.PAID, fare=200, balance=4800))
    scr.draw()
    oled.reset_counts()
    before = scr.pages_sent
    scr.result(Result(O.PAID, fare=200, balance=4600))  # "48" -> "46": one glyph of the fourth row
    scr.draw()
    assert scr.pages_sent - before == 2  # pages 6 and 7 (rows 48..63)
    assert 0 < oled.data_bytes <= 2 * 8  # within one 8 px glyph's columns in each page
    assert oled.rows() == _core(messages.screen(Result(O.PAID, fare=200, balance=4600)))


def test_redraw_costs_on_the_wire_at_400khz():
    bus, oled, scr = _screen()
    scr.idle()
    bus.reset_counts()
    scr.draw()
    full = bus.wire_us()  # the first frame: all 8 pages, 1 KB of data
    assert 1024 < bus.bytes_total < 1120 and 23000 < full < 26000
    scr.result(Result(O.PAID, fare=200, balance=4800))
    bus.reset_counts()
    scr.draw()
    assert bus.bytes_total < 800  # idle -> paid: every row changes, but only the columns under text are sent
    scr.result(Result(O.PAID, fare=200, balance=4600))
    bus.reset_counts()
    scr.draw()
    assert bus.bytes_total < 40 and bus.wire_us() < 1000  # one digit: a few columns of two pages


def test_nothing_sent_when_unchanged_and_nothing_sent_before_draw():
    bus, oled, scr = _screen()
    scr.idle()
    scr.draw()
    bus.reset_counts()
    scr.idle()
    assert not scr.pending()
    renders = scr.renders
    scr.draw()
    assert bus.transactions == 0 and scr.renders == renders
    scr.result(Result(O.REFUSED_EXPIRED))  # right after a tap: remembered, not drawn
    assert scr.pending() and bus.transactions == 0
    scr.draw()
    assert bus.transactions > 0 and not scr.pending()


def test_flush_can_be_spread_over_several_idle_turns():
    bus, oled, scr = _screen()
    scr.result(Result(O.PAID, fare=200, balance=4800))
    scr.render()
    turns = 0
    while scr.pending():
        assert scr.flush(max_pages=2) <= 2
        turns += 1
    assert turns == 4 and oled.rows() == _core(messages.screen(Result(O.PAID, fare=200, balance=4800)))


def test_a_page_write_cut_halfway_is_repaired_by_the_next_draw():
    bus, oled, scr = _screen()
    scr.idle()
    scr.draw()
    scr.result(Result(O.PAID, fare=200, balance=4800))
    bus.cut_after(60)
    with pytest.raises(OSError):
        scr.draw()
    assert scr.pending()
    scr.draw()
    assert oled.rows() == _core(messages.screen(Result(O.PAID, fare=200, balance=4800)))


def test_too_many_lines_is_an_error():
    bus, oled, scr = _screen()
    with pytest.raises(ValueError):
        scr.lines(["a", "b", "c", "d", "e"])


def test_simulator_is_strict_about_commands_and_orientation():
    oled = SSD1306Sim()
    with pytest.raises(ValueError):
        oled.i2c_write(b"\x00\xFF")  # no such command
    with pytest.raises(ValueError):
        oled.i2c_write(b"\x00\x21\x00\x80")  # column 128
    with pytest.raises(ValueError):
        oled.i2c_write(b"\x01\xAF")  # control byte with low bits
    # Without the segment remap the module shows the RAM mirrored, as the real panel would.
    oled.i2c_write(b"\x00\x20\x00\xC8\x8D\x14\xAF\x21\x00\x7F\x22\x00\x07")
    oled.i2c_write(b"\x40\x01")  # column 0, page 0, top pixel
    assert oled.pixel(127, 0) == 1 and oled.pixel(0, 0) == 0
    oled.i2c_write(b"\x00\xA1")
    assert oled.pixel(0, 0) == 1


# ---- Feedback --------------------------------------------------------------------------------------------------

def _fb(start_ms=1000):
    ms = Ms(start_ms)
    pwm, g, r = PWMRec(ms), PinRec(), PinRec()
    return ms, pwm, g, r, Feedback(pwm, g, r)


def _run(status, step=1, start_ms=1000, mask=(1 << 30) - 1):
    ms, pwm, g, r, fb = _fb(start_ms)
    pwm.log = []
    fb.start(status, ms.ms)
    leds = (g.v, r.v)
    while fb.poll(ms.ms):
        ms.ms = (ms.ms + step) & mask
    return pwm, leds, (g.v, r.v), fb


def _durations(log):
    return tuple((log[i + 1][0] - log[i][0]) % (1 << 30) for i in range(len(log) - 1))


@pytest.mark.parametrize("status", O.ALL)
def test_every_outcome_plays_its_beeps_pattern(status):
    name = messages.beep(status)
    pwm, leds, after, fb = _run(status)
    pattern = messages.BEEPS[name]
    assert _durations(pwm.log) == pattern
    assert [d for _, d in pwm.log] == [32768 if i % 2 == 0 else 0 for i in range(len(pattern) + (1 if pattern else 0))]
    assert pwm.f == 2700
    expect = {messages.ACCEPTED: (1, 0), messages.SILENT: (0, 0)}.get(name, (0, 1))
    assert leds == expect
    assert after == ((0, 1) if name == messages.OUT_OF_SERVICE else (0, 0))
    assert fb.beeps == (len(pattern) + 1) // 2


def test_patterns_step_across_the_tick_wrap():
    pwm, _, _, _ = _run(O.REFUSED_EXPIRED, step=1, start_ms=(1 << 30) - 100)
    assert _durations(pwm.log) == messages.BEEPS[messages.REFUSED]


def test_a_late_poll_lengthens_a_step_and_never_shortens_the_next():
    pwm, _, _, fb = _run(O.REFUSED_EXPIRED, step=100)
    assert fb.beeps == 3
    ms, pwm, g, r, fb = _fb()
    pwm.log = []
    fb.start(O.REFUSED_EXPIRED, ms.ms)
    ms.ms += 150  # the loop was busy: the first beep ends 70 ms late
    while fb.poll(ms.ms):
        ms.ms += 1
    d = _durations(pwm.log)
    assert d[0] == 150 and d[1:] == messages.BEEPS[messages.REFUSED][1:]  # the gap after it is whole


def test_due_tells_the_loop_how_long_it_may_wait():
    ms, pwm, g, r, fb = _fb()
    assert fb.due(ms.ms) == -1
    fb.start(O.TAP_AGAIN, ms.ms)
    ms.ms += 100
    assert fb.due(ms.ms) == 200
    ms.ms += 250
    assert fb.due(ms.ms) == 0
    fb.poll(ms.ms)
    assert fb.due(ms.ms) == 150 and pwm.duty == 0


def test_a_new_outcome_replaces_the_pattern_and_a_repeat_changes_nothing():
    ms, pwm, g, r, fb = _fb()
    fb.start(O.REFUSED_EXPIRED, ms.ms)
    ms.ms += 10
    fb.poll(ms.ms)
    fb.start(O.PAID, ms.ms)
    assert (g.v, r.v) == (1, 0) and pwm.duty == 32768 and fb.name == messages.ACCEPTED
    fb.start(O.IGNORED_REPEAT, ms.ms + 5)  # silent: the payment's beep plays on
    assert fb.name == messages.ACCEPTED and pwm.duty == 32768
    ms.ms += 120
    fb.poll(ms.ms)
    assert pwm.duty == 0 and g.v == 1  # beep over, LED held
    ms.ms += HOLD_MS
    assert not fb.poll(ms.ms) and g.v == 0


def test_clear_darkens_the_out_of_service_light():
    pwm, _, after, fb = _run(O.OOS_SAM)
    assert after == (0, 1)
    fb.clear()
    assert (fb.green.v, fb.red.v) == (0, 0) and pwm.duty == 0 and not fb.busy()


def test_unknown_status_is_an_error():
    ms, pwm, g, r, fb = _fb()
    with pytest.raises(KeyError):
        fb.start("NOT_A_STATUS", ms.ms)
