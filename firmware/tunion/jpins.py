"""The raw journal's durable unresolved list and no-TAC counts, kept as rising values in the MetaStore.

    pins = Pins(meta)                               # meta = tunion.jmeta.MetaStore, loaded
    pinned, released = pins.load()                  # at mount: [(seq, sector, offset, rejected)], {seq}
    pins.pin(seq, sector, offset, rejected)         # tap path: one 16-byte program (deferred when the sector is full)
    pins.release(seq)                               # settled or dropped: one program
    pins.flush()                                    # idle()/acknowledge(): what the tap path had to defer

A pin is slot k of TAG_PIN (MAX_UNRESOLVED slots): value seq*2 while the entry lives, seq*2+1 once it left, so a
slot's value only rises (a reused slot gets a newer, larger seq) and the MetaStore's max-merge stays right at any
power cut. aux tells where the intent record is (bit 31: MAC2 rejected, bits 16..30: sector, 0..15: offset), so a
mount reads one 48-byte record per entry, not the journal. TAG_CHECK (the checkpoint) is a seq up to which every
list change is in the pins: mount replays only the records after it (docs/journal.md "The unresolved list").
No-TAC recoveries: slot k of TAG_NOTAC_ID holds a card number (value = low 32 bits, aux = high 32, written once),
TAG_NOTAC slot k its count; index 255 counts every card beyond NO_TAC_CARDS (reported under key 0).
"""
from tunion.compat import const
from tunion.jmeta import TAG_PIN, TAG_CHECK, TAG_LOST, TAG_NOTAC_ID, TAG_NOTAC
from tunion.journal import MAX_UNRESOLVED, NO_TAC_CARDS

_REJECTED = const(0x80000000)  # aux bit 31: the entry's MAC2 was rejected (debited)
_OTHER = const(255)  # TAG_NOTAC index of "every other card"
LOST_OVERFLOW = const(0)  # TAG_LOST index: entries that left the full list
LOST_EXPIRED = const(1)  # TAG_LOST index: unknown entries dropped past their age


class Pins:
    def __init__(self, meta, slots=MAX_UNRESOLVED):
        self.meta = meta
        self.slots = slots
        self.val = [-1] * slots  # what each slot holds (RAM view, ahead of flash while deferred)
        self.aux = [0] * slots
        self.unsaved = {}  # (tag, index) -> (value, aux) the tap path could not program (meta sector full)
        self.card_slot = {}  # card number -> TAG_NOTAC slot
        self.no_tac = {}  # slot (or _OTHER) -> count
        self.lost = [0, 0]
        self.stuck = {}  # seqs on the list that no slot could take

    def load(self):
        """The pins in the (loaded) MetaStore: ([(seq, sector, offset, rejected)], {seqs released})."""
        m = self.meta
        pinned = []
        released = {}
        for k in range(self.slots):
            v = m.get(TAG_PIN, k, -1)
            a = m.get_aux(TAG_PIN, k)
            self.val[k] = v
            self.aux[k] = a
            if v < 0:
                continue
            if v & 1:
                released[v >> 1] = 1
            else:
                pinned.append((v >> 1, (a >> 16) & 0x7FFF, a & 0xFFFF, (a & _REJECTED) != 0))
        for k in range(NO_TAC_CARDS):
            lo = m.get(TAG_NOTAC_ID, k, -1)
            if lo >= 0:
                self.card_slot[(m.get_aux(TAG_NOTAC_ID, k) << 32) | lo] = k
                self.no_tac[k] = m.get(TAG_NOTAC, k, 0)
        self.no_tac[_OTHER] = m.get(TAG_NOTAC, _OTHER, 0)
        self.lost = [m.get(TAG_LOST, LOST_OVERFLOW, 0), m.get(TAG_LOST, LOST_EXPIRED, 0)]
        return pinned, released

    def _put(self, tag, index, value, aux=0):
        """Program now when the active meta sector has room (the tap path never erases), else keep for flush()."""
        key = (tag, index)
        if key in self.unsaved or not self.meta.put(tag, index, value, False, aux):
            self.unsaved[key] = (value, aux)
            return False
        return True

    def pin(self, seq, sector, offset, rejected):
        k = -1
        for i in range(self.slots):  # the slot released longest ago, else an empty one (few keys: small snapshots)
            v = self.val[i]
            if v & 1 and v < seq * 2 and (k < 0 or self.val[k] < 0 or v < self.val[k]):
                k = i
            elif v < 0 and k < 0:
                k = i
        if k < 0:
            # Every free slot holds a newer seq (only when a mount replays an old outcome): the value could not
            # rise, so the entry stays unpinned and the checkpoint stays put; mount keeps replaying it.
            self.stuck[seq] = 1
            return
        a = (_REJECTED if rejected else 0) | (sector << 16) | offset
        self.val[k] = seq * 2
        self.aux[k] = a
        self._put(TAG_PIN, k, seq * 2, a)

    def release(self, seq):
        self.stuck.pop(seq, None)
        for k in range(self.slots):
            if self.val[k] == seq * 2:
                self.val[k] = seq * 2 + 1
                self._put(TAG_PIN, k, seq * 2 + 1, self.aux[k])

    def count_lost(self, index):
        self.lost[index] += 1
        self._put(TAG_LOST, index, self.lost[index])

    def count_no_tac(self, card_no):
        k = self.card_slot.get(card_no, -1)
        if k < 0:
            if len(self.card_slot) < NO_TAC_CARDS and card_no:
                k = len(self.card_slot)
                self.card_slot[card_no] = k
                self._put(TAG_NOTAC_ID, k, card_no & 0xFFFFFFFF, (card_no >> 32) & 0xFFFFFFFF)
            else:
                k = _OTHER
        n = self.no_tac.get(k, 0) + 1
        self.no_tac[k] = n
        self._put(TAG_NOTAC, k, n)

    def no_tac_counts(self):
        out = {}
        for card in self.card_slot:
            n = self.no_tac.get(self.card_slot[card], 0)
            if n:
                out[card] = n
        if self.no_tac.get(_OTHER, 0):
            out[0] = self.no_tac[_OTHER]
        return out

    def checkpoint(self, seq, erase=False):
        """Store the checkpoint: only when nothing is deferred (else the pins do not yet hold every change)."""
        if self.unsaved or self.stuck:
            return False
        return self.meta.put(TAG_CHECK, 0, seq, erase)

    def flush(self):
        """Program what was deferred (may switch meta sectors: one erase; never on the tap path)."""
        for key in list(self.unsaved):
            v, a = self.unsaved.pop(key)
            self.meta.put(key[0], key[1], v, True, a)
