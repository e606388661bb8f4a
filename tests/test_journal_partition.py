"""drivers/partition.py against a stand-in `esp32` module: the journal finds its partition, writes only with an
offset (the form that never erases), erases only through ioctl(6), and falls back to LittleFS without one."""
import sys
import types

import pytest

from tunion.flashjournal import FlashJournal
from tunion.fsjournal import FsJournal
from tunion.record import KIND_COMPLETED
from sim.nor import NorFlash
from mpcases.journal_cases import header, intent


class FakePartition(NorFlash):
    """esp32.Partition over simulated NOR: writeblocks without an offset erases first, as the real one does."""

    TYPE_APP = 0
    TYPE_DATA = 1
    table = []

    def __init__(self, sectors, label):
        NorFlash.__init__(self, sectors)
        self.label = label
        self.erase_first_writes = 0

    def writeblocks(self, block, buf, offset=None):
        if offset is None:
            self.erase_first_writes += 1
        NorFlash.writeblocks(self, block, buf, offset)

    def info(self):
        return (1, 0x40, 0x320000, self.sectors * 4096, self.label, False)

    @staticmethod
    def find(type=0, subtype=0xFF, label=None):
        return [p for p in FakePartition.table if label is None or p.label == label]


@pytest.fixture
def esp32(monkeypatch):
    mod = types.ModuleType("esp32")
    mod.Partition = FakePartition
    monkeypatch.setitem(sys.modules, "esp32", mod)
    monkeypatch.delitem(sys.modules, "drivers.partition", raising=False)
    FakePartition.table = []
    yield mod
    FakePartition.table = []


def test_journal_on_the_partition_programs_only(esp32):
    from drivers import partition
    from app.boot import open_journal

    part = FakePartition(32, "journal")
    FakePartition.table = [FakePartition(8, "vfs"), part]
    j = open_journal(header())
    assert isinstance(j, FlashJournal) and partition.find_journal().info()[4] == "journal"
    j.prepare()
    for n in range(200):
        e = part.erases
        r = intent(n)
        j.append_intent(r)
        j.append_outcome(r.outcome(KIND_COMPLETED))
        assert part.erases == e
        j.acknowledge(j.next_seq - 1)
        j.idle()
    assert part.erase_first_writes == 0 and part.conflicts == 0 and part.erases > 0


def test_no_partition_means_the_littlefs_fallback(esp32, monkeypatch, tmp_path):
    from drivers import partition
    from app.boot import open_journal

    FakePartition.table = [FakePartition(8, "vfs")]
    assert partition.find_journal() is None
    monkeypatch.chdir(tmp_path)
    j = open_journal(header(), reserve=4096, root="journal")
    assert isinstance(j, FsJournal)
    r = intent(1)
    assert j.append_intent(r) == 1


def test_sector_size_other_than_4096_is_refused(esp32):
    from drivers import partition
    from app.boot import open_journal

    p = FakePartition(8, "journal")
    p.sector_size = 512
    with pytest.raises(ValueError):
        partition.JournalPartition(p)
