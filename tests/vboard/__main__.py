"""Start a virtual board and keep it running until Ctrl-C:

    PYTHONPATH=tests .venv/bin/python -m vboard --dir /tmp/board1 [--real-time] [--seed] [--heap 323k]
    .venv/bin/mpremote connect <the port it prints> repl
"""
import argparse
import signal
import sys
import threading

from . import Board, VBoardError
from .virtual import DEFAULT_HEAP


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m vboard", description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="the board's folder: flash.bin, ctl.sock, config.json")
    ap.add_argument("--board", default="esp32-generic", help="boards/<board>: partitions.csv and manifest.py")
    ap.add_argument("--real-time", action="store_true", help="sleeps take real time (default: fast, sleeps skip)")
    ap.add_argument("--seed", action="store_true", help="install boards/<board>/manifest.py into the vfs first")
    ap.add_argument("--baud", type=int, default=None, help="throttle the serial link to this UART rate (e.g. 115200)")
    ap.add_argument("--heap", default=DEFAULT_HEAP, help="MicroPython heap (the 64-bit equivalent of the ESP32's ~100 KB: DEFAULT_HEAP in virtual.py)")
    a = ap.parse_args(argv)
    files = ()
    if a.seed:
        from tools.manifest import board_files

        files = board_files(a.board)
    try:
        b = Board(a.dir, files=files, fast=not a.real_time, heap=a.heap, board=a.board, baud=a.baud).start()
    except VBoardError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    print("port:       %s" % b.port)
    print("controller: %s" % b.sock)
    print("flash:      %s" % b.flash)
    print("clock:      %s" % ("real time" if a.real_time else "fast (sleeps skip ahead)"))
    sys.stdout.flush()
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
