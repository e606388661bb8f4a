"""The PSAM's share of a tap on the wire: 8070 + 8072 over ISO 7816-3 T=0, by card clock and ATR (model time).

    PYTHONPATH=.:firmware:tests .venv/bin/python bench/bench_t0.py

drivers.psam_t0 against tests/sim/t0sam.py: 12 etu per character (+ TC1), the 16 etu turnarounds, GET
RESPONSE after 61 08, the driver's own waits; the PSAM's compute time is left out (the simulator answers at
once), so add the real PSAM's (3DES for 8070, one DES for 8072) measured on a board.
"""
import sys

try:
    import tunion  # noqa: F401
except ImportError:  # CPython from a checkout
    import os

    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:0] = [os.path.join(_root, "firmware"), os.path.join(_root, "tests"), _root]

from drivers.psam_t0 import T0Psam
from sim import keys
from sim.t0sam import T0Sam, ATR_TRANSPORT
from tunion import crypto
from tunion.psam import Psam

ATRS = (
    ("transport PSAM (no TA1, TC1=2)", ATR_TRANSPORT, False),
    ("TA1=13, no PPS", bytes.fromhex("3B5413005053414D"), False),
    ("TA1=13 after PPS (D=4)", bytes.fromhex("3B5413005053414D"), True),
    ("TA1=18 after PPS (D=12)", bytes.fromhex("3B5418005053414D"), True),
    ("TA1=96 after PPS (F=512, D=32)", bytes.fromhex("3B5496005053414D"), True),
)
CLOCKS = (3571200, 5000000)
SN8 = b"\x01\x02\x03\x04\x05\x06\x07\x08"


def run(atr, hz, pps, compute_us=0, busy_us=0, windows_us=None):
    """8070 + 8072 on the simulated line. compute_us (a dict by INS): the PSAM's work; busy_us: what the tap does
    between sending 8070 and taking its answer (the card's UPDATE CAPP DATA CACHE), which the PSAM's work and,
    after a back-to-back write, its body's line time overlap (psam.begin_purchase / end_purchase); windows_us =
    (INITIALIZE, DEBIT): the card's time in which the two headers are primed (T0Psam.prime): what of a prime fits
    its window is not on the tap's path."""
    sam = T0Sam(atr=atr, compute_us=compute_us)
    port = T0Psam(sam.uart, sam.pwm, sam.rst, sam.detect, clock_hz=hz, clock=sam.clock, pps=pps)
    t0 = sam.clock.now
    psam = Psam(port).open()
    t_open = sam.clock.now - t0
    s0, r0 = port.sent, port.received
    hidden = 0
    if windows_us:
        t = sam.clock.now
        psam.prime_purchase()
        hidden += min(sam.clock.now - t, windows_us[0])
    t1 = sam.clock.now
    psam.begin_purchase(b"\x11\x22\x33\x44", 7, 200, 0x09, b"\x20\x26\x12\x01\x08\x00\x00",
                        keys.KEY_VERSION, 0, SN8, keys.TEST_ISSUER)
    sam.clock.sleep_us(busy_us)
    ttc, mac1 = psam.end_purchase()
    t2 = sam.clock.now
    if windows_us:
        psam.prime_credit()
        hidden += min(sam.clock.now - t2, windows_us[1])
    ses = crypto.session_key(crypto.card_key(keys.MPK, keys.TEST_ISSUER, SN8), b"\x11\x22\x33\x44", b"\x00\x07",
                             ttc.to_bytes(4, "big"))
    assert psam.credit(crypto.mac2(ses, (200).to_bytes(4, "big")))
    assert not sam.violations, sam.violations
    t3 = sam.clock.now
    return {"baud": port.baud, "open": t_open / 1000, "8070": (t2 - t1 - busy_us) / 1000, "8072": (t3 - t2) / 1000,
            "both": (t3 - t0 - t_open - busy_us - hidden) / 1000, "out": port.sent - s0, "in": port.received - r0}


def main():
    print("PSAM 8070 + 8072 on the T=0 wire (model time, PSAM compute time excluded)")
    print("%-32s %9s %7s %9s %9s %9s %9s %7s" % ("ATR", "clock", "baud", "open ms", "8070 ms", "8072 ms",
                                                  "both ms", "bytes"))
    for name, atr, pps in ATRS:
        for hz in CLOCKS:
            r = run(atr, hz, pps)
            print("%-32s %9d %7d %9.1f %9.1f %9.1f %9.1f %3d/%-3d" % (
                name, hz, r["baud"], r["open"], r["8070"], r["8072"], r["both"], r["out"], r["in"]))


if __name__ == "__main__":
    main()
