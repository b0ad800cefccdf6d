"""The accounts' daily notional limits of a sharded cluster, shared through PostgreSQL (docs/scale-out.md): each
shard holds a part of each account's limit (``risk_budgets``) and checks its own orders against it
(risk/shared_budget.py); the parts of one account and day never sum past the limit.

- **Top-up** (``BudgetPool.top_up``, on the core thread when an order does not fit): one transaction, fenced by
  the shard's lease, under an advisory lock for the (cluster, day, account): it reads what the other shards hold
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
from datetime import date
from decimal import Decimal
from typing import Callable

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.dialects.postgresql import insert

from gateway.journal.db import risk_budgets
from gateway.observability import metrics
from gateway.observability.logs import fields
from risk.shared_budget import BudgetUnavailable

log = logging.getLogger("fixgw.risk")

ZERO = Decimal(0)
_B = risk_budgets.c
_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 7))")


class BudgetPool:
    """This shard's grants, in memory for the checks (read on the core thread) and in ``risk_budgets``."""

    def __init__(self, engine: Engine, cluster: str, lease: str, fence: Callable[[Connection], None],
                 chunk_pct: Decimal = Decimal(10)):
        self.engine, self.cluster, self.lease = engine, cluster, lease
        self._fence = fence
        self.chunk_pct = chunk_pct
        self._grants: dict[tuple[date, str], Decimal] = {}  # (day, account) -> granted to this shard
        self._limits: dict[tuple[date, str], Decimal] = {}  # (day, account) -> the limit at its last top-up
        self.top_ups = 0  # transactions asked (for the metrics and the bench)
        self.refusals = 0  # orders the other shards' grants left no room for

    # ------------------------------------------------------------------ the checks' view (core thread)
    def granted(self, day: date, account: str) -> Decimal:
        return self._grants.get((day, account), ZERO)

    def top_up(self, day: date, account: str, need: Decimal, limit: Decimal) -> Decimal:
        """Take at least ``need`` (plus a chunk, as far as the limit allows) for this shard; the grant now held
        (less than ``need`` when the other shards hold the rest). BudgetUnavailable if the database cannot be
        asked, or this instance's term is over: the order is refused."""
        try:
            return self._top_up(day, account, need, limit)
        except Exception as exc:  # noqa: BLE001 - a database error or a stale term: refuse the order, never guess
            log.error("daily notional of account %s: cannot ask the database for more of the limit: %s",
                      account or "-", exc, extra=fields(account=account or None, lease=self.lease))
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            raise BudgetUnavailable(f"{type(exc).__name__}: {first}") from exc

    def _top_up(self, day: date, account: str, need: Decimal, limit: Decimal) -> Decimal:
        chunk = limit * self.chunk_pct / 100
        with self.engine.begin() as conn:
            self._fence(conn)
            conn.execute(_LOCK, {"key": self._key(day, account)})
            rows = dict(conn.execute(select(_B.lease, _B.granted).where(
                _B.cluster == self.cluster, _B.day == day, _B.account == account)).all())
            mine = rows.pop(self.lease, ZERO)
            others = sum(rows.values(), ZERO)
            target = max(mine, min(limit - others, need + chunk))
            if target != mine:
                stmt = insert(risk_budgets).values(cluster=self.cluster, day=day, account=account, lease=self.lease,
                                                   granted=target)
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=[_B.cluster, _B.day, _B.account, _B.lease],
                    set_={"granted": target, "updated_at": func.now()}))
        self.top_ups += 1
        metrics.RISK_BUDGET_TOP_UPS.inc()
        self._grants[(day, account)] = target
        self._limits[(day, account)] = limit
        if target < need:
            self.refusals += 1
            metrics.RISK_BUDGET_REFUSALS.inc()
            log.warning("daily notional of account %s: this shard holds %s of the cluster's limit %s, the others "
                        "%s; an order needing %s is refused", account or "-", target, limit, others, need,
                        extra=fields(account=account or None, lease=self.lease))
        return target

    # ------------------------------------------------------------------ give-back (keeper thread)
    def lower(self, usage: dict[str, Decimal], day: date | None) -> list[tuple[date, str, Decimal, Decimal]]:
        """On the core thread: lower each grant of ``day`` to this shard's usage (``usage``: account -> notional)
        and a chunk of the limit it was last topped up under; (day, account, grant before, new grant) of each
        one lowered, for ``give_back``. Grants of other days are dropped (their rows stay, for the record)."""
        lowered = []
        for (d, account), grant in list(self._grants.items()):
            if d != day:
                del self._grants[(d, account)]
                self._limits.pop((d, account), None)
                continue
            limit = self._limits.get((d, account))
            keep = usage.get(account, ZERO) + (limit * self.chunk_pct / 100 if limit is not None else ZERO)
            if keep < grant:
                self._grants[(d, account)] = keep
                lowered.append((d, account, grant, keep))
        return lowered

    def give_back(self, lowered: list[tuple[date, str, Decimal, Decimal]]) -> int:
        """Write the grants ``lower`` lowered, each only if its row still holds the grant before (see the module);
        how many rows were lowered."""
        done = 0
        if not lowered:
            return done
        with self.engine.begin() as conn:
            self._fence(conn)
            for day, account, before, keep in lowered:
                conn.execute(_LOCK, {"key": self._key(day, account)})
                done += conn.execute(risk_budgets.update().where(
                    _B.cluster == self.cluster, _B.day == day, _B.account == account, _B.lease == self.lease,
                    _B.granted == before).values(granted=keep, updated_at=func.now())).rowcount
        return done

    def _key(self, day: date, account: str) -> str:
        """The advisory lock's text for one (cluster, day, account): JSON, so no two of them share a text."""
        return json.dumps([self.cluster, day.isoformat(), account])

    def load(self) -> int:
        """Read this shard's grants back (a start or a takeover); how many."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_B.day, _B.account, _B.granted).where(
                _B.cluster == self.cluster, _B.lease == self.lease)).all()
        self._grants = {(r.day, r.account): Decimal(r.granted) for r in rows}
        return len(rows)

    def held(self) -> dict[tuple[date, str], Decimal]:
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
