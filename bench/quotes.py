"""What the venues' market data costs a gateway, per quote: the figure that decides whether the shards of a
sharded cluster each subscribe to the venues' quotes or share one subscription (docs/scale-out.md, "Quotes").

Modes, interleaved within one invocation (quiet, quotes, quiet, quotes, ...), each a fresh stack of the bench's
gateway (bench/throughput.py's configuration: SQLite journal, the demo's risk rules, the bench's two venues and
symbols, market data subscribed as by default) and two `fixgw venue-sim` processes, with no orders at all:

  quiet   the simulators publish only when their books change, which without orders is never: the gateway's
          idle cost (heartbeats, timers, metrics);
  quotes  the simulators also send a full snapshot of every subscribed symbol every ``--refresh`` seconds (4
          symbols, so 4 / refresh snapshots a second, each journaled like every other message), of ``--depth``
          levels a side (the gateway's default, 5: a snapshot of 10 entries).

Reported per mode (median over cycles): market-data messages the gateway received per second (counted in its
journal), and the CPU of the gateway's processes (the gateway and its journal writer) as a share of one core;
then the gateway CPU per quote, (quotes' CPU - quiet's CPU in the same cycle) / quotes received, in µs.

Run:    .venv/bin/python bench/quotes.py                 (about 2 minutes)
Smoke:  .venv/bin/python bench/quotes.py --smoke         (what the test runs)
Output: bench/results/quotes-<time>.json and the table on stdout.
"""
from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from loadgen import process_cpu  # noqa: E402
from throughput import Run, child_pids, machine  # noqa: E402
from workload import VENUES  # noqa: E402

FIXGW = [sys.executable, "-m", "gateway.cli"]


def set_feed(cfg: Path, refresh: float, depth: int) -> None:
    """Each simulator of the bench's gateway.cfg sends a snapshot every ``refresh`` seconds (0: none); the gateway
    subscribes to ``depth`` levels a side."""
    text = cfg.read_text()
    for venue in VENUES:
        text = text.replace(f"[venues.{venue}.simulator]\n", f"[venues.{venue}.simulator]\nmd_refresh_s = {refresh}\n")
    text = text.replace("reconnect_s = 1\n", f"reconnect_s = 1\nmarket_data = {{ depth = {depth} }}\n")
    cfg.write_text(text)


def quotes_between(db: Path, t0_us: int, t1_us: int) -> int:
    """Market-data messages (W, X) the gateway received between the two times, from its journal."""
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM journal_messages WHERE direction = 'I' AND msg_type IN ('W', 'X') "
                            "AND ts_us >= ? AND ts_us < ?", (t0_us, t1_us)).fetchone()[0]


def run_one(mode: str, args) -> dict:
    refresh = args.refresh if mode == "quotes" else 0
    with tempfile.TemporaryDirectory(prefix=f"fixgw-quotes-{mode}-") as work:
        tmp = Path(work)
        run = Run("C", tmp, None)  # the throughput bench's configuration, SQLite
        cfg = run.cfg
        set_feed(cfg, refresh, args.depth)
        try:
            for venue in VENUES:
                run.spawn(venue, [*FIXGW, "venue-sim", "-c", str(cfg), "--venue", venue])
            subprocess.run([*FIXGW, "db", "upgrade", "-c", str(cfg)], cwd=tmp, env=run.env, check=True,
                           capture_output=True)
            run.spawn("gateway", [*FIXGW, "run", "-c", str(cfg)])
            run.wait_health("gateway")
            time.sleep(args.settle)  # the venues logged on, subscriptions answered
            gw = run.procs["gateway"].pid
            pids = [gw, *child_pids(gw)]
            cpu0 = sum(process_cpu(p) or 0 for p in pids)
            t0 = time.time()
            time.sleep(args.seconds)
            cpu1 = sum(process_cpu(p) or 0 for p in pids)
            t1 = time.time()
        finally:
            codes = run.stop()
        if codes.get("gateway") not in (0, None):
            raise RuntimeError(f"the gateway stopped with {codes['gateway']}; its log:\n"
                               f"{(tmp / 'gateway.log').read_text()[-3000:]}")
        quotes = quotes_between(tmp / "var" / "journal.db", int(t0 * 1e6), int(t1 * 1e6))
    took = t1 - t0
    return {"mode": mode, "refresh_s": refresh, "seconds": round(took, 3), "quotes": quotes,
            "quotes_per_s": round(quotes / took, 1), "gateway_cpu_s": round(cpu1 - cpu0, 4),
            "gateway_core_share": round((cpu1 - cpu0) / took, 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15, help="measured time per mode and cycle")
    ap.add_argument("--settle", type=float, default=4, help="seconds after start before measuring")
    ap.add_argument("--refresh", type=float, default=0.01, help="the simulators' snapshot interval in mode quotes")
    ap.add_argument("--depth", type=int, default=5, help="levels a side the gateway subscribes to (its default: 5)")
    ap.add_argument("--smoke", action="store_true", help="one short cycle (what the test runs)")
    ap.add_argument("--out", type=Path, default=None, help="the JSON summary's path")
    args = ap.parse_args(argv)
    if args.smoke:
        args.cycles, args.seconds, args.settle, args.refresh = 1, 3, 3, 0.05
    runs, per_quote = [], []
    for cycle in range(args.cycles):
        pair = {}
        for mode in ("quiet", "quotes"):
            r = run_one(mode, args) | {"cycle": cycle}
            runs.append(r)
            pair[mode] = r
            print(f"cycle {cycle} {mode}: {r['quotes_per_s']} quotes/s, gateway {r['gateway_core_share']:.1%} of a "
                  f"core", flush=True)
        extra = pair["quotes"]["gateway_cpu_s"] / pair["quotes"]["seconds"] \
            - pair["quiet"]["gateway_cpu_s"] / pair["quiet"]["seconds"]
        if pair["quotes"]["quotes"]:
            per_quote.append(extra / pair["quotes"]["quotes_per_s"] * 1e6)
    med = {mode: {k: statistics.median(r[k] for r in runs if r["mode"] == mode)
                  for k in ("quotes_per_s", "gateway_core_share")} for mode in ("quiet", "quotes")}
    summary = {"machine": machine(), "python": platform.python_version(), "args": vars(args) | {"out": None},
               "runs": runs, "median": med,
               "gateway_cpu_us_per_quote": round(statistics.median(per_quote), 1) if per_quote else None,
               "per_quote_cycles": [round(x, 1) for x in per_quote]}
    out = args.out or BENCH / "results" / f"quotes-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(f"\n{summary['machine']}, Python {summary['python']}; {args.cycles} cycle(s) of {args.seconds:g} s per mode")
    print("| mode | market-data messages/s received | gateway CPU, share of one core |")
    print("|---|---|---|")
    for mode in ("quiet", "quotes"):
        print(f"| {mode} | {med[mode]['quotes_per_s']:.0f} | {med[mode]['gateway_core_share']:.1%} |")
    print(f"\ngateway CPU per market-data message: {summary['gateway_cpu_us_per_quote']} µs (median; cycles: "
          f"{', '.join(f'{x:.1f}' for x in per_quote)})\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
