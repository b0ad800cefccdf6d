"""The journal database: table definitions, engines and schema migrations.

The schema is owned by Alembic (the ``migrations`` package at the repository top
level); the ``Table`` objects below mirror it for queries and must be kept in step
with the newest revision (tests/test_journal.py compares the two).

Timestamps are ``ts_us``: BIGINT microseconds since the Unix epoch, UTC
(``time.time_ns() // 1000``). An integer is the cheapest thing to write from the
journal thread and sorts and compares the same on SQLite and PostgreSQL.
"""
from __future__ import annotations

import importlib.resources
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Engine,
    Float,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    event,
    false,
    func,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from sessions.closing import settle

#: MsgTypes of the session (admin) layer: Heartbeat, TestRequest, ResendRequest,
#: Reject, SequenceReset, Logout, Logon.
ADMIN_MSG_TYPES = ("0", "1", "2", "3", "4", "5", "A")

#: How long a SQLite connection waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 5000

# Names constraints and indexes predictably so later migrations (and SQLite's
# batch mode, which recreates tables) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# BIGINT identity on PostgreSQL; on SQLite an INTEGER PRIMARY KEY AUTOINCREMENT,
# i.e. the rowid, never reused even after retention deletes the newest rows.
_Id = BigInteger().with_variant(Integer(), "sqlite")

journal_messages = Table(
    "journal_messages",
    metadata,
    Column("id", _Id, Identity(), primary_key=True,
           comment="orders all rows of all sessions: the commit order of the journal writer"),
    Column("session_id", Text, nullable=False, comment='quickfix SessionID, e.g. "FIX.4.4:FIXGW->CLIENT44"'),
    Column("direction", String(1), nullable=False, comment="I = received, O = sent"),
    Column("seq_num", BigInteger, nullable=True, comment="MsgSeqNum (34); NULL if missing or not a number"),
    Column("msg_type", Text, nullable=True, comment="MsgType (35)"),
    Column("cl_ord_id", Text, nullable=True, comment="ClOrdID (11), first occurrence"),
    Column("order_id", Text, nullable=True, comment="OrderID (37), first occurrence"),
    Column("poss_dup", Boolean(create_constraint=False), nullable=False, server_default=false(),
           comment="PossDupFlag (43) = Y"),
    Column("ts_us", BigInteger, nullable=False,
           comment="when the engine handed the message to the journal: microseconds since the Unix epoch, UTC"),
    Column("raw", Text, nullable=False, comment="the message as on the wire, fields separated by SOH (\\x01)"),
    Column("recovered", Boolean(create_constraint=False), nullable=False, server_default=false(),
           comment="journaled late: imported at start-up from the spool of a run that died before committing it"),
    Column("chain_hash", LargeBinary, nullable=True,
           comment="SHA-256 / HMAC-SHA256 over the previous row's chain_hash and this row's content; "
           "NULL for rows written before revision 0002"),
    Column("chain", Text, nullable=False, server_default="", comment="the hash chain this row extends (0012)"),
    Column("xid", BigInteger, nullable=False, server_default="0",  # on PostgreSQL pg_current_xact_id() (0012)
           comment="the id of the PostgreSQL transaction that wrote the row; 0 before revision 0012 and on SQLite"),
    CheckConstraint("direction IN ('I', 'O')", name="direction"),
    Index(None, "session_id", "id"),
    Index(None, "session_id", "ts_us"),  # one session's time range (revision 0004)
    Index(None, "ts_us"),
    Index(None, "cl_ord_id", postgresql_where=text("cl_ord_id IS NOT NULL"),
          sqlite_where=text("cl_ord_id IS NOT NULL")),
    Index(None, "order_id", postgresql_where=text("order_id IS NOT NULL"),
          sqlite_where=text("order_id IS NOT NULL")),
    Index(None, "xid", "id", postgresql_where=text("msg_type = '8'"),  # drop copies' stream (0012, stream.py)
          sqlite_where=text("msg_type = '8'")),
    sqlite_autoincrement=True,
    comment="Every FIX message in and out of every session (admin and application), "
    "in commit order. ts_us is BIGINT microseconds since the Unix epoch, UTC.",
)

session_events = Table(
    "session_events",
    metadata,
    Column("id", _Id, Identity(), primary_key=True),
    Column("session_id", Text, nullable=False, comment='quickfix SessionID, or "*" for the engine-wide log'),
    Column("ts_us", BigInteger, nullable=False, comment="microseconds since the Unix epoch, UTC"),
    Column("text", Text, nullable=False, comment="quickfix's event line, e.g. \"Received logon request\""),
    Index(None, "session_id", "id"),
    Index(None, "ts_us"),
    sqlite_autoincrement=True,
    comment="quickfix session events (logon, logout, resend, disconnect ...). "
    "ts_us is BIGINT microseconds since the Unix epoch, UTC.",
)

#: Journal-wide settings (revision 0002): chain_start_id (rows with an id at or below it
#: predate the chain), chain_mode ("sha256" or "hmac-sha256"), chain_key_check.
journal_meta = Table(
    "journal_meta",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
    comment="Journal-wide settings: chain_start_id, chain_mode, chain_key_check",
)


#: Drop-copy delivery watermarks (revision 0003): journal ids, see dropcopy/ledger.py.
dropcopy_state = Table(
    "dropcopy_state",
    metadata,
    Column("session", Text, primary_key=True, comment="drop-copy session name (the receiver's CompID)"),
    Column("sent_id", BigInteger, nullable=False,
           comment="every source row up to this journal id was copied to the session's store or skipped"),
    Column("claimed_id", BigInteger, nullable=False,
           comment="copies of source rows up to this journal id may have been handed to quickfix"),
    Column("acked_id", BigInteger, nullable=False,
           comment="the receiver acknowledged (TestRequest/Heartbeat) every copy up to this journal id"),
    Column("resend_upto", BigInteger, nullable=False, server_default="0",
           comment="copies of source rows up to this journal id are sent with PossResend (97=Y)"),
    Column("stream", Text, nullable=True, comment="creation time of the quickfix message store the copies went into"),
    *(Column(f"{name}_xid", BigInteger, nullable=False, server_default="0", comment="(xid, id): a stream position")
      for name in ("sent", "claimed", "acked", "resend")),  # revision 0012, gateway/journal/stream.py
    Column("updated_us", BigInteger, nullable=False, comment="microseconds since the Unix epoch, UTC"),
    comment="Delivery watermarks of each drop-copy session, as journal ids",
)


#: The leadership lease of each active/standby cluster (revision 0005, gateway/cluster/lease.py). Its times are
#: the database's clock (TIMESTAMPTZ, written with now()), not a gateway's ts_us: the one clock every instance
#: shares. Rows are never deleted: the row carries the fencing token forward.
cluster_lease = Table(
    "cluster_lease",
    metadata,
    Column("name", Text, primary_key=True, comment="cluster name"),
    Column("holder", Text, nullable=True, comment="instance holding the lease; NULL once released"),
    Column("token", BigInteger, nullable=False,
           comment="fencing token: one more on every acquire, never reused; writes carry it"),
    Column("acquired_at", DateTime(timezone=True), nullable=False,
           comment="when the holder acquired the lease (database clock)"),
    Column("renewed_at", DateTime(timezone=True), nullable=False,
           comment="when the holder last renewed it (database clock)"),
    Column("expires_at", DateTime(timezone=True), nullable=False,
           comment="after this (database clock) another instance may take the lease"),
    Column("handover_to", Text, nullable=True,
           comment="a planned handover asked: the instance to hand the lease to, or * for any standby; NULL: none"),
    Column("released_clean", Boolean, nullable=False, server_default=false(),
           comment="the last holder released or handed over the lease after a clean stop; cleared by each acquire"),
    comment="The leadership lease of each active/standby cluster, with its fencing token",
)


#: Each instance of each cluster (revision 0007, gateway/cluster/membership.py): its role and heartbeat, written by
#: the instance itself, read by `fixgw cluster status`. Times are the database's clock, as the lease's.
cluster_instances = Table(
    "cluster_instances",
    metadata,
    Column("cluster", Text, primary_key=True, comment="cluster name (cluster_lease.name)"),
    Column("instance", Text, primary_key=True, comment="instance name ([instance.NAME])"),
    Column("role", Text, nullable=False, comment="standby, active or stopped, as the instance last said"),
    Column("host", Text, nullable=False, comment="the machine it runs on (its host name)"),
    Column("pid", Integer, nullable=False, comment="its process id there"),
    Column("started_at", DateTime(timezone=True), nullable=False, comment="when the process started (database clock)"),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False, comment="its last heartbeat (database clock)"),
    Column("token", BigInteger, nullable=True, comment="the last fencing token it held; NULL if it never led"),
    Column("lag_records", BigInteger, nullable=True,
           comment="a standby: order-state records the active wrote that it has not read; NULL: not measured"),
    Column("lag_s", Float, nullable=True,
           comment="a standby: age of the oldest of those records, seconds; NULL: not measured"),
    comment="Each instance of each active/standby cluster: its role and heartbeat, for cluster status",
)


#: A sharded cluster's control plane (revision 0010, gateway/cluster/controls.py): operator commands for the whole
#: cluster, appended by the instance that received them, and each shard applying them in id order.
cluster_controls = Table(
    "cluster_controls",
    metadata,
    Column("id", _Id, Identity(), primary_key=True, comment="the order every shard applies them in"),
    Column("cluster", Text, nullable=False, comment="cluster name ([cluster] name)"),
    Column("issued_at", DateTime(timezone=True), nullable=False, server_default=func.now(),
           comment="when it was issued (database clock)"),
    Column("issued_by", Text, nullable=False, comment="the instance whose admin API received it"),
    Column("operator", Text, nullable=False, comment="who asked, as the admin API knew them"),
    Column("kind", Text, nullable=False, comment="kill, unkill, cancel or reload_risk"),
    Column("body", Text, nullable=False, comment="its arguments, JSON"),
    Index(None, "cluster", "id"),
    sqlite_autoincrement=True,
    comment="Operator commands for a whole sharded cluster, in the order every shard applies them",
)

cluster_control_applied = Table(
    "cluster_control_applied",
    metadata,
    Column("control_id", BigInteger, primary_key=True, comment="cluster_controls.id"),
    Column("lease", Text, primary_key=True, comment="the shard, by its lease (CLUSTER/SHARD)"),
    Column("instance", Text, nullable=False, comment="the shard's active instance that applied it"),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now(),
           comment="when (database clock)"),
    Column("ok", Boolean, nullable=False, comment="false: the instance refused or failed it"),
    Column("result", Text, nullable=False, comment="what the instance answered, JSON"),
    Index(None, "lease", "control_id"),
    comment="Each shard applying each cluster control: how far it has applied, and what it answered",
)


#: What each shard of a sharded cluster holds of each shared risk limit in each scope (revision 0011, replacing
#: 0010's risk_budgets; gateway/cluster/budgets.py): granted under an advisory lock per (cluster, limit, scope),
#: never past the limit.
risk_grants = Table(
    "risk_grants",
    metadata,
    Column("cluster", Text, primary_key=True, comment="cluster name ([cluster] name)"),
    Column("limit_name", Text, primary_key=True,
           comment="the shared limit (max_daily_notional, max_gross_exposure, max_position, ...)"),
    Column("scope", Text, primary_key=True,
           comment='JSON list: ["DAY", "ACCOUNT"], ["ACCOUNT"] or ["ACCOUNT", "SYMBOL"]'),
    Column("lease", Text, primary_key=True, comment="the shard, by its lease (CLUSTER/SHARD)"),
    Column("granted", Numeric, nullable=False,
           comment="what this shard may use of the limit in the scope (notional or quantity)"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now(),
           comment="last grant or give-back (database clock)"),
    comment="Each shard's part of each shared risk limit in each scope; the parts never sum past the limit",
)


#: The order-state log in the database (revision 0006), for failover: see gateway/state/pglog.py. One writer per
#: stream (the active instance); several clusters may share a database under different stream names.
state_log_records = Table(
    "state_log_records",
    metadata,
    Column("id", _Id, Identity(), primary_key=True, comment="the order records are folded in, within a stream"),
    Column("stream", Text, nullable=False, comment="the cluster (or single gateway) the record belongs to"),
    Column("ticket", BigInteger, nullable=False,
           comment="the writer's ticket, increasing: a retried commit skips what the failed one had committed"),
    Column("token", BigInteger, nullable=False, comment="the fencing token its writer held (given at open)"),
    Column("written_us", BigInteger, nullable=False, comment="microseconds since the Unix epoch, UTC"),
    Column("body", LargeBinary, nullable=False, comment="the record, pickled (gateway/state/records.py)"),
    Index(None, "stream", "id"),
    sqlite_autoincrement=True,
    comment="Order-state records since each stream's snapshot, written before the messages they explain are sent",
)

state_log_snapshots = Table(
    "state_log_snapshots",
    metadata,
    Column("stream", Text, primary_key=True),
    Column("covers_id", BigInteger, nullable=False,
           comment="the snapshot holds every record of the stream up to this id (they are deleted)"),
    Column("generation", BigInteger, nullable=False, comment="1 for the stream's first snapshot, +1 for each next"),
    Column("token", BigInteger, nullable=False, comment="the fencing token its writer held"),
    Column("written_us", BigInteger, nullable=False, comment="microseconds since the Unix epoch, UTC"),
    Column("body", LargeBinary, nullable=False, comment="the snapshot, pickled as the file state log's"),
    comment="One order-state snapshot per stream: written at start-up (compaction) and at a clean stop",
)


class SchemaOutOfDate(Exception):
    """The journal database is not at the schema revision this fixgw needs."""

    def __init__(self, message: str, current: str | None = None, head: str | None = None):
        super().__init__(message)
        self.current = current
        self.head = head


# ---------------------------------------------------------------- engines


def safe_url(url: str | URL) -> str:
    """The URL as text with any password masked, fit for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL must still be reportable
        return "<unparsable database URL>"


def _is_sqlite_memory(u: URL) -> bool:
    db = u.database or ""
    return db in ("", ":memory:") or "mode=memory" in db or u.query.get("mode") == "memory"


def make_engine(url: str | URL) -> Engine:
    """An Engine for the journal database, tuned for it.

    SQLite: the database file's directory is created if missing; each connection
    gets WAL journaling, ``synchronous=NORMAL`` and a busy timeout, and SQLAlchemy
    (not the sqlite3 module) emits BEGIN, so transactions, DDL included, are real.
    PostgreSQL: ``postgresql://`` means psycopg 3; connections are pinged on
    checkout and a connect timeout applies unless the URL sets one.
    """
    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        return _make_sqlite_engine(u)
    if backend == "postgresql":
        if u.drivername == "postgresql":
            u = u.set(drivername="postgresql+psycopg")
        if u.get_driver_name() != "psycopg":
            raise ValueError(f"journal database {safe_url(u)}: only the psycopg (3) driver is supported, "
                             "use a postgresql+psycopg:// URL")
        connect_args = {} if "connect_timeout" in u.query else {"connect_timeout": 10}
        engine = create_engine(u, pool_pre_ping=True, connect_args=connect_args)
        # a new connection is a socket: not while quickfix may still read a number it closed (sessions/closing.py)
        event.listen(engine, "do_connect", _settle_before_connecting)
        return engine
    raise ValueError(f"journal database {safe_url(u)}: unsupported backend {backend!r}; "
                     "use sqlite:///path or postgresql+psycopg://...")


def _settle_before_connecting(dialect, record, cargs, cparams) -> None:  # noqa: ARG001
    """SQLAlchemy's ``do_connect`` hook: returns None, so the dialect then connects as usual (a value returned here
    would be taken for the connection)."""
    settle()


def _make_sqlite_engine(u: URL) -> Engine:
    memory = _is_sqlite_memory(u)
    if memory:
        # One shared connection, so every thread sees the same in-memory database.
        engine = create_engine(u, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        if u.query.get("uri") not in ("true", "1") and not u.database.startswith("file:"):
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record):  # noqa: ARG001
        dbapi_connection.isolation_level = None  # the "begin" listener below emits BEGIN
        cur = dbapi_connection.cursor()
        try:
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN")

    return engine


def _engine_for(url_or_engine: str | URL | Engine) -> tuple[Engine, bool]:
    """(engine, owned): owned engines are disposed by the caller when done."""
    if isinstance(url_or_engine, Engine):
        return url_or_engine, False
    return make_engine(url_or_engine), True


# ---------------------------------------------------------------- migrations


def migrations_dir() -> str:
    return str(importlib.resources.files("migrations"))


def alembic_config(connection=None, url: str | URL | None = None):
    """An Alembic Config for the packaged migrations (no alembic.ini needed).

    Pass an open SQLAlchemy Connection (preferred; env.py then uses it as is) or
    a URL (env.py then makes its own engine with ``make_engine``).
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", migrations_dir())
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    if url is not None:
        # Passed as an attribute, not via set_main_option: ConfigParser would try
        # to interpolate a '%' in a percent-encoded password.
        cfg.attributes["url"] = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    return cfg


def _run(url: str | URL | Engine, fn) -> None:
    engine, owned = _engine_for(url)
    try:
        with engine.begin() as conn:
            fn(alembic_config(connection=conn))
    finally:
        if owned:
            engine.dispose()


def upgrade(url: str | URL | Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the journal database up to ``revision`` (default: the newest).

    Returns the revisions before and after (before is None for a database never migrated)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    revisions: list = [None, None]

    def migrate(cfg) -> None:
        conn = cfg.attributes["connection"]
        revisions[0] = MigrationContext.configure(conn).get_current_revision()
        command.upgrade(cfg, revision)
        revisions[1] = MigrationContext.configure(conn).get_current_revision()

    _run(url, migrate)
    return revisions[0], revisions[1]


def downgrade(url: str | URL | Engine, revision: str) -> None:
    """Migrate the journal database down to ``revision`` ("base" removes everything)."""
    from alembic import command

    _run(url, lambda cfg: command.downgrade(cfg, revision))


def current_revision(url: str | URL | Engine) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    from alembic.runtime.migration import MigrationContext

    engine, owned = _engine_for(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if owned:
            engine.dispose()


def head_revision() -> str:
    """The newest revision this fixgw's migrations define."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations package defines no revision"
    return head


def pending_revisions(current: str | None) -> list[str]:
    """The revisions an upgrade from ``current`` (None: an empty database) to the newest applies, in order;
    ``["head"]`` when ``current`` is not one of ours (the upgrade then says so)."""
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError

    script = ScriptDirectory.from_config(alembic_config())
    try:
        return [s.revision for s in reversed(list(script.iterate_revisions("head", current or "base")))]
    except RevisionError:
        return ["head"]


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def check_schema(url: str | URL | Engine, config_path: str | Path | None = None) -> str:
    """Raise SchemaOutOfDate unless the database is at ``head_revision()``; return that revision.

    The message names the database (password masked), both revisions and the fix.
    Connection errors propagate as SQLAlchemy's OperationalError.
    """
    head = head_revision()
    current = current_revision(url)
    if current == head:
        return current
    where = safe_url(url.url if isinstance(url, Engine) else url)
    fix = f"run `fixgw db upgrade -c {config_path if config_path is not None else '<config>'}`"
    if current is None:
        msg = (f"journal database {where} has no schema (revision none, needs {head}): {fix}")
    elif current not in _known_revisions():
        msg = (f"journal database {where} is at revision {current}, which this fixgw does not know "
               f"(it needs {head}); it was migrated by a newer fixgw: upgrade fixgw, "
               f"or downgrade the database with the newer version")
    else:
        msg = f"journal database {where} is at revision {current}, needs {head}: {fix}"
    raise SchemaOutOfDate(msg, current=current, head=head)
