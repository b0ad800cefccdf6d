"""A warm standby's copy of the order state: folded from the database state log while the instance stands by, so
a takeover reads only the records written since its last look instead of the whole log.

A thread follows the log (``PgStateLog.follow``) every ``every`` seconds and measures the lag (``PgStateLog.lag``):
how many records, and how old the oldest, the copy is behind the active. ``lag()`` reads the last figure without
touching the database (the cluster's heartbeat writes it to ``cluster_instances``). ``take()`` stops the thread and
returns the copy brought up to date: the caller holds the lease by then, and the lease's fence ended every write of
the old active (gateway/cluster/fence.py), so that last read misses nothing.
"""
from __future__ import annotations

import logging
import threading
import time

from gateway.state.pglog import PgStateLog
from gateway.state.records import State

log = logging.getLogger("fixgw.statelog")


class WarmState:
    """The order state a standby keeps folding; ``take()`` once it leads."""

    def __init__(self, statelog: PgStateLog, every: float = 0.5):
        self._log = statelog
        self._every = every
        self._state: State | None = None
        self._upto = 0  # the last record id folded into _state
        self._lag: tuple[int, float] | None = None  # (records, seconds) behind, as last measured
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one fold at a time: the thread's, or take()'s
        self._thread: threading.Thread | None = None
        self.follows = 0  # completed folds (tests wait on it)
        self.last_error: str | None = None

    def start(self) -> "WarmState":
        self._thread = threading.Thread(target=self._run, name="fixgw-warm-standby", daemon=True)
        self._thread.start()
        return self

    def lag(self) -> tuple[int, float] | None:
        """(records, seconds) this copy was behind the active at the last look; None before the first."""
        return self._lag

    def take(self) -> State:
        """Stop following; the state folded up to the log's last record (a full read if nothing was folded yet)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        with self._lock:
            return self._fold()

    def _fold(self) -> State:
        if self._state is None:
            self._state = self._log.recover()
            self._upto = self._log.last_id
        else:
            self._upto = self._log.follow(self._state, self._upto)
            if self._state.records:
                self._state.clean = False  # (as recover() says it)
        return self._state

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._lock:
                    if self._stop.is_set():
                        return
                    started = time.monotonic()
                    self._fold()
                    lag = self._log.lag(self._upto)
                self._lag = (lag.records, lag.seconds)
                self.follows += 1
                if self.last_error is not None:
                    log.info("warm standby: following the state log again")
                    self.last_error = None
                log.debug("warm standby: folded to record %d in %.3f s; %d behind", self._upto,
                          time.monotonic() - started, lag.records)
            except Exception as exc:  # noqa: BLE001 - the database may come back; take() reads again anyway
                if self.last_error is None:
                    log.warning("warm standby: cannot follow the state log: %s", str(exc).splitlines()[0][:200])
                self.last_error = str(exc)
                self._lag = None
                with self._lock:
                    self._state = None  # read afresh: a fold that failed part-way may have applied some records
            self._stop.wait(self._every)
