"""Micro-benchmark: µs per order for the full risk chain with every check on (not a test).

Run: .venv/bin/python bench/risk_chain.py
"""
from __future__ import annotations

import platform
import timeit
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from risk.engine import RiskEngine
from risk.rules import load_rules
from risk.state import RiskState
from orders.commands import NewOrder
from orders.model import OrdType, Side

RULES = """
chain = ["kill_switch", "throttle", "restricted_symbols", "market_orders", "trading_hours", "max_order_qty",
         "max_order_notional", "price_band", "duplicate_order", "max_open_orders", "max_position",
         "max_gross_exposure", "max_net_exposure", "daily_notional"]
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
"""

N = 20_000


def main() -> None:
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


if __name__ == "__main__":
    main()
