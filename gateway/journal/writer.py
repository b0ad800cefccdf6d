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

The writer's collaborators, one job each: ``spool.py`` (the file in front of the
queue), ``batches.py`` (the queue, taken in batches), ``rows.py`` (entries to table
rows), ``inserts.py`` (one batch, one transaction) with ``chain.py`` (the hash
chain); reading the journal back is ``queries.py``.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from fixspecs.redact import redact
from gateway.journal.batches import FLUSH, STOP, Batch, BatchQueue
from gateway.journal.chain import HashChain
from gateway.journal.db import make_engine, safe_url
from gateway.journal.inserts import BatchInserter
from gateway.journal.rows import DIRECTIONS, EVENT, table_rows
from gateway.journal.fencing import StaleLeadership, Term
from gateway.journal.spool import SPOOL_META, Spool, position_key, spool_files, spool_position, uncommitted
from gateway.journal.verify import key_from_env

log = logging.getLogger("fixgw.journal")

_time_ns = time.time_ns
_monotonic = time.monotonic

_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 5.0


class JournalWriter:
    """Queues messages from any thread; one writer thread commits them in batches."""

    def __init__(self, database_url: str, batch_max: int = 2000, flush_interval_ms: int = 5,
                 spool_dir: Path | None = None, instance: str | None = None, chain: str = ""):
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        if flush_interval_ms < 0:
            raise ValueError("flush_interval_ms must not be negative")
        self.database_url = database_url
        self.batch_max = batch_max
        self.flush_interval = flush_interval_ms / 1000.0
        # A cluster's instance (docs/failover.md): its spool's committed position is its own journal_meta row,
        # and its hash chain is shared with the other instances' writers (one at a time, under a lock): the
        # cluster's, ``''``, or in a sharded cluster its shard's (``chain``, the shard's lease name).
        self.instance = instance
        self.chain = chain
        self._position_key = position_key(instance)
        self._engine: Engine = make_engine(database_url)
        self._pg = self._engine.dialect.name == "postgresql"
        self._abandon = threading.Event()  # stop() gave up waiting: exit even with rows unwritten
        self._queue = BatchQueue(batch_max, self.flush_interval, self._abandon)
        self._put = self._queue.put  # never blocks: the queue is unbounded

        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        self._stopped = False
        # The writer thread's transactions, with the hash chain (gateway/journal/chain.py), keyed with
        # FIXGW_JOURNAL_HMAC_KEY when set.
        self._inserter = BatchInserter(self._engine, HashChain(key_from_env(), shared=instance is not None,
                                                                 chain=chain),
                                       self._position_key)

        # The spool (gateway/journal/spool.py): every message is appended to a file before it is queued, so a
        # crash loses nothing the database had not committed yet; start() imports the tail.
        self.spool_dir = Path(spool_dir) if spool_dir is not None else None
        self._spool: Spool | None = None
        self.spool_recovered = 0

        # Counters. Written by the writer thread only.
        self.committed = 0
        self.batches = 0
        self.last_batch_size = 0
        self.last_commit_seconds = 0.0
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
        if direction not in DIRECTIONS:
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
            self._put((_time_ns(), session_id, EVENT, text, None))
        else:
            spool.append(_time_ns(), session_id, EVENT, text)

    def set_term(self, term: Term) -> None:
        """This instance now leads its cluster with ``term``: every later commit is fenced by it (inserts.py)."""
        self._inserter.term = term

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
        files = spool_files(self.spool_dir)
        for ts, sid, kind, raw, pos in uncommitted(files, position):
            self._put((ts, sid, kind.lower() if kind in DIRECTIONS else kind, raw, pos))  # (rows.RECOVERED)
            self.spool_recovered += 1
        if self.spool_recovered:
            text = (f"journal: {self.spool_recovered} message(s) and event(s) the last run journaled but did "
                    "not commit were recovered from its spool")
            log.warning("%s", text)
            self.event("*", text)
        if files and not self.flush(timeout=120):
            raise RuntimeError(f"could not commit the spooled messages to {safe_url(self.database_url)} "
                               f"({self.last_error}); the spool files in {self.spool_dir} are kept")
        for f in files:
            f.unlink()
        newest = max(([position[0]] if position else []) + [f.name for f in files], default="")
        self._spool = Spool.create(self.spool_dir, self._put, after=newest)

    def _spool_position(self) -> tuple[str, int] | None:
        """Where in which spool file the journal is committed (see spool.spool_position). A cluster's instance
        with no row of its own yet continues from the single-instance row if that names one of its files
        (the same data directory, run alone before it joined a cluster); never from another instance's."""
        position = spool_position(self._engine, self._position_key)
        if position is None and self._position_key != SPOOL_META and self.spool_dir is not None:
            alone = spool_position(self._engine)
            if alone is not None and (self.spool_dir / alone[0]).exists():
                return alone
        return position

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every row recorded before this call is committed. False on timeout."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return self.queue_depth() == 0
        done = threading.Event()
        self._queue.put_marker(FLUSH, done)
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
            self._queue.put_marker(STOP, None)
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
        return self._queue.submitted()

    def queue_depth(self) -> int:
        """Rows recorded and not yet committed (queued or in the batch being written)."""
        return max(0, self.submitted - self.committed)

    def oldest_uncommitted_ns(self) -> int:
        """Capture time (``time.time_ns()`` at record()/event()) of the oldest row not yet committed; 0 if none.

        The writer commits in queue order and takes the next batch as soon as one is committed, so that row
        is the first of the batch being written (or waiting for its flush interval to fill). Rows recorded
        before the writer runs are not seen here (the queue cannot be looked into)."""
        return self._queue.oldest_taken_ns

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
                batch = self._queue.take(block=True)
                if batch is not None:
                    stopping = self._process(batch)
                if self._abandon.is_set():
                    return
            # Rows recorded while stop() ran (after its marker): best effort, no waiting.
            while not self._abandon.is_set():
                batch = self._queue.take(block=False)
                if batch is None:
                    break
                self._process(batch)
        except BaseException:  # noqa: BLE001 - must be loud: nothing else would notice
            log.critical("journal writer thread died; messages are no longer journaled", exc_info=True)
            self.healthy = False
            raise
        finally:
            self._inserter.close(invalidate=False)

    def _process(self, batch: Batch) -> bool:
        """Make rows of one batch and commit them; release a flush waiter. True if a stop marker ended it."""
        msgs, events, spooled = table_rows(batch.entries, self._pg, self.message_counts)
        if msgs or events:
            if not self._commit_with_retry(msgs, events, spooled):
                return True  # abandoned by stop()
        self._queue.release()
        if batch.flush is not None:
            batch.flush.set()
        return batch.stop

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
                self._inserter.close(invalidate=True)
                self.healthy = False
                self.last_error = f"{type(exc).__name__}: {_first_line(exc)}"
                if isinstance(exc, StaleLeadership):
                    if attempt == 1:  # for good: the process is ending (the lease keeper stops it)
                        log.critical("journal commits refused: %s. The %d rows waiting stay in the spool %s; "
                                     "this instance's next start journals them", exc, self.queue_depth(),
                                     self.spool_dir)
                elif attempt == 1:
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
            self._queue.release()  # committed: what a listener (the writer process's report) reads now
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
        """One batch in one transaction (bench/journal_bench.py measures commit lag here)."""
        self._inserter.write(msgs, events, spooled)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's exception
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else repr(exc)

