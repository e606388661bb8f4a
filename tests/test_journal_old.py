"""Journals written by the firmware of d7bcce7 (format 1 records, the old "TJS1" state file with 17 counters;
tests/fixtures/make_old_journals.py made the images), mounted, appended to and read by today's code."""
from sim.lfsport import LogDevice, LfsPort
from tunion.fsjournal import FsJournal
from mpcases.journal_cases import check_old_journal, fixture, header, case_old_raw_journal_is_read_and_continued


def test_old_raw_journal():
    case_old_raw_journal_is_read_and_continued()


def test_old_littlefs_journal():
    img = open(fixture("old_lfs.bin"), "rb").read()
    fs = LfsPort(LogDevice(32, block_size=512, image=img, log=False), format_if_needed=False)
    assert fs.read_file("/journal/state")[:4] == b"TJS1" and len(fs.read_file("/journal/state")) == 84

    def mount(again=False):
        return FsJournal(fs, header(), seg_bytes=1024, reserve=1024)

    check_old_journal(mount)
    assert fs.read_file("/journal/state")[:4] == b"TJS2"
