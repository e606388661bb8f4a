"""The raw flash journal against a model, over random sequences of taps, torn taps, acknowledgements, idle calls
and reboots (hypothesis); and a partition that held foreign data (the old vfs) before it became the journal."""
import random

from hypothesis import given, settings, strategies as st, HealthCheck

from tunion import outcome as O
from tunion.errors import JournalError
from tunion.flashjournal import FlashJournal
from tunion.journal import MAX_UNRESOLVED
from tunion.record import Record, KIND_COMPLETED, KIND_UNRESOLVED, KIND_SETTLED, FLAG_MAC2_BAD
from sim.nor import NorFlash
from mpcases.journal_cases import header, intent

SS = 512
SECTORS = 6  # 4 segments of 5 payments, one kept for settlements: full after 30 records

OPS = st.one_of(
    st.tuples(st.just("pay"), st.integers(1, 6)),
    st.tuples(st.just("intent"), st.just(0)),
    st.tuples(st.just("close"), st.sampled_from([KIND_COMPLETED, KIND_UNRESOLVED])),
    st.tuples(st.just("ack"), st.integers(0, 12)),
    st.tuples(st.just("idle"), st.integers(1, 3)),
    st.tuples(st.just("reboot"), st.booleans()),
    st.tuples(st.just("refuse"), st.sampled_from(O.REFUSALS)),
    st.tuples(st.just("torn"), st.sampled_from([KIND_UNRESOLVED, KIND_COMPLETED])),
    st.tuples(st.just("settle"), st.integers(0, 3)),
    st.tuples(st.just("drop"), st.integers(0, 3)),
)


class Model:
    def __init__(self):
        self.recs = {}
        self.next = 1
        self.open = None
        self.ack = 0
        self.refusals = {}
        self.listed = []  # (seq, rejected) of the unresolved list, oldest first

    def add(self, rec):
        self.recs[rec.seq] = bytes(rec.encode())
        self.next = rec.seq + 1

    def visible(self):
        return [s for s in sorted(self.recs) if s > self.ack or s == self.open]


def check(j, m):
    got = j.read_from(1, 10**6)
    assert [r.seq for r in got] == m.visible()
    for r in got:
        assert bytes(r.encode()) == m.recs[r.seq]
    assert j.next_seq == m.next
    assert (j.open_intent().seq if j.open_intent() is not None else None) == m.open
    assert j.refusals() == m.refusals
    assert [(e.seq, e.rejected) for e in j.unresolved()] == m.listed[-MAX_UNRESOLVED:]
    assert [f for f in j.faults if not f[0].startswith("unresolved")] == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=60))
def test_random_operations_match_the_model(ops):
    nor = NorFlash(SECTORS, SS)
    j = FlashJournal(nor, header())
    j.prepare()
    m = Model()
    n = 0
    for op, arg in ops:
        tap_erases = nor.erases
        if op in ("pay", "intent"):
            for _ in range(arg if op == "pay" else 1):
                n += 1
                r = intent(n)
                if m.open is not None or not j.has_room():
                    try:
                        j.append_intent(r)
                        assert False, "intent accepted with one open or no room"
                    except JournalError:
                        pass
                    if m.open is None:  # full: really full (every segment but part of the oldest unacknowledged)
                        j.prepare()  # (the depot's visit: erases allowed)
                        tap_erases = nor.erases
                        assert j.has_room() or len(m.visible()) >= 20
                    break
                j.append_intent(r)
                m.add(r)
                m.open = r.seq
                if op == "pay":
                    o = r.outcome(KIND_COMPLETED, tac=b"\x01\x02\x03\x04")
                    j.append_outcome(o)
                    m.add(o)
                    m.open = None
        elif op == "close" and m.open is not None:
            o = j.open_intent().outcome(arg)
            j.append_outcome(o)
            m.add(o)
            m.open = None
            if arg == KIND_UNRESOLVED:
                m.listed = (m.listed + [(o.ref, False)])[-MAX_UNRESOLVED:]
        elif op == "torn" and m.open is None and j.has_room():
            n += 1
            r = intent(n)
            j.append_intent(r)
            m.add(r)
            o = r.outcome(arg, FLAG_MAC2_BAD if arg == KIND_COMPLETED else 0)
            j.append_outcome(o)
            m.add(o)
            m.listed = (m.listed + [(r.seq, arg == KIND_COMPLETED)])[-MAX_UNRESOLVED:]
        elif op == "settle" and m.open is None:
            unknown = [e for e in m.listed if not e[1]]
            if unknown:
                seq = unknown[arg % len(unknown)][0]
                o = Record(KIND_SETTLED, ref=seq, balance=1, tac=b"\x01\x01\x01\x01")
                j.append_settlement(o)
                m.add(o)
                m.listed.remove((seq, False))
        elif op == "drop" and m.listed:
            e = m.listed[arg % len(m.listed)]
            j.drop_unresolved(e[0], "window" if e[1] else "expired")
            m.listed.remove(e)
        elif op == "ack":
            upto = min(m.next - 1, m.ack + arg)
            j.acknowledge(upto)
            m.ack = max(m.ack, upto)
        elif op == "idle":
            j.idle(arg)
        elif op == "reboot":
            j = FlashJournal(nor, header())
            if arg:
                j.prepare()
        elif op == "refuse":
            j.count_refusal(arg)
            m.refusals[arg] = m.refusals.get(arg, 0) + 1
        if op != "ack" and op != "idle" and op != "reboot":
            assert nor.erases == tap_erases, "erase during a tap"
        check(j, m)
    assert nor.conflicts == 0
    check(FlashJournal(nor, header()), m)


def test_foreign_data_in_the_partition_is_erased_before_use():
    rng = random.Random(4)
    img = bytes(rng.getrandbits(8) for _ in range(16 * 4096))
    nor = NorFlash(16, image=img)
    j = FlashJournal(nor, header())
    assert j.next_seq == 1 and j.read_from(1, 10) == [] and j.faults == []
    assert j.prepare() == 14  # every segment sector (the meta sectors were set up at mount)
    for n in range(100):
        r = intent(n)
        j.append_intent(r)
        j.append_outcome(r.outcome(KIND_COMPLETED))
    assert [r.seq for r in FlashJournal(nor, header()).read_from(1, 1000)] == list(range(1, 201))
    assert nor.conflicts == 0


def test_leftover_old_vfs_with_ff_headers_is_blank_checked():
    nor = NorFlash(8, SS)
    for s in range(2, 8):  # LittleFS-like blocks: an erased first 64 bytes, data further in
        nor.mem[s * SS + 200 : s * SS + 260] = b"\x00" * 60
    j = FlashJournal(nor, header())
    for n in range(25):  # no prepare(): the tap path must not program onto the old data
        r = intent(n)
        if not j.has_room():
            j.idle()
            continue
        j.append_intent(r)
        j.append_outcome(r.outcome(KIND_COMPLETED))
        j.idle()
    assert nor.conflicts == 0
