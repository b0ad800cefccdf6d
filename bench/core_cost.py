"""The core thread's CPU per order, in process, without sockets: what ``Engine._handle`` does for each command.

For every command: ``Core.handle``, then each action encoded by the codec (``Outbound.encode``), then the state
log record written by the real ``Recorder`` into a ``StateLog`` in a temporary directory (gateway/process/engine.py
does the same, plus its journal events and metrics, ``OutcomeReport``, which are left out here). The core is built
as ``fixgw run`` builds it for the throughput benchmark: its two venues (bench/workload.py), the demo's risk rules
with every check on (throttle raised, as bench/throughput.py does), the reference prices, the venues' books as
market data. The flow is bench/workload.py's mix, with the venues answering in process as venue-sim does:

- M, M2, MI: New, then one fill per ask level taken (M2: two);
- R: New; the client replaces it (qty +1000), the venue confirms; the client cancels it, the venue confirms;
- X: the venue rejects it.

The clock is simulated (100 us per command), so the throttle, duplicate window and quote ages see a steady flow.
Prints the CPU time (``time.process_time``) per order of the timed loop.

``--rev REV``: the same workload with the packages of git revision REV (``git archive`` into a temporary
directory), each round in its own process, alternating this tree and REV; prints each round and the median of the
per-pair ratios this/REV (ratios, not absolute times: the machine is shared and noisy).
``--profile``: one in-process run under cProfile, the top functions by own time and by cumulative time.

Run: .venv/bin/python bench/core_cost.py [--orders 3000] [--rounds 7] [--rev HEAD] [--profile]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from revision import revision_tree  # noqa: E402


def run(orders: int, warmup: int = 300, profiler=None) -> float:
    """CPU seconds (process time) the core thread's work took for ``orders`` orders of the mix, after ``warmup``:
    the commands' handling only, not the making of the venues' and the client's messages here (the sessions'
    threads decode those); ``profiler``: a cProfile.Profile, enabled around that same work."""
    import gc
    import time
    from datetime import datetime, timedelta, timezone
    from decimal import Decimal as D

    sys.path.insert(0, str(ROOT / "bench"))
    from workload import REFERENCE_PRICES, VENUES, Mix, asks

    from desk.core import Core
    from desk.options import ClientOptions
    from gateway.state.log import StateLog
    from gateway.state.recovery import Recorder
    from gateway.state.records import State
    from orders.actions import VenueCancel, VenueNewOrder, VenueReplace
    from orders.commands import (
        CancelRequest, MarketData, MDEntry, NewOrder, ReplaceRequest, SessionStatus, VenueExecution,
    )
    from orders.model import ExecKind, OrdStatus, OrdType, Side
    from risk.engine import RiskEngine
    from risk.rules import load_rules
    from routing.router import Venue
    from sessions.fixsettings import session_id
    from sessions.outbound import Outbound

    rules_text = ((ROOT / "risk" / "demo_rules.toml").read_text()
                  .replace("throttle_msgs = 100 ", "throttle_msgs = 1000000 ")
                  .replace("throttle_logout_msgs = 200 ", "throttle_logout_msgs = 2000000 "))
    clock_now = [datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)]
    step = timedelta(microseconds=100)

    def clock() -> datetime:
        clock_now[0] += step
        return clock_now[0]

    core = Core([Venue(name, frozenset(symbols)) for name, (_, symbols, *_) in VENUES.items()],
                {"BENCH": ClientOptions()}, "T", risk=RiskEngine(load_rules(rules_text, "bench-rules.toml")),
                clock=clock)
    for symbol, px in REFERENCE_PRICES.items():
        core.risk_state.set_reference_price(symbol, D(px))
    outbound = Outbound({"BENCH": session_id("FIX.4.4", "FIXGW", "BENCH")},
                        {name: session_id(version, "FIXGW", name) for name, (version, *_) in VENUES.items()})
    seqs = {"BENCH": 0, **dict.fromkeys(VENUES, 0)}
    books = {name: asks(name) for name in VENUES}

    tmp = tempfile.TemporaryDirectory()
    statelog = StateLog(Path(tmp.name))
    statelog.open(State())
    recorder = Recorder(statelog, core, State())

    spent = [0.0]
    timing = [False]
    cpu = time.process_time

    def handle(cmd) -> list:
        """What the engine's core thread does with one command; returns the actions."""
        if timing[0]:
            if profiler is not None:
                profiler.enable()
            t0 = cpu()
        out = core.handle(cmd)
        sends = [outbound.encode(a) for a in out.actions]
        recorder.record(cmd, out, [m for m in sends if type(m) is tuple])
        if timing[0]:
            spent[0] += cpu() - t0
            if profiler is not None:
                profiler.disable()
        return out.actions

    for name in VENUES:
        handle(SessionStatus(name, "venue", True))
        for symbol, levels in books[name].items():
            entries = tuple(MDEntry(Side.SELL, px, D(size)) for px, size in levels)
            entries += tuple(MDEntry(Side.BUY, px - D("0.01") * (2 * i + 3), D(size))
                             for i, (px, size) in enumerate(levels))
            handle(MarketData(name, None, symbol, entries, True))
    handle(SessionStatus("BENCH", "client", True))

    def seq(session: str) -> int:
        seqs[session] += 1
        return seqs[session]

    def venue_report(a, kind, status, cum, leaves, last_qty=D(0), last_px=D(0), orig=None) -> VenueExecution:
        return VenueExecution(venue=a.venue, cl_ord_id=a.cl_ord_id, orig_cl_ord_id=orig,
                              venue_order_id="VO-" + (orig or a.cl_ord_id), exec_id=f"E{seqs[a.venue] + 1}",
                              kind=kind, ord_status=status, symbol=a.symbol, side=a.side, last_qty=last_qty,
                              last_px=last_px, cum_qty=cum, leaves_qty=leaves, seq=seq(a.venue))

    def venue(spec, a) -> None:
        """The venue's answers to one of our messages, as venue-sim gives them (and the client's next step)."""
        if type(a) is VenueNewOrder:
            if spec.kind == "X":
                handle(venue_report(a, ExecKind.REJECTED, OrdStatus.REJECTED, D(0), D(0)))
                return
            follow(spec, handle(venue_report(a, ExecKind.NEW, OrdStatus.NEW, D(0), a.qty)))
            if spec.kind == "R":
                return
            cum, left = D(0), a.qty
            for px, size in books[a.venue][a.symbol]:
                if not left or px > a.price:
                    break
                qty = min(left, D(size))
                cum, left = cum + qty, left - qty
                handle(venue_report(a, ExecKind.TRADE, OrdStatus.FILLED if not left else OrdStatus.PARTIALLY_FILLED,
                                    cum, left, qty, px))
        elif type(a) is VenueReplace:
            follow(spec, handle(venue_report(a, ExecKind.REPLACED, OrdStatus.NEW, D(0), a.qty,
                                             orig=a.orig_cl_ord_id)))
        elif type(a) is VenueCancel:
            handle(venue_report(a, ExecKind.CANCELED, OrdStatus.CANCELED, D(0), D(0), orig=a.orig_cl_ord_id))

    state = {}  # R orders: ClOrdID now, step

    def follow(spec, actions) -> None:
        """The client's next message for an R order once it saw New (a replace) or Replaced (a cancel)."""
        if spec.kind != "R":
            return
        for a in actions:
            if a.__class__.__name__ != "ClientExecReport":
                continue
            cl = state[a.order_id]
            if a.kind is ExecKind.NEW:
                state[a.order_id] = new = cl + "r"
                for b in handle(ReplaceRequest("BENCH", new, cl, spec.symbol, Side.BUY, D(spec.replace_qty),
                                               OrdType.LIMIT, D(spec.price), seq=seq("BENCH"))):
                    venue(spec, b)
            elif a.kind is ExecKind.REPLACED:
                state[a.order_id] = new = cl + "c"
                for b in handle(CancelRequest("BENCH", new, cl, spec.symbol, Side.BUY, seq=seq("BENCH"))):
                    venue(spec, b)

    mix = Mix()
    freeze_every = 1024  # as the engine's core thread does (gateway/process/engine.py, FREEZE_EVERY)

    def one(i: int) -> None:
        spec = mix.next()
        cl = f"C{i}"
        actions = handle(NewOrder("BENCH", cl, spec.symbol, Side.BUY, D(spec.qty), OrdType.LIMIT, D(spec.price),
                                  seq=seq("BENCH")))
        for a in actions:
            if a.__class__.__name__ == "ClientExecReport" and spec.kind == "R":
                state[a.order_id] = cl
        for a in actions:
            if type(a) is VenueNewOrder:
                if spec.kind == "R":
                    state.setdefault(core.order_by_venue_cl_ord_id(a.venue, a.cl_ord_id).order_id, cl)
                venue(spec, a)
        if not i % freeze_every:
            gc.freeze()

    for i in range(warmup):
        one(i)
    timing[0] = True
    for i in range(warmup, warmup + orders):
        one(i)
    timing[0] = False
    # every order ended as the workload says (a broken tree must not look fast)
    open_left = [o.order_id for o in core.orders.values() if o.is_open]
    assert not open_left, f"{len(open_left)} orders still open"
    assert len(core.orders) + len(core.rejected) == warmup + orders, (len(core.orders), len(core.rejected))
    statelog.close(recorder.capture())
    tmp.cleanup()
    return spent[0]


def round_in(tree: Path, orders: int) -> float:
    """One round in its own process with ``tree``'s packages first on sys.path: CPU µs per order."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, __file__, "--worker", str(tree), "--orders", str(orders)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])["us_per_order"]


def profile(orders: int) -> None:
    import cProfile
    import pstats

    prof = cProfile.Profile()
    run(orders, profiler=prof)
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(35)
    stats.sort_stats("cumulative").print_stats(45)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--orders", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=7, help="pairs of rounds with --rev, else rounds")
    p.add_argument("--rev", help="compare with the packages of this git revision")
    p.add_argument("--profile", action="store_true", help="one run under cProfile")
    p.add_argument("--worker", metavar="TREE", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        sys.path.insert(0, args.worker)
        spent = run(args.orders)
        print(json.dumps({"us_per_order": spent / args.orders * 1e6}))
        return
    sys.path.insert(0, str(ROOT))
    if args.profile:
        profile(args.orders)
        return
    if not args.rev:
        rounds = [round_in(ROOT, args.orders) for _ in range(args.rounds)]
        print(" ".join(f"{r:.1f}" for r in rounds))
        print(f"core thread CPU per order: {statistics.median(rounds):.1f} us (median of {args.rounds} rounds, "
              f"{args.orders} orders each)")
        return
    with revision_tree(args.rev) as old_tree:
        ratios = []
        for i in range(args.rounds):
            new, old = round_in(ROOT, args.orders), round_in(old_tree, args.orders)
            ratios.append(new / old)
            print(f"round {i + 1}: this tree {new:.1f} us/order, {args.rev} {old:.1f} us/order, "
                  f"ratio {new / old:.3f}", flush=True)
    print(f"core thread CPU per order, this tree / {args.rev}: {statistics.median(ratios):.3f} "
          f"(median of {args.rounds} pairs, {args.orders} orders each)")


if __name__ == "__main__":
    main()
