"""Deploy figures (issue 9): the whole application deployed to a virtual board over a 115200-baud link, and the
same deploy again when nothing has changed (every file's SHA-256 checked on the board, nothing sent).

    PYTHONPATH=.:firmware:tests .venv/bin/python bench/bench_deploy.py [--runs 2]

The board (tests/vboard, the real link over its pty) is seeded with the application; each run deploys a new build
(the board's manifest plus one small module, so every file is new) through `host_tools.deploy.deploy`. The pty is
throttled to 115200 baud, 10 bits a byte both ways (tests/vboard/relay.py); the board side runs at the unix port's
speed and writes LittleFS to a host file, not the ESP32's flash.
"""
import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "firmware", ROOT / "tests"):
    sys.path.insert(0, str(p))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args(argv)
    from host_tools import link
    from host_tools.deploy import deploy
    from tools import manifest
    from tunion.config import DEFAULT
    from vboard import Board, micropython_command
    from vboard.chips import attach_pn532, attach_psam

    if micropython_command() is None:
        print("deploy: skipped (the MicroPython unix port is not installed)")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        tmp = Path(tmp)
        cfg = tmp / "config.json"
        cfg.write_text(json.dumps(DEFAULT))
        b = Board(tmp / "board", files=manifest.board_files("esp32-generic") + [(cfg, "/config.json")],
                  rtc=datetime(2026, 12, 1, 8), heap="400k", baud=115200)
        attach_pn532(b)
        attach_psam(b)
        with b:
            b.wait_for(link.READY, 60)
            for run in range(1, a.runs + 1):
                d = tmp / ("v%d" % run)
                d.mkdir()
                (d / "bench_probe.py").write_text("RUN = %d\n" % run)
                (d / "manifest.py").write_text('include("$(PROJECT)/boards/esp32-generic/manifest.py")\n'
                                               'module("bench_probe.py", base_path="%s")\n' % d)
                t0 = time.monotonic()
                r = deploy(b.port, "esp32-generic", manifest_path=d / "manifest.py")
                whole = time.monotonic() - t0
                t0 = time.monotonic()
                deploy(b.port, "esp32-generic", manifest_path=d / "manifest.py")
                check = time.monotonic() - t0
                print("deploy at 115200, run %d: %d files, %d B: %.1f s (build %.2f s, copy and check %.1f s); "
                      "unchanged, checked only: %.1f s" % (run, r["files"], r["app_bytes"], whole, r["build_s"],
                                                          r["board_s"], check))
    return 0


if __name__ == "__main__":
    sys.exit(main())
