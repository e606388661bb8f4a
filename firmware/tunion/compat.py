"""The one place where MicroPython and CPython differ: feature detection, done once at import.

    from tunion.compat import const, ticks_diff, crc32
"""
try:
    from micropython import const  # noqa: F401
except ImportError:  # CPython

    def const(x):
        return x


try:
    from time import ticks_diff  # noqa: F401  (MicroPython: wraps at 2**30)
except ImportError:  # CPython: the app passes time.monotonic_ns() // 10**6
    _TICKS_PERIOD = const(1 << 30)
    _TICKS_HALF = const(1 << 29)

    def ticks_diff(a, b):
        # Same contract as MicroPython's: signed difference of two wrapped ticks.
        return ((a - b + _TICKS_HALF) & (_TICKS_PERIOD - 1)) - _TICKS_HALF


try:
    from binascii import crc32  # ESP32 and the WebAssembly port have it
except ImportError:  # pragma: no cover - a port built without it
    _CRC_TABLE = None

    def crc32(data, crc=0):
        global _CRC_TABLE
        if _CRC_TABLE is None:
            t = []
            for i in range(256):
                c = i
                for _ in range(8):
                    c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
                t.append(c)
            _CRC_TABLE = t
        crc ^= 0xFFFFFFFF
        for b in data:
            crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF


def u16(b, off=0):
    return (b[off] << 8) | b[off + 1]


def u32(b, off=0):
    return (b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]


def put_u16(buf, off, v):
    buf[off] = (v >> 8) & 0xFF
    buf[off + 1] = v & 0xFF


def put_u32(buf, off, v):
    buf[off] = (v >> 24) & 0xFF
    buf[off + 1] = (v >> 16) & 0xFF
    buf[off + 2] = (v >> 8) & 0xFF
    buf[off + 3] = v & 0xFF


def hexs(b):
    """bytes -> upper-case hex text (MicroPython's bytes.hex() takes no separator argument)."""
    return b.hex().upper()
