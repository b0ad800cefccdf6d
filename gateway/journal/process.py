"""The journal's database writer in a process of its own, fed by the spool file.

Every message the gateway receives or sends is already appended to the spool
(``gateway.journal.spool.Spool``: a copy into its memory map, on the thread that saw it) before
anything depends on it. In "process" mode (``[journal] writer``, the default for
``fixgw run``) that append is all the gateway process does per message: a child
process (``python -m gateway.journal.process``) tails the spool file and commits its
records with the same ``JournalWriter`` code (parsing, hash chain, batching,
retries). The parsing, hashing and driver work of every row then runs under
the child's own GIL instead of competing with the FIX session threads and the core
thread for the gateway's (bench/ measured the in-process writer at about a fifth of
the gateway's GIL time at saturation).

Exactly once: each commit stores, in the same transaction, the spool position of
its last record (``journal_meta.spool_position``); a child starts from that
position, so a child that dies and is restarted, or a gateway that is killed and
started again, never writes a record twice or skips one. Only one writer may
append to the journal: a child holds ``<spool_dir>/writer.lock`` (flock) while it
runs, and the gateway takes that lock before it imports old spool files at
start-up, so a child of a killed gateway has exited before anything else writes.

Child -> gateway: a short line after each commit (rows committed, the committed
spool position, batch figures), and a JSON line when its health changes and,
at most once a second, with the message counts for the metrics. The
gateway -> child, lines on stdin: "term TOKEN CLUSTER" (this instance leads its cluster: fence every
commit with that token from now on), "stop" (commit everything spooled, then exit); EOF on stdin (the
gateway died): exit at once. The child ignores SIGINT and SIGTERM,
which a terminal's Ctrl-C or a service manager send to the whole process group:
the gateway's own clean stop decides when it is done.
"""
from __future__ import annotations

import fcntl
import gc
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from gateway.journal.batches import STOP
from gateway.journal.db import safe_url
from gateway.journal.fencing import Term
from gateway.journal.spool import _SPOOL_HEADER, parse_spool
from gateway.journal.writer import JournalWriter

log = logging.getLogger("fixgw.journal")

LOCK_NAME = "writer.lock"
CONFIG_ENV = "FIXGW_JOURNAL_PROC_CONFIG"
_START_TIMEOUT_S = 60.0
_RESTARTS_MAX = 5


def _noop(entry) -> None:
    """The gateway's queue once the child commits: nothing is queued, the child reads the spool file."""


def lock_writer(spool_dir: Path, timeout: float) -> int | None:
    """Take the journal writer's lock (an open fd; closing it releases); None if not within ``timeout``."""
    fd = os.open(Path(spool_dir) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.02)


class SpoolTail:
    """Whole records appended to a spool file since ``pos``; a record still being written waits.

    The gateway copies records into the file through a memory map, so the bytes after the last whole
    record are zeros or a record being copied: each read starts afresh at ``pos`` and keeps nothing of
    a record it could not take whole."""

    _CHUNK = 64 << 10

    def __init__(self, path: Path, pos: int):
        self.path = path
        self.name = path.name
        self.pos = pos
        self._fd = os.open(path, os.O_RDONLY)
        self._chunk = self._CHUNK

    def read(self) -> list:
        """[(ns, session, kind, payload, (file name, end offset))] of the new whole records."""
        out = []
        while True:
            base = self.pos
            data = os.pread(self._fd, self._chunk, base)
            *whole, stop = parse_spool(data, base=base)
            out += [(ts, sid, kind, payload, (self.name, end)) for ts, sid, kind, payload, end in whole]
            self.pos = stop.at
            if len(data) < self._chunk or stop.why == "torn" or (stop.why == "end" and stop.at < base + len(data)):
                return out  # the end (zeros), or a record being written (or torn): read again next time
            if not whole:  # the chunk ended inside one record longer than it
                self._chunk = max(2 * self._chunk, (stop.length or 0) + _SPOOL_HEADER.size)

    def skip_to(self, pos: int) -> int:
        """Move past the whole records that end at or before ``pos``; how many."""
        skipped = 0
        while self.pos < pos:
            at = self.pos
            rows = [r for r in self.read() if r[4][1] <= pos]
            self.pos = rows[-1][4][1] if rows else at  # (read() may have gone further)
            if not rows:
                break
            skipped += len(rows)
        return skipped

    def close(self) -> None:
        os.close(self._fd)


# ---------------------------------------------------------------------------- the child
def child_main(config: dict) -> int:
    # Ctrl-C in a terminal and a service manager's SIGTERM reach the whole process group; the gateway
    # then stops cleanly and tells this process to finish ("stop"), or dies and closes its stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    spool_dir = Path(config["spool_dir"])
    lock = lock_writer(spool_dir, timeout=30)
    if lock is None:
        print(json.dumps({"fatal": f"another journal writer holds {spool_dir / LOCK_NAME}"}), flush=True)
        return 2
    writer = JournalWriter(config["database_url"], config["batch_max"], config["flush_interval_ms"],
                           instance=config.get("instance"), chain=config.get("chain", ""))
    if config.get("term"):
        writer.set_term(Term.parse(config["term"]))
    tail = SpoolTail(spool_dir / config["spool"], config["start"])
    skipped = 0
    stored = writer._spool_position()
    if stored is not None and stored[0] == tail.name:
        # A child before this one committed further than the gateway heard: those records are done.
        skipped = tail.skip_to(stored[1])
    committed_pos = tail.pos
    marks: deque[tuple[int, int]] = deque()  # (rows put so far, spool position after them)
    put_total = 0
    counts_sent: dict = {}
    last = None

    status_sent = [None, 0.0]  # (healthy, last_error) last sent, and when the message counts were last sent
    reporting = threading.Lock()  # report() runs on this loop's thread and, after each commit, the writer's

    def report(final: bool = False, idle: bool = False) -> None:
        """A commit: one short line ("c committed skipped position batches size seconds"). Health,
        errors and message counts (for the metrics): a JSON line, before the commit line, when they change;
        the counts at most once a second while records keep coming, at once when they stop. Parsing JSON
        for every commit was a measurable share of the gateway's GIL."""
        with reporting:
            _report(final, idle)

    def _report(final: bool, idle: bool) -> None:
        nonlocal committed_pos, counts_sent, last
        committed = writer.committed
        while marks and marks[0][0] <= committed:  # the writer commits in queue order
            committed_pos = marks.popleft()[1]
        out = []
        now = time.monotonic()
        health = (writer.healthy, writer.last_error)
        if final or idle or health != status_sent[0] or now - status_sent[1] >= 1.0:
            counts = dict(writer.message_counts)
            delta = [[*k, n - counts_sent.get(k, 0)] for k, n in counts.items() if n != counts_sent.get(k, 0)]
            if final or delta or health != status_sent[0]:
                out.append(json.dumps({"healthy": health[0], "last_error": health[1], "counts": delta}))
            counts_sent, status_sent[0], status_sent[1] = counts, health, now
        state = (committed, committed_pos)
        if state != last or final:
            last = state
            out.append(f"c {committed} {skipped} {committed_pos} {writer.batches} "
                       f"{writer.last_batch_size} {writer.last_commit_seconds:.6f}")
        if out:
            try:
                sys.stdout.write("\n".join(out) + "\n")
                sys.stdout.flush()
            except BrokenPipeError:
                os._exit(0)  # the gateway died (as when stdin closes, below): its next start imports the rest

    # Each commit is reported as soon as it returns (on the writer's thread), not at the next poll: the
    # gateway (drop copies, flush()) hears of it up to a flush interval sooner. With nothing more queued the
    # writer is idle, and the message counts go in the same report, before the commit line, so the metrics
    # are current by the time a flush() returns.
    writer.add_commit_listener(lambda: report(idle=writer.queue_depth() == 0))
    # Everything made so far (the modules, SQLAlchemy's engine and dialect) lives as long as this process: out
    # of the collector's sight, so the collections that the rows' tuples set off do not walk it over and over
    # (they were some 10% of this process's CPU).
    gc.freeze()
    writer.start()
    poll = max(config["flush_interval_ms"], 1) / 1000.0
    stdin = sys.stdin.fileno()
    stopping = False
    pending = b""  # a line from the gateway not yet whole
    try:
        while True:
            rows = tail.read()
            for row in rows:
                writer._put(row)
            if rows:
                put_total += len(rows)
                with reporting:
                    marks.append((put_total, tail.pos))
                # The poll was this batch's window: the writer commits it now instead of waiting a flush
                # interval more for rows that arrive only at the next poll (which doubled the commit lag).
                writer._queue.urge()
            report(idle=not rows)
            if stopping and not rows:
                break
            ready, _, _ = select.select([stdin], [], [], poll)
            if ready and not stopping:
                data = os.read(stdin, 256)
                if not data:
                    os._exit(0)  # the gateway died: its next start imports the rest (exactly once, by position)
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.startswith(b"term "):  # the gateway leads its cluster: fence every commit from now on
                        writer.set_term(Term.parse(line[5:].decode()))
                    elif line == b"stop":
                        stopping = True
        ok = writer.stop(timeout=config.get("stop_timeout", 10.0))
        report(final=True)
        return 0 if ok else 1
    finally:
        tail.close()


# ---------------------------------------------------------------------------- the gateway's side
class ProcessJournalWriter(JournalWriter):
    """A JournalWriter whose database writes happen in a child process fed by the spool (see the module).

    Until ``start()`` has imported what earlier runs spooled, it is a plain JournalWriter;
    from then on ``record()`` and ``event()`` only append to the spool file.
    """

    def __init__(self, database_url: str, batch_max: int = 2000, flush_interval_ms: int = 5,
                 spool_dir: Path | None = None, instance: str | None = None, chain: str = ""):
        if spool_dir is None:
            raise ValueError("the process writer needs a spool directory")
        super().__init__(database_url, batch_max, flush_interval_ms, spool_dir, instance, chain)
        self._term: Term | None = None
        self._child: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()
        self._child_pos = 0  # position in the spool file up to which the journal has committed
        self._committed_before = 0  # rows committed before the current child started
        self._submitted_at_switch = 0
        self._records_at_switch = 0
        self._child_stopping = False
        self._restarts = 0

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        lock = lock_writer(self.spool_dir, timeout=30)  # a child of a killed gateway must have exited
        if lock is None:
            raise RuntimeError(f"another journal writer holds {self.spool_dir / LOCK_NAME}")
        try:
            super().start()  # the writer thread imports what earlier runs spooled; a new spool file is opened
            # from here on records only go to the spool file, for the child to read
            start, self._records_at_switch = self._spool.redirect(_noop)
            thread = self._thread
            self._queue.put_marker(STOP, None)  # the writer thread commits what it has, then ends
            thread.join(_START_TIMEOUT_S)
            if thread.is_alive():  # the database accepted the import's reads but not these few rows
                raise RuntimeError(f"could not commit the journal's first rows to {safe_url(self.database_url)} "
                                   f"within {_START_TIMEOUT_S:.0f} s ({self.last_error})")
            self._thread = None
            self._committed_before = self._submitted_at_switch = self.committed
            self._child_pos = start
        finally:
            os.close(lock)
        self._spawn(start)

    def _spawn(self, start: int) -> None:
        config = {"database_url": self.database_url, "batch_max": self.batch_max,
                  "flush_interval_ms": max(1, round(self.flush_interval * 1000)), "spool_dir": str(self.spool_dir),
                  "spool": self._spool.path.name, "start": start, "instance": self.instance, "chain": self.chain,
                  "term": self._term.text() if self._term is not None else None}
        # The configuration (the database URL may carry its password) goes in the environment, which only
        # the same user can read, not on the command line, which `ps` shows everyone.
        env = {**os.environ, CONFIG_ENV: json.dumps(config)}
        child = subprocess.Popen([sys.executable, "-m", "gateway.journal.process"], env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        self._child = child
        self._reader = threading.Thread(target=self._read_child, args=(child,), name="fixgw-journal-proc",
                                        daemon=True)
        self._reader.start()

    def _read_child(self, child: subprocess.Popen) -> None:
        for line in child.stdout:
            if line.startswith(b"c "):  # a commit (see child_main's report)
                try:
                    _, committed, skipped, pos, batches, size, seconds = line.split()
                    total = self._committed_before + int(skipped) + int(committed)
                except ValueError:
                    continue
                with self._cond:
                    before = self.committed
                    self.committed = total
                    self._child_pos = int(pos)
                    self.batches, self.last_batch_size = int(batches), int(size)
                    self.last_commit_seconds = float(seconds)
                    self._cond.notify_all()
                if total > before:
                    for listener in self._commit_listeners:
                        try:
                            listener()
                        except Exception:  # noqa: BLE001 - a listener must never stop the journal
                            log.exception("journal commit listener failed")
                continue
            try:
                msg = json.loads(line.decode("utf-8", "replace"))
            except ValueError:
                continue
            if "fatal" in msg:
                self.healthy, self.last_error = False, msg["fatal"]
                continue
            self.healthy, self.last_error = msg["healthy"], msg["last_error"]
            if msg["counts"]:
                counts = dict(self.message_counts)
                for sid, direction, msg_type, n in msg["counts"]:
                    key = (sid, direction, msg_type)
                    counts[key] = counts.get(key, 0) + n
                self.message_counts = counts
        code = child.wait()
        if self._child_stopping:
            return
        self.healthy = False
        self.last_error = f"journal writer process exited with code {code}"
        self._restarts += 1
        if self._restarts > _RESTARTS_MAX:
            log.critical("journal writer process exited (code %s) %d times; not restarted again: messages are "
                         "still spooled to %s and imported at the next start", code, self._restarts,
                         self._spool.path)
            return
        log.critical("journal writer process exited with code %s; restarting it (it resumes where the "
                     "journal's last commit left the spool)", code)
        with self._cond:
            self._committed_before = self.committed
        self._spawn(self._child_pos)

    def set_term(self, term: Term) -> None:
        """Fence the child's commits with ``term`` from now on (and a restarted child's, from its start)."""
        self._term = term
        super().set_term(term)  # (the writer thread, before the child takes over)
        child = self._child
        if child is not None:
            try:
                child.stdin.write(f"term {term.text()}\n".encode())
                child.stdin.flush()
            except OSError as exc:  # the child died: its restart gets the term in its configuration
                log.warning("could not pass the fencing token to the journal writer process: %s", exc)

    def flush(self, timeout: float = 5.0) -> bool:
        if self._child is None:
            return super().flush(timeout)
        spool = self._spool
        if spool is None:
            return self.queue_depth() == 0
        target, _ = spool.position()
        with self._cond:
            return self._cond.wait_for(lambda: self._child_pos >= target, timeout)

    def stop(self, timeout: float = 10.0) -> bool:
        child = self._child
        if child is None:
            return super().stop(timeout)
        with self._lifecycle:
            if self._stopped:
                return self.queue_depth() == 0
            self._stopped = True
        self._child_stopping = True
        ok = False
        try:
            child.stdin.write(b"stop\n")
            child.stdin.flush()
            child.wait(timeout)
            self._reader.join(5)
            ok = child.returncode == 0 and self.flush(0)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("journal writer process did not stop cleanly: %s", exc)
            child.kill()
            child.wait(5)
        if not ok:
            log.error("journal stopped with %d rows not committed to %s; they stay in the spool %s and are "
                      "imported at the next start", self.queue_depth(), safe_url(self.database_url),
                      self._spool.path)
        self._engine.dispose()
        self._spool.close(remove=ok)
        self._spool = None
        return ok

    # ------------------------------------------------------------ metrics
    def oldest_uncommitted_ns(self) -> int:
        """The record at the position up to which the child has committed is the oldest not yet committed
        (the child commits in spool order): its time stamp, read from the spool. This holds while the child
        reads, while it fails to commit (it reports nothing then) and before it has read the record."""
        if self._child is None:
            return super().oldest_uncommitted_ns()
        spool = self._spool
        if spool is None or self.queue_depth() == 0:
            return 0
        return spool.timestamp_at(self._child_pos) or 0

    @property
    def submitted(self) -> int:
        if self._child is None:
            return super().submitted
        spool = self._spool
        if spool is None:  # stopped
            return self.committed
        return self._submitted_at_switch + spool.position()[1] - self._records_at_switch


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s journal-writer %(levelname)s %(message)s")
    sys.exit(child_main(json.loads(os.environ.pop(CONFIG_ENV))))
