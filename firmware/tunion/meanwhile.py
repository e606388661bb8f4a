"""Work the tap does while the card works on a command: run as `tunion.card.Purse.meanwhile`, on a port that has
transceive_during (the PN532's: after its ACK, while it talks to the card), and found done by the step after.

    ahead = DenylistAhead(config.denylist, card_no)
    purse.meanwhile = ahead                 # runs during READ EF17, on a PN532 port
    ef17 = purse.read_ef17()
    listed = ahead.answer()                 # ready; searched now if the port never ran it

The card's time is the tap's largest share (docs/performance.md, "Tap-to-beep"): what the next step needs but
does not depend on the card's answer is done in it. Each job keeps what it raises for the step that needs it:
nothing may escape into a PN532 exchange, and a job that did not run is done in its place by the step itself.
"""
from tunion.clock import bcd_datetime


class DenylistAhead:
    """The denylist's answer for one card, searched during READ EF17: a 50,000-entry list takes ~16 file reads,
    84 us on the interpreter, ~2 ms on an ESP32 (bench/bench_rules.py), out of the decision's way (validator.md
    section 6). answer() searches now when the port never ran it (a port without transceive_during, or a command
    that failed first), and raises what the search raised at the denylist's own place in the order of checks,
    so a clock that is not set is still the reason shown."""

    def __init__(self, denylist, card_no):
        self.denylist = denylist
        self.card_no = card_no
        self.listed = None
        self.error = None

    def __call__(self):
        try:
            self.listed = self.denylist.contains(self.card_no)
        except Exception as e:  # noqa: BLE001 - kept for answer(): nothing may escape into the PN532 exchange
            self.error = e

    def answer(self):
        if self.error is not None:
            raise self.error
        if self.listed is None:
            self.listed = self.denylist.contains(self.card_no)
        return self.listed


class PurchaseAhead:
    """During INITIALIZE: 8070's fixed header to the PSAM (Psam.prime_purchase, which never raises) and the tap's
    BCD date-time, which MAC1, the cache record and DEBIT all carry (~13 us on the interpreter, ~0.3 ms on an
    ESP32)."""

    def __init__(self, sam, secs):
        self.sam = sam
        self.secs = secs
        self.dt7 = None

    def __call__(self):
        self.sam.prime_purchase()
        self.dt7 = bcd_datetime(self.secs)

    def answer(self):
        if self.dt7 is None:
            self.dt7 = bcd_datetime(self.secs)
        return self.dt7
