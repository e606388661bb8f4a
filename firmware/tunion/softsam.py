"""The software SAM: answers the PSAM's APDUs (protocol section 5) from TEST keys, for boards without a PSAM.

    sam = SoftSam(load_keys(open("keys.txt").read()), FileTtcStore("ttc"))  # prints "... TEST KEYS ..."
    resp = sam.transceive(bytes.fromhex("00B095000E"))  # EF15: PSAM serial(10) version keyType FCI(2) 90 00

It holds test keys only (docs/test-keys.md): `test_keys` is True so every record it signs carries the test-keys
flag. Its TTC is never reused: values are reserved ahead in blocks through a ttc_store, so a reboot skips ahead.
Key file: JSON ({"mpk": "<32 hex>", ...}) or lines `name = value` with `#` comments. Names: mpk (required),
mtk, mbk (16-byte keys, 32 hex digits), terminal (12 digits, EF16), serial (20 digits, EF15), key_index and
key_version (decimal 0..255, default 1).
"""
import os

from tunion.compat import const
from tunion import crypto, des

_SW_OK = b"\x90\x00"
_SW_WRONG_LENGTH = b"\x67\x00"
_SW_CONDITIONS = b"\x69\x85"  # out of order: 8070 before selecting DF 8011, 8072 without 8070
_SW_WRONG_DATA = b"\x6a\x80"
_SW_NOT_FOUND = b"\x6a\x82"
_SW_WRONG_P1P2 = b"\x6a\x86"
_SW_KEY_NOT_FOUND = b"\x6a\x88"
_SW_INS_UNKNOWN = b"\x6d\x00"
_SW_CLA_UNKNOWN = b"\x6e\x00"
_SW_MAC_INVALID = b"\x93\x02"  # 8072 with a MAC2 that does not match (protocol section 5: "likely 9302")
_SW_KEY_INDEX = b"\x94\x03"

_USAGE_BLOCK = const(0x05)  # 801A key usage: maintenance key, used for APPLICATION BLOCK (protocol section 5)
_TTC_MAX = const(0xFFFFFFFF)

_NAMES = ("mpk", "mtk", "mbk", "terminal", "serial", "key_index", "key_version")


class KeyFileError(ValueError):
    """The software SAM's key file is unusable; the message says what and where."""


def _hex(name, value, nbytes, digits_only, where):
    v = value.strip() if isinstance(value, str) else value
    if not isinstance(v, str):
        raise KeyFileError("%s%s must be a text of hex digits" % (where, name))
    n = len(v)
    ok = "0123456789" if digits_only else "0123456789abcdefABCDEF"
    for c in v:
        if c not in ok:
            raise KeyFileError("%s%s has a character %r that is not a %s digit" % (
                where, name, c, "decimal" if digits_only else "hex"))
    if n != 2 * nbytes:
        raise KeyFileError("%s%s must be %d %s digits (%d bytes), got %d" % (
            where, name, 2 * nbytes, "decimal" if digits_only else "hex", nbytes, n))
    return bytes(int(v[i : i + 2], 16) for i in range(0, n, 2))


def _byte(name, value, where):
    if isinstance(value, str):
        v = value.strip()
        if not v or not all(c in "0123456789" for c in v):
            raise KeyFileError("%s%s must be a decimal number 0..255, got %r" % (where, name, value))
        value = int(v)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise KeyFileError("%s%s must be a number 0..255, got %r" % (where, name, value))
    return value


def load_keys(text):
    """Parse and check a key file (JSON or `name = value` lines) -> dict of bytes/ints; KeyFileError."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode()
    raw = {}
    lines = {}
    if text.strip().startswith("{"):
        import json

        try:
            raw = json.loads(text)
        except ValueError as e:
            raise KeyFileError("key file: not valid JSON (%s)" % e)
    else:
        no = 0
        for line in text.split("\n"):
            no += 1
            s = line.split("#", 1)[0].strip()
            if not s:
                continue
            sep = "=" if "=" in s else ":"
            if sep not in s:
                raise KeyFileError("key file line %d: expected `name = value`, got %r" % (no, s))
            name, value = s.split(sep, 1)
            name = name.strip().lower()
            if name in raw:
                raise KeyFileError("key file line %d: %s given twice" % (no, name))
            raw[name] = value.strip()
            lines[name] = no
    for name in raw:
        if name not in _NAMES:
            raise KeyFileError("key file: unknown name %r (known: %s)" % (name, ", ".join(_NAMES)))

    def where(name):
        return "key file line %d: " % lines[name] if name in lines else "key file: "

    for name in ("mpk", "terminal", "serial"):
        if name not in raw:
            raise KeyFileError("key file: %s is missing" % name)
    keys = {"mtk": None, "mbk": None, "key_index": 1, "key_version": 1}
    for name in ("mpk", "mtk", "mbk"):
        if name in raw:
            keys[name] = _hex(name, raw[name], 16, False, where(name))
    keys["terminal"] = _hex("terminal", raw["terminal"], 6, True, where("terminal"))
    keys["serial"] = _hex("serial", raw["serial"], 10, True, where("serial"))
    for name in ("key_index", "key_version"):
        if name in raw:
            keys[name] = _byte(name, raw[name], where(name))
    return keys


class MemoryTtcStore:
    """TTC reservations in RAM (tests; a board must not use it: a reboot would repeat TTCs)."""

    def __init__(self, first=1):
        self.next = first
        self.writes = 0

    def reserve(self, n):
        first = self.next
        self.next += n
        self.writes += 1
        return first


class FileTtcStore:
    """TTC reservations in a file holding the next unreserved value, replaced atomically (new file, rename)."""

    def __init__(self, path, first=1):
        self.path = path
        self.first = first
        self.writes = 0

    def _read(self, path):
        try:
            with open(path) as f:
                s = f.read().strip()
        except OSError:
            return None
        if not s or not all(c in "0123456789" for c in s):
            raise ValueError("TTC file %s is damaged: %r" % (path, s[:20]))
        return int(s)

    def peek(self):
        """The next value reserve() would return (first when nothing was reserved yet)."""
        return self._current()

    def _current(self):
        v = self._read(self.path)
        if v is None:
            # A rename that had to remove the old file first may have stopped halfway: the new file is whole.
            # A damaged new file with no old one is a first reservation torn before it returned anything.
            try:
                v = self._read(self.path + ".new")
            except ValueError:
                v = None
        return self.first if v is None else v

    def reserve(self, n):
        v = self._current()
        tmp = self.path + ".new"
        with open(tmp, "w") as f:
            f.write("%d\n" % (v + n))
        try:
            os.rename(tmp, self.path)
        except OSError:  # a filesystem whose rename will not replace: remove, then rename (see _read)
            os.remove(self.path)
            os.rename(tmp, self.path)
        self.writes += 1
        return v


def _cbc_mac(key16, iv8, data):
    # Data already padded by the caller (80FA): DES-CBC with K_L, last block 3DES, leftmost 4 bytes.
    return des.cbc_last(data, iv8, des.Des(key16[:8]), des.Tdes(key16))[:4]


class SoftSam:
    """A PSAM in software. Port: transceive(apdu) -> data + SW. Counts: apdus, ins_counts, ttc (last one)."""

    test_keys = True

    def __init__(self, keys, ttc_store=None, out=print, reserve=32):
        if isinstance(keys, (str, bytes)):
            keys = load_keys(keys)
        self._mpk = keys["mpk"]
        self._mbk = keys.get("mbk")
        self.mtk = keys.get("mtk")  # for the depot's TAC check in tests; the card computes TACs
        self.terminal = keys["terminal"]
        self.serial = keys["serial"]
        self.key_index = keys.get("key_index", 1)
        self.key_version = keys.get("key_version", 1)
        self.ttc_store = ttc_store if ttc_store is not None else MemoryTtcStore()
        self._block = reserve
        self._ttc_next = self._ttc_end = 0
        self.ttc = None
        self.apdus = 0
        self.ins_counts = {}
        out("SOFTWARE SAM: TEST KEYS - every record it signs is flagged, never clear them for money")
        self._take_block()  # at boot: a store that cannot be written fails here, not mid-tap
        self.reset()

    def reset(self):
        """Power-up: MF selected, no session (a real PSAM after a reset)."""
        self._df = False
        self._session = None  # (sespk, amount4)
        self._gen_key = None

    def _take_block(self):
        first = self.ttc_store.reserve(self._block)
        if first < 1 or first + self._block - 1 > _TTC_MAX:
            raise ValueError("TTC store exhausted or damaged (%d)" % first)
        self._ttc_next = first
        self._ttc_end = first + self._block

    @property
    def ttc_left(self):
        """TTCs still reserved; the app may call top_up() while idle so the tap never writes the store."""
        return self._ttc_end - self._ttc_next

    def top_up(self, low=8):
        if self.ttc_left < low:
            self._take_block()

    def _next_ttc(self):
        if self._ttc_next >= self._ttc_end:
            self._take_block()
        v = self._ttc_next
        self._ttc_next += 1
        self.ttc = v
        return v

    def transceive(self, apdu):
        apdu = bytes(apdu)
        self.apdus += 1
        n = len(apdu)
        if n < 4:
            return _SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        self.ins_counts[ins] = self.ins_counts.get(ins, 0) + 1
        data, le = None, None
        if n == 5:
            le = apdu[4]
        elif n > 5:
            lc = apdu[4]
            if lc and n == 5 + lc:
                data = apdu[5:]
            elif lc and n == 6 + lc:
                data, le = apdu[5 : 5 + lc], apdu[n - 1]
            else:
                return _SW_WRONG_LENGTH
        if cla == 0x00:
            if ins == 0xB0:
                return self._read_binary(p1, p2, data, le)
            if ins == 0xA4:
                return self._select(p1, p2, data, le)
        elif cla == 0x80:
            if ins == 0x70:
                return self._init_purchase(p1, p2, data, le)
            if ins == 0x72:
                return self._credit(p1, p2, data, le)
            if ins == 0x1A:
                return self._init_key(p1, p2, data, le)
            if ins == 0xFA:
                return self._cipher_mac(p1, p2, data, le)
        else:
            return _SW_CLA_UNKNOWN
        if ins in (0xB0, 0xA4, 0x70, 0x72, 0x1A, 0xFA):
            return _SW_CLA_UNKNOWN
        return _SW_INS_UNKNOWN

    def _read_binary(self, p1, p2, data, le):
        if data is not None or le is None:
            return _SW_WRONG_LENGTH
        if not p1 & 0x80 or p1 & 0x60:
            return _SW_WRONG_P1P2
        sfi = p1 & 0x1F
        if sfi == 0x15 and not self._df:  # MF EF15: serial(10) version(1) key card type(1) FCI(2)
            f = self.serial + b"\x01\x00\x00\x00"
        elif sfi == 0x16 and not self._df:  # MF EF16: terminal number
            f = self.terminal
        elif sfi == 0x17 and self._df:  # DF 8011 EF17: key index(1) issuer(8) receiver(8) dates(4+4)
            f = bytes((self.key_index,)) + b"\xff" * 16 + b"\x20\x20\x01\x01\x20\x99\x12\x31"
        else:
            return _SW_NOT_FOUND
        if p2 >= len(f):
            return b"\x6b\x00"
        n = len(f) - p2 if le == 0 else le
        if p2 + n > len(f):
            return _SW_WRONG_LENGTH
        return f[p2 : p2 + n] + _SW_OK

    def _select(self, p1, p2, data, le):
        if p1 != 0x00 or p2 not in (0x00, 0x0C):
            return _SW_WRONG_P1P2
        if data is None or len(data) != 2 or le not in (None, 0):
            return _SW_WRONG_LENGTH
        if data == b"\x80\x11":  # the T-Union PSAM application (protocol section 5)
            self._df = True
        elif data == b"\x3f\x00":
            self._df = False
        else:
            return _SW_NOT_FOUND
        self._session = None
        return _SW_OK

    def _init_purchase(self, p1, p2, data, le):
        # 80 70 00 00 Lc random(4) counter(2) amount(4) type(1) date(4) time(3) keyVersion(1) algId(1)
        # factors (N x 8: cardSN8 [issuerID8]) 08 -> TTC(4) MAC1(4)
        if p1 or p2:
            return _SW_WRONG_P1P2
        if data is None or len(data) not in (0x1C, 0x24) or le != 0x08:
            return _SW_WRONG_LENGTH
        if not self._df:
            return _SW_CONDITIONS
        self._session = None
        ttype = data[10]
        if ttype not in (0x06, 0x09) or data[19] != 0x00:  # purchase types; algorithm 00 = 3DES only
            return _SW_WRONG_DATA
        if data[18] != self.key_version:
            return _SW_KEY_INDEX
        if len(data) == 0x24:  # two levels, issuer first (protocol section 7.1)
            dpk = crypto.card_key(self._mpk, data[28:36], data[20:28])
        else:
            dpk = crypto.diversify(self._mpk, data[20:28])
        ttc = self._next_ttc()
        ttc4 = bytes(((ttc >> 24) & 0xFF, (ttc >> 16) & 0xFF, (ttc >> 8) & 0xFF, ttc & 0xFF))
        sespk = crypto.session_key(dpk, data[0:4], data[4:6], ttc4)
        mac1 = crypto.mac1(sespk, data[6:10], data[10:11], self.terminal, data[11:18])
        self._session = (sespk, data[6:10])
        return ttc4 + mac1 + _SW_OK

    def _credit(self, p1, p2, data, le):
        # 80 72 00 00 04 MAC2: 9000 when it is the MAC of the session's amount; the session ends either way.
        if p1 or p2:
            return _SW_WRONG_P1P2
        if data is None or len(data) != 4 or le is not None:
            return _SW_WRONG_LENGTH
        s = self._session
        if s is None:
            return _SW_CONDITIONS
        self._session = None
        if crypto.mac2(s[0], s[1]) != data:
            return _SW_MAC_INVALID
        return _SW_OK

    def _init_key(self, p1, p2, data, le):
        # 80 1A P1 P2 Lc factors: P1 = levels << 5 | usage. Only the block (maintenance) key, 1 or 2 levels.
        levels, usage = p1 >> 5, p1 & 0x1F
        self._gen_key = None
        if usage != _USAGE_BLOCK or levels not in (1, 2):
            return _SW_WRONG_P1P2
        if data is None or len(data) != 8 * levels or le is not None:
            return _SW_WRONG_LENGTH
        if not self._df:
            return _SW_CONDITIONS
        if self._mbk is None:
            return _SW_KEY_NOT_FOUND
        if levels == 2:
            self._gen_key = crypto.card_key(self._mbk, data[8:16], data[0:8])
        else:
            self._gen_key = crypto.diversify(self._mbk, data[0:8])
        return _SW_OK

    def _cipher_mac(self, p1, p2, data, le):
        # 80 FA 05 00 Lc IV(8) || padded data -> MAC(4); the key comes from the preceding 80 1A.
        if p1 != 0x05 or p2:
            return _SW_WRONG_P1P2
        if data is None or len(data) < 16 or len(data) % 8 or le not in (None, 0, 4):
            return _SW_WRONG_LENGTH
        if self._gen_key is None:
            return _SW_CONDITIONS
        return _cbc_mac(self._gen_key, data[0:8], data[8:]) + _SW_OK
