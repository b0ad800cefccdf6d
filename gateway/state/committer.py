"""Group commit for the database state log: records queued by the core thread are committed by one thread, all
those queued since the last commit in one transaction, and each is reported durable only once its transaction has
committed; a fence runs first in every transaction, and the committer stops for good, telling its owner once, when
the fence refuses or the database stays unusable for longer than the grace.

The caller (gateway/state/pglog.py) says how a group is written and how to find how far a commit whose answer was
lost (the connection died during COMMIT) had got, so a retry never writes a record twice.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from gateway.state.records import StateLogError

log = logging.getLogger("fixgw.statelog")

#: The most records written in one transaction (more queued: the next transaction takes them).
MAX_GROUP = 5000
#: A database that neither commits nor fails (a dead peer without a reset) is given the grace plus this.
STALL_MARGIN_S = 1.0
_BACKOFF_FIRST_S, _BACKOFF_MAX_S = 0.05, 1.0


@dataclass(slots=True)
class Pending:
    """A record waiting for its commit."""

    ticket: int
    written_us: int  # when it was appended: microseconds since the Unix epoch, UTC
    body: bytes


def transient(exc: BaseException, dbapi=None) -> bool:
    """A failure of the database or of the connection to it, worth retrying within the grace (anything else, a
    refusing fence above all, is not). ``dbapi``: the driver's module, whose own errors reach us unwrapped from
    work done on the driver's connection (a COPY)."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))
    return dbapi is not None and isinstance(exc, (dbapi.OperationalError, dbapi.InterfaceError))


class GroupCommitter:
    """One committer thread over a queue of records; tickets 1, 2, ... in the order records were submitted.

    ``write(conn, group)`` writes a group inside the open transaction; ``committed_upto(conn)`` returns the highest
    ticket already committed (asked before a retry). ``fence(conn)`` runs first in every transaction and raises to
    refuse it. ``on_durable(ticket)`` is called on the committer thread after each commit (every ticket up to it is
    durable); ``on_fatal(reason)`` once, on the thread that found the failure. After a fatal failure nothing more
    is reported durable and ``submit`` raises.
    """

    def __init__(self, engine: Engine, write: Callable[[Connection, list[Pending]], None],
                 committed_upto: Callable[[Connection], int], *, fence: Callable[[Connection], object] | None = None,
                 grace_s: float = 5.0, on_fatal: Callable[[str], object] | None = None,
                 on_durable: Callable[[int], object] | None = None, first_ticket: int = 1,
                 application_name: str = "fixgw-statelog"):
        self._engine = engine
        self._write = write
        self._committed_upto = committed_upto
        self._fence = fence
        self.grace_s = grace_s
        self._on_fatal = on_fatal
        self._on_durable = on_durable
        self._application_name = application_name
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the committer waits for records
        self._done = threading.Condition(self._lock)  # callers wait for durability
        self._queue: list[Pending] = []
        self._last_ticket = first_ticket - 1  # the last ticket handed out
        self._durable = first_ticket - 1  # every ticket up to this one is committed
        self._inflight_since: float | None = None  # monotonic time the group being written was taken
        self._stopping = False
        self.fatal: str | None = None  # why the committer stopped for good
        self.transactions = 0  # groups committed
        self.committed = 0  # records committed
        self.retries = 0  # attempts that failed and were retried
        self.largest_group = 0
        self._thread = threading.Thread(target=self._run, name="fixgw-statelog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # ------------------------------------------------------------------ the core thread's side
    def submit(self, written_us: int, body: bytes) -> int:
        """Queue one record; returns its ticket. Raises StateLogError once the committer stopped."""
        self._check_stall()
        with self._lock:
            if self.fatal is not None:
                raise StateLogError(f"the database state log stopped: {self.fatal}")
            if self._stopping:
                raise StateLogError("the database state log is closed")
            self._last_ticket = ticket = self._last_ticket + 1
            self._queue.append(Pending(ticket, written_us, body))
            if len(self._queue) == 1:
                self._work.notify()
            return ticket

    @property
    def durable(self) -> int:
        """The highest ticket committed (every one before it is too)."""
        return self._durable

    @property
    def last_ticket(self) -> int:
        return self._last_ticket

    def wait_durable(self, ticket: int, timeout: float | None = None) -> bool:
        """Wait until ``ticket`` is committed (True), the committer stopped for good or ``timeout`` passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._durable >= ticket:
                    return True
                if self.fatal is not None:
                    return False
                wait = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
                if wait <= 0:
                    return False
                self._done.wait(wait)
                if self._durable >= ticket:
                    return True
            self._check_stall()

    def stop(self, timeout: float | None = None) -> bool:
        """Commit what is queued, then stop; True if every ticket handed out is durable."""
        with self._lock:
            self._stopping = True
            self._work.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return self.fatal is None and self._durable == self._last_ticket

    # ------------------------------------------------------------------ failing
    def _check_stall(self) -> None:
        since = self._inflight_since
        if since is not None and time.monotonic() - since > self.grace_s + STALL_MARGIN_S:
            self._die(f"the database has not committed a group in {time.monotonic() - since:.1f} s "
                      f"(grace {self.grace_s:g} s)")

    def _die(self, reason: str) -> None:
        with self._lock:
            if self.fatal is not None:
                return
            self.fatal = reason
            self._done.notify_all()
            self._work.notify()
        log.critical("state log: %s; nothing more is durable, the gateway must stop", reason)
        if self._on_fatal is not None:
            try:
                self._on_fatal(reason)
            except Exception:  # noqa: BLE001 - the committer is stopped whatever the owner does
                log.exception("state log: the on_fatal callback failed")

    # ------------------------------------------------------------------ the committer thread
    def _run(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                with self._lock:
                    while not self._queue and not self._stopping and self.fatal is None:
                        self._work.wait()
                    if self.fatal is not None or not self._queue:
                        return
                    group = self._queue[:MAX_GROUP]
                    del self._queue[:MAX_GROUP]
                    self._inflight_since = time.monotonic()
                conn = self._commit(conn, group)
                if conn is None:  # fatal
                    return
                last = group[-1].ticket
                with self._lock:
                    if self.fatal is not None:  # declared stalled while the commit hung: it stays undurable
                        return
                    self._inflight_since = None
                    self._durable = last
                    self._done.notify_all()
                if self._on_durable is not None:
                    try:
                        self._on_durable(last)
                    except Exception:  # noqa: BLE001 - a listener must never stop the committer
                        log.exception("state log: the on_durable callback failed")
        finally:
            if conn is not None:
                if self.fatal is None:
                    conn.close()  # a clean stop: back to the pool
                else:
                    _close_quietly(conn)

    def _commit(self, conn: Connection | None, group: list[Pending]) -> Connection | None:
        """Commit ``group`` (retrying within the grace); the connection to keep, None after a fatal failure."""
        failing_since: float | None = None
        backoff = _BACKOFF_FIRST_S
        while True:
            if self.fatal is not None:
                if conn is not None:
                    _close_quietly(conn)
                return None
            try:
                if conn is None:
                    conn = self._connect()
                if failing_since is not None:  # the failed attempt may have committed before its answer was lost
                    done = self._committed_upto(conn)
                    conn.rollback()
                    group = [p for p in group if p.ticket > done]
                if group:
                    with conn.begin():
                        if self._fence is not None:
                            self._fence(conn)
                        self._write(conn, group)
                    self.transactions += 1
                    self.committed += len(group)
                    self.largest_group = max(self.largest_group, len(group))
                if failing_since is not None:
                    log.warning("state log: commits recovered after %.1f s", time.monotonic() - failing_since)
                return conn
            except Exception as exc:  # noqa: BLE001 - sorted below: retried, or fatal
                if conn is not None:
                    _close_quietly(conn)
                    conn = None
                if not transient(exc, self._engine.dialect.loaded_dbapi):
                    self._die(f"a write was refused: {type(exc).__name__}: {_first_line(exc)}")
                    return None
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                    log.warning("state log: a commit failed (%s); retrying for up to %g s", _first_line(exc),
                                self.grace_s)
                self.retries += 1
                elapsed = now - failing_since
                if elapsed >= self.grace_s:
                    self._die(f"the database failed for {elapsed:.1f} s (grace {self.grace_s:g} s): "
                              f"{_first_line(exc)}")
                    return None
                time.sleep(min(backoff, self.grace_s - elapsed))
                backoff = min(backoff * 2, _BACKOFF_MAX_S)

    def _connect(self) -> Connection:
        conn = self._engine.connect()
        try:
            # (so an operator, or a test, can find the committer's backend in pg_stat_activity)
            conn.execute(text("SELECT set_config('application_name', :name, false)"),
                         {"name": self._application_name})
            conn.commit()
        except BaseException:
            _close_quietly(conn)
            raise
        return conn


def _close_quietly(conn: Connection) -> None:
    try:
        conn.invalidate()  # never back to the pool: it may be mid-transaction or dead
        conn.close()
    except Exception:  # noqa: BLE001
        pass


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
