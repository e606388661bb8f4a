"""A real PostgreSQL server for the depot tests, started once per test session in a temporary folder.

    from pg import pg_server, depot_url   # noqa: F401  (pytest fixtures)
    def test_x(depot_url): depot = open_db(depot_url)   # runs twice: a SQLite file, then a fresh PG database

Debian's postgresql (`.ci/run` installs it): `initdb` refuses root, so as root it runs `initdb` and `pg_ctl` as
the `postgres` user (`runuser -u postgres`), in a folder that user owns; the server listens on its socket in that
folder and on a free loopback port, with trust authentication (nothing leaves 127.0.0.1). fsync is off: this is
a throw-away server, and what the tests check is the SQL, not the disk. Each test gets its own database. The PG
half of a test is skipped, with the reason, only where the server cannot be installed or started.
"""
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

_count = itertools.count(1)


def _bin(name):
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/" + name), key=lambda p: int(p.split("/")[4]))
    if found:
        return found[-1]
    return shutil.which(name)


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PgServer:
    def __init__(self):
        self.initdb, self.pg_ctl = _bin("initdb"), _bin("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            raise RuntimeError("PostgreSQL is not installed (no initdb/pg_ctl; Debian: apt-get install postgresql)")
        self.as_user = []
        if os.geteuid() == 0:
            if not shutil.which("runuser"):
                raise RuntimeError("running as root and runuser is missing: initdb refuses root")
            try:
                import pwd

                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no `postgres` user to run initdb as") from None
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.dir = tempfile.mkdtemp(prefix="tunion-pg-")
        if self.as_user:
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.port = _free_port()
        self._run([self.initdb, "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C",
                   "--no-sync"])
        opts = "-k %s -p %d -c listen_addresses=127.0.0.1 -c fsync=off" % (self.dir, self.port)
        self._run([self.pg_ctl, "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w", "-t", "30", "-o", opts,
                   "start"])
        self.url = "postgresql://postgres@127.0.0.1:%d/postgres" % self.port

    def _run(self, cmd):
        r = subprocess.run(self.as_user + cmd, capture_output=True, text=True, timeout=60)
        if r.returncode:
            log = os.path.join(self.dir, "log")
            tail = open(log).read()[-800:] if os.path.exists(log) else ""
            raise RuntimeError("%s failed: %s %s %s" % (os.path.basename(cmd[0]), r.stdout[-400:], r.stderr[-400:],
                                                         tail))

    def new_database(self):
        import psycopg

        name = "depot_%d_%d" % (os.getpid(), next(_count))
        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute("CREATE DATABASE %s" % name)
        return self.url.rsplit("/", 1)[0] + "/" + name

    def stop(self):
        try:
            self._run([self.pg_ctl, "-D", self.data, "-m", "fast", "-w", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    """The session's PostgreSQL server, or a skip saying why it could not be started."""
    try:
        srv = PgServer()
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        pytest.skip("PostgreSQL server could not be started: %s" % e)
    yield srv
    srv.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def depot_url(request, tmp_path):
    """A fresh, empty depot database: a SQLite file, then a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "depot.sqlite")
    return request.getfixturevalue("pg_server").new_database()
