"""Keeping the lease: renew it every ttl/3 and, the moment this instance must assume it lost it, say so once.

The keeper judges "lost" by the local monotonic clock, conservatively: a renewal sent at local time ``s`` is
answered by a database whose ``now()`` is later than ``s`` (its transaction starts after the request left), so
the lease it grants lasts at least until ``s + ttl`` by any clock ticking at the same rate. The keeper's
deadline is therefore ``s + ttl`` for the last successful renewal (for the first, the moment the acquire was
sent), and at that deadline it calls ``on_lost`` whether or not the database answered: a renewal hanging on
a dead network, a database refusing connections and a process paused past the deadline all end there.
A renewal that says the token is no longer current (taken, released) calls it at once.

Two threads: the renewer, which may block inside a database call for as long as the network makes it, and the
watchdog, which only waits for the deadline, so a hung renewal cannot delay the verdict. ``on_lost(reason)``
runs exactly once, on whichever thread decides first, and never after ``stop()``; after it the keeper renews no
more, even if a renewal already in flight succeeds (the lease then simply expires).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from gateway.cluster.lease import Lease
from gateway.observability import metrics
from gateway.observability.logs import fields

log = logging.getLogger("fixgw.cluster")


class LeaseKeeper:
    """Renews one term (instance, token) of a cluster's lease and calls ``on_lost`` once when it is over."""

    def __init__(self, lease: Lease, instance: str, token: int, ttl: float, on_lost: Callable[[str], None], *,
                 sent_at: float, clock: Callable[[], float] = time.monotonic,
                 on_handover: Callable[[str], None] | None = None):
        """``sent_at``: the ``clock()`` reading taken just before the successful ``try_acquire`` was sent.
        ``on_handover(to)``: called once, on the renewer's thread, when a renewal finds that an operator asked
        for a planned handover (``to``: an instance, or ``*`` for any standby); the keeper goes on renewing."""
        if not ttl > 0:
            raise ValueError(f"lease ttl must be a positive number of seconds, got {ttl!r}")
        self.lease, self.instance, self.token, self.ttl = lease, instance, token, float(ttl)
        self._on_lost = on_lost
        self._on_handover = on_handover
        self.handover_to: str | None = None  # once asked
        self._clock = clock
        self._cond = threading.Condition()
        self._deadline = sent_at + self.ttl  # local estimate of the expiry; guarded by _cond
        self._stopped = False
        self._lost_reason: str | None = None
        self._threads = [threading.Thread(target=self._renew_loop, name="fixgw-lease-renew", daemon=True),
                         threading.Thread(target=self._watch, name="fixgw-lease-watch", daemon=True)]
        self.renewals = 0  # successful renewals, for metrics and tests

    # ------------------------------------------------------------ public

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop renewing without calling ``on_lost`` (a planned stop; release the lease separately)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for t in self._threads:
            if t.is_alive() and t is not threading.current_thread():
                t.join(timeout)  # a renewer hung on the network is a daemon: it cannot keep the process up

    @property
    def lost(self) -> bool:
        return self._lost_reason is not None

    @property
    def lost_reason(self) -> str | None:
        return self._lost_reason

    def remaining(self) -> float:
        """Seconds until the local expiry estimate (negative once past)."""
        with self._cond:
            return self._deadline - self._clock()

    # ------------------------------------------------------------ threads

    def _over(self) -> bool:
        return self._stopped or self._lost_reason is not None

    def _lose(self, reason: str) -> None:
        with self._cond:
            if self._over():
                return
            self._lost_reason = reason
            self._cond.notify_all()
        metrics.CLUSTER_LEASE_LOSSES.inc()
        log.warning("lease lost", extra=fields(cluster=self.lease.cluster, instance=self.instance,
                                               token=self.token, reason=reason))
        try:
            self._on_lost(reason)
        except Exception:  # noqa: BLE001 - the callback's failure must not hide the loss in a dead thread
            log.exception("lease on_lost callback failed", extra=fields(cluster=self.lease.cluster))

    def _watch(self) -> None:
        with self._cond:
            while not self._over():
                left = self._deadline - self._clock()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._over():
                return
        self._lose(f"not renewed within the ttl of {self.ttl:g}s (database unreachable, slow, "
                   f"or this process was paused)")

    def _renew_loop(self) -> None:
        every = self.ttl / 3
        retry = max(self.ttl / 10, 0.05)
        next_at = self._deadline - self.ttl + every
        while True:
            with self._cond:
                while not self._over() and self._clock() < next_at:
                    self._cond.wait(next_at - self._clock())
                if self._over():
                    return
                sent = self._clock()
                left = self._deadline - sent
            if left <= 0:
                return  # the watchdog calls it lost; a renewal now could only resurrect a lease given up
            try:
                current = self.lease.renew_term(self.instance, self.token, self.ttl, timeout=left)
            except Exception as exc:  # noqa: BLE001 - unknown is not lost: retry until the deadline says so
                log.warning("lease renewal failed", extra=fields(cluster=self.lease.cluster,
                                                                 instance=self.instance, reason=str(exc)[:200]))
                next_at = self._clock() + retry
                continue
            if current is None:
                self._lose(f"fencing token {self.token} is no longer current (another instance took the lease, "
                           f"or it was released)")
                return
            with self._cond:
                if self._over():
                    return
                self._deadline = sent + self.ttl
                self.renewals += 1
                self._cond.notify_all()
            metrics.CLUSTER_LEASE_RENEWALS.inc()
            if current.handover_to is not None and self.handover_to is None:
                self.handover_to = current.handover_to
                log.warning("handover asked", extra=fields(cluster=self.lease.cluster, instance=self.instance,
                                                           token=self.token, to=current.handover_to))
                if self._on_handover is not None:
                    try:
                        self._on_handover(current.handover_to)
                    except Exception:  # noqa: BLE001 - the lease must still be kept while the stop runs
                        log.exception("handover callback failed", extra=fields(cluster=self.lease.cluster))
            log.debug("lease renewed", extra=fields(cluster=self.lease.cluster, instance=self.instance,
                                                    token=self.token))
            next_at = sent + every
