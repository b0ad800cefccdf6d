"""The message journal: every FIX message in and out of every session, in the database.

``JournalWriter.record`` is called from quickfix's session threads (through
sessions.journal_log.JournalLog) with each raw message. It only stamps the time
and appends a tuple to an unbounded in-memory queue: no parsing, no lock held
beyond the queue's own, no I/O, so a slow or unreachable database never slows a
FIX session. One writer thread ("fixgw-journal") drains the queue in batches,
picks out the few tags the table indexes (34, 35, 11, 37, 43) with ``str.find``,
and writes each batch in one transaction: COPY on PostgreSQL, multi-row INSERTs
(up to 500 rows a statement) on SQLite.

If a commit fails the batch is kept and retried with capped backoff; rows are
never dropped while the process lives. ``healthy`` and ``last_error`` say what is
going on; the counters (``submitted``, ``committed``, ``batches``, ...) feed the
metrics.

Row order: the writer takes rows in the order ``record``/``event`` queued them and
the database assigns ``id`` in insertion order, so ``id`` orders all rows and the
rows of one session come back in the order quickfix handed them over.

Nothing a caller passes can make a row the database refuses (which would block
the journal, since rows are never dropped): non-str values are converted to str,
and text the database cannot store is escaped: lone surrogates (undecodable
bytes) become ``\\udcXX`` and, on PostgreSQL, NUL becomes the four characters
``\\x00``. FIX text without binary data fields is never affected.

Secrets never reach the journal: ``record`` and ``event`` mask Password (554) and the
other secret tags (fixspecs/redact.py) before the spool file or the queue sees them.
"""
from __future__ import annotations

import errno
import logging
import mmap
import os
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, NamedTuple

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import URL, Row

from gateway.journal.db import (
    ADMIN_MSG_TYPES,
    _engine_for,
    journal_messages,
    journal_meta,
    make_engine,
    safe_url,
    session_events,
)
from fixspecs.raw import field_after as _field
from fixspecs.redact import redact
from gateway.journal.verify import (
    GENESIS,
    HMAC_KEY_ENV,
    MODE_KEYED,
    chain_mode,
    encode_row,
    hasher_factory,
    key_check,
    key_from_env,
)

log = logging.getLogger("fixgw.journal")

_time_ns = time.time_ns
_monotonic = time.monotonic

# The kinds of queue entries besides messages ("I"/"O").
_EVENT = "E"  # a session event: its kind in the queue and its direction in a spool record
_FLUSH = object()
_STOP = object()
_DIRECTIONS = frozenset(("I", "O"))

_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 5.0

MESSAGE_COLUMNS = ("session_id", "direction", "seq_num", "msg_type", "cl_ord_id", "order_id", "poss_dup",
                   "ts_us", "raw")
EVENT_COLUMNS = ("session_id", "ts_us", "text")

# What the writer inserts: the message columns plus the chain hash (gateway/journal/verify.py).
_WRITE_COLUMNS = MESSAGE_COLUMNS + ("chain_hash",)
# SQLite: many rows per INSERT. executemany() steps the statement once per row, and each step releases
# and retakes the GIL: a hand-off to a FIX session thread or the core thread per journaled row. One
# multi-row INSERT binds every value and steps once. Rows per statement stay within SQLite's limit on
# parameters (32,766 since 3.32; 999 before).
_SQLITE_ROWS_PER_INSERT = 500 if sqlite3.sqlite_version_info >= (3, 32) else 90
_sqlite_inserts: dict[tuple[str, int], str] = {}


def _sqlite_insert(cur, table: str, columns: tuple[str, ...], rows: list) -> None:
    """INSERT ``rows`` (tuples in ``columns`` order) in statements of up to _SQLITE_ROWS_PER_INSERT rows."""
    step = _SQLITE_ROWS_PER_INSERT
    for start in range(0, len(rows), step):
        chunk = rows[start:start + step]
        sql = _sqlite_inserts.get((table, len(chunk)))
        if sql is None:
            one = f"({', '.join('?' * len(columns))})"
            sql = _sqlite_inserts[(table, len(chunk))] = (
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * len(chunk))}")
        cur.execute(sql, [v for row in chunk for v in row])


_PG_COPY_MSG = f"COPY journal_messages ({', '.join(_WRITE_COLUMNS)}) FROM STDIN"
_PG_COPY_EVT = f"COPY session_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"


def _noop(item) -> None:
    pass


def _storable(s: str) -> str:
    """``s`` with anything UTF-8 cannot encode (lone surrogates) backslash-escaped."""
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


def _as_text(value: object) -> str:
    """Whatever a caller passed, as str, so no row can violate the schema and block the journal."""
    if value.__class__ is str:
        return value  # type: ignore[return-value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "surrogateescape")
    return "" if value is None else str(value)


def parse_message(raw: str) -> tuple[int | None, str | None, str | None, str | None, bool]:
    """(MsgSeqNum, MsgType, ClOrdID, OrderID, PossDup) of a raw SOH-separated FIX message.

    Cheap on purpose: the first occurrence of "<SOH>tag=" for each tag, so 11 never
    matches inside 111 or 211, and the leading "8=FIX..." field is never needed.
    A missing field gives None, and so does a MsgSeqNum that is not 1 to 18 ASCII
    digits (it must fit BIGINT). PossDup is True only for the exact field "43=Y".
    """
    s = _field(raw, "\x0134=")
    seq = int(s) if s is not None and s.isascii() and s.isdigit() and len(s) < 19 else None  # not " 1", "+1"
    return (seq, _field(raw, "\x0135="), _field(raw, "\x0111="), _field(raw, "\x0137="),
            "\x0143=Y\x01" in raw)


class JournalWriter:
    """Queues messages from any thread; one writer thread commits them in batches."""

    def __init__(self, database_url: str, batch_max: int = 2000, flush_interval_ms: int = 5,
                 spool_dir: Path | None = None):
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        if flush_interval_ms < 0:
            raise ValueError("flush_interval_ms must not be negative")
        self.database_url = database_url
        self.batch_max = batch_max
        self.flush_interval = flush_interval_ms / 1000.0
        self._engine: Engine = make_engine(database_url)
        self._pg = self._engine.dialect.name == "postgresql"
        self._q: SimpleQueue = SimpleQueue()
        self._put = self._q.put  # never blocks: the queue is unbounded

        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        self._stopped = False
        self._abandon = threading.Event()  # stop() gave up waiting: exit even with rows unwritten
        self._urgent = threading.Event()  # a flush() or stop() marker is queued
        self._conn = None  # the writer thread's pooled DBAPI connection

        # The spool (see Spool): every message is appended to a file before it is queued, so a
        # crash loses nothing the database had not committed yet; start() imports the tail.
        self.spool_dir = Path(spool_dir) if spool_dir is not None else None
        self._spool: Spool | None = None
        self.spool_recovered = 0

        # Hash chain (gateway/journal/verify.py). Keyed with FIXGW_JOURNAL_HMAC_KEY when set.
        # _chain_prev is the last committed row's chain_hash; read from the database (and the
        # journal's chain mode checked) in the first transaction that writes messages.
        self._chain_key = key_from_env()
        self._new_hasher = hasher_factory(self._chain_key)
        self._chain_prev = GENESIS
        self._chain_loaded = False
        self._chain_heads: dict[tuple[str, str], str] = {}

        # Counters. Written by the writer thread only (except the marker count).
        self._stats_lock = threading.Lock()
        self._taken = 0  # rows the writer has taken off the queue
        self._markers_queued = 0  # flush/stop markers in the queue
        self._submitted_seen = 0
        self.committed = 0
        self.batches = 0
        self.last_batch_size = 0
        self.last_commit_seconds = 0.0
        self._inflight_since_ns = 0  # time stamp of the oldest row taken and not yet committed
        self.healthy = True
        self.last_error: str | None = None
        # Called on the writer thread after each commit that stored messages (e.g. the drop-copy
        # thread's wake-up). Must be cheap and must not block: an Event.set(), not a query.
        self._commit_listeners: list[Callable[[], None]] = []
        # (session, direction, MsgType) -> messages taken for journaling; for the metrics endpoint.
        # Updated only by the writer thread; readers copy it (dict copy is atomic under the GIL).
        self.message_counts: dict[tuple[str, str, str | None], int] = {}

    # ------------------------------------------------------------ producer side

    def record(self, session_id: str, direction: str, raw: str) -> None:
        """Queue one raw message ('I' received, 'O' sent). O(1); never touches the database.

        With a spool, the message is first appended to the spool file (a copy into its memory map),
        so it survives the process being killed before the database commits it.
        """
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be 'I' or 'O', not {direction!r}")
        if raw.__class__ is str:
            raw = redact(raw)  # Password (554) and other secret tags never reach the spool or the database
        spool = self._spool
        if spool is None:
            self._put((_time_ns(), session_id, direction, raw, None))
        else:
            spool.append(_time_ns(), session_id, direction, raw)

    def event(self, session_id: str, text: str) -> None:
        """Queue one session event line, through the spool like a message. O(1); never touches the database."""
        if text.__class__ is str:
            text = redact(text)  # quickfix's events can quote a whole raw message
        spool = self._spool
        if spool is None:
            self._put((_time_ns(), session_id, _EVENT, text, None))
        else:
            spool.append(_time_ns(), session_id, _EVENT, text)

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` on the writer thread after every commit that stored messages."""
        self._commit_listeners.append(listener)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the writer thread (once)."""
        with self._lifecycle:
            if self._stopped:
                raise RuntimeError("JournalWriter was stopped; make a new one")
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="fixgw-journal", daemon=True)
            self._thread.start()
        if self.spool_dir is not None:
            self._start_spool()

    def _start_spool(self) -> None:
        """Import what earlier runs spooled and the database never committed; open a new spool file."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        position = self._spool_position()
        files = sorted(self.spool_dir.glob("spool-*.bin"))
        done = []
        for f in files:
            if position is not None and f.name < position[0]:
                done.append(f)  # committed before the file named in the database
                continue
            start = position[1] if position is not None and f.name == position[0] else 0
            for ts, sid, kind, raw, end in read_spool(f, start):
                self._put((ts, sid, kind, raw, (f.name, end)))
                self.spool_recovered += 1
            done.append(f)
        if self.spool_recovered:
            text = (f"journal: {self.spool_recovered} message(s) and event(s) the last run journaled but did "
                    "not commit were recovered from its spool")
            log.warning("%s", text)
            self.event("*", text)
        if done and not self.flush(timeout=120):
            raise RuntimeError(f"could not commit the spooled messages to {safe_url(self.database_url)} "
                               f"({self.last_error}); the spool files in {self.spool_dir} are kept")
        for f in done:
            f.unlink()
        newest = max(([position[0]] if position else []) + [f.name for f in files], default="")
        self._spool = Spool.create(self.spool_dir, self._put, after=newest)

    def _spool_position(self) -> tuple[str, int] | None:
        with self._engine.connect() as conn:
            value = conn.execute(select(journal_meta.c.value).where(journal_meta.c.name == _SPOOL_META)).scalar()
        if not value:
            return None
        name, _, offset = value.rpartition(":")
        return name, int(offset)

    def _put_marker(self, kind: object, payload: Any) -> None:
        with self._stats_lock:
            self._markers_queued += 1
        self._put((_time_ns(), None, kind, payload, None))
        self._urgent.set()  # cut the writer's batching window short

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every row recorded before this call is committed. False on timeout."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return self.queue_depth() == 0
        done = threading.Event()
        self._put_marker(_FLUSH, done)
        return done.wait(timeout)

    def stop(self, timeout: float = 10.0) -> bool:
        """Commit everything queued, stop the writer thread and dispose of the engine.

        Idempotent. Returns False if rows could not be committed within ``timeout``
        (the database is failing); they are then lost with the process, and an error
        says how many.
        """
        with self._lifecycle:
            if self._stopped:
                return self.queue_depth() == 0
            self._stopped = True
            thread = self._thread
            if thread is None and self.queue_depth():
                # Rows were recorded but the writer never ran: write them now.
                thread = self._thread = threading.Thread(target=self._run, name="fixgw-journal", daemon=True)
                thread.start()
        ok = True
        if thread is not None:
            self._put_marker(_STOP, None)
            thread.join(timeout)
            if thread.is_alive():
                self._abandon.set()
                thread.join(_BACKOFF_MAX_S)
            left = self.queue_depth()
            if left:
                ok = False
                log.error("journal stopped with %d rows not committed to %s (last error: %s)",
                          left, safe_url(self.database_url), self.last_error)
        self._engine.dispose()
        if self._spool is not None:
            self._spool.close(remove=ok)  # everything in it is committed: a clean start imports nothing
            self._spool = None
        return ok

    # ------------------------------------------------------------ metrics

    @property
    def submitted(self) -> int:
        """Rows (messages and events) handed to record()/event(). Never decreases."""
        with self._stats_lock:
            n = self._taken + self._q.qsize() - self._markers_queued
            if n > self._submitted_seen:
                self._submitted_seen = n
            return self._submitted_seen

    def queue_depth(self) -> int:
        """Rows recorded and not yet committed (queued or in the batch being written)."""
        return max(0, self.submitted - self.committed)

    def oldest_uncommitted_ns(self) -> int:
        """Capture time (``time.time_ns()`` at record()/event()) of the oldest row not yet committed; 0 if none.

        The writer commits in queue order and takes the next batch as soon as one is committed, so that row
        is the first of the batch being written (or waiting for its flush interval to fill). Rows recorded
        before the writer runs are not seen here (the queue cannot be looked into)."""
        return self._inflight_since_ns

    def commit_lag_seconds(self) -> float:
        """The journal's lag, the one figure /metrics (fixgw_journal_commit_lag_seconds), /health and
        `fixgw status` show: how far the durable record is behind right now, as the age in seconds of the
        oldest message or event captured and not yet committed to the database; 0 when all are committed.
        It grows while commits fail or fall behind, and is back to 0 once they catch up."""
        since = self.oldest_uncommitted_ns()
        if not since:
            return 0.0
        return max(0.0, (_time_ns() - since) / 1e9)

    # ------------------------------------------------------------ writer thread

    def _run(self) -> None:
        try:
            stopping = False
            while not stopping:
                items = self._take(block=True)
                if items:
                    stopping = self._process(items)
                if self._abandon.is_set():
                    return
            # Rows recorded while stop() ran (after its marker): best effort, no waiting.
            while not self._abandon.is_set():
                items = self._take(block=False)
                if not items:
                    break
                self._process(items)
        except BaseException:  # noqa: BLE001 - must be loud: nothing else would notice
            log.critical("journal writer thread died; messages are no longer journaled", exc_info=True)
            self.healthy = False
            raise
        finally:
            self._close_conn(invalidate=False)

    def _take(self, block: bool) -> list:
        """Up to batch_max queue entries; waits at most flush_interval after the first."""
        q = self._q
        get_nowait = q.get_nowait
        items: list = []
        try:
            if block:
                while True:
                    try:
                        item = q.get(timeout=1.0)
                        break
                    except Empty:
                        if self._abandon.is_set():
                            return items
            else:
                item = get_nowait()
        except Empty:
            return items
        self._inflight_since_ns = item[0]
        append = items.append
        append(item)
        kind = item[2]
        if kind is _FLUSH or kind is _STOP:
            return self._count_taken(items)
        batch_max = self.batch_max
        if block and q.qsize() < batch_max:
            # Let the batch fill while waiting on an event that only flush()/stop() set: a
            # thread blocked in q.get() is woken by every record(), and each wake-up is a
            # GIL hand-off that the FIX session threads pay for (measured: a large share of
            # the gateway's CPU at 1,000 orders/s, see docs/performance.md).
            self._urgent.wait(self.flush_interval)
            self._urgent.clear()
        n = 1
        while n < batch_max:
            try:
                item = get_nowait()
            except Empty:
                break
            append(item)
            n += 1
            kind = item[2]
            if kind is _FLUSH or kind is _STOP:
                break  # someone is waiting: commit what we have now
        return self._count_taken(items)

    def _count_taken(self, items: list) -> list:
        markers = sum(1 for it in items if it[2] is _FLUSH or it[2] is _STOP) if self._markers_queued else 0
        with self._stats_lock:
            self._taken += len(items) - markers
            self._markers_queued -= markers
        return items

    def _process(self, items: list) -> bool:
        """Parse and commit one batch; release flush waiters. True if a stop marker was in it."""
        msgs = []
        events = []
        waiters = []
        stop = False
        add_msg = msgs.append
        pg = self._pg
        directions = _DIRECTIONS
        parse = parse_message
        counts = self.message_counts
        spooled = None
        for ts, sid, kind, payload, pos in items:
            if kind in directions:
                if pos is not None:
                    spooled = pos
                if payload.__class__ is not str or sid.__class__ is not str:
                    payload, sid = _as_text(payload), _as_text(sid)
                if not payload.isascii():
                    payload = _storable(payload)
                if pg and "\x00" in payload:
                    payload = payload.replace("\x00", "\\x00")
                seq, msg_type, cl_ord_id, order_id, poss_dup = parse(payload)
                add_msg((sid, kind, seq, msg_type, cl_ord_id, order_id, poss_dup, ts // 1000, payload))
                key = (sid, kind, msg_type)
                counts[key] = counts.get(key, 0) + 1
            elif kind == _EVENT:
                if pos is not None:
                    spooled = pos
                text = _storable(_as_text(payload))
                if pg:
                    text = text.replace("\x00", "\\x00")
                events.append((_storable(_as_text(sid)), ts // 1000, text))
            elif kind is _FLUSH:
                waiters.append(payload)
            else:
                stop = True
        if msgs or events:
            if not self._commit_with_retry(msgs, events, spooled):
                return True  # abandoned by stop()
        self._inflight_since_ns = 0
        for w in waiters:
            w.set()
        return stop

    def _commit_with_retry(self, msgs: list, events: list, spooled: tuple[str, int] | None = None) -> bool:
        n = len(msgs) + len(events)
        delay = _BACKOFF_FIRST_S
        attempt = 0
        failing_since = 0.0
        while True:
            attempt += 1
            t0 = _monotonic()
            try:
                self._write(msgs, events, spooled)
            except Exception as exc:  # noqa: BLE001 - any failure: keep the rows, retry
                self._close_conn(invalidate=True)
                self.healthy = False
                self.last_error = f"{type(exc).__name__}: {_first_line(exc)}"
                if attempt == 1:
                    failing_since = t0
                    log.error("journal commit of %d rows to %s failed, will retry: %s",
                              n, safe_url(self.database_url), self.last_error)
                else:
                    log.warning("journal commit still failing (attempt %d, %d rows waiting): %s",
                                attempt, self.queue_depth(), self.last_error)
                if self._abandon.wait(delay):
                    return False
                delay = min(delay * 2, _BACKOFF_MAX_S)
                continue
            elapsed = _monotonic() - t0
            self._inflight_since_ns = 0  # committed: what a listener (the writer process's report) reads now
            self.committed += n
            self.batches += 1
            self.last_batch_size = n
            self.last_commit_seconds = elapsed
            if not self.healthy:
                self.healthy = True
                log.warning("journal commits to %s recovered after %d attempts (%.1f s)",
                            safe_url(self.database_url), attempt, _monotonic() - failing_since)
            if msgs:
                for listener in self._commit_listeners:
                    try:
                        listener()
                    except Exception:  # noqa: BLE001 - a listener must never stop the journal
                        log.exception("journal commit listener failed")
            return True

    def _write(self, msgs: list, events: list, spooled: tuple[str, int] | None = None) -> None:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._engine.raw_connection()
        try:
            rows = msgs
            if self._pg:
                with conn.driver_connection.cursor() as cur:
                    if msgs:
                        rows = self._chain(msgs, self._chain_start(cur, "%s"))
                        with cur.copy(_PG_COPY_MSG) as cp:
                            write_row = cp.write_row
                            for row in rows:
                                write_row(row)
                    if events:
                        with cur.copy(_PG_COPY_EVT) as cp:
                            for row in events:
                                cp.write_row(row)
                    if spooled is not None:
                        _set_spool_position(cur, "%s", spooled)
            else:
                cur = conn.cursor()
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    if msgs:
                        rows = self._chain(msgs, self._chain_start(cur, "?"))
                        _sqlite_insert(cur, "journal_messages", _WRITE_COLUMNS, rows)
                    if events:
                        _sqlite_insert(cur, "session_events", EVENT_COLUMNS, events)
                    if spooled is not None:
                        _set_spool_position(cur, "?", spooled)
                finally:
                    cur.close()
            conn.commit()
            if msgs:
                self._chain_prev = rows[-1][-1]
                self._chain_loaded = True
        except BaseException:
            self._chain_loaded = False  # re-read the last hash: the database, not memory, says where the chain is
            try:
                conn.rollback()
            except Exception:  # noqa: BLE001 - the connection is dropped by the caller anyway
                pass
            raise

    def _chain_start(self, cur, param: str) -> bytes:
        """The chain hash to continue from; on the first write, read it and check the chain mode.

        Runs inside the write transaction (after BEGIN IMMEDIATE on SQLite). Raises if the
        journal's recorded mode or key does not match ours: the batch is then retried like
        any failed commit, and last_error says what to fix.
        """
        if self._chain_loaded:
            return self._chain_prev
        cur.execute("SELECT name, value FROM journal_meta")
        meta = dict(cur.fetchall())
        key = self._chain_key
        mode = meta.get("chain_mode")
        if mode is None:
            cur.execute(f"INSERT INTO journal_meta (name, value) VALUES ({param}, {param})",
                        ("chain_mode", chain_mode(key)))
            if key is not None:
                cur.execute(f"INSERT INTO journal_meta (name, value) VALUES ({param}, {param})",
                            ("chain_key_check", key_check(key)))
        elif mode != chain_mode(key):
            raise RuntimeError(f"the journal's hash chain is {mode} but {HMAC_KEY_ENV} is "
                               f"{'set' if key is not None else 'not set'}; "
                               f"{'set it to the journal key' if mode == MODE_KEYED else 'unset it'}")
        elif key is not None and meta.get("chain_key_check") != key_check(key):
            raise RuntimeError(f"{HMAC_KEY_ENV} is not the key this journal's hash chain was written with")
        cur.execute("SELECT chain_hash FROM journal_messages ORDER BY id DESC LIMIT 1")
        last = cur.fetchone()
        self._chain_prev = GENESIS if last is None or last[0] is None else bytes(last[0])
        return self._chain_prev

    def _chain(self, msgs: list, prev: bytes) -> list:
        """``msgs`` with each row's chain_hash appended, in order (encoding: journal_verify.encode_row)."""
        new = self._new_hasher
        heads = self._chain_heads  # (session_id, direction) -> their encoded fields, for ASCII ids
        out = []
        add = out.append
        for row in msgs:
            sid, direction, seq, msg_type, _, _, _, ts_us, raw = row
            head = heads.get((sid, direction)) if raw.isascii() else None
            if head is None and (not sid.isascii() or not raw.isascii()):
                data = encode_row(sid, direction, seq, msg_type, ts_us, raw)
            else:  # all ASCII: byte length == str length; the same bytes as encode_row, faster
                if head is None:
                    if len(heads) > 10_000:  # session ids are few; never let odd callers grow this
                        heads.clear()
                    head = heads[(sid, direction)] = f"{len(sid)}:{sid}1:{direction}"
                t = str(ts_us)
                if seq is not None and msg_type is not None:
                    q = str(seq)
                    data = f"{head}{len(q)}:{q}{len(msg_type)}:{msg_type}{len(t)}:{t}{len(raw)}:{raw}".encode()
                else:
                    data = (f"{head}{'-' if seq is None else f'{len(q := str(seq))}:{q}'}"
                            f"{'-' if msg_type is None else f'{len(msg_type)}:{msg_type}'}"
                            f"{len(t)}:{t}{len(raw)}:{raw}").encode()
            h = new()
            h.update(prev + data)
            prev = h.finalize()
            add(row + (prev,))
        return out

    def _close_conn(self, invalidate: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if invalidate:
                conn.invalidate()
            else:
                conn.close()
        except Exception:  # noqa: BLE001
            log.debug("closing the journal connection failed", exc_info=True)


_SPOOL_META = "spool_position"
_SPOOL_HEADER = struct.Struct("<IIq")  # payload length, crc32 of the payload, time stamp (ns)


def _set_spool_position(cur, param: str, spooled: tuple[str, int]) -> None:
    """Record, in the batch's own transaction, how far into which spool file the journal is committed."""
    value = f"{spooled[0]}:{spooled[1]}"
    cur.execute(f"UPDATE journal_meta SET value = {param} WHERE name = {param}", (value, _SPOOL_META))
    if cur.rowcount == 0:
        cur.execute(f"INSERT INTO journal_meta (name, value) VALUES ({param}, {param})", (_SPOOL_META, value))


_SPOOL_GROWTH = 16 << 20  # the spool file is extended (zero-filled, allocated) and mapped this much at a time


class Spool:
    """An append-only file in front of the journal queue: the crash-safe half of the journal.

    ``append`` copies one record into the file through a shared memory map (in the
    page cache it survives the process being killed; it is not fsynced) and queues
    the row under the same lock, so the queue's order is the file's order. A copy
    into the map is no system call and does not let go of the GIL, where a
    ``write()`` per message did both, on every session thread and the core thread.
    The file grows by ``_SPOOL_GROWTH`` at a time, its disk blocks allocated at once
    (``_allocate``); what follows the last record is zeros (a record never has
    length 0), and a clean close trims them. Each
    committed batch stores the file position of its last row in journal_meta, in
    the same transaction; the next start imports the rest. Record: [length u32]
    [crc32 u32][ns i64][direction ("I", "O", or "E" for a session event), session,
    NUL, raw message or event text in UTF-8].
    """

    def __init__(self, path: Path, put: Callable[[tuple], None]):
        self.path = path
        self._put = put  # where each record goes once it is written (the writer's queue)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        size = os.fstat(self._fd).st_size
        self._pos = spool_end(path) if size else 0
        self._size = max(size, self._pos + _SPOOL_GROWTH)
        _allocate(self._fd, self._size)
        self._map = mmap.mmap(self._fd, self._size)
        self._lock = threading.Lock()
        self.records = 0  # appended by this process

    @classmethod
    def create(cls, directory: Path, put: Callable[[tuple], None], after: str = "") -> "Spool":
        stamp = time.time_ns()
        if after:
            stamp = max(stamp, int(after[len("spool-"):-len(".bin")]) + 1)
        return cls(Path(directory) / f"spool-{stamp:020d}.bin", put)

    def append(self, ts: int, session_id: str, direction: str, raw: str) -> None:
        body = f"{direction}{session_id}\x00{raw}".encode("utf-8", "surrogatepass")
        rec = _SPOOL_HEADER.pack(len(body), zlib.crc32(body), ts) + body
        with self._lock:
            start = self._pos
            end = start + len(rec)
            if end > self._size:
                size = end + _SPOOL_GROWTH
                _allocate(self._fd, size)  # OSError (disk full): this record is refused, the spool stays whole
                mapped = mmap.mmap(self._fd, size)  # (a new map: mmap.resize needs Linux's mremap)
                self._map.close()
                self._map, self._size = mapped, size
            self._map[start:end] = rec
            self._pos = end
            self.records += 1
            self._put((ts, session_id, direction, raw, (self.path.name, end)))

    def timestamp_at(self, pos: int) -> int | None:
        """Capture time (ns) of the record starting at byte ``pos``; None if no record starts there."""
        with self._lock:
            if pos < 0 or pos + _SPOOL_HEADER.size > self._pos:
                return None
            length, _crc, ts = _SPOOL_HEADER.unpack_from(self._map, pos)
            return ts if length else None

    def position(self) -> tuple[int, int]:
        """(bytes, records appended by this process) so far, read together."""
        with self._lock:
            return self._pos, self.records

    def redirect(self, put: Callable[[tuple], None]) -> tuple[int, int]:
        """Hand the records appended from now on to ``put``; ``position()`` at the switch."""
        with self._lock:
            self._put = put
            return self._pos, self.records

    def close(self, remove: bool) -> None:
        with self._lock:
            self._map.close()
            os.ftruncate(self._fd, self._pos)  # no zeros after the last record
            os.close(self._fd)
        if remove:
            self.path.unlink(missing_ok=True)


def _allocate(fd: int, size: int) -> None:
    """Give the file ``size`` bytes of disk blocks now. A store into a mapped page with no block behind it
    on a full disk kills the process (SIGBUS); an allocation that fails raises OSError (ENOSPC) here,
    like the ``write()`` it replaced. Where ``posix_fallocate`` is missing (macOS) or the file system
    refuses it, the new part of the file is written with zeros instead."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        try:
            fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
    at = os.fstat(fd).st_size
    zeros = bytes(1 << 20)
    while at < size:
        at += os.pwrite(fd, zeros[:size - at], at)


class SpoolStop(NamedTuple):
    """Where and why ``parse_spool`` stopped: "end" (no more data, or the zeros after the last record),
    "partial" (a record that runs past the data; ``length``: its length, when its header was whole) or
    "torn" (its checksum fails: still being copied, or the process died while writing it)."""

    why: str
    at: int  # the offset of the first byte not taken (just after the last whole record)
    length: int | None = None


def parse_spool(data: bytes, start: int = 0, base: int = 0):
    """(ns, session, direction, raw, end offset) of each whole record in ``data`` from ``start``, then one
    ``SpoolStop``. Offsets are ``base`` + offsets in ``data``."""
    pos, n = start, len(data)
    size = _SPOOL_HEADER.size
    while True:
        if pos + size > n:
            yield SpoolStop("end" if pos == n or not any(data[pos:]) else "partial", base + pos)
            return
        length, crc, ts = _SPOOL_HEADER.unpack_from(data, pos)
        if length == 0:
            yield SpoolStop("end", base + pos)
            return
        end = pos + size + length
        if end > n:
            yield SpoolStop("partial", base + pos, length)
            return
        body = data[pos + size:end]
        if zlib.crc32(body) != crc:
            yield SpoolStop("torn", base + pos)
            return
        pos = end
        head, _, raw = body.decode("utf-8", "surrogatepass").partition("\x00")
        yield ts, head[1:], head[0], raw, base + pos


def read_spool(path: Path, start: int = 0):
    """(ns, session, direction, raw, end offset) of each whole record from ``start``; stops at a torn one."""
    for record in parse_spool(path.read_bytes(), start):
        if type(record) is SpoolStop:
            if record.why != "end":
                log.warning("spool %s: torn record at byte %d ignored (the process died while writing it)",
                            path, record.at)
            return
        yield record


def spool_end(path: Path) -> int:
    """The offset just after the last whole record of a spool file."""
    *_, stop = parse_spool(path.read_bytes())
    return stop.at


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's exception
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else repr(exc)


# ---------------------------------------------------------------- reading


def _message_filter(stmt, session_id: str | None, direction: str | None, app_only: bool = False):
    t = journal_messages.c
    if session_id is not None:
        stmt = stmt.where(t.session_id == session_id)
    if direction is not None:
        stmt = stmt.where(t.direction == direction)
    if app_only:
        stmt = stmt.where(t.msg_type.is_not(None), t.msg_type.not_in(ADMIN_MSG_TYPES))
    return stmt


def iter_messages(engine_or_url: Engine | str | URL, session_id: str | None = None,
                  direction: str | None = None, batch: int = 1000) -> Iterator[Row]:
    """Journal rows in id order, fetched ``batch`` at a time (server-side cursor on PostgreSQL).

    Each row has the attributes id, session_id, direction, seq_num, msg_type,
    cl_ord_id, order_id, poss_dup, ts_us and raw. Close the generator (or exhaust
    it) to release the connection.
    """
    stmt = _message_filter(select(journal_messages), session_id, direction).order_by(journal_messages.c.id)
    return stream_rows(engine_or_url, stmt, batch)


def stream_rows(engine_or_url: Engine | str | URL, stmt, batch: int = 1000) -> Iterator[Row]:
    """The rows of ``stmt``, fetched ``batch`` at a time (a server-side cursor on PostgreSQL), in constant
    memory. Close the generator (or exhaust it) to release the connection."""
    engine, owned = _engine_for(engine_or_url)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(stmt)
            try:
                yield from result
            finally:
                result.close()
    finally:
        if owned:
            engine.dispose()


def iter_events(engine_or_url: Engine | str | URL, session_id: str | None = None,
                batch: int = 1000) -> Iterator[Row]:
    """Session event rows (id, session_id, ts_us, text) in id order."""
    stmt = select(session_events).order_by(session_events.c.id)
    if session_id is not None:
        stmt = stmt.where(session_events.c.session_id == session_id)
    return stream_rows(engine_or_url, stmt, batch)


def count_messages(engine_or_url: Engine | str | URL, session_id: str | None = None,
                   direction: str | None = None, app_only: bool = False) -> int:
    """Number of journal rows; ``app_only`` leaves out admin MsgTypes (0,1,2,3,4,5,A)
    and rows without a MsgType."""
    engine, owned = _engine_for(engine_or_url)
    try:
        stmt = _message_filter(select(func.count()).select_from(journal_messages), session_id, direction,
                               app_only)
        with engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())
    finally:
        if owned:
            engine.dispose()


def inbound_after(engine_or_url: Engine | str | URL, session_id: str, since_us: int, after_seq: int) -> list[Row]:
    """Rows (id, seq_num, msg_type, raw) received on a session at or after ``since_us`` with a MsgSeqNum
    above ``after_seq``, in journal order."""
    t = journal_messages.c
    stmt = (select(t.id, t.seq_num, t.msg_type, t.raw)
            .where(t.session_id == session_id, t.direction == "I", t.ts_us >= since_us, t.seq_num > after_seq)
            .order_by(t.id))
    return list(stream_rows(engine_or_url, stmt))


def session_rejected(engine_or_url: Engine | str | URL, session_id: str, since_us: int) -> set[int]:
    """MsgSeqNums (RefSeqNum, 45) of inbound messages the session answered with a session-level Reject (3)."""
    t = journal_messages.c
    stmt = select(t.raw).where(t.session_id == session_id, t.direction == "O", t.msg_type == "3",
                               t.ts_us >= since_us)
    out = set()
    for row in stream_rows(engine_or_url, stmt):
        ref = _field(row.raw, "\x0145=")
        if ref is not None and ref.isdigit():
            out.add(int(ref))
    return out
