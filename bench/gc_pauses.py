"""The cyclic garbage collector's full passes on the core thread, with and without its freeze policy.

The engine freezes what survived every ``Engine.FREEZE_EVERY`` commands
(gateway/process/engine.py). This runs the same new orders through an engine (its core
and risk chain; the sessions stubbed, no state log) twice in one process, once
with the policy and once without it (``FREEZE_EVERY = 0``), and reports the
longest and the total time of the automatic full collections (generation 2)
while the orders pile up. Absolute times are machine-dependent; compare the two
lines of one run.

Run: .venv/bin/python bench/gc_pauses.py [orders]      (default 100,000)
"""
from __future__ import annotations

import gc
import sys
import time
from decimal import Decimal as D
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.process.engine import Engine  # noqa: E402
from desk.core import Core  # noqa: E402
from desk.options import ClientOptions  # noqa: E402
from orders.commands import NewOrder, SessionStatus  # noqa: E402
from orders.model import OrdType, Side
from routing.router import Venue  # noqa: E402


class _Outbound:
    def encode(self, action):
        return None

    def perform(self, action):
        return True


def run(orders: int, freeze_every: int) -> tuple[float, float, int]:
    """(longest, total seconds, count) of the automatic full collections while ``orders`` orders come in."""
    core = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions()}, "T")
    engine = Engine(core, _Outbound())
    engine.FREEZE_EVERY = freeze_every
    gc.collect()
    gc.freeze()  # what the gateway freezes after start-up
    full: list[float] = []
    started = [0.0]

    def watch(phase, info):
        if phase == "start":
            started[0] = time.perf_counter()
        elif info["generation"] == 2:
            full.append(time.perf_counter() - started[0])

    gc.callbacks.append(watch)
    try:
        engine.start()
        engine.request(SessionStatus("V1", "venue", True), timeout=60)
        for i in range(orders):
            engine.submit(NewOrder(session="C1", cl_ord_id=f"A{i}", symbol="AAPL", side=Side.BUY, qty=D(100),
                                   ord_type=OrdType.LIMIT, price=D(190)))
        engine.call(lambda c: None, timeout=600)
    finally:
        gc.callbacks.remove(watch)
        engine.stop()
        gc.unfreeze()
    return max(full, default=0.0), sum(full), len(full)


def main(orders: int = 100_000) -> None:
    for label, every in (("without the freeze policy", 0), (f"freezing every {Engine.FREEZE_EVERY} commands",
                                                            Engine.FREEZE_EVERY)):
        longest, total, count = run(orders, every)
        print(f"{orders:,} orders open, {label}: {count} automatic full collections, longest {longest * 1e3:.1f} ms, "
              f"total {total * 1e3:.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
