"""The LittleFS-only fallback journal (boards with MicroPython's default partition table) on a real LittleFS image
(littlefs-python): same behaviour as the raw flash journal, and power cuts replayed at every flash operation."""
from tunion import outcome as O
from tunion.errors import JournalError
from tunion.fsjournal import FsJournal
from tunion.record import Record, KIND_INTENT, KIND_COMPLETED
from sim.lfsport import LogDevice, LfsPort, replay
from sim.nor import cuts_for
from mpcases.journal_cases import header, intent, pay

BLOCKS = 48


def fresh(blocks=BLOCKS, reserve=16 * 4096):
    dev = LogDevice(blocks)
    fs = LfsPort(dev)
    return dev, fs, FsJournal(fs, header(), reserve=reserve)


def reboot(dev, reserve=16 * 4096):
    fs = LfsPort(LogDevice(dev.blocks, image=dev.image(), log=False), format_if_needed=False)
    return FsJournal(fs, header(), reserve=reserve)


def seqs(j, start=1):
    return [r.seq for r in j.read_from(start, 10**6)]


def test_records_open_intent_and_counters_survive_reboot():
    dev, fs, j = fresh()
    for n in range(70):  # crosses a segment file boundary (56 payments per 4 KB file)
        pay(j, n)
    s = j.append_intent(intent(99))
    j.count_refusal(O.REFUSED_EXPIRED)
    j.idle()
    j2 = reboot(dev)
    assert seqs(j2) == list(range(1, 142)) and j2.open_intent().seq == s == 141
    assert j2.refusals() == {O.REFUSED_EXPIRED: 1} and j2.faults == []
    assert j2.read_from(2, 1)[0].ref == 1


def test_acknowledge_removes_whole_files_keeps_head_and_floor():
    dev, fs, j = fresh()
    for n in range(70):
        pay(j, n)
    j.acknowledge(140)
    assert fs.listdir("/journal") == ["s00000002", "state"]  # the head file stays: it carries the floor
    assert j.read_from(1, 100) == []
    for path in ("/lib",):  # reflashing the application touches its own files, never /journal
        fs.mkdir(path)
        fs.write_atomic(path + "/main.mpy", b"new app" * 100)
    j2 = reboot(dev)
    assert j2.next_seq == 141 and pay(j2, 1) == 141


def test_full_refuses_then_resumes_and_replacement_still_fits():
    dev, fs, j = fresh(blocks=40, reserve=20 * 4096)
    n = 0
    while j.has_room():
        pay(j, n)
        n += 1
        j.idle()
    try:
        j.append_intent(intent(1))
        assert False, "intent accepted while full"
    except JournalError:
        pass
    assert seqs(j) == list(range(1, 2 * n + 1))
    fs.write_atomic("/denylist.bin", b"\x55" * (19 * 4096))  # the reserved replacement fits
    fs.remove("/denylist.bin")
    j.acknowledge(2 * n)
    j.idle()
    assert j.has_room() and pay(j, 0) == 2 * n + 1


def test_flipped_bit_in_a_segment_file_is_reported():
    dev, fs, j = fresh()
    for n in range(5):
        pay(j, n)
    raw = bytearray(fs.read_file("/journal/s00000001"))
    raw[64 + 72 + 3] ^= 1  # seq field of record 3
    with fs.lfs.open("/journal/s00000001", "wb") as f:
        f.write(raw)
    j2 = FsJournal(fs, header(), reserve=16 * 4096)
    assert seqs(j2) == [1, 2] + list(range(4, 11))
    assert {"damaged", "gap"} <= {f[0] for f in j2.faults}


def test_power_cut_at_and_inside_every_operation():
    dev, fs, j = fresh(blocks=24, reserve=4096)
    base = dev.image()
    dev.log.clear()
    done = []
    started = []
    for n in range(8):
        for make in (lambda: intent(n), None):
            if make is not None:
                r = make()
                r.seq = j.next_seq
                started.append((len(dev.log), bytes(r.encode())))
                j.append_intent(r)
            else:
                r = r.outcome(KIND_COMPLETED)
                r.seq = j.next_seq
                started.append((len(dev.log), bytes(r.encode())))
                j.append_outcome(r)
            done.append((len(dev.log), bytes(r.encode())))
        if n == 4:
            j.acknowledge(6)
    for k in range(len(dev.log) + 1):
        for partial in (None,) + (cuts_for(dev.log[k]) if k < len(dev.log) else ()):
            img = replay(base, dev.log, k, partial)
            fs2 = LfsPort(LogDevice(24, image=img, log=False), format_if_needed=False)
            j2 = FsJournal(fs2, header(), reserve=4096)
            got = {r.seq: bytes(r.encode()) for r in j2.read_from(1, 1000)}
            fin = [raw for c, raw in done if c <= k]
            for raw in fin:
                seq = Record.decode(raw).seq
                assert seq <= j2.ack or got[seq] == raw
            allowed = set(raw for c, raw in started if c <= k)
            assert all(raw in allowed for raw in got.values())
            last = Record.decode(fin[-1]) if fin else None
            if last is not None and last.kind == KIND_INTENT and last.seq + 1 not in got:
                assert j2.open_intent().seq == last.seq
            assert j2.next_seq > max([Record.decode(raw).seq for raw in fin] or [0])


def test_the_shown_mark_is_kept_in_ram_and_a_mount_counts_every_earlier_payment_as_shown():
    """FsJournal does not rewrite its state file per payment for the mark (LittleFS erases): after a mount every
    record before it counts as shown, so the fallback journal never shows an old payment as paid again."""
    from tunion.journal import unshown_payment

    dev, fs, j = fresh()
    pay(j, 1)
    assert unshown_payment(j) is not None  # the screen has not shown it yet
    j.mark_shown(2)
    assert unshown_payment(j) is None and j.shown() == 2
    pay(j, 2)
    j = reboot(dev)
    assert j.shown() == 4 and unshown_payment(j) is None
