"""The firmware builds for the ESP32: mpy-cross per file, pyright against the board's stubs, MicroPython-only
habits, and the .mpy bytecode imports and passes the cases under the MicroPython interpreter.

pyright needs `npm ci` (node_modules/.bin/pyright) and ./typings (`make typings`: micropython-esp32-stubs +
micropython-stdlib-stubs installed with pip --target).
"""
import ast
import json
import os
import shutil
import subprocess
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tools import mprun, mpybuild

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
TYPINGS = ROOT / "typings"
PYRIGHT = ROOT / "node_modules" / ".bin" / "pyright"
SOURCES = mpybuild.source_files(FIRMWARE)
IDS = [p.relative_to(FIRMWARE).as_posix() for p in SOURCES]


# ---- (a) every firmware file compiles for the ESP32 --------------------------------------------------------------

@pytest.mark.parametrize("path", SOURCES, ids=IDS)
def test_compiles_with_mpy_cross_for_esp32(path, tmp_path):
    out = mpybuild.compile_file(path, tmp_path / "x.mpy", march=mpybuild.ESP32_MARCH)
    assert out.read_bytes()[:2] == b"M\x06"  # .mpy format version 6 (MicroPython 1.22 and later)


def test_mpy_cross_rejects_what_micropython_cannot_run(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x, /):\n    match x:\n        case 1:\n            return 2\n")
    with pytest.raises(mpybuild.BuildError):
        mpybuild.compile_file(bad, tmp_path / "bad.mpy")


# ---- (b) habits the interpreters cannot check for us (tests on CPython run; MicroPython on the board fails) ----

# In typings/stdlib only so that the stubs can be written: the ESP32 firmware has none of these.
STUB_ONLY = {"__future__", "_ast", "_codecs", "_collections_abc", "_decimal", "_typeshed", "_mpy_shed", "abc",
             "enum", "sre_compile", "sre_constants", "sre_parse", "types", "typing", "typing_extensions"}


def _guarded(node, parents):
    # In the body of `try: ... except ImportError:`, or under `if TYPE_CHECKING:` / `if False:`: fine.
    chain = parents.get(node, ()) + (node,)
    for i, p in enumerate(chain[:-1]):
        inner = chain[i + 1]
        if isinstance(p, ast.Try) and inner in p.body and any(
            h.type is None or any(n in ast.dump(h.type) for n in ("ImportError", "Exception")) for h in p.handlers
        ):
            return True
        if isinstance(p, ast.If) and inner in p.body and any(
            n in ast.dump(p.test) for n in ("TYPE_CHECKING", "value=False")
        ):
            return True
    return False


def micropython_habit_problems(source, filename="<src>"):
    """[(line, message)] for CPython-only habits in firmware source (see the preamble and tooling.md)."""
    tree = ast.parse(source, filename)
    parents = {}

    def walk(node, chain):
        for child in ast.iter_child_nodes(node):
            parents[child] = chain + (node,)
            walk(child, chain + (node,))

    walk(tree, ())
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.split(".")[0] in STUB_ONLY and not _guarded(node, parents):
                    problems.append((node.lineno, "imports %s, which the ESP32 firmware does not have" % name))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            if attr in ("from_bytes", "to_bytes") and node.keywords:
                problems.append((node.lineno, "%s() with keyword arguments (MicroPython takes none)" % attr))
            if attr in ("startswith", "endswith") and node.args and isinstance(node.args[0], ast.Tuple):
                problems.append((node.lineno, "%s() with a tuple (not on the ESP32 port)" % attr))
    return sorted(problems)


@pytest.mark.parametrize("path", SOURCES, ids=IDS)
def test_no_cpython_only_habits(path):
    problems = micropython_habit_problems(path.read_text(encoding="utf-8"), str(path))
    assert not problems, "\n".join("%s:%d: %s" % (path.relative_to(ROOT), n, m) for n, m in problems)


def test_habit_check_catches_each_habit():
    src = (
        "import typing\nfrom enum import Enum\n"
        "try:\n    from typing import List\nexcept ImportError:\n    pass\n"
        "n = int.from_bytes(b'12', byteorder='big')\nok = int.from_bytes(b'12', 'big')\n"
        "s = 'ab'.startswith(('a', 'b'))\nt = 'ab'.startswith('a')\n"
        "try:\n    import ure\nexcept ImportError:\n    import abc\n"
    )
    assert [n for n, _ in micropython_habit_problems(src)] == [1, 2, 7, 9, 14]


# ---- (c) pyright against the ESP32 stubs ------------------------------------------------------------------------

def _pyright_config():
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["pyright"]


def _pyright(project_dir):
    if not PYRIGHT.exists():
        pytest.fail("pyright is not installed: run `npm ci` (package.json pins it)")
    if not (TYPINGS / "machine.pyi").exists():
        pytest.fail("./typings is missing: run `make typings` (ESP32 + stdlib stubs, pip --target)")
    true = shutil.which("true") or "/bin/true"  # not a Python: keeps the host's stdlib out (tooling.md)
    proc = subprocess.run(
        [str(PYRIGHT), "--outputjson", "--pythonpath", true, "--project", str(project_dir)],
        capture_output=True, text=True, cwd=str(project_dir), timeout=300,
    )
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail("pyright did not answer JSON (exit %d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    return proc, report


def _format(diags):
    return "\n".join(
        "%s:%d: %s: %s (%s)" % (d["file"], d["range"]["start"]["line"] + 1, d["severity"], d["message"],
                                d.get("rule", ""))
        for d in diags
    )


def test_pyright_firmware_against_esp32_stubs():
    proc, report = _pyright(ROOT)
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    assert report["summary"]["filesAnalyzed"] >= len(SOURCES) - 1
    assert not errors and proc.returncode == 0, _format(errors)


def test_pyright_catches_what_the_board_lacks(tmp_path):
    # The same settings as the firmware check, on a file that uses things the ESP32 has not got.
    cfg = dict(_pyright_config())
    cfg.update(include=["fw"], typeshedPath=str(TYPINGS), stubPath=str(TYPINGS), extraPaths=["fw", str(FIRMWARE)])
    (tmp_path / "pyrightconfig.json").write_text(json.dumps(cfg))
    (tmp_path / "fw").mkdir()
    (tmp_path / "fw" / "bad.py").write_text(
        "import dataclasses\n"            # 1: CPython only
        "import machine\n"
        "import time\n"
        "machine.NotThere()\n"            # 4: not on the board
        "time.monotonic()\n"              # 5: not in MicroPython's time
        "from tunion.nothere import x\n"  # 6: no such core module
        "import functools\n"              # 7: not in the ESP32 firmware
    )
    (tmp_path / "fw" / "good.py").write_text(
        "import machine\nimport time\nimport struct\nfrom micropython import const\n"
        "from tunion.compat import ticks_diff\n"
        "_X = const(3)\npin = machine.Pin(2, machine.Pin.OUT)\nt = time.ticks_ms()\n"
        "d = ticks_diff(time.ticks_ms(), t)\nb = struct.pack('>H', _X)\nn = int.from_bytes(b, 'big')\n"
    )
    proc, report = _pyright(tmp_path)
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    where = sorted((Path(d["file"]).name, d["range"]["start"]["line"] + 1) for d in errors)
    assert where == [("bad.py", n) for n in (1, 4, 5, 6, 7)], _format(errors)
    assert proc.returncode == 1


# ---- (d) the .mpy build imports and passes the cases under MicroPython --------------------------------------------

@pytest.mark.micropython
def test_mpy_build_runs_under_micropython(tmp_path):
    out = tmp_path / "mpy"
    built = mpybuild.compile_tree(FIRMWARE, out)
    assert len(built) == len(SOURCES)
    core = sorted(p.relative_to(out).with_suffix("").as_posix().replace("/", ".")
                  for p in (out / "tunion").rglob("*.mpy"))
    code = "import sys\n" + "".join("import %s\n" % m.replace(".__init__", "") for m in core)
    code += "print(sum(1 for m in sys.modules if m.startswith('tunion')))\n"
    proc = mprun.run_code(code, firmware=out, check=False)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) >= len(core) - 1
    # No .py left to fall back on: the imports above came from the .mpy files.
    assert not list(out.rglob("*.py"))
    paths = mprun.case_modules()
    with ThreadPoolExecutor(max_workers=max(1, min(len(paths), os.cpu_count() or 1))) as pool:
        runs = list(pool.map(lambda p: mprun.run_cases(p, firmware=out), paths))
    for path, (results, proc) in zip(paths, runs):
        assert proc.returncode == 0, "%s against the .mpy build:\n%s%s" % (path.name, proc.stdout, proc.stderr)
