"""The depot database: one schema with a version and migrations, on SQLite (a path) or PostgreSQL (a URL).

    from host_tools.db import open_db
    depot = open_db("depot.sqlite")              # or "postgresql://user@host/depot" (psycopg 3)
    with depot.write() as conn:                  # one transaction, durable when the block ends
        depot.insert_ignore(conn, depot.t.records, rows)
    depot.last_seq("240ac4112233"), depot.covered("240ac4112233")
    with depot.read() as conn:
        for p in conn.execute(select(depot.t.payments).where(depot.t.payments.c.end_state == "unknown")): ...

SQLAlchemy Core 2.x. What decides the layout (../shared/notes/depot.md, validator.md section 4):
- Rows are keyed by (board_id, seq) and inserted with ON CONFLICT DO NOTHING on both dialects, so a pull cut at
  any point and run again stores nothing twice.
- Card numbers are text: they are unsigned 64-bit and overflow SQLite's signed integers. u32 fields (amounts,
  balances, TTC, seq) are BIGINT: PostgreSQL's INTEGER is signed 32-bit.
- Board times are what the board wrote: CST wall-clock seconds since 1970 (`time_s`, not Unix time) and the same
  instant as a naive CST datetime (`time_cst`). Never shifted by 8 h. Depot-side times (`*_utc`) are naive UTC.
- SQLite runs in WAL mode with synchronous=FULL, so a commit survives a power cut before the board is told it may
  free the records; every transaction is an explicit BEGIN (IMMEDIATE for writers), so DDL is transactional too.

Tables (version 2): boards, pulls, records, faults, board_status, refusals, schema_info; view `payments` (one row
per intent with its outcome and settlement, the thing reports and clearing read). See SCHEMA below.
Migrations: MIGRATIONS[v] takes a database at v - 1 to v inside one transaction (PostgreSQL: under an advisory
lock, so two depots opening a new database at once do not race). A database newer than this code is refused.
"""
import datetime
import os

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from host_tools.errors import DepotError

SCHEMA_VERSION = 2
CST_EPOCH = datetime.datetime(1970, 1, 1)  # board seconds count from 1970-01-01 00:00 CST (docs/design.md "Time")

meta = MetaData()

schema_info = Table(
    "schema_info", meta,
    Column("key", String(32), primary_key=True),
    Column("value", String(64), nullable=False),
)

boards = Table(
    "boards", meta,
    Column("board_id", String(32), primary_key=True),  # machine.unique_id() as hex (the status answer's board_id)
    Column("name", String(64)),  # the board file's NAME
    Column("first_seen_utc", DateTime),
    Column("last_seen_utc", DateTime),
    Column("last_depot", String(64)),
    Column("firmware", String(16)),
    Column("config_version", BigInteger),
    Column("next_seq", BigInteger),  # the board's next sequence number at its last status
    Column("acknowledged", BigInteger),  # the last acknowledgement a depot sent it
)

pulls = Table(
    "pulls", meta,
    Column("pull_id", Integer, primary_key=True, autoincrement=True),
    Column("board_id", String(32), nullable=False),
    Column("depot", String(64), nullable=False),  # which depot pulled: many depots may share one database
    Column("started_utc", DateTime, nullable=False),
    Column("finished_utc", DateTime),  # NULL while running or when cut
    Column("state", String(16), nullable=False),  # running, done, damaged (done, damage found), cut (never ended)
    Column("board_acked_before", BigInteger),  # the board's acknowledgement floor when the pull began
    Column("first_seq", BigInteger),  # first and last record seq stored by this pull
    Column("last_seq", BigInteger),
    Column("records", Integer, nullable=False, default=0),  # records stored (new rows)
    Column("duplicates", Integer, nullable=False, default=0),  # records received that the database already held
    Column("faults", Integer, nullable=False, default=0),  # fault rows stored
    Column("chunks", Integer, nullable=False, default=0),
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("acknowledged", BigInteger),  # what the pull told the board it may free
)

records = Table(
    "records", meta,
    Column("board_id", String(32), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", Integer, nullable=False),  # tunion.record KIND_*: 1 intent, 2..5 outcomes, 6..8 settlements
    Column("kind_name", String(24), nullable=False),  # record.KIND_NAMES
    Column("version", Integer, nullable=False),  # record format version
    Column("flags", Integer, nullable=False),  # record.FLAG_* as stored; the booleans below are its bits
    Column("recovered", Boolean, nullable=False),
    Column("mac2_unverified", Boolean, nullable=False),
    Column("mac2_bad", Boolean, nullable=False),
    Column("test_keys", Boolean, nullable=False),
    Column("abandoned", Boolean, nullable=False),
    # intent fields (NULL on outcomes and settlements)
    Column("card_no", String(20)),  # decimal text: the EF15 application serial, protocol section 7.7
    Column("issuer", String(16)),  # hex
    Column("card_type", Integer),
    Column("key_version", Integer),
    Column("alg_id", Integer),
    Column("counter", Integer),  # offline counter before the debit
    Column("amount", BigInteger),  # fen
    Column("balance_before", BigInteger),
    Column("ttc", BigInteger),
    Column("ttype", Integer),  # 6 simple, 9 compound purchase
    Column("time_s", BigInteger),  # CST seconds since 1970-01-01 CST, as on the board
    Column("time_cst", DateTime),  # the same, as a naive CST wall-clock datetime
    # outcome and settlement fields (NULL on intents)
    Column("ref_seq", BigInteger),  # the intent this outcome closes or this settlement settles (same board)
    Column("balance_after", BigInteger),
    Column("tac", String(8)),  # hex; NULL where the kind carries none (no_tac, cancelled, unresolved, ...)
    Column("end_state", String(16)),  # record.END_*: debited_tac, debited_no_tac, not_debited, unknown
    # the segment header the record was stored under (validator.md section 4)
    Column("segno", BigInteger),
    Column("header_standin", Boolean, nullable=False),  # True: the board's header was damaged, fields a guess
    Column("psam_no", String(20)),  # hex
    Column("terminal", String(12)),  # hex (PSAM EF16)
    Column("line", String(16)),
    Column("vehicle", String(24)),
    Column("config_version", BigInteger),
    Column("fw_version", String(16)),
    Column("raw", LargeBinary, nullable=False),  # the record's bytes, CRC included (TAC checks, audits)
    Column("pull_id", Integer, nullable=False),
    Index("ix_records_ref", "board_id", "ref_seq"),
    Index("ix_records_time", "time_cst"),
)

faults = Table(
    "faults", meta,
    Column("fault_id", Integer, primary_key=True, autoincrement=True),
    Column("board_id", String(32), nullable=False),
    # crc: bytes that are no valid record; gap: seq numbers that never arrived; header: a damaged or foreign
    # segment header; torn: a write cut short that the board zeroed (a tombstone: harmless, no money moved)
    Column("kind", String(16), nullable=False),
    Column("after_seq", BigInteger, nullable=False),  # seq of the last record before the fault (0: none)
    Column("first_seq", BigInteger),  # the seq numbers the fault stands for (NULL when it stands for none)
    Column("last_seq", BigInteger),
    Column("digest", String(64), nullable=False),  # SHA-256 of `raw` ('' when no bytes): part of the identity
    Column("raw", LargeBinary),  # the damaged bytes as the board sent them
    Column("length", Integer, nullable=False),
    Column("segno", BigInteger),
    Column("detail", Text, nullable=False),
    Column("found_utc", DateTime, nullable=False),
    Column("pull_id", Integer, nullable=False),  # the pull that found it
    Column("reported_pull", Integer),  # the finished pull that printed it (NULL: found by a pull that was cut)
    UniqueConstraint("board_id", "kind", "after_seq", "digest", name="uq_faults_identity"),
)

board_status = Table(
    "board_status", meta,
    Column("snapshot_id", Integer, primary_key=True, autoincrement=True),
    Column("board_id", String(32), nullable=False),
    Column("pull_id", Integer),
    Column("taken_utc", DateTime, nullable=False),
    Column("clock_s", BigInteger),  # the board's CST seconds (NULL: clock not valid)
    Column("drift_s", BigInteger),  # board clock minus the laptop's CST clock
    Column("records_waiting", BigInteger),
    Column("next_seq", BigInteger),
    Column("acknowledged", BigInteger),
    Column("flash_used", BigInteger),
    Column("flash_total", BigInteger),
    Column("firmware", String(16)),
    Column("config_version", BigInteger),
    Column("test_keys", Boolean),
    Column("out_of_service", String(32)),
    Column("errors_total", BigInteger),
    Column("unresolved", Integer),  # entries on the board's unresolved list
    Column("board_faults", Integer),  # entries in the journal's fault list (details in `status`)
    Column("status", Text, nullable=False),  # the whole status answer, JSON
)

refusals = Table(
    "refusals", meta,
    Column("snapshot_id", Integer, primary_key=True),
    Column("reason", String(32), primary_key=True),  # tunion.outcome status
    Column("board_id", String(32), nullable=False),
    Column("count", BigInteger, nullable=False),  # cumulative for the board's life: reports take differences
)

# One row per intent, with the outcome that closed it and the settlement that settled it (either may be absent
# yet, or have arrived in a later pull: the join is on (board_id, ref_seq), whenever each row came).
PAYMENTS_VIEW = """
CREATE VIEW payments AS
SELECT i.board_id, i.seq, i.card_no, i.issuer, i.card_type, i.key_version, i.alg_id, i.counter, i.amount,
       i.balance_before, i.ttc, i.ttype, i.time_s, i.time_cst, i.segno, i.psam_no, i.terminal, i.line, i.vehicle,
       i.config_version, i.fw_version, i.header_standin, i.pull_id,
       o.seq AS outcome_seq, o.kind_name AS outcome, o.pull_id AS outcome_pull_id,
       s.seq AS settlement_seq, s.kind_name AS settlement, s.pull_id AS settlement_pull_id,
       COALESCE(s.end_state, o.end_state) AS end_state,
       COALESCE(s.balance_after, o.balance_after) AS balance_after,
       CASE WHEN s.seq IS NOT NULL THEN s.tac ELSE o.tac END AS tac,
       (i.flags | COALESCE(o.flags, 0) | COALESCE(s.flags, 0)) AS flags,
       ((i.flags | COALESCE(o.flags, 0) | COALESCE(s.flags, 0)) & 2) <> 0 AS recovered,
       ((i.flags | COALESCE(o.flags, 0) | COALESCE(s.flags, 0)) & 4) <> 0 AS mac2_unverified,
       ((i.flags | COALESCE(o.flags, 0) | COALESCE(s.flags, 0)) & 8) <> 0 AS mac2_bad,
       ((i.flags | COALESCE(o.flags, 0) | COALESCE(s.flags, 0)) & 16) <> 0 AS test_keys,
       ((i.flags | COALESCE(o.flags, 0) | COALESCE(s.flags, 0)) & 32) <> 0 AS abandoned
FROM records i
LEFT JOIN records o ON o.board_id = i.board_id AND o.ref_seq = i.seq AND o.kind BETWEEN 2 AND 5
LEFT JOIN records s ON s.board_id = i.board_id AND s.ref_seq = i.seq AND s.kind BETWEEN 6 AND 8
WHERE i.kind = 1
"""

# The view as a Table, for select() (not part of create_all: migration 2 creates it).
payments = Table(
    "payments", MetaData(),
    *[Column(c.name, c.type) for c in records.c if c.name in (
        "board_id", "seq", "card_no", "issuer", "card_type", "key_version", "alg_id", "counter", "amount",
        "balance_before", "ttc", "ttype", "time_s", "time_cst", "segno", "psam_no", "terminal", "line", "vehicle",
        "config_version", "fw_version", "header_standin", "pull_id", "balance_after", "tac", "end_state", "flags")],
    Column("outcome_seq", BigInteger), Column("outcome", String(24)), Column("outcome_pull_id", Integer),
    Column("settlement_seq", BigInteger), Column("settlement", String(24)), Column("settlement_pull_id", Integer),
    Column("recovered", Boolean), Column("mac2_unverified", Boolean), Column("mac2_bad", Boolean),
    Column("test_keys", Boolean), Column("abandoned", Boolean),
)

SCHEMA = {t.name: [c.name for c in t.c] for t in (boards, pulls, records, faults, board_status, refusals, payments)}


class _Tables:
    """depot.t.records etc.: the Table objects, for select() and insert()."""

    schema_info = schema_info
    boards = boards
    pulls = pulls
    records = records
    faults = faults
    board_status = board_status
    refusals = refusals
    payments = payments


def _m1(conn):
    # The tables as they are now. When a later version changes a table, freeze this step's definitions first
    # (a database at version 1 must still be made exactly as version 1 was) and ALTER in the new step.
    meta.create_all(conn)


def _m2(conn):
    conn.execute(text(PAYMENTS_VIEW))


MIGRATIONS = {1: _m1, 2: _m2}
_PG_LOCK = 7021_0009  # advisory lock key for migrations (any constant; issue 9)


def cst(secs):
    """A board's CST seconds as a naive CST datetime (no 8-hour shift: the seconds already count CST)."""
    return CST_EPOCH + datetime.timedelta(seconds=secs)


def cst_secs(dt):
    """The inverse of cst(): a naive CST datetime as the board's seconds."""
    return int((dt - CST_EPOCH).total_seconds())


def laptop_cst_secs(now=None):
    """The laptop's clock as board seconds (UTC + 8 h, counted from 1970 CST)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return int(now.timestamp()) + 8 * 3600


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _url(url_or_path):
    s = str(url_or_path)
    if "://" not in s:
        return "sqlite:///" + os.path.abspath(s), True
    if s.startswith("postgresql://") or s.startswith("postgres://"):
        return "postgresql+psycopg://" + s.split("://", 1)[1], False
    if s.startswith("postgresql+psycopg://"):
        return s, False
    if s.startswith("sqlite://"):
        return s, True
    raise DepotError("--db: %r is neither a SQLite path nor a postgresql:// URL" % s, code=2)


class Depot:
    """An open depot database. `t` holds the tables; read() and write() give connections."""

    t = _Tables

    def __init__(self, engine, sqlite):
        self.engine = engine
        self.sqlite = sqlite
        self.dialect = engine.dialect.name
        self._writer = engine.execution_options(depot_write=True)

    def read(self):
        """A connection for reading (`with depot.read() as conn:`)."""
        return self.engine.connect()

    def write(self):
        """One write transaction (`with depot.write() as conn:`): committed, durably, when the block ends, rolled
        back whole when it raises."""
        return self._writer.begin()

    def insert_ignore(self, conn, table, rows, returning=None):
        """INSERT ... ON CONFLICT DO NOTHING. Returns, for the rows actually inserted, the `returning` column's
        values (a list), or tuples when `returning` is a tuple of columns, or their number when it is None."""
        if not rows:
            return [] if returning is not None else 0
        if self.sqlite:
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        stmt = insert(table).on_conflict_do_nothing()
        many = isinstance(returning, tuple)
        cols = returning if many else (returning if returning is not None else list(table.primary_key.columns)[0],)
        got = [tuple(r) if many else r[0] for r in conn.execute(stmt.returning(*cols), rows)]
        return got if returning is not None else len(got)

    def version(self, conn=None):
        if conn is None:
            with self.read() as c:
                return self.version(c)
        return _version(conn)

    def last_seq(self, board_id):
        """Highest record seq stored for the board (0 when none)."""
        with self.read() as conn:
            v = conn.execute(select(func.max(records.c.seq)).where(records.c.board_id == board_id)).scalar()
        return int(v or 0)

    def covered(self, board_id, conn=None):
        """Highest seq the database accounts for on this board: stored records and the seq numbers of fault rows
        (damaged stretches and gaps). The board may be told to free up to here, never further."""
        if conn is None:
            with self.read() as c:
                return self.covered(board_id, c)
        r = conn.execute(select(func.max(records.c.seq)).where(records.c.board_id == board_id)).scalar()
        f = conn.execute(select(func.max(faults.c.last_seq)).where(faults.c.board_id == board_id)).scalar()
        return int(max(r or 0, f or 0))

    def boards(self):
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(select(boards).order_by(boards.c.board_id))]

    def close(self):
        self.engine.dispose()


def _version(conn):
    if not conn.dialect.has_table(conn, "schema_info"):
        return 0
    v = conn.execute(select(schema_info.c.value).where(schema_info.c.key == "schema_version")).scalar()
    return int(v or 0)


def migrate(depot, upto=SCHEMA_VERSION):
    """Bring the database to version `upto` (each step in the one transaction). Returns the version found."""
    with depot.write() as conn:
        if not depot.sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(%d)" % _PG_LOCK))
        found = _version(conn)
        if found > SCHEMA_VERSION:
            raise DepotError("the depot database is schema version %d; this tool knows up to %d: update the tool"
                             % (found, SCHEMA_VERSION), code=2)
        for v in range(found + 1, upto + 1):
            MIGRATIONS[v](conn)
            if v == 1:
                conn.execute(schema_info.insert().values(key="schema_version", value="1"))
            else:
                conn.execute(schema_info.update().where(schema_info.c.key == "schema_version").values(value=str(v)))
    return found


def _sqlite_setup(engine):
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _rec):
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below): DDL in transactions too
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the board is told to free records
        cur.execute("PRAGMA busy_timeout=30000")  # two depots writing one file wait for each other
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        # A writer takes the write lock at BEGIN, so it waits (busy_timeout) instead of failing on a lock upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("depot_write") else "BEGIN")


def open_db(url_or_path, upgrade=True):
    """Open (and create or migrate, unless upgrade=False) the depot database. DepotError with one line when it
    cannot be opened: a bad URL, a server that does not answer, a file in a folder that does not exist."""
    url, sqlite = _url(url_or_path)
    if sqlite and url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        folder = os.path.dirname(url[len("sqlite:///"):])
        if folder and not os.path.isdir(folder):
            raise DepotError("--db: folder %s does not exist" % folder, code=2)
    try:
        engine = create_engine(url, future=True, pool_pre_ping=not sqlite)
    except (SQLAlchemyError, ImportError, ValueError) as e:
        raise DepotError("--db: cannot use %r: %s" % (str(url_or_path), e), code=2) from e
    if sqlite:
        _sqlite_setup(engine)
    depot = Depot(engine, sqlite)
    try:
        if upgrade:
            migrate(depot)
        elif depot.version() != SCHEMA_VERSION:
            raise DepotError("the depot database is schema version %d, not %d: open it with upgrade"
                             % (depot.version(), SCHEMA_VERSION))
    except SQLAlchemyError as e:
        engine.dispose()
        raise DepotError("--db: %s" % _one_line(e)) from e
    return depot


def _one_line(e):
    msg = str(getattr(e, "orig", None) or e).strip().splitlines()
    return msg[0] if msg else e.__class__.__name__
