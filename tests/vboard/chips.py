"""The PN532 and PSAM simulators (tests/sim) wired into the virtual board, on the board's own clock.

    b = Board(folder, files=...)
    reader = attach_pn532(b)              # sim.pn532chip on UART 2 (its card slot: b.place_card(SimCard()))
    psam = attach_psam(b)                 # sim.t0sam on UART 1, its RST and CLK on the pins.py GPIOs

The simulators keep their own model of time (`clock.now` in microseconds, `clock.wake_at` from the PN532's
wire when nothing is due yet); here both read the time the controller passes with each UART call, so their
timing rules (T=0 guard times, the PN532's answer delays) are checked against what the board really did.
"""
import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _pins():
    spec = importlib.util.spec_from_file_location("_vb_pins", ROOT / "boards" / "esp32-generic" / "pins.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


class BoardTime:
    """What the simulators read as their clock: the board's simulated microseconds. `wake_at` (the PN532 wire:
    nothing is due before then) moves a fast clock on to that byte, at most `max_jump_us` at a time, as the
    simulator's own SimClock does."""

    def __init__(self, clock, max_jump_us=500):
        self.clock = clock
        self.max_jump_us = max_jump_us
        self.wake_at = None

    @property
    def now(self):
        return self.clock.now_us()

    def ticks_us(self):
        return self.clock.now_us() & 0x3FFFFFFF

    def take_wake(self):
        w, self.wake_at = self.wake_at, None
        if w is not None and self.clock.fast:
            d = min(int(w) + 1, self.clock.now_us() + self.max_jump_us) - self.clock.now_us()
            if d > 0:
                self.clock.advance(d)


class Pn532Device:
    """devices.py UART interface over sim.pn532wire.SimUart (the machine.UART stand-in the driver tests use),
    with the chip's card slot for place_card/remove_card."""

    def __init__(self, chip, uart, time):
        self.chip = chip
        self.uart = uart
        self.time = time

    def write(self, data, t_us):
        self.uart.write(data)

    def any(self, t_us):
        n = self.uart.any()
        if not n:
            self.time.take_wake()
        return n

    def read(self, n, t_us):
        return self.uart.read(n) or b""

    def set_baud(self, baud):
        self.uart.init(baudrate=baud)

    def power_cycle(self):
        self.chip.power_on()

    def place(self, card):
        self.chip.card = card

    def remove(self):
        self.chip.card = None

    @property
    def card(self):
        return self.chip.card


def attach_pn532(board, **chip_kw):
    from sim.pn532chip import Pn532Chip
    from sim.pn532wire import SimUart

    t = BoardTime(board.clock)
    chip = Pn532Chip(t, **chip_kw)
    dev = Pn532Device(chip, SimUart(chip), t)
    board.controller.uarts[_pins().UART["pn532"]] = dev
    board.reader = dev
    # RSTPDN: the rising edge resets the chip (sim.pn532wire.SimResetPin)
    from sim.pn532wire import SimResetPin

    rst = SimResetPin(chip)
    board.controller.pin_hooks[_pins().PINS["pn532_reset"][0]] = rst.value
    dev.reset_pin = rst
    return dev


class PsamDevice:
    """devices.py UART interface over sim.t0sam's machine.UART stand-in (the one I/O line, echo included)."""

    def __init__(self, sam):
        self.sam = sam
        self.fmt = (8, 0, 2)

    def write(self, data, t_us):
        self.sam.uart.write(data)

    def any(self, t_us):
        return self.sam.uart.any()

    def read(self, n, t_us):
        return self.sam.uart.read(n) or b""

    def set_baud(self, baud):
        self._baud = baud

    def set_format(self, bits, parity, stop):
        self.sam.uart.init(baudrate=self._baud, bits=bits, parity=parity, stop=stop, timeout=0, timeout_char=0)

    def power_cycle(self):
        self.sam.rst.value(0)


def attach_psam(board, **sam_kw):
    from sim.t0sam import T0Sam

    sam = T0Sam(**sam_kw)
    sam.clock = BoardTime(board.clock)
    # The board's time is the host's real time plus skipped sleeps: the RPC latency between the driver's ticks
    # read and its UART write shifts a byte's start on the simulated line by tens of us (milliseconds under
    # load). A guard time short by less than one etu (74 us at 13,441 baud) is that noise, noted in sam.jitter.
    sam.jitter_etu = 1.0
    dev = PsamDevice(sam)
    p = _pins()
    ctl = board.controller
    ctl.uarts[p.UART["psam"]] = dev
    ctl.pin_hooks[p.PINS["psam_rst"][0]] = sam.rst.value

    def clk(freq, duty):
        sam.pwm.duty = duty  # set first: freq() checks the clock with both known
        sam.pwm.freq(freq)

    ctl.pwm_hooks[p.PINS["psam_clk"][0]] = clk
    ctl.inputs[p.PINS["psam_detect"][0]] = sam.detect.v
    dev.sam = sam
    return sam
