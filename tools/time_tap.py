"""Time real taps on a board: boot the validator, wait for cards, time each tap's phases with time.ticks_us.

    mpremote connect /dev/ttyUSB0 run tools/time_tap.py                  # 5 taps, or 60 s without a card
    mpremote connect /dev/ttyUSB0 exec "TAPS = 20" run tools/time_tap.py # another count (the same REPL globals)

Runs on the board (MicroPython), not on the host: it boots the firmware as main.py does (app.boot.boot(pins)),
then turns the tap loop itself (Validator.step) and, around the parts boot built, measures per tap:
  detect   the InListPassiveTarget poll that found the card (activation: REQA, anticollision, RATS)
  card     every card APDU (PN532 InDataExchange: link, radio, the card's own work; for INITIALIZE and DEBIT
           the PSAM header sent meanwhile), count and total
  psam     what the tap waits for the PSAM (T=0: line, procedure bytes, GET RESPONSE, the PSAM's work), the
           count of start and finish calls (2 per APDU) and total; 8070's work under UPDATE CAPP is not in it
  journal  the journal's appends (intent, outcome, settlement: the flash programs)
  cpu      the rest of tap(): the validator's own work (and the wrappers', a few us per call)
  beep     from the detect poll's start to feedback.start(), i.e. tap-to-beep
and the heap the tap allocated (Validator.tap_heap), gc.mem_free() after the between-tap collection, the status.
Compare with docs/performance.md ("Tap-to-beep", modelled by bench/bench_tap.py). The figures print as one line
per tap, `tap N status=... beep=...ms ...`, then a summary line; nothing is written to flash but the taps'
own journal records (these are real payments: use test cards).
"""
import gc
import time

try:
    TAPS = TAPS  # noqa: F821  (set by `mpremote exec "TAPS = n"` before `run`)
except NameError:
    TAPS = 5
try:
    WAIT_S = WAIT_S  # noqa: F821
except NameError:
    WAIT_S = 60

_us = time.ticks_us
_diff = time.ticks_diff
T = [0] * 12  # preallocated: detect start, detect us, card us, card n, psam us, psam n, journal us, beep us


def _timed(obj, name, slot):
    f = getattr(obj, name)

    def w(*a):
        t0 = _us()
        try:
            return f(*a)
        finally:
            T[slot] += _diff(_us(), t0)
            T[slot + 1] += 1

    setattr(obj, name, w)


def main():
    import pins
    from app.boot import boot

    t_boot = _us()
    v = boot(pins)
    boot_ms = _diff(_us(), t_boot) // 1000
    gc.collect()
    print("booted in %d ms, heap after boot: %d allocated, %d free" % (boot_ms, gc.mem_alloc(), gc.mem_free()))
    reader = v.reader
    det = reader.detect

    def detect():
        t0 = _us()
        ok = det()
        if ok:
            T[0] = t0
            T[1] = _diff(_us(), t0)
        return ok

    reader.detect = detect
    _timed(reader, "transceive", 2)
    _timed(reader, "transceive_during", 2)  # INITIALIZE and DEBIT, with the PSAM's next header sent meanwhile
    if v.sam is not None:
        port = v.sam.port
        if hasattr(port, "finish"):  # T0Psam: transceive is start + finish, and 8070's two halves come apart
            _timed(port, "start", 4)
            _timed(port, "finish", 4)
        else:
            _timed(port, "transceive", 4)
    for name in ("append_intent", "append_outcome", "append_settlement"):
        if hasattr(v.journal, name):
            _timed(v.journal, name, 6)
    if v.feedback is not None:
        fb = v.feedback.start

        def start(status, now):
            T[8] = _diff(_us(), T[0])
            return fb(status, now)

        v.feedback.start = start
    done, beeps, idle_since = 0, [], time.ticks_ms()
    print("waiting for a card (%d taps, or %d s without one)" % (TAPS, WAIT_S))
    while done < TAPS and _diff(time.ticks_ms(), idle_since) < WAIT_S * 1000:
        for i in range(12):
            T[i] = 0
        t0 = _us()
        r = v.step()
        if r is None:
            continue
        total = _diff(_us(), t0)
        done += 1
        idle_since = time.ticks_ms()
        cpu = total - T[1] - T[2] - T[4] - T[6]
        beep = T[8] if T[8] else total
        beeps.append(beep)
        gc.collect()
        print("tap %d status=%s beep=%.1fms detect=%.1fms card=%.1fms/%d psam=%.1fms/%d journal=%.1fms/%d"
              " cpu=%.1fms heap=%dB free=%dB" % (done, r.status, beep / 1000, T[1] / 1000, T[2] / 1000, T[3],
                                                 T[4] / 1000, T[5], T[6] / 1000, T[7], cpu / 1000, v.tap_heap,
                                                 gc.mem_free()))
    if beeps:
        beeps.sort()
        print("summary taps=%d beep_min=%.1fms beep_median=%.1fms beep_max=%.1fms" % (
            len(beeps), beeps[0] / 1000, beeps[len(beeps) // 2] / 1000, beeps[-1] / 1000))
    else:
        print("summary taps=0 (no card within %d s)" % WAIT_S)


main()
