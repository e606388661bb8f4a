"""A card port that corrupts one answer of the real simulated card: the malformed answers of the hypothesis tests.

    port = Mangler(card, at=3, how="truncate", junk=b"..."); rig.tap(port)

`how`: "truncate", "extend" (junk before the SW), "garbage" (junk alone), "sw" (another status word), "sw_only"
(a bare status word).
"""


class Mangler:
    """Corrupts the answer to APDU number `at` (counted from 0 through this port)."""

    def __init__(self, card, at, how, junk):
        self.card = card
        self.at = at
        self.how = how
        self.junk = junk
        self.n = 0

    def transceive(self, apdu):
        r = self.card.transceive(apdu)
        i = self.n
        self.n += 1
        if i != self.at:
            return r
        if self.how == "truncate":
            return r[: len(self.junk) % max(1, len(r))]
        if self.how == "extend":
            return r[:-2] + self.junk + r[-2:]
        if self.how == "garbage":
            return self.junk
        if self.how == "sw":
            return r[:-2] + (self.junk + b"\x6f\x00")[:2]
        if self.how == "sw_only":
            return (self.junk + b"\x90\x00")[:2]
        raise AssertionError(self.how)
