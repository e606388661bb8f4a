"""A power cut at every flash operation of a run, and inside each one, on both flash areas at once.

The run: 40 paid taps on the raw journal (simulated NOR, 512-byte sectors so it crosses segment boundaries, fills,
frees and wraps), refusals counted, acknowledgements, and a configuration and a denylist replacement (new file,
then rename) on a real LittleFS image. Every flash operation is logged in one global order; for each cut point the
images are rebuilt from the logs (whole operations before it, the cut one partly done: a program that wrote only
some bytes, an erase left half done or noisy), then mounted and checked (validator.md section 4).
"""
import pytest

from tunion.flashjournal import FlashJournal
from tunion.segment import SegmentHeader
from tunion.record import Record, KIND_INTENT, KIND_COMPLETED
from tunion import outcome as O
from sim.nor import NorFlash, replay, cuts_for
from sim.lfsport import LogDevice, LfsPort

SS = 512
SECTORS = 8
LFS_BLOCKS = 16
TAPS = 40
HDR = SegmentHeader(b"\x24\x0a\xc4\x11\x22\x33", b"PSAM000001", b"\x00\x00\x00\x01\x23\x45", "B12", "10086", 7)
CFG_OLD, CFG_NEW = b"config v1 " * 30, b"config v2 " * 31
DENY_OLD = b"DL1" + bytes(range(256)) * 16  # 4 KB: 512 small entries
DENY_NEW = b"DL2" + bytes(range(255, -1, -1)) * 20


class Run:
    """Both devices append ("n"|"l", index in their own log) to one order list."""

    def __init__(self):
        self.order = []
        run = self

        class Nor(NorFlash):
            def _op(self, op):
                run.order.append(("n", len(self.log)))
                NorFlash._op(self, op)

        class Lfs(LogDevice):
            def prog(self, cfg, block, off, data):
                run.order.append(("l", len(self.log)))
                return LogDevice.prog(self, cfg, block, off, data)

            def erase(self, cfg, block):
                run.order.append(("l", len(self.log)))
                return LogDevice.erase(self, cfg, block)

        self.nor = Nor(SECTORS, SS, log=True)
        FlashJournal(self.nor, HDR).prepare()
        self.lfs = Lfs(LFS_BLOCKS)
        fs = LfsPort(self.lfs)
        fs.write_atomic("/config.bin", CFG_OLD)
        fs.write_atomic("/denylist.bin", DENY_OLD)
        self.nor_base, self.lfs_base = self.nor.image(), self.lfs.image()
        self.nor.log.clear()
        self.lfs.log.clear()
        self.order.clear()
        self.done = []  # (global ops when the append returned, encoded record)
        self.started = []  # (global ops when the append started, encoded record as it will be written)
        self.acks = []  # (ops when acknowledge started, ops when it returned, value)
        self.refused = []  # (ops when count_refusal + idle returned, total)
        self.files = {}  # path -> (ops at start, ops at return)
        j = FlashJournal(self.nor, HDR)
        n_ref = 0
        for t in range(TAPS):
            r = Record(KIND_INTENT, card_no=3105170000000000 + t, amount=100 + t, balance=9000 - t, counter=t, ttc=t)
            self._append(j.append_intent, r, j.next_seq)
            if t == 20:  # the depot acknowledges while an intent is open (a torn tap): it must stay open
                a = len(self.order)
                j.acknowledge(j.next_seq - 1)
                self.acks.append((a, len(self.order), j.next_seq - 1))
            o = r.outcome(KIND_COMPLETED, balance=8000, tac=bytes([t, 1, 2, 3]))
            self._append(j.append_outcome, o, j.next_seq)
            j.count_refusal(O.REFUSED_INSUFFICIENT)  # every tap: the meta sector fills and switches (31 entries)
            n_ref += 1
            j.idle()
            self.refused.append((len(self.order), n_ref))
            if t % 7 == 6:
                a = len(self.order)
                j.acknowledge(j.next_seq - 5)
                self.acks.append((a, len(self.order), j.next_seq - 5))
            if t == 12:
                self._replace(fs, "/config.bin", CFG_NEW)
            if t == 25:
                self._replace(fs, "/denylist.bin", DENY_NEW)
        assert self.nor.conflicts == 0

    def _append(self, fn, rec, seq):
        rec.seq = seq
        self.started.append((len(self.order), bytes(rec.encode())))
        fn(rec)
        self.done.append((len(self.order), bytes(rec.encode())))

    def _replace(self, fs, path, data):
        a = len(self.order)
        fs.write_atomic(path, data, chunk=1024)
        self.files[path] = (a, len(self.order))

    def images(self, k, partial):
        """NOR and LittleFS images after the first k global operations, operation k cut as `partial`."""
        n = sum(1 for d, i in self.order[:k] if d == "n")
        m = k - n
        dev = self.order[k][0] if k < len(self.order) else None
        nor = replay(self.nor_base, self.nor.log, n, partial if dev == "n" else None, SS)
        lfs = replay(self.lfs_base, self.lfs.log, m, partial if dev == "l" else None, 4096)
        return nor, lfs


@pytest.fixture(scope="module")
def run():
    return Run()


def _check(run, k, partial):
    nor_img, lfs_img = run.images(k, partial)
    nor = NorFlash(SECTORS, SS, image=nor_img)
    j = FlashJournal(nor, HDR)
    got = {}
    for r in j.read_from(1, 100000):
        got[r.seq] = bytes(r.encode())
    done = [raw for c, raw in run.done if c <= k]
    acked_done = max([v for a, c, v in run.acks if c <= k] or [0])
    acked_max = max([v for a, c, v in run.acks if a <= k] or [0])
    assert acked_done <= j.ack <= acked_max
    # every record completed before the cut is intact (unless acknowledged and freed)
    for raw in done:
        seq = Record.decode(raw).seq
        if seq > j.ack:
            assert got.get(seq) == raw, "record %d lost or changed at cut %d %r" % (seq, k, partial)
    # the one being written is whole or absent; nothing else appears
    inflight = [raw for c, raw in run.started if c <= k][len(done):]
    allowed = set(done) | set(inflight)
    for seq, raw in got.items():
        assert raw in allowed, "unexpected record %d at cut %d %r" % (seq, k, partial)
    # an open intent is still open
    last = Record.decode(done[-1]) if done else None
    if last is not None and last.kind == KIND_INTENT:
        oi = j.open_intent()
        outcome_landed = inflight and Record.decode(inflight[0]).seq in got
        assert (oi is not None and oi.seq == last.seq) or outcome_landed
    # sequence numbers continue
    top = max([Record.decode(raw).seq for raw in done + inflight] or [0])
    assert j.next_seq > max(list(got) + [0])
    if inflight and Record.decode(inflight[0]).seq in got or not inflight:
        assert j.next_seq >= top + 1
    if partial is not None and partial[0] == "prog" and partial[1] > 0 and inflight and k < len(run.order):
        d, i = run.order[k]
        if d == "n" and run.nor.log[i][2] == inflight[0]:
            assert j.next_seq >= top + 1, "a half-written record's seq would be reused"
    # refusal counters: never more than counted, never less than what was saved
    saved = max([n for c, n in run.refused if c <= k] or [0])
    assert saved <= j.refusals().get(O.REFUSED_INSUFFICIENT, 0) <= run.refused[-1][1]
    # writing goes on at a clean place, without erasing during the tap
    j.prepare()
    if j.open_intent() is not None:
        j.append_outcome(j.open_intent().outcome(KIND_COMPLETED))
    e = nor.erases
    r = Record(KIND_INTENT, card_no=1, amount=1)
    s = j.append_intent(r)
    assert s >= top + 1 or s > max(list(got) + [0])
    j.append_outcome(r.outcome(KIND_COMPLETED))
    assert nor.erases == e and nor.conflicts == 0
    again = FlashJournal(nor, HDR)
    assert [x.seq for x in again.read_from(1, 100000)][-2:] == [s, s + 1]
    # and around the whole ring: a half-erased or torn sector is never programmed over
    refused = again.refusals().get(O.REFUSED_INSUFFICIENT, 0)
    for t in range(SECTORS * 5):
        again.acknowledge(again.next_seq - 1)
        again.count_refusal(O.REFUSED_EXPIRED)  # the meta sector switches again: nothing may be lost
        again.idle()
        r = Record(KIND_INTENT, card_no=2, amount=t)
        s = again.append_intent(r)
        again.append_outcome(r.outcome(KIND_COMPLETED))
    assert nor.conflicts == 0
    last = FlashJournal(nor, HDR)
    assert [x.seq for x in last.read_from(s, 10)] == [s, s + 1]
    assert last.refusals() == {O.REFUSED_INSUFFICIENT: refused, O.REFUSED_EXPIRED: SECTORS * 5} or refused == 0
    # the files: old or new, never torn
    fs = LfsPort(LogDevice(LFS_BLOCKS, image=lfs_img, log=False), format_if_needed=False)
    for path, old, new in (("/config.bin", CFG_OLD, CFG_NEW), ("/denylist.bin", DENY_OLD, DENY_NEW)):
        a, c = run.files[path]
        data = fs.read_file(path)
        if k >= c:
            assert data == new
        elif k < a:
            assert data == old
        else:
            assert data in (old, new), "%s torn at cut %d %r" % (path, k, partial)


def test_run_crosses_segments_fills_frees_and_replaces_files(run):
    erases = [op for op in run.nor.log if op[0] == "erase"]
    j = FlashJournal(NorFlash(SECTORS, SS, image=run.nor.image()), HDR)
    assert j.segno[j.head] > SECTORS - 2 and len(erases) >= 4  # segments were freed and reused: the ring wrapped
    assert ("erase", 0) in erases or ("erase", 1) in erases  # the meta store switched sectors during the run
    assert run.lfs.erases > 4 and len(run.files) == 2


def test_power_cut_at_every_operation(run):
    for k in range(len(run.order) + 1):
        _check(run, k, None)


def test_power_cut_inside_every_operation(run):
    for k in range(len(run.order)):
        d, i = run.order[k]
        op = (run.nor.log if d == "n" else run.lfs.log)[i]
        for partial in cuts_for(op):
            _check(run, k, partial)
