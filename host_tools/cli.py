"""The depot's one command-line tool: `tunion-depot <command>`; `--help` on every command.

    tunion-depot --port /dev/ttyUSB0 status
    tunion-depot --port /dev/ttyUSB0 --db depot.sqlite pull
    tunion-depot denylist build cards.txt -o denylist.bin --list-version 12

Global options come before the command: `--port` (a serial device, or anything `mpremote connect` accepts),
`--db` (a SQLite path or a postgresql:// URL), `--json` (machine-readable output where a script would want it).
Every failure is a DepotError (host_tools/errors.py): one line on stderr and a non-zero exit, never a traceback.
Commands live in their own modules and register here in COMMANDS.
"""
import sys

import click

from host_tools.errors import DepotError

DEFAULT_DB = "depot.sqlite"


class Ctx:
    """What every command gets: the global options."""

    def __init__(self, port, db, as_json, baud, depot_config=None):
        self.port = port
        self.db = db
        self.json = as_json
        self.baud = baud
        self.depot_config = depot_config
        self._conf = None

    @property
    def conf(self):
        """The depot's configuration (host_tools/depotconf.py), read once when a command needs it."""
        if self._conf is None:
            from host_tools.depotconf import load_depot_config

            self._conf = load_depot_config(self.depot_config)
        return self._conf

    def need_port(self):
        if not self.port:
            raise DepotError("no board given: pass --port (e.g. --port /dev/ttyUSB0) or set TUNION_PORT", code=2)
        return self.port


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--port", envvar="TUNION_PORT", help="the board: a serial device or anything `mpremote connect` takes")
@click.option("--baud", default=115200, show_default=True, help="serial baud rate")
@click.option("--db", envvar="TUNION_DB", default=DEFAULT_DB, show_default=True,
              help="depot database: a SQLite file path or a postgresql:// URL")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
@click.option("--depot-config", envvar="TUNION_DEPOT_CONFIG", type=click.Path(dir_okay=False),
              help="the depot's TOML file: name, local city, export file names (default ./depot.toml if present)")
@click.pass_context
def main(ctx, port, baud, db, as_json, depot_config):
    """Depot tool for T-Union bus validators: flash, deploy, provision, status, pull, report, export."""
    ctx.obj = Ctx(port, db, as_json, baud, depot_config)


# (module, attribute) of each command, imported lazily so `--help` and a bad command stay quick.
COMMANDS = (
    ("host_tools.status", "status"),
    ("host_tools.provision", "provision"),
    ("host_tools.denylist", "denylist"),
    ("host_tools.flash", "flash_cmd"),
    ("host_tools.deploy", "deploy_cmd"),
    ("host_tools.pull", "pull_command"),
    ("host_tools.report", "report_command"),
    ("host_tools.export", "export_command"),
)


def _register():
    import importlib

    for mod, attr in COMMANDS:
        main.add_command(getattr(importlib.import_module(mod), attr))


def run(argv=None):
    """The console script: DepotError, OSError and Ctrl-C end in one line and a non-zero exit."""
    _register()
    try:
        main.main(args=argv, prog_name="tunion-depot", standalone_mode=False)
    except DepotError as e:
        click.echo("error: %s" % e, err=True)
        return e.code
    except click.exceptions.Abort:
        click.echo("error: interrupted", err=True)
        return 130
    except click.UsageError as e:  # one line too: what is wrong, and where the help is
        cmd = e.ctx.command_path if e.ctx is not None else "tunion-depot"
        click.echo("error: %s (see %s --help)" % (e.format_message(), cmd), err=True)
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except OSError as e:
        click.echo("error: %s" % (e.strerror or e), err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(run())
