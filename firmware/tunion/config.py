"""The validator's configuration: one JSON file, checked in one place, installed atomically (validator.md s.5).

    cfg = load_config(open("config.json").read())   # ConfigError("fares.lines: ...") when it is wrong
    cfg = install_config(text, "/config.json")       # new file, verify, rename; the old file stays on error

The terminal number is not configuration: it comes from the PSAM (EF16). Money is integer fen. The format is
documented field by field in docs/configuration.md; `DEFAULT` below is that document's example.
"""
import json
import os

from tunion.compat import const
from tunion.segment import HEADER_TEXT_LIMITS, CONFIG_VERSION_RANGE

FORMAT = const(1)  # the "format" field this firmware reads
_MAX_FARE = const(99999)  # fen: ¥999.99 is more than any bus fare and keeps the display line short
_MAX_U16 = const(0xFFFF)
_MAX_U32 = const(0xFFFFFFFF)
_DAY_S = const(86400)
RECOVERY_WINDOW_S = const(600)  # validator.md section 3: windows.recovery_window_s when absent (10 min)
# Fields that go into every journal segment header have one limit each, defined by tunion/segment.py and checked
# here, so that a configuration that loads can always be stamped into a segment (issue 7 finding 11: a 16-byte
# vehicle passed and then broke the journal).
HEADER_FIELD_BYTES = HEADER_TEXT_LIMITS

# The example in docs/configuration.md (tests load both and compare them).
DEFAULT = {
    "format": 1,
    "version": 1,
    "line": 101,
    "vehicle": "B-1234",
    "city": "2482",
    "local_issuers": ["05212482FFFFFFFF"],
    "acquirer": "05212482FFFFFFFF",
    "operator": 1,
    "station": 0,
    "fares": {
        "lines": {"101": 200, "102": 150, "301": 0},
        "card_types": {
            "2": {"percent": 50, "concession": True},
            "3": {"percent": 0, "concession": True},
            "5": {"percent": 0, "concession": True},
        },
        "all_cards_percent": 100,
        "transfer_discount": 100,
    },
    "windows": {"repeat_ms": 1000, "concession_s": 600, "transfer_s": 5400, "intent_timeout_s": 120},
    "block_denylisted": False,
    "denylist_file": "denylist.bin",
}

_TOP = (
    "format",
    "version",
    "line",
    "vehicle",
    "city",
    "local_issuers",
    "acquirer",
    "operator",
    "station",
    "fares",
    "windows",
    "block_denylisted",
    "denylist_file",
)
_FARES = ("lines", "card_types", "all_cards_percent", "transfer_discount")
_WINDOWS = ("repeat_ms", "concession_s", "transfer_s", "intent_timeout_s")
_WINDOWS_OPTIONAL = ("recovery_window_s",)
_CARD_TYPE = ("percent", "concession")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message starts with the field's dotted name."""


def _fail(name, what):
    raise ConfigError("%s: %s" % (name, what))


def _obj(d, name, keys, optional=()):
    if not isinstance(d, dict):
        _fail(name, "must be an object")
    for k in keys:
        if k not in d:
            _fail(name + "." + k if name else k, "missing")
    for k in d:
        if k not in keys and k not in optional:
            _fail(name + "." + k if name else k, "unknown field")
    return d


def _int(v, name, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int):
        _fail(name, "must be an integer")
    if v < lo or v > hi:
        _fail(name, "must be between %d and %d, not %d" % (lo, hi, v))
    return v


def _bool(v, name):
    if not isinstance(v, bool):
        _fail(name, "must be true or false")
    return v


def _str(v, name, lo, hi):
    if not isinstance(v, str):
        _fail(name, "must be a string")
    if len(v) < lo or len(v) > hi:
        _fail(name, "must be %d to %d characters long, not %d" % (lo, hi, len(v)))
    return v


def _hex(v, name, n, digits_only=False):
    """A string of 2*n hex digits -> bytes(n)."""
    _str(v, name, 0, 64)
    if len(v) != 2 * n:
        _fail(name, "must be %d hex digits, not %d" % (2 * n, len(v)))
    for c in v:
        if c not in "0123456789" and (digits_only or c not in "abcdefABCDEF"):
            _fail(name, "must be %s, not %r" % ("decimal digits" if digits_only else "hex digits", v))
    return bytes.fromhex(v)


def _key_int(k, name, hi):
    if not isinstance(k, str) or not k or len(k) > 5:
        _fail(name, "keys must be decimal numbers")
    for c in k:
        if c not in "0123456789":
            _fail(name, "keys must be decimal numbers, not %r" % k)
    v = int(k)
    if v > hi:
        _fail(name, "key %s is above %d" % (k, hi))
    return v


def _keys_unique(obj, name, hi):
    """The object's keys as numbers; two keys naming the same number ("101" and "0101") are an error, since
    which of them wins would depend on the JSON parser (issue 7 finding 13)."""
    seen = {}
    for k in obj:
        v = _key_int(k, name, hi)
        if v in seen:
            _fail(name, "keys %r and %r name the same number %d" % (seen[v], k, v))
        seen[v] = k
    return seen


class CardTypeRule:
    """Local cards of one EF17 card type: pay `percent` of the base fare; `concession` cards may not pay again
    on the same line within the concession window (validator.md s.2)."""

    def __init__(self, percent, concession):
        self.percent = percent
        self.concession = concession


class Config:
    """A checked configuration. Build one with `load_config(text)` or `Config.default()`."""

    def __init__(self, d):
        # `d` has been checked by load_config; here it only becomes attributes.
        self.format = d["format"]
        self.version = d["version"]
        self.line = d["line"]
        self.vehicle = d["vehicle"]
        self.city = bytes.fromhex(d["city"])  # compared with EF17 bytes 6..7
        self.local_issuers = [bytes.fromhex(x) for x in d["local_issuers"]]
        self.acquirer = bytes.fromhex(d["acquirer"])  # EF1E 受理方机构标识
        self.operator = d["operator"]
        self.station = d["station"]
        f = d["fares"]
        self.line_fares = {}
        for k in f["lines"]:
            self.line_fares[int(k)] = f["lines"][k]
        self.base_fare = self.line_fares[self.line]
        self.card_types = {}
        for k in f["card_types"]:
            r = f["card_types"][k]
            self.card_types[int(k)] = CardTypeRule(r["percent"], r["concession"])
        self.all_cards_percent = f["all_cards_percent"]
        self.transfer_discount = f["transfer_discount"]
        w = d["windows"]
        self.repeat_ms = w["repeat_ms"]
        self.concession_s = w["concession_s"]
        self.transfer_s = w["transfer_s"]
        self.intent_timeout_s = w["intent_timeout_s"]
        self.recovery_window_s = w.get("recovery_window_s", RECOVERY_WINDOW_S)
        self.block_denylisted = d["block_denylisted"]
        self.denylist_file = d["denylist_file"]
        self.denylist = None  # set by the app to an open tunion.denylist.Denylist

    @staticmethod
    def default():
        """The documented example: a working test configuration (city 2482, line 101, ¥2.00)."""
        return Config(check(DEFAULT))

    def is_local(self, ef15, ef17):
        """A local card (protocol s.7.7): EF17 city code is ours, or its issuer is one of the local issuers."""
        return ef17.city == self.city or ef15.issuer in self.local_issuers

    def __repr__(self):
        return "Config(v%d line %d %s city %s fare %d)" % (
            self.version,
            self.line,
            self.vehicle,
            self.city.hex(),
            self.base_fare,
        )


def check(d):
    """Check a decoded configuration object; returns it, or raises ConfigError naming the first bad field."""
    _obj(d, "", _TOP)
    if _int(d["format"], "format", 0, _MAX_U16) != FORMAT:
        _fail("format", "this firmware reads format %d, not %d" % (FORMAT, d["format"]))
    _int(d["version"], "version", CONFIG_VERSION_RANGE[0], CONFIG_VERSION_RANGE[1])
    _int(d["line"], "line", 0, _MAX_U16)  # at most 5 digits: fits HEADER_FIELD_BYTES["line"]
    v = _str(d["vehicle"], "vehicle", 1, 16)
    for c in v:
        if ord(c) < 32:
            _fail("vehicle", "must not contain control characters")
    n = len(v.encode())
    if n > HEADER_FIELD_BYTES["vehicle"]:
        _fail("vehicle", "must be at most %d bytes of UTF-8 (a Chinese character is 3), not %d" % (HEADER_FIELD_BYTES["vehicle"], n))
    _hex(d["city"], "city", 2, True)  # BCD, e.g. "2482"
    issuers = d["local_issuers"]
    if not isinstance(issuers, list):
        _fail("local_issuers", "must be a list")
    if len(issuers) > 32:
        _fail("local_issuers", "at most 32 issuers, not %d" % len(issuers))
    for i in range(len(issuers)):
        _hex(issuers[i], "local_issuers[%d]" % i, 8)
    _hex(d["acquirer"], "acquirer", 8)
    _int(d["operator"], "operator", 0, _MAX_U16)
    _int(d["station"], "station", 0, _MAX_U16)

    f = _obj(d["fares"], "fares", _FARES)
    lines = f["lines"]
    if not isinstance(lines, dict):
        _fail("fares.lines", "must be an object")
    if not lines:
        _fail("fares.lines", "must name at least one line")
    line_keys = _keys_unique(lines, "fares.lines", _MAX_U16)
    for k in lines:
        _int(lines[k], "fares.lines.%s" % k, 0, _MAX_FARE)
    if d["line"] not in line_keys:
        _fail("fares.lines", "has no fare for line %d" % d["line"])
    types = f["card_types"]
    if not isinstance(types, dict):
        _fail("fares.card_types", "must be an object")
    _keys_unique(types, "fares.card_types", 255)
    for k in types:
        n = "fares.card_types.%s" % k
        _obj(types[k], n, _CARD_TYPE)
        _int(types[k]["percent"], n + ".percent", 0, 100)
        _bool(types[k]["concession"], n + ".concession")
    _int(f["all_cards_percent"], "fares.all_cards_percent", 0, 100)
    _int(f["transfer_discount"], "fares.transfer_discount", 0, _MAX_FARE)

    w = _obj(d["windows"], "windows", _WINDOWS, _WINDOWS_OPTIONAL)
    _int(w["repeat_ms"], "windows.repeat_ms", 100, 60000)
    _int(w["concession_s"], "windows.concession_s", 0, _DAY_S)
    _int(w["transfer_s"], "windows.transfer_s", 0, _DAY_S)
    _int(w["intent_timeout_s"], "windows.intent_timeout_s", 10, _DAY_S)
    if "recovery_window_s" in w:
        # Counted from the intent's time; inside it a proven debit is the ride (validator.md section 3). It cannot
        # be shorter than the time an intent may stay open.
        r = _int(w["recovery_window_s"], "windows.recovery_window_s", 0, _DAY_S)
        if r < w["intent_timeout_s"]:
            _fail("windows.recovery_window_s", "must be at least windows.intent_timeout_s (%d), not %d" % (w["intent_timeout_s"], r))
    _bool(d["block_denylisted"], "block_denylisted")
    if d["denylist_file"] is not None:
        _str(d["denylist_file"], "denylist_file", 1, 64)
    return d


def load_config(text):
    """Config from JSON text (str or bytes); ConfigError naming the field and what is wrong."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeError:
            raise ConfigError("file: not UTF-8 text") from None
    try:
        d = json.loads(text)
    except ValueError as e:
        raise ConfigError("file: not valid JSON (%s)" % e) from None
    return Config(check(d))


def read_config(path):
    """Config from a file; ConfigError when it is missing or wrong."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        raise ConfigError("file: cannot read %s" % path) from None
    return load_config(data)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def install_config(text, path):
    """Check `text`, write it to `path`.new, read it back and check it again, then rename it over `path`.

    Returns the new Config. On ConfigError (or OSError) `path` is untouched: the caller keeps the Config it has,
    and a reboot loads the previous file."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    cfg = load_config(text)
    tmp = path + ".new"
    try:
        with open(tmp, "wb") as fh:
            fh.write(text)
        with open(tmp, "rb") as fh:
            if fh.read() != text:
                raise ConfigError("file: read back differs from what was written")
        os.rename(tmp, path)  # atomic on LittleFS: the old file or the new one, never half of either
    except Exception:
        _remove(tmp)
        raise
    return cfg
