"""The LittleFS journal's state file `/journal/state`: floors, counters and the durable unresolved list.

    st = State(); st.ack = 140; st.entries.append((intent_bytes, terminal, rejected))
    raw = st.encode()                      # replaced atomically by tunion.fsjournal (write, then rename)
    st = State.decode(raw)                 # reads version 2 ("TJS2") and the old 84-byte "TJS1"; ValueError else

Version 2, big-endian:

    off len field
      0   4 magic b"TJS2"
      4   4 acknowledgement floor
      8   4 sequence floor (next_seq when saved)
     12   4 checkpoint: every change of the unresolved list up to this seq is in this file
     16   4 entries that left the full list unsettled (board lifetime)
     20   4 unknown entries dropped past their age
     24   1 N counters, 1 E list entries, 1 T no-TAC cards, 1 zero
     28  4N counters of outcome.ALL[0:N] (N = len(ALL) when written; a reader takes what it knows)
         56E entries: the intent record (48 bytes, record.py), its terminal (6), flags (1: bit 0 MAC2 rejected), 0
         12T card number (8), count (4); card 0 = every card beyond the first NO_TAC_CARDS
          4 CRC32 of everything before

Version 1 (what the firmware wrote before): b"TJS1", ack, floor, 17 counters, CRC32 of bytes 0..79: 84 bytes.
"""
from tunion.compat import const, crc32, u32, put_u32
from tunion.record import INTENT_SIZE

_V1_SIZE = const(84)
_V1_COUNTERS = const(17)
_HEAD = const(28)
_ENTRY = const(56)  # INTENT_SIZE + 6 + 2
_CARD = const(12)


def _crc(b, n):
    return crc32(memoryview(b)[:n]) & 0xFFFFFFFF


class State:
    def __init__(self):
        self.version = 2
        self.ack = 0
        self.floor = 0
        self.check = 0
        self.lost = [0, 0]
        self.counters = []  # by position in outcome.ALL
        self.entries = []  # (intent bytes, terminal bytes, rejected)
        self.no_tac = []  # (card number, count)

    def encode(self):
        n, e, t = len(self.counters), len(self.entries), len(self.no_tac)
        if n > 255 or e > 255 or t > 255:
            raise ValueError("state too large")
        b = bytearray(_HEAD + 4 * n + _ENTRY * e + _CARD * t + 4)
        b[0:4] = b"TJS2"
        put_u32(b, 4, self.ack)
        put_u32(b, 8, self.floor)
        put_u32(b, 12, self.check)
        put_u32(b, 16, self.lost[0])
        put_u32(b, 20, self.lost[1])
        b[24], b[25], b[26] = n, e, t
        o = _HEAD
        for v in self.counters:
            put_u32(b, o, v)
            o += 4
        for raw, term, rejected in self.entries:
            b[o : o + INTENT_SIZE] = raw
            b[o + INTENT_SIZE : o + INTENT_SIZE + 6] = term
            b[o + INTENT_SIZE + 6] = 1 if rejected else 0
            o += _ENTRY
        for card, count in self.no_tac:
            put_u32(b, o, card >> 32)
            put_u32(b, o + 4, card & 0xFFFFFFFF)
            put_u32(b, o + 8, count)
            o += _CARD
        put_u32(b, o, _crc(b, o))
        return b

    @staticmethod
    def decode(b):
        st = State()
        if len(b) == _V1_SIZE and b[0:4] == b"TJS1":
            if _crc(b, 80) != u32(b, 80):
                raise ValueError("state file CRC mismatch")
            st.version = 1
            st.ack, st.floor = u32(b, 4), u32(b, 8)
            st.counters = [u32(b, 12 + 4 * k) for k in range(_V1_COUNTERS)]
            return st
        if len(b) < _HEAD + 4 or b[0:4] != b"TJS2":
            raise ValueError("not a journal state file")
        n, e, t = b[24], b[25], b[26]
        size = _HEAD + 4 * n + _ENTRY * e + _CARD * t + 4
        if len(b) != size or _crc(b, size - 4) != u32(b, size - 4):
            raise ValueError("state file damaged")
        st.ack, st.floor, st.check = u32(b, 4), u32(b, 8), u32(b, 12)
        st.lost = [u32(b, 16), u32(b, 20)]
        o = _HEAD
        st.counters = [u32(b, o + 4 * k) for k in range(n)]
        o += 4 * n
        for k in range(e):
            st.entries.append((bytes(b[o : o + INTENT_SIZE]), bytes(b[o + INTENT_SIZE : o + INTENT_SIZE + 6]), b[o + INTENT_SIZE + 6] & 1 == 1))
            o += _ENTRY
        for k in range(t):
            st.no_tac.append(((u32(b, o) << 32) | u32(b, o + 4), u32(b, o + 8)))
            o += _CARD
        return st
