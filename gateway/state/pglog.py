"""The order-state log in PostgreSQL: the file state log's records and snapshot, kept where a standby on another
machine can read them, so it can take over (issue 20).

Same reading semantics as gateway/state/log.py (``recover`` folds the snapshot and
every record after it into the same ``State``), same records (gateway/state/records.py),
in two tables of the journal database (revision 0006, gateway/journal/db.py):

- ``state_log_records``: (stream, id, ticket, token, written_us, body), folded in id
  order; ``stream`` names the cluster, so several may share a database;
- ``state_log_snapshots``: one row per stream, the file's snapshot plus the id of
  the last record it covers and a generation counter.

Writing differs: ``append`` packs the record on the caller's thread, queues it and
returns a ticket at once; a committer thread (gateway/state/committer.py) commits
everything queued since its last commit in one transaction (group commit) and only
then reports the tickets durable (``durable``, ``wait_durable``, ``on_durable``). The
engine must hand a record's messages to the wire only once its ticket is durable.
Every write transaction (records, and the snapshots of ``open`` and ``close``) first
runs ``fence(connection)``, which raises when this instance's fencing token is stale;
then, or when the database stays unusable for longer than ``grace_s``, the committer
stops, nothing after is reported durable, and ``on_fatal(reason)`` is called once:
the gateway stops rather than send a message its successor would not know of.

There is one writer per stream (the active instance, fenced), so ids are committed in
order and a reader sees a prefix of them: ``follow`` lets a warm standby fold what
was written since it last looked, reloading from the snapshot if the active compacted
past it.

PostgreSQL only: SQLite has no second machine to fail over to; a single instance keeps the file state log.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

from sqlalchemy import Connection, Engine, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from gateway.journal.db import safe_url, state_log_records, state_log_snapshots
from gateway.state.committer import GroupCommitter, Pending
from gateway.state.records import RecordEncoder, State, StateLogError, load_record, load_snapshot, snapshot_bytes

log = logging.getLogger("fixgw.statelog")

_R, _S = state_log_records.c, state_log_snapshots.c
# Groups of at least this many records are written with a binary COPY (about 3x faster per row than INSERTs on
# a group of a thousand; a round trip more, so slower for a single record).
_COPY_FROM = 8
_COPY = "COPY state_log_records (stream, ticket, token, written_us, body) FROM STDIN (FORMAT BINARY)"


@dataclass(frozen=True)
class Lag:
    """How far a standby that folded up to some record id is behind the active."""

    records: int  # records written after it (and after the snapshot)
    seconds: float  # age of the oldest of them (0.0: none)
    snapshot_moved: bool  # the active compacted past it: the next ``follow`` reloads from the snapshot


class PgStateLog:
    """The state log of one stream in a PostgreSQL database (see the module's docstring)."""

    kind = "database"
    durable_on_append = False  # a ticket is durable once its group committed: the sender waits for it

    def __init__(self, engine: Engine, stream: str, *, fence: Callable[[Connection], object] | None = None,
                 grace_s: float = 5.0, on_fatal: Callable[[str], object] | None = None,
                 on_durable: Callable[[int], object] | None = None, rejected_kept: int | None = None):
        if engine.dialect.name != "postgresql":
            raise StateLogError(f"the database state log is for failover and needs PostgreSQL; "
                                f"{safe_url(engine.url)} is {engine.dialect.name}: a single instance keeps its "
                                "order state in the file state log (<data_dir>/state)")
        if not stream:
            raise ValueError("the database state log needs a stream name")
        self.engine = engine
        self.stream = stream
        self.fence = fence
        self.grace_s = grace_s
        self.on_fatal = on_fatal
        self.on_durable = on_durable
        self.rejected_kept = rejected_kept  # refused orders kept at most (the oldest dropped), None: all
        self.token = 0  # the fencing token given at open, carried by every record
        self.covers_id = 0  # the id the snapshot written at open covers: every later record is this writer's
        self.written = 0
        self.bytes_written = 0
        self._encoder = RecordEncoder()
        self._committer: GroupCommitter | None = None  # while open
        self._closed: GroupCommitter | None = None  # the last one, after close (its counts and fatal stay readable)
        self._generation: int | None = None  # the snapshot ``follow`` last saw
        self.last_id = 0  # the last record id ``recover`` or ``follow`` folded

    def _where(self) -> str:
        return f"stream {self.stream!r} in {safe_url(self.engine.url)}"

    # ------------------------------------------------------------------ reading
    def recover(self) -> State:
        """Fold the snapshot and every record after it, as ``StateLog.recover`` does (``torn`` is never set: a
        transaction is whole or absent)."""
        state = State()
        self._generation = None
        self.last_id = self.follow(state, 0)
        if state.records:
            state.clean = False
        return state

    def follow(self, state: State, after_id: int) -> int:
        """Fold into ``state`` the records written after ``after_id``; returns the last id folded (``after_id`` if
        none). If the snapshot moved past ``after_id`` (the active compacted) or was rewritten since this log last
        followed, ``state`` is first reloaded from it, in place. A fresh ``State`` with ``after_id`` 0 is a full read.
        """
        with self.engine.connect() as conn:
            # one snapshot of the database for both reads: a compaction in between cannot hide records
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                snap = conn.execute(select(_S.covers_id, _S.generation).where(_S.stream == self.stream)).first()
                if snap is not None and (snap.covers_id > after_id or self._generation not in (None, snap.generation)
                                         or after_id == 0):
                    body = conn.execute(select(_S.body).where(_S.stream == self.stream)).scalar_one()
                    _reload(state, self._load_snapshot(body), self.rejected_kept)
                    after_id = snap.covers_id
                self._generation = snap.generation if snap is not None else None
                rows = conn.execution_options(stream_results=True, yield_per=500).execute(
                    select(_R.id, _R.body).where(_R.stream == self.stream, _R.id > after_id).order_by(_R.id))
                for rid, body in rows:
                    try:
                        rec = load_record(body)
                    except Exception as exc:  # noqa: BLE001 - a record that cannot load: stop, say which
                        raise StateLogError(f"state log record {rid} ({self._where()}) cannot be read: {exc}") \
                            from None
                    state.apply(rec)
                    after_id = rid
        self.last_id = after_id
        return after_id

    def lag(self, after_id: int) -> Lag:
        """How far behind a standby that folded up to ``after_id`` is."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                covers = conn.execute(select(_S.covers_id).where(_S.stream == self.stream)).scalar() or 0
                n, oldest = conn.execute(select(func.count(), func.min(_R.written_us)).where(
                    _R.stream == self.stream, _R.id > max(after_id, covers))).one()
        seconds = max(0.0, time.time() - oldest / 1e6) if oldest is not None else 0.0
        return Lag(records=n, seconds=seconds, snapshot_moved=covers > after_id)

    def _load_snapshot(self, body: bytes) -> State:
        try:
            return load_snapshot(body)
        except Exception as exc:  # noqa: BLE001
            raise StateLogError(f"the state log snapshot of {self._where()} cannot be read: {exc}; refusing to "
                                "start without the gateway's order state") from None

    # ------------------------------------------------------------------ writing
    def open(self, state: State, token: int = 0) -> None:
        """Compact: in one transaction, write ``state`` as the snapshot (not clean: we are running) and delete the
        records it covers; then start committing. ``token``: this instance's fencing token, carried by every record.
        """
        if self._committer is not None:
            raise StateLogError(f"the state log of {self._where()} is already open")
        self.token = token
        self.covers_id = self._write_snapshot(state, clean=False)
        self._committer = GroupCommitter(
            self.engine, self._write_group, self._committed_upto, fence=self.fence, grace_s=self.grace_s,
            on_fatal=self.on_fatal, on_durable=self.on_durable,
            first_ticket=self._closed.last_ticket + 1 if self._closed is not None else 1,
            application_name=f"fixgw-statelog:{self.stream}"[:63])
        self._committer.start()

    def append(self, origin: str | None, seq: int, orders: list, sends: list, controls: tuple | None,
               routes: list, trades: dict | None, risk_day: tuple | None = None, rejected: list = ()) -> int:
        """Queue one record (the arguments of ``StateLog.append``); returns its ticket, durable once committed."""
        committer = self._committer
        if committer is None:
            raise StateLogError(f"the state log of {self._where()} is not open")
        body = self._encoder.record(origin, seq, orders, sends, controls, routes, trades, risk_day, rejected)
        ticket = committer.submit(time.time_ns() // 1000, body)
        self.written += 1
        self.bytes_written += len(body)
        return ticket

    @property
    def committer(self) -> GroupCommitter | None:
        """The committer (its counters: transactions, committed, retries, largest_group), the last one after close."""
        return self._committer or self._closed

    @property
    def durable(self) -> int:
        """The highest durable ticket: every record up to it is committed."""
        c = self.committer
        return c.durable if c is not None else 0

    @property
    def pending(self) -> int:
        """Records appended and not yet durable (the durable lag, in records)."""
        c = self.committer
        return c.last_ticket - c.durable if c is not None else 0

    def wait_durable(self, ticket: int, timeout: float | None = None) -> bool:
        """Wait until ``ticket`` is committed (True), or the log stopped for good, or ``timeout`` passed (False)."""
        c = self.committer
        return c.wait_durable(ticket, timeout) if c is not None else False

    @property
    def fatal(self) -> str | None:
        """Why the log stopped for good (fenced, or the database down longer than the grace); None while it runs."""
        c = self.committer
        return c.fatal if c is not None else None

    def close(self, state: State) -> None:
        """Clean stop: commit what is queued, then the snapshot holds everything and says so (the records it covers
        deleted). After a fatal failure nothing is written: this instance may no longer be the writer."""
        committer = self._committer
        if committer is None:
            return
        drained = committer.stop()
        self._committer, self._closed = None, committer
        if not drained:
            log.error("state log: closing without a clean snapshot (%s): the next start recovers from the records",
                      committer.fatal or "records were not committed")
            return
        self._write_snapshot(state, clean=True)

    def _write_snapshot(self, state: State, clean: bool) -> int:
        """Write ``state`` as the stream's snapshot covering every record so far; delete those. Returns the id
        covered."""
        body = snapshot_bytes(state, clean)
        try:
            with self.engine.begin() as conn:
                if self.fence is not None:
                    self.fence(conn)
                covers = conn.execute(select(func.max(_R.id)).where(_R.stream == self.stream)).scalar()
                prev = conn.execute(select(_S.covers_id).where(_S.stream == self.stream).with_for_update()).scalar()
                covers = max(covers or 0, prev or 0)
                row = {"stream": self.stream, "covers_id": covers, "generation": 1, "token": self.token,
                       "written_us": time.time_ns() // 1000, "body": body}
                stmt = pg_insert(state_log_snapshots).values(row)
                conn.execute(stmt.on_conflict_do_update(index_elements=[_S.stream], set_={
                    "covers_id": stmt.excluded.covers_id, "generation": _S.generation + 1,
                    "token": stmt.excluded.token, "written_us": stmt.excluded.written_us,
                    "body": stmt.excluded.body}))
                conn.execute(delete(state_log_records).where(_R.stream == self.stream, _R.id <= covers))
        except StateLogError:
            raise
        except Exception as exc:  # noqa: BLE001 - fenced, or the database is down: start-up (or the stop) says so
            raise StateLogError(f"could not write the state log snapshot of {self._where()}: "
                                f"{type(exc).__name__}: {exc}") from exc
        return covers

    # ------------------------------------------------------------------ the committer's callbacks
    def _write_group(self, conn: Connection, group: list[Pending]) -> None:
        stream, token = self.stream, self.token
        if len(group) < _COPY_FROM:
            conn.execute(insert(state_log_records), [
                {"stream": stream, "ticket": p.ticket, "token": token, "written_us": p.written_us, "body": p.body}
                for p in group])
            return
        with conn.connection.driver_connection.cursor() as cur, cur.copy(_COPY) as cp:  # (same transaction)
            cp.set_types(["text", "int8", "int8", "int8", "bytea"])
            for p in group:
                cp.write_row((stream, p.ticket, token, p.written_us, p.body))

    def _committed_upto(self, conn: Connection) -> int:
        """The highest ticket this writer committed (its records are the stream's after ``covers_id``)."""
        return conn.execute(select(_R.ticket).where(_R.stream == self.stream, _R.id > self.covers_id)
                            .order_by(_R.id.desc()).limit(1)).scalar() or 0


def _reload(state: State, fresh: State, rejected_kept: int | None) -> None:
    """Make ``state`` the snapshot ``fresh``, in place (the caller holds on to ``state``)."""
    for f in fields(State):
        setattr(state, f.name, getattr(fresh, f.name))
    state.rejected_kept = rejected_kept
    state._cap_rejected()
