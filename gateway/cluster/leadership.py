"""This instance's part in its cluster: stand by until it holds the lease, then keep it, and end the process the
moment it may have lost it, before it sends or writes anything more.

- ``wait_until_leading``: a standby (configuration loaded, database connected, its heartbeat in
  ``cluster_instances``) polls the lease, more often as its expiry nears, and logs every minute who leads and
  how long the lease has left. When it acquires the lease it is the active one: a LeaseKeeper renews the lease
  every ttl/3 and a heartbeat says "active".
- Losing the lease (not renewed within the ttl by the local clock, or taken over) ends the process at once with
  ``LEASE_LOST_EXIT_CODE``, logged CRITICAL. ``os._exit``: no clean stop, which would send Logouts and write.
- ``check_sending``: the journal's quickfix Log sees every message before quickfix writes it to a socket, and
  every message it reads before it processes it (sessions/journal_log.py); ``GuardedSink`` runs this check first,
  so a process resumed after a pause past its lease (SIGSTOP, a frozen VM) ends before its first message goes
  out, or one that arrived is acted on, even if its keeper's watchdog has not run yet.
- ``fence``: for the writes that must carry the fencing token (gateway/cluster/fence.py).
- ``stop``: a planned stop releases the lease, so a standby takes over without waiting for the expiry.
- A planned handover (`fixgw cluster handover`): the keeper's renewal finds it asked and calls ``on_handover``
  (the gateway then stops cleanly); ``stop`` hands the lease to the instance asked for (or releases it for any
  standby), recording whether the stop was clean. A successor of a clean stop continues every sequence number
  exactly: the journal holds everything the old active sent (no ``seq_gap``).
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from sqlalchemy import Connection

from gateway.cluster.fence import check_fence
from gateway.cluster.keeper import LeaseKeeper
from gateway.cluster.lease import ANY_STANDBY, Lease, LeaseStatus
from gateway.cluster.membership import Heartbeat, Membership
from gateway.cluster.takeover import take_over_stores
from gateway.config import ClusterConfig, ConfigError, GatewayConfig
from gateway.journal.db import make_engine
from gateway.observability import metrics
from gateway.observability.logs import fields

log = logging.getLogger("fixgw.cluster")

#: The exit code of an instance that lost its lease (docs/failover.md, docs/operations.md): it stopped being the
#: active one and ended at once. A supervisor that restarts it brings it back as a standby.
LEASE_LOST_EXIT_CODE = 3
#: How often a standby says who leads (seconds).
STANDBY_REPORT_S = 60.0


def _describe(status: LeaseStatus | None) -> str:
    if status is None:
        return "no instance has held the lease yet"
    if status.holder is None:
        return f"the lease was released (token {status.token})"
    if status.expired:
        return f"{status.holder}'s lease (token {status.token}) expired {-status.remaining:.1f} s ago"
    return f"led by {status.holder} (token {status.token}), the lease has {status.remaining:.1f} s left"


def leadership_of(cfg: GatewayConfig) -> "Leadership | None":
    """The gateway's part in its cluster; None for a single gateway. A cluster's gateway runs as one instance."""
    if cfg.cluster is None:
        return None
    if cfg.cluster.instance_name is None:
        raise ConfigError(f"[cluster] {cfg.cluster.name}: a cluster's gateway runs as one of its instances "
                          "(fixgw run --instance NAME)")
    return Leadership(cfg.cluster, cfg.journal.database_url)


#: A standby's poll while a planned handover to it is under way (the active is stopping): it takes the lease within
#: this long of the hand-over instead of up to a poll interval later.
HANDOVER_POLL_S = 0.05


class Leadership:
    """One instance (``cfg.instance_name``) of the cluster ``cfg.name``, on the journal's PostgreSQL database."""

    def __init__(self, cfg: ClusterConfig, database_url: str, *, exit: Callable[[int], object] = os._exit,
                 clock: Callable[[], float] = time.monotonic):
        if not cfg.instance_name:
            raise ValueError("a cluster's gateway runs as one of its instances (fixgw run --instance NAME)")
        self.cluster, self.instance, self.ttl = cfg.lease_name, cfg.instance_name, cfg.lease_ttl_s
        self.engine = make_engine(database_url)
        self.lease = Lease(self.engine, self.cluster)
        self.membership = Membership(self.engine, self.cluster, self.instance)
        self._exit, self._clock = exit, clock
        self.every = min(self.ttl / 3, 1.0)  # a standby's poll and every heartbeat
        self.token: int | None = None
        self.previous_holder: str | None = None  # who held the lease before this instance took it
        self.was_last_holder = False  # no other instance held the lease since this instance's last term
        # "client:NAME" / "venue:NAME" of the sessions whose stores the takeover rebuilt from the journal: they may
        # lack messages the old active sent (start-up recovery does not send those again blindly)
        self.rebuilt: frozenset[str] = frozenset()
        self.keeper: LeaseKeeper | None = None
        self.previous_clean = False  # the term before this one ended with a clean stop (lease.Taken)
        self.handover_to: str | None = None  # an operator asked for a handover: to this instance, or "*" for any
        self.on_handover: Callable[[str], object] | None = None  # the gateway's: stop cleanly, then stop() below
        self._heartbeat: Heartbeat | None = None
        self._unreachable = False  # a standby's last database call failed (said once, not at every poll)

    # ------------------------------------------------------------------ standby
    def take_over(self, cfg: GatewayConfig) -> None:
        """Take each FIX session's store over from the journal where this instance cannot trust its own
        (takeover.py): once it leads (``wait_until_leading``), before any quickfix engine opens one."""
        done = take_over_stores(cfg, self.engine, trust_own=self.was_last_holder, exact=self.previous_clean)
        self.rebuilt = frozenset(f"{d.kind}:{d.name}" for d in done if d.action == "rebuilt")

    def wait_until_leading(self, lag: Callable[[], tuple[int, float] | None] | None = None) -> int:
        """Stand by until this instance acquires the lease; then keep it. The new fencing token."""
        log.info("standing by: cluster %s, instance %s, lease ttl %g s", self.cluster, self.instance, self.ttl,
                 extra=fields(cluster=self.cluster, instance=self.instance))
        last_beat = last_report = None
        status = self._read()
        while True:
            sent_at = self._clock()
            token = self._poll(status)
            if token is not None:
                self._lead(token, sent_at)
                return token
            now = self._clock()
            if last_beat is None or now - last_beat >= self.every:
                last_beat = now
                self._beat("standby", lag=lag() if lag is not None else None)
            status = self._read()
            if last_report is None or now - last_report >= STANDBY_REPORT_S:
                last_report = now
                log.info("standby: cluster %s %s", self.cluster, _describe(status),
                         extra=fields(cluster=self.cluster, instance=self.instance,
                                      holder=status.holder if status else None))
            wait = self.every
            if status is not None and status.held:
                wait = min(wait, status.remaining + 0.02)  # wake just after the expiry, not up to a poll later
                if status.holder == self.instance or status.handover_to in (self.instance, ANY_STANDBY):
                    wait = HANDOVER_POLL_S  # handed to this instance (or about to be): take it at once
            time.sleep(max(wait, 0.02))

    def _poll(self, status: LeaseStatus | None) -> int | None:
        try:
            taken = self.lease.take(self.instance, self.ttl)
        except Exception as exc:  # noqa: BLE001 - the database may come back: a standby keeps waiting
            self._trouble("standby: cannot reach the lease", exc)
            return None
        finally:
            if status is not None:
                self.previous_holder = status.holder
        if self._unreachable:
            self._unreachable = False
            log.info("standby: the database answers again", extra=fields(cluster=self.cluster, instance=self.instance))
        if taken is None:
            return None
        self.previous_clean = taken.previous_clean
        return taken.token

    def _trouble(self, what: str, exc: Exception) -> None:
        """A database call failed: a warning the first time, until the lease answers again."""
        level = logging.DEBUG if self._unreachable else logging.WARNING
        self._unreachable = True
        log.log(level, "%s: %s", what, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
                extra=fields(cluster=self.cluster, instance=self.instance))

    def _read(self) -> LeaseStatus | None:
        try:
            return self.lease.read()
        except Exception:  # noqa: BLE001 - _poll said why
            return None

    def _beat(self, role: str, token: int | None = None, lag: tuple[int, float] | None = None) -> None:
        try:
            self.membership.beat(role, token=token, lag_records=lag[0] if lag else None,
                                 lag_s=round(lag[1], 3) if lag else None)
        except Exception as exc:  # noqa: BLE001 - informative only
            self._trouble(f"cluster heartbeat ({role}) not written", exc)

    # ------------------------------------------------------------------ active
    def _lead(self, token: int, sent_at: float) -> None:
        try:
            last = self.membership.last_token()
        except Exception:  # noqa: BLE001 - unknown: assume another instance led since (the safe side)
            last = None
        self.token = token
        self.was_last_holder = last is not None and last == token - 1
        self.keeper = LeaseKeeper(self.lease, self.instance, token, self.ttl, self._lost, sent_at=sent_at,
                                  clock=self._clock, on_handover=self._handover_asked)
        self.keeper.start()
        self._beat("active", token)
        self._heartbeat = Heartbeat(self.membership, "active", self.every, token=token).start()
        metrics.CLUSTER_TAKEOVERS.inc()
        metrics.CLUSTER_IS_LEADER.set(1)
        since = ("no other instance led since its last term" if self.was_last_holder
                 else f"taking over from {self.previous_holder or 'no live holder'}")
        log.warning("leading cluster %s as instance %s with fencing token %d (%s)", self.cluster, self.instance,
                    token, since, extra=fields(cluster=self.cluster, instance=self.instance, token=token,
                                               previous_holder=self.previous_holder))

    def _lost(self, reason: str) -> None:
        """The lease may be another instance's now: end this process before it sends or writes anything more."""
        try:
            metrics.CLUSTER_IS_LEADER.set(0)
            log.critical("lease lost: instance %s is no longer the active one of cluster %s (%s); exiting at once "
                         "with code %d", self.instance, self.cluster, reason, LEASE_LOST_EXIT_CODE,
                         extra=fields(cluster=self.cluster, instance=self.instance, token=self.token))
        finally:
            self._exit(LEASE_LOST_EXIT_CODE)

    def check_sending(self) -> None:
        """Before a message goes out: end the process if this instance's term may be over (see the module)."""
        keeper = self.keeper
        if keeper is not None and (keeper.lost or keeper.remaining() <= 0):
            self._lost(keeper.lost_reason or f"the lease was not renewed within its ttl of {self.ttl:g} s "
                                              "(this process was paused, or the database is unreachable)")

    def guard(self, sink) -> "GuardedSink":
        """``sink`` (the journal, as the quickfix Log's sink) with ``check_sending`` before each message."""
        return GuardedSink(sink, self.check_sending)

    def fence(self, conn: Connection) -> None:
        """Hold the lease row for the rest of ``conn``'s transaction, or raise StaleLeadership (fence.py)."""
        if self.token is None:
            raise RuntimeError("not the active instance: no fencing token")
        check_fence(conn, self.cluster, self.token)

    def _handover_asked(self, to: str) -> None:
        """The keeper's renewal found a handover asked (on its thread): the gateway stops cleanly."""
        self.handover_to = to
        whom = "any standby" if to == ANY_STANDBY else f"instance {to}"
        log.warning("handover to %s asked: stopping cleanly, then handing the lease over", whom,
                    extra=fields(cluster=self.cluster, instance=self.instance, token=self.token, to=to))
        if self.on_handover is not None:
            self.on_handover(to)

    def stop(self, clean: bool = False) -> None:
        """A planned stop, once everything else has stopped: release the lease (or hand it to the instance a
        handover asked for), say "stopped". ``clean``: everything this instance sent is journaled and its order
        state closed, so its successor continues every sequence number exactly."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self.keeper is not None and not self.keeper.lost:
            self.keeper.stop()
            to = self.handover_to
            try:
                if to is not None and to != ANY_STANDBY:
                    self.lease.hand_over(self.instance, self.token, to, self.ttl, clean=clean)  # (logged there)
                else:
                    self.lease.release(self.instance, self.token, clean=clean)  # a standby may take over at once
            except Exception as exc:  # noqa: BLE001 - it expires by itself
                log.warning("lease not released (it expires within %g s): %s", self.ttl, exc,
                            extra=fields(cluster=self.cluster, instance=self.instance))
        metrics.CLUSTER_IS_LEADER.set(0)
        self._beat("stopped")
        self.engine.dispose()


class GuardedSink:
    """The journal as the quickfix Log's sink (sessions.journal_log.Sink), with ``check`` run before each message
    and event is recorded: before quickfix writes an outgoing message to the socket, and before it processes an
    incoming one (so a resumed process neither answers nor acts on, nor journals, what arrived while it slept)."""

    def __init__(self, sink, check: Callable[[], None]):
        self._record, self._event, self._check = sink.record, sink.event, check

    def record(self, session_id: str, direction: str, raw: str) -> None:
        self._check()
        self._record(session_id, direction, raw)

    def event(self, session_id: str, text: str) -> None:
        self._check()
        self._event(session_id, text)
