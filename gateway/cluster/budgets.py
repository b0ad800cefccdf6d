"""The risk limits a sharded cluster shares, through PostgreSQL (docs/scale-out.md): each shard holds a part of each
shared limit in each scope (``risk_grants``: an account's daily notional, gross and net exposure, an account's
position in a symbol; risk/shared_budget.py lists them) and checks its own orders against it; the parts of one
limit and scope never sum past the limit.

- **Top-up** (``BudgetPool.top_up``, on the core thread when an order does not fit): one transaction, fenced by
  the shard's lease, under an advisory lock for the (cluster, limit, scope): it reads what the other shards hold
  and takes what the order needs plus a chunk (``chunk_pct`` of the limit), as far as the limit allows. Once per
  chunk of the limit, not per order; its cost is measured in docs/scale-out.md.
- **Give-back** (``BudgetPool.give_back``, every ``return_s`` on the keeper's thread): a shard keeps what it uses
  and a chunk, and gives the rest back, so a busy shard can take what an idle one held. The local grant is
  lowered first (on the core thread, through ``lower``), the database's second: between the two this shard holds
  less than its row says, never more, so the sum of what the shards may use never passes the limit. The row is
  lowered only if it still holds the grant ``lower`` saw: a top-up in between (on the core thread, after
  ``lower``) raised both, and the give-back of that round is dropped.
- **Restart and takeover**: the grants are read back from the shard's rows (``load``); the order state's usage
  is the state log's, as before.

The limit each instance applies is its own rules file's: give every instance of the cluster the same file (the
cluster's ``fixgw risk reload`` reloads it everywhere).
"""
from __future__ import annotations

import json
import logging
import threading
from decimal import Decimal
from typing import Callable

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.dialects.postgresql import insert

from gateway.journal.db import risk_grants
from gateway.observability import metrics
from gateway.observability.logs import fields
from risk.shared_budget import BY_LIMIT, BudgetUnavailable, Scope

log = logging.getLogger("fixgw.risk")

ZERO = Decimal(0)
_G = risk_grants.c
_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 7))")

Key = tuple[str, Scope]  # (limit name, scope)
Lowered = tuple[str, Scope, Decimal, Decimal]  # (limit, scope, grant before, new grant)


def cluster_grants(engine: Engine, cluster: str) -> list[dict]:
    """Every shard's part of each shared limit, for `fixgw cluster status`: one entry per (limit, scope) with the
    part each shard holds (by its lease) and their total, which never passes the limit. Rows of days gone by that
    no shard has given back yet are included: they hold nothing that counts."""
    with engine.connect() as conn:
        rows = conn.execute(select(_G.limit_name, _G.scope, _G.lease, _G.granted)
                            .where(_G.cluster == cluster)
                            .order_by(_G.limit_name, _G.scope, _G.lease)).all()
    out: dict[tuple[str, str], dict] = {}
    for limit, scope, lease, granted in rows:
        entry = out.setdefault((limit, scope), {"limit": limit, "scope": json.loads(scope), "shards": {},
                                                "total": ZERO})
        entry["shards"][lease] = Decimal(granted)
        entry["total"] += Decimal(granted)
    return list(out.values())


class BudgetPool:
    """This shard's grants, in memory for the checks (read on the core thread) and in ``risk_grants``."""

    def __init__(self, engine: Engine, cluster: str, lease: str, fence: Callable[[Connection], None],
                 chunk_pct: Decimal = Decimal(10)):
        self.engine, self.cluster, self.lease = engine, cluster, lease
        self._fence = fence
        self.chunk_pct = chunk_pct
        self._grants: dict[Key, Decimal] = {}  # granted to this shard
        self._limits: dict[Key, Decimal] = {}  # the limit at its last top-up
        self.top_ups = 0  # transactions asked (for the metrics and the bench)
        self.refusals = 0  # orders the other shards' grants left no room for

    # ------------------------------------------------------------------ the checks' view (core thread)
    def granted(self, limit: str, scope: Scope) -> Decimal:
        return self._grants.get((limit, scope), ZERO)

    def top_up(self, limit: str, scope: Scope, need: Decimal, value: Decimal) -> Decimal:
        """Take at least ``need`` of ``limit`` (whose value is ``value``) in ``scope`` (plus a chunk, as far as the
        limit allows) for this shard; the grant now held (less than ``need`` when the other shards hold the rest).
        BudgetUnavailable if the database cannot be asked, or this instance's term is over: the order is refused."""
        try:
            return self._top_up(limit, scope, need, value)
        except Exception as exc:  # noqa: BLE001 - a database error or a stale term: refuse the order, never guess
            log.error("%s %s: cannot ask the database for more of the limit: %s", limit, list(scope), exc,
                      extra=fields(limit=limit, scope=list(scope), lease=self.lease))
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            raise BudgetUnavailable(f"{type(exc).__name__}: {first}") from exc

    def _top_up(self, limit: str, scope: Scope, need: Decimal, value: Decimal) -> Decimal:
        chunk = value * self.chunk_pct / 100
        text_scope = json.dumps(list(scope))
        with self.engine.begin() as conn:
            self._fence(conn)
            conn.execute(_LOCK, {"key": self._key(limit, text_scope)})
            rows = dict(conn.execute(select(_G.lease, _G.granted).where(
                _G.cluster == self.cluster, _G.limit_name == limit, _G.scope == text_scope)).all())
            mine = rows.pop(self.lease, ZERO)
            others = sum(rows.values(), ZERO)
            target = max(mine, min(value - others, need + chunk))
            if target != mine:
                stmt = insert(risk_grants).values(cluster=self.cluster, limit_name=limit, scope=text_scope,
                                                  lease=self.lease, granted=target)
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=[_G.cluster, _G.limit_name, _G.scope, _G.lease],
                    set_={"granted": target, "updated_at": func.now()}))
        self.top_ups += 1
        metrics.RISK_BUDGET_TOP_UPS.labels(limit).inc()
        self._grants[(limit, scope)] = target
        self._limits[(limit, scope)] = value
        if target < need:
            self.refusals += 1
            metrics.RISK_BUDGET_REFUSALS.labels(limit).inc()
            log.warning("%s %s: this shard holds %s of the cluster's limit %s, the others %s; an order needing %s "
                        "is refused", limit, list(scope), target, value, others, need,
                        extra=fields(limit=limit, scope=list(scope), lease=self.lease))
        return target

    # ------------------------------------------------------------------ give-back (keeper thread)
    def lower(self, usage: Callable[[str, Scope], Decimal], day: str | None) -> list[Lowered]:
        """On the core thread: lower each grant to this shard's usage (``usage(limit, scope)``) and a chunk of the
        limit it was last topped up under; (limit, scope, grant before, new grant) of each one lowered, for
        ``give_back``. Grants of a daily limit for a day other than ``day`` (ISO, the accounts' trading day) are
        dropped (their rows stay, for the record)."""
        lowered = []
        for key, grant in list(self._grants.items()):
            limit, scope = key
            if limit not in BY_LIMIT or (BY_LIMIT[limit].daily and scope[0] != day):
                del self._grants[key]  # a day gone by, or a limit this version no longer shares
                self._limits.pop(key, None)
                continue
            value = self._limits.get(key)
            keep = usage(limit, scope) + (value * self.chunk_pct / 100 if value is not None else ZERO)
            if keep < grant:
                self._grants[key] = keep
                lowered.append((limit, scope, grant, keep))
        return lowered

    def give_back(self, lowered: list[Lowered]) -> int:
        """Write the grants ``lower`` lowered, each only if its row still holds the grant before (see the module);
        how many rows were lowered."""
        done = 0
        if not lowered:
            return done
        with self.engine.begin() as conn:
            self._fence(conn)
            for limit, scope, before, keep in lowered:
                text_scope = json.dumps(list(scope))
                conn.execute(_LOCK, {"key": self._key(limit, text_scope)})
                done += conn.execute(risk_grants.update().where(
                    _G.cluster == self.cluster, _G.limit_name == limit, _G.scope == text_scope,
                    _G.lease == self.lease, _G.granted == before).values(granted=keep, updated_at=func.now())).rowcount
        return done

    def _key(self, limit: str, text_scope: str) -> str:
        """The advisory lock's text for one (cluster, limit, scope): JSON, so no two of them share a text."""
        return json.dumps([self.cluster, limit, text_scope])

    def load(self) -> int:
        """Read this shard's grants back (a start or a takeover); how many."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_G.limit_name, _G.scope, _G.granted).where(
                _G.cluster == self.cluster, _G.lease == self.lease)).all()
        self._grants = {(r.limit_name, tuple(json.loads(r.scope))): Decimal(r.granted) for r in rows}
        return len(rows)

    def held(self) -> dict[Key, Decimal]:
        return dict(self._grants)


class BudgetKeeper:
    """Every ``return_s``, give back what this shard holds beyond its usage and a chunk (see the module)."""

    def __init__(self, pool: BudgetPool, lower: Callable[[], list], return_s: float = 1.0):
        self.pool, self._lower, self.return_s = pool, lower, return_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "BudgetKeeper":
        self._thread = threading.Thread(target=self._run, name="fixgw-budgets", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.return_s):
            try:
                self.pool.give_back(self._lower())
            except Exception as exc:  # noqa: BLE001 - held, not lost: the next round gives it back
                log.warning("risk budgets: give-back failed (this shard keeps its grants for now): %s", exc,
                            extra=fields(lease=self.pool.lease))
