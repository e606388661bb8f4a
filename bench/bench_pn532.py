"""One purchase through the PN532 driver and the chip simulator: frames and bytes on the wire, modelled link time.

    python bench/bench_pn532.py                                   # CPython: HSU 115200, 921600, I2C 400 kHz
    node tests/mp/run.mjs --script bench/bench_pn532.py           # the same under MicroPython, plus the heap

Link time is the bytes that crossed the host-PN532 link at its rate (UART 10 bits a byte, I2C 9 bits, the
status polls and address bytes counted), from the driver's own counts. The tap time is the simulated clock
from the first APDU to the last answer: the link, the chip's modelled times (tests/sim/pn532chip.py: 106 kbit/s
RF, an assumed 2 ms of card work per APDU) and 20 us per clock read for the host's polling loop; the ESP32's
CPU time is not in it (bench_purchase.py has that). Under MicroPython the heap per InDataExchange is
gc.mem_alloc() across port.transceive minus what the simulators allocate inside their calls.
"""
import gc
import sys

try:
    import sim.pn532chip  # noqa: F401
except ImportError:  # CPython from a checkout
    import os

    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:0] = [os.path.join(_root, "firmware"), os.path.join(_root, "tests"), _root]

from drivers.pn532 import Pn532CardPort
from drivers.pn532_uart import Pn532Uart
from drivers.pn532_i2c import Pn532I2c
from adafruit_pn532.adafruit_pn532 import PN532  # after drivers.pn532: it provides `digitalio` on MicroPython
from sim.card import make_card
from sim.pn532chip import Pn532Chip, SimClock
from sim.pn532wire import SimUart, SimI2C, BusioUart, MeteredUart, mem
from sim.rig import Rig
from tunion import outcome as O

MICROPYTHON = sys.implementation.name == "micropython"
SELECT_EP = bytes.fromhex("00A4040008A000000632010105")


def one_tap(link):
    clock = SimClock()
    card = make_card(balance=5000)
    chip = Pn532Chip(clock, card=card)
    if link == "i2c":
        pn = Pn532I2c(SimI2C(chip), clock=clock)
        pn.set_max_retries()
        bits, rate = 9, 400000
    else:
        pn = Pn532Uart(SimUart(chip), clock=clock).boot(link)
        bits, rate = 10, link
    port = Pn532CardPort(pn)
    assert port.detect()
    pn.reset_counts()
    pn.polls = 0
    t0 = clock.now
    r = Rig().tap(port)
    assert r.status == O.PAID, r
    c = pn.counts()
    return {
        "link": "I2C 400 kHz" if link == "i2c" else "HSU %d" % link,
        "apdus": card.apdus,
        "frames_out": c["frames_out"], "frames_in": c["frames_in"],
        "bytes_out": c["bytes_out"], "bytes_in": c["bytes_in"],
        "link_ms": (c["bytes_out"] + c["bytes_in"]) * bits * 1000.0 / rate,
        "tap_ms": (clock.now - t0) / 1000.0,
        "polls": getattr(pn, "polls", 0),
    }


def stock_tap():
    """The unmodified adafruit_pn532.uart.PN532_UART at 115200 (CPython only: it needs busio's UART)."""
    from adafruit_pn532.uart import PN532_UART
    from tunion.errors import CardLost

    class Port:
        def transceive(self, apdu):
            resp = pn.call_function(0x40, params=b"\x01" + apdu, response_length=255)
            if resp is None or resp[0]:
                raise CardLost("stock")
            return bytes(resp[1:])

    clock = SimClock()
    card = make_card(balance=5000)
    chip = Pn532Chip(clock, card=card)
    pn = PN532_UART(BusioUart(SimUart(chip)))
    pn.read_passive_target(timeout=0.5)
    f0, b0, b1 = chip.frames_in + chip.frames_out, chip.bytes_in, chip.bytes_out
    t0 = clock.now
    assert Rig().tap(Port()).status == O.PAID
    return {"link": "stock HSU 115200", "apdus": card.apdus, "frames": chip.frames_in + chip.frames_out - f0,
            "bytes_out": chip.bytes_in - b0, "bytes_in": chip.bytes_out - b1,
            "tap_ms": (clock.now - t0) / 1000.0}


class BaseFraming(Pn532Uart):
    """Our UART bus hooks under the base class's own framing (its _write_frame, _read_frame, call_function)."""

    _write_frame = PN532._write_frame
    _read_frame = PN532._read_frame
    call_function = PN532.call_function


def heap_per_exchange(cls=Pn532Uart, n=10):
    clock = SimClock()
    chip = Pn532Chip(clock, card=make_card())
    meter = MeteredUart(SimUart(chip))
    pn = cls(meter, clock=clock).boot(921600)
    port = Pn532CardPort(pn)
    assert port.detect()
    if cls is Pn532Uart:
        def exchange():
            return port.transceive(SELECT_EP)
    else:
        params = b"\x01" + SELECT_EP

        def exchange():
            return pn.call_function(0x40, params=params, response_length=255)
    resp_len = len(exchange())  # warm up
    gc.collect()
    gc.disable()
    meter.sim = 0
    m0 = mem()
    for _ in range(n):
        exchange()
    total = mem() - m0
    gc.enable()
    return (total - meter.sim) // n, resp_len


def main():
    rows = [one_tap(115200), one_tap(921600), one_tap("i2c")]
    print("PN532 link, one purchase (%s)" % sys.implementation.name)
    print("%-18s %5s %10s %10s %9s %9s %9s" % ("link", "APDUs", "frames o/i", "bytes out", "bytes in",
                                               "link ms", "tap ms"))
    for r in rows:
        print("%-18s %5d %4d/%-5d %10d %9d %9.1f %9.1f" % (r["link"], r["apdus"], r["frames_out"], r["frames_in"],
                                                         r["bytes_out"], r["bytes_in"], r["link_ms"], r["tap_ms"]))
    print("(I2C bytes in include %d busy status polls of 2 bytes each, while the card works)" % rows[2]["polls"])
    if not MICROPYTHON:
        s = stock_tap()
        print("%-18s %5d %10d %10d %9d %9s %9.1f" % (s["link"], s["apdus"], s["frames"], s["bytes_out"],
                                                   s["bytes_in"], "-", s["tap_ms"]))
    else:
        per, resp_len = heap_per_exchange()
        base, _ = heap_per_exchange(BaseFraming)
        print("heap per InDataExchange (SELECT, %d-byte answer): %d bytes; the base class's framing over the same"
              " bus: %d bytes" % (resp_len, per, base))


if __name__ == "__main__":
    main()
