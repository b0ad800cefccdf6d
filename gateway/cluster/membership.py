"""Each instance of a cluster says who and where it is, its role (standby, active, stopped) and that it is alive,
in ``cluster_instances`` (revision 0007), so `fixgw cluster status` can show the standbys as well as the leader.

The rows are informative: nothing decides leadership by them (the lease does, lease.py). Their times are the
database's clock, as the lease's. An instance that dies writes nothing more: its heartbeat only ages.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select, text
from sqlalchemy.dialects.postgresql import insert

from gateway.journal.db import cluster_instances
from gateway.observability.logs import fields

log = logging.getLogger("fixgw.cluster")

_C = cluster_instances.c


@dataclass(frozen=True)
class MemberStatus:
    """One instance's row as read, ages by the database's clock (seconds)."""

    instance: str
    role: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_age: float
    token: int | None
    lag_records: int | None
    lag_s: float | None


class Membership:
    """This instance's row: written at each heartbeat (upsert), with the role it has now."""

    def __init__(self, engine: Engine, cluster: str, instance: str):
        self.engine, self.cluster, self.instance = engine, cluster, instance
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._started = False  # the first beat of this process sets started_at

    def beat(self, role: str, *, token: int | None = None, lag_records: int | None = None,
             lag_s: float | None = None) -> None:
        """Record ``role`` and a heartbeat now; ``token`` (the term's) is kept until a later term replaces it."""
        values = {"cluster": self.cluster, "instance": self.instance, "role": role, "host": self.host,
                  "pid": self.pid, "started_at": func.now(), "heartbeat_at": func.now(), "token": token,
                  "lag_records": lag_records, "lag_s": lag_s}
        stmt = insert(cluster_instances).values(**values)
        update = {"role": role, "host": self.host, "pid": self.pid, "heartbeat_at": func.now(),
                  "token": func.coalesce(stmt.excluded.token, _C.token),
                  "lag_records": lag_records, "lag_s": lag_s}
        if not self._started:
            update["started_at"] = func.now()
        with self.engine.begin() as conn:
            conn.execute(text("SET LOCAL statement_timeout = 5000"))
            conn.execute(stmt.on_conflict_do_update(index_elements=[_C.cluster, _C.instance], set_=update))
        self._started = True

    def last_token(self) -> int | None:
        """The last fencing token this instance recorded holding (any earlier process under its name)."""
        with self.engine.connect() as conn:
            return conn.execute(select(_C.token).where(_C.cluster == self.cluster,
                                                       _C.instance == self.instance)).scalar()


def read_members(engine: Engine, cluster: str) -> list[MemberStatus]:
    """Every instance that ever wrote its row in ``cluster``, by name."""
    age = func.extract("epoch", func.now() - _C.heartbeat_at)
    stmt = (select(_C.instance, _C.role, _C.host, _C.pid, _C.started_at, age.label("age"), _C.token,
                   _C.lag_records, _C.lag_s)
            .where(_C.cluster == cluster).order_by(_C.instance))
    with engine.connect() as conn:
        return [MemberStatus(instance=r.instance, role=r.role, host=r.host, pid=r.pid, started_at=r.started_at,
                             heartbeat_age=float(r.age), token=r.token, lag_records=r.lag_records, lag_s=r.lag_s)
                for r in conn.execute(stmt)]


class Heartbeat:
    """A thread that beats every ``every`` seconds with the role it is given (``role`` may change), until
    stopped. A beat that fails is logged and retried at the next one: the row is only for people to read."""

    def __init__(self, membership: Membership, role: str, every: float, *, token: int | None = None):
        self.membership, self.role, self.every, self.token = membership, role, every, token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fixgw-cluster-heartbeat", daemon=True)
        self._failing = False

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.membership.beat(self.role, token=self.token)
                self._failing = False
            except Exception as exc:  # noqa: BLE001 - a heartbeat is informative: say so once and go on
                if not self._failing:
                    log.warning("cluster heartbeat not written", extra=fields(
                        cluster=self.membership.cluster, instance=self.membership.instance, reason=str(exc)[:200]))
                self._failing = True
            self._stop.wait(self.every)
