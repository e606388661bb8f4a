"""/boot.py on the board: put the active application folder on sys.path, or the previous one if it is not whole.

    # the manifest copies this file to the board as /boot.py; MicroPython runs it at every boot (also a raw-REPL
    # soft reset), then /main.py (`import pins; from app.boot import boot`) imports from the chosen folder.

/app.ptr holds "<active id>\\n<previous id>\\n"; each folder /apps/<id> ends with a MANIFEST ("<sha256> <size>
<path>" a line) that the depot writes only after it has checked every file's SHA-256 on the board, so a folder
without one, or with a file missing or of the wrong size, was cut while being written: skip it (issue 9
"deploy": a cut mid-deploy leaves the old application running). The switch is one rename of /app.ptr.new over
/app.ptr (atomic on LittleFS); where a rename cannot replace a file the depot removes /app.ptr first, so a
missing pointer means the .new one is whole. Nothing usable: sys.path keeps /lib (the layout before folders).
"""


def _whole(folder):
    import os

    try:
        f = open(folder + "/MANIFEST")
    except OSError:
        return False
    try:
        n = 0
        for line in f:
            part = line.split()
            if len(part) != 3 or os.stat(folder + "/" + part[2])[6] != int(part[1]):
                return False
            n += 1
        return n > 0
    except (OSError, ValueError):
        return False
    finally:
        f.close()


def _names():
    for p in ("/app.ptr", "/app.ptr.new"):
        try:
            f = open(p)
        except OSError:
            continue
        try:
            return f.read().split()
        finally:
            f.close()
    return []


def _choose():
    import sys

    for name in _names():
        folder = "/apps/" + name
        if "/" not in name and _whole(folder):
            sys.path[:] = ["", folder] + [p for p in sys.path if p not in ("", "/lib")]
            return folder
    return None


try:
    APP = _choose()
except Exception as e:  # noqa: B902 - boot.py must never stop the board booting: keep /lib and say why
    APP = None
    print("boot.py:", repr(e))
del _whole, _names, _choose
__import__("gc").collect()  # the app boots next in the same heap: leave it this file's compile garbage-free
