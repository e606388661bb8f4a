"""The virtual board's clock, owned by the host: simulated microseconds that the board's `time` reads.

    c = SimClock(fast=True)
    c.now_us()            # real time elapsed since start, plus every sleep skipped and every advance()
    c.sleep_us(500_000)   # fast mode: returns at once, the clock has moved on 0.5 s; real-time mode: waits

Fast mode still lets real time flow (a busy-wait on ticks_us ends), but a sleep costs nothing: a bus day of
taps runs in seconds. Real-time mode is for people at the REPL with mpremote.
"""
import threading
import time


class SimClock:
    def __init__(self, fast=True):
        self.fast = fast
        self._t0 = time.monotonic_ns()
        self._offset_us = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()

    def now_us(self):
        with self._lock:
            return (time.monotonic_ns() - self._t0) // 1000 + self._offset_us

    def advance(self, us):
        if us < 0:
            raise ValueError("time does not run backwards")
        with self._lock:
            self._offset_us += int(us)

    def sleep_us(self, us):
        """Sleep on the simulated clock; in real-time mode interrupt() (a Ctrl-C from the host) cuts it short,
        since the board process blocked in its socket read would otherwise see its KeyboardInterrupt only when
        the sleep ends."""
        if self.fast:
            self.advance(us)
        else:
            self._wake.clear()
            self._wake.wait(us / 1e6)
        return self.now_us()

    def interrupt(self):
        self._wake.set()
