"""Run Python under the real MicroPython interpreter (WebAssembly build, via Node) and capture what it prints.

    from tools.mprun import run_script
    out = run_script("bench/bench_des.py", ["--rounds", "100"])   # stdout; raises MicroPythonError on failure

    python -m tools.mprun bench/bench_des.py --rounds 100          # the same from a shell
    python -m tools.mprun -c "import tunion.des; print('ok')"

The VM sees firmware/ and tests/ (sys.path) and bench/ under /mp/..., and the script's own folder first on
sys.path, like CPython. Its heap defaults to 16 MB and grows past that: measure memory with gc.mem_alloc() deltas.
Needs `node` (>= 18) and `npm ci` (package.json pins @micropython/micropython-webassembly-pyscript).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "tests" / "mp" / "run.mjs"
WASM_PACKAGE = ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs"
MPCASES = ROOT / "tests" / "mpcases"
DEFAULT_TIMEOUT = float(os.environ.get("TUNION_MP_TIMEOUT", "900"))
_CASE_DEF = re.compile(r"^def (case_\w+)\s*\(", re.M)


def case_modules():
    """tests/mpcases/*_cases.py, sorted: the modules whose case_* functions run on CPython and MicroPython."""
    return sorted(MPCASES.glob("*_cases.py"))


def case_names(path):
    """The case_* functions defined at the top level of a cases file, in file order (read, not imported)."""
    seen = []
    for name in _CASE_DEF.findall(Path(path).read_text(encoding="utf-8")):
        if name not in seen:
            seen.append(name)
    return seen


class MicroPythonError(RuntimeError):
    """The MicroPython run failed: a Python exception, sys.exit(n != 0), or the runner could not start."""

    def __init__(self, message, returncode=None, stdout="", stderr=""):
        super().__init__(message)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __str__(self):
        text = super().__str__()
        if self.stderr.strip():
            text += "\n--- stderr ---\n" + self.stderr.rstrip()
        if self.stdout.strip():
            tail = "\n".join(self.stdout.rstrip().splitlines()[-40:])
            text += "\n--- stdout (last lines) ---\n" + tail
        return text


def node_command():
    """The `node` executable, or MicroPythonError saying how to get it."""
    node = os.environ.get("NODE") or shutil.which("node")
    if not node:
        raise MicroPythonError("`node` is not on PATH: install Node.js >= 18 (e.g. apt-get install nodejs)")
    if not WASM_PACKAGE.exists():
        raise MicroPythonError("the MicroPython WebAssembly package is missing: run `npm ci` (or `make node_modules`)")
    return node


def run(runner_args, timeout=DEFAULT_TIMEOUT, heap=None, firmware=None):
    """Run tests/mp/run.mjs with these arguments; return subprocess.CompletedProcess (text, never raises on rc)."""
    cmd = [node_command(), str(RUNNER)]
    if heap:
        cmd += ["--heap", str(heap)]
    if firmware:
        cmd += ["--firmware", str(firmware)]
    cmd += [str(a) for a in runner_args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise MicroPythonError("MicroPython run timed out after %ss: %s" % (timeout, " ".join(cmd[2:])), None, out, err)


def _checked(proc, what):
    if proc.returncode != 0:
        raise MicroPythonError("%s failed under MicroPython (exit %d)" % (what, proc.returncode), proc.returncode,
                               proc.stdout, proc.stderr)
    return proc.stdout


def run_script(path, args=(), heap=None, firmware=None, timeout=DEFAULT_TIMEOUT, check=True):
    """Run a Python file as __main__ under MicroPython with sys.argv = [path, *args]; return its stdout.

    With check=False, return the CompletedProcess instead of raising on a non-zero exit.
    """
    proc = run(["--script", str(path)] + [str(a) for a in args], timeout=timeout, heap=heap, firmware=firmware)
    return _checked(proc, str(path)) if check else proc


def run_code(code, heap=None, firmware=None, timeout=DEFAULT_TIMEOUT, check=True):
    """Run a string of Python under MicroPython; return its stdout (or the CompletedProcess with check=False)."""
    proc = run(["-c", code], timeout=timeout, heap=heap, firmware=firmware)
    return _checked(proc, "code") if check else proc


def run_cases(module_file, only=None, heap=None, firmware=None, timeout=DEFAULT_TIMEOUT):
    """Run every case_* function of a tests/mpcases module in one VM.

    Returns (results, proc): results maps case name (or "<import>") to a dict with ok, ms, alloc (bytes from
    gc.mem_alloc() across the call), error (traceback text or None).
    """
    fd, out_json = tempfile.mkstemp(prefix="mpcases-", suffix=".json")
    os.close(fd)
    try:
        args = ["--cases", str(module_file), "--json", out_json]
        if only:
            args += ["--only", ",".join(only)]
        proc = run(args, timeout=timeout, heap=heap, firmware=firmware)
        try:
            with open(out_json) as f:
                data = json.load(f)
        except ValueError:  # the runner died before writing it
            data = {"results": []}
    finally:
        os.unlink(out_json)
    return {r["name"]: r for r in data["results"]}, proc


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        cmd = [node_command(), str(RUNNER)] + argv
    except MicroPythonError as e:
        print("mprun: %s" % e, file=sys.stderr)
        return 2
    if argv[0] not in ("-c", "--cases", "--script") and not argv[0].startswith("--"):
        cmd = [cmd[0], str(RUNNER), "--script"] + argv
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
