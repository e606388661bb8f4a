"""Tap-to-beep from the bytes on the wires of a virtual-board tap, per PN532 link and PSAM rate (model time).

    PYTHONPATH=.:firmware:tests .venv/bin/python bench/bench_tap.py [--json] [--no-mp]

1. The app boots on the virtual board (tests/vboard: the manifest's .mpy on the unix port, DEFAULT_HEAP) with
   the PN532 and PSAM simulators; one card is charged. Every byte the drivers write and read on the PN532 UART
   and on the PSAM's I/O line is logged at the simulators' UART stand-ins; the PN532 frames are split by command
   (InListPassiveTarget that found the card, each InDataExchange with its ACK) and the APDUs read out of them.
2. Under the MicroPython interpreter (WebAssembly, tools/mprun): the validator's CPU per tap (bench_purchase's
   measure: taps minus the simulators' replay) and the drivers' CPU and heap, replaying the recorded wire
   answers through a canned UART (no simulator work, answers at once) many times.
3. The model: PN532 link = the tap's frame bytes at 10 bits a byte (HSU) or, for I2C, the I2C driver's own bytes
   and status polls against the chip simulator (bench_pn532); radio, card and PSAM compute are bench_purchase's
   stated assumptions applied to the APDUs seen on the wire. The PSAM's share is drivers.psam_t0 on the T=0
   simulator's clock (bench_t0) for each ATR and card clock, with the PSAM's assumed work, less what the tap
   overlaps: 8070's work under the card's UPDATE CAPP DATA CACHE, and the two primed headers under INITIALIZE
   and DEBIT (each up to that command's radio + card time). CPU on the ESP32 = the interpreter's figure times
   the notes' factor, 22x (12-33x, shared/notes/board.md), except: the PN532 checksum loop runs as viper on the
   board (its interpreter time / VIPER_GAIN, notes: 20-50x), the T=0 pacing loop counts only where it overruns
   a character's 12 + N etu slot, and the primes' CPU runs while the card works. No ESP32 was measured.
"""
import json
import sys
import time

MICROPYTHON = sys.implementation.name == "micropython"
if not MICROPYTHON:
    import tempfile
    from pathlib import Path

    ROOT = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(ROOT), str(ROOT / "firmware"), str(ROOT / "tests"), str(ROOT / "bench")]

FACTOR, FACTOR_LO, FACTOR_HI = 22, 12, 33  # ESP32 / WebAssembly interpreter (shared/notes/board.md)
ACTIVATION_MS = 6.0  # assumed: REQA, anticollision, SELECT and RATS at 106 kbit/s inside InListPassiveTarget
PSAM_COMPUTE_MS = 15.0  # assumed, as bench_purchase: 12 ms for 8070, 3 ms for 8072
FLASH_MS = 1.2  # intent + outcome: two page programs (bench_purchase)
ATRS = (  # name, ATR, pps (bench_t0's)
    ("no PPS (no TA1, TC1=2)", None, False),  # sim.t0sam.ATR_TRANSPORT
    ("after PPS to D=4 (TA1=13)", bytes.fromhex("3B5413005053414D"), True),
    ("after PPS to D=12 (TA1=18)", bytes.fromhex("3B5418005053414D"), True),
)
CLOCKS = (3571200, 5000000)
# The transport PSAM with TC1 = 0: the same commands written back to back, to tell the pacing loop's CPU apart.
ATR_TRANSPORT_NO_GUARD = bytes.fromhex("3B6C0000") + b"TEST-PSAM-01"
PSAM_WORK_US = {0x70: 12000, 0x72: 3000}
VIPER_GAIN = 35  # viper over bytecode for a byte loop: 20-50x (shared/notes/board.md, viper DES rounds), middle  # PSAM_COMPUTE_MS by command, on the T=0 simulator's clock


# ---- 1. the virtual board's wires ----------------------------------------------------------------------------
def _log(dev, log):
    w, r = dev.write, dev.read

    def write(data, t_us):
        log.append(("w", bytes(data)))
        return w(data, t_us)

    def read(n, t_us):
        d = r(n, t_us)
        if d:
            log.append(("r", bytes(d)))
        return d

    dev.write, dev.read = write, read


def _frames(log):
    """[(cmd, bytes out, bytes in, data out, data in)] per host frame: the chip's ACK and answer go with it."""
    out = []
    for kind, data in log:
        if kind == "w":
            i = data.find(b"\x00\xff")
            cmd = data[i + 4] if i >= 0 and len(data) > i + 5 and data[i + 4] == 0xD4 else None
            cmd = data[i + 5] if cmd is not None else None
            out.append([cmd, len(data), 0, data, b""])
        elif out:
            out[-1][2] += len(data)
            out[-1][4] += data
    return out


def _apdu_frames(frames):
    """(len(apdu), len(answer), INS) of each InDataExchange (D4 40 Tg apdu / D5 41 status answer)."""
    res = []
    for cmd, o, i, dout, din in frames:
        if cmd != 0x40:
            continue
        k = dout.find(b"\xd4\x40")
        apdu = dout[k + 3:-2]
        j = din.rfind(b"\xd5\x41")
        ans = din[j + 3:-2]
        res.append((len(apdu), len(ans), apdu[1]))
    return res


def vboard_tap():
    from sim.card import SimCard
    from tools import manifest
    from tunion.config import DEFAULT
    from vboard import Board
    from vboard.chips import attach_pn532, attach_psam
    from vboard.virtual import DEFAULT_HEAP
    from mpremote.transport_serial import SerialTransport
    from datetime import datetime

    tmp = Path(tempfile.mkdtemp())
    cfg = tmp / "config.json"
    cfg.write_text(json.dumps(DEFAULT))
    files = list(manifest.board_files("esp32-generic")) + [(cfg, "/config.json")]
    b = Board(tmp / "board", files=files, rtc=datetime(2026, 12, 1, 8, 0, 0), heap=DEFAULT_HEAP)
    chip, sam = attach_pn532(b), attach_psam(b)
    psam_dev = [d for d in b.controller.uarts.values() if getattr(d, "sam", None) is sam][0]
    pn_log, sam_log = [], []
    fig = {"heap": DEFAULT_HEAP}
    t0 = time.monotonic()
    with b:
        _wait(lambda: chip.chip.commands.get(0x4A, 0) > 0)
        fig["boot_to_first_poll_s"] = time.monotonic() - t0
        _log(chip, pn_log)
        _log(psam_dev, sam_log)
        card = SimCard(balance=5000)
        t1 = time.monotonic()
        b.place_card(card)
        try:
            _wait(lambda: card.balance == 4800)
        except RuntimeError:
            raise RuntimeError("no charge; the board said:\n" + b.output[-2000:].decode(errors="replace"))
        fig["placed_to_charged_s"] = time.monotonic() - t1
        fig["power_on_to_first_charge_s"] = time.monotonic() - t0
        b.remove_card()
        k = chip.chip.commands.get(0x4A, 0)
        _wait(lambda: chip.chip.commands.get(0x4A, 0) > k + 3)  # back to polling, between taps
        pn, ps = list(pn_log), list(sam_log)  # the PSAM's 8072 (MAC2) comes after the card's DEBIT
        t = SerialTransport(b.port, baudrate=115200, timeout=2)
        try:
            for attempt in range(3):
                try:
                    t.enter_raw_repl(soft_reset=False)
                    break
                except Exception:
                    if attempt == 2:
                        raise
            t.exec("import gc; gc.collect()")
            fig["heap_alloc"], fig["heap_free"] = t.eval("(gc.mem_alloc(), gc.mem_free())")
        finally:
            t.close()
    # The whole log, taken after the tap: at the moment the card was charged the DEBIT's answer may still be on
    # the wire (the 8072 header goes out before it is read). Frames after the last InDataExchange are left out.
    frames = _frames(pn)
    first = next(k for k, f in enumerate(frames) if f[0] == 0x40)
    found = max(k for k in range(first) if frames[k][0] == 0x4A)
    last = max(k for k, f in enumerate(frames) if f[0] == 0x40)
    tap = frames[found:last + 1]
    by = {}
    for cmd, o, i, dout, din in tap:
        e = by.setdefault("%02X" % cmd if cmd is not None else "raw", [0, 0, 0])
        e[0] += 1
        e[1] += o
        e[2] += i
    # The tap's PSAM traffic: from its 8070 header (CLA 80, INS 70; the driver may send it a byte at a time)
    ws = [j for j, (k, d) in enumerate(ps) if k == "w"]
    wb = b"".join(ps[j][1] for j in ws)
    at = wb.rfind(b"\x80\x70\x00\x00")
    if at >= 0:
        acc = 0
        for j in ws:
            if acc >= at:
                ps = ps[j:]
                break
            acc += len(ps[j][1])
    sw = sum(len(d) for k, d in ps if k == "w")
    sr = sum(len(d) for k, d in ps if k == "r")
    fig.update({"pn532_by_command": by, "pn532_out": sum(f[1] for f in tap), "pn532_in": sum(f[2] for f in tap),
                "detect_out": tap[0][1], "detect_in": tap[0][2], "apdus": _apdu_frames(tap),
                "psam_driver_bytes": sw, "psam_line_chars": sr, "psam_card_bytes": sr - sw,
                "pn532_wire": [(k, d.hex()) for k, d in pn][-4 * len(tap) - 80:],
                "psam_wire": [(k, d.hex()) for k, d in ps]})
    return fig


def _wait(cond, timeout=60.0):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise RuntimeError("the virtual board did not get there")
        time.sleep(0.01)


# ---- 2. on the interpreter: replay the recorded answers through a canned UART --------------------------------
class Canned:
    """A UART whose answers are recorded: each write makes the next recorded answer readable at once. What its
    own methods allocate is counted in `alloc` (a board's UART driver fills the caller's buffer in C)."""

    def __init__(self, answers):
        self.answers = answers
        self.k = 0
        self.rx = b""
        self.pos = 0
        self.alloc = 0
        self.count = False  # gc.mem_alloc() walks the heap: only while the heap is measured
        self.calls = 0

    def rewind(self):
        self.k = 0
        self.rx = b""
        self.pos = 0

    def init(self, *a, **kw):
        pass

    def write(self, buf):
        self.calls += 1
        m = _mem() if self.count else 0
        if self.k < len(self.answers):
            self.rx = self.rx[self.pos:] + self.answers[self.k]
            self.pos = 0
        self.k += 1
        self.alloc += _mem() - m if self.count else 0
        return len(buf)

    def any(self):
        self.calls += 1
        return len(self.rx) - self.pos

    def read(self, n=None):
        self.calls += 1
        m = _mem() if self.count else 0
        left = len(self.rx) - self.pos
        if not left:
            return None
        n = left if n is None else min(n, left)
        d = self.rx[self.pos:self.pos + n]
        self.pos += n
        self.alloc += _mem() - m if self.count else 0
        return d

    def readinto(self, buf, n=None):
        self.calls += 1
        m = _mem() if self.count else 0
        left = len(self.rx) - self.pos
        n = len(buf) if n is None else n
        n = min(n, left)
        if n <= 0:
            return None
        buf[:n] = self.rx[self.pos:self.pos + n]
        self.pos += n
        self.alloc += _mem() - m if self.count else 0
        return n


class Recorder:
    """Around a simulator's UART: the bytes read after each write (what Canned replays)."""

    def __init__(self, uart):
        self.u = uart
        self.answers = []
        self.on = False

    def __getattr__(self, name):
        return getattr(self.u, name)

    def write(self, buf):
        if self.on:
            self.answers.append(b"")
        return self.u.write(buf)

    def read(self, n=None):
        d = self.u.read() if n is None else self.u.read(n)
        if self.on and d and self.answers:
            self.answers[-1] += d
        return d

    def readinto(self, buf, n=None):
        got = self.u.readinto(buf) if n is None else self.u.readinto(buf, n)
        if self.on and got and self.answers:
            self.answers[-1] += bytes(buf[:got])
        return got


class FakeClock:
    """ticks_us / sleep_us that never wait: the T=0 driver's guard times cost no wall time in the replay."""

    def __init__(self):
        self.t = 0

    def ticks_us(self):
        self.t += 1
        return self.t & 0x3FFFFFFF

    def sleep_us(self, us):
        self.t += us


def _now_us():
    return time.ticks_us() if MICROPYTHON else time.perf_counter_ns() // 1000


def _diff_us(a, b):
    return time.ticks_diff(a, b) if MICROPYTHON else a - b


def _now_ms():
    return time.ticks_ms() if MICROPYTHON else int(time.monotonic() * 1000)


def _mem():
    import gc

    return gc.mem_alloc() if MICROPYTHON else 0


def _call_ms(canned, n=5000):
    """What one call of the canned UART costs (its any(): the Python call the board's C UART does not make)."""
    t0 = _now_ms()
    for _ in range(n):
        canned.any()
    return (_now_ms() - t0) / n


def drivers_replay(n=30):
    """Driver CPU (ms per tap) and heap (bytes per tap) for the PN532 exchanges and the two PSAM commands."""
    import gc
    from drivers.pn532 import Pn532CardPort
    from drivers.pn532_uart import Pn532Uart
    from sim.card import make_card
    from sim.pn532chip import Pn532Chip, SimClock
    from sim.pn532wire import SimUart
    from sim.rig import Rig
    from sim.t0sam import ATR_TRANSPORT

    clock = SimClock()
    chip = Pn532Chip(clock, card=make_card(balance=5000))
    rec = Recorder(SimUart(chip))
    pn = Pn532Uart(rec, clock=clock).boot(921600)
    port = Pn532CardPort(pn)

    class Log:
        def __init__(self):
            self.apdus = []

        def transceive(self, apdu):
            self.apdus.append(bytes(apdu))
            return port.transceive(apdu)

    rec.on = True
    assert port.detect()
    lg = Log()
    Rig().tap(lg)
    pn_answers = rec.answers
    canned = Canned(pn_answers)
    pn._uart = canned  # the same driver, its UART swapped for the recording
    port2 = port

    def pn_tap():
        canned.rewind()
        port2.detect()
        for a in lg.apdus:
            port2.transceive(a)

    pn_tap()
    gc.collect()
    canned.count, canned.alloc = True, 0
    m0 = _mem()
    pn_tap()
    pn_heap = _mem() - m0 - canned.alloc
    canned.count = False
    canned.calls = 0
    t0 = _now_ms()
    for _ in range(n):
        pn_tap()
    pn_ms = (_now_ms() - t0) / n - canned.calls / n * _call_ms(canned)
    sums = _checksum_work(pn_tap)
    ack_ms = _ack_work(pn) * (1 + len(lg.apdus))  # one ACK per command: InListPassiveTarget and the APDUs
    paced = _sam_replay(ATR_TRANSPORT, n)
    bulk = _sam_replay(ATR_TRANSPORT_NO_GUARD, n)
    return {"pn532_cpu_ms": pn_ms, "pn532_ack_ms": ack_ms, "pn532_checksum_ms": sums[0], "pn532_checksum_bytes": sums[1],
            "pn532_checksum_native": sums[2], "pn532_heap": pn_heap, "psam_cpu_ms": paced[0],
            "psam_prime_cpu_ms": paced[1], "psam_heap": paced[2], "psam_bulk_cpu_ms": bulk[0],
            "psam_bulk_prime_cpu_ms": bulk[1], "psam_bulk_heap": bulk[2], "psam_chars_out": paced[3] - 10,  # less the two primed headers
            "apdus": len(lg.apdus), "pn532_uart_calls": canned.calls // n, "psam_uart_calls": paced[4]}


def _ack_work(pn, n=2000):
    """What the PN532 driver spends on one ACK (ms): reading and checking it, from a canned UART that holds one
    at once, less the canned UART's calls. In a tap this runs after the command frame went out, while the PN532
    sends the command to the card and the card works (command(): the ACK, then `during`, then the wait for the
    answer), so the model counts it in the card's time, as the primes."""
    from drivers.pn532 import ACK

    canned = Canned([ACK] * n)
    real = pn._uart
    pn._uart = canned
    try:
        canned.calls = 0
        t0 = _now_ms()
        for _ in range(n):
            canned.write(b"")
            pn._read_raw(pn._deadline(30000), True)
        ms = _now_ms() - t0
        calls = canned.calls
    finally:
        pn._uart = real
    return (ms - calls * _call_ms(canned)) / n


def _checksum_work(pn_tap, n=200):
    """The PN532 driver's checksum loops in one tap: (ms the byte loop of drivers/bytesum.py takes here, bytes
    summed, whether this interpreter ran the viper version). The board runs drivers/_sum_viper.py instead; the
    model scales this loop's share by VIPER_GAIN, not by FACTOR."""
    from drivers import pn532, bytesum

    seen = [0, 0]
    f = pn532.byte_sum

    def counting(buf, a, b):
        seen[0] += 1
        seen[1] += b - a
        return f(buf, a, b)

    pn532.byte_sum = counting
    try:
        pn_tap()
    finally:
        pn532.byte_sum = f
    calls, nbytes = seen
    buf = bytearray(256)
    t0 = _now_ms()
    for _ in range(n):
        f(buf, 0, 250)
    per_byte = (_now_ms() - t0) / n / 250.0
    return nbytes * per_byte, nbytes, bytesum.NATIVE


def _sam_replay(atr, n):
    """The tap's PSAM work on a PSAM with this ATR at 5 MHz: 8070's header primed, 8070 begun and ended, 8072's
    header primed, 8072; recorded after the open, then replayed n times: (CPU ms without the primes, CPU ms of
    the two primes, which run while the card works on INITIALIZE and DEBIT, heap bytes, bytes the driver sent,
    canned UART calls) per tap."""
    import gc
    from drivers.psam_t0 import T0Psam
    from sim.t0sam import T0Sam
    from sim import keys
    from tunion import crypto
    from tunion.psam import Psam

    sam = T0Sam(atr=atr)
    srec = Recorder(sam.uart)
    sport = T0Psam(srec, sam.pwm, sam.rst, sam.detect, clock_hz=5000000, clock=sam.clock, pps=False)
    psam = Psam(sport).open()
    sn8 = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    srec.on = True
    sent = sport.sent
    canned = []
    primes = [0, 0]  # us, canned UART calls

    def prime(fn):
        if not canned:
            return fn()
        c0, t0 = canned[0].calls, _now_us()
        fn()
        primes[0] += _diff_us(_now_us(), t0)
        primes[1] += canned[0].calls - c0

    def sam_tap():
        prime(psam.prime_purchase)
        psam.begin_purchase(b"\x11\x22\x33\x44", 7, 200, 0x09, b"\x20\x26\x12\x01\x08\x00\x00",
                            keys.KEY_VERSION, 0, sn8, keys.TEST_ISSUER)
        r = psam.end_purchase()
        prime(psam.prime_credit)
        return r

    ttc, mac1 = sam_tap()
    ses = crypto.session_key(crypto.card_key(keys.MPK, keys.TEST_ISSUER, sn8), b"\x11\x22\x33\x44", b"\x00\x07",
                             ttc.to_bytes(4, "big"))
    mac2 = crypto.mac2(ses, (200).to_bytes(4, "big"))
    assert psam.credit(mac2)
    sent = sport.sent - sent
    s_canned = Canned(srec.answers)
    fake = FakeClock()
    sport.uart, sport._ticks, sport._sleep = s_canned, fake.ticks_us, fake.sleep_us

    def replay():
        s_canned.rewind()
        sam_tap()
        psam.credit(mac2)

    client_ms = _sam_client_work(ttc, mac1, mac2, sn8, n)
    replay()
    gc.collect()
    s_canned.count, s_canned.alloc = True, 0
    m0 = _mem()
    replay()
    heap = _mem() - m0 - s_canned.alloc
    s_canned.count = False
    s_canned.calls = 0
    canned.append(s_canned)
    t0 = _now_ms()
    for _ in range(n):
        replay()
    call = _call_ms(s_canned)
    ms = (_now_ms() - t0) / n - s_canned.calls / n * call
    prime_ms = max(0.0, (primes[0] / 1000.0 - primes[1] * call) / n)
    return max(0.0, ms - prime_ms - client_ms), prime_ms, heap, sent, s_canned.calls // n


class _ClientOnly:
    """A SAM port that answers at once, for the PSAM client's own work (tunion/psam.py): the core replay counts
    that already, so the T=0 figure leaves it out."""

    def __init__(self, a70):
        self.a70 = a70

    def prime(self, hdr):
        pass

    def start(self, apdu):
        pass

    def finish(self):
        return self.a70

    def transceive(self, apdu):
        return b"\x90\x00"


def _sam_client_work(ttc, mac1, mac2, sn8, n):
    from sim import keys
    from tunion.psam import Psam

    psam = Psam(_ClientOnly(ttc.to_bytes(4, "big") + bytes(mac1) + b"\x90\x00"))
    t0 = _now_ms()
    for _ in range(n):  # the primes are timed apart (in the card's time), as in _sam_replay
        psam.begin_purchase(b"\x11\x22\x33\x44", 7, 200, 0x09, b"\x20\x26\x12\x01\x08\x00\x00",
                            keys.KEY_VERSION, 0, sn8, keys.TEST_ISSUER)
        psam.end_purchase()
        psam.credit(mac2)
    return (_now_ms() - t0) / n


class _Rec:
    """A port that records its answers (card or SAM), for _Replay."""

    def __init__(self, port):
        self.port = port
        self.answers = []

    def transceive(self, apdu):
        r = self.port.transceive(apdu)
        self.answers.append(bytes(r))
        return r


class _Replay:
    """A port that gives the recorded answers back in order, at once; on transceive_during it runs the job as the
    PN532 port does (after the ACK, before the answer), and counts it."""

    def __init__(self, answers):
        self.answers = answers
        self.k = 0
        self.calls = 0
        self.jobs = 0

    def transceive(self, apdu):
        self.calls += 1
        r = self.answers[self.k]
        self.k += 1
        return r

    def transceive_during(self, apdu, fn):
        if fn is not None:
            fn()
            self.jobs += 1
        return self.transceive(apdu)


def _denylist_config():
    """The rig's configuration with bench_rules's 50,000-entry denylist installed on this interpreter's
    filesystem (none of the bench's cards is on it): every tap searches it, as on a bus."""
    import bench_rules
    from sim.rig import test_config
    from tunion.denylist import Denylist

    path = bench_rules.workdir() + "/bench_tap_denylist.bin"
    bench_rules.build(path)
    cfg = test_config()
    cfg.denylist = Denylist(path)
    return cfg


def _board_journal():
    """The board's journal code (tunion.flashjournal, on the raw partition) over sim.nor.BareFlash: plain
    memory, so the journal's own Python is timed and a flash simulator's checks are not (the page programs are
    the model's FLASH_MS)."""
    from sim import keys
    from sim.nor import BareFlash
    from tunion.flashjournal import FlashJournal
    from tunion.segment import SegmentHeader

    hdr = SegmentHeader(b"\x24\x0a\xc4\x11\x22\x33", keys.TEST_PSAM_SERIAL, keys.TEST_TERMINAL, "B12", "10086", 7)
    j = FlashJournal(BareFlash(16), hdr)
    j.prepare()
    return j


def core_replay(n=50, cfg=None):
    """The validator's CPU per tap (ms): n taps of n cards, their card and PSAM answers recorded, then the same n
    taps on a fresh rig (the same journal history and clock; the board's flash journal, _board_journal) with every answer given back at once, less the
    replay ports' own calls: (serial ms, ms of the jobs run while the card works: tunion/meanwhile.py, EF15 from
    the SELECT answer during READ EF17, the denylist search during READ RECORD EF1E and the date during
    INITIALIZE; the PSAM primes are no-ops here, the T=0 replay times them). (bench_purchase.measure subtracts a replay
    of the simulators instead: a difference of two ~3 ms figures, too noisy under load for this model.)"""
    import gc
    from sim.card import make_card
    from sim.rig import Rig
    from sim import keys

    rig = Rig(journal=_board_journal(), config=cfg)
    sam = _Rec(rig.softsam)
    rig.psam.port = sam
    cards = [_Rec(make_card(card_no=keys.TEST_CARD_NO + i, balance=1000000)) for i in range(n + 1)]
    for c in [cards[n]] + cards[:n]:  # a warm-up tap, then the n
        if rig.tap(c).status != "PAID":
            raise RuntimeError("benchmark tap not paid")
    rig2 = Rig(journal=_board_journal(), config=cfg)
    sam2 = _Replay(sam.answers)
    rig2.psam.port = sam2
    ports = [_Replay(c.answers) for c in cards]
    rig2.tap(ports[n])
    gc.collect()
    t0 = _now_us()
    for i in range(n):
        r = rig2.tap(ports[i])
        if r.status != "PAID":
            raise RuntimeError("replayed tap not paid: %r" % (r,))
    us = _diff_us(_now_us(), t0)
    calls = sam2.calls + sum(p.calls for p in ports[:n])
    jobs = sum(p.jobs for p in ports[:n])
    want = 5 if rig2.config.denylist is not None else 4  # SELECT's, (the denylist,) INITIALIZE's, DC's, DEBIT's
    if jobs != want * n:
        raise RuntimeError("the taps ran %d jobs while the card worked, not %d a tap" % (jobs, want))
    probe = _Replay([b"\x90\x00"] * 5000)
    t1 = _now_us()
    for _ in range(5000):
        probe.transceive(b"")
    per_call = _diff_us(_now_us(), t1) / 5000.0
    jobs_us = _jobs_us(rig2, [c.answers for c in cards[:n]], 10)  # alone: the clock ticks in ms here
    during = sum(jobs_us.values()) * n
    return (us - during - calls * per_call) / n / 1000.0, dict((j, jobs_us[j] / 1000.0) for j in jobs_us)


def _jobs_us(rig, taps, rounds):
    """What the tap's jobs in the card's time take (us a tap each), timed alone over many runs for the cards whose
    recorded answers (PPSE, SELECT, EF17, EF1E, INITIALIZE, ...) these are: {"select": EF15 from the SELECT answer
    (SelectAhead, READ EF17's time), "denylist": the search (DenylistAhead, READ RECORD EF1E's), "initialize":
    the date and the cache record (PurchaseAhead; its prime is the T=0 replay's), "intent": the intent record
    (UPDATE CAPP DATA CACHE's), "outcome": the outcome record (DEBIT's)}."""
    from tunion.apdu import data
    from tunion.cardfiles import Ef17, InitAnswer
    from tunion.meanwhile import SelectAhead, DenylistAhead, PurchaseAhead, CacheRecord, Ahead
    from tunion.purchase import _intent_record
    from tunion.record import KIND_COMPLETED

    dl = rig.config.denylist
    k = float(rounds * len(taps))
    out = {}
    t0 = _now_us()
    firsts = []
    for _ in range(rounds):
        for t in taps:
            first = SelectAhead(data(t[1]))
            first()
            firsts.append(first)
    out["select"] = _diff_us(_now_us(), t0) / k
    out["denylist"] = 0.0
    if dl is not None:
        t0 = _now_us()
        for first in firsts:
            DenylistAhead(dl, first.ef15.card_no)()
        out["denylist"] = _diff_us(_now_us(), t0) / k
    t0 = _now_us()
    for _ in firsts:
        PurchaseAhead(rig.psam, rig.secs, CacheRecord(rig.psam, rig.config, 200))()
    out["initialize"] = _diff_us(_now_us(), t0) / k
    facts = [(first.ef15, Ef17.decode(data(t[2])), InitAnswer.decode(data(t[4]))) for first, t in zip(firsts, taps)]
    intents = []
    t0 = _now_us()
    for _ in range(rounds):
        for ef15, ef17, init in facts:
            job = Ahead(_intent_record, (0, ef15.card_no, ef15, ef17, init, 200, rig.secs))
            job()
            intents.append(job.value)
    out["intent"] = _diff_us(_now_us(), t0) / k
    t0 = _now_us()
    for i in intents:
        Ahead(i.outcome, (KIND_COMPLETED, 0, 4800, None))()
    out["outcome"] = _diff_us(_now_us(), t0) / k
    return out


def interp(runs=5):
    """The interpreter's figures; CPU as the least of `runs` runs (the machine is shared: other work only ever
    adds time), each a replay of recorded answers (no simulator work inside the timing)."""
    import bench_purchase

    core = bench_purchase.measure(50)  # the heap per tap; its CPU figure is the noisy subtraction
    best = {"core_heap_max": core["heap_bytes_max"], "core_heap_median": core["heap_bytes_median"],
            "core_cpu_ms": None, "core_during_ms": None, "drivers": None}
    cfg = _denylist_config()
    for _ in range(runs):
        c, during = core_replay(200, cfg)
        if best["core_cpu_ms"] is None or c < best["core_cpu_ms"]:
            best["core_cpu_ms"] = c
        if best["core_during_ms"] is None:
            best["core_during_ms"] = during
        for j in during:
            best["core_during_ms"][j] = min(best["core_during_ms"][j], during[j])
        d = drivers_replay(100)  # the interpreter's clock ticks in ms: long runs
        if best["drivers"] is None:
            best["drivers"] = d
        else:
            for k in ("pn532_cpu_ms", "pn532_ack_ms", "psam_cpu_ms", "psam_bulk_cpu_ms", "pn532_checksum_ms", "psam_prime_cpu_ms",
                      "psam_bulk_prime_cpu_ms"):
                best["drivers"][k] = min(best["drivers"][k], d[k])
    return best


# ---- 3. the model --------------------------------------------------------------------------------------------
def card_ms(v, ins):
    """What the card's command `ins` takes that PSAM work can overlap: its radio, the card's work and the PN532's
    turnaround (bench_purchase's assumptions; its UART bytes are left out, so the overlap is the smaller).
    UPDATE CAPP (DC): 8070's work; INITIALIZE (50) and DEBIT (54): 8070's and 8072's primed headers."""
    from bench_purchase import card_link_ms

    _, rf, card = card_link_ms([f for f in v["apdus"] if f[2] == ins], 921600)
    return rf + card


def cpu_ms(mp, factor, paced, baud, extra_etu=2):
    """The ESP32's CPU for one tap at `factor` x the interpreter. On a PSAM with TC1 (paced), the T=0 driver's
    per-character work (the interpreter's paced replay minus the back-to-back one, per character) runs inside each
    character's 12 + N etu slot while the UART sends the previous one: only what exceeds the slot counts."""
    d = mp["drivers"]
    sums = d["pn532_checksum_ms"] if not d["pn532_checksum_native"] else 0.0  # viper on the board: VIPER_GAIN
    # The ACKs are read while the card works (in_card_ms): not on the path.
    base = (mp["core_cpu_ms"] + d["pn532_cpu_ms"] - d["pn532_ack_ms"] - sums + d["psam_bulk_cpu_ms"]) * factor
    base += sums * factor / VIPER_GAIN
    if not paced:
        return base
    chars = d["psam_chars_out"]
    per_char = max(0.0, d["psam_cpu_ms"] - d["psam_bulk_cpu_ms"]) / chars * factor
    slot = (12 + extra_etu) * 1000.0 / baud
    return base + chars * max(0.0, per_char - slot)


def in_card_ms(mp, factor):
    """The ESP32's CPU that runs while the card works, at `factor`: (the ACKs, the core's jobs: the denylist search
    during READ EF17 and the rest of tunion/meanwhile.py's jobs, the two PSAM primes during INITIALIZE and DEBIT)."""
    d = mp["drivers"]
    return d["pn532_ack_ms"] * factor, sum(mp["core_during_ms"].values()) * factor, d["psam_prime_cpu_ms"] * factor


def model(v, mp, i2c_link_ms, psam_rows):
    from bench_purchase import card_link_ms

    frames = v["apdus"]
    _, rf, card = card_link_ms(frames, 921600)  # radio and card compute of the APDUs seen on the wire
    rows = []
    links = (("HSU 115200", (v["pn532_out"] + v["pn532_in"]) * 10 * 1000.0 / 115200),
             ("HSU 921600", (v["pn532_out"] + v["pn532_in"]) * 10 * 1000.0 / 921600),
             ("I2C 400 kHz", i2c_link_ms))
    for lname, link in links:
        for pr in psam_rows:
            fixed = link + ACTIVATION_MS + rf + card + pr["path_ms"] + FLASH_MS
            row = {"link": lname, "psam": pr["name"], "clock_hz": pr["hz"], "pn532_link_ms": link,
                   "activation_ms": ACTIVATION_MS, "radio_ms": rf, "card_ms": card, "psam_line_ms": pr["line_ms"],
                   "psam_compute_ms": PSAM_COMPUTE_MS, "psam_overlap_ms": pr["overlap_ms"],
                   "psam_path_ms": pr["path_ms"], "flash_ms": FLASH_MS, "fixed_ms": fixed}
            if mp is not None:
                c = {f: cpu_ms(mp, f, pr["paced"], pr["baud"]) for f in (FACTOR, FACTOR_LO, FACTOR_HI)}
                row.update({"cpu_ms": c[FACTOR], "total_ms": fixed + c[FACTOR],
                            "total_lo_ms": fixed + c[FACTOR_LO], "total_hi_ms": fixed + c[FACTOR_HI]})
            rows.append(row)
    return rows


def psam_rows(busy_ms, windows_ms):
    """Per ATR and card clock: the line alone (bench_t0), and the PSAM's share of the tap's critical path: line
    plus its work (PSAM_WORK_US) less what UPDATE CAPP (busy_ms) overlaps after 8070 was sent and what of the two
    primed headers fits INITIALIZE's and DEBIT's time (windows_ms)."""
    import bench_t0
    from sim.t0sam import ATR_TRANSPORT

    rows = []
    for name, atr, pps in ATRS:
        atr = atr or ATR_TRANSPORT
        for hz in CLOCKS:
            r = bench_t0.run(atr, hz, pps)
            serial = bench_t0.run(atr, hz, pps, PSAM_WORK_US)["both"]
            path = bench_t0.run(atr, hz, pps, PSAM_WORK_US, int(busy_ms * 1000),
                                tuple(int(w * 1000) for w in windows_ms))["both"]
            rows.append({"name": "%s, %.2f MHz, %d baud" % (name, hz / 1e6, r["baud"]), "hz": hz, "baud": r["baud"],
                         "line_ms": r["both"], "out": r["out"], "in": r["in"], "paced": atr == ATR_TRANSPORT,
                         "serial_ms": serial, "path_ms": path, "overlap_ms": serial - path})
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "--interp" in argv:  # under MicroPython
        print("RESULT " + json.dumps(interp()))
        return 0
    v = vboard_tap()
    mp = None
    if "--no-mp" not in argv:
        from tools.mprun import run_script

        for line in run_script(__file__, ["--interp"]).splitlines():
            if line.startswith("RESULT "):
                mp = json.loads(line[7:])
    import bench_pn532

    i2c = bench_pn532.one_tap("i2c")["link_ms"]
    dc_ms = card_ms(v, 0xDC)
    windows = (card_ms(v, 0x50), card_ms(v, 0x54))
    prs = psam_rows(dc_ms, windows)
    rows = model(v, mp, i2c, prs)
    res = {"vboard": v, "interp": mp, "update_capp_ms": dc_ms, "prime_windows_ms": windows, "psam": prs,
           "model": rows}
    if "--json" in argv:
        print(json.dumps(res, indent=1))
        return 0
    print("virtual-board tap (%s heap): PN532 %d bytes out, %d in over %d frames (%s); %d APDUs" % (
        v["heap"], v["pn532_out"], v["pn532_in"], sum(e[0] for e in v["pn532_by_command"].values()),
        ", ".join("%s x%d %d/%d B" % (k, e[0], e[1], e[2]) for k, e in sorted(v["pn532_by_command"].items())),
        len(v["apdus"])))
    print("  PSAM line: %d characters (%d from the driver, %d from the PSAM: procedure bytes, GET RESPONSE, SWs)"
          % (v["psam_line_chars"], v["psam_driver_bytes"], v["psam_card_bytes"]))
    print("  boot to first poll %.2f s, card placed to charged %.2f s, power-on to first charge %.2f s (fast clock)"
          % (v["boot_to_first_poll_s"], v["placed_to_charged_s"], v["power_on_to_first_charge_s"]))
    print("  heap after boot and the tap (64-bit port): %d allocated, %d free" % (v["heap_alloc"], v["heap_free"]))
    for r in prs:
        print("  bench_t0 %-48s 8070+8072 line %5.1f ms, %d/%d bytes; with the PSAM's 15 ms of work %5.1f ms, %4.1f"
              " of it under the card's UPDATE CAPP (%.1f ms) and the headers under INITIALIZE and DEBIT (%.1f, %.1f"
              " ms): %5.1f on the tap's path" % (r["name"], r["line_ms"], r["out"], r["in"], r["serial_ms"],
                                                 r["overlap_ms"], dc_ms, windows[0], windows[1], r["path_ms"]))
    if mp:
        d = mp["drivers"]
        print("interpreter (WebAssembly): validator %.2f ms on the path and %.2f ms while the card works (EF15 from"
              " the SELECT answer, the 50,000-entry denylist's search, the date, the cache, intent and outcome"
              " records: docs/design.md \"Work while the card works\"), PN532 driver %.2f ms"
              " (%.2f of it the ACKs, read while the card works; %.2f the checksum loop over %d bytes, viper on the"
              " board: /%d), T=0 driver %.2f ms per tap (%.2f ms written back to back; the rest is the TC1 pacing"
              " loop, inside the characters' slots) and %.2f ms priming the two headers while the card works" % (
                  mp["core_cpu_ms"], sum(mp["core_during_ms"].values()), d["pn532_cpu_ms"], d["pn532_ack_ms"],
                  d["pn532_checksum_ms"], d["pn532_checksum_bytes"], VIPER_GAIN, d["psam_cpu_ms"],
                  d["psam_bulk_cpu_ms"], d["psam_prime_cpu_ms"]))
        acks, jobs, primes = in_card_ms(mp, FACTOR_HI)
        print("  in the card's time at %dx: the ACKs %.1f ms over 8 commands, the jobs %.1f ms, the primes %.1f ms;"
              " each command's against its time:" % (FACTOR_HI, acks, jobs, primes))
        one_ack = acks / 8
        per = mp["core_during_ms"]
        prime = primes / 2
        for name, work, window in (("READ EF17: EF15 from the SELECT answer", per["select"], card_ms(v, 0xB0)),
                                   ("READ RECORD EF1E: the denylist search", per["denylist"], card_ms(v, 0xB2)),
                                   ("INITIALIZE: date, cache record, 8070's header", per["initialize"], windows[0]),
                                   ("UPDATE CAPP: the intent record", per["intent"], dc_ms),
                                   ("DEBIT: the outcome record, 8072's header", per["outcome"], windows[1])):
            w = work * FACTOR_HI + one_ack + (prime if name[:4] in ("INIT", "DEBI") else 0.0)
            print("    %-46s %4.1f ms with its ACK, of %4.1f ms: %s" % (name, w, window,
                                                                      "fits" if w <= window else "DOES NOT FIT"))
        r0 = [r for r in rows if r["link"] == "HSU 921600"]
        for r in (r0[1], r0[-1]):
            print("  ESP32 CPU at %dx for %s: %.0f ms (%.0f-%.0f over %d-%dx)" % (
                FACTOR, r["psam"], r["cpu_ms"], r["total_lo_ms"] - r["fixed_ms"], r["total_hi_ms"] - r["fixed_ms"],
                FACTOR_LO, FACTOR_HI))
        print("heap per tap (32-bit interpreter): core %d max (%d median; target <= 8192), PN532 driver %d, T=0"
              " driver %d: whole tap %d" % (mp["core_heap_max"], mp["core_heap_median"], d["pn532_heap"],
                                           d["psam_heap"], mp["core_heap_max"] + d["pn532_heap"] + d["psam_heap"]))
    print("%-12s %-50s %6s %5s %5s %5s %6s %5s %6s %7s" % ("PN532", "PSAM", "link", "radio", "card", "PSAM",
                                                          "+flash", "CPU", "total", "range"))
    for r in rows:
        print("%-12s %-50s %6.1f %5.1f %5.1f %5.1f %6.1f %5s %6s %7s" % (
            r["link"], r["psam"], r["pn532_link_ms"], r["radio_ms"] + r["activation_ms"], r["card_ms"],
            r["psam_path_ms"], r["flash_ms"],
            "%.0f" % r["cpu_ms"] if "cpu_ms" in r else "-", "%.0f" % r["total_ms"] if "total_ms" in r else "-",
            "%.0f-%.0f" % (r["total_lo_ms"], r["total_hi_ms"]) if "total_ms" in r else "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
