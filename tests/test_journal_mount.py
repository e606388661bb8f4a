"""Mount after damage, on both journals (issue 7 findings 9 and 10): a damaged segment header or wiped segments
never lower the sequence floor below the acknowledgement floor, never make unacknowledged records erasable, and
the open intent is found in whatever segment still reads."""
import pytest

from tunion.flashjournal import FlashJournal
from tunion.fsjournal import FsJournal
from tunion.record import KIND_COMPLETED
from sim.nor import NorFlash
from sim.lfsport import LogDevice, LfsPort
from mpcases.journal_cases import header, intent, pay

SS = 512


class NorBox:
    """The raw journal on 16 small sectors (5 payments per segment)."""

    name = "nor"

    def __init__(self, sectors=16, ss=SS):
        self.ss = ss
        self.nor = NorFlash(sectors, ss)
        self.j = FlashJournal(self.nor, header())
        self.j.prepare()

    def reboot(self):
        self.j = FlashJournal(self.nor, header())
        return self.j

    def segments(self):
        """Live segments oldest first (sector numbers)."""
        return [i for i in self.j._order()]

    def flip_header(self, seg):
        self.nor.mem[seg * self.ss + 9] ^= 0x10  # inside the first-seq field: the header CRC fails

    def wipe(self):
        for s in range(2, self.nor.sectors):
            self.nor.ioctl(6, s)


class FsBox:
    """The LittleFS fallback with 1 KB segment files (about 14 payments each)."""

    name = "fs"

    def __init__(self):
        self.dev = LogDevice(48, log=False)
        self.fs = LfsPort(self.dev)
        self.j = FsJournal(self.fs, header(), seg_bytes=1024, reserve=4096)

    def reboot(self):
        self.j = FsJournal(self.fs, header(), seg_bytes=1024, reserve=4096)
        return self.j

    def segments(self):
        return [s[0] for s in self.j.segs]

    def _path(self, segno):
        return "/journal/s%08d" % segno

    def flip_header(self, seg):
        raw = bytearray(self.fs.read_file(self._path(seg)))
        raw[9] ^= 0x10
        with self.fs.lfs.open(self._path(seg), "wb") as f:
            f.write(raw)

    def wipe(self):
        for name in self.fs.listdir("/journal"):
            if name[0] == "s" and name[1:].isdigit():
                self.fs.remove("/journal/" + name)


@pytest.fixture(params=[NorBox, FsBox], ids=["nor", "fs"])
def box(request):
    return request.param()


def seqs(j, start=1):
    return [r.seq for r in j.read_from(start, 10**6)]


def run_acknowledged(box, payments=70):
    """Payments with the depot acknowledging as it goes (the ring wraps), then everything acknowledged."""
    j = box.j
    for n in range(payments):
        pay(j, n)
        if n % 5 == 4:
            j.acknowledge(j.next_seq - 1)
            j.idle(4)
    j.acknowledge(2 * payments)
    j.prepare()
    assert j.pending() == 0 and j.next_seq == 2 * payments + 1


def test_damaged_head_header_after_full_acknowledgement_keeps_the_floor(box):
    run_acknowledged(box)
    box.flip_header(box.segments()[-1])
    j = box.reboot()
    assert j.next_seq == 141  # finding 9: was 1 on the raw journal
    assert pay(j, 99) == 141
    assert seqs(j) == [141, 142]
    j.prepare()
    j = box.reboot()
    assert seqs(j) == [141, 142] and j.next_seq == 143


def test_wiped_segments_keep_the_floor(box):
    run_acknowledged(box)
    box.wipe()
    j = box.reboot()
    assert j.next_seq == 141
    assert pay(j, 1) == 141
    j.prepare()
    assert seqs(box.reboot()) == [141, 142]


def test_damaged_head_header_keeps_the_open_intent(box):
    j = box.j
    for n in range(7):  # the head holds records 11..14 on the raw journal
        pay(j, n)
    s = j.append_intent(intent(50))
    box.flip_header(box.segments()[-1])
    j = box.reboot()
    assert j.open_intent() is not None and j.open_intent().seq == s == 15  # finding 10: was None
    assert seqs(j) == list(range(1, 16))
    assert "lost_header" in [f[0] for f in j.faults]
    assert j.append_outcome(j.open_intent().outcome(KIND_COMPLETED)) == 16
    assert pay(j, 51) == 17
    j.prepare()
    j = box.reboot()
    assert seqs(j) == list(range(1, 19)) and j.open_intent() is None and j.next_seq == 19


def test_damaged_head_header_with_acknowledged_open_intent(box):
    j = box.j
    for n in range(7):
        pay(j, n)
    s = j.append_intent(intent(50))
    j.acknowledge(s)  # the depot took everything, the open intent included
    j.prepare()
    box.flip_header(box.segments()[-1])
    j = box.reboot()
    assert j.open_intent().seq == s and j.next_seq == s + 1
    j.prepare()  # the damaged head holds the open intent: not erased
    j = box.reboot()
    assert j.open_intent().seq == s and seqs(j) == [s]


def test_damaged_headers_on_the_oldest_and_a_middle_segment(box):
    j = box.j
    n = 0
    while len(box.segments()) < 4:
        pay(j, n)
        n += 1
    pay(j, n)
    last = j.next_seq - 1
    segs = box.segments()
    box.flip_header(segs[0])
    box.flip_header(segs[2])
    j = box.reboot()
    assert seqs(j) == list(range(1, last + 1))  # every valid record still read
    assert [f[0] for f in j.faults].count("lost_header") == 2
    assert j.next_seq == last + 1
    assert pay(j, 99) == last + 1  # nothing reused
    j.prepare()  # nothing unacknowledged is erased
    j = box.reboot()
    assert seqs(j) == list(range(1, last + 3))
    j.acknowledge(last + 2)
    j.prepare()
    j = box.reboot()
    assert seqs(j) == [] and j.next_seq == last + 3 and pay(j, 100) == last + 3


def test_damaged_head_header_with_some_records_acknowledged(box):
    j = box.j
    for n in range(7):
        pay(j, n)
    j.acknowledge(12)
    j.prepare()
    box.flip_header(box.segments()[-1])
    j = box.reboot()
    assert seqs(j) == [13, 14] and j.next_seq == 15
    j.prepare()
    j = box.reboot()
    assert seqs(j) == [13, 14] and j.next_seq == 15
