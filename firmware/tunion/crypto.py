"""PBOC/T-Union purchase cryptography (protocol section 4): MAC, key diversification, session key, MAC1/MAC2/TAC.

    sespk = session_key(card_key(MPK, issuer8, sn8), random4, counter2, ttc4); mac1(sespk, amount4, b"\x06", term6, dt7)
"""

from tunion.des import Des, Tdes, cbc_last

_ZERO8 = bytes(8)
# Key schedules cost about two block encryptions; within a tap the same keys come back (the master key every tap,
# the card's DPK and the session key once on the PSAM side and once on the card side in simulation).
_CACHE_MAX = 6  # about 1 KB of RAM per 3DES key
_cache = []  # [(key bytes, Des or Tdes)], most recently used first


def _cipher(key):
    """Des for an 8-byte key, Tdes for a 16-byte key; from a small most-recently-used cache."""
    key = bytes(key)
    for i in range(len(_cache)):
        entry = _cache[i]
        if entry[0] == key:
            if i:
                del _cache[i]
                _cache.insert(0, entry)
            return entry[1]
    n = len(key)
    if n == 8:
        c = Des(key)
    elif n == 16:
        c = Tdes(key)
    else:
        raise ValueError("key must be 8 or 16 bytes")
    _cache.insert(0, (key, c))
    if len(_cache) > _CACHE_MAX:
        _cache.pop()
    return c


def forget_keys():
    """Drop the cached key schedules and issuer-level keys (to free about 1 KB per key, or on closing a SAM)."""
    del _cache[:]
    _issuer_keys.clear()


def _b(x, n, what):
    # bytes/bytearray/memoryview -> bytes of length n (an int is accepted for a 1-byte field).
    if isinstance(x, int):
        x = bytes((x,))
    else:
        x = bytes(x)
    if len(x) != n:
        raise ValueError(what + " must be " + str(n) + " bytes")
    return x


def pad80(data):
    """ISO 9797-1 padding method 2: 0x80, then zeros up to a multiple of 8 (a whole block if already one)."""
    data = bytes(data)
    return data + b"\x80" + bytes(7 - (len(data) & 7))


def pboc_mac(key, data, iv=_ZERO8):
    """PBOC MAC (protocol section 4): CBC over pad80(data), leftmost 4 bytes. An 8-byte key is single DES;
    a 16-byte key is the retail MAC (DES with K_L on every block, 3DES on the last)."""
    key = bytes(key)
    n = len(key)
    if n == 8:
        return cbc_last(pad80(data), iv, _cipher(key))[:4]
    if n == 16:
        return cbc_last(pad80(data), iv, _cipher(key[:8]), _cipher(key))[:4]
    raise ValueError("MAC key must be 8 or 16 bytes")


def diversify(mk16, factor8):
    """One level of key diversification: 3DES(MK, F) || 3DES(MK, ~F)."""
    f = _b(factor8, 8, "factor")
    t = _cipher(_b(mk16, 16, "master key"))
    return t.encrypt(f) + t.encrypt(bytes([x ^ 0xFF for x in f]))


_issuer_keys = {}  # (MK || issuer ID) -> issuer-level key: the same few issuers come back tap after tap


def card_key(mk16, issuer8, sn8):
    """The card's key for master key MK: two levels, issuer ID first, then the card serial (section 7.1)."""
    tag = _b(mk16, 16, "master key") + _b(issuer8, 8, "issuer ID")
    k1 = _issuer_keys.get(tag)
    if k1 is None:
        if len(_issuer_keys) >= _CACHE_MAX:
            _issuer_keys.clear()
        k1 = _issuer_keys[tag] = diversify(mk16, issuer8)
    return diversify(k1, sn8)


def session_key(dpk16, random4, counter2, ttc4):
    """Purchase session key SESPK = 3DES(DPK, random4 || counter2 || TTC[2:4])."""
    ttc = _b(ttc4, 4, "TTC")
    data = _b(random4, 4, "random") + _b(counter2, 2, "counter") + ttc[2:4]
    return _cipher(_b(dpk16, 16, "DPK")).encrypt(data)


def mac1(sespk8, amount4, ttype1, term6, dt7):
    """MAC1 = MAC(SESPK, amount || type || terminal || date || time)."""
    data = _b(amount4, 4, "amount") + _b(ttype1, 1, "type") + _b(term6, 6, "terminal") + _b(dt7, 7, "date-time")
    return pboc_mac(_b(sespk8, 8, "SESPK"), data)


def mac2(sespk8, amount4):
    """MAC2 = MAC(SESPK, amount)."""
    return pboc_mac(_b(sespk8, 8, "SESPK"), _b(amount4, 4, "amount"))


def tac_key(dtk16):
    """Single-DES TAC key: DTK_L xor DTK_R."""
    k = _b(dtk16, 16, "DTK")
    return bytes([k[i] ^ k[i + 8] for i in range(8)])


def tac(dtk16, amount4, ttype1, term6, ttc4, dt7):
    """TAC = MAC(DTK_L xor DTK_R, amount || type || terminal || TTC || date || time), single DES."""
    data = (
        _b(amount4, 4, "amount") + _b(ttype1, 1, "type") + _b(term6, 6, "terminal") + _b(ttc4, 4, "TTC")
        + _b(dt7, 7, "date-time")
    )
    return pboc_mac(tac_key(dtk16), data)
