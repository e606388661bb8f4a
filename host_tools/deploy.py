"""`tunion-depot deploy`: put the whole application on a board as a new folder, check it there, switch by rename.

    tunion-depot --port /dev/ttyUSB0 deploy --board esp32-generic

    from host_tools.deploy import build, deploy
    lay = build("esp32-generic", tmp)           # compiled and checked offline: lay.id, lay.app, lay.root
    deploy("/dev/ttyUSB0", "esp32-generic")     # {"id": ..., "previous": ..., "sent": 45, "bytes": 74213, ...}

Steps (issue 9 "deploy"; the layout is tools/manifest.py's, read at boot by firmware/app/loader.py as /boot.py):
1. offline: read boards/<board>/manifest.py; the files it takes from installed wheels (require(): adafruit_pn532)
   must match their wheel's RECORD hashes (importlib.metadata), else nothing is written; compile the rest with
   mpy-cross -march=xtensawin;
2. on the board: write every file into /apps/<id>.stage (a retry keeps the files already there whose SHA-256
   matches), check every file's SHA-256 there, write its MANIFEST last and rename the folder to /apps/<id>;
3. replace /boot.py and /main.py (only if they differ) each by a checked .new file and a rename;
4. the switch: /app.ptr.new ("<new id>\\n<old id>\\n"), checked, renamed over /app.ptr (atomic on LittleFS);
5. remove the folders that are neither the new nor the previous (before step 2, all but the running one and the
   target already went, to make room), and restart the app; if it does not come up
   (no READY), switch the pointer back to the previous folder and restart again.
Configuration (/config.json, the denylist, keys) and the journal are never touched. A cut anywhere before step 4's
rename leaves the pointer naming the old folder (the loader also skips a folder without its whole MANIFEST); a cut
after it boots the new one, which is already whole. A tool killed mid-way leaves the board in the raw REPL with
the app's watchdog unfed: it resets within 8 s (app/boot.py _WDT_MS) into the old application.
"""
import base64
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import click

from host_tools.errors import DepotError

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tools/ (the manifest reader) is the checkout's, beside firmware/ and boards/
    sys.path.insert(0, str(ROOT))
from tools import manifest  # noqa: E402
from tools.mpybuild import ESP32_MARCH as MARCH, BuildError, compile_many  # noqa: E402
STAGE = ".stage"


# ---- offline: check the wheels, compile ------------------------------------------------------------------------

def check_wheels(wheels):
    """Every file taken from an installed wheel has the size and SHA-256 its RECORD says; DepotError otherwise."""
    for src, (dist, rel) in sorted(wheels.items(), key=lambda kv: str(kv[0])):
        name = "%s %s" % (dist.metadata["Name"], dist.version)
        entry = next((f for f in (dist.files or ()) if f.as_posix() == rel), None)
        if entry is None or entry.hash is None or entry.hash.mode != "sha256":
            raise DepotError("%s is not recorded with a SHA-256 in the %s wheel's RECORD: nothing written" % (
                rel, name), code=2)
        data = Path(src).read_bytes()
        got = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        if got != entry.hash.value or (entry.size is not None and entry.size != len(data)):
            raise DepotError("%s differs from the %s wheel's RECORD (sha256 %s, recorded %s): reinstall it "
                             "(pip install --force-reinstall %s==%s); nothing written" % (
                                 src, name, got, entry.hash.value, dist.metadata["Name"], dist.version), code=2)


def build(board, out, manifest_path=None):
    """The Layout of boards/<board>/manifest.py (or manifest_path) compiled into folder `out`."""
    path = Path(manifest_path) if manifest_path else manifest.BOARDS / board / "manifest.py"
    try:
        files, _, wheels = manifest.read(path, wheels=True)
    except manifest.ManifestError as e:
        raise DepotError("manifest: %s" % e, code=2) from None
    check_wheels(wheels)
    out = Path(out)
    pairs, jobs = [], []
    for src, dest in files:
        if dest.startswith(manifest.LIB) and dest.endswith(".py"):
            mpy = (out / dest[len(manifest.LIB):]).with_suffix(".mpy")
            jobs.append((src, mpy, manifest.source_name(dest)))
            pairs.append((mpy, dest[:-3] + ".mpy"))
        else:
            pairs.append((src, dest))
    try:
        compile_many(jobs, MARCH)
    except BuildError as e:
        msg = str(e).strip().splitlines()
        raise DepotError("%s %s" % (msg[0], msg[-1] if len(msg) > 1 else "failed"), code=2) from None
    return manifest.layout(pairs)


# ---- on the board ----------------------------------------------------------------------------------------------

def _pointer(b):
    st = b.stat(manifest.POINTER)
    if st is None:
        st = b.stat(manifest.POINTER + ".new")  # a rename that had to remove first stopped between (loader.py)
        if st is None:
            return []
        return b.get(manifest.POINTER + ".new").decode("utf-8", "replace").split()
    return b.get(manifest.POINTER).decode("utf-8", "replace").split()


def _put_checked(b, path, data, sha, progress=None):
    """Write one file and check its SHA-256 on the board; one retry of a file that arrived wrong."""
    for attempt in (1, 2):
        b.put(path, data, progress=progress)
        got = b.sha256(path)
        if got == sha:
            return
    raise DepotError("%s on the board has SHA-256 %s after two writes, want %s" % (path, got, sha))


def _replace(b, path, data):
    """Replace a root file by a checked .new and a rename, unless it is already these bytes. True if written."""
    sha = hashlib.sha256(data).hexdigest()
    st = b.stat(path)
    if st is not None and not st[0] and st[1] == len(data) and b.sha256(path) == sha:
        return False
    _put_checked(b, path + ".new", data, sha)
    _rename_over(b, path + ".new", path)
    return True


def _rename_over(b, src, dst):
    try:
        b.rename(src, dst)
    except DepotError:
        if b.stat(src) is None:
            raise
        b.remove(dst)  # a filesystem whose rename does not replace (loader.py reads src while dst is missing)
        b.rename(src, dst)


def _stage(b, lay, target, fresh, note, hook):
    """Every file of the layout in `target`, checked; returns (files sent, bytes sent)."""
    dirs = sorted({str(Path(rel).parent) for _, rel, _, _ in lay.app} - {"."}, key=lambda d: d.count("/"))
    b.mkdir(manifest.APPS)
    b.mkdir(target)
    for d in dirs:
        b.mkdir(target + "/" + d)
    sent = nbytes = 0
    n = len(lay.app)
    for k, (src, rel, size, sha) in enumerate(lay.app, 1):
        path = target + "/" + rel
        if not fresh:
            st = b.stat(path)
            if st is not None and st[1] == size and b.sha256(path) == sha:
                note("kept %d/%d %s" % (k, n, rel))
                continue
        hook("copy", k, n)
        _put_checked(b, path, Path(src).read_bytes(), sha)
        sent += 1
        nbytes += size
        note("sent %d/%d %s (%d B)" % (k, n, rel, size))
    hook("copied", n, n)
    listing = lay.listing.encode()
    _put_checked(b, target + "/" + manifest.LISTING, listing, hashlib.sha256(listing).hexdigest())
    return sent, nbytes


def _switch(b, lay, text, hook):
    _put_checked(b, manifest.POINTER + ".new", text, hashlib.sha256(text).hexdigest())
    hook("pointer", 1, 1)
    _rename_over(b, manifest.POINTER + ".new", manifest.POINTER)
    hook("switched", 1, 1)


def _on_board(b, lay, board, force, note, hook):
    if b.app_running and not force:
        st = b.service("status", raw=True)
        if st.get("ok") and st.get("board") not in (None, board):
            raise DepotError("the board says it is %s, not %s: nothing written (--force)" % (st["board"], board),
                             code=2)
    ptr = _pointer(b)
    active = ptr[0] if ptr else None
    if active == lay.id or (lay.id in ptr and b.stat(lay.folder) is not None):
        target, fresh = lay.folder, False  # already there (active, or the previous): check it, mend it
    else:
        target = lay.folder + STAGE
        if b.stat(lay.folder) is not None:  # whole but not pointed to (a cut before the switch)
            if b.stat(target) is None:
                b.rename(lay.folder, target)
            else:
                b.remove(lay.folder, recursive=True)
        fresh = b.stat(target) is None
    # Room first: the folders other than the running one and this target go now, not after the switch (step
    # 5 would remove them then). Three app folders at once (running, previous, new) are ~230 of the 1.125 MiB
    # vfs's 288 blocks (an app's 55 files take ~64 4-KB blocks): with a denylist there, ENOSPC mid-copy.
    early = [n for n in (b.listdir(manifest.APPS) if b.stat(manifest.APPS) is not None else ())
             if n not in (active, lay.id, lay.id + STAGE)]
    for n in early:
        b.remove(manifest.APPS + "/" + n, recursive=True)
        note("removed %s before the copy (neither running nor this one)" % n)
    sent, nbytes = _stage(b, lay, target, fresh, note, hook)
    if target != lay.folder:
        b.rename(target, lay.folder)
    roots = [dest for src, dest in lay.root if _replace(b, dest, Path(src).read_bytes())]
    switched = active != lay.id
    if switched:
        _switch(b, lay, lay.pointer(previous=active).encode(), hook)
        note("switched to %s (previous %s)" % (lay.id, active or "none"))
    keep = {lay.id, active} if switched else set(ptr[:2])  # the pointer's names, and no other
    removed = [n for n in b.listdir(manifest.APPS) if n not in keep]
    for n in removed:
        b.remove(manifest.APPS + "/" + n, recursive=True)
    removed = early + removed
    return {"id": lay.id, "previous": active if switched else (ptr[1] if len(ptr) > 1 else None),
            "switched": switched, "files": len(lay.app), "sent": sent, "bytes": nbytes,
            "app_bytes": sum(a[2] for a in lay.app), "root_written": roots, "removed": removed}


def deploy(port, board="esp32-generic", baud=115200, echo=None, force=False, manifest_path=None, hook=None,
           link_module=None, boot_wait=None):
    """Build, copy, check and switch (module docstring); returns a summary dict. `hook(step, done, total)` is
    called at "copy" (before each file), "copied", "pointer" (the new pointer written, before the rename) and
    "switched": the tests cut the board there. When the new application does not come up after the switch
    (no READY within the link's boot wait, or `boot_wait` s), the pointer is switched back to the previous
    folder, the board restarted, and a DepotError says so."""
    if link_module is None:
        from host_tools import link as link_module
    note = echo or (lambda s: None)
    hook = hook or (lambda step, done, total: None)
    opts = {"baud": baud}
    if boot_wait is not None:
        opts["boot_wait"] = boot_wait
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tunion-deploy-") as tmp:
        lay = build(board, tmp, manifest_path)
        res = {"build_s": round(time.monotonic() - t0, 2)}
        note("built %s: %d application files, %d bytes" % (lay.id, len(lay.app), sum(a[2] for a in lay.app)))
        b = link_module.Board(port, **opts).open()
        t_link = time.monotonic()
        try:
            res.update(_on_board(b, lay, board, force, note, hook))
        except BaseException:
            b.close(restart_app=True, quiet=True)
            raise
        res["board_s"] = round(time.monotonic() - t_link, 2)
        try:
            b.close(restart_app=True)
        except DepotError as e:
            if not (res["switched"] and res["previous"]):
                raise
            why = str(e)
            with link_module.Board(port, **opts) as b2:  # the new app is not running: the link reaches the REPL
                _switch(b2, lay, (res["previous"] + "\n" + lay.id + "\n").encode(), lambda *a: None)
            raise DepotError("the new application %s did not start (%s): switched back to %s, which runs" % (
                lay.id, why, res["previous"])) from None
    res["total_s"] = round(time.monotonic() - t0, 2)
    return res


@click.command("deploy")
@click.option("--board", "board_name", default="esp32-generic", show_default=True, help="boards/<name>")
@click.option("--force", is_flag=True, help="deploy although the board says it is another board type")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False),
              help="another manifest.py than boards/<board>/manifest.py (one that include()s it, say)")
@click.pass_obj
def deploy_cmd(obj, board_name, force, manifest_path):
    """Compile the board's manifest, copy it to the board as a new application folder, check every file's
    SHA-256 there and switch to it by rename (configuration and journal untouched)."""
    import json

    port = obj.need_port()
    if obj.json or not sys.stdout.isatty():  # a script or a log: one line a file (or nothing with --json)
        res = deploy(port, board_name, baud=obj.baud, echo=None if obj.json else click.echo, force=force,
                     manifest_path=manifest_path)
    else:  # a technician: a progress bar over the files
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("deploy", total=None)

            def hook(step, done, total):
                if step == "copy":
                    bar.update(task, total=total, completed=done - 1, description="copying")
                elif step == "copied":
                    bar.update(task, completed=total, description="switching")

            res = deploy(port, board_name, baud=obj.baud, force=force, manifest_path=manifest_path, hook=hook,
                         echo=lambda line: bar.update(task, description=line[:60]))
    if obj.json:
        click.echo(json.dumps(res))
    elif res["switched"] or res["sent"] or res["root_written"]:
        click.echo("deployed %s: %d of %d files sent (%d B) in %.1f s; previous %s" % (
            res["id"], res["sent"], res["files"], res["bytes"], res["total_s"], res["previous"] or "none"))
    else:
        click.echo("%s is already on the board and checked: nothing sent" % res["id"])
