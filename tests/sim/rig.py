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
from tunion.record import KIND_INTENT, end_of, is_settlement, END_DEBITED_TAC, END_DEBITED_NO_TAC, END_UNKNOWN
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


def sam_keys(terminal=None, serial=None):
    return {
        "mpk": keys.MPK,
        "mtk": keys.MTK,
        "mbk": keys.MBK,
        "terminal": terminal or keys.TEST_TERMINAL,
        "serial": serial or keys.TEST_PSAM_SERIAL,
        "key_index": keys.KEY_INDEX,
        "key_version": keys.KEY_VERSION,
    }


def _quiet(*a):
    pass


class Rig:
    def __init__(self, journal=None, config=None, when=(2026, 12, 1, 8, 0, 0), ttc_store=None, terminal=None,
                 serial=None):
        self.softsam = SoftSam(sam_keys(terminal, serial), ttc_store or MemoryTtcStore(), out=_quiet)
        self.psam = Psam(self.softsam).open()
        self.terminal = self.psam.terminal
        self.journal = journal if journal is not None else MemoryJournal(terminal=self.terminal)
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

    def reboot(self):
        """A power cycle of the whole validator: RAM state gone, the SAM reset; the journal object stands for the
        flash (a MemoryJournal keeps everything; flash journals are remounted by the caller)."""
        self.state = State()
        self.reboot_sam()

    def reboot_sam(self):
        """A power cycle of the SAM: the PSAM session is gone (its TTC store keeps the next values)."""
        self.softsam.reset()
        self.psam = Psam(self.softsam).open()

    def records(self):
        return self.journal.read_from(0, 1000000)


def ledger(records):
    """(debited, unresolved, not debited, open) intents by how they ended (record.end_of; a settlement overrides
    the `unresolved` outcome it cites): lists of intent records."""
    intents = {}
    done = {}
    for r in records:
        if r.kind == KIND_INTENT:
            intents[r.seq] = r
        elif is_settlement(r.kind) or r.ref not in done:
            done[r.ref] = end_of(r.kind)
    completed = []
    unresolved = []
    cancelled = []
    still_open = []
    for seq in intents:
        k = done.get(seq)
        if k is None:
            still_open.append(intents[seq])
        elif k == END_DEBITED_TAC or k == END_DEBITED_NO_TAC:
            completed.append(intents[seq])
        elif k == END_UNKNOWN:
            unresolved.append(intents[seq])
        else:
            cancelled.append(intents[seq])
    return completed, unresolved, cancelled, still_open
