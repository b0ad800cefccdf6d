"""A sharded cluster's control plane (docs/scale-out.md): the operator commands that act on every shard at once.

An operator's kill switch (global, account or symbol scope), its release, a cancel of open orders (all, or by
account or symbol) and a risk rules reload are asked of one instance's admin API, like any other command. In a
sharded cluster that instance does not act on it alone: it appends the command to ``cluster_controls`` (the
``ControlBoard``) and every shard's active instance applies it, its own included, in id order (the
``ControlFollower``), within ``poll_s`` (0.2 s) of its commit. Each application is recorded, fenced by the
shard's lease, in ``cluster_control_applied`` with what the instance answered; the shard's highest id there is
how far it has applied. The admin call answers once its own shard has applied the command, with how long each
other shard took (``wait_applied``).

**A successor continues where its shard stopped**: it reads its shard's mark and applies what came after, so a
command issued while a shard had no active instance reaches it at its takeover, and one the old active applied
is never applied twice (the record and the mark are one fenced transaction after the command completed; a crash
in between applies it again, which the commands here bear: a kill switch engaged twice is engaged, a cancel
finds the orders already pending cancel or closed, a reload loads the same file).

**A shard that never applied anything** (new to the cluster) takes the cluster's kill switches as they stand (the
engage and release commands folded) and skips the cancels and reloads that came before it: they were about orders
and rules it never had.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from sqlalchemy import Connection, Engine, func, insert, select, text

from gateway.journal.db import cluster_control_applied, cluster_controls
from gateway.observability import metrics
from gateway.observability.logs import fields

log = logging.getLogger("fixgw.cluster")

KINDS = ("kill", "unkill", "cancel", "reload_risk")
STATE_KINDS = frozenset({"kill", "unkill"})  # what a shard new to the cluster still applies from before it

_C = cluster_controls.c
_A = cluster_control_applied.c
_ISSUE_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 11))")


@dataclass(frozen=True)
class Control:
    id: int
    issued_at: datetime
    issued_by: str
    operator: str
    kind: str
    body: dict


class ControlBoard:
    """The cluster's controls in the database: issue one, read those after an id, record a shard applying one."""

    def __init__(self, engine: Engine, cluster: str):
        self.engine, self.cluster = engine, cluster

    def issue(self, kind: str, body: dict, *, operator: str, instance: str) -> int:
        """Append a control for every shard; its id."""
        if kind not in KINDS:
            raise ValueError(f"unknown cluster control {kind!r}; the kinds: {', '.join(KINDS)}")
        with self.engine.begin() as conn:
            # one issuer at a time, to the commit: ids then commit in their order, so a follower that has applied
            # id N never meets an N-1 committed after it (an identity is taken at the insert, not at the commit)
            conn.execute(_ISSUE_LOCK, {"key": f"cluster_controls:{self.cluster}"})
            return conn.execute(insert(cluster_controls).values(
                cluster=self.cluster, issued_by=instance, operator=operator, kind=kind,
                body=json.dumps(body, sort_keys=True)).returning(_C.id)).scalar_one()

    def after(self, last_id: int, limit: int = 500) -> list[Control]:
        """The cluster's controls with an id above ``last_id``, in id order."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_C.id, _C.issued_at, _C.issued_by, _C.operator, _C.kind, _C.body)
                                .where(_C.cluster == self.cluster, _C.id > last_id).order_by(_C.id)
                                .limit(limit)).all()
        return [Control(r.id, r.issued_at, r.issued_by, r.operator, r.kind, json.loads(r.body)) for r in rows]

    def mark(self, lease: str) -> int | None:
        """How far the shard ``lease`` has applied: the highest control id it recorded; None if it never did."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(_A.control_id)).where(_A.lease == lease)).scalar()

    def last_id(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.coalesce(func.max(_C.id), 0))
                                .where(_C.cluster == self.cluster)).scalar_one()

    @staticmethod
    def record(conn: Connection, control_id: int, lease: str, instance: str, ok: bool, result: dict) -> None:
        """In the caller's (fenced) transaction: shard ``lease`` applied control ``control_id``."""
        conn.execute(insert(cluster_control_applied).values(
            control_id=control_id, lease=lease, instance=instance, ok=ok,
            result=json.dumps(result, sort_keys=True, default=str)))

    def applied(self, control_id: int) -> dict[str, dict]:
        """lease -> {instance, ok, result, after_s (seconds from issue to application)} for one control."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_A.lease, _A.instance, _A.ok, _A.result,
                       func.extract("epoch", _A.applied_at - _C.issued_at).label("after_s"))
                .join(cluster_controls, _C.id == _A.control_id).where(_A.control_id == control_id)).all()
        return {r.lease: {"instance": r.instance, "ok": r.ok, "result": json.loads(r.result),
                          "after_s": round(float(r.after_s), 3)} for r in rows}

    def recent(self, last: int = 20) -> list[dict]:
        """The cluster's last ``last`` controls, newest last, each with what every shard answered (`fixgw cluster
        controls`)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_C.id, _C.issued_at, _C.issued_by, _C.operator, _C.kind, _C.body)
                                .where(_C.cluster == self.cluster).order_by(_C.id.desc()).limit(last)).all()
        out = []
        for r in reversed(rows):
            out.append({"control": r.id, "issued_at": r.issued_at.isoformat(), "issued_by": r.issued_by,
                        "operator": r.operator, "kind": r.kind, "body": json.loads(r.body),
                        "shards": self.applied(r.id)})
        return out

    def wait_applied(self, control_id: int, leases: list[str], timeout: float,
                     every: float = 0.05) -> tuple[dict[str, dict], list[str]]:
        """Wait up to ``timeout`` for every shard of ``leases`` to apply ``control_id``: (what each answered,
        the leases that had not applied it yet)."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.applied(control_id)
            pending = [lease for lease in leases if lease not in done]
            if not pending or time.monotonic() >= deadline:
                return done, pending
            time.sleep(every)


def fold_state(controls: list[Control]) -> list[Control]:
    """What a shard new to the cluster applies of the controls before it: the kill switches engaged now (the last
    engage or release of each scope and key, and only if it engaged), in id order; no cancel, no reload."""
    last: dict[tuple[str, str], Control] = {}
    for c in controls:
        if c.kind in STATE_KINDS:
            last[(c.body.get("scope", ""), c.body.get("key", ""))] = c
    return sorted((c for c in last.values() if c.kind == "kill"), key=lambda c: c.id)


# (control) -> (ok, what the instance answered); on the follower's thread, may block on the engine
Apply = Callable[[Control], "tuple[bool, dict]"]


class ControlFollower:
    """One shard's active instance applying the cluster's controls, in id order, each once (see the module).

    ``fence(conn)``: the shard's lease check for the recording transaction (Leadership.fence); a stale term raises
    there and the follower stops: this instance is no longer the shard's active one and the process is ending.
    """

    def __init__(self, board: ControlBoard, lease: str, instance: str, apply: Apply,
                 fence: Callable[[Connection], None], poll_s: float = 0.2):
        self.board, self.lease, self.instance = board, lease, instance
        self._apply, self._fence, self.poll_s = apply, fence, poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.applied_upto = 0  # the highest control id this shard has applied (read by the admin API)
        self.failures = 0  # database calls that failed in a row (retried every poll)

    def start(self) -> "ControlFollower":
        self._catch_up_new_shard()
        self._thread = threading.Thread(target=self._run, name="fixgw-controls", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """A control was just issued here: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    # ------------------------------------------------------------------ the work
    def _catch_up_new_shard(self) -> None:
        mark = self.board.mark(self.lease)
        if mark is not None:
            self.applied_upto = mark
            return
        upto = self.board.last_id()
        before = []
        last = 0
        while last < upto:  # (in pages: a long history is read once, at a shard's first start)
            page = self.board.after(last)
            if not page:
                break
            before += [c for c in page if c.id <= upto]
            last = page[-1].id
        engaged = fold_state(before)
        for c in engaged:
            self._apply(c)
        with self.board.engine.begin() as conn:
            self._fence(conn)
            self.board.record(conn, upto, self.lease, self.instance, True,
                              {"caught_up": True, "kill_switches": len(engaged)})
        self.applied_upto = upto
        log.info("cluster controls: shard %s starts at control %d (%d kill switch(es) of the cluster applied)",
                 self.lease, upto, len(engaged), extra=fields(lease=self.lease, instance=self.instance))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
                self.failures = 0
            except Exception as exc:  # noqa: BLE001 - the database may come back; a stale term ends the process
                self.failures += 1
                if self.failures == 1 or self.failures % 50 == 0:
                    log.error("cluster controls: cannot follow (%d failure(s) in a row): %s", self.failures, exc,
                              extra=fields(lease=self.lease, instance=self.instance))
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def poll(self) -> int:
        """Apply every control after this shard's mark; how many."""
        n = 0
        for control in self.board.after(self.applied_upto):
            ok, result = self._apply(control)
            with self.board.engine.begin() as conn:
                self._fence(conn)
                self.board.record(conn, control.id, self.lease, self.instance, ok, result)
            self.applied_upto = control.id
            n += 1
            metrics.CLUSTER_CONTROLS_APPLIED.labels(control.kind, "true" if ok else "false").inc()
            (log.warning if control.kind in ("kill", "cancel") or not ok else log.info)(
                "cluster control %d (%s by %s via %s) applied: %s", control.id, control.kind, control.operator,
                control.issued_by, json.dumps(result, sort_keys=True, default=str),
                extra=fields(lease=self.lease, instance=self.instance, control=control.id, operator=control.operator))
        return n
