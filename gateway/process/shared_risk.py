"""The gateway's side of a sharded cluster's shared risk limits (gateway/cluster/budgets.py): the shard's grants
of the accounts' daily notional limits, put in front of the risk engine's checks before any order arrives, and
the keeper that gives back what the shard does not use."""
from __future__ import annotations

from decimal import Decimal

from gateway.cluster.budgets import BudgetKeeper, BudgetPool


class SharedRisk:
    def __init__(self, gw, pool: BudgetPool, return_s: float):
        self.pool = pool
        usage = lambda core: pool.lower(core.risk_state.usage.used, core.risk_state.usage.day)  # noqa: E731
        self.keeper = BudgetKeeper(pool, lambda: gw.engine.call(usage), return_s)

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
