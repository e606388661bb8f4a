"""Work the tap does while the card works on a command: run as `tunion.card.Purse.meanwhile`, on a port that has
transceive_during (the PN532's: after its ACK, while it talks to the card), and found done by the step after.

    ahead = DenylistAhead(config.denylist, card_no)
    purse.meanwhile = ahead                 # runs during READ RECORD EF1E, on a PN532 port
    ok, ef1e = purse.read_last_ef1e()
    listed = ahead.answer()                 # ready; searched now if the port never ran it

The card's time is the tap's largest share (docs/performance.md, "Tap-to-beep"): what the next step needs but
does not depend on the card's answer is done in it. Each job keeps what it raises for the step that needs it:
nothing may escape into a PN532 exchange, and a job that did not run is done in its place by the step itself.
"""
from tunion.card import ef15_in_fci
from tunion.cardfiles import Ef15
from tunion.clock import bcd_datetime


class SelectAhead:
    """During READ EF17, which the tap sends as soon as SELECT answered 9000 (a read: it changes nothing on the
    card): EF15 found in the SELECT answer (tag 9F0C) and decoded, ~60 us on the interpreter, ~1.4 ms on an ESP32.
    answer(purse) -> Ef15, read with READ EF15 when the answer carried none; it raises what finding or decoding
    raised (CardError for a malformed FCI or EF15, as before)."""

    def __init__(self, fci):
        self.fci = fci
        self.ef15 = None
        self.error = None
        self.done = False

    def __call__(self):
        try:
            raw = ef15_in_fci(self.fci)
            self.ef15 = Ef15.decode(raw) if raw is not None else None
        except Exception as e:  # noqa: BLE001 - kept for answer(): nothing may escape into the PN532 exchange
            self.error = e
        self.done = True

    def answer(self, purse):
        if not self.done:
            self()
        if self.error is not None:
            raise self.error
        if self.ef15 is None:
            self.ef15 = Ef15.decode(purse.read_ef15())
        return self.ef15


class DenylistAhead:
    """The denylist's answer for one card, searched during READ RECORD EF1E: a 50,000-entry list takes ~16 file reads,
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
