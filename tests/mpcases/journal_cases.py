"""Flash journal behaviour on simulated NOR flash: run by pytest and under MicroPython (tests/test_mpcases.py).

Small geometry (512-byte sectors, 5 payments per segment) so segments fill, free and wrap within tens of taps.
"""
from tunion.flashjournal import FlashJournal
from tunion.segment import SegmentHeader, HEADER_SIZE
from tunion.record import Record, KIND_INTENT, KIND_COMPLETED, KIND_CANCELLED
from tunion.errors import JournalError
from tunion import outcome as O
from sim.nor import NorFlash, PowerCut

SS = 512


def header(**kw):
    return SegmentHeader(b"\x24\x0a\xc4\x11\x22\x33", b"PSAM000001", b"\x00\x00\x00\x01\x23\x45", "B12", "10086", 7, **kw)


def fresh(sectors=8):
    nor = NorFlash(sectors, SS)
    j = FlashJournal(nor, header())
    j.prepare()
    return nor, j


def intent(n):
    return Record(KIND_INTENT, card_no=3105170000000000 + n, amount=200 + n, balance=5000, counter=n, ttc=n, time=n)


def pay(j, n):
    r = intent(n)
    s = j.append_intent(r)
    j.append_outcome(r.outcome(KIND_COMPLETED, balance=4800, tac=b"\x01\x02\x03\x04"))
    return s


def reboot(nor):
    return FlashJournal(nor, header())


def seqs(j, start=1):
    return [r.seq for r in j.read_from(start, 100000)]


def case_records_survive_reboot_in_order():
    nor, j = fresh()
    for n in range(12):  # crosses two segment boundaries
        pay(j, n)
    j2 = reboot(nor)
    assert j2.next_seq == 25
    got = j2.read_from(1, 1000)
    assert [r.seq for r in got] == list(range(1, 25))
    i0 = intent(0)
    i0.seq = 1
    assert got[0] == i0 and got[0].card_no == 3105170000000000
    assert got[1].kind == KIND_COMPLETED and got[1].ref == 1 and got[1].tac == b"\x01\x02\x03\x04"
    assert j2.read_from(7, 3)[0].seq == 7 and len(j2.read_from(7, 3)) == 3
    assert j2.faults == [] and nor.conflicts == 0


def case_segment_header_round_trips_and_is_in_flash():
    nor, j = fresh()
    pay(j, 1)
    raw = bytearray(HEADER_SIZE)
    nor.readblocks(j.head, raw, 0)
    h, segno, first = SegmentHeader.decode(raw)
    assert (segno, first) == (1, 1) and h == header()
    f = h.fields()
    assert f["line"] == "B12" and f["vehicle"] == "10086" and f["config_version"] == 7 and f["psam_no"] == b"PSAM000001"


def case_open_intent_survives_reboot_and_acknowledgement():
    nor, j = fresh()
    pay(j, 1)
    r = intent(2)
    s = j.append_intent(r)
    j2 = reboot(nor)
    assert j2.open_intent() is not None and j2.open_intent().seq == s == 3
    j2.acknowledge(s)  # the depot acknowledges everything, the open intent included
    j2.prepare()
    j3 = reboot(nor)
    assert j3.open_intent().seq == s
    assert [x.seq for x in j3.read_from(1, 10)] == [s]  # still offered until its outcome exists
    try:
        j3.append_intent(intent(3))
        assert False, "a second intent while one is open"
    except JournalError:
        pass
    assert j3.append_outcome(j3.open_intent().outcome(KIND_CANCELLED)) == s + 1
    assert reboot(nor).open_intent() is None


def case_sequence_never_repeats_after_full_acknowledgement():
    nor, j = fresh()
    for n in range(13):
        pay(j, n)
    j.acknowledge(26)
    j.prepare()
    assert j.pending() == 0 and j.read_from(1, 100) == []
    j2 = reboot(nor)
    assert j2.next_seq == 27
    assert pay(j2, 99) == 27


def case_acknowledge_frees_only_acknowledged_whole_segments():
    nor, j = fresh(6)  # 4 segment sectors of 5 payments
    for n in range(12):
        pay(j, n)
    j.acknowledge(13)  # segment 1 (1..10) is wholly acknowledged, segment 2 (11..20) is not
    assert j.prepare() == 1
    assert seqs(j) == list(range(14, 25))
    assert seqs(reboot(nor)) == list(range(14, 25))


def case_no_erase_on_the_tap_path():
    nor, j = fresh()
    for n in range(60):  # wraps the ring several times
        e = nor.erases
        pay(j, n)
        j.count_refusal(O.REFUSED_EXPIRED)
        assert nor.erases == e, "erase during a tap"
        j.acknowledge(j.next_seq - 1)
        j.idle()
    assert nor.conflicts == 0


def case_full_refuses_then_resumes_after_acknowledgement():
    nor, j = fresh(7)  # 5 segments: 4 take payments, the last one is the settlements' reserve
    n = 0
    while j.has_room():
        pay(j, n)
        n += 1
    assert n == 20
    try:
        j.append_intent(intent(99))
        assert False, "an intent accepted while full"
    except JournalError:
        pass
    assert seqs(j) == list(range(1, 41))  # nothing overwritten
    j.acknowledge(10)
    j.idle()
    assert j.has_room()
    assert pay(j, 100) == 41
    assert seqs(reboot(nor), 11) == list(range(11, 43))


def case_outcome_slot_is_reserved():
    nor, j = fresh(5)  # 3 segment sectors (one kept for settlements), no erase ahead possible once used
    n = 0
    while j.has_room():
        r = intent(n)
        j.append_intent(r)
        head, wp, e = j.head, j.wp, nor.erases
        assert wp + 2 * 24 <= SS  # the outcome's slot (and one retry) stays free in the intent's segment
        j.append_outcome(r.outcome(KIND_COMPLETED))
        assert j.head == head and j.wp == wp + 24 and nor.erases == e
        n += 1
    assert n == 10 and nor.conflicts == 0


def case_refusal_counters_survive_reboots():
    nor, j = fresh()
    for k in range(40):  # more than a meta sector holds: the deferred ones are saved by idle()
        j.count_refusal(O.REFUSED_INSUFFICIENT)
    j.count_refusal(O.REFUSED_DENYLISTED)
    j.idle()
    j2 = reboot(nor)
    assert j2.refusals() == {O.REFUSED_INSUFFICIENT: 40, O.REFUSED_DENYLISTED: 1}


def case_flipped_bit_is_reported_and_does_not_hide_later_records():
    nor, j = fresh()
    for n in range(4):
        pay(j, n)
    sector = j.head
    off = HEADER_SIZE + 72 + 10  # inside record 3 (the second intent)
    nor.mem[sector * SS + off] ^= 0x04
    j2 = reboot(nor)
    got = seqs(j2)
    assert 3 not in got and got == [1, 2] + list(range(4, 9))
    kinds = [f[0] for f in j2.faults]
    assert "damaged" in kinds and "gap" in kinds
    assert j2.next_seq == 9


def case_lost_segment_is_reported_and_later_records_read():
    nor, j = fresh(8)
    for n in range(14):  # segments of records 1-10, 11-20, 21-28
        pay(j, n)
    order = j._order()
    lost = order[1]
    for i in range(SS):
        nor.mem[lost * SS + i] = 0xFF  # the whole sector gone
    j2 = reboot(nor)
    rep = j2.scan()
    assert seqs(j2) == list(range(1, 11)) + list(range(21, 29))
    kinds = [f[0] for f in rep["faults"]]
    assert "lost_segment" in kinds and "lost" in kinds


def case_damaged_header_keeps_unacknowledged_records():
    nor, j = fresh(8)
    for n in range(8):
        pay(j, n)
    first = j._order()[0]
    nor.mem[first * SS + 5] ^= 0x80  # header CRC now fails
    j2 = reboot(nor)
    assert seqs(j2) == list(range(1, 17))
    assert [f[0] for f in j2.faults] == ["lost_header"]
    j2.acknowledge(16)
    j2.prepare()
    assert j2.state[first] != 3 and pay(j2, 9) == 17


def case_torn_program_reads_absent_and_writing_continues_cleanly():
    for keep in (1, 7, 30, 47):
        nor, j = fresh()
        pay(j, 1)
        nor.cut_at = (nor.ops, ("prog", keep, 0x0F))
        try:
            j.append_intent(intent(2))
            assert False, "the cut should stop the write"
        except PowerCut:
            pass
        nor.cut_at = None
        j2 = reboot(nor)
        assert j2.open_intent() is None and seqs(j2) == [1, 2]
        s = pay(j2, 3)
        assert s == 4  # seq 3 may have been half written: never reused
        j3 = reboot(nor)
        assert seqs(j3) == [1, 2, 4, 5] and nor.conflicts == 0
        # the torn bytes were zeroed at the reboot: later walks report the skipped seq as a torn write, not a loss
        kinds = [f[0] for f in j3.scan()["faults"]]
        if keep < 47:
            assert "torn" in kinds and "gap" not in kinds and "damaged" not in kinds
        else:  # all but half a byte written: cannot be told from a damaged record, so reported as one
            assert "damaged" in kinds and "gap" in kinds


def case_flipped_bit_in_the_last_record_is_damage_not_a_torn_write():
    nor, j = fresh()
    for n in range(3):
        pay(j, n)
    nor.mem[j.head * SS + j.wp - 10] ^= 0x01  # inside the last outcome (seq 6)
    j2 = reboot(nor)
    assert seqs(j2) == [1, 2, 3, 4, 5] and [f[0] for f in j2.faults] == ["damaged"]
    # its intent reads as open again: the card's next tap asks it for the debit's proof (never charged twice)
    assert j2.open_intent().seq == 5
    assert j2.append_outcome(j2.open_intent().outcome(KIND_COMPLETED)) == 7  # seq 6 is never reused


def case_torn_erase_is_erased_again_before_use():
    nor, j = fresh(5)  # 3 segment sectors: the half-erased one must be reused as the ring goes round
    for n in range(5):
        pay(j, n)
    torn = j.head
    pay(j, 5)  # opens the second sector
    j.acknowledge(10)
    nor.cut_at = (nor.ops, ("erase", "back"))
    try:
        j.idle()
        assert False, "the cut should stop the erase"
    except PowerCut:
        pass
    nor.cut_at = None
    j2 = reboot(nor)
    assert seqs(j2, 11) == [11, 12]
    j2.prepare()
    used = False
    for n in range(6, 22):
        pay(j2, n)
        used = used or j2.head == torn
        j2.acknowledge(j2.next_seq - 3)  # the last payment stays unacknowledged
        j2.idle()
    assert used and seqs(reboot(nor)) == [43, 44] and nor.conflicts == 0


def case_header_change_opens_a_new_segment():
    nor, j = fresh()
    pay(j, 1)
    j.set_header(SegmentHeader(b"\x24\x0a\xc4\x11\x22\x33", line="B13"))
    pay(j, 2)
    raw = bytearray(HEADER_SIZE)
    nor.readblocks(j.head, raw, 0)
    h, segno, first = SegmentHeader.decode(raw)
    assert segno == 2 and first == 3 and h.fields()["line"] == "B13"
    assert seqs(reboot(nor)) == [1, 2, 3, 4]


def case_raised_floor_is_kept():
    nor, j = fresh()
    pay(j, 1)
    j.raise_floor(1000)
    j2 = reboot(nor)
    assert j2.next_seq == 1000 and pay(j2, 2) == 1000


def case_fs_journal_on_the_boards_os_files():
    import os
    from tunion.fsjournal import FsJournal, OsFs

    root = "fsj_case"
    try:
        for name in os.listdir(root):
            os.remove(root + "/" + name)
    except OSError:
        pass
    j = FsJournal(OsFs(), header(), root, 4096, 4096)
    for n in range(60):  # two segment files
        pay(j, n)
    s = j.append_intent(intent(99))
    j.count_refusal(O.REFUSED_EXPIRED)
    j.idle()
    j2 = FsJournal(OsFs(), header(), root, 4096, 4096)
    assert seqs(j2) == list(range(1, 122)) and j2.open_intent().seq == s
    assert j2.refusals() == {O.REFUSED_EXPIRED: 1}
    j2.acknowledge(s)
    assert sorted(os.listdir(root)) == ["s00000002", "state"]
    j3 = FsJournal(OsFs(), header(), root, 4096, 4096)
    assert j3.open_intent().seq == s and j3.next_seq == s + 1


def case_meta_store_survives_two_cuts_across_sector_switches():
    from tunion.jmeta import MetaStore, TAG_REFUSAL, TAG_ACK

    nor = NorFlash(4, SS)
    m = MetaStore(nor, 0, 1)
    m.load()
    for k in range(4):
        m.put(TAG_REFUSAL, k, 100 + k, True)
    m.put(TAG_ACK, 0, 77, True)
    v = 0
    while m.room() > 0:  # fill the active sector with one busy key
        v += 1
        m.put(TAG_REFUSAL, 9, v, True)
    nor.cut_at = (nor.ops + 2, None)  # the switch: erase, header, then cut before the snapshot's first entry
    try:
        m.put(TAG_REFUSAL, 9, v + 1, True)
        assert False, "the cut should stop the switch"
    except PowerCut:
        pass
    nor.cut_at = None
    m2 = MetaStore(nor, 0, 1)
    vals = m2.load()  # merges both sectors and copies into the newer one what it lacks
    assert vals[(TAG_REFUSAL, 2)] == 102 and vals[(TAG_ACK, 0)] == 77 and vals[(TAG_REFUSAL, 9)] == v
    while m2.room() > 0:
        v += 1
        m2.put(TAG_REFUSAL, 9, v, True)
    nor.cut_at = (nor.ops, ("erase", "front"))  # the next switch erases the older sector: cut inside it
    try:
        m2.put(TAG_REFUSAL, 9, v + 1, True)
        assert False, "the cut should stop the erase"
    except PowerCut:
        pass
    nor.cut_at = None
    vals = MetaStore(nor, 0, 1).load()
    for k in range(4):
        assert vals[(TAG_REFUSAL, k)] == 100 + k
    assert vals[(TAG_ACK, 0)] == 77 and vals[(TAG_REFUSAL, 9)] == v


# ---- journals written by the firmware of d7bcce7 (tests/fixtures/make_old_journals.py) -------------------------
def fixture(name):
    here = __file__.replace("\\", "/")
    return here[: here.rindex("/mpcases/")] + "/fixtures/" + name


def check_old_journal(mount):
    """`mount()` gives a journal on a copy of an old image: records in format 1, the open intent, the unresolved
    outcome's intent on the list, the counters; then new records continue the numbering and read back."""
    from tunion.record import KIND_SETTLED, VERSION_1, VERSION

    j = mount()
    got = j.read_from(1, 1000)
    assert [r.seq for r in got] == list(range(7, 26))  # acknowledged up to 6; 25 is the open intent
    assert all(r.version == VERSION_1 for r in got)
    assert got[11].kind == 4 and got[11].ref == 17  # the `unresolved` outcome (seq 18)
    o = j.open_intent()
    assert o is not None and o.seq == 25 and o.card_no == 3105170000000099 and j.next_seq == 26
    assert j.refusals() == {O.REFUSED_EXPIRED: 2, O.REFUSED_DENYLISTED: 1}
    lst = j.unresolved()
    assert [(e.seq, e.rejected, e.intent.card_no) for e in lst] == [(17, False, 3105170000000050)]
    assert lst[0].terminal == header().terminal
    assert j.append_outcome(o.outcome(KIND_COMPLETED, balance=4800, tac=b"\x0a\x0b\x0c\x0d")) == 26
    assert j.append_settlement(Record(KIND_SETTLED, ref=17, balance=4750, tac=b"\x01\x01\x01\x01")) == 27
    j.idle()
    j = mount(again=True)
    got = j.read_from(1, 1000)
    assert [r.seq for r in got] == list(range(7, 28)) and j.open_intent() is None and j.next_seq == 28
    assert got[-1].version == VERSION and got[-1].kind == KIND_SETTLED and j.unresolved() == []
    assert pay(j, 100) == 28


def case_old_raw_journal_is_read_and_continued():
    f = open(fixture("old_nor.bin"), "rb")
    img = f.read()
    f.close()
    nor = NorFlash(12, SS, image=img)

    def mount(again=False):
        return FlashJournal(nor, header())

    check_old_journal(mount)
    assert nor.conflicts == 0


# ---- the durable unresolved list and the mount rules (issue 7) -------------------------------------------------
def _torn(j, n):
    from tunion.record import KIND_UNRESOLVED, FLAG_ABANDONED

    r = intent(n)
    j.append_intent(r)
    j.append_outcome(r.outcome(KIND_UNRESOLVED, FLAG_ABANDONED))
    return r


def case_unresolved_list_survives_remount_and_acknowledgement():
    from tunion.record import KIND_SETTLED_NO_TAC

    nor, j = fresh(8)
    a = _torn(j, 1)
    for n in range(30):  # the ring wraps with everything acknowledged
        pay(j, n)
        j.acknowledge(j.next_seq - 1)
        j.idle(2)
    j.prepare()
    j2 = reboot(nor)
    lst = j2.unresolved()
    assert [e.seq for e in lst] == [a.seq] and lst[0].intent == a and lst[0].terminal == header().terminal
    assert j2.append_settlement(Record(KIND_SETTLED_NO_TAC, ref=a.seq, balance=4800)) == 63
    j2.count_no_tac(a.card_no)
    j3 = reboot(nor)
    assert j3.unresolved() == [] and j3.no_tac_counts() == {a.card_no: 1} and nor.conflicts == 0


def _flip_header(nor, sector):
    nor.mem[sector * SS + 9] ^= 0x10


def case_floor_kept_after_full_acknowledgement_and_a_damaged_head_header():
    nor, j = fresh(16)
    for n in range(70):
        pay(j, n)
        if n % 5 == 4:
            j.acknowledge(j.next_seq - 1)
            j.idle(4)
    j.prepare()
    _flip_header(nor, j.head)
    j2 = reboot(nor)
    assert j2.next_seq == 141 and pay(j2, 1) == 141
    j2.prepare()
    assert seqs(reboot(nor)) == [141, 142]


def case_open_intent_found_after_a_damaged_head_header():
    nor, j = fresh(16)
    for n in range(7):
        pay(j, n)
    s = j.append_intent(intent(50))
    _flip_header(nor, j.head)
    j2 = reboot(nor)
    assert j2.open_intent() is not None and j2.open_intent().seq == s
    assert "lost_header" in [f[0] for f in j2.faults]
    assert j2.append_outcome(j2.open_intent().outcome(KIND_COMPLETED)) == s + 1
    assert seqs(reboot(nor)) == list(range(1, s + 2))


def case_damaged_headers_on_the_oldest_and_a_middle_segment():
    nor, j = fresh(16)
    for n in range(16):  # segments of 10, 10, 10 and 2 records
        pay(j, n)
    order = j._order()
    _flip_header(nor, order[0])
    _flip_header(nor, order[2])
    j2 = reboot(nor)
    assert seqs(j2) == list(range(1, 33)) and j2.next_seq == 33
    j2.prepare()
    assert pay(j2, 99) == 33 and seqs(reboot(nor)) == list(range(1, 35))


def _raw_blocks(j, seq, max_bytes):
    from tunion.segment import parse_raw

    blocks = []
    while True:
        raw, nxt, end = j.read_raw(seq, max_bytes)
        assert len(raw) <= max_bytes
        blocks += parse_raw(raw)
        if end:
            return blocks
        assert nxt > seq
        seq = nxt


def case_read_raw_sends_every_record_once_with_its_header():
    nor, j = fresh(12)
    for n in range(12):
        pay(j, n)
    j.set_header(SegmentHeader(b"\x24\x0a\xc4\x11\x22\x33", line="B13"))
    for n in range(12, 16):
        pay(j, n)
    want = [bytes(r.encode()) for r in j.read_from(1, 1000)]
    for max_bytes in (4096, 256):
        blocks = _raw_blocks(j, 1, max_bytes)
        assert [bytes(r.encode()) for f, rs, bad in blocks for r in rs] == want
        lines = [(f["line"], rs[0].seq > 24) for f, rs, bad in blocks]
        assert ("B12", False) in lines and ("B13", True) in lines and len(set(lines)) == 2  # header change at 25
        assert len(set([f["segno"] for f, rs, bad in blocks])) >= 4 and not any(bad for f, rs, bad in blocks)
    j.acknowledge(20)
    assert [r.seq for f, rs, bad in _raw_blocks(j, 1, 4096) for r in rs] == list(range(21, 33))


def case_read_raw_sends_a_damaged_record_and_header_as_damage():
    nor, j = fresh(8)
    for n in range(8):
        pay(j, n)
    first = j._order()[0]
    nor.mem[first * SS + 5] ^= 0x80  # the first segment's header CRC fails
    a = j.head * SS + HEADER_SIZE + 72
    nor.mem[a + 10] ^= 0x04  # inside record 13 (the second intent of the head)
    stored = bytes(nor.mem[a : a + 48])
    j2 = reboot(nor)
    blocks = _raw_blocks(j2, 1, 256)
    assert [r.seq for f, rs, bad in blocks for r in rs] == [s for s in range(1, 17) if s != 13]
    assert [b for f, rs, bad in blocks for off, b in bad] == [stored]
    assert blocks[0][0]["standin"] and blocks[0][0]["segno"] == 0 and not blocks[-1][0]["standin"]
