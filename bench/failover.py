"""The failover harness (issue 20, "Show it"): a cluster of `fixgw run --instance` processes on one PostgreSQL
database, venue simulators, FIX clients sending a steady flow and a drop-copy receiver, all on loopback; the active
killed at random moments, and what every counterparty and the journal saw checked after each.

- Instances A, B (and C with ``--instances 3``, the default), each with its own ports and data directory; the
  clients and the receiver list every instance's port (SocketConnectPort, SocketConnectPort1, ...). The first leads,
  the others stand by; after each event the old active is restarted and stands by again, so events can repeat.
- The flow (bench/failover_flow.py): bench/workload.py's mix from two FIX.4.4 clients at ``--rate`` orders/s, only
  while a client is logged on: fills (one and two levels), resting orders (a third stay, a third are canceled, a
  third replaced then canceled) and venue rejects.
- Events, at random moments (``--min-gap``..``--max-gap`` s of steady flow apart, ``--seed``): ``--kills`` SIGKILLs of
  the active's process group (the gateway and its journal writer: the machine's loss); with ``--sigstop`` one
  SIGSTOP of the group held until the successor serves (at least 1.5 lease ttls), then SIGCONT; with ``--db-cut``
  one cut of the active's database connections for ``--cut-seconds`` (every instance reaches PostgreSQL through a
  proxy of its own, bench/failover_proxy.py: its connections are reset and new ones refused; the others keep
  theirs).
- After each event, flow paused and every order settled (bench/failover_events.py, bench/failover_checks.py):
  clients logged on to the successor within 5 s; MsgSeqNums continuous on every session of every counterparty (no
  reset; the seq_gap jump filled is fine); every order acknowledged before the event known to the gateway
  (OrderStatusRequest) in the state the venue simulator has it; no ClOrdID sent to a venue twice; the journal with
  no gap or number twice on any session and its hash chain verified; the drop-copy receiver with every client-side
  ExecutionReport once, in journal order; after a SIGSTOP or a cut, the old active ended with code 3, and after a
  SIGSTOP it spooled, journaled and sent nothing more.

Bounded: it stops by itself after the events or ``--max-seconds``, ends every process it started and drops its
database (``--keep`` keeps the working directory: configuration, instance logs). Report: stdout and
bench/results/failover-<time>.md and .json (``--out``, ``--name``). Exit code 0 when every check passed, 1 if not.

    .venv/bin/python bench/failover.py                          # 20 kills
    .venv/bin/python bench/failover.py --sigstop --db-cut       # and the SIGSTOP and the cut
    .venv/bin/python bench/failover.py --kills 2 --instances 2  # what tests/test_failover_smoke.py runs
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import failover_report  # noqa: E402
from failover_events import Events  # noqa: E402
from failover_flow import Flow  # noqa: E402
from failover_stack import DEFAULT_PG_URL, Stack  # noqa: E402
from throughput import load_average, machine  # noqa: E402

EVENT_BUDGET_S = 30  # an event, its recovery and its checks take less than this; no event starts without it


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs of the active (default 20)")
    ap.add_argument("--sigstop", action="store_true", help="also one SIGSTOP held past the lease, then SIGCONT")
    ap.add_argument("--db-cut", action="store_true", help="also one cut of the active's database connections")
    ap.add_argument("--handovers", type=int, default=0,
                    help="also this many planned handovers (`fixgw cluster handover --to` a running standby)")
    ap.add_argument("--cut-seconds", type=float, default=None, help="how long the cut lasts (default 2 ttl + 1 s)")
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--instances", type=int, default=3, choices=(2, 3, 4))
    ap.add_argument("--rate", type=float, default=20.0, help="orders/s from all clients together")
    ap.add_argument("--ttl", type=float, default=2.0, help="lease_ttl_s")
    ap.add_argument("--seq-gap", type=int, default=1000)
    ap.add_argument("--min-gap", type=float, default=2.0, help="seconds of steady flow before an event, at least")
    ap.add_argument("--max-gap", type=float, default=6.0, help="... and at most")
    ap.add_argument("--stagger", type=float, default=0.0,
                    help="seconds between the standbys' first starts (default 0: together, as a supervisor would)")
    ap.add_argument("--max-seconds", type=float, default=1200.0, help="no new event after this (then it stops)")
    ap.add_argument("--pg-url", default=os.environ.get("FIXGW_TEST_PG_URL") or DEFAULT_PG_URL,
                    help="a PostgreSQL server where this role may CREATE DATABASE")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    ap.add_argument("--name", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the working directory (configuration, logs)")
    return ap.parse_args(argv)


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    cut_s = args.cut_seconds if args.cut_seconds is not None else 2 * args.ttl + 1
    planned = ({"kill": args.kills} | ({"stop": 1} if args.sigstop else {}) | ({"dbcut": 1} if args.db_cut else {})
               | ({"handover": args.handovers} if args.handovers else {}))
    kinds = [k for k, n in planned.items() for _ in range(n)]
    rng.shuffle(kinds)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    name = args.name or f"failover-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    result = {"started": started, "machine": machine(), "load_before": load_average(), "planned": planned,
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "pg_url"},
              "events": [], "unplanned_exits": []}
    signal.signal(signal.SIGTERM, _raise_exit)
    work = Path(tempfile.mkdtemp(prefix="fixgw-failover-"))
    stack = Stack(args.pg_url, work, args.instances, args.ttl, args.seq_gap, proxies=args.db_cut, keep=args.keep,
                  stagger_s=args.stagger)
    flow = None
    t_start = time.monotonic()
    try:
        stack.start()
        flow = Flow(stack.clients, args.rate, args.seed).start()
        events = Events(stack, flow, rng, args.ttl)
        for i, kind in enumerate(kinds, 1):
            if time.monotonic() - t_start + args.max_gap + EVENT_BUDGET_S > args.max_seconds:
                result["stopped_early"] = f"stopped before event {i}: --max-seconds {args.max_seconds:g}"
                break
            _restart_unasked(stack, result)
            time.sleep(rng.uniform(args.min_gap, args.max_gap))
            ev = events.run(kind, i, cut_s)
            ev["at_s"] = round(time.monotonic() - t_start, 1)
            result["events"].append(ev)
            print(_one_line(ev), flush=True)
        flow.pause()
        result["figures"] = {"orders_sent": len(flow.tracks), "slots_skipped_logged_out": flow.skipped,
                             "venue_new_orders": sum(s.orders_received for s in stack.venues.values()),
                             "spooled_not_journaled": sum(e.get("spool_not_imported", 0) for e in result["events"])}
        if args.keep:
            result["work_dir"] = str(work)
    except BaseException as exc:  # noqa: BLE001 - report what ran, then clean up
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(f"harness error: {result['error']}", file=sys.stderr, flush=True)
        for inst in stack.instances.values():
            if inst.log_tail():
                print(f"--- {inst.name} log tail ---\n{inst.log_tail(1500)}", file=sys.stderr)
    finally:
        if flow is not None:
            flow.stop()
        stack.close()
    result["elapsed_s"] = time.monotonic() - t_start
    result["load_after"] = load_average()
    result["totals"] = failover_report.totals(result)
    j, m = failover_report.write(result, args.out, name)
    print(failover_report.markdown(result))
    print(f"written: {j} and {m}")
    return 0 if result["totals"]["all_passed"] and "error" not in result else 1


def _restart_unasked(stack: Stack, result: dict) -> None:
    """An instance that ended without being asked to (a lease lost under load, a crash): noted, restarted."""
    for inst in stack.instances.values():
        if inst.proc is not None and not inst.alive:
            result["unplanned_exits"].append(f"{inst.name} exited with {inst.proc.returncode} "
                                              f"(log tail: {inst.log_tail(400)!r})")
            stack.restart(inst.name)
            stack.wait_standby(inst.name, 90)


def _one_line(ev: dict) -> str:
    if "error" in ev:
        return f"event {ev['index']} {ev['kind']}: {ev['error']}"
    bad = [n for n, c in ev["checks"].items() if not c["ok"]]
    return (f"event {ev['index']} {ev['kind']} at {ev['at_s']} s: {ev['old']} -> {ev.get('new')}, takeover "
            f"{ev['takeover_s']} s, clients {ev['logon_s']}; " + (f"FAILED {bad}" if bad else "all checks passed"))


if __name__ == "__main__":
    sys.exit(main())
