"""The strict simulated T-Union card: answers APDUs like a real purse, can be torn at any APDU, counts its work.

    card = make_card(balance=5000)
    card.transceive(bytes.fromhex("00A4040008A000000632010105"))  # -> FCI with 9F0C = EF15, 90 00
    card.tear_on_ins(0x54, AFTER)  # the next DEBIT happens, its answer is lost: CardLost; card.present() again

Behaviour follows tunion-protocol.md sections 1-3 and the project's choices in section 7. Status words are the
card's own constants here, not the validator's: the simulator is an independent model of the card.
Non-volatile (survives tears): files, balance, counter, EF18/EF1E, the last purchase's MAC2/TAC, app state, and
`history`, every debit made (for the ride oracle).
Volatile (lost on a tear, `remove()` or `present()`): selection, purchase session, challenge.
"""
from tunion.compat import const, crc32, u16, u32
from tunion.errors import CardLost
from tunion import crypto
from sim import keys
from sim.field import Field, BEFORE, AFTER, _xorshift  # noqa: F401  (BEFORE/AFTER re-exported for tests)

_SW_OK = const(0x9000)
_SW_SELECTED_INVALID = const(0x6283)
_SW_WRONG_LENGTH = const(0x6700)
_SW_INCOMPATIBLE = const(0x6981)  # READ BINARY on a record file and vice versa
_SW_CONDITIONS = const(0x6985)  # out of order (protocol section 3: DEBIT without INIT)
_SW_NO_CURRENT_EF = const(0x6986)
_SW_SM_WRONG = const(0x6988)  # APPLICATION BLOCK with a wrong MAC
_SW_FUNC_NOT_SUPPORTED = const(0x6A81)
_SW_NOT_FOUND = const(0x6A82)
_SW_RECORD_NOT_FOUND = const(0x6A83)
_SW_WRONG_P1P2 = const(0x6A86)
_SW_WRONG_OFFSET = const(0x6B00)
_SW_INS_UNKNOWN = const(0x6D00)
_SW_CLA_UNKNOWN = const(0x6E00)
_SW_MAC_INVALID = const(0x9302)
_SW_APP_LOCKED = const(0x9303)
_SW_INSUFFICIENT_BALANCE = const(0x9401)
_SW_COUNTER_MAX = const(0x9402)
_SW_KEY_INDEX = const(0x9403)
_SW_MAC_NOT_AVAILABLE = const(0x9406)

_EF18_RECORDS = const(10)  # cyclic, 23 bytes (protocol section 2)
_EF18_SIZE = const(23)
_EF1E_RECORDS = const(30)  # cyclic, 48 bytes
_EF1E_SIZE = const(48)

AID_EP = b"\xa0\x00\x00\x06\x32\x01\x01\x05"  # MOT_T_EP (protocol section 1)
AID_CASH = b"\xa0\x00\x00\x06\x32\x01\x01\x06"  # MOT_T_CASH
PPSE_NAME = b"2PAY.SYS.DDF01"

NORMAL = "normal"
BLOCKED = "blocked"
ABSENT = "absent"  # not a T-Union card: no purse application


def _sw(v):
    return bytes(((v >> 8) & 0xFF, v & 0xFF))


def _tlv(tag, value):
    # One-byte lengths are all the card's FCIs need.
    return tag + bytes((len(value),)) + value


def bcd(digits):
    """'20240101' -> b'\\x20\\x24\\x01\\x01' (an even number of decimal digits)."""
    return bytes(int(digits[i : i + 2], 16) for i in range(0, len(digits), 2))


def _be(v, n):
    return bytes((v >> (8 * (n - 1 - i))) & 0xFF for i in range(n))


class SimCard(Field):
    """A T-Union purse on a contactless card. All constructor arguments are keywords; see make_card()."""

    def __init__(
        self,
        issuer=keys.TEST_ISSUER,
        card_no=keys.TEST_CARD_NO,
        serial=None,
        app_type=0x02,
        app_version=0x01,
        start=20200101,
        expiry=20301231,
        custom=b"\x00\x00",
        ef16=None,
        country=b"\x00\x00\x01\x56",
        province=keys.TEST_PROVINCE,
        city=keys.TEST_CITY,
        interop=1,
        card_type=1,
        ef17_rest=None,
        balance=5000,
        counter=0,
        has_ef1e=True,
        ef18=None,
        ef1e=None,
        alg_id=keys.ALG_ID,
        key_version=keys.KEY_VERSION,
        key_indexes=(keys.KEY_INDEX,),
        state=NORMAL,
        blocked_sw=0x6A81,
        ppse=True,
        ppse_cash=True,
        fci_ef15=True,
        mpk=keys.MPK,
        mtk=keys.MTK,
        mbk=keys.MBK,
        seed=None,
    ):
        if serial is None:
            digits = "0%019d" % card_no
            if len(digits) != 20:
                raise ValueError("card_no must have at most 19 digits")
            serial = bcd(digits)
        if len(issuer) != 8 or len(serial) != 10 or len(custom) != 2:
            raise ValueError("issuer is 8 bytes, serial 10, custom 2")
        self.issuer = bytes(issuer)
        self.serial = bytes(serial)
        self.sn8 = self.serial[2:10]  # card-level diversification factor (protocol section 2, EF15)
        self.ef15 = (
            self.issuer + bytes((app_type, app_version)) + self.serial
            + bcd("%08d" % start) + bcd("%08d" % expiry) + bytes(custom)
        )
        self.ef16 = bytes(ef16) if ef16 is not None else b"\x00\x00" + b" " * 52 + b"\x00"
        rest = bytes(ef17_rest) if ef17_rest is not None else b" " * 49
        self.ef17 = bytes(country) + bytes(province) + bytes(city) + _be(interop, 2) + bytes((card_type,)) + rest
        if len(self.ef16) != 55 or len(self.ef17) != 60:
            raise ValueError("EF16 is 55 bytes, EF17 60")
        self.balance = balance
        self.counter = counter
        self.has_ef1e = has_ef1e
        self.ef18 = [bytes(e) for e in (ef18 or ())]  # newest first
        self.ef1e = [bytes(r) for r in (ef1e or ())]  # newest first
        self.alg_id = alg_id
        self.key_version = key_version
        self.key_indexes = tuple(key_indexes)
        self.state = state
        self.blocked_sw = blocked_sw
        self.ppse = ppse
        self.ppse_cash = ppse_cash
        self.fci_ef15 = fci_ef15
        # The card's own keys, diversified from the master keys once (protocol section 7.1).
        self.dpk = crypto.card_key(mpk, self.issuer, self.sn8)
        self.dtk = crypto.card_key(mtk, self.issuer, self.sn8)
        self.dbk = crypto.card_key(mbk, self.issuer, self.sn8)
        self._rng = seed if seed else (crc32(self.serial) & 0xFFFFFFFF) or 1
        self.last_prove = None  # (ttype, counter after, mac2, tac) of the last DEBIT: non-volatile
        # Every debit this card made, oldest first, non-volatile: (counter after, amount, ttype, terminal6, ttc4,
        # dt7, tac4, mac2). The ride oracle (sim.oracle) pairs the journals with this, the card's own truth.
        self.history = []
        self.debits = 0
        self.mac1_failures = 0
        self._handlers = {
            0xA4: (0x00, self._select),
            0xB0: (0x00, self._read_binary),
            0xB2: (0x00, self._read_record),
            0x84: (0x00, self._get_challenge),
            0x5C: (0x80, self._get_balance),
            0x50: (0x80, self._initialize),
            0xDC: (0x80, self._update_cache),
            0x54: (0x80, self._debit),
            0x5A: (0x80, self._get_prove),
            0x1E: (0x84, self._app_block),
        }
        self._field_init()
        self._power_loss()

    # ---- what tests read
    @property
    def card_no(self):
        return int(self.serial.hex()[1:])

    @property
    def last_tac(self):
        return self.last_prove[3] if self.last_prove else None

    @property
    def last_mac2(self):
        return self.last_prove[2] if self.last_prove else None

    @property
    def session_open(self):
        return self._session is not None

    def fci(self):
        """The SELECT AID answer's data (without SW)."""
        inner = _tlv(b"\x9f\x08", b"\x02")
        if self.fci_ef15:
            inner += _tlv(b"\x9f\x0c", self.ef15)
        return _tlv(b"\x6f", _tlv(b"\x84", AID_EP) + _tlv(b"\xa5", inner))

    def ppse_fci(self):
        """The PPSE answer's data, or None when the card answers 6A82 to the PPSE."""
        entries = b""
        if self.ppse_cash:
            entries += _tlv(b"\x61", _tlv(b"\x4f", AID_CASH) + _tlv(b"\x50", b"MOT_T_CASH") + b"\x87\x01\x01")
        if self.state != ABSENT:
            entries += _tlv(b"\x61", _tlv(b"\x4f", AID_EP) + _tlv(b"\x50", b"MOT_T_EP") + b"\x87\x01\x02")
        if not self.ppse or not entries:
            return None
        return _tlv(b"\x6f", _tlv(b"\x84", PPSE_NAME) + _tlv(b"\xa5", _tlv(b"\xbf\x0c", entries)))

    def _power_loss(self):
        self._selected = None  # None, "mf", "ppse" or "ep"
        self._session = None  # [ttype, amount4, term6, random4, counter, alg, cache]
        self._challenge = None

    # ---- command dispatch (ISO 7816-4 short APDUs)
    def _process(self, apdu):
        n = len(apdu)
        if n < 4:
            self._session = None
            return _sw(_SW_WRONG_LENGTH)
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        handler = self._handlers.get(ins)
        if ins not in (0xDC, 0x54):  # only the cache update and DEBIT may follow INITIALIZE
            self._session = None
        self._prev_challenge = self._challenge  # a challenge is good for the next command only
        self._challenge = None
        if cla not in (0x00, 0x80, 0x84):
            resp = _sw(_SW_CLA_UNKNOWN)
        elif handler is None:
            resp = _sw(_SW_INS_UNKNOWN)
        elif cla != handler[0]:
            resp = _sw(_SW_CLA_UNKNOWN)
        else:
            data, le = None, None
            ok = True
            if n == 5:
                le = apdu[4]
            elif n > 5:
                lc = apdu[4]
                if lc and n == 5 + lc:
                    data = apdu[5:]
                elif lc and n == 6 + lc:
                    data, le = apdu[5 : 5 + lc], apdu[n - 1]
                else:
                    ok = False
            resp = handler[1](p1, p2, data, le) if ok else _sw(_SW_WRONG_LENGTH)
        if resp[-2:] != b"\x90\x00":
            self._session = None  # any failure ends the purchase session
        return resp

    def _select(self, p1, p2, data, le):
        if p1 == 0x00 and p2 in (0x00, 0x0C):  # by file ID: only the MF
            if data is None or le is not None:
                return _sw(_SW_WRONG_LENGTH)
            if data != b"\x3f\x00":
                return _sw(_SW_NOT_FOUND)
            self._selected = "mf"
            return _sw(_SW_OK)
        if p1 != 0x04 or p2 != 0x00:
            return _sw(_SW_WRONG_P1P2)
        if data is None or le not in (None, 0):
            return _sw(_SW_WRONG_LENGTH)
        if data == PPSE_NAME:
            fci = self.ppse_fci()
            if fci is None:
                return _sw(_SW_NOT_FOUND)
            self._selected = "ppse"
            return fci + _sw(_SW_OK)
        if data != AID_EP or self.state == ABSENT:
            return _sw(_SW_NOT_FOUND)
        if self.state == BLOCKED:
            if self.blocked_sw == _SW_SELECTED_INVALID:  # selected, with a warning
                self._selected = "ep"
                return self.fci() + _sw(_SW_SELECTED_INVALID)
            self._selected = None
            return _sw(self.blocked_sw)
        self._selected = "ep"
        return self.fci() + _sw(_SW_OK)

    def _read_binary(self, p1, p2, data, le):
        if data is not None or le is None:
            return _sw(_SW_WRONG_LENGTH)
        if not p1 & 0x80:
            return _sw(_SW_NO_CURRENT_EF)
        if p1 & 0x60:
            return _sw(_SW_WRONG_P1P2)
        if self._selected != "ep":
            return _sw(_SW_NOT_FOUND)
        sfi = p1 & 0x1F
        if sfi == 0x18 or sfi == 0x1E:
            return _sw(_SW_INCOMPATIBLE)
        f = {0x15: self.ef15, 0x16: self.ef16, 0x17: self.ef17}.get(sfi)
        if f is None:
            return _sw(_SW_NOT_FOUND)
        if p2 >= len(f):
            return _sw(_SW_WRONG_OFFSET)
        avail = len(f) - p2
        n = avail if le == 0 else le
        if n > avail:
            return _sw(_SW_WRONG_LENGTH)
        return f[p2 : p2 + n] + _sw(_SW_OK)

    def _read_record(self, p1, p2, data, le):
        if data is not None or le is None:
            return _sw(_SW_WRONG_LENGTH)
        if p2 & 7 != 4 or p1 == 0:  # record number in P1, SFI in P2 (protocol section 2)
            return _sw(_SW_WRONG_P1P2)
        if self._selected != "ep":
            return _sw(_SW_NOT_FOUND)
        sfi = p2 >> 3
        if sfi == 0x18:
            recs, size = self.ef18, _EF18_SIZE
        elif sfi == 0x1E and self.has_ef1e:
            recs, size = self.ef1e, _EF1E_SIZE
        elif sfi in (0x15, 0x16, 0x17):
            return _sw(_SW_INCOMPATIBLE)
        else:
            return _sw(_SW_NOT_FOUND)
        if p1 > len(recs):
            return _sw(_SW_RECORD_NOT_FOUND)
        if le not in (0, size):
            return _sw(_SW_WRONG_LENGTH)
        return recs[p1 - 1] + _sw(_SW_OK)

    def _get_balance(self, p1, p2, data, le):
        if data is not None or le != 4:
            return _sw(_SW_WRONG_LENGTH)
        if p1 > 3 or p2 != 0x02:
            return _sw(_SW_WRONG_P1P2)
        if self._selected != "ep":
            return _sw(_SW_CONDITIONS)
        # P1 00/03: the purse balance; 01/02: overdraft figures, zero (protocol section 7.3)
        return _be(self.balance if p1 in (0, 3) else 0, 4) + _sw(_SW_OK)

    def _initialize(self, p1, p2, data, le):
        if p1 not in (0x01, 0x03) or p2 != 0x02:  # 01 purchase, 03 CAPP purchase; 02 = EP
            return _sw(_SW_WRONG_P1P2)
        if data is None or len(data) != 11 or le != 0x0F:
            return _sw(_SW_WRONG_LENGTH)
        if self._selected != "ep":
            return _sw(_SW_CONDITIONS)
        if self.state == BLOCKED:
            return _sw(_SW_APP_LOCKED)
        if data[0] not in self.key_indexes:
            return _sw(_SW_KEY_INDEX)
        amount = u32(data, 1)
        if amount > self.balance:  # no overdraft on T-Union cards (protocol section 7.4)
            return _sw(_SW_INSUFFICIENT_BALANCE)
        if self.counter >= 0xFFFF:
            return _sw(_SW_COUNTER_MAX)
        x = _xorshift(self._rng)
        self._rng = x
        random4 = _be(x, 4)
        ttype = 0x09 if p1 == 0x03 else 0x06
        self._session = [ttype, data[1:5], data[5:11], random4, self.counter, self.alg_id, None]
        return (
            _be(self.balance, 4) + _be(self.counter, 2) + b"\x00\x00\x00"
            + bytes((self.key_version, self.alg_id)) + random4 + _sw(_SW_OK)
        )

    def _update_cache(self, p1, p2, data, le):
        if p2 & 7:
            return _sw(_SW_WRONG_P1P2)
        if p2 >> 3 != 0x1E or not self.has_ef1e:  # no EF1A on this card
            return _sw(_SW_NOT_FOUND)
        if p1 != 0x00:
            return _sw(_SW_WRONG_P1P2)
        if data is None or len(data) != _EF1E_SIZE or le is not None:
            return _sw(_SW_WRONG_LENGTH)
        s = self._session
        if s is None or s[0] != 0x09 or s[6] is not None:  # only after INIT-CAPP, once, before DEBIT
            return _sw(_SW_CONDITIONS)
        s[6] = data
        return _sw(_SW_OK)

    def _debit(self, p1, p2, data, le):
        if p1 != 0x01 or p2 != 0x00:
            return _sw(_SW_WRONG_P1P2)
        if data is None or len(data) != 15 or le != 0x08:
            return _sw(_SW_WRONG_LENGTH)
        s = self._session
        if s is None:
            return _sw(_SW_CONDITIONS)
        ttype, amount4, term6, random4, counter, alg, cache = s
        ttc4, dt7, mac1 = data[0:4], data[4:11], data[11:15]
        sespk = crypto.session_key(self.dpk, random4, _be(counter, 2), ttc4)
        # A card answering another algorithm ID (e.g. SM4) never accepts a 3DES MAC1.
        if alg != 0x00 or crypto.mac1(sespk, amount4, bytes((ttype,)), term6, dt7) != mac1:
            self.mac1_failures += 1
            return _sw(_SW_MAC_INVALID)
        # Commit: one atomic step on a real card (its backup buffer); nothing can tear inside it here.
        self.balance -= u32(amount4)
        self.counter = counter + 1  # EF18 and GET TRANSACTION PROVE use the incremented value (section 7.2)
        entry = _be(self.counter, 2) + b"\x00\x00\x00" + amount4 + bytes((ttype,)) + term6 + dt7
        self.ef18 = [entry] + self.ef18[: _EF18_RECORDS - 1]
        if cache is not None:
            self.ef1e = [cache] + self.ef1e[: _EF1E_RECORDS - 1]
        tac = crypto.tac(self.dtk, amount4, bytes((ttype,)), term6, ttc4, dt7)
        mac2 = crypto.mac2(sespk, amount4)
        self.last_prove = (ttype, self.counter, mac2, tac)
        self.history.append((self.counter, u32(amount4), ttype, bytes(term6), bytes(ttc4), bytes(dt7), tac, mac2))
        self.debits += 1
        self._session = None
        return tac + mac2 + _sw(_SW_OK)

    def _get_prove(self, p1, p2, data, le):
        if p1 != 0x00 or p2 not in (0x06, 0x09):
            return _sw(_SW_WRONG_P1P2)
        if data is None or len(data) != 2 or le != 0x08:
            return _sw(_SW_WRONG_LENGTH)
        if self._selected != "ep":
            return _sw(_SW_CONDITIONS)
        lp = self.last_prove
        if lp is None or lp[0] != p2 or lp[1] != u16(data) or lp[1] != self.counter:
            return _sw(_SW_MAC_NOT_AVAILABLE)
        return lp[2] + lp[3] + _sw(_SW_OK)

    def _get_challenge(self, p1, p2, data, le):
        if p1 or p2:
            return _sw(_SW_WRONG_P1P2)
        if data is not None or le != 4:
            return _sw(_SW_WRONG_LENGTH)
        self._rng = _xorshift(self._rng)
        self._challenge = _be(self._rng, 4)
        return self._challenge + _sw(_SW_OK)

    def _app_block(self, p1, p2, data, le):
        # APPLICATION BLOCK 84 1E 00 00 04 MAC (protocol sections 3 and 7.9): MAC with the card's block key over
        # the command header, IV = challenge || 00000000.
        if p1 or p2:
            return _sw(_SW_WRONG_P1P2)
        if data is None or len(data) != 4 or le is not None:
            return _sw(_SW_WRONG_LENGTH)
        if self._selected != "ep" or self._prev_challenge is None:
            return _sw(_SW_CONDITIONS)
        want = crypto.pboc_mac(self.dbk, b"\x84\x1e\x00\x00\x04", self._prev_challenge + bytes(4))
        if want != data:
            return _sw(_SW_SM_WRONG)
        self.state = BLOCKED
        return _sw(_SW_OK)


def make_card(**kw):
    """A local card of the test city with 50.00 yuan, valid 2020-01-01..2030-12-31; keywords override."""
    return SimCard(**kw)


def make_other_city_card(**kw):
    """A card issued in another (test) city, enabled for interoperation (异地卡)."""
    kw.setdefault("issuer", keys.OTHER_ISSUER)
    kw.setdefault("province", keys.OTHER_PROVINCE)
    kw.setdefault("city", keys.OTHER_CITY)
    kw.setdefault("card_no", keys.TEST_CARD_NO + 1000)
    return SimCard(**kw)
