"""`time` on the virtual board: the clock belongs to the host controller (tests/vboard/controller.py).

Shadows the unix port's built-in `time` (a `time.py` earlier on sys.path wins; the built-in stays reachable as
`utime`). ticks_* count from the last hard boot and wrap at 2**30 as on the ESP32 (the 64-bit unix port's own
wrap at 2**62: its ticks_diff would hide wrap-around bugs); sleeps ask the host, which in fast mode moves the
simulated clock on at once and in real-time mode waits. Without a controller (tests/mpcases on the bare unix
port) the host's own clock is used, still with the ESP32's wrap. time()/localtime() read the
ESP32's RTC (machine.RTC), epoch 1970, no time zone (UTC), as MicroPython on the ESP32.
"""
import struct
import utime as _t
import _vbrpc

_PERIOD = 1 << 30  # MICROPY_PY_TIME_TICKS_PERIOD on the ESP32 (32-bit small ints)
_HALF = 1 << 29
_MASK = _PERIOD - 1
_ONCE = (0,)


def ticks_diff(a, b):
    return ((a - b + _HALF) & _MASK) - _HALF


def ticks_add(t, delta):
    return (t + delta) & _MASK


def _now():
    if _vbrpc._sock is None:
        return _t.ticks_us()
    return _vbrpc.u64(_vbrpc.call(b"T"))


def ticks_us():
    return _now() & _MASK


def ticks_ms():
    return (_now() // 1000) & _MASK


def ticks_cpu():
    return _now() & _MASK


def sleep_us(us):
    if us > 0:
        if _vbrpc._sock is None:
            _t.sleep_us(int(us))
        else:
            _vbrpc.call(b"S", struct.pack(">Q", int(us)))
            for _ in _ONCE:  # a backward jump: the VM raises a pending KeyboardInterrupt here, as the ESP32's
                pass  # sleep does (a Ctrl-C that came while the socket read blocked is otherwise lost)


def sleep_ms(ms):
    sleep_us(int(ms) * 1000)


def sleep(s):
    sleep_us(int(s * 1000000))


def time_ns():
    secs, us = struct.unpack(">QI", _vbrpc.call(b"C"))
    return secs * 1000000000 + us * 1000


def time():
    return struct.unpack(">QI", _vbrpc.call(b"C"))[0]


def gmtime(secs=None):
    return _t.gmtime(time() if secs is None else int(secs))


localtime = gmtime


def mktime(t):
    y, m, d, hh, mm, ss = t[0], t[1], t[2], t[3], t[4], t[5]
    # Howard Hinnant's days_from_civil (proleptic Gregorian), as tunion.clock.
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + hh * 3600 + mm * 60 + ss
