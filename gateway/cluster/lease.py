"""The leadership lease: which instance of a cluster is the active one, under which fencing token, until when.

One row of ``cluster_lease`` per cluster name (gateway/journal/db.py, revision 0005). Every time is the
database's clock (``now()``, the start of the statement's transaction), never a gateway's: the instances of a
cluster share no other clock, and a lease judged by two clocks is two leases.

- ``try_acquire(instance, ttl)`` takes the lease if it is free (released), expired, or already this instance's,
  and returns a new fencing token: one more than the last, on EVERY acquire, so a restarted instance under the
  same name also fences its previous incarnation. The acquire locks the row ``FOR UPDATE``, which waits for
  every write in flight under the old token (they hold the row ``FOR KEY SHARE``, see fence.py): those commit
  before the new token exists, and every later one is refused.
- ``renew(instance, token, ttl)`` moves ``expires_at`` to now() + ttl while ``token`` is still current; False
  once another instance took the lease or it was released. It does not wait for the holder's own writes
  (a non-key UPDATE does not conflict with ``FOR KEY SHARE``). A renew after expiry still succeeds if no one
  took the lease in between: nobody else holds a token, so nothing was at risk; LeaseKeeper (keeper.py) never
  does it, it gives up at its own, earlier, estimate of the expiry.
- ``release(instance, token)`` for a planned stop: the row keeps its token with no holder, so the old
  token's writes are refused at once and any instance may acquire without waiting for the expiry.
- A planned handover (`fixgw cluster handover`, revision 0009): ``ask_handover(to)`` marks the row;
  ``renew_term`` tells the holder; it stops cleanly and calls ``hand_over(.., to)`` (a new token with ``to`` as
  holder, which ``to`` then acquires as its own) or, for any standby, ``release``. Both record whether the stop
  was clean (``released_clean``), which the next ``take`` reports: a successor of a clean stop continues every
  sequence number exactly.
- ``read()`` for ``fixgw cluster status``: holder, token, age and remaining time, by the database's clock.

``now()`` being the transaction's start errs on the safe side: a transaction that waited for a lock judges
expiry as of before the wait and sets ``expires_at`` from then too, so a lease looks, and lasts, shorter.

Failover needs PostgreSQL: on SQLite (one process, no shared server) the lease refuses with FailoverNeedsPostgres.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from gateway.journal.db import safe_url
from gateway.observability.logs import fields

log = logging.getLogger("fixgw.cluster")

_LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout


class FailoverNeedsPostgres(ValueError):
    """The leadership lease (and so failover) was asked of a database that is not PostgreSQL."""


def require_postgres(bind: Engine | Connection) -> None:
    """Raise FailoverNeedsPostgres unless ``bind`` is a PostgreSQL engine or connection."""
    engine = bind.engine
    if engine.dialect.name != "postgresql":
        raise FailoverNeedsPostgres(
            f"failover needs PostgreSQL: the leadership lease and its fencing token live in a database every "
            f"instance of the cluster shares, and {safe_url(engine.url)} is {engine.dialect.name}; "
            f"SQLite stays the single-instance default (set [journal] url to a postgresql+psycopg:// URL "
            f"to run an active and standbys)")


def timeouts(conn: Connection, **seconds: float) -> None:
    """SET LOCAL PostgreSQL timeouts, e.g. ``lock_timeout=0.5``, in one round trip; they end with the
    transaction. Each is at least 1 ms: 0 would mean none."""
    calls = ", ".join(f"set_config('{name}', :{name}, true)" for name in seconds)
    conn.execute(text(f"SELECT {calls}"), {name: str(max(1, math.ceil(s * 1000))) for name, s in seconds.items()})


@dataclass(frozen=True)
class LeaseStatus:
    """One cluster's lease as read, every duration by the database's clock (seconds)."""

    cluster: str
    holder: str | None  # None once released
    token: int
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    held_for: float  # since the holder acquired it
    age: float  # since the last renewal
    remaining: float  # until it expires; zero or less once expired
    handover_to: str | None = None  # a planned handover asked and not done yet: to this instance, or ANY_STANDBY

    @property
    def expired(self) -> bool:
        return self.remaining <= 0

    @property
    def held(self) -> bool:
        """Someone holds the lease and it has not expired: no other instance can take it now."""
        return self.holder is not None and not self.expired


#: ``handover_to`` when the operator names no instance: whichever standby takes the released lease first.
ANY_STANDBY = "*"


@dataclass(frozen=True)
class Renewal:
    """A renewal that kept the term: ``handover_to`` is set when an operator asked for a planned handover."""

    handover_to: str | None


_PEEK = text("SELECT holder, expires_at <= now() AS expired FROM cluster_lease WHERE name = :name")
_ADD_ROW = text("INSERT INTO cluster_lease (name, holder, token, acquired_at, renewed_at, expires_at) "
                "VALUES (:name, NULL, 0, now(), now(), now()) ON CONFLICT (name) DO NOTHING")
# FOR UPDATE, not a plain UPDATE: only it conflicts with the writes' FOR KEY SHARE, i.e. waits for them.
_LOCK = text("SELECT holder, expires_at <= now() AS expired FROM cluster_lease WHERE name = :name FOR UPDATE")
# (``before`` is read in the statement's snapshot: how the last term ended, as its holder left it)
_TAKE = text("UPDATE cluster_lease AS l SET holder = :instance, token = l.token + 1, acquired_at = now(), "
             "renewed_at = now(), expires_at = now() + make_interval(secs => :ttl), handover_to = NULL, "
             "released_clean = false "
             "FROM (SELECT released_clean FROM cluster_lease WHERE name = :name) AS before "
             "WHERE l.name = :name RETURNING l.token, before.released_clean")
_RENEW = text("UPDATE cluster_lease SET renewed_at = now(), expires_at = now() + make_interval(secs => :ttl) "
              "WHERE name = :name AND holder = :instance AND token = :token RETURNING token, handover_to")
_RELEASE = text("UPDATE cluster_lease SET holder = NULL, expires_at = now(), handover_to = NULL, "
                "released_clean = :clean "
                "WHERE name = :name AND holder = :instance AND token = :token RETURNING token")
# a new token with the target as holder: the old one is fenced at once, and the target's next poll takes the lease
# as its own (a new term); if the target never comes, the lease expires after ttl and any standby may take it
_HAND_OVER = text("UPDATE cluster_lease SET holder = :to, token = token + 1, renewed_at = now(), "
                  "expires_at = now() + make_interval(secs => :ttl), handover_to = NULL, released_clean = :clean "
                  "WHERE name = :name AND holder = :instance AND token = :token RETURNING token")
_ASK_HANDOVER = text("UPDATE cluster_lease SET handover_to = :to "
                     "WHERE name = :name AND holder IS NOT NULL AND expires_at > now() RETURNING holder, token")
_READ = text("SELECT holder, token, acquired_at, renewed_at, expires_at, handover_to, now() AS db_now "
             "FROM cluster_lease WHERE name = :name")


@dataclass(frozen=True)
class Taken:
    """A successful acquire: the new fencing token, who held the lease before, and whether that term ended with a
    clean stop (released or handed over with everything journaled: the successor continues every number exactly)."""

    token: int
    previous_holder: str | None
    previous_clean: bool


def _takeable(holder: str | None, expired: bool, instance: str) -> bool:
    return holder is None or expired or holder == instance


def _positive(ttl: float) -> float:
    ttl = float(ttl)
    if not ttl > 0:
        raise ValueError(f"lease ttl must be a positive number of seconds, got {ttl!r}")
    return ttl


class Lease:
    """The lease of one cluster, on the shared PostgreSQL database."""

    def __init__(self, engine: Engine, cluster: str):
        require_postgres(engine)
        if not cluster:
            raise ValueError("a lease needs a cluster name")
        self.engine = engine
        self.cluster = cluster

    def try_acquire(self, instance: str, ttl: float, *, wait: float | None = None) -> int | None:
        """Take the lease for ``ttl`` seconds if it is free, expired or already ``instance``'s: the new
        fencing token, else None. Waits at most ``wait`` seconds (default ``ttl``) for writes in flight under
        the old token, then gives up with None (try again later)."""
        taken = self.take(instance, ttl, wait=wait)
        return taken.token if taken is not None else None

    def take(self, instance: str, ttl: float, *, wait: float | None = None) -> Taken | None:
        """``try_acquire``, saying also who held the lease before and how their term ended."""
        ttl = _positive(ttl)
        args = {"name": self.cluster, "instance": instance, "ttl": ttl}
        try:
            with self.engine.begin() as conn:
                wait = ttl if wait is None else wait
                # the lock wait ends first, as a None; the statements' bound is for a database stuck elsewhere
                timeouts(conn, lock_timeout=wait, statement_timeout=wait + ttl)
                row = conn.execute(_PEEK, args).first()
                if row is not None and not _takeable(row.holder, row.expired, instance):
                    return None  # held: no lock taken, the holder's writes are not held up by a standby's poll
                if row is None:
                    conn.execute(_ADD_ROW, args)
                row = conn.execute(_LOCK, args).one()
                if not _takeable(row.holder, row.expired, instance):
                    return None  # another instance took or renewed it while we waited for the lock
                token, clean = conn.execute(_TAKE, args).one()
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            log.info("lease not acquired: writes under the old token still in flight",
                     extra=fields(cluster=self.cluster, instance=instance))
            return None
        log.info("lease acquired", extra=fields(cluster=self.cluster, instance=instance, token=token,
                                                previous_holder=row.holder, previous_clean=clean))
        return Taken(token, row.holder, bool(clean))

    def renew(self, instance: str, token: int, ttl: float, *, timeout: float | None = None) -> bool:
        """Extend the lease to ``ttl`` seconds from now while ``token`` is current: False once it is not
        (taken by another instance, or released). Errors, and a ``timeout`` (default ``ttl``) spent waiting
        on the database, raise: not knowing is not the same as having lost it."""
        return self.renew_term(instance, token, ttl, timeout=timeout) is not None

    def renew_term(self, instance: str, token: int, ttl: float, *,
                   timeout: float | None = None) -> Renewal | None:
        """``renew``, saying also whether an operator asked for a handover; None once ``token`` is not current."""
        ttl = _positive(ttl)
        with self.engine.begin() as conn:
            bound = ttl if timeout is None else timeout
            timeouts(conn, lock_timeout=bound, statement_timeout=bound)
            renewed = conn.execute(_RENEW, {"name": self.cluster, "instance": instance, "token": token,
                                            "ttl": ttl}).first()
        return Renewal(renewed.handover_to) if renewed is not None else None

    def release(self, instance: str, token: int, *, clean: bool = False) -> bool:
        """Give the lease up (a planned stop): True if ``token`` was current. Writes under it are refused
        from then on; the next acquire (by anyone) does not wait for the expiry and gets a new token.
        ``clean``: this instance stopped cleanly with everything journaled (its successor needs no seq_gap)."""
        with self.engine.begin() as conn:
            released = conn.execute(_RELEASE, {"name": self.cluster, "instance": instance,
                                               "token": token, "clean": clean}).first()
        if released is not None:
            log.info("lease released", extra=fields(cluster=self.cluster, instance=instance, token=token,
                                                    clean=clean))
        return released is not None

    def hand_over(self, instance: str, token: int, to: str, ttl: float, *, clean: bool) -> bool:
        """Give the lease to instance ``to`` (a planned handover): True if ``token`` was current. Writes under it
        are refused from then on; ``to`` takes the lease at its next poll, and if it does not within ``ttl``,
        any standby may."""
        with self.engine.begin() as conn:
            handed = conn.execute(_HAND_OVER, {"name": self.cluster, "instance": instance, "token": token,
                                               "to": to, "ttl": _positive(ttl), "clean": clean}).first()
        if handed is not None:
            log.info("lease handed over", extra=fields(cluster=self.cluster, instance=instance, token=token, to=to,
                                                       clean=clean))
        return handed is not None

    def ask_handover(self, to: str | None) -> tuple[str, int] | None:
        """An operator asks the active instance to hand over to ``to`` (None: to any standby): (holder, token)
        asked, or None when no instance holds the lease. The active acts on it at its next renewal."""
        with self.engine.begin() as conn:
            row = conn.execute(_ASK_HANDOVER, {"name": self.cluster, "to": to or ANY_STANDBY}).first()
        return (row.holder, row.token) if row is not None else None

    def read(self) -> LeaseStatus | None:
        """The cluster's lease as the database sees it now; None if no instance ever acquired it."""
        with self.engine.connect() as conn:
            row = conn.execute(_READ, {"name": self.cluster}).first()
        if row is None:
            return None
        return LeaseStatus(
            cluster=self.cluster, holder=row.holder, token=row.token, acquired_at=row.acquired_at,
            renewed_at=row.renewed_at, expires_at=row.expires_at,
            held_for=(row.db_now - row.acquired_at).total_seconds(),
            age=(row.db_now - row.renewed_at).total_seconds(),
            remaining=(row.expires_at - row.db_now).total_seconds(), handover_to=row.handover_to)
