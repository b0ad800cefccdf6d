"""The gateway's side of a sharded cluster's shared risk limits (gateway/cluster/budgets.py): the shard's grants
of the limits the shards share, put in front of the risk engine's checks before any order arrives, and
the keeper that gives back what the shard does not use."""
from __future__ import annotations

from decimal import Decimal

from gateway.cluster.budgets import BudgetKeeper, BudgetPool
from risk.shared_budget import shard_usage


class SharedRisk:
    def __init__(self, gw, pool: BudgetPool, return_s: float):
        self.pool = pool
        self.keeper = BudgetKeeper(pool, lambda: gw.engine.call(self._lower), return_s)

    def _lower(self, core) -> list:
        """On the core thread: the grants lowered to what the shard uses now."""
        state = core.risk_state
        day = state.usage.day.isoformat() if state.usage.day is not None else None
        return self.pool.lower(lambda limit, scope: shard_usage(state, limit, scope), day)

    @classmethod
    def start_for(cls, gw) -> "SharedRisk | None":
        """For an instance of a sharded cluster with risk rules: its grants loaded and in the risk engine, the
        keeper started; None for any other gateway. Call once the engine runs, before clients connect."""
        cluster = gw.cfg.cluster
        if cluster is None or cluster.shard is None or gw.core.risk is None:
            return None
        pool = BudgetPool(gw.cluster.engine, cluster.name, cluster.lease_name, gw.cluster.fence,
                          chunk_pct=Decimal(str(cluster.budget_chunk_pct)))
        pool.load()
        gw.engine.call(lambda core: setattr(core.risk, "budget", pool))
        shared = cls(gw, pool, cluster.budget_return_s)
        shared.keeper.start()
        return shared

    def stop(self) -> None:
        self.keeper.stop()
