"""The costs the end-to-end profile points at, measured in isolation on the same machine.

1. A replace's risk check (``RiskEngine.check_replace``) copies the whole risk
   state with ``copy.deepcopy`` (``RiskState.without_order``) to release the old
   order's exposure. The state holds every open order, the duplicate window
   (``duplicates.accepted``: one entry per order of the last ``duplicate_window_ms``)
   and the throttle window (``throttle.session_times``: one time stamp per message of the last
   ``throttle_window_ms``), so the copy grows with the order rate and with the
   number of open orders. Timed here: a new order's check, a replace's check,
   and the copy alone, at the steady state of a given message rate and number
   of open orders, with the demo's rules (throttle raised as the bench does).
   For comparison, the same copy leaving out the two windows (the duplicate
   window is cleared right after the copy anyway; the throttle's could be shared), which
   is what a copy limited to what the check reads would cost.

Run: .venv/bin/python bench/costs.py
"""
from __future__ import annotations

import copy
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from risk.engine import RiskEngine  # noqa: E402
from risk.rules import load_rules  # noqa: E402
from risk.state import RiskState  # noqa: E402
from orders.commands import NewOrder  # noqa: E402
from orders.model import OrdType, Side


def rules_text() -> str:
    text = (ROOT / "risk" / "demo_rules.toml").read_text()
    return (text.replace("throttle_msgs = 100 ", "throttle_msgs = 1000000 ")
            .replace("throttle_logout_msgs = 200 ", "throttle_logout_msgs = 2000000 "))


def order(i: int, price: str = "190.05") -> NewOrder:
    return NewOrder("BENCH", f"C{i}", "AAPL", Side.BUY, Decimal(100 + i % 1000), OrdType.LIMIT,
                    Decimal(price) + Decimal((i // 1000) % 40) / 100)


def steady_state(engine: RiskEngine, rate: int, open_orders: int) -> tuple[RiskState, datetime]:
    """The state after one second at ``rate`` orders/s with ``open_orders`` of them still open."""
    state = RiskState()
    state.set_reference_price("AAPL", Decimal("190.00"))
    start = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)
    n = max(rate, open_orders)
    now = start
    for i in range(n):
        now = start + timedelta(microseconds=int(i * 1e6 / max(1, rate)))
        o = order(i)
        d = engine.check(o, state, now)
        if not d.accepted:
            raise RuntimeError(d.reject)
        engine.on_accepted(o, state, now)
        if i < n - open_orders:
            state.on_done(o.session, o.cl_ord_id)
    return state, now


def per_call(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeat)
    return best * 1e6


def main() -> None:
    engine = RiskEngine(load_rules(rules_text()))
    print("| orders/s (window entries) | open orders | check, new order | check, replace | deepcopy of the state "
          "| copy without the two windows |")
    print("|---|---|---|---|---|---|")
    for rate, open_orders in ((100, 10), (1000, 10), (1000, 1000), (2000, 100), (1000, 10000)):
        state, now = steady_state(engine, rate, open_orders)
        orig = next(iter(state.open_orders.values()))
        k = [0]

        times = state.throttle.session_times["BENCH"]

        def new_check():  # the check counts the message for the throttle: uncounted again, the state stays put
            k[0] += 1
            engine.check(order(10**6 + k[0], "190.45"), state, now)
            times.pop()

        def replace_check():
            r = NewOrder("BENCH", "R1", "AAPL", Side.BUY, orig.qty + 1000, OrdType.LIMIT, orig.px)
            engine.check_replace(r, orig.cl_ord_id, state, now)
            times.pop()

        def slim_copy():
            recent, times = state.duplicates.accepted, state.throttle.session_times
            state.duplicates.accepted, state.throttle.session_times = {}, {}
            try:
                clone = copy.deepcopy(state)
            finally:
                state.duplicates.accepted, state.throttle.session_times = recent, times
            clone.throttle.session_times = times
            return clone

        reps = 200 if rate * 2 + open_orders < 5000 else 20
        windows = len(state.duplicates.accepted) + sum(len(d) for d in state.throttle.session_times.values())
        t_new = per_call(new_check, reps)
        t_rep = per_call(replace_check, reps)
        t_copy = per_call(lambda: copy.deepcopy(state), reps)
        t_slim = per_call(slim_copy, reps)
        print(f"| {rate:,} ({windows:,}) | {len(state.open_orders):,} | {t_new:,.0f} µs | {t_rep:,.0f} µs | "
              f"{t_copy:,.0f} µs | {t_slim:,.0f} µs |")


if __name__ == "__main__":
    main()
