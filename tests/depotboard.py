"""A CPython board behind the board link's API, for the pull tests: the real firmware/app/service.py and
app.validator.Validator over a real tunion.flashjournal.FlashJournal on the NOR simulator (tests/sim/nor.py).

    b = SimBoard()
    b.pay(30); b.unresolved(); b.settle(seq)          # records written through the journal's own API
    b.service("status"); b.service("records", 1, 4096); b.service("ack", 40)   # as host_tools.link.Board does
    b.kill_at = ("records", 2, "before")             # the tool dies (Killed) at the 3rd records call
    b.reset_at = ("ack", 0, "after")                 # the board resets once the 1st ack ran, its answer lost

What is simulated is the link and the interpreter: every call goes through JSON both ways, answers
{"ok": False} raise DepotError as the link does, the board's flash and journal code are the firmware's own.
The end-to-end test through real mpremote against the virtual board uses host_tools.link instead.
"""
import json
import threading

from app import service
from app.errlog import ErrorLog
from app.validator import Validator
from host_tools.errors import DepotError
from sim.nor import NorFlash, PowerCut
from sim.rig import Rig
from tunion.flashjournal import FlashJournal
from tunion.record import KIND_COMPLETED, KIND_INTENT, KIND_SETTLED, KIND_UNRESOLVED, Record
from tunion.segment import SegmentHeader

BOARD_ID = "240ac4112233"  # the board ID in mpcases.journal_cases.header()


class Killed(BaseException):
    """The depot tool killed (SIGKILL, Ctrl-C): not an Exception, so nothing in the tool may swallow it."""


class _Clock:
    def __init__(self, rig):
        self.rig = rig
        self.valid = True

    def now(self):
        return self.rig.now()

    def set_time(self, secs):
        self.rig.secs = secs


class SimBoard:
    _one_service = threading.Lock()  # app.service is one module: one board's call at a time (threads in tests)
    def __init__(self, sectors=40, sector_size=1024, board_id=BOARD_ID):
        self.nor = NorFlash(sectors, sector_size)
        self.ss = sector_size
        self.board_id = board_id
        self.rig = Rig()
        self.calls = []  # (name, args) of every call that reached the board
        self.acks = []  # every upto the board applied
        self.written = {}  # seq -> the record's bytes, for every record appended (the ground truth)
        self.kill_at = None  # (call name, index among calls of that name, "before" | "after")
        self.reset_at = None  # likewise: the board resets (answer lost)
        self.on_ack = None  # callable(upto) run before an ack is applied: the test's invariant check
        self.cut_ack = None  # ("prog", n): a power cut inside the ack's first flash program
        self.counts = {}
        self.closed = []
        self.boot()

    # ---- the board ------------------------------------------------------------------------------------------
    def boot(self):
        """Power on: mount the journal from flash (nothing in RAM survives), attach the app."""
        hdr = SegmentHeader(bytes.fromhex(self.board_id), b"PSAM000001", b"\x00\x00\x00\x01\x23\x45", "B12", "10086", 7)
        self.j = FlashJournal(self.nor, hdr)
        self.j.prepare()
        self.rig.journal = self.j
        self.v = Validator(None, self.rig.psam, self.j, self.rig.config, _Clock(self.rig), log=ErrorLog())

    def _attach(self):
        # app.service is one module: the board a call goes to is the one attached (several boards in one test)
        service.attach(self.v, board="sim-nor", board_id=self.board_id, log=self.v.log)

    def _append(self, fn, rec):
        seq = fn(rec)
        self.written[seq] = bytes(rec.encode())
        return seq

    def pay(self, n=1, card=3105170000000000):
        for k in range(n):
            i = Record(KIND_INTENT, card_no=card + k, amount=200 + k % 7, balance=5000, counter=k,
                       ttc=len(self.written),
                       time=1796112000 + 60 * len(self.written), flags=1)
            self._append(self.j.append_intent, i)
            self._append(self.j.append_outcome, i.outcome(KIND_COMPLETED, balance=4800, tac=b"\x01\x02\x03\x04"))
        self.j.idle(4)

    def unresolved(self, card=3105179999000001):
        """A torn tap closed `unresolved`: its intent seq."""
        i = Record(KIND_INTENT, card_no=card, amount=300, balance=900, counter=9, ttc=777, time=1796112600)
        s = self._append(self.j.append_intent, i)
        self._append(self.j.append_outcome, i.outcome(KIND_UNRESOLVED))
        self.intent_of = getattr(self, "intent_of", {})
        self.intent_of[s] = i
        return s

    def settle(self, seq):
        i = self.intent_of[seq]
        return self._append(self.j.append_settlement, i.outcome(KIND_SETTLED, balance=600, tac=b"\x0a\x0b\x0c\x0d"))

    def sector_of(self, seq):
        for i in self.j._order():
            for off, rec in self.j._walk(i):
                if rec.seq == seq:
                    return i, off, rec.size
        raise AssertionError("no record %d on the board" % seq)

    def flip(self, seq, byte=10):
        """A flipped bit inside record `seq` (then a reboot, as a board would find it)."""
        i, off, n = self.sector_of(seq)
        self.nor.mem[i * self.ss + off + byte] ^= 0x04
        self.boot()

    def break_header(self, seq):
        """A flipped bit in the segment header of the segment holding `seq`."""
        i = self.sector_of(seq)[0]
        self.nor.mem[i * self.ss + 5] ^= 0x80
        self.boot()

    def wipe_segment(self, seq):
        """The sector holding `seq` reads erased (a sector lost under the journal): its records leave no bytes."""
        i = self.sector_of(seq)[0]
        lost = [r.seq for _, r in self.j._walk(i)]
        self.nor.mem[i * self.ss : (i + 1) * self.ss] = b"\xff" * self.ss
        self.boot()
        return lost

    def torn_intent(self, keep=7):
        """A power cut inside an intent's program: at the reboot the board zeroes it (a tombstone)."""
        skipped = self.j.next_seq  # the number the cut record had
        self.nor.cut_at = (self.nor.ops, ("prog", keep, 0x0F))
        i = Record(KIND_INTENT, card_no=3105170000999999, amount=200, balance=5000, ttc=4242, time=1796113000)
        try:
            self.j.append_intent(i)
            raise AssertionError("the cut should stop the write")
        except PowerCut:
            pass
        self.nor.cut_at = None
        self.boot()
        assert self.j.next_seq == skipped + 1
        return skipped

    def held(self):
        """The records the board still keeps unacknowledged: {seq: bytes}."""
        return {r.seq: bytes(r.encode()) for r in self.j.read_from(self.j.ack + 1, 10 ** 6)}

    # ---- the link's API -------------------------------------------------------------------------------------
    def _hook(self, name, when):
        k = self.counts.get(name, 0)
        if self.kill_at == (name, k, when):
            self.kill_at = None
            raise Killed("killed at %s #%d %s" % (name, k, when))
        if self.reset_at == (name, k, when):
            self.reset_at = None
            self.boot()
            raise DepotError("board stopped answering (it reset)")

    def service(self, name, *args):
        with SimBoard._one_service:
            return self._service(name, *args)

    def _service(self, name, *args):
        args = json.loads(json.dumps(list(args)))
        self._hook(name, "before")
        self._attach()
        self.calls.append((name, tuple(args)))
        if name == "ack" and self.on_ack is not None:
            self.on_ack(args[0])
        if name == "ack" and self.cut_ack is not None:
            self.nor.cut_at = (self.nor.ops, self.cut_ack)
            self.cut_ack = None
            try:
                getattr(service, name)(*args)
            except PowerCut:
                self.nor.cut_at = None
                self.boot()
                raise DepotError("board stopped answering (power cut)") from None
            raise AssertionError("the ack wrote no flash: the cut did not happen")
        r = json.loads(json.dumps(getattr(service, name)(*args)))
        if name == "ack":
            self.acks.append(args[0])
            self.j.idle(8)  # the app's loop resumes: freed segments are erased between taps
        self._hook(name, "after")
        self.counts[name] = self.counts.get(name, 0) + 1
        if not r.get("ok"):
            raise DepotError("%s: %s: %s" % (name, r.get("error"), r.get("detail")))
        return r

    def close(self, restart_app=True):
        self.closed.append(restart_app)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

