"""Small rising counters kept in two flash sectors of the journal area, safe at any power cut.

    m = MetaStore(dev, 0, 1)          # sectors 0 and 1 of the journal partition
    vals = m.load()                   # {(tag, index): value}, e.g. {(TAG_ACK, 0): 812}
    m.put(TAG_REFUSAL, 3, 17)         # one 16-byte program; False when the sector is full and erase=False

Holds the acknowledgement floor, a sequence floor the depot may raise, and the refusal counters. Every value only
rises, so a load takes the largest valid entry of each key from both sectors: a torn entry fails its CRC and is
ignored, and a sector switch cut at any point loses nothing (the old sector is erased only at the next switch,
after load() has copied whatever the new sector lacked into it). Programs only, except when a sector is full:
then the other sector is erased and receives a snapshot; the journal does that only while idle or at the depot.

Sector: a 16-byte header (b"TJM", version, generation, zero, CRC32), then 16-byte entries:
tag (1), index (1), zero (2), value (4), aux (4), CRC32 of bytes 0..11 (4). `aux` travels with its value (the
entry with the largest value wins, aux and all); entries written before aux existed read it as 0.

Tags: TAG_ACK, TAG_FLOOR, TAG_REFUSAL (index = position in outcome.ALL), and for the durable unresolved list
(tunion/jpins.py): TAG_PIN (slot k: seq*2 while pinned, seq*2+1 once released; aux = where the intent is),
TAG_CHECK (every list change up to this seq is in the pins), TAG_LOST (index 0: entries that left the full list,
1: entries dropped unsettled), TAG_NOTAC_ID / TAG_NOTAC (debited-without-TAC recoveries per card: slot k's card
number as value = low 32 bits, aux = high 32 bits, written once; its count; index 255: every other card),
TAG_SHOWN (index 0: the seq of the newest payment whose result the app put on screen; tunion.journal
.unshown_payment).
"""
from tunion.compat import const, crc32, u32, put_u32

TAG_ACK = const(0x41)  # "A": records up to this seq are acknowledged by the depot
TAG_FLOOR = const(0x46)  # "F": the next seq is at least this (raised by the depot after a full erase)
TAG_REFUSAL = const(0x52)  # "R": refusals of outcome.ALL[index] so far
TAG_PIN = const(0x50)  # "P": an unresolved-list slot (tunion/jpins.py)
TAG_CHECK = const(0x43)  # "C": the list's checkpoint seq
TAG_LOST = const(0x4C)  # "L": list entries lost (0: overflow, 1: expired)
TAG_NOTAC_ID = const(0x49)  # "I": the card of a no-TAC slot
TAG_NOTAC = const(0x4E)  # "N": no-TAC recoveries of a slot's card
TAG_SHOWN = const(0x53)  # "S": the newest payment (its closing record's seq) the passenger was shown
ENTRY = const(16)
_VERSION = const(1)


def _crc(b, n):
    return crc32(memoryview(b)[:n]) & 0xFFFFFFFF


class MetaStore:
    def __init__(self, dev, sector_a, sector_b):
        self.dev = dev
        self.ss = dev.ioctl(5, 0)
        self.sectors = (sector_a, sector_b)
        self._e = bytearray(ENTRY)
        self.values = {}
        self.aux = {}  # (tag, index) -> aux of the winning entry (absent: 0)
        self.active = -1  # index into self.sectors
        self.gen = 0
        self.wp = ENTRY  # next free entry offset in the active sector
        self.erases = 0

    def _read(self, s):
        buf = bytearray(self.ss)
        self.dev.readblocks(s, buf, 0)
        if buf[0:3] != b"TJM" or buf[3] != _VERSION or _crc(buf, 12) != u32(buf, 12):
            return -1, {}, ENTRY, {}
        vals = {}
        aux = {}
        wp = ENTRY
        o = ENTRY
        while o + ENTRY <= self.ss:
            e = buf[o : o + ENTRY]
            if e != b"\xff" * ENTRY:
                wp = o + ENTRY  # torn or valid: the next entry goes after it
                if _crc(e, 12) == u32(e, 12):
                    k = (e[0], e[1])
                    v = u32(e, 4)
                    if v > vals.get(k, -1):
                        vals[k] = v
                        aux[k] = u32(e, 8)
            o += ENTRY
        return u32(buf, 4), vals, wp, aux

    def load(self):
        """Read both sectors, merge (largest value per key), make the newer sector hold every value."""
        ga, va, wa, xa = self._read(self.sectors[0])
        gb, vb, wb, xb = self._read(self.sectors[1])
        merged = dict(va)
        aux = dict(xa)
        for k in vb:
            if vb[k] > merged.get(k, -1):
                merged[k] = vb[k]
                aux[k] = xb[k]
        self.values = merged
        self.aux = aux
        if ga < 0 and gb < 0:
            self._switch(0, 1)
            return merged
        if ga >= gb:
            self.active, self.gen, self.wp, mine = 0, ga, wa, va
        else:
            self.active, self.gen, self.wp, mine = 1, gb, wb, vb
        for k in merged:
            if mine.get(k, -1) < merged[k]:
                self._write(k[0], k[1], merged[k], True, aux.get(k, 0))
        return merged

    def _switch(self, to, gen):
        if (len(self.values) + 1) * ENTRY > self.ss:
            raise ValueError("meta sector of %d bytes too small for %d values" % (self.ss, len(self.values)))
        s = self.sectors[to]
        self.dev.ioctl(6, s)
        self.erases += 1
        h = bytearray(ENTRY)
        h[0:3] = b"TJM"
        h[3] = _VERSION
        put_u32(h, 4, gen)
        put_u32(h, 12, _crc(h, 12))
        self.dev.writeblocks(s, h, 0)
        self.active, self.gen, self.wp = to, gen, ENTRY
        for k in self.values:
            self._program(k[0], k[1], self.values[k], self.aux.get(k, 0))

    def _program(self, tag, index, value, aux=0):
        e = self._e
        for i in range(ENTRY):
            e[i] = 0
        e[0] = tag
        e[1] = index
        put_u32(e, 4, value)
        put_u32(e, 8, aux)
        put_u32(e, 12, _crc(e, 12))
        self.dev.writeblocks(self.sectors[self.active], e, self.wp)
        self.wp += ENTRY

    def _write(self, tag, index, value, erase, aux=0):
        if self.wp + ENTRY > self.ss:
            if not erase:
                return False
            self._switch(1 - self.active, self.gen + 1)  # the snapshot already holds self.values
            return True
        self._program(tag, index, value, aux)
        return True

    def put(self, tag, index, value, erase=False, aux=0):
        """Store value (never lower than before). False, and nothing changed, when the active sector is full and
        erase is False: the caller keeps the value and puts it again while idle."""
        k = (tag, index)
        if value <= self.values.get(k, -1):
            return True
        if self.wp + ENTRY > self.ss and not erase:
            return False
        self.values[k] = value
        if aux:
            self.aux[k] = aux
        elif k in self.aux:
            del self.aux[k]
        return self._write(tag, index, value, True, aux)

    def get(self, tag, index, default=0):
        return self.values.get((tag, index), default)

    def get_aux(self, tag, index):
        return self.aux.get((tag, index), 0)

    def room(self):
        """Entries that still fit before the next sector switch."""
        return (self.ss - self.wp) // ENTRY

    def compact(self):
        """Switch sectors now (one erase; idle only): the new sector holds one entry per value. Returns the room
        it leaves."""
        self._switch(1 - self.active, self.gen + 1)
        return self.room()

    def room_after_compact(self):
        return self.ss // ENTRY - 1 - len(self.values)
