"""APDU helpers: status words with names, and the split of a response into data and SW.

    resp = port.transceive(SELECT_PPSE); if sw(resp) == SW_OK: fci = data(resp)
"""
from tunion.compat import const
from tunion.errors import CardError

# Status words: tunion-protocol.md section 3 (PBOC/FMCOS tables).
SW_OK = const(0x9000)
SW_SELECTED_INVALID = const(0x6283)  # selected file invalidated / application blocked
SW_BLOCKED_6284 = const(0x6284)
SW_WRONG_LENGTH = const(0x6700)
SW_SECURITY = const(0x6982)
SW_CONDITIONS = const(0x6985)
SW_FUNC_NOT_SUPPORTED = const(0x6A81)  # application locked
SW_FILE_NOT_FOUND = const(0x6A82)
SW_RECORD_NOT_FOUND = const(0x6A83)
SW_WRONG_P1P2 = const(0x6A86)
SW_INS_UNKNOWN = const(0x6D00)
SW_CLA_UNKNOWN = const(0x6E00)
SW_INSUFFICIENT_FUNDS = const(0x9301)
SW_MAC_INVALID = const(0x9302)
SW_APP_LOCKED = const(0x9303)  # application permanently locked
SW_INSUFFICIENT_BALANCE = const(0x9401)
SW_COUNTER_MAX = const(0x9402)
SW_KEY_INDEX = const(0x9403)
SW_MAC_NOT_AVAILABLE = const(0x9406)

SW_NAMES = {
    SW_OK: "ok",
    SW_SELECTED_INVALID: "selected file invalid / application blocked",
    SW_BLOCKED_6284: "selected file invalid (blocked)",
    SW_WRONG_LENGTH: "wrong length",
    0x6981: "command incompatible with file structure",
    SW_SECURITY: "security status not satisfied",
    SW_CONDITIONS: "conditions of use not satisfied",
    SW_FUNC_NOT_SUPPORTED: "function not supported / application locked",
    SW_FILE_NOT_FOUND: "file or application not found",
    SW_RECORD_NOT_FOUND: "record not found",
    SW_WRONG_P1P2: "wrong P1 P2",
    SW_INS_UNKNOWN: "instruction not supported",
    SW_CLA_UNKNOWN: "class not supported",
    SW_INSUFFICIENT_FUNDS: "insufficient funds",
    SW_MAC_INVALID: "MAC invalid",
    SW_APP_LOCKED: "application permanently locked",
    SW_INSUFFICIENT_BALANCE: "insufficient balance",
    SW_COUNTER_MAX: "counter at maximum",
    SW_KEY_INDEX: "key index not supported",
    SW_MAC_NOT_AVAILABLE: "required MAC not available",
}

# SELECT answers that mean the application is there but blocked (validator.md section 2).
BLOCKED_SWS = (SW_FUNC_NOT_SUPPORTED, SW_APP_LOCKED, SW_SELECTED_INVALID, SW_BLOCKED_6284)


def sw_name(v):
    return "%04X %s" % (v, SW_NAMES.get(v, "unknown status"))


def sw(resp):
    """The status word of a response; CardError when the response is too short to carry one."""
    n = len(resp)
    if n < 2:
        raise CardError("answer of %d bytes has no status word" % n)
    return (resp[n - 2] << 8) | resp[n - 1]


def data(resp):
    """The response without its status word (a memoryview: no copy)."""
    return memoryview(resp)[: len(resp) - 2]


def expect(resp, n, what):
    """The data of a 9000 answer that must be exactly n bytes long; CardError otherwise."""
    s = sw(resp)
    if s != SW_OK:
        raise CardError("%s: %s" % (what, sw_name(s)))
    d = data(resp)
    if len(d) != n:
        raise CardError("%s: %d bytes, expected %d" % (what, len(d), n))
    return d


_TLV_MAX_DEPTH = const(8)  # nesting an FCI can need is 4 (6F > A5 > BF0C > 61); deeper is malformed


def tlv_items(buf, start=0, end=None):
    """The TLVs directly inside buf[start:end] as (tag, value_start, value_end); CardError when malformed.
    Tags of any length (ISO 7816-4 / BER: a first byte xxx11111, then bytes with bit 8 set, then one without);
    lengths in every BER form an answer of up to 256 bytes can use: one byte, or 81..84 followed by 1..4 bytes."""
    if end is None:
        end = len(buf)
    items = []
    i = start
    while i < end:
        t = buf[i]
        i += 1
        if t == 0x00 or t == 0xFF:  # padding between TLVs
            continue
        if t & 0x1F == 0x1F:  # multi-byte tag
            while True:
                if i >= end or t > 0xFFFFFF:
                    raise CardError("TLV: truncated or overlong tag")
                b = buf[i]
                i += 1
                t = (t << 8) | b
                if not b & 0x80:
                    break
        if i >= end:
            raise CardError("TLV: truncated length")
        n = buf[i]
        i += 1
        if n > 0x80:
            k = n - 0x80
            if k > 4 or i + k > end:
                raise CardError("TLV: length form %02X not supported or truncated" % n)
            n = 0
            for _ in range(k):
                n = (n << 8) | buf[i]
                i += 1
        elif n == 0x80:
            raise CardError("TLV: indefinite length")
        if i + n > end:
            raise CardError("TLV: value of tag %X runs past the end" % t)
        items.append((t, i, i + n))
        i += n
    return items


def _constructed(tag):
    while tag > 0xFF:
        tag >>= 8
    return tag & 0x20


def tlv_find(buf, tag, start=0, end=None, depth=0):
    """(value_start, value_end) of the first `tag` found depth-first inside buf[start:end]; None if absent.
    Nesting deeper than _TLV_MAX_DEPTH is a CardError (a bounded search: no RecursionError on the board)."""
    if depth > _TLV_MAX_DEPTH:
        raise CardError("TLV: nested deeper than %d" % _TLV_MAX_DEPTH)
    for t, a, b in tlv_items(buf, start, end):
        if t == tag:
            return a, b
        if _constructed(t):
            r = tlv_find(buf, tag, a, b, depth + 1)
            if r is not None:
                return r
    return None
