"""`tunion-depot provision`: configuration, denylist, software-SAM test keys and the clock onto a board.

    tunion-depot --port u0 provision --config bus-B1234.json --denylist denylist.bin --clock
    tunion-depot --port u0 provision --denylist old.bin --force      # an older list than the board's, on purpose
    tunion-depot --port u0 provision --test-keys samkeys.json        # development boards only

Every file is checked on the laptop first (tunion.config.load_config, tunion.denylist.verify, softsam.load_keys:
the board's own checks), and nothing is sent unless all pass. Then each goes to a staging file on the board
(chunks checked by CRC, the whole by SHA-256), and app.service.install() checks it again and renames it into
place (validator.md s.5: the old file or the new, never half); the staging file is removed whatever happens.
A denylist older than the board's is refused unless --force (an old list would let revoked cards ride again).
The clock is the laptop's in CST, set with service.set_clock; the drift before and after is shown.
"""
import hashlib
import json
import sys

import click

from host_tools.errors import DepotError
from host_tools.link import Board
from host_tools.status import fmt_cst, fmt_drift, laptop_cst, read_status

STAGE = {"config": "/provision.config.json", "denylist": "/provision.denylist.bin", "keys": "/provision.keys.json"}
_FS_MARGIN = 16 * 1024  # LittleFS needs a few free blocks of its own besides the file (4 KB each)


def _read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise DepotError("%s %s: %s" % (what, path, e.strerror or e), code=2) from None


def check_config(path):
    from tunion.config import ConfigError, load_config

    data = _read(path, "configuration")
    try:
        cfg = load_config(data)
    except ConfigError as e:
        raise DepotError("configuration %s refused: %s" % (path, e), code=2) from None
    return data, cfg


def check_denylist(path):
    from host_tools.denylist import check

    data = _read(path, "denylist")
    info = check(path)  # DepotError (code 2) naming what is wrong
    return data, info


def check_keys(path):
    from tunion.softsam import load_keys

    data = _read(path, "key file")
    try:
        load_keys(data.decode("utf-8"))
    except (ValueError, UnicodeError) as e:
        raise DepotError("key file %s refused: %s" % (path, e), code=2) from None
    return data


def stage_and_install(b, kind, data, progress=None):
    """Put `data` in the staging file, check its SHA-256 there, install it; the staging file removed after."""
    staged = STAGE[kind]
    done = False
    try:
        b.remove(staged)  # a staging file a cut left behind
        b.put(staged, data, progress=progress)
        if b.sha256(staged) != hashlib.sha256(data).hexdigest():
            raise DepotError("the staged %s on the board differs from the file sent" % kind)
        r = b.service("install", kind, staged, deadline=120.0)
        done = True
        return r
    finally:
        try:
            if not b.broken:
                b.remove(staged)
        except DepotError:
            if done:  # installed, but its staging file is still there: say so
                raise


@click.command("provision")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="line, vehicle and fare configuration (JSON, docs/configuration.md)")
@click.option("--denylist", "denylist_file", type=click.Path(dir_okay=False),
              help="denylist file (tunion-depot denylist build)")
@click.option("--test-keys", "keys_file", type=click.Path(dir_okay=False),
              help="software-SAM TEST keys (docs/test-keys.md); development boards only")
@click.option("--clock", "set_clock", is_flag=True, help="set the board's clock from the laptop's (CST)")
@click.option("--force", is_flag=True, help="install a denylist older than the board's")
@click.pass_obj
def provision(obj, config_file, denylist_file, keys_file, set_clock, force):
    """Check files on the laptop, then stage and install each atomically on the board."""
    if not (config_file or denylist_file or keys_file or set_clock):
        raise DepotError("nothing to provision: give --config, --denylist, --test-keys and/or --clock", code=2)
    todo = []  # (kind, bytes, description), checked before the board is touched
    if config_file:
        data, cfg = check_config(config_file)
        todo.append(("config", data, "configuration version %d (line %d, vehicle %s)" % (
            cfg.version, cfg.line, cfg.vehicle)))
    dl = None
    if denylist_file:
        data, dl = check_denylist(denylist_file)
        todo.append(("denylist", data, "denylist version %d (%d entries)" % (dl["list_version"], dl["entries"])))
    if keys_file:
        todo.append(("keys", check_keys(keys_file), "software-SAM test keys"))
    report = {"installed": [], "board_id": None}
    with Board(obj.need_port(), baud=obj.baud) as b:
        before = read_status(b)
        report["board_id"] = before.get("board_id")
        _refusals(before, dl, keys_file, force, sum(len(d) for _, d, _ in todo))
        for kind, data, what in todo:
            with _progress(obj, "sending %s" % kind, len(data)) as step:
                stage_and_install(b, kind, data, progress=step)
            report["installed"].append(kind)
            _say(obj, "installed %s" % what)
        if set_clock:
            drift_before = before.get("drift_s")
            r = b.service("set_clock", laptop_cst())
            report["clock"] = r.get("clock")
            report["drift_before_s"] = drift_before
            _say(obj, "clock set to %s (drift was %s)" % (fmt_cst(r.get("clock")), fmt_drift(drift_before)))
        after = read_status(b)
    report.update(config_version=after.get("config_version"), denylist_version=after.get("denylist_version"),
                  test_keys=after.get("test_keys"), drift_s=after.get("drift_s"),
                  out_of_service=after.get("out_of_service"))
    if obj.json:
        click.echo(json.dumps(report, sort_keys=True))
    else:
        click.echo("board %s: configuration %s, denylist %s, clock drift %s%s" % (
            report["board_id"], after.get("config_version"), after.get("denylist_version"),
            fmt_drift(after.get("drift_s")),
            ", OUT OF SERVICE: %s" % after["out_of_service"] if after.get("out_of_service") else ""))


def _refusals(st, dl, keys_file, force, total):
    """What the board's status rules out, before anything is written."""
    if dl is not None and st.get("denylist_version") is not None and dl["list_version"] < st["denylist_version"]:
        if not force:
            raise DepotError("denylist version %d is older than the board's %d: refused (--force installs it)" % (
                dl["list_version"], st["denylist_version"]), code=2)
    if keys_file and not st.get("dev_board"):
        raise DepotError("software-SAM test keys refused: board %s is not a development board (it has a PSAM)" %
                         st.get("board_id"), code=2)
    free = st.get("fs_free")
    if free is not None and total + _FS_MARGIN > free:
        raise DepotError("not enough free flash on the board: %d bytes to stage, %d free" % (total, free))


class _progress:
    """A rich progress bar on stderr for a file of more than a few chunks (not with --json, not off a terminal)."""

    def __init__(self, obj, what, total):
        self.bar = None
        if not obj.json and total > 8192 and sys.stderr.isatty():
            from rich.progress import Progress

            from rich.console import Console

            self.bar = Progress(transient=True, console=Console(stderr=True))
            self.what, self.total = what, total

    def __enter__(self):
        if self.bar is None:
            return None
        self.bar.start()
        task = self.bar.add_task(self.what, total=self.total)
        return lambda done, total: self.bar.update(task, completed=done)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()


def _say(obj, line):
    if not obj.json:
        click.echo(line)
