"""DES and triple DES (EDE, 2 or 3 keys) in pure Python, fast enough for MicroPython (the ESP32 has no DES).

    Des(bytes.fromhex("133457799BBCDFF1")).encrypt(bytes.fromhex("0123456789ABCDEF")).hex()  # '85e813540f0ab405'
"""

# Why it looks like this: MicroPython's small ints hold 31 bits (signed); a 32-bit value is a heap-allocated
# long, so a textbook 32-bit DES allocates on every operation. Here no hot-path value reaches 2**30:
# - a 32-bit half X is kept as its E-expansion, two words of four 6-bit groups each (<= 0x3F3F3F3F):
#   EV = S2|S4|S6|S8 inputs = rotl(X, 1) & 0x3F3F3F3F and OD = S1|S3|S5|S7 inputs = rotr(X, 3) & 0x3F3F3F3F
#   (the layout of Outerbridge's d3des, whose round XORs the key into exactly these groups);
# - the round function is 16 lookups into tables of E(P(S_i(x))): E is linear, so L ^= f(R) is done directly
#   on the expanded words, and R is never contracted back until the final permutation;
# - IP and FP are d3des's swap-mask sequences, run on 16-bit quarters of the block.
# Tables, built at import: 16 x 64 round-function words (about 4.3 KB) and 2.3 KB for the key schedule.
# FIPS 46-3 is the source of every table below; the generators and their inputs are dropped after import.

_SBOX = (  # FIPS 46-3 S1..S8, row-major (row = b1 b6, column = b2..b5), one hex digit per entry
    "e4d12fb83a6c5907" "0f74e2d1a6cb9538" "41e8d62bfc973a50" "fc8249175b3ea06d",
    "f18e6b34972dc05a" "3d47f28ec01a69b5" "0e7ba4d158c6932f" "d8a13f42b67c05e9",
    "a09e63f51dc7b428" "d709346a285ecbf1" "d6498f30b12c5ae7" "1ad069874fe3b52c",
    "7de3069a1285bc4f" "d8b56f03472c1ae9" "a690cb7df13e5284" "3f06a1d8945bc72e",
    "2c417ab6853fd0e9" "eb2c47d150fa3986" "421bad78f9c5630e" "b8c71e2d6f09a453",
    "c1af92680d34e75b" "af427c9561de0b38" "9ef528c3704a1db6" "432c95fabe17608d",
    "4b2ef08d3c975a61" "d0b7491ae35c2f86" "14bdc37eaf680592" "6bd814a7950fe23c",
    "d2846fb1a93e50c7" "1fd8a374c56b0e92" "7b419ce206adf358" "21e74a8dfc90356b",
)
_P = (  # FIPS 46-3 permutation P: output bit n (1-based) = input bit _P[n-1]
    16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
    2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25,
)
_PC2 = (  # FIPS 46-3 permuted choice 2: subkey bit n = CD bit _PC2[n-1] (C = 1..28, D = 29..56)
    14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
    41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
)
_SHIFTS = (1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1)  # FIPS 46-3 left shifts of C and D per round


def _expand_masks(j):
    """Bit masks of half-block bit j (1 = MSB .. 32) in the (EV, OD) expanded words; 0 where absent."""
    ev = (33 - j) % 32  # position in rotl(X, 1)
    od = (29 - j) % 32  # position in rotr(X, 3)
    return (1 << ev) if ev & 7 < 6 else 0, (1 << od) if od & 7 < 6 else 0


def _sp_tables():
    # 16 tables of 64: (EV part, OD part) of P(S_i(x)) for each S-box i, indexed by its 6-bit input.
    post = [0] * 33  # post[p] = where pre-P bit p lands after P
    for n in range(32):
        post[_P[n]] = n + 1
    ev_tabs = []
    od_tabs = []
    for i in range(8):
        box = _SBOX[i]
        ev_t = [0] * 64
        od_t = [0] * 64
        for x in range(64):
            s = int(box[((x >> 4) & 2 | (x & 1)) * 16 + ((x >> 1) & 15)], 16)
            for b in range(4):
                if s & (8 >> b):
                    ev, od = _expand_masks(post[4 * i + b + 1])
                    ev_t[x] |= ev
                    od_t[x] |= od
        ev_tabs.append(tuple(ev_t))
        od_tabs.append(tuple(od_t))
    return tuple(ev_tabs), tuple(od_tabs)


# Where subkey group i (S-box i+1) sits in the packed per-round words built from C (i < 4) or D (i >= 4);
# see _schedule for how the two packed words are split into the (OD, EV) key words.
_GROUP_SHIFT = (24, 8, 16, 0, 8, 24, 0, 16)


# C and D (28 bits each) are looked up in chunks of 6, 6, 6, 5, 5 bits: 5 lookups a round, 2 KB of tables.
_CHUNK_START = (0, 6, 12, 18, 23, 28)


def _pc2_tables():
    # 10 tables, indexed by the chunks of C (tables 0-4) and D (5-9): the subkey bits each chunk feeds.
    tabs = []
    for r in range(2):
        for j in range(5):
            lo, hi = _CHUNK_START[j], _CHUNK_START[j + 1]
            t = [0] * (1 << (hi - lo))
            for n in range(48):
                src = _PC2[n] - 1 - 28 * r  # MSB-first position in C (r = 0) or D (r = 1)
                if lo <= src < hi:
                    target = 1 << (_GROUP_SHIFT[n // 6] + 5 - n % 6)
                    bit = 1 << (hi - 1 - src)
                    for v in range(len(t)):
                        if v & bit:
                            t[v] |= target
            tabs.append(tuple(t))
    return tuple(tabs)


def _spread_tables():
    # PC1 helper: bit i (1..7) of a key byte goes to bit 4(i-1); the byte is looked up as two nibbles.
    hi = [0] * 16
    lo = [0] * 16
    for n in range(16):
        for k in range(4):
            if n & (1 << k):
                hi[n] |= 1 << (4 * (k + 3))
                if k:
                    lo[n] |= 1 << (4 * (k - 1))
    return tuple(hi), tuple(lo)


_EV, _OD = _sp_tables()
_HI, _LO = _spread_tables()
_PC2T = _pc2_tables()
del _sp_tables, _pc2_tables, _spread_tables, _expand_masks, _SBOX, _P, _PC2, _GROUP_SHIFT, _CHUNK_START


def _schedule(key):
    """The 16 round keys of an 8-byte key (parity ignored): 8 tuples (od1, ev1, od2, ev2), a pair of rounds each."""
    # PC1 is a bit-matrix transpose: C and D are made of "columns" (bit b of key bytes 7..0). Spreading bit i
    # (1..7) of each byte to bit 4(i-1) makes a hold those columns for bytes 0-3 and b for bytes 4-7, a nibble each.
    hi = _HI
    lo = _LO
    k = key
    a = (
        hi[k[0] >> 4] | lo[k[0] & 15] | ((hi[k[1] >> 4] | lo[k[1] & 15]) << 1)
        | ((hi[k[2] >> 4] | lo[k[2] & 15]) << 2) | ((hi[k[3] >> 4] | lo[k[3] & 15]) << 3)
    )
    b = (
        hi[k[4] >> 4] | lo[k[4] & 15] | ((hi[k[5] >> 4] | lo[k[5] & 15]) << 1)
        | ((hi[k[6] >> 4] | lo[k[6] & 15]) << 2) | ((hi[k[7] >> 4] | lo[k[7] & 15]) << 3)
    )
    c = (
        ((b >> 24) << 24) | ((a >> 24) << 20) | (((b >> 20) & 15) << 16) | (((a >> 20) & 15) << 12)
        | (((b >> 16) & 15) << 8) | (((a >> 16) & 15) << 4) | ((b >> 12) & 15)
    )
    d = (
        ((b & 15) << 24) | ((a & 15) << 20) | (((b >> 4) & 15) << 16) | (((a >> 4) & 15) << 12)
        | (((b >> 8) & 15) << 8) | (((a >> 8) & 15) << 4) | ((a >> 12) & 15)
    )
    c0, c1, c2, c3, c4, d0, d1, d2, d3, d4 = _PC2T
    ko = []  # per round: OD key word (S1 S3 from C, S5 S7 from D)
    ke = []  # per round: EV key word (S2 S4 from C, S6 S8 from D)
    for sh in _SHIFTS:
        c = ((c << sh) | (c >> (28 - sh))) & 0xFFFFFFF
        d = ((d << sh) | (d >> (28 - sh))) & 0xFFFFFFF
        pc = c0[c >> 22] | c1[(c >> 16) & 63] | c2[(c >> 10) & 63] | c3[(c >> 5) & 31] | c4[c & 31]
        pd = d0[d >> 22] | d1[(d >> 16) & 63] | d2[(d >> 10) & 63] | d3[(d >> 5) & 31] | d4[d & 31]
        ko.append((pc & 0x3F3F0000) | (pd & 0x3F3F))
        ke.append(((pc & 0x3F3F) << 16) | (pd >> 16))
    return tuple([(ko[i], ke[i], ko[i + 1], ke[i + 1]) for i in range(0, 16, 2)])


def _inverse(ks):
    # The decryption schedule: the same round keys, last round first.
    return tuple([(t[2], t[3], t[0], t[1]) for t in reversed(ks)])


def _crypt(lh, ll, rh, rl, stages):
    """Run IP, the rounds of each key list in `stages` (one per DES pass), FP; block as four 16-bit words."""
    # IP: d3des's swap-mask steps on 16-bit quarters; leaves rotl(L0, 1) and rotl(R0, 1).
    w = ((lh >> 4) ^ rh) & 0x0F0F
    rh ^= w
    lh ^= w << 4
    w = ((ll >> 4) ^ rl) & 0x0F0F
    rl ^= w
    ll ^= w << 4
    lh, rl = rl, lh
    w = ((rh >> 2) ^ lh) & 0x3333
    lh ^= w
    rh ^= w << 2
    w = ((rl >> 2) ^ ll) & 0x3333
    ll ^= w
    rl ^= w << 2
    w = ((rh >> 8) ^ lh) & 0x00FF
    lh ^= w
    rh ^= w << 8
    w = ((rl >> 8) ^ ll) & 0x00FF
    ll ^= w
    rl ^= w << 8
    rh, rl = ((rh << 1) | (rl >> 15)) & 0xFFFF, ((rl << 1) | (rh >> 15)) & 0xFFFF
    w = (lh ^ rh) & 0xAAAA
    lh ^= w
    rh ^= w
    w = (ll ^ rl) & 0xAAAA
    ll ^= w
    rl ^= w
    lh, ll = ((lh << 1) | (ll >> 15)) & 0xFFFF, ((ll << 1) | (lh >> 15)) & 0xFFFF
    # Expand both halves: EV = rotl(X,1) & 0x3F3F3F3F, OD = rotr(rotl(X,1), 4) & 0x3F3F3F3F.
    le = ((lh & 0x3F3F) << 16) | (ll & 0x3F3F)
    lo = ((((lh >> 4) | (ll << 12)) & 0x3F3F) << 16) | (((ll >> 4) | (lh << 12)) & 0x3F3F)
    re = ((rh & 0x3F3F) << 16) | (rl & 0x3F3F)
    ro = ((((rh >> 4) | (rl << 12)) & 0x3F3F) << 16) | (((rl >> 4) | (rh << 12)) & 0x3F3F)
    e1, e2, e3, e4, e5, e6, e7, e8 = _EV
    o1, o2, o3, o4, o5, o6, o7, o8 = _OD
    for ks in stages:
        for ko1, ke1, ko2, ke2 in ks:
            a = ro ^ ko1
            b = re ^ ke1
            x1 = a >> 24
            x3 = (a >> 16) & 63
            x5 = (a >> 8) & 63
            x7 = a & 63
            x2 = b >> 24
            x4 = (b >> 16) & 63
            x6 = (b >> 8) & 63
            x8 = b & 63
            le ^= e1[x1] ^ e2[x2] ^ e3[x3] ^ e4[x4] ^ e5[x5] ^ e6[x6] ^ e7[x7] ^ e8[x8]
            lo ^= o1[x1] ^ o2[x2] ^ o3[x3] ^ o4[x4] ^ o5[x5] ^ o6[x6] ^ o7[x7] ^ o8[x8]
            a = lo ^ ko2
            b = le ^ ke2
            x1 = a >> 24
            x3 = (a >> 16) & 63
            x5 = (a >> 8) & 63
            x7 = a & 63
            x2 = b >> 24
            x4 = (b >> 16) & 63
            x6 = (b >> 8) & 63
            x8 = b & 63
            re ^= e1[x1] ^ e2[x2] ^ e3[x3] ^ e4[x4] ^ e5[x5] ^ e6[x6] ^ e7[x7] ^ e8[x8]
            ro ^= o1[x1] ^ o2[x2] ^ o3[x3] ^ o4[x4] ^ o5[x5] ^ o6[x6] ^ o7[x7] ^ o8[x8]
        # The swap that ends a DES pass (R16 L16); the next pass starts from it, FP consumes it.
        le, lo, re, ro = re, ro, le, lo
    # Contract back to rotl(X, 1) as 16-bit quarters: 4 bits of each byte come from EV, 4 from OD.
    rh = ((le >> 16) & 0x0F0F) | (((lo >> 16) & 0x0F0F) << 4)
    rl = (le & 0x0F0F) | ((lo & 0x0F0F) << 4)
    lh = ((re >> 16) & 0x0F0F) | (((ro >> 16) & 0x0F0F) << 4)
    ll = (re & 0x0F0F) | ((ro & 0x0F0F) << 4)
    # FP: d3des's inverse steps ("right" = rh rl is the first output half).
    rh, rl = (rh >> 1) | ((rl & 1) << 15), (rl >> 1) | ((rh & 1) << 15)
    w = (lh ^ rh) & 0xAAAA
    lh ^= w
    rh ^= w
    w = (ll ^ rl) & 0xAAAA
    ll ^= w
    rl ^= w
    lh, ll = (lh >> 1) | ((ll & 1) << 15), (ll >> 1) | ((lh & 1) << 15)
    w = ((lh >> 8) ^ rh) & 0x00FF
    rh ^= w
    lh ^= w << 8
    w = ((ll >> 8) ^ rl) & 0x00FF
    rl ^= w
    ll ^= w << 8
    w = ((lh >> 2) ^ rh) & 0x3333
    rh ^= w
    lh ^= w << 2
    w = ((ll >> 2) ^ rl) & 0x3333
    rl ^= w
    ll ^= w << 2
    rh, ll = ll, rh
    w = ((rh >> 4) ^ lh) & 0x0F0F
    lh ^= w
    rh ^= w << 4
    w = ((rl >> 4) ^ ll) & 0x0F0F
    ll ^= w
    rl ^= w << 4
    return rh, rl, lh, ll


def _run(block, stages):
    if len(block) != 8:
        raise ValueError("DES block must be 8 bytes")
    b = block
    a0, a1, a2, a3 = _crypt(
        (b[0] << 8) | b[1], (b[2] << 8) | b[3], (b[4] << 8) | b[5], (b[6] << 8) | b[7], stages
    )
    return bytes((a0 >> 8, a0 & 255, a1 >> 8, a1 & 255, a2 >> 8, a2 & 255, a3 >> 8, a3 & 255))


class Des:
    """Single DES with an 8-byte key (parity bits ignored). The decryption schedule is made on first use."""

    def __init__(self, key):
        if len(key) != 8:
            raise ValueError("DES key must be 8 bytes")
        self._enc = (_schedule(key),)
        self._dec = None

    def encrypt(self, block):
        return _run(block, self._enc)

    def decrypt(self, block):
        if self._dec is None:
            self._dec = (_inverse(self._enc[0]),)
        return _run(block, self._dec)


class Tdes(Des):
    """Triple DES EDE, ECB: 16-byte key = 2-key (K_L, K_R, K_L); a 24-byte key is 3-key (K1, K2, K3)."""

    def __init__(self, key):
        n = len(key)
        if n != 16 and n != 24:
            raise ValueError("3DES key must be 16 or 24 bytes")
        k1 = _schedule(key[0:8])
        k3 = _schedule(key[16:24]) if n == 24 else k1
        self._k2 = _schedule(key[8:16])
        self._enc = (k1, _inverse(self._k2), k3)
        self._dec = None

    def decrypt(self, block):
        if self._dec is None:
            e1, _, e3 = self._enc
            d3 = _inverse(e3)
            self._dec = (d3, self._k2, d3 if e3 is e1 else _inverse(e1))
        return _run(block, self._dec)


def cbc_last(data, iv, cipher, last=None):
    """Last block of the CBC encryption of `data` (a multiple of 8 bytes) under `cipher` (a Des or Tdes),
    the final block under `last` instead when given (ISO 9797-1 MAC algorithm 3, the "retail MAC")."""
    n = len(data)
    if n == 0 or n & 7:
        raise ValueError("CBC data must be a non-empty multiple of 8 bytes")
    if len(iv) != 8:
        raise ValueError("IV must be 8 bytes")
    h0 = (iv[0] << 8) | iv[1]
    h1 = (iv[2] << 8) | iv[3]
    h2 = (iv[4] << 8) | iv[5]
    h3 = (iv[6] << 8) | iv[7]
    stages = cipher._enc
    d = data
    for i in range(0, n, 8):
        if last is not None and i == n - 8:
            stages = last._enc
        h0, h1, h2, h3 = _crypt(
            h0 ^ ((d[i] << 8) | d[i + 1]),
            h1 ^ ((d[i + 2] << 8) | d[i + 3]),
            h2 ^ ((d[i + 4] << 8) | d[i + 5]),
            h3 ^ ((d[i + 6] << 8) | d[i + 7]),
            stages,
        )
    return bytes((h0 >> 8, h0 & 255, h1 >> 8, h1 & 255, h2 >> 8, h2 & 255, h3 >> 8, h3 & 255))
