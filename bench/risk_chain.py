"""Micro-benchmark: µs per order for the full risk chain with every check on (not a test).

Also, in a sharded cluster's terms (docs/scale-out.md): the chain with a shard's parts of the eight limits the
shards share behind it (in-memory grants that always fit, as between top-ups) against the chain alone,
alternated in one run, as a ratio; and with ``--pg-url`` the cost of one top-up (the transaction a shard makes once
per chunk of a limit) on that PostgreSQL server.

Run: .venv/bin/python bench/risk_chain.py [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import timeit
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from risk.engine import RiskEngine
from risk.rules import load_rules
from risk.state import RiskState
from orders.commands import NewOrder
from orders.model import OrdType, Side

RULES = """
chain = ["kill_switch", "throttle", "restricted_symbols", "market_orders", "trading_hours", "max_order_qty",
         "max_order_notional", "price_band", "duplicate_order", "max_open_orders", "max_position",
         "max_gross_exposure", "max_net_exposure", "daily_notional", "firm_limits"]
[limits]
max_order_qty = 100000
max_order_notional = 5000000
price_band_pct = 10
restricted_symbols = ["XXXX"]
allow_market_orders = true
trading_hours = { start = 00:00:00, end = 23:59:59, timezone = "America/New_York", weekdays = [0, 1, 2, 3, 4, 5, 6] }
duplicate_window_ms = 1000
max_open_orders = 1000000
max_position = 1000000000
max_gross_exposure = 100000000000
max_net_exposure = 100000000000
max_symbol_gross_exposure = 100000000000
max_symbol_net_exposure = 100000000000
max_daily_notional = 100000000000
throttle_msgs = 1000000
throttle_logout_msgs = 2000000
throttle_window_ms = 1000
throttle_disable_after = 5
[accounts.ACC1]
max_order_qty = 50000
[firm]
max_gross_exposure = 1000000000000
max_daily_notional = 1000000000000
"""

N = 20_000
_PLENTY = Decimal(10) ** 15


class FittingBudget:
    """A shard's grants as between two top-ups: every order fits (what the check costs when it does)."""

    def __init__(self):
        self._grants: dict = {}  # what BudgetPool.granted reads: a dict, filled here on first sight

    def granted(self, limit, scope):
        return self._grants.setdefault((limit, scope), _PLENTY)

    def top_up(self, limit, scope, need, value):
        raise AssertionError("never asked")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg-url", default=None, help="a PostgreSQL server: time a shard's top-up there too")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    engine = RiskEngine(load_rules(RULES))
    state = RiskState()
    symbols = ["AAPL", "MSFT", "IBM"]
    for s, px in zip(symbols, ("190", "410", "230")):
        state.set_last_trade(s, Decimal(px))
    start = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)
    orders = [NewOrder("CLIENT44", f"C{i}", symbols[i % 3], Side.BUY if i % 2 else Side.SELL,
                       Decimal(100 + i % 1000), OrdType.LIMIT, Decimal(("190", "410", "230")[i % 3]) + Decimal(i % 7),
                       account="ACC1" if i % 2 else "ACC2") for i in range(N)]
    nows = [start + timedelta(microseconds=50 * i) for i in range(N)]

    def run() -> None:
        st = RiskState.restore(state.snapshot())
        for o, now in zip(orders, nows):
            d = engine.check(o, st, now)
            assert d.accepted, d.reject
    t = min(timeit.repeat(run, number=1, repeat=3))
    print(f"risk chain, {len(engine.rules.chain)} checks, {N} orders: {t / N * 1e6:.2f} µs/order "
          f"(check only, state not booked; Python {platform.python_version()}, {platform.machine()})")

    def run_booked() -> None:
        st = RiskState.restore(state.snapshot())
        for o, now in zip(orders, nows):
            d = engine.check(o, st, now)
            assert d.accepted, d.reject
            engine.on_accepted(o, st, now)
    t = min(timeit.repeat(run_booked, number=1, repeat=3))
    print(f"risk chain + on_accepted (state grows to {N} open orders): {t / N * 1e6:.2f} µs/order")

    def run_day() -> float:  # booked, on a known trading day (the shared check needs one), timed
        st = RiskState.restore(state.snapshot())
        st.start_day(start.date())
        t0 = time.perf_counter()
        for o, now in zip(orders, nows):
            d = engine.check(o, st, now)
            assert d.accepted, d.reject
            engine.on_accepted(o, st, now)
        return time.perf_counter() - t0
    ratios = []
    for _ in range(args.rounds):  # alternated: a shard's check against the chain alone, same run
        engine.budget = None
        alone = run_day()
        engine.budget = FittingBudget()
        shared = run_day()
        ratios.append(shared / alone)
    engine.budget = None
    print(f"with a shard's parts of the shared limits (every order fits): {statistics.median(ratios):.3f}x "
          f"the chain alone (median of {args.rounds} alternated pairs: "
          f"{', '.join(f'{r:.3f}' for r in ratios)})")
    if args.pg_url:
        top_up_cost(args.pg_url)


def top_up_cost(server_url: str, n: int = 300) -> None:
    """Milliseconds per top-up (gateway/cluster/budgets.py) on a fresh database of ``server_url``'s server."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from failover_stack import create_database, drop_database

    from gateway.cluster.budgets import BudgetPool
    from gateway.cluster.fence import check_fence
    from gateway.cluster.lease import Lease
    from gateway.journal.db import make_engine

    url = create_database(server_url)
    engine = make_engine(url)
    try:
        token = Lease(engine, "bench/s1").take("I1", 60).token
        pool = BudgetPool(engine, "bench", "bench/s1", lambda conn: check_fence(conn, "bench/s1", token))
        day = datetime.now(timezone.utc).date().isoformat()
        limit = Decimal(10) ** 12
        t0 = time.perf_counter()
        for i in range(n):  # a first top-up for each account: the read, then an insert, every time
            pool.top_up("max_daily_notional", (day, f"ACC{i}"), Decimal(1000), limit)
        took = time.perf_counter() - t0
        print(f"one top-up (fenced transaction, advisory lock, read and upsert) on PostgreSQL: "
              f"{took / n * 1e3:.3f} ms ({n} in a row, one shard, no contention)")
    finally:
        engine.dispose()
        drop_database(server_url, url)


if __name__ == "__main__":
    main()
