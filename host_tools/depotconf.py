"""The depot's own configuration (a TOML file on the laptop, not on any board): who this depot is, which city
its cards are local to, and how clearing files are named.

    conf = load_depot_config("depot.toml")      # or None: the defaults below
    conf.name, conf.city, conf.template

    # depot.toml
    name = "DEPOT1"                             # stored with every pull: many depots may share one database
    city = "9990"                               # EF17 city code of local cards (others are 异地卡 in reports)
    export_template = "{depot}-{day}-{batch}-{kind}.{ext}"
    export_formats = ["csv", "jsonl"]
    test_fleet = false                          # true: this depot's PSAMs hold the documented TEST keys
                                                # (docs/test-keys.md), so export checks every TAC with them

Every key is checked here, before anything is read from a board or written anywhere; a bad file is a DepotError
naming the key.
"""
import os
import socket
import tomllib

from host_tools.errors import DepotError

DEFAULT_TEMPLATE = "{batch}-{kind}.{ext}"  # the batch ID is <depot>-<YYYYMMDD> unless given
_KEYS = ("name", "city", "export_template", "export_formats", "test_fleet")


class DepotConfig:
    def __init__(self, name=None, city=None, template=DEFAULT_TEMPLATE, formats=("csv", "jsonl"), path=None,
                 test_fleet=False):
        self.test_fleet = test_fleet
        self.name = name or socket.gethostname().split(".")[0] or "depot"
        self.city = city
        self.template = template
        self.formats = tuple(formats)
        self.path = path


def load_depot_config(path=None):
    """The depot configuration from `path` (or $TUNION_DEPOT_CONFIG, or ./depot.toml when it exists), else the
    defaults."""
    path = path or os.environ.get("TUNION_DEPOT_CONFIG") or ("depot.toml" if os.path.exists("depot.toml") else None)
    if path is None:
        return DepotConfig()
    try:
        with open(path, "rb") as f:
            d = tomllib.load(f)
    except OSError as e:
        raise DepotError("depot configuration %s: %s" % (path, e.strerror or e), code=2)
    except tomllib.TOMLDecodeError as e:
        raise DepotError("depot configuration %s is not valid TOML: %s" % (path, e), code=2)
    for k in d:
        if k not in _KEYS:
            raise DepotError("depot configuration %s: unknown key %r (known: %s)" % (path, k, ", ".join(_KEYS)), code=2)
    name = d.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 64):
        raise DepotError("depot configuration %s: name must be text of 1..64 characters" % path, code=2)
    city = d.get("city")
    if city is not None and (not isinstance(city, str) or len(city) != 4 or not all(c in "0123456789abcdefABCDEF"
                                                                                      for c in city)):
        raise DepotError("depot configuration %s: city must be 4 hex digits (EF17 city code), e.g. \"9990\"" % path,
                         code=2)
    template = d.get("export_template", DEFAULT_TEMPLATE)
    if not isinstance(template, str) or "{kind}" not in template or "/" in template:
        raise DepotError("depot configuration %s: export_template must contain {kind} and no '/'" % path, code=2)
    formats = d.get("export_formats", ["csv", "jsonl"])
    if not isinstance(formats, list) or not formats or any(f not in ("csv", "jsonl") for f in formats):
        raise DepotError("depot configuration %s: export_formats must list csv and/or jsonl" % path, code=2)
    test_fleet = d.get("test_fleet", False)
    if not isinstance(test_fleet, bool):
        raise DepotError("depot configuration %s: test_fleet must be true or false" % path, code=2)
    return DepotConfig(name and name.strip(), city and city.lower(), template, formats, path, test_fleet)
