"""The PSAM over T=0 (drivers.psam_t0) against the byte-level simulator (sim.t0sam), on both interpreters.

Plain case_* functions: tests/test_mpcases.py runs them on CPython, tests/test_micropython.py under MicroPython,
where the driver imports as it does on the board (time.ticks_us exists; the simulator's clock is injected).
"""
from drivers.psam_t0 import T0Psam, CLOCK_HZ
from sim import keys
from sim.t0sam import T0Sam, ATR_TRANSPORT, ATR_TA1
from tunion import crypto
from tunion.errors import SamError
from tunion.psam import Psam

_EF15 = b"\x00\xb0\x95\x00\x0e"
_RANDOM4 = b"\x11\x22\x33\x44"
_SN8 = b"\x01\x02\x03\x04\x05\x06\x07\x08"


def _link(clock_hz=CLOCK_HZ, **kw):
    sam = T0Sam(**kw)
    return sam, T0Psam(sam.uart, sam.pwm, sam.rst, sam.detect, clock_hz=clock_hz, clock=sam.clock)


def _purchase(psam):
    ttc, mac1 = psam.init_purchase(_RANDOM4, 7, 200, 0x09, b"\x20\x26\x12\x01\x08\x00\x00", keys.KEY_VERSION, 0,
                                   _SN8, keys.TEST_ISSUER)
    dpk = crypto.card_key(keys.MPK, keys.TEST_ISSUER, _SN8)
    ses = crypto.session_key(dpk, _RANDOM4, b"\x00\x07", ttc.to_bytes(4, "big"))
    return psam.credit(crypto.mac2(ses, (200).to_bytes(4, "big")))


def case_open_8070_8072_transport_atr():
    sam, port = _link()
    psam = Psam(port).open()
    assert psam.serial == keys.TEST_PSAM_SERIAL and psam.terminal == keys.TEST_TERMINAL
    t0 = sam.clock.now
    assert _purchase(psam) is True
    ms = (sam.clock.now - t0) / 1000
    assert 60 < ms < 90, ms  # F=372 at 5 MHz (13,441 baud), TC1 = 2
    assert port.baud == 13441 and port.pps == 0 and sam.violations == []


def case_pps_then_purchase():
    sam, port = _link(atr=ATR_TA1)
    psam = Psam(port).open()
    assert _purchase(psam) is True
    assert sam.pps_accepted == 1 and port.baud == 53763 and sam.violations == []


def case_byte_mode_nulls_and_6c():
    sam, port = _link(byte_mode=True, nulls=2, null_gap_us=1000)
    r = port.transceive(b"\x00\xb0\x95\x00\x00")  # Le 256: 6C0E, resent with 0E
    assert r == keys.TEST_PSAM_SERIAL + b"\x01\x00\x00\x00\x90\x00"
    assert port.exchanges == 2 and sam.violations == []


def case_silent_card_is_sam_error():
    sam, port = _link(silent=True)
    try:
        port.transceive(_EF15)
    except SamError as e:
        assert "ATR" in str(e)
    else:
        raise AssertionError("no SamError")
    assert port.resets == 2


def case_stall_recovered_but_8072_not_retried():
    sam, port = _link(stall_at=5)
    psam = Psam(port).open()
    assert _purchase(psam) is True and port.faults == 1 and sam.atrs == 2
    sam, port = _link(atr=ATR_TRANSPORT, stall_at=7)
    psam = Psam(port).open()
    try:
        _purchase(psam)
    except SamError as e:
        assert "not retried" in str(e)
    else:
        raise AssertionError("8072 retried")
    assert sam.atrs == 1
