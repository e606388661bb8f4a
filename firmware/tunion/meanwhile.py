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
from tunion.cardfiles import Ef15, Ef1eRecord, EF1E_SIZE
from tunion.clock import bcd_datetime
from tunion.compat import const

_EF1E_TTYPE_FARE = const(0x06)  # EF1E 交易类型: single fare
_EF1E_INDUSTRY_BUS = const(0x02)
_ef1e_buf = bytearray(EF1E_SIZE)


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
    """During INITIALIZE: 8070's fixed header to the PSAM (Psam.prime_purchase, which never raises), the tap's
    BCD date-time (MAC1, the cache record and DEBIT carry it) and, for the compound purchase, the cache record
    with its balance left to fill (cache_record(after)): ~25 us on the interpreter, ~0.6 ms on an ESP32."""

    def __init__(self, sam, secs, make_cache=None):
        self.sam = sam
        self.secs = secs
        self.make_cache = make_cache  # make_cache(dt7) -> the encoded EF1E record, its balance still open
        self.dt7 = None
        self._cache = None

    def __call__(self):
        self.sam.prime_purchase()
        self.answer()
        if self.make_cache is not None:
            self._cache = self.make_cache(self.dt7)

    def answer(self):
        if self.dt7 is None:
            self.dt7 = bcd_datetime(self.secs)
        return self.dt7

    def cache_record(self, after):
        """The cache record with the balance after the purchase filled in."""
        if self._cache is None:
            self._cache = self.make_cache(self.answer())
        Ef1eRecord.put_balance(self._cache, after)
        return self._cache


class CacheRecord:
    """PurchaseAhead's make_cache: the EF1E record UPDATE CAPP DATA CACHE writes (protocol section 2: a single
    fare on a bus, this terminal, line, station and operator, the fare, the date, city and acquirer), encoded
    into one buffer with the balance after left to fill."""

    def __init__(self, sam, config, fare):
        self.sam = sam
        self.config = config
        self.fare = fare

    def __call__(self, dt7):
        c = self.config
        rec = Ef1eRecord(_EF1E_TTYPE_FARE, b"\x00\x00" + self.sam.terminal, _EF1E_INDUSTRY_BUS, c.line, c.station,
                         c.operator, 0, self.fare, 0, dt7, c.city, c.acquirer)
        return rec.encode(_ef1e_buf)


class Ahead:
    """fn(*args) in the card's time, after `first()` (a PSAM prime, which never raises) when given: answer() is its
    value, made now when the job never ran, and raises what it raised. The tap builds its intent record this way
    during UPDATE CAPP DATA CACHE and its outcome record during DEBIT (Record objects: ~12 us each on the
    interpreter, ~0.3 ms on an ESP32); the fields that come later (TTC, TAC) are set on them then."""

    def __init__(self, fn, args, first=None):
        self.fn = fn
        self.args = args
        self.first = first
        self.done = False
        self.value = self.error = None

    def __call__(self):
        if self.first is not None:
            self.first()
        try:
            self.value = self.fn(*self.args)
        except Exception as e:  # noqa: BLE001 - kept for answer(): nothing may escape into the PN532 exchange
            self.error = e
        self.done = True

    def answer(self):
        if not self.done:
            self.done = True
            self.value = self.fn(*self.args)
        if self.error is not None:
            raise self.error
        return self.value
