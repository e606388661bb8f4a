"""The virtual board's power-on, imported by _vboot.py (run by the unix port; tests/vboard/relay.py starts it): connect to the host,
mount the vfs partition at / like the ESP32's _boot.py (formatting a blank one, as inisetup does), then run
/boot.py and, unless the board restarts into the raw REPL, /main.py, printing their tracebacks as a board does.

    import _vbinit; _vbinit.boot(globals())      # all of _vboot.py: the REPL's globals stay clean
"""
import sys
import json

import _vbrpc  # this folder is sys.path[0]: the stand-ins are imported now, before / becomes the board's flash

_vbrpc.CONFIG.update(json.load(open(sys.argv[1])))
_vbrpc.connect(_vbrpc.CONFIG["socket"])
import utime
import time
import machine
import esp32
import vfs
import os
import gc
import micropython

_BOOT_PY = """\
# This file is executed on every boot (including wake-boot from deepsleep)
#import esp
#esp.osdebug(None)
#import webrepl
#webrepl.start()
"""


def _mount(where):
    bdev = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="vfs")[0]
    try:
        fs = vfs.VfsLfs2(bdev)
    except OSError:
        head = bytearray(64)
        bdev.readblocks(0, head)
        if head != b"\xff" * 64:
            # ports/esp32/modules/inisetup.py: a foreign or damaged first sector is not reformatted.
            print("The filesystem appears to be corrupted. If you had important data there, you")
            print("may want to make a flash snapshot to try to recover it. Otherwise, perform")
            print("factory reprogramming of MicroPython firmware (completely erase flash, followed")
            print("by firmware programming).")
            while True:
                utime.sleep(1)
        print("Performing initial setup")
        vfs.VfsLfs2.mkfs(bdev)
        fs = vfs.VfsLfs2(bdev)
        vfs.mount(fs, where)
        with open(where.rstrip("/") + "/boot.py", "w") as f:
            f.write(_BOOT_PY)
        return
    vfs.mount(fs, where)


def _seed(listing):
    _mount("/flash")
    n = 0
    for line in open(listing):
        src, dest = line.rstrip("\n").split("\t")
        path = "/flash" + dest
        d = ""
        for part in path.split("/")[1:-1]:
            d += "/" + part
            try:
                os.mkdir(d)
            except OSError:
                pass
        with open(src, "rb") as fi, open(path, "wb") as fo:
            while True:
                b = fi.read(1024)
                if not b:
                    break
                fo.write(b)
        n += 1
    vfs.umount("/flash")
    print("seeded", n)


def _run(name, g):
    try:
        os.stat(name)
    except OSError:
        return
    try:
        with open(name) as f:
            src = f.read()
        exec(compile(src, name, "exec"), g)
    except BaseException as e:  # noqa: B036 - a board prints what main.py raised, KeyboardInterrupt too
        sys.print_exception(e)


def boot(g):
    mode = sys.argv[2] if len(sys.argv) > 2 else ""
    if mode == "seed":
        esp32._file()
        _seed(sys.argv[3])
        sys.exit(0)
    esp32._file()  # the flash file is opened while the host's filesystem is still mounted
    vfs.umount("/")
    _mount("/")
    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib"]
    del sys.argv[1:]
    gc.collect()
    _run("boot.py", g)
    if mode != "raw":
        _run("main.py", g)

