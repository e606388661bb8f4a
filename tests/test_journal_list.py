"""The durable unresolved list (tunion/journal.py contract) on both journals: it survives reboots, the depot's
acknowledgement and reflashing the application; it is bounded with a fault the depot sees (also after a reboot);
settlements are never refused for space; no-TAC counts are durable; and it costs the tap path only programs on
the raw partition, and no file write beyond the record appends on the LittleFS fallback."""
import pytest

from tunion.errors import JournalError
from tunion.journal import MAX_UNRESOLVED, NO_TAC_CARDS
from tunion.jmeta import TAG_CHECK
from tunion.record import (
    Record,
    KIND_COMPLETED,
    KIND_UNRESOLVED,
    KIND_SETTLED,
    KIND_SETTLED_NOT_DEBITED,
    FLAG_MAC2_BAD,
    FLAG_ABANDONED,
)
from mpcases.journal_cases import header, intent, pay
from test_journal_mount import NorBox, FsBox


@pytest.fixture(params=[NorBox, FsBox], ids=["nor", "fs"])
def box(request):
    return request.param()


def torn(j, n, kind=KIND_UNRESOLVED):
    """An intent closed `unresolved` (or completed with the MAC2 rejected): it joins the list."""
    r = intent(n)
    j.append_intent(r)
    if kind == KIND_UNRESOLVED:
        j.append_outcome(r.outcome(KIND_UNRESOLVED, FLAG_ABANDONED))
    else:
        j.append_outcome(r.outcome(KIND_COMPLETED, FLAG_MAC2_BAD, balance=4800, tac=b"\x09\x09\x09\x09"))
    return r


def settle(j, seq, kind=KIND_SETTLED):
    return j.append_settlement(Record(kind, ref=seq, balance=4800, tac=b"\x05\x06\x07\x08" if kind == KIND_SETTLED else b"\x00" * 4))


def listed(j):
    return [(e.seq, e.rejected, e.intent.card_no, e.terminal) for e in j.unresolved()]


def test_list_survives_reboot_with_and_without_idle(box):
    j = box.j
    pay(j, 1)
    a = torn(j, 2)
    b = torn(j, 3, KIND_COMPLETED)
    pay(j, 4)
    want = [(a.seq, False, a.card_no, header().terminal), (b.seq, True, b.card_no, header().terminal)]
    assert listed(j) == want
    assert listed(box.reboot()) == want  # no idle(): the raw journal programmed pins, the fallback replays records
    box.j.idle()
    j = box.reboot()
    assert listed(j) == want and j.unresolved()[0].intent == a


def test_list_survives_acknowledgement_and_the_ring(box):
    j = box.j
    a = torn(j, 1)
    for n in range(60):  # many segments later, everything acknowledged and freed as it goes
        pay(j, n)
        if n % 5 == 4:
            j.acknowledge(j.next_seq - 1)
            j.idle(4)
    j.prepare()
    assert j.read_from(1, 1000) == []
    j = box.reboot()
    assert [e.seq for e in j.unresolved()] == [a.seq] and j.unresolved()[0].intent == a
    assert j.unresolved()[0].terminal == header().terminal
    assert j.scan()["first"] == a.seq  # its segment (header and intent) is kept in flash while the entry lives
    s = settle(j, a.seq)
    assert j.unresolved() == [] and [r.seq for r in j.read_from(1, 10)] == [s]
    j.acknowledge(s)
    j.prepare()  # now the intent's segment may go
    j = box.reboot()
    assert j.unresolved() == [] and j.next_seq == s + 1


def test_settlement_rules(box):
    j = box.j
    a = torn(j, 1)
    b = torn(j, 2, KIND_COMPLETED)
    for bad in (b.seq, 999):  # a MAC2-rejected entry is debited already; 999 is not on the list
        with pytest.raises(JournalError):
            settle(j, bad)
    r = intent(3)
    j.append_intent(r)
    with pytest.raises(JournalError):  # no settlement while an intent is open
        settle(j, a.seq)
    j.append_outcome(r.outcome(KIND_COMPLETED))
    s = settle(j, a.seq, KIND_SETTLED_NOT_DEBITED)
    got = j.read_from(s, 1)[0]
    assert got.kind == KIND_SETTLED_NOT_DEBITED and got.ref == a.seq
    assert [e.seq for e in box.reboot().unresolved()] == [b.seq]
    box.j.drop_unresolved(b.seq, "window")  # past the recovery window: leaves without a fault
    box.j.idle()
    j = box.reboot()
    assert j.unresolved() == [] and j.losses() == (0, 0)
    assert not [f for f in j.faults if f[0].startswith("unresolved")]


def test_full_list_loses_its_oldest_with_a_durable_fault(box):
    j = box.j
    first = [torn(j, n).seq for n in range(MAX_UNRESOLVED + 1)]
    assert [e.seq for e in j.unresolved()] == first[1:]
    assert ("unresolved_overflow", first[0]) in [(f[0], f[1]) for f in j.faults]
    j.drop_unresolved(first[1], "expired")
    assert "unresolved_expired" in [f[0] for f in j.faults]
    j.idle()
    j = box.reboot()
    assert [e.seq for e in j.unresolved()] == first[2:]
    assert j.losses() == (1, 1)
    kinds = [f[0] for f in j.faults]
    assert "unresolved_overflow" in kinds and "unresolved_expired" in kinds  # the depot sees it after a reboot


def test_settlements_are_never_refused_for_space(box):
    j = box.j
    entries = [torn(j, n).seq for n in range(MAX_UNRESOLVED)]
    n = 100
    while j.has_room():
        pay(j, n)
        n += 1
    with pytest.raises(JournalError):
        j.append_intent(intent(1))
    e0 = getattr(getattr(box, "nor", None), "erases", 0)
    for seq in entries:
        settle(j, seq)
    assert j.unresolved() == [] and getattr(getattr(box, "nor", None), "erases", 0) == e0
    j = box.reboot()
    assert j.unresolved() == []
    assert [r.ref for r in j.read_from(1, 10**6)][-MAX_UNRESOLVED:] == entries


def test_no_tac_counts_are_durable(box):
    if box.name == "nor":  # 65 meta values: a 4096-byte meta sector (the board's) holds 255, a 512-byte one 31
        box = NorBox(ss=4096)
    j = box.j
    cards = [3105170010170907984 + k for k in range(NO_TAC_CARDS + 3)]
    for c in cards:
        j.count_no_tac(c)
    j.count_no_tac(cards[0])
    want = dict((c, 1) for c in cards[:NO_TAC_CARDS])
    want[cards[0]] = 2
    want[0] = 3  # every card beyond the first 32
    assert j.no_tac_counts() == want
    j.idle()
    assert box.reboot().no_tac_counts() == want


def test_reflashing_the_application_keeps_the_list():
    box = FsBox()
    a = torn(box.j, 1)
    box.j.idle()
    box.fs.mkdir("/lib")
    box.fs.write_atomic("/lib/main.mpy", b"new app" * 300)
    box.fs.write_atomic("/main.py", b"import app")
    assert [e.seq for e in box.reboot().unresolved()] == [a.seq]


def test_raw_tap_path_costs_programs_only():
    box = NorBox()
    j, nor = box.j, box.nor
    pay(j, 0)
    p, e = nor.programs, nor.erases
    pay(j, 1)
    assert (nor.programs - p, nor.erases - e) == (2, 0)  # a clean tap: intent and outcome
    p = nor.programs
    a = torn(j, 2)
    assert (nor.programs - p, nor.erases - e) == (4, 0)  # + the pin and the checkpoint
    p = nor.programs
    settle(j, a.seq)
    assert (nor.programs - p, nor.erases - e) == (3, 0)  # settlement, release, checkpoint


def test_raw_pin_deferred_when_the_meta_sector_is_full_then_saved_by_idle():
    box = NorBox()
    j, nor = box.j, box.nor
    while j.meta.room() > 0:
        j.count_refusal("REFUSED_EXPIRED")
    e = nor.erases
    a = torn(j, 1)
    assert nor.erases == e and j.pins.unsaved
    assert [x.seq for x in box.reboot().unresolved()] == [a.seq]  # a cut now: the records after the checkpoint
    j = box.j
    j.idle()
    assert not j.pins.unsaved and j.meta.get(TAG_CHECK, 0) == j.next_seq - 1
    assert [x.seq for x in box.reboot().unresolved()] == [a.seq]


def test_raw_mount_reads_pins_not_the_journal():
    box = NorBox()
    j, nor = box.j, box.nor
    a = torn(j, 1)
    for n in range(40):
        pay(j, n)
        j.idle()
    assert j.meta.get(TAG_CHECK, 0) >= j.next_seq - 1 - 32
    nor.reads = 0
    j = box.reboot()
    assert [x.seq for x in j.unresolved()] == [a.seq]
    # headers of every sector, the meta sectors, the head, the previous segment and one record for the pin
    assert nor.reads <= nor.sectors + 2 + 3


def test_fs_tap_path_writes_only_record_appends():
    box = FsBox()
    j = box.j
    opened = []
    real = box.fs.open

    def counting_open(path, mode="rb"):
        if "w" in mode or "a" in mode:
            opened.append(path)
        return real(path, mode)

    box.fs.open = counting_open
    a = torn(j, 1)
    settle(j, a.seq)
    j.drop_unresolved(torn(j, 2).seq, "expired")
    j.count_no_tac(5)
    assert len(opened) == 5 and all("/s" in p for p in opened)  # four records and one settlement, no state file


def test_raw_list_survives_a_power_cut_at_and_inside_every_operation():
    """The list after a cut at operation k is exactly what the records programmed before k say (an outcome
    `unresolved` adds, a settlement removes); a record whose own program was cut may be there or not."""
    from sim.nor import NorFlash, replay, cuts_for
    from tunion.flashjournal import FlashJournal

    nor = NorFlash(8, 512, log=True)
    FlashJournal(nor, header()).prepare()
    base = nor.image()
    nor.log.clear()
    j = FlashJournal(nor, header())
    events = []  # (index of the record's program in the log, +1 add / -1 remove, intent seq)
    live = []

    def program_of(start, kind):
        for i in range(start, len(nor.log)):
            op = nor.log[i]
            if op[0] == "prog" and len(op[2]) == 24 and op[2][1] == kind:
                return i
        raise AssertionError("no program of kind %d" % kind)

    for n in range(24):
        start = len(nor.log)
        if n % 3 == 1:
            live.append(torn(j, n).seq)
            events.append((program_of(start, KIND_UNRESOLVED), 1, live[-1]))
        elif n % 6 == 3 and live:
            seq = live.pop(0)
            settle(j, seq)
            events.append((program_of(start, KIND_SETTLED), -1, seq))
        else:
            pay(j, n)
        j.count_refusal("REFUSED_EXPIRED")  # fills the meta sector: pins get deferred, idle switches sectors
        if n % 4 == 3:
            j.acknowledge(j.next_seq - 1)
        j.idle()
    assert nor.conflicts == 0 and len(events) == 12
    for k in range(len(nor.log) + 1):
        done = set()
        for i, d, seq in events:
            if i < k:
                if d > 0:
                    done.add(seq)
                else:
                    done.discard(seq)
        maybe = [e for e in events if e[0] == k]
        allowed = [tuple(sorted(done))]
        for i, d, seq in maybe:
            alt = set(done)
            if d > 0:
                alt.add(seq)
            else:
                alt.discard(seq)
            allowed.append(tuple(sorted(alt)))
        for partial in (None,) + (cuts_for(nor.log[k]) if k < len(nor.log) else ()):
            img = replay(base, nor.log, k, partial, 512)
            j2 = FlashJournal(NorFlash(8, 512, image=img), header())
            got = tuple(e.seq for e in j2.unresolved())
            assert got in allowed if partial is not None else got == allowed[0], (k, partial, got, allowed)


def test_fs_list_survives_a_power_cut_at_every_operation():
    """On the fallback: after a cut the list is what the records that reached LittleFS say (an append is old or
    new after a cut), whether or not idle() saved the state file since."""
    from sim.lfsport import LogDevice, LfsPort, replay
    from tunion.fsjournal import FsJournal

    dev = LogDevice(24, block_size=512)
    fs = LfsPort(dev)
    j = FsJournal(fs, header(), seg_bytes=1024, reserve=512)
    base = dev.image()
    dev.log.clear()
    events = []  # (ops when the append started, ops when it returned, +1 / -1, seq)
    live = []
    for n in range(18):
        start = len(dev.log)
        if n % 3 == 1:
            live.append(torn(j, n).seq)
            events.append((start, len(dev.log), 1, live[-1]))
        elif n % 6 == 3 and live:
            seq = live.pop(0)
            settle(j, seq)
            events.append((start, len(dev.log), -1, seq))
        else:
            pay(j, n)
        if n % 4 == 3:
            j.acknowledge(j.next_seq - 1)
        if n % 2:
            j.idle()
    for k in range(0, len(dev.log) + 1):
        done, alt = set(), None
        for a, b, d, seq in events:
            if b <= k:
                (done.add if d > 0 else done.discard)(seq)
            elif a <= k:
                alt = (d, seq)
        allowed = [tuple(sorted(done))]
        if alt is not None:
            x = set(done)
            (x.add if alt[0] > 0 else x.discard)(alt[1])
            allowed.append(tuple(sorted(x)))
        img = replay(base, dev.log, k, None, 512)
        fs2 = LfsPort(LogDevice(24, block_size=512, image=img, log=False), format_if_needed=False)
        got = tuple(e.seq for e in FsJournal(fs2, header(), seg_bytes=1024, reserve=512).unresolved())
        assert got in allowed, (k, got, allowed)


def test_raw_idle_compacts_the_meta_sector_ahead_so_taps_never_defer():
    box = NorBox()
    j, nor = box.j, box.nor
    deferred = 0
    for n in range(120):  # a list change every tap: the meta sector would fill every ~12 taps
        e = nor.erases
        a = torn(j, n)
        settle(j, a.seq)
        assert nor.erases == e
        deferred += bool(j.pins.unsaved)
        j.acknowledge(j.next_seq - 1)
        j.idle()
    assert deferred == 0 and j.meta.erases >= 5
    assert box.reboot().unresolved() == []


def test_fs_state_keeps_every_outcome_counter():
    from tunion import outcome as O

    box = FsBox()
    for s in O.ALL:
        box.j.count_refusal(s)
    box.j.idle()
    assert box.reboot().refusals() == dict((s, 1) for s in O.ALL)  # MAC2_REJECTED (the 18th) included
