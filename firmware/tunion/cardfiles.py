"""Symmetric codecs for the purse application's files and answers (tunion-protocol.md section 2 and 3).

    ef15 = Ef15.decode(raw30); assert ef15.encode() == raw30; ef15.card_no == 3105170010170907984

Every decode checks the length and raises CardError on bytes that cannot be the file; fields are plain ints and
bytes so the rules can use them without knowing the layout.
"""
from struct import pack_into

from tunion.compat import const, u16, u32, put_u16, put_u32
from tunion.clock import bcd_int
from tunion.errors import CardError

EF15_SIZE = const(30)
EF17_SIZE = const(60)
EF18_SIZE = const(23)
EF1E_SIZE = const(48)
INIT_SIZE = const(15)
_EF1E_FMT = ">B8sBHHHBII7s2s8s6s"  # Ef1eRecord: the 48 bytes of section 2, as its decode reads them


def _len(raw, n, what):
    if len(raw) != n:
        raise CardError("%s: %d bytes, expected %d" % (what, len(raw), n))


def _bcd_or_error(b, what):
    try:
        return bcd_int(b)
    except ValueError:
        raise CardError("%s: not BCD" % what)


def _date_bcd(v):
    # YYYYMMDD integer -> 4 BCD bytes
    out = bytearray(4)
    for i in range(3, -1, -1):
        two = v % 100
        out[i] = ((two // 10) << 4) | (two % 10)
        v //= 100
    return bytes(out)


class Ef15:
    """EF15 public application basic data, 30 bytes (section 2): issuer ID, application type and version,
    application serial (the card number, section 7.6/7.7), start and expiry dates, issuer-defined bytes."""

    def __init__(self, issuer, app_type, app_version, serial, start, expiry, custom=b"\x00\x00"):
        self.issuer = bytes(issuer)
        self.app_type = app_type
        self.app_version = app_version
        self.serial = bytes(serial)
        self.start = start
        self.expiry = expiry
        self.custom = bytes(custom)
        # Section 7.7: 20 BCD digits, the first a pad nibble; the 19 left are the card number.
        self.card_no = _bcd_or_error(self.serial, "EF15 serial") % 10000000000000000000

    @property
    def sn8(self):
        """The card-level diversification factor: the serial's rightmost 8 bytes (section 2, EF15)."""
        return self.serial[2:10]

    @staticmethod
    def decode(raw):
        _len(raw, EF15_SIZE, "EF15")
        return Ef15(
            raw[0:8],
            raw[8],
            raw[9],
            raw[10:20],
            _bcd_or_error(raw[20:24], "EF15 start date"),
            _bcd_or_error(raw[24:28], "EF15 expiry date"),
            raw[28:30],
        )

    def encode(self):
        return self.issuer + bytes((self.app_type, self.app_version)) + self.serial + _date_bcd(self.start) + _date_bcd(
            self.expiry
        ) + self.custom


class Ef17:
    """EF17 management data, 60 bytes: country, province, city code, interoperation flag, card type, rest."""

    def __init__(self, country, province, city, interop, card_type, rest=b"\x20" * 49):
        self.country = bytes(country)
        self.province = bytes(province)
        self.city = bytes(city)
        self.interop = interop
        self.card_type = card_type
        self.rest = bytes(rest)

    @staticmethod
    def decode(raw):
        _len(raw, EF17_SIZE, "EF17")
        return Ef17(raw[0:4], raw[4:6], raw[6:8], u16(raw, 8), raw[10], raw[11:60])

    def encode(self):
        b = bytearray(EF17_SIZE)
        b[0:4] = self.country
        b[4:6] = self.province
        b[6:8] = self.city
        put_u16(b, 8, self.interop)
        b[10] = self.card_type
        b[11:60] = self.rest
        return bytes(b)


class Ef18Entry:
    """One EF18 transaction-log record, 23 bytes: counter (after the purchase, section 7.2), overdraft limit,
    amount, type, terminal number, date (BCD 4) and time (BCD 3)."""

    def __init__(self, counter, overdraft, amount, ttype, terminal, date, time):
        self.counter = counter
        self.overdraft = overdraft
        self.amount = amount
        self.ttype = ttype
        self.terminal = bytes(terminal)
        self.date = bytes(date)
        self.time = bytes(time)

    @staticmethod
    def decode(raw):
        _len(raw, EF18_SIZE, "EF18 record")
        return Ef18Entry(
            u16(raw, 0), (raw[2] << 16) | u16(raw, 3), u32(raw, 5), raw[9], raw[10:16], raw[16:20], raw[20:23]
        )

    def encode(self):
        b = bytearray(EF18_SIZE)
        put_u16(b, 0, self.counter)
        b[2] = (self.overdraft >> 16) & 0xFF
        put_u16(b, 3, self.overdraft & 0xFFFF)
        put_u32(b, 5, self.amount)
        b[9] = self.ttype
        b[10:16] = self.terminal
        b[16:20] = self.date
        b[20:23] = self.time
        return bytes(b)


class Ef1eRecord:
    """One EF1E public-transport record, 48 bytes (section 2): what the validator writes through UPDATE CAPP DATA
    CACHE and reads back for transfers and the concession window."""

    def __init__(
        self,
        ttype,
        terminal,
        industry,
        line,
        station,
        operator,
        rfu,
        amount,
        balance,
        dt,
        city,
        acquirer,
        rfu6=b"\x00\x00\x00\x00\x00\x00",
    ):
        self.ttype = ttype
        self.terminal = bytes(terminal)
        self.industry = industry
        self.line = line
        self.station = station
        self.operator = operator
        self.rfu = rfu
        self.amount = amount
        self.balance = balance
        self.dt = bytes(dt)
        self.city = bytes(city)
        self.acquirer = bytes(acquirer)
        self.rfu6 = bytes(rfu6)

    @staticmethod
    def decode(raw):
        _len(raw, EF1E_SIZE, "EF1E record")
        return Ef1eRecord(
            raw[0],
            raw[1:9],
            raw[9],
            u16(raw, 10),
            u16(raw, 12),
            u16(raw, 14),
            raw[16],
            u32(raw, 17),
            u32(raw, 21),
            raw[25:32],
            raw[32:34],
            raw[34:42],
            raw[42:48],
        )

    def encode(self, buf=None):
        b = buf if buf is not None else bytearray(EF1E_SIZE)
        # The section-2 layout in one C call (the tap writes one per payment), values masked as put_u16/put_u32 do.
        pack_into(_EF1E_FMT, b, 0, self.ttype, self.terminal, self.industry, self.line & 0xFFFF,
                  self.station & 0xFFFF, self.operator & 0xFFFF, self.rfu, self.amount & 0xFFFFFFFF,
                  self.balance & 0xFFFFFFFF, self.dt, self.city, self.acquirer, self.rfu6)
        return b

    @staticmethod
    def put_balance(buf, balance):
        """The balance field (bytes 21..24, section 2) of an encoded record, set in place."""
        pack_into(">I", buf, 21, balance & 0xFFFFFFFF)


class InitAnswer:
    """The 15 data bytes of INITIALIZE FOR (CAPP) PURCHASE: balance, offline counter (before this purchase,
    section 7.2), overdraft limit, key version, algorithm ID, card random."""

    def __init__(self, balance, counter, overdraft, key_version, alg_id, random):
        self.balance = balance
        self.counter = counter
        self.overdraft = overdraft
        self.key_version = key_version
        self.alg_id = alg_id
        self.random = bytes(random)

    @staticmethod
    def decode(raw):
        _len(raw, INIT_SIZE, "INITIALIZE answer")
        # Section 7.3: bit 31 is set on some cards; the balance is the low 31 bits.
        return InitAnswer(u32(raw, 0) & 0x7FFFFFFF, u16(raw, 4), (raw[6] << 16) | u16(raw, 7), raw[9], raw[10], raw[11:15])

    def encode(self):
        b = bytearray(INIT_SIZE)
        put_u32(b, 0, self.balance)
        put_u16(b, 4, self.counter)
        b[6] = (self.overdraft >> 16) & 0xFF
        put_u16(b, 7, self.overdraft & 0xFFFF)
        b[9] = self.key_version
        b[10] = self.alg_id
        b[11:15] = self.random
        return bytes(b)
