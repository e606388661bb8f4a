"""The one module that talks to a board: mpremote's SerialTransport, the raw REPL, a deadline on every read.

    from host_tools.link import Board
    with Board("/dev/ttyUSB0") as b:                  # or "u0", "id:0001", "socket://host:2217", "rfc2217://..."
        st = b.service("status")                      # {"ok": True, "firmware": ..., ...}; {"ok": False} raises
        b.put("/stage.json", data); b.sha256("/stage.json"); b.rename("/stage.json", "/x.json")
    # leaving the block restarts the app (a normal soft reset: main.py runs again)

Every failure is a DepotError with one line: a port that does not open, a pulled cable (SerialException), a board
that stops answering (nothing for `timeout` seconds in a handshake, or an exec past its deadline), code that raised
on the board, a service call that answered {"ok": False, "error": kind, "detail": ...} (the DepotError carries
`.kind` and `.detail`; `raw=True` returns the dict instead).

Why not mpremote's own exec (depot.md, "mpremote as the transport"): its reads wait per byte with no overall
deadline (`timeout=None` blocks forever on a silent link), it reads one byte per call, and `enter_raw_repl()` sends
one Ctrl-C, which the app ignores during a tap (`micropython.kbd_intr(-1)`, validator.md s.1). So the transport
opens and closes the port (URL handling, exclusive access, the CP210x DTR/RTS quirk) and this module speaks the
raw-REPL and raw-paste protocol (MicroPython docs, "raw mode and raw-paste mode") on its serial object.
"""
import json
import re
import time

from host_tools.errors import DepotError

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
READY = b"tunion: validator ready"  # firmware/app/main.py prints it when the loop starts
SOFT_REBOOT = b"soft reboot"
_POLL_S = 0.05  # the serial read timeout: how often a wait looks at its deadline
_BUSY_S = 1.5  # a port locked by another program: wait this long for it (a tool that is just closing it)
_WRITE_S = 5.0  # a write that blocks this long (a wedged USB-UART) is a board that stopped answering
INTERRUPT_GAP_S = 0.3  # between Ctrl-Cs: a tap holds Ctrl-C off for well under a second (validator.md s.6)
ATTACH_S = 4.0  # give up on the raw REPL after this long of Ctrl-Cs (more than the longest tap)
BOOT_S = 30.0  # how long the app may take to boot (journal.prepare() erases free sectors first: boot.py)
# Every exec feeds the app's watchdog (8 s, app/boot.py): the loop that fed it is interrupted while the depot works.
# And collects first: the interrupted loop collects only every 8 KB, and a 4 KB chunk needs a contiguous block
# (measured on the virtual board: 40 KB free before, 150 KB after; a 4 KB base64 chunk failed without it).
_FEED = "import gc\ngc.collect()\nif globals().get('_w'):\n    _w.feed()\n"
# What the board runs: is main.py there, and did the app boot (service.attach)? Keeps the watchdog as _w.
_PROBE = ("import os, sys\n_w = None\n_m = sys.modules.get('app.service')\n"
          "if _m is not None and _m._V is not None:\n    _w = _m._V.wdt\n"
          "try:\n    os.stat('/main.py')\n    _a = 1\nexcept OSError:\n    _a = 0\n"
          "print('[%d, %d]' % (_a, _m is not None and _m._V is not None))\ndel _m, _a")
# Bytes per exec when writing a file: base64 in the code, checked by CRC32 on the board. 1 KB: a board mid-day
# has its reserved block (app/main.py) and little else contiguous, and one 2 KB chunk needed ~11 KB there at once
# (the raw REPL's line buffer growing to 4 KB, the 2.7 KB base64 string, the decoded 2 KB, the last chunk's):
# "MemoryError allocating 2733 bytes" in CI.
PUT_CHUNK = 1024
_SHORTCUT = re.compile(r"^([auc])([0-9])$")  # mpremote's a0/u0/c0 shortcuts (mpremote/main.py)
_SHORTCUT_DEV = {"a": "/dev/ttyACM", "u": "/dev/ttyUSB", "c": "COM"}
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def _error(msg, code=1, kind=None, detail=None):
    e = DepotError(msg, code)
    e.kind = kind
    e.detail = detail
    return e


def resolve_port(port):
    """What `mpremote connect` would open for `port`: a0..a9/u0..u9/c0..c9, port:<dev>, id:<serial number>,
    auto (the first USB serial device), a device path or a pyserial URL (socket://, rfc2217://, loop://)."""
    if not port:
        raise _error("no board given: pass --port (e.g. --port /dev/ttyUSB0) or set TUNION_PORT", 2)
    p = port.strip()
    m = _SHORTCUT.match(p)
    if m:
        return _SHORTCUT_DEV[m.group(1)] + m.group(2)
    if p.startswith("port:"):
        return p[5:]
    if p.startswith("id:") or p == "auto":
        import serial.tools.list_ports

        for info in sorted(serial.tools.list_ports.comports()):
            if p == "auto" and info.vid is not None and info.pid is not None:
                return info.device
            if p != "auto" and info.serial_number == p[3:]:
                return info.device
        raise _error("no USB serial device %s" % ("found" if p == "auto" else "with serial number " + p[3:]), 2)
    return p


class Board:
    """An open raw-REPL session with one board. `timeout`: how long the board may stay silent in a handshake
    before it counts as not answering; every exec also has an overall `deadline`."""

    def __init__(self, port, baud=115200, timeout=2.0, attach=ATTACH_S, interrupt_gap=INTERRUPT_GAP_S,
                 max_interrupts=None, boot_wait=BOOT_S):
        self.port = port
        self.device = resolve_port(port)
        self.baud = baud
        self.timeout = float(timeout)
        self.attach = float(attach)
        self.interrupt_gap = float(interrupt_gap)
        self.max_interrupts = max_interrupts  # None: as many as fit in `attach` seconds
        self.boot_wait = float(boot_wait)
        self.interrupts = 0  # Ctrl-Cs it took to reach the raw REPL (1 when the loop was idle)
        self.app_running = False  # the app had booted (service.attach) when the link reached the raw REPL
        self.boot_error = None  # the board's last line when a restart at open() did not print READY
        self._t = None
        self._ser = None
        self._rx = bytearray()
        self._raw = False
        self._broken = False  # the exchange failed: the board is not at a raw-REPL prompt we know of
        self._dead = False  # the port itself failed (cable pulled): close() does not try to talk to the board

    # ---- life -----------------------------------------------------------------------------------------------
    def __enter__(self):
        return self.open()

    def __exit__(self, kind, exc, tb):
        self.close(restart_app=True, quiet=kind is not None)

    def open(self):
        """Open the port and reach the raw REPL. A board caught booting (main.py there, the app not attached)
        is restarted and interrupted again once it prints READY; `self.app_running` says how it ended."""
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        end = time.monotonic() + _BUSY_S
        while self._t is None:
            try:
                self._t = SerialTransport(self.device, baudrate=self.baud, timeout=_POLL_S)
            except (TransportError, OSError, ValueError) as e:
                why = self._why_not(e)
                if "lock" not in why or time.monotonic() >= end:  # held by a tool that is just exiting: wait
                    raise _error("cannot open the board's port %s: %s" % (self.device, why), 2) from None
                time.sleep(0.1)
        self._ser = self._t.serial
        try:
            self._ser.write_timeout = _WRITE_S
        except (OSError, ValueError):
            pass
        try:
            self._enter_raw()
            has_main, self.app_running = self._probe()
            if has_main and not self.app_running and self.boot_wait:
                self.boot_error = self._restart(self.boot_wait)
                self._enter_raw()
                has_main, self.app_running = self._probe()
        except BaseException:
            self._broken = True
            self.close(restart_app=False, quiet=True)
            raise
        return self

    def _probe(self):
        r = self._json(_PROBE, self.timeout + 5.0)
        return bool(r[0]), bool(r[1])

    def _why_not(self, e):
        """mpremote says only "failed to access <dev>": open it once more with pyserial to learn why."""
        import serial

        try:
            s = serial.serial_for_url(self.device, baudrate=self.baud, timeout=_POLL_S, exclusive=True)
        except (OSError, ValueError) as e2:
            m = re.findall(r"\[Errno \d+\] ([^:']+)", str(e2))  # pyserial: "... port X: [Errno 2] No such ..."
            return m[-1].strip() if m else (getattr(e2, "strerror", None) or str(e2))
        s.close()
        return str(e) + " (it may be in use by another program)"

    def _restart(self, ready_wait):
        """Leave the raw REPL and soft-reset at the friendly REPL (Ctrl-B, Ctrl-D): boot.py and main.py run,
        as at power-on (a raw-REPL soft reset would run boot.py only: depot.md). With `ready_wait`, wait that
        long for main.py's READY; returns None when it came, else the board's last line of output."""
        self._write(b"\r\x02")
        self._raw = False
        self._read_until(b">>> ", time.monotonic() + self.timeout, "the friendly REPL", self.timeout)
        self._rx.clear()
        self._write(b"\x04")
        self._read_until(SOFT_REBOOT, time.monotonic() + self.timeout, "the soft reset", self.timeout)
        if not ready_wait:
            return None
        try:
            self._read_until(READY, time.monotonic() + ready_wait, "the app to start")
            self._broken = False
            return None
        except DepotError:
            self._broken = False
            # The last line that says something: a traceback's error, not the REPL prompt after it.
            lines = [x.strip() for x in bytes(self._rx).decode("utf-8", "replace").splitlines()]
            lines = [x for x in lines if x and not x.startswith((">>>", "MicroPython", "Type \"help()\""))]
            return lines[-1] if lines else "no output"

    def close(self, restart_app=True, quiet=False):
        """Leave the raw REPL and, unless told not to, restart the app (`_restart`) and wait for its READY, so
        the board validates again when the tool is done. DepotError when the app does not come back, unless
        `quiet` (already failing: the first error is the one to show)."""
        if self._t is None:
            return
        err = None
        try:
            if self._raw and not self._dead:
                if self._broken:  # an exec past its deadline: interrupt it, then the same way out
                    self._write(b"\r\x03")
                    self._drain(0.1, 0.5)
                    self._write(b"\r\x01")
                    self._read_until(RAW_BANNER, time.monotonic() + self.timeout, "the raw REPL", self.timeout)
                    self._broken = False
                if restart_app:
                    has_main = self._probe()[0]
                    why = self._restart(self.boot_wait if has_main else 0)
                    if why is not None:
                        err = _error("the app did not start again after the reset (%.0f s): %s" % (
                            self.boot_wait, why))
                else:
                    self._write(b"\r\x02")  # the friendly REPL, app stopped (for a person at mpremote repl)
                    self._raw = False
        except DepotError as e:
            err = _error("the app may not have restarted (%s): reset the board" % e)
        finally:
            t, self._t, self._ser = self._t, None, None
            self._raw = False
            try:
                t.close()
            except (OSError, ValueError):  # its DTR/RTS reset guard failed (a pty, a socket): close it ourselves
                try:
                    t.serial.close()
                except (OSError, ValueError):
                    pass
        if err is not None and not quiet:
            raise err

    # ---- bytes with deadlines -------------------------------------------------------------------------------
    def _lost(self, e):
        self._broken = self._dead = True
        return _error("lost the link to the board on %s (%s)" % (self.device, getattr(e, "strerror", None) or e))

    def _write(self, data):
        try:
            self._ser.write(data)
        except OSError as e:  # serial.SerialException and SerialTimeoutException are OSErrors
            raise self._lost(e) from None

    def _read_some(self):
        try:
            n = self._ser.in_waiting
            return self._ser.read(n if n > 0 else 1)
        except OSError as e:
            raise self._lost(e) from None

    def _read_until(self, ending, until, what, silence=None):
        """Bytes up to and including `ending`; DepotError at `until` (monotonic) or after `silence` s quiet."""
        last = time.monotonic()
        while True:
            i = self._rx.find(ending)
            if i >= 0:
                out = bytes(self._rx[:i + len(ending)])
                del self._rx[:i + len(ending)]
                return out
            data = self._read_some()
            now = time.monotonic()
            if data:
                self._rx += data
                last = now
            elif now >= until or (silence is not None and now - last >= silence):
                self._broken = True
                raise _error("the board on %s stopped answering (waiting %.1f s for %s)" % (
                    self.device, now - last, what))

    def _read_exact(self, n, until, what):
        t0 = time.monotonic()
        while len(self._rx) < n:
            data = self._read_some()
            if data:
                self._rx += data
            elif time.monotonic() >= until:
                self._broken = True
                raise _error("the board on %s stopped answering (waiting %.1f s for %s)" % (
                    self.device, time.monotonic() - t0, what))
        out = bytes(self._rx[:n])
        del self._rx[:n]
        return out

    def _drain(self, quiet, limit):
        """Discard input until the line has been quiet for `quiet` s (at most `limit` s)."""
        end = time.monotonic() + limit
        last = time.monotonic()
        self._rx.clear()
        while time.monotonic() < end and time.monotonic() - last < quiet:
            if self._read_some():
                last = time.monotonic()

    # ---- the raw REPL ---------------------------------------------------------------------------------------
    def _enter_raw(self):
        """Ctrl-C until the raw REPL answers. A Ctrl-C sent while the app taps a card is lost (kbd_intr(-1)),
        so one is sent every `interrupt_gap` s until the banner comes, for up to `attach` s."""
        end = time.monotonic() + self.attach
        while True:
            self.interrupts += 1
            self._write(b"\r\x03")
            self._write(b"\r\x01")  # Ctrl-A: the raw REPL (once the loop has stopped)
            try:
                self._read_until(RAW_BANNER, time.monotonic() + self.interrupt_gap, "the raw REPL")
                break
            except DepotError:
                self._broken = False
                if time.monotonic() >= end or (self.max_interrupts and self.interrupts >= self.max_interrupts):
                    self._broken = True
                    raise _error("the board on %s does not answer (no raw REPL after %d Ctrl-C in %.1f s)" % (
                        self.device, self.interrupts, self.attach)) from None
        # Earlier Ctrl-As waiting in the board's input print the banner again: let them pass, then resync.
        self._drain(0.1, 1.0)
        self._write(b"\x01")
        self._read_until(RAW_BANNER, time.monotonic() + self.timeout, "the raw REPL", self.timeout)
        self._raw = True

    def exec(self, code, deadline=30.0):
        """Run `code` on the board; its printed output (str). Code that raised: DepotError with the error's
        last line. Nothing past `deadline` seconds: DepotError (the board is left interrupted)."""
        if self._t is None or not self._raw or self._broken:
            raise _error("the link to the board is not open")
        data = (_FEED + code).encode("utf-8") if isinstance(code, str) else _FEED.encode() + bytes(code)
        until = time.monotonic() + deadline
        self._write(b"\x05A\x01")  # raw-paste mode: flow controlled, so a long command is never overrun
        ans = self._read_exact(2, min(until, time.monotonic() + self.timeout), "raw-paste mode")
        if ans == b"R\x01":
            self._paste(data, until)
        elif ans == b"R\x00":  # understood, not supported: the plain raw REPL
            self._write(data + b"\x04")
            if self._read_exact(2, until, "the command's OK") != b"OK":
                raise _error("the board on %s did not take the command" % self.device)
        else:
            raise _error("the board on %s answered %r to raw-paste mode: not a MicroPython raw REPL" % (
                self.device, ans))
        out = self._read_until(b"\x04", until, "the command's output")[:-1]
        err = self._read_until(b"\x04", until, "the command's error output")[:-1]
        self._read_until(b">", until, "the raw REPL prompt")
        if err:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            raise _error("on the board: %s" % (lines[-1] if lines else "error"), kind="exception",
                         detail=err.decode("utf-8", "replace"))
        return out.decode("utf-8", "replace")

    def _paste(self, data, until):
        window = int.from_bytes(self._read_exact(2, until, "the raw-paste window"), "little")
        room = window
        i = 0
        while i < len(data):
            while room == 0 or self._rx or self._ser.in_waiting:
                c = self._read_exact(1, until, "raw-paste flow control")
                if c == b"\x01":
                    room += window
                elif c == b"\x04":  # the board ended the paste (a compile-time memory error, say)
                    self._write(b"\x04")
                    return
                else:
                    raise _error("the board on %s broke the raw-paste protocol (%r)" % (self.device, c))
            k = min(room, len(data) - i)
            self._write(data[i:i + k])
            room -= k
            i += k
        self._write(b"\x04")
        self._read_until(b"\x04", until, "the end of the paste")

    @property
    def broken(self):
        """The link failed (port lost, or the board stopped answering): only close() is left."""
        return self._broken or self._dead

    # ---- service calls --------------------------------------------------------------------------------------
    def service(self, name, *args, deadline=30.0, raw=False):
        """app.service.<name>(*args) on the board, its JSON answer as a dict. {"ok": False, ...} raises a
        DepotError (.kind, .detail) unless raw=True. Arguments must be JSON values."""
        if not _NAME.match(name):
            raise _error("not a service call: %r" % name, 2)
        # json.dump to the stream, not print(json.dumps()): the board writes the answer piece by piece instead of
        # building it in one string (a records() answer is ~5.6 KB; a day's fragmented heap may lack the block).
        code = "import json, sys, app.service as s\njson.dump(s.%s(*json.loads(%r)), sys.stdout)\nprint()" % (
            name, json.dumps(list(args)))
        out = self.exec(code, deadline)
        line = out.strip().splitlines()[-1] if out.strip() else ""
        try:
            r = json.loads(line)
        except ValueError:
            raise _error("the board's answer to %s is not JSON: %r" % (name, line[:80])) from None
        if not raw and isinstance(r, dict) and r.get("ok") is False:
            raise _error("the board refused %s: %s: %s" % (name, r.get("error"), r.get("detail")),
                         kind=r.get("error"), detail=r.get("detail"))
        return r

    def _json(self, code, deadline=30.0):
        out = self.exec(code, deadline).strip()
        try:
            return json.loads(out.splitlines()[-1])
        except (ValueError, IndexError):
            raise _error("the board's answer is not JSON: %r" % out[-80:]) from None

    # ---- files ----------------------------------------------------------------------------------------------
    def put(self, remote_path, data, chunk=PUT_CHUNK, deadline=10.0, progress=None):
        """Write `data` to `remote_path` (replaced), `chunk` bytes per exec, each checked on the board by its
        length and CRC32 before it is written; the size checked at the end. On any error the partial file is
        removed (when the link still works). `progress(done, total)` after each chunk; `deadline` is per chunk."""
        import base64
        import binascii

        data = bytes(data)
        # One open file for the whole put: reopening it to append per chunk would make LittleFS commit and copy
        # its last block every chunk (flash wear on every deploy) and did not help the heap (see PUT_CHUNK).
        self.exec("import binascii, os\n_f = open(%r, 'wb')" % remote_path, deadline)
        try:
            for off in range(0, len(data), chunk):
                part = data[off:off + chunk]
                got = self.exec(
                    "_d = binascii.a2b_base64(%r)\n"
                    "if len(_d) != %d or binascii.crc32(_d) & 0xFFFFFFFF != %d:\n"
                    "    raise ValueError('chunk at %d damaged on the way')\n"
                    "print(_f.write(_d))" % (base64.b64encode(part).decode(), len(part),
                                            binascii.crc32(part) & 0xFFFFFFFF, off), deadline)
                if got.strip() != str(len(part)):
                    raise _error("the board wrote %r of %d bytes at %d of %s" % (got.strip(), len(part), off,
                                                                                 remote_path))
                if progress is not None:
                    progress(off + len(part), len(data))
            size = self._json("_f.close()\ndel _f\nprint(os.stat(%r)[6])" % remote_path, deadline)
            if size != len(data):
                raise _error("%s on the board is %d bytes, %d were sent" % (remote_path, size, len(data)))
        except DepotError:
            if not self._broken:
                try:
                    self.exec("try:\n    _f.close()\nexcept Exception:\n    pass\n"
                              "try:\n    os.remove(%r)\nexcept OSError:\n    pass" % remote_path, 10.0)
                except DepotError:
                    pass
            raise
        return len(data)

    def sha256(self, remote_path, deadline=60.0):
        """The SHA-256 (hex) of a file on the board, read in 1 KB blocks."""
        return self._json(
            "import hashlib, binascii\n_h = hashlib.sha256()\n_b = bytearray(1024)\n"
            "with open(%r, 'rb') as _f:\n    while True:\n        _n = _f.readinto(_b)\n"
            "        if not _n:\n            break\n        _h.update(memoryview(_b)[:_n])\n"
            "print('\"%%s\"' %% binascii.hexlify(_h.digest()).decode())\ndel _h, _b, _f" % remote_path, deadline)

    def get(self, remote_path, chunk=512, deadline=30.0):
        """A file's bytes (base64 per chunk); for small files (staged configuration, checks in tests). 512 bytes a
        chunk: the board makes three ~700-byte strings of each, and a development board's heap after boot can lack
        a 1.4 KB hole ("MemoryError allocating 1369 bytes" with 1 KB chunks, CI 2026-12-03)."""
        import base64

        out = bytearray()
        while True:
            s = self._json("import binascii\nwith open(%r, 'rb') as _f:\n    _f.seek(%d)\n"
                           "    print('\"%%s\"' %% binascii.b2a_base64(_f.read(%d)).decode().strip())" % (
                               remote_path, len(out), chunk), deadline)
            part = base64.b64decode(s)
            out += part
            if len(part) < chunk:
                return bytes(out)

    def stat(self, remote_path):
        """(is_dir, size) of a path on the board, or None when there is nothing there."""
        r = self._json("import os\ntry:\n    _s = os.stat(%r)\n    print('[%%d, %%d]' %% (_s[0] & 0x4000, _s[6]))\n"
                       "except OSError:\n    print('null')" % remote_path)
        return None if r is None else (bool(r[0]), int(r[1]))

    def listdir(self, path="/"):
        """Names in a folder on the board (sorted)."""
        return sorted(self._json("import os, json\nprint(json.dumps(os.listdir(%r)))" % path))

    def mkdir(self, path):
        """Make a folder; one that is already there is fine (every retry must be idempotent)."""
        self.exec("import os\ntry:\n    os.mkdir(%r)\nexcept OSError as e:\n"
                  "    if os.stat(%r)[0] & 0x4000 == 0:\n        raise" % (path, path))

    def rename(self, src, dst):
        """os.rename on the board (atomic on LittleFS: the old name or the new, never half)."""
        self.exec("import os\nos.rename(%r, %r)" % (src, dst))

    def remove(self, path, recursive=False):
        """Remove a file or an empty folder (a folder and all in it when `recursive`); nothing there is fine."""
        self.exec(
            "import os\ndef _rm(p, r):\n    try:\n        m = os.stat(p)[0]\n    except OSError:\n        return\n"
            "    if m & 0x4000:\n        if r:\n            for n in os.listdir(p):\n"
            "                _rm(p.rstrip('/') + '/' + n, r)\n        os.rmdir(p)\n    else:\n        os.remove(p)\n"
            "_rm(%r, %r)\ndel _rm" % (path, bool(recursive)), 60.0)

    def statvfs(self, path="/"):
        """(free bytes, total bytes) of the filesystem holding `path`."""
        f = self._json("import os\nprint(list(os.statvfs(%r)))" % path)
        return f[0] * f[3], f[0] * f[2]
