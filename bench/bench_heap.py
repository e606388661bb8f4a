"""Heap after boot, as .mpy from the vfs and frozen, on 32- and 64-bit MicroPython: what the ESP32's ~100 KB holds.

    PYTHONPATH=.:firmware:tests .venv/bin/python bench/bench_heap.py [--imports-only] [--json]

Two measurements, each on every interpreter found:
- imports: gc.mem_alloc() after importing each module a PSAM board's app imports, in boot order, as .mpy
  (mpy-cross of the manifest) or frozen; the interpreter's own built-ins are imported first, so only our code
  counts (the WebAssembly port's `binascii` alone is a 7.5 KB Python module; the ESP32's is C).
- boot: the app on the virtual board (tests/vboard) with the PN532 and PSAM simulators, one card charged, then
  gc.collect() and gc.mem_alloc() over the real mpremote, minus the same board with nothing but its stand-ins
  (machine.py, esp32.py, time.py, the RPC: C and ROM on an ESP32, Python source here).
Interpreters: the venv's unix port (64-bit, what the tests run), the WebAssembly port (imports only), and the
unix ports tools/mpunix.py builds into build/mpunix (micropython-32, -64, -32-frozen, -64-frozen) when present.
The 32-bit unix port is the ESP32 stand-in (4-byte pointers, 16-byte GC blocks); the derivation of the virtual
board's heap (tests/vboard/virtual.py) from these figures is printed at the end.
"""
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "firmware"), str(ROOT / "tests")]

from tools import manifest  # noqa: E402
from vboard import Board, micropython_command  # noqa: E402
from vboard.virtual import compile_for_board  # noqa: E402

MPUNIX = ROOT / "build" / "mpunix"
BUILTINS = "gc, sys, time, binascii, micropython, struct, json, os, errno, select"
# A PSAM board's boot, in the order app.boot imports them (tunion.des, crypto and softsam only without a PSAM).
MODULES = ("tunion.compat tunion.errors tunion.outcome tunion.version tunion.clock tunion.apdu tunion.record "
           "tunion.segment tunion.journal tunion.jmeta tunion.jpins tunion.flashmount tunion.flashjournal "
           "tunion.config tunion.denylist tunion.psam tunion.cardfiles tunion.card tunion.rules tunion.recovery "
           "tunion.purchase tunion.messages tunion.glyphdata tunion.glyphs tunion.display app.errlog "
           "app.validator app.service app.boot drivers.rtc drivers.atr drivers.psam_t0 drivers.digitalio "
           "drivers.pn532 drivers.pn532_uart drivers.screen drivers.feedback").split()
SOFT_SAM = ["tunion.des", "tunion.crypto", "tunion.softsam"]
IMPORTS = """import %s
gc.collect()
base = prev = gc.mem_alloc()
out = []
for m in %r:
    __import__(m)
    gc.collect()
    a = gc.mem_alloc()
    out.append((m, a - prev))
    prev = a
print("HEAPJSON", json.dumps(out))
""" % (BUILTINS, MODULES + SOFT_SAM)


def interpreters():
    found = [("unix64", micropython_command(), False)]
    for name, frozen in (("micropython-32", False), ("micropython-64", False), ("micropython-32-frozen", True),
                         ("micropython-64-frozen", True)):
        if (MPUNIX / name).exists():
            found.append((name.replace("micropython-", "unix"), str(MPUNIX / name), frozen))
    return [f for f in found if f[1]]


def mpy_tree(tmp):
    """The manifest's /lib files compiled as they go on a board, laid out as a MICROPYPATH folder."""
    lib = Path(tmp) / "lib"
    files = [(s, d) for s, d in manifest.board_files("esp32-generic") if d.startswith("/lib/")]
    for src, dest in compile_for_board(files, Path(tmp) / "build"):
        p = lib / dest[len("/lib/"):]
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, p)
    return lib


def imports(exe, lib, frozen, tmp):
    script = Path(tmp) / "imports.py"
    script.write_text(IMPORTS)
    path = ".frozen" if frozen else str(lib)
    p = subprocess.run([exe, "-X", "heapsize=4M", str(script)], capture_output=True, text=True, timeout=120,
                       env={"MICROPYPATH": path, "PATH": "/usr/bin:/bin"})
    return _parse(p)


def imports_wasm(lib, tmp):
    script = Path(tmp) / "imports.py"
    script.write_text(IMPORTS)
    p = subprocess.run(["node", str(ROOT / "tests" / "mp" / "run.mjs"), "--firmware", str(lib), "--script",
                        str(script)], capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    return _parse(p)


def _parse(p):
    for line in p.stdout.splitlines():
        if line.startswith("HEAPJSON "):
            return dict(json.loads(line[9:]))
    raise RuntimeError("no figures:\n" + p.stdout[-2000:] + p.stderr[-2000:])


def boot(exe, tmp, app=True):
    """(mem_alloc after boot and one tap, mem_free) on the virtual board; app=False: the stand-ins alone."""
    from tunion.config import DEFAULT
    from vboard.chips import attach_pn532, attach_psam
    from mpremote.transport_serial import SerialTransport

    folder = Path(tempfile.mkdtemp(dir=tmp))
    files = list(manifest.board_files("esp32-generic"))
    if not app:
        files = [f for f in files if f[1].endswith("pins.py")]
    cfg = folder / "config.json"
    cfg.write_text(json.dumps(DEFAULT))
    files.append((cfg, "/config.json"))
    b = Board(folder / "board", files=files, rtc=datetime_at(), heap="600k", micropython=exe)
    chip, sam = attach_pn532(b), attach_psam(b)
    with b:
        t0 = time.monotonic()
        try:
            _steps(b, chip, app)
        except RuntimeError:
            raise RuntimeError("%s: %s" % (exe, b.output[-1500:].decode(errors="replace")))
        first = time.monotonic() - t0
        t = SerialTransport(b.port, baudrate=115200, timeout=2)
        try:
            t.enter_raw_repl(soft_reset=False)
            t.exec("import gc, machine, esp32, time, framebuf, vfs; gc.collect()")
            alloc, free = t.eval("(gc.mem_alloc(), gc.mem_free())")
        finally:
            t.close()
    return alloc, free, first


def _steps(b, chip, app):
    from sim.card import SimCard

    if app:
        _wait(lambda: chip.chip.commands.get(0x4A, 0) > 0)
        card = SimCard(balance=5000)
        b.place_card(card)
        _wait(lambda: card.balance == 4800)
        b.remove_card()
        n = chip.chip.commands.get(0x4A, 0)
        _wait(lambda: chip.chip.commands.get(0x4A, 0) > n + 2)
    else:
        time.sleep(1.0)


def datetime_at():
    from datetime import datetime

    return datetime(2026, 12, 1, 8, 0, 0)


def _wait(cond, timeout=60.0):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise RuntimeError("the virtual board did not get there")
        time.sleep(0.02)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    res = {"imports": {}, "boot": {}}
    with tempfile.TemporaryDirectory() as tmp:
        lib = mpy_tree(tmp)
        res["mpy_bytes"] = {p.relative_to(lib).as_posix(): p.stat().st_size for p in sorted(lib.rglob("*.mpy"))}
        for name, exe, frozen in interpreters():
            res["imports"][name] = imports(exe, lib, frozen, tmp)
        if shutil.which("node") and (ROOT / "node_modules").exists():
            res["imports"]["wasm32"] = imports_wasm(lib, tmp)
        if "--imports-only" not in argv:
            for name, exe, frozen in interpreters():
                alloc, free, first = boot(exe, tmp)
                base = boot(exe, tmp, app=False)[0]
                res["boot"][name] = {"alloc": alloc, "standins": base, "app": alloc - base, "first_tap_s": first}
    if "--json" in argv:
        print(json.dumps(res, indent=1))
        return 0
    cols = list(res["imports"])
    print("heap per module, bytes (imports in boot order; PSAM board; the soft SAM's three last)")
    print("%-30s %7s " % ("module", ".mpy") + " ".join("%13s" % c for c in cols))
    for m in MODULES + SOFT_SAM:
        mpy = res["mpy_bytes"].get(m.replace(".", "/") + ".mpy", 0)
        print("%-30s %7d " % (m, mpy) + " ".join("%13d" % res["imports"][c].get(m, 0) for c in cols))
    print("%-30s %7d " % ("total, PSAM board", sum(res["mpy_bytes"].get(m.replace(".", "/") + ".mpy", 0)
                                                     for m in MODULES))
          + " ".join("%13d" % sum(res["imports"][c].get(m, 0) for m in MODULES) for c in cols))
    for name, f in res["boot"].items():
        print("boot + one tap, %-13s: %7d B allocated, stand-ins alone %6d, the app %7d (first charge %.2f s)"
              % (name, f["alloc"], f["standins"], f["app"], f["first_tap_s"]))
    B = res["boot"]
    if all(k in B for k in ("unix32", "unix64", "unix32-frozen", "unix64-frozen")):
        r_mpy = B["unix64"]["app"] / B["unix32"]["app"]
        r_obj = B["unix64-frozen"]["app"] / B["unix32-frozen"]["app"]
        code64 = B["unix64"]["app"] - B["unix64-frozen"]["app"]
        print("64/32-bit: %.2f loaded as .mpy, %.2f for what a frozen build keeps in RAM" % (r_mpy, r_obj))
        print("ESP32 (32-bit stand-in): the app holds %.1f KB loaded as .mpy, %.1f KB frozen, of ~100 KB"
              % (B["unix32"]["app"] / 1024, B["unix32-frozen"]["app"] / 1024))
        print("virtual-board heap = code the frozen build keeps in flash, on this port (%.1f KB) + 100 KB x %.2f"
              " = %.0f KB" % (code64 / 1024, r_obj, (code64 + 100 * 1024 * r_obj) / 1024))
    return 0


if __name__ == "__main__":
    sys.exit(main())
