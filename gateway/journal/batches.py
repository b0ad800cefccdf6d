"""The queue between the journal's producers (any thread) and its writer thread, taken in batches.

Entries are (ns, session, kind, payload, spool position or None); ``put`` never blocks (the queue is
unbounded). A flush or stop marker cuts the writer's batching window short and ends the batch it is in.
"""
from __future__ import annotations

import threading
import time
from queue import Empty, SimpleQueue
from typing import Any, NamedTuple

FLUSH = object()  # payload: a threading.Event, set once everything queued before it is committed
STOP = object()  # the writer commits what is queued before it, then ends


class Batch(NamedTuple):
    entries: list  # queue entries, in queue order
    flush: threading.Event | None  # set it once the entries are committed
    stop: bool  # a stop marker ended the batch


class BatchQueue:
    """Hands the writer thread up to ``batch_max`` entries at a time, waiting at most ``flush_interval``
    seconds after the first for the batch to fill; counts what was put and taken, for the metrics."""

    def __init__(self, batch_max: int, flush_interval: float, abandon: threading.Event):
        self._q: SimpleQueue = SimpleQueue()
        self.put = self._q.put  # never blocks: the queue is unbounded
        self._batch_max = batch_max
        self._flush_interval = flush_interval
        self._abandon = abandon  # the writer gave up: a blocking take() returns at once
        self._urgent = threading.Event()  # a flush() or stop() marker is queued
        self._lock = threading.Lock()
        self._taken = 0  # entries the writer has taken off the queue
        self._markers_queued = 0  # flush/stop markers in the queue
        self._submitted_seen = 0
        self.oldest_taken_ns = 0  # time stamp of the oldest entry taken and not yet released

    def put_marker(self, kind: object, payload: Any) -> None:
        """Queue FLUSH (with its Event) or STOP, and cut the writer's batching window short."""
        with self._lock:
            self._markers_queued += 1
        self.put((time.time_ns(), None, kind, payload, None))
        self._urgent.set()

    def urge(self) -> None:
        """Commit what is queued now, without waiting out the batching window."""
        self._urgent.set()

    def submitted(self) -> int:
        """Entries ever put (markers not counted). Never decreases."""
        with self._lock:
            n = self._taken + self._q.qsize() - self._markers_queued
            if n > self._submitted_seen:
                self._submitted_seen = n
            return self._submitted_seen

    def release(self) -> None:
        """The entries taken are committed (or given up): none is in flight."""
        self.oldest_taken_ns = 0

    def take(self, block: bool) -> Batch | None:
        """The next batch; None if nothing is queued (``block``: wait for the first entry, until the writer
        is abandoned)."""
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
                            return None
            else:
                item = get_nowait()
        except Empty:
            return None
        self.oldest_taken_ns = item[0]
        kind = item[2]
        if kind is FLUSH or kind is STOP:
            return self._taken_batch(items, item)
        append = items.append
        append(item)
        batch_max = self._batch_max
        if block and q.qsize() < batch_max:
            # Let the batch fill while waiting on an event that only flush()/stop() set: a
            # thread blocked in q.get() is woken by every record(), and each wake-up is a
            # GIL hand-off that the FIX session threads pay for (measured: a large share of
            # the gateway's CPU at 1,000 orders/s, see docs/performance.md).
            self._urgent.wait(self._flush_interval)
            self._urgent.clear()
        n = 1
        while n < batch_max:
            try:
                item = get_nowait()
            except Empty:
                break
            n += 1
            kind = item[2]
            if kind is FLUSH or kind is STOP:
                return self._taken_batch(items, item)  # someone is waiting: commit what we have now
            append(item)
        return self._taken_batch(items, None)

    def _taken_batch(self, entries: list, marker: tuple | None) -> Batch:
        with self._lock:
            self._taken += len(entries)
            if marker is not None:
                self._markers_queued -= 1
        if marker is None:
            return Batch(entries, None, False)
        if marker[2] is FLUSH:
            return Batch(entries, marker[3], False)
        return Batch(entries, None, True)
