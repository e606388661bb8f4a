"""One purchase, measured: APDUs and bytes, the validator's own CPU time and heap, and a modelled tap time.

    python bench/bench_purchase.py            # CPython, then the same taps under MicroPython, then the model
    python bench/bench_purchase.py --json     # one JSON object instead of the table
    node tests/mp/run.mjs --script bench/bench_purchase.py --measure   # the MicroPython half alone

The validator's time is the tap's wall time minus the time spent inside the simulated card and the software
SAM (their transceive calls are timed and subtracted); the heap is gc.mem_alloc() after minus before, after a
gc.collect(), minus what the simulators allocated inside their calls. The modelled tap time adds, from the
bytes that crossed each link, the PN532 UART frames, the 106 kbit/s radio, the PSAM's T=0 characters, and
stated assumptions for what the card and the PSAM take to compute (replace them with a board measurement).
"""
import gc
import sys
import time

try:
    import tunion  # noqa: F401
except ImportError:  # CPython from a checkout
    import os

    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:0] = [os.path.join(_root, "firmware"), os.path.join(_root, "tests"), _root]

from sim.card import make_card
from sim.rig import Rig
from sim import keys
from tunion import outcome as O

MICROPYTHON = sys.implementation.name == "micropython"
if MICROPYTHON:

    def now_us():
        return time.ticks_us()

    def diff_us(a, b):
        return time.ticks_diff(a, b)

    def mem():
        return gc.mem_alloc()

else:

    def now_us():
        return time.perf_counter_ns() // 1000

    def diff_us(a, b):
        return a - b

    def mem():
        return 0


class Timed:
    """A port wrapper that records the APDUs it passes on and counts bytes and the heap the wrapped simulator
    allocates inside its calls (gc.mem_alloc is exact; MicroPython's clocks here tick in whole milliseconds,
    so time is taken over many taps, not per call)."""

    def __init__(self, port, heap=False):
        self.port = port
        self.heap = heap  # gc.mem_alloc() walks the heap: only in the heap pass, never while timing
        self.reset()

    def reset(self):
        self.alloc = 0
        self.frames = []  # (command length, response length, INS)
        self.sent = []

    def transceive(self, apdu):
        if not self.heap:
            r = self.port.transceive(apdu)
        else:
            a0 = mem()
            r = self.port.transceive(apdu)
            self.alloc += mem() - a0
        apdu = bytes(apdu)
        self.sent.append(apdu)
        self.frames.append((len(apdu), len(r), apdu[1]))
        return r


def _setup(n, heap=False):
    rig = Rig()
    sam_port = Timed(rig.softsam, heap)
    rig.psam.port = sam_port
    cards = [make_card(card_no=keys.TEST_CARD_NO + i, balance=1000000) for i in range(n + 1)]
    # Warm-up tap: first-use allocations are not the steady state.
    warm = Timed(cards[n])
    rig.tap(warm)
    return rig, sam_port, cards, warm


def measure(n=100):
    """Per-tap figures over n taps of n different cards. CPU: the wall time of the n taps minus the wall time of
    replaying exactly the same APDUs into identical fresh simulators (what the simulators cost)."""
    rig, sam_port, cards, warm = _setup(n)
    sam_sent = list(sam_port.sent)
    ports = [Timed(c) for c in cards[:n]]
    gc.collect()
    t0 = now_us()
    for i in range(n):
        r = rig.tap(ports[i])
        if r.status != O.PAID:
            raise RuntimeError("benchmark tap not paid: %r" % (r,))
    t_taps = diff_us(now_us(), t0)
    sam_sent = sam_port.sent  # warm-up and timed taps, in order
    # Replay: identical fresh simulators, the same APDUs in the same order, nothing else.
    rig2 = Rig()
    cards2 = [make_card(card_no=keys.TEST_CARD_NO + i, balance=1000000) for i in range(n + 1)]
    sam2 = rig2.softsam
    warm_sam = len(sam_sent) - 2 * n
    for a in warm.sent:
        cards2[n].transceive(a)
    for a in sam_sent[:warm_sam]:
        sam2.transceive(a)
    card_sent = [p.sent for p in ports]
    sam_rest = sam_sent[warm_sam:]
    gc.collect()
    t0 = now_us()
    k = 0
    for i in range(n):
        c = cards2[i]
        for a in card_sent[i]:
            c.transceive(a)
        sam2.transceive(sam_rest[k])
        sam2.transceive(sam_rest[k + 1])
        k += 2
    t_sims = diff_us(now_us(), t0)
    if cards2[0].balance != cards[0].balance:
        raise RuntimeError("replay diverged")
    # Heap: per tap, exact, with the simulators' own allocations taken out.
    heap = []
    rig3, sam3, cards3, warm3 = _setup(n, True)
    for i in range(n):
        port = Timed(cards3[i], True)
        sam3.reset()
        gc.collect()
        a0 = mem()
        rig3.tap(port)
        heap.append(mem() - a0 - port.alloc - sam3.alloc)
    heap.sort()
    return {
        "impl": sys.implementation.name,
        "taps": n,
        "cpu_us_per_tap": (t_taps - t_sims) // n,
        "taps_us": t_taps,
        "sims_us": t_sims,
        "heap_bytes_max": heap[-1] if MICROPYTHON else None,
        "heap_bytes_median": heap[len(heap) // 2] if MICROPYTHON else None,
        "card_frames": ports[-1].frames,
        "sam_frames": sam3.frames,
    }


# ---- the model (CPython side only) -------------------------------------------------------------------------

# PN532 normal information frame around InDataExchange (PN532 user manual 6.2.1.1, 7.3.8):
# host->PN532: 00 00FF LEN LCS D4 40 Tg <apdu> DCS 00 = apdu + 10; ACK 00 00FF 00FF 00 = 6;
# PN532->host: 00 00FF LEN LCS D5 41 status <resp> DCS 00 = resp + 10. 10 UART bits per byte (8N1).
PN532_CMD_OVERHEAD = 10
PN532_ACK = 6
PN532_RESP_OVERHEAD = 10
PN532_LATENCY_MS = 1.0  # assumed: PN532 firmware turnaround per command
# ISO 14443-4 at 106 kbit/s: 9 bits per byte on the air (8 + parity), 1 etu = 128/13.56 MHz = 9.44 us; each
# I-block adds PCB and CRC_A (3 bytes) and a frame delay of about 86 us each way.
RF_US_PER_BYTE = 9 * 9.44
RF_FRAME_BYTES = 3
RF_FDT_US = 2 * 86
# Assumed card processing per command (typical contactless CPU card: EEPROM writes dominate DEBIT).
CARD_MS = {0xA4: 3.0, 0xB0: 2.0, 0xB2: 2.0, 0x5C: 2.0, 0x50: 8.0, 0xDC: 6.0, 0x54: 20.0, 0x5A: 4.0}
# PSAM over ISO 7816-3 T=0: 12 etu per character (start, 8 data, parity, 2 guard); command header 5 bytes, one
# procedure byte, data, SW; a case-4 command then needs GET RESPONSE (5 + 1 + Le + 2).
PSAM_ETU_CHARS = 12
PSAM_MS = {0x70: 12.0, 0x72: 3.0}  # assumed PSAM computation: 8070 derives keys (about 9 DES), 8072 one MAC
FLASH_APPEND_MS = 2 * 0.6  # intent + outcome: one page program each on the raw journal area (no erase)
BUDGET_MS = 200.0


def card_link_ms(frames, baud):
    uart_bits = 0
    rf_us = 0.0
    proc = 0.0
    for c, r, ins in frames:
        uart_bits += 10 * (c + PN532_CMD_OVERHEAD + PN532_ACK + r + PN532_RESP_OVERHEAD)
        rf_us += (c + r + 2 * RF_FRAME_BYTES) * RF_US_PER_BYTE + RF_FDT_US
        proc += CARD_MS.get(ins, 2.0) + PN532_LATENCY_MS
    return 1000.0 * uart_bits / baud, rf_us / 1000.0, proc


def sam_link_ms(frames, baud):
    chars = 0
    proc = 0.0
    for c, r, ins in frames:
        chars += c + 1 + 2  # header + data, procedure byte, SW (61xx)
        if r > 2:
            chars += 5 + 1 + r  # GET RESPONSE header, procedure byte, data + SW
        proc += PSAM_MS.get(ins, 1.0)
    return 1000.0 * chars * PSAM_ETU_CHARS / baud, proc


def model(cp, mp):
    out = []
    card_frames = cp["card_frames"]
    sam_frames = [f for f in cp["sam_frames"]]
    for pn_baud in (115200, 921600):
        for sam_baud, sam_name in ((9600, "9600 (no PPS)"), (115200, "115200 after PPS (Fi 372, Di 12)")):
            uart, rf, cproc = card_link_ms(card_frames, pn_baud)
            slink, sproc = sam_link_ms(sam_frames, sam_baud)
            cpu = (mp or cp)["cpu_us_per_tap"] / 1000.0
            total = uart + rf + cproc + slink + sproc + cpu + FLASH_APPEND_MS
            out.append(
                {
                    "pn532_baud": pn_baud,
                    "psam": sam_name,
                    "pn532_uart_ms": round(uart, 1),
                    "rf_ms": round(rf, 1),
                    "card_processing_ms": round(cproc, 1),
                    "psam_link_ms": round(slink, 1),
                    "psam_processing_ms": round(sproc, 1),
                    "validator_cpu_ms": round(cpu, 1),
                    "flash_ms": FLASH_APPEND_MS,
                    "total_ms": round(total, 1),
                    "within_200ms": total <= BUDGET_MS,
                    # What the budget leaves for the validator's own CPU on the board (not measured here).
                    "cpu_headroom_ms": round(BUDGET_MS - (total - cpu), 1),
                }
            )
    return out


def main():
    if "--measure" in sys.argv:
        import json

        print("RESULT " + json.dumps(measure()))
        return
    import json

    cp = measure()
    mp = None
    try:
        from tools.mprun import run_script

        text = run_script(__file__, ["--measure"])
        for line in text.splitlines():
            if line.startswith("RESULT "):
                mp = json.loads(line[7:])
    except Exception as e:  # no Node: the CPython half still prints
        print("MicroPython run skipped: %s" % e)
    rows = model(cp, mp)
    cf = cp["card_frames"]
    sf = cp["sam_frames"]
    summary = {
        "card_apdus": len(cf),
        "card_bytes_out": sum(c for c, r, i in cf),
        "card_bytes_in": sum(r for c, r, i in cf),
        "psam_apdus": len(sf),
        "psam_bytes_out": sum(c for c, r, i in sf),
        "psam_bytes_in": sum(r for c, r, i in sf),
        "cpython_cpu_us_per_tap": cp["cpu_us_per_tap"],
        "micropython_cpu_us_per_tap": mp["cpu_us_per_tap"] if mp else None,
        "micropython_heap_bytes_max": mp["heap_bytes_max"] if mp else None,
        "micropython_heap_bytes_median": mp["heap_bytes_median"] if mp else None,
        "model": rows,
    }
    if "--json" in sys.argv:
        print(json.dumps(summary, indent=1))
        return
    print("one compound purchase (PPSE, SELECT with EF15 in the FCI, EF17, EF1E, INITIALIZE, UPDATE, DEBIT)")
    print("  card APDUs      %d (target <= 8), %d bytes out, %d bytes in" % (
        summary["card_apdus"], summary["card_bytes_out"], summary["card_bytes_in"]))
    print("  PSAM APDUs      %d, %d bytes out, %d bytes in" % (
        summary["psam_apdus"], summary["psam_bytes_out"], summary["psam_bytes_in"]))
    print("  validator CPU   CPython %.3f ms per tap (%d taps: %d us, the simulators' replay %d us)" % (
        cp["cpu_us_per_tap"] / 1000.0, cp["taps"], cp["taps_us"], cp["sims_us"]))
    if mp:
        print("                  MicroPython (WebAssembly, this machine) %.2f ms per tap (%d us, replay %d us)" % (
            mp["cpu_us_per_tap"] / 1000.0, mp["taps_us"], mp["sims_us"]))
        print("  heap per tap    MicroPython %d bytes max, %d median (target <= 8192)" % (
            mp["heap_bytes_max"], mp["heap_bytes_median"]))
    print("  modelled tap time (budget %d ms; card and PSAM computation are stated assumptions):" % BUDGET_MS)
    print("    CPU = the validator's own time on the MicroPython interpreter here; headroom = what 200 ms leaves")
    print("    for it on the board, where MicroPython is slower (measure there with: mpremote run bench/...)")
    print("    PN532 baud  PSAM link                          UART   RF  card  PSAM link+cpu  CPU  flash  total  headroom")
    for r in rows:
        print("    %7d     %-33s %5.1f %4.1f %5.1f  %5.1f + %4.1f  %4.1f %5.1f %6.1f %-4s %6.1f" % (
            r["pn532_baud"], r["psam"], r["pn532_uart_ms"], r["rf_ms"], r["card_processing_ms"],
            r["psam_link_ms"], r["psam_processing_ms"], r["validator_cpu_ms"], r["flash_ms"], r["total_ms"],
            "ok" if r["within_200ms"] else "OVER", r["cpu_headroom_ms"]))


if __name__ == "__main__":
    main()
