"""The pty relay: a pseudo-terminal that behaves like the board's USB serial port, in front of the unix port.

    r = Relay(cmd_for, controller)       # cmd_for(raw) -> argv of the MicroPython process
    r.start(); print(r.port)             # /dev/pts/N: `mpremote connect /dev/pts/N exec "print(1)"`
    r.reset("power"); r.stop()

The MicroPython process gets its own pty (it needs a terminal: the REPL switches it to raw mode). A Ctrl-C
while a program runs is kept pending and taken at the board's next request to the controller, as the ESP32's VM
takes one at its next check point (PendingInterrupt; SIGINT only for a board that asks nothing). Bytes are copied both ways. The unix port
exits where a board soft-resets (Ctrl-D at the friendly REPL, or in the raw REPL with nothing to run): the relay
prints `MPY: soft reboot` and starts it again, as a board does: after a friendly-REPL Ctrl-D it runs boot.py and
main.py; after a raw-REPL soft reset only boot.py, and it enters the raw REPL again by itself (the banner of the
restarted process is swallowed; what boot.py prints is shown). The terminal's "\r\r\n" (the REPL's own "\r\n"
through the tty's newline translation) is sent on as "\r\n".

`baud=115200` throttles both directions to what a UART at that rate carries (10 bits a byte: start, 8 data, stop),
so transfer benchmarks see a real link's byte rate; None (the default) copies as fast as the pty allows.
"""
import errno
import fcntl
import os
import select
import signal
import termios
import threading
import time
import tty

RAW_MARK = b"raw REPL; CTRL-B to exit"
_PROMPTS = (b">", b">>> ", b"... ", b"=== ")  # the board's REPL reads what comes (raw, friendly, paste mode)
_HOLD_S = 2.0  # held host bytes go to a board that never shows a prompt after its Ctrl-C after this long
FRIENDLY_MARK = b'Type "help()" for more information.'
SOFT_REBOOT = b"MPY: soft reboot\r\n"
ROM_BANNER = (b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n")
POWER_BANNER = (b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n")
_OUT_CAP = 1 << 20


def _board_like_tty(fd):
    # No echo, no line editing, but ISIG (Ctrl-C -> SIGINT) and "\n" -> "\r\n" as a board's stdout does.
    a = termios.tcgetattr(fd)
    a[0] &= ~(termios.ICRNL | termios.IXON)
    a[3] &= ~(termios.ECHO | termios.ECHOCTL | termios.ICANON | termios.IEXTEN)
    a[3] |= termios.ISIG
    a[6][termios.VMIN] = 1
    a[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, a)


class PendingInterrupt:
    """A Ctrl-C from the host that the board has not taken yet, shared by the relay and the host controller.

    On the ESP32 a Ctrl-C only marks an exception pending; the VM raises it at its next check point (a jump, the
    end of a blocking wait), never inside a C function. The unix port raises KeyboardInterrupt from its SIGINT
    handler wherever the process is (MICROPY_ASYNC_KBD_INTR), e.g. between the stand-ins' socket recv and the
    line that keeps its bytes: the RPC stream lost bytes and fell out of step (garbage lengths, "MemoryError
    allocating 300875771 bytes", 30 s hangs in CI). So the relay keeps the Ctrl-C here, the controller answers
    the board's next request with it (status K: tests/vboard/board/_vbrpc.py raises KeyboardInterrupt once the
    reply is read), and only a board that asks nothing for FALLBACK_S (plain Python at the REPL) gets SIGINT.
    """
    FALLBACK_S = 0.25

    def __init__(self):
        self._lock = threading.Lock()
        self._since = None
        self.taken = 0  # Ctrl-Cs the board took at a request (tests read it)
        self.signalled = 0  # Ctrl-Cs that became SIGINT (no request came)

    def set(self):
        with self._lock:
            if self._since is None:
                self._since = time.monotonic()

    def take(self, by_signal=False):
        """True once for a pending Ctrl-C: the controller's reply carries it, or (by_signal) the relay's SIGINT."""
        with self._lock:
            had, self._since = self._since is not None, None
        if had:
            if by_signal:
                self.signalled += 1
            else:
                self.taken += 1
        return had

    def pending(self):
        return self._since is not None

    def overdue(self):
        with self._lock:
            return self._since is not None and time.monotonic() - self._since >= self.FALLBACK_S

    def clear(self):
        with self._lock:
            self._since = None


class Relay:
    def __init__(self, cmd_for, on_exit=None, env=None, on_interrupt=None, baud=None, interrupt=None, busy=None):
        self.baud = baud
        self._rate = baud / 10.0 if baud else None  # bytes a second each way
        self._credit = {"in": 0.0, "out": 0.0}
        self._credit_t = time.monotonic()
        self._held = bytearray()  # host -> board bytes waiting for link time (throttled only)
        self.cmd_for = cmd_for  # cmd_for(raw: bool) -> argv
        self.on_interrupt = on_interrupt  # called when the host side sends Ctrl-C
        self.interrupt = interrupt if interrupt is not None else PendingInterrupt()
        self.busy = busy  # busy() -> True while the controller works on a request (its reply will carry a Ctrl-C)
        self.on_exit = on_exit  # on_exit(kind) before a restart: "soft", "raw", "hard", "wdt", "power", ...
        self.env = env
        self.mode = "friendly"
        self.pid = None
        self.fd = None  # master of the MicroPython process's pty
        self.output = bytearray()  # everything sent to the host side, for tests
        self.boots = 0
        self.cond = threading.Condition()
        self._pending = None
        self._inq = bytearray()
        self._hold_since = None  # a Ctrl-C is pending: host bytes wait in _inq for the REPL's prompt
        self._outq = bytearray()
        self._carry = b""
        self._tail = b""
        self._swallow = None
        self._sbuf = b""
        self._stop = False
        self._thread = None
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        fl = fcntl.fcntl(self.master, fcntl.F_GETFL)
        fcntl.fcntl(self.master, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        self._wake_r, self._wake_w = os.pipe()

    # ---- control --------------------------------------------------------------------------------------------
    def start(self):
        self._spawn(raw=False)
        self._thread = threading.Thread(target=self._loop, name="vboard-relay", daemon=True)
        self._thread.start()

    def stop(self):
        self.reset("stop")
        self._stop = True
        os.write(self._wake_w, b"x")
        if self._thread:
            self._thread.join(5)
        self._kill()
        for fd in (self.master, self._slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def reset(self, kind):
        """Restart the board process: "hard", "wdt", "deepsleep", "power", "soft" (machine.soft_reset) or "stop"
        (killed and not restarted: the board is off until resume())."""
        with self.cond:
            self._pending = kind
        self._kill()

    def resume(self):
        """Switch a board stopped with reset("stop") back on (a power-on)."""
        with self.cond:
            if self.pid is None:
                self._pending = None
                self._spawn(raw=False)
        os.write(self._wake_w, b"x")

    def wait_for(self, text, timeout=10.0, start=0):
        """Block until `text` (bytes) appears in the output after offset `start`; return the offset after it."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                i = self.output.find(text, start)
                if i >= 0:
                    return i + len(text)
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("board did not print %r; last output: %r" % (text, bytes(self.output[-300:])))
                self.cond.wait(left)

    def send(self, data):
        """Type bytes at the board, as the host side of the serial port would."""
        os.write(self._slave, data)

    # ---- process --------------------------------------------------------------------------------------------
    def _spawn(self, raw):
        m, s = os.openpty()
        _board_like_tty(s)
        argv = self.cmd_for(raw)
        pid = os.fork()
        if pid == 0:  # child: its own session, the pty as controlling terminal
            try:
                os.setsid()
                fcntl.ioctl(s, termios.TIOCSCTTY, 0)
                for i in (0, 1, 2):
                    os.dup2(s, i)
                os.closerange(3, 4096)
                os.execve(argv[0], argv, self.env or os.environ)
            finally:
                os._exit(127)
        os.close(s)
        self.pid, self.fd = pid, m
        self.mode = "raw" if raw else "friendly"
        self._swallow = "banner" if raw else None
        self._sbuf = b""
        self.boots += 1
        self.interrupt.clear()  # a reset clears a pending exception, as on the ESP32
        self._hold_since = None
        if not raw:
            self._inq.clear()  # bytes sent to a board that was off or resetting are lost (a raw restart's are its)

    def _kill(self):
        pid = self.pid
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _reap(self):
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        os.close(self.fd)
        self.pid, self.fd = None, None

    def _exited(self):
        self._flush_carry()
        self._reap()
        with self.cond:
            kind, self._pending = self._pending, None
        if kind is None:  # the process left by itself: a soft reset from the REPL
            kind = "raw" if self.mode == "raw" else "soft"
        elif kind == "soft" and self.mode == "raw":
            kind = "raw"
        if self.on_exit:
            self.on_exit(kind)
        if kind == "stop":
            return
        if kind in ("soft", "raw"):
            self._emit(SOFT_REBOOT)
        elif kind == "power":
            self._emit(POWER_BANNER)
        else:
            self._emit(ROM_BANNER)
        self._spawn(raw=(kind == "raw"))

    # ---- bytes ----------------------------------------------------------------------------------------------
    def _to_board(self, data):
        if not data:
            return
        if b"\x03" in data:
            data = self._ctrl_c(data)
        if not data:
            pass
        elif self.fd is None or self._swallow or self._hold_since is not None:
            self._inq += data
        else:
            os.write(self.fd, data)

    def _allow(self, way, want):
        """How many of `want` bytes the throttled link carries now (all of them when unthrottled)."""
        if self._rate is None:
            return want
        now = time.monotonic()
        dt, self._credit_t = now - self._credit_t, now
        for k in self._credit:  # at most ~20 ms of burst: a UART has no credit to save up
            self._credit[k] = min(self._credit[k] + dt * self._rate, self._rate * 0.02 + 64)
        n = min(want, int(self._credit[way]))
        self._credit[way] -= n
        return n

    def _emit(self, data):
        if not data:
            return
        self._outq += data
        if len(self._outq) > _OUT_CAP:  # nobody reads the port: old output is lost, as on a real UART
            del self._outq[:len(self._outq) - _OUT_CAP]
        with self.cond:
            self.output += data
            self.cond.notify_all()

    def _from_board(self, data):
        data = self._carry + data
        self._carry = b""
        k = len(data)
        while k > 0 and data[k - 1:k] == b"\r" and len(data) - k < 2:
            k -= 1
        data, self._carry = data[:k], data[k:]
        data = data.replace(b"\r\r\n", b"\r\n")
        scan = self._tail + data
        r, f = scan.rfind(RAW_MARK), scan.rfind(FRIENDLY_MARK)
        if r > f:
            self.mode = "raw"
        elif f > r:
            self.mode = "friendly"
        self._tail = scan[-48:]
        if self._at_prompt():
            self.interrupt.clear()  # the program ended: pyexec drops a pending exception (mp_handle_pending)
        if self._swallow:
            data = self._swallowing(data)
        self._emit(data)

    def _swallowing(self, data):
        buf = self._sbuf + data
        out = b""
        if self._swallow == "banner":
            i = buf.find(b"MicroPython ")
            if i < 0:
                keep = len(b"MicroPython ")
                out, self._sbuf = buf[:-keep], buf[-keep:]
                return out
            out, buf = buf[:i], buf[i:]
            self._swallow = "prompt"
        if self._swallow == "prompt":
            i = buf.find(b">>> ")
            if i < 0:
                self._sbuf = buf
                return out
            buf = buf[i + 4:]
            os.write(self.fd, b"\x01")
            self._swallow = "raw"
        i = buf.find(RAW_MARK)
        if i < 0:
            self._sbuf = buf
            return out
        self._swallow = None
        self._sbuf = b""
        if self._inq:
            os.write(self.fd, bytes(self._inq))
            self._inq.clear()
        return out + buf[i:]

    def _ctrl_c(self, data):
        """A Ctrl-C from the host. At a prompt it is a character the REPL reads. While code runs, a board's UART
        interrupt marks a KeyboardInterrupt pending, which the VM raises at its next check point; here the byte
        is dropped and the Ctrl-C kept in `interrupt` for the controller's next reply (PendingInterrupt says
        why not SIGINT), unless the process holds Ctrl-C off."""
        if self.fd is None or self._swallow:
            return data
        if self._at_prompt():
            return data
        if self._catches_sigint():
            self.interrupt.set()
            if self.on_interrupt:
                self.on_interrupt()  # after set(): a sleep it cuts short answers with the Ctrl-C, not without
            # What follows (mpremote's Ctrl-A) waits for the prompt: an ESP32 keeps typed bytes in its UART
            # buffer for the REPL, the unix port's REPL discards what came before it (TCSAFLUSH).
            self._hold_since = time.monotonic()
        # else micropython.kbd_intr(-1) (the app during a tap): on the ESP32 the UART takes the byte as plain
        # input that nobody reads, so the interrupt is lost. (The unix port has restored SIGINT's default
        # action: a signal would kill the board.)
        return data.replace(b"\x03", b"")

    def _at_prompt(self):
        """The REPL reads what comes: its prompt is the last output, or a line of paste mode (it echoes)."""
        return self._tail.endswith(_PROMPTS) or self._tail[self._tail.rfind(b"\n") + 1:].startswith(b"=== ")

    def _reading(self):
        """The REPL waits for input: its prompt shown and its terminal switched to raw mode (no ISIG)."""
        if self.fd is None or not self._at_prompt():
            return False
        try:
            return not termios.tcgetattr(self.fd)[3] & termios.ISIG
        except termios.error:
            return False

    def _release_input(self):
        self._hold_since = None
        if self._inq and self.fd is not None and not self._swallow:
            os.write(self.fd, bytes(self._inq))
            self._inq.clear()

    def _signal_overdue(self):
        """A pending Ctrl-C no request took for FALLBACK_S: the board runs plain Python (no stand-in call), where
        SIGINT cannot cut an RPC in two. Not while the controller works on a request: its reply carries it."""
        if self.pid is None or not self.interrupt.overdue() or (self.busy is not None and self.busy()):
            return
        if not self.interrupt.take(by_signal=True):
            return
        if self._catches_sigint():
            try:
                os.kill(self.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def _catches_sigint(self):
        """Whether the MicroPython process has its SIGINT handler installed (kbd_intr(3), the default while code
        runs), read from /proc (Linux: the virtual board is x86-64 Linux only)."""
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
        except (OSError, ValueError, TypeError):
            pass
        return True

    def _flush_carry(self):
        if self._carry:
            c, self._carry = self._carry, b""
            self._emit(c)

    def _loop(self):
        last = time.monotonic()
        while not self._stop:
            rl = [self.master, self._wake_r] + ([self.fd] if self.fd is not None else [])
            self._allow("out", 0)  # refill the link's credit
            wl = [self.master] if self._outq and (self._rate is None or self._credit["out"] >= 1) else []
            wait = 0.03
            if self._rate is not None and (self._outq or self._held):
                wait = 0.002  # throttled: come back for the next slice of link time
            try:
                r, w, _ = select.select(rl, wl, [], wait)
            except (OSError, ValueError):
                continue
            if self._wake_r in r:
                os.read(self._wake_r, 64)
            if self.master in w and self._outq:
                k = self._allow("out", min(len(self._outq), 4096))
                try:
                    n = os.write(self.master, bytes(self._outq[:k])) if k else 0
                    del self._outq[:n]
                    self._credit["out"] += k - n
                except BlockingIOError:
                    self._credit["out"] += k
            if self.master in r:
                try:
                    data = os.read(self.master, 4096)
                except (BlockingIOError, OSError):
                    data = b""
                if data and self._rate is not None:
                    self._held += data  # through the link's rate first (below)
                    data = b""
                self._to_board(data)
            if self._held:
                k = self._allow("in", len(self._held))
                if k:
                    data = bytes(self._held[:k])
                    del self._held[:k]
                    self._to_board(data)
            if self.fd is not None and self.fd in r:
                try:
                    data = os.read(self.fd, 4096)
                except OSError as e:
                    if e.errno != errno.EIO:
                        raise
                    data = None
                if data:
                    self._from_board(data)
                    last = time.monotonic()
                else:
                    self._exited()
                    continue
            if self._carry and time.monotonic() - last > 0.03:
                self._flush_carry()
            self._signal_overdue()
            if self._hold_since is not None and (time.monotonic() - self._hold_since > _HOLD_S or self._reading()):
                self._release_input()
