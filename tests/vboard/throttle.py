"""A serial line of a given baud rate in front of the virtual board: its pty copies bytes at once, a UART does not.

    from vboard.throttle import Throttle
    with Throttle(board.port, 115200) as t:      # t.port: a new pty; each direction paced at 10 bits a byte
        with link.Board(t.port) as b: ...        # the tool sees a 115200-baud link; t.sent / t.received count
        
Full duplex, as a UART: one thread per direction, each holding its bytes back until the line would have carried
them (8N1 = 10 bits a byte). The board side still runs at the unix port's speed, not the ESP32's.
"""
import os
import select
import threading
import time
import tty


class Throttle:
    def __init__(self, upstream, baud=115200, chunk=16):
        self.upstream = upstream
        self.byte_s = 10.0 / baud
        self.chunk = chunk  # bytes moved at a time: 1.4 ms of line time at 115200
        self.sent = 0  # host -> board bytes
        self.received = 0  # board -> host bytes
        self._stop = False
        self._threads = []
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._up = os.open(upstream, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self._up)

    def start(self):
        for src, dst, attr in ((self.master, self._up, "sent"), (self._up, self.master, "received")):
            t = threading.Thread(target=self._pump, args=(src, dst, attr), daemon=True, name="throttle-" + attr)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop = True
        for t in self._threads:
            t.join(1.0)
        for fd in (self._up, self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _pump(self, src, dst, attr):
        line_free = time.monotonic()  # when the line has carried everything sent so far
        pending = b""
        while not self._stop:
            if not pending:
                r, _, _ = select.select([src], [], [], 0.05)
                if not r:
                    continue
                try:
                    pending = os.read(src, 4096)
                except OSError:  # the other end closed (board restarting, tool gone): keep the line open
                    time.sleep(0.01)
                    continue
            part, pending = pending[:self.chunk], pending[self.chunk:]
            line_free = max(line_free, time.monotonic()) + len(part) * self.byte_s
            delay = line_free - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                os.write(dst, part)
            except OSError:
                pending = b""
                continue
            setattr(self, attr, getattr(self, attr) + len(part))
