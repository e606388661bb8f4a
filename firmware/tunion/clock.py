"""Civil time for the core, without reading any clock: `now` is (CST seconds since 1970-01-01, ms tick).

    bcd_datetime(secs_from_civil(2024, 12, 29, 14, 17, 40)) == bytes.fromhex("20241229141740")
"""


def _days_from_civil(y, m, d):
    # Howard Hinnant's days_from_civil: integer-only, valid for the proleptic Gregorian calendar.
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def secs_from_civil(y, mo, d, h=0, mi=0, s=0):
    return _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s


def civil(secs):
    days, rem = divmod(secs, 86400)
    y, mo, d = _civil_from_days(days)
    return y, mo, d, rem // 3600, (rem // 60) % 60, rem % 60


def valid_civil(y, mo, d, h=0, mi=0, s=0):
    """True when the fields name a real date and time (used to reject garbage BCD from cards)."""
    if not (1 <= mo <= 12 and 1 <= d <= 31 and 0 <= h < 24 and 0 <= mi < 60 and 0 <= s < 60):
        return False
    return civil(secs_from_civil(y, mo, d))[:3] == (y, mo, d)


def _bcd(v):
    return ((v // 10) << 4) | (v % 10)


def bcd_datetime(secs):
    y, mo, d, h, mi, s = civil(secs)
    return bytes((_bcd(y // 100), _bcd(y % 100), _bcd(mo), _bcd(d), _bcd(h), _bcd(mi), _bcd(s)))


def bcd_int(b):
    """BCD digits as a decimal integer; ValueError when a nibble is not a digit."""
    # Valid BCD written as hex is its own decimal digits: hex() and int() run in C (EF15's 20 digits: 12 -> 2 us
    # on the interpreter); a nibble A-F is not a digit.
    h = bytes(b).hex()
    if not h:
        return 0
    if not h.isdigit():
        raise ValueError("not BCD")
    return int(h)


def date_int(secs):
    y, mo, d = civil(secs)[:3]
    return y * 10000 + mo * 100 + d


def secs_from_bcd(b7):
    """Seconds from a 7-byte BCD date-time; ValueError when it is not a real date and time."""
    ymd = bcd_int(b7[0:4])
    hms = bcd_int(b7[4:7])
    y, mo, d = ymd // 10000, (ymd // 100) % 100, ymd % 100
    h, mi, s = hms // 10000, (hms // 100) % 100, hms % 100
    if not valid_civil(y, mo, d, h, mi, s):
        raise ValueError("not a date-time")
    return secs_from_civil(y, mo, d, h, mi, s)


def secs_from_date_int(v):
    """Seconds at 00:00 of a YYYYMMDD integer; ValueError when it is not a real date."""
    y, mo, d = v // 10000, (v // 100) % 100, v % 100
    if not valid_civil(y, mo, d):
        raise ValueError("not a date")
    return secs_from_civil(y, mo, d)
