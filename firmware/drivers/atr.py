"""The Answer To Reset of an ISO 7816-3 card: how long it is while it arrives, and what it offers.

    n = 1; while need(buf, n) > n: ...read one more byte...    # need() says when the ATR is whole
    a = Atr(bytes.fromhex("3B6C0002") + b"0123456789AB")      # a.protocols == (0,), a.guard == 2, a.ta1 is None

Fields (ISO 7816-3 section 8): TS, T0, the interface bytes TAi..TDi, the historical bytes, TCK (present when a
protocol other than T=0 is offered, section 8.2.5). Bad input raises ValueError with what was wrong.
"""
from tunion.compat import const

_ATR_MAX = const(33)  # ISO 7816-3 section 8.2.1: TS and at most 32 characters
_F_DEFAULT = const(372)  # Fd, ISO 7816-3 section 7.1
_WI_DEFAULT = const(10)  # WI when TC2 is absent, section 10.2

# ISO 7816-3 Table 7 (Fi from TA1 high nibble; 0 = RFU) and Table 8 (Di from TA1 low nibble; 0 = RFU)
_FI = (372, 372, 558, 744, 1116, 1488, 1860, 0, 0, 512, 768, 1024, 1536, 2048, 0, 0)
_DI = (0, 1, 2, 4, 8, 16, 32, 64, 12, 20, 0, 0, 0, 0, 0, 0)
# ISO 7816-3 Table 7: f(max) in kHz for each Fi index; without TA1 (0x11) the card takes 5 MHz
_FMAX_KHZ = (4000, 5000, 6000, 8000, 12000, 16000, 20000, 0, 0, 5000, 7500, 10000, 15000, 20000, 0, 0)

TS_DIRECT = const(0x3B)
TS_INVERSE = const(0x3F)
TS_INVERSE_RAW = const(0x03)  # 3F in inverse convention as a direct-convention UART reads it


def _count(y):
    return (y & 1) + ((y >> 1) & 1) + ((y >> 2) & 1) + ((y >> 3) & 1)


def need(b, n):
    """How long the ATR whose first n bytes are b[:n] is at least: n when it is complete. ValueError if > 33."""
    if n < 2:
        return 2
    k = b[1] & 0x0F
    y = b[1] >> 4
    i = 2
    tck = False
    while True:
        i += _count(y)
        if not y & 8:
            break
        if n < i:
            return i
        td = b[i - 1]
        if td & 0x0F:
            tck = True
        y = td >> 4
    total = i + k + (1 if tck else 0)
    if total > _ATR_MAX:
        raise ValueError("ATR would be %d bytes (at most %d)" % (total, _ATR_MAX))
    return total


def inverse(b):
    """A byte of the inverse convention as a direct UART reads it, or back (bits reversed and inverted)."""
    r = 0
    for i in range(8):
        if not (b >> i) & 1:
            r |= 0x80 >> i
    return r


class Atr:
    """A parsed ATR: ts, protocols (offered, in order), ta1 (None when absent), fi, di, fmax (Hz), guard
    (TC1 = N), wi (TC2, for T=0), specific (TA2 present), historical, raw."""

    def __init__(self, raw):
        raw = bytes(raw)
        n = len(raw)
        if n < 2:
            raise ValueError("ATR too short (%d bytes)" % n)
        if raw[0] not in (TS_DIRECT, TS_INVERSE):
            raise ValueError("ATR TS %02X is neither 3B nor 3F" % raw[0])
        if need(raw, n) != n:
            raise ValueError("ATR is %d bytes, its T0/TDi say %d" % (n, need(raw, n)))
        self.raw = raw
        self.ts = raw[0]
        self.ta1 = None
        self.guard = 0
        self.wi = _WI_DEFAULT
        self.specific = None  # TA2: specific mode (section 6.3.1)
        protocols = []
        y = raw[1] >> 4
        i = 2
        group = 1
        tck = False
        while True:
            ta = tc = td = None
            if y & 1:
                ta = raw[i]
                i += 1
            if y & 2:  # TBi: programming voltage, deprecated (section 8.3)
                i += 1
            if y & 4:
                tc = raw[i]
                i += 1
            if y & 8:
                td = raw[i]
                i += 1
            if group == 1:
                self.ta1 = ta
                if tc is not None:
                    self.guard = tc
            elif group == 2:
                self.specific = ta
                if tc is not None:  # TC2 is WI, the T=0 waiting time integer (section 10.2)
                    if tc == 0:
                        raise ValueError("ATR TC2 = 00 (WI must be 1..255)")
                    self.wi = tc
            if td is None:
                break
            t = td & 0x0F
            if t:
                tck = True
            if t not in protocols and t != 15:
                protocols.append(t)
            y = td >> 4
            group += 1
        if not protocols:
            protocols.append(0)  # no TD1: T=0 only (section 8.2.3)
        self.protocols = tuple(protocols)
        k = raw[1] & 0x0F
        self.historical = raw[i : i + k]
        if tck:
            x = 0
            for c in raw[1:]:
                x ^= c
            if x:
                raise ValueError("ATR TCK wrong (XOR of T0..TCK is %02X, not 00)" % x)
        fi, di, fmax = _F_DEFAULT, 1, _FMAX_KHZ[1]
        if self.ta1 is not None:
            fi, di, fmax = _FI[self.ta1 >> 4], _DI[self.ta1 & 0x0F], _FMAX_KHZ[self.ta1 >> 4]
            if not fi or not di:
                raise ValueError("ATR TA1 %02X is reserved (Fi/Di RFU)" % self.ta1)
        self.fi = fi
        self.di = di
        self.fmax = fmax * 1000  # Hz: the highest card clock it accepts

    def pps_wanted(self):
        """Whether to ask for TA1's rate: TA1 offers more than the default, T=0 is offered, no specific mode."""
        return self.ta1 is not None and self.ta1 != 0x11 and 0 in self.protocols and self.specific is None
