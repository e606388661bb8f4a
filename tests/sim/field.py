"""A contactless device in the reader's field: tears at any APDU, presence, and counts of its work.

    class SimCard(Field): def _process(self, apdu): ...   # the device answers; Field does the rest
    card.tear_on_ins(0x54, AFTER)   # the next DEBIT is processed, its answer lost: CardLost

The simulated card inherits this; `_process(apdu) -> response` and `_power_loss()` are the device's own.
"""
from tunion.errors import CardLost

BEFORE = "before"  # the APDU never reaches the card
AFTER = "after"  # the card processes the APDU, the answer is lost


def _xorshift(x):
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return x & 0xFFFFFFFF


class Field:
    def _field_init(self):
        self.in_field = True
        self.tears = 0
        self.last_tear = None  # (apdu index, BEFORE/AFTER, INS)
        self._tear_index = None
        self._tear_ins = None
        self._tear_nth = 0
        self._tear_when = None
        self.reset_counts()

    # ---- the field: tears, presence, counts
    def reset_counts(self):
        self.apdus = 0  # APDUs that reached the card while in the field (a torn one included)
        self.bytes_in = 0  # command bytes of those APDUs
        self.bytes_out = 0  # response bytes actually delivered (a torn answer is not)
        self.ins_counts = {}  # INS -> APDUs

    def tear_at(self, n, when=BEFORE, absolute=False):
        """Tear at APDU number n: counted from now (0 = the next APDU), or, absolute, from the card's
        `apdus` count (the APDU that arrives when apdus == n). Replaces any pending tear."""
        self.cancel_tear()
        self._tear_index = n if absolute else self.apdus + n
        self._tear_when = when

    def tear_on_ins(self, ins, when=AFTER, nth=1):
        """Tear at the nth APDU from now whose INS is `ins` (0x54 = DEBIT). Replaces any pending tear."""
        self.cancel_tear()
        self._tear_ins = ins
        self._tear_nth = nth
        self._tear_when = when

    def tear_random(self, seed, within=8, when=None):
        """A replayable random tear among the next `within` APDUs; returns (n from now, when)."""
        x = _xorshift(_xorshift(seed & 0xFFFFFFFF or 1))
        n = x % within
        if when is None:
            when = BEFORE if (x >> 16) & 1 else AFTER
        self.tear_at(n, when)
        return n, when

    def cancel_tear(self):
        self._tear_index = None
        self._tear_ins = None
        self._tear_when = None

    def remove(self):
        """The card leaves the field between APDUs (volatile state lost)."""
        self.in_field = False
        self._power_loss()

    def present(self):
        """The card comes (back) into the field: powered up afresh, nothing selected."""
        self.in_field = True
        self._power_loss()

    def _tear_due(self, index, ins):
        if self._tear_when is None:
            return None
        if self._tear_index is not None:
            return self._tear_when if index == self._tear_index else None
        if ins == self._tear_ins:
            self._tear_nth -= 1
            if self._tear_nth <= 0:
                return self._tear_when
        return None

    def _tear(self, index, when, ins):
        self.tears += 1
        self.last_tear = (index, when, ins)
        self.cancel_tear()
        self.in_field = False
        self._power_loss()
        raise CardLost("simulated tear %s APDU %d (INS %02X)" % (when, index, ins))

    def transceive(self, apdu):
        """Card port: command APDU -> response data + SW1 SW2. CardLost when out of the field or torn."""
        if not self.in_field:
            raise CardLost("no card in the field")
        apdu = bytes(apdu)
        index = self.apdus
        ins = apdu[1] if len(apdu) > 1 else -1
        self.apdus += 1
        self.bytes_in += len(apdu)
        self.ins_counts[ins] = self.ins_counts.get(ins, 0) + 1
        when = self._tear_due(index, ins)
        if when == BEFORE:
            self._tear(index, when, ins)
        resp = self._process(apdu)
        if when == AFTER:
            self._tear(index, when, ins)
        self.bytes_out += len(resp)
        return resp

