"""Build MicroPython's unix port from a MicroPython source tree, 32- or 64-bit, optionally with a board's modules
frozen: the stand-in for the ESP32 in the heap figures (docs/performance.md, "Heap after boot").

    python -m tools.mpunix --src ~/src/micropython --bits 32                      # -> build/mpunix/micropython-32
    python -m tools.mpunix --src ~/src/micropython --bits 32 --freeze esp32-generic   # -> .../micropython-32-frozen

Why a build of our own: the WebAssembly port (tests/mp) is 32-bit, but its `pyscript` variant (v1.27) holds
about 1.2x what the 32-bit unix port holds for the same imports (176 KB against 145 KB, 2026-12-02), and it
cannot freeze our modules. The unix port built with -m32 has the ESP32's object layout (4-byte pointers, 16-byte
GC blocks, 31-bit small ints) and the same .mpy loader; with `--freeze` it runs the board's modules as a frozen
ESP32 image would (bytecode, constants and qstrs in the binary, not the heap). Note: a frozen binary also knows
the frozen modules' qstrs, so .mpy files loaded beside it look ~40 KB cheaper than they are: measure .mpy
loading on a build without --freeze.
Needs gcc with 32-bit libraries for --bits 32 (Debian: `apt-get install gcc-multilib`). The tree's submodules are
not needed: btree, ssl and ffi are left out, and a stand-in micropython-lib folder satisfies the frozen build's
check (nothing is taken from it). The source tree is only read; objects go under its ports/unix/build-tunion-*.
"""
import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "mpunix"


class BuildError(RuntimeError):
    pass


def build(src, bits=32, freeze=None, out=OUT, jobs=2):
    """Build the unix port; returns the Path of the binary copied to out (micropython-<bits>[-frozen])."""
    src, out = Path(src).resolve(), Path(out).resolve()
    if not (src / "ports" / "unix" / "Makefile").is_file():
        raise BuildError("%s is not a MicroPython source tree (no ports/unix/Makefile)" % src)
    out.mkdir(parents=True, exist_ok=True)
    name = "micropython-%d%s" % (bits, "-frozen" if freeze else "")
    manifest = out / (name + "-manifest.py")
    if freeze:
        from tools.manifest import freeze_manifest

        manifest.write_text(freeze_manifest(freeze, port_manifest=None))
    else:
        manifest.write_text("# nothing frozen\n")
    mpylib = out / "mpylib"  # the frozen build checks that micropython-lib is there; nothing is read from it
    mpylib.mkdir(exist_ok=True)
    (mpylib / "README.md").write_text("stand-in: tools/mpunix.py freezes nothing from micropython-lib\n")
    flags = ["VARIANT=standard", "BUILD=build-tunion-" + name, "PROG=" + name, "FROZEN_MANIFEST=%s" % manifest,
             "MPY_LIB_DIR=%s" % mpylib, "MICROPY_PY_BTREE=0", "MICROPY_PY_FFI=0", "MICROPY_PY_SSL=0",
             "MICROPY_SSL_MBEDTLS=0"]
    if bits == 32:
        flags += ["CFLAGS_EXTRA=-m32", "LDFLAGS_EXTRA=-m32"]
    for cmd in (["make", "-C", str(src / "mpy-cross"), "-j%d" % jobs],
                ["make", "-C", str(src / "ports" / "unix"), "-j%d" % jobs] + flags):
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise BuildError("%s failed:\n%s" % (" ".join(cmd[:3]), (p.stdout + p.stderr)[-3000:]))
    exe = src / "ports" / "unix" / ("build-tunion-" + name) / name
    dest = out / name
    shutil.copy2(exe, dest)
    return dest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", required=True, help="a MicroPython source tree (git checkout or archive)")
    ap.add_argument("--bits", type=int, choices=(32, 64), default=32)
    ap.add_argument("--freeze", metavar="BOARD", help="freeze boards/BOARD/manifest.py's /lib modules")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    try:
        print(build(a.src, a.bits, a.freeze, a.out))
    except BuildError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
