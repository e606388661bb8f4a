"""A validator on the bench: software SAM, PSAM client, journal, configuration and a clock, ready to tap.

    rig = Rig(); card = make_card(balance=500)
    r = rig.tap(card)                      # -> Result(PAID ...)
    rig.advance(2000)                      # 2 s later

Pure Python: the pytest suite, the MicroPython cases, the demo and the benchmark all use it.
"""
from tunion.clock import secs_from_civil
from tunion.config import Config, check, DEFAULT
from tunion.journal import MemoryJournal
from tunion.psam import Psam
from tunion.purchase import tap
from tunion.record import KIND_INTENT, KIND_COMPLETED, KIND_UNRESOLVED
from tunion.rules import State
from tunion.softsam import SoftSam, MemoryTtcStore
from sim import keys


def test_config(**changes):
    """The documented configuration, set for the test city of sim.keys (its cards are local)."""
    d = {}
    for k in DEFAULT:
        d[k] = DEFAULT[k]
    d["city"] = keys.TEST_CITY.hex()
    d["local_issuers"] = [keys.TEST_ISSUER.hex()]
    d["acquirer"] = keys.TEST_ISSUER.hex()
    for k in changes:
        d[k] = changes[k]
    return Config(check(d))


def sam_keys():
    return {
        "mpk": keys.MPK,
        "mtk": keys.MTK,
        "mbk": keys.MBK,
        "terminal": keys.TEST_TERMINAL,
        "serial": keys.TEST_PSAM_SERIAL,
        "key_index": keys.KEY_INDEX,
        "key_version": keys.KEY_VERSION,
    }


def _quiet(*a):
    pass


class Rig:
    def __init__(self, journal=None, config=None, when=(2026, 12, 1, 8, 0, 0), ttc_store=None):
        self.softsam = SoftSam(sam_keys(), ttc_store or MemoryTtcStore(), out=_quiet)
        self.psam = Psam(self.softsam).open()
        self.journal = journal if journal is not None else MemoryJournal()
        self.config = config if config is not None else test_config()
        self.state = State()
        self.secs = secs_from_civil(*when)
        self.ticks = 0

    def advance(self, ms):
        self.ticks += ms
        self.secs += (ms + 999) // 1000

    def now(self):
        return (self.secs, self.ticks)

    def tap(self, card, advance_ms=2000):
        r = tap(card, self.psam, self.journal, self.config, self.state, self.now())
        self.advance(advance_ms)
        return r

    def reboot_sam(self):
        """A power cycle of the SAM: the PSAM session is gone (its TTC store keeps the next values)."""
        self.softsam.reset()
        self.psam = Psam(self.softsam).open()

    def records(self):
        return self.journal.read_from(0, 1000000)


def ledger(records):
    """(completed, unresolved, cancelled, open) intents by their outcome: lists of intent records."""
    intents = {}
    done = {}
    for r in records:
        if r.kind == KIND_INTENT:
            intents[r.seq] = r
        else:
            done[r.ref] = r.kind
    completed = []
    unresolved = []
    cancelled = []
    still_open = []
    for seq in intents:
        k = done.get(seq)
        if k is None:
            still_open.append(intents[seq])
        elif k == KIND_COMPLETED:
            completed.append(intents[seq])
        elif k == KIND_UNRESOLVED:
            unresolved.append(intents[seq])
        else:
            cancelled.append(intents[seq])
    return completed, unresolved, cancelled, still_open
