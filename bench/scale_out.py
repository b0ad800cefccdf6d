"""Scale-out: one gateway against two shards of one cluster, on the same machine, in one run (docs/scale-out.md).

Modes, interleaved within one invocation (1, 2, 1, 2, ...):

  1  a sharded cluster of one shard: one `fixgw run --instance` serving both load clients (BENCH1, BENCH2);
  2  two shards, one instance each, one load client each.

Both on the same PostgreSQL database (a fresh one per run: journal, order state, leases, the shared risk budget),
the demo's risk rules with every check on and an account daily notional limit every order goes through (so the
shards share it, risk/shared_budget.py), and the bench's two venues (bench/venue_probe.py, accepting every shard's
CompID). Each load client is its own process (bench/loadgen.py, closed loop, --window orders in flight), the two
running at once.

Reported per mode (median over cycles): orders/s completed by both clients together, CPU per order of the
gateway processes (instances and their journal writers) and of the database's backends, the shared budget's
top-ups, the machine's busy share, the lock contention (every 10 ms, how many backends wait for an advisory lock:
the journal chain's, which all shards' writers take in turn, and the budgets'), and mode 2 over mode 1 as ratios in
the same cycle. Every order must complete in both modes (else the
run fails). The machine is noted: on two cores, mode 2 runs two GIL-bound gateways, two load clients, two venues
and PostgreSQL on the same two cores, so the ratio is the floor of what more cores give.

Run:    .venv/bin/python bench/scale_out.py                  (about 3 minutes)
Smoke:  .venv/bin/python bench/scale_out.py --smoke          (what the test runs)
Output: bench/results/scale-out-<time>.json and the table on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from failover_stack import DEFAULT_PG_URL, create_database, drop_database  # noqa: E402
from loadgen import process_cpu, watch_database  # noqa: E402
from ports import free_port  # noqa: E402
from throughput import bench_rules, child_pids  # noqa: E402
from workload import REFERENCE_PRICES, VENUES, venue_sections  # noqa: E402

FIXGW = [sys.executable, "-m", "gateway.cli"]
CLIENTS = ("BENCH1", "BENCH2")
LIMIT = 10**12  # every order checks it (and the shards share it); never reached


def config(work: Path, url: str, shards: int) -> tuple[Path, dict]:
    """The cluster's gateway.cfg for ``shards`` shards (1: one shard serving both clients), and its ports."""
    ports = {"venues": {v: free_port() for v in VENUES},
             "instances": {f"I{i + 1}": {"acceptor_port": free_port(), "http_port": free_port()}
                           for i in range(shards)}}
    rules = bench_rules(work)
    rules.write_text(rules.read_text().replace("[limits]\n", f"[limits]\nmax_daily_notional = {LIMIT}\n", 1))
    refs = ", ".join(f"{s} = {p}" for s, p in REFERENCE_PRICES.items())
    venues = venue_sections(ports["venues"])
    clients = "".join(f'[clients.{c}]\nfix_version = "FIX.4.4"\n' for c in CLIENTS)
    split = [list(CLIENTS)] if shards == 1 else [[c] for c in CLIENTS]
    shard_toml = "".join(f'[shard.s{i + 1}]\nclients = {json.dumps(cs)}\nvenue_comp_id = "FIXGW-{i + 1}"\n'
                         for i, cs in enumerate(split))
    instances = "".join(f'[instance.{name}]\nshard = "s{i + 1}"\ndata_dir = "var/{name}"\n'
                        + "".join(f"{k} = {v}\n" for k, v in p.items())
                        for i, (name, p) in enumerate(ports["instances"].items()))
    cfg = work / "gateway.cfg"
    cfg.write_text(f"""
comp_id = "FIXGW"
data_dir = "var"
log_level = "WARNING"
[journal]
database_url = "{url}"
[risk]
rules_file = "{rules}"
reference_prices = {{ {refs} }}
[recovery]
state_log = "database"
[cluster]
name = "bench"
{clients}{venues}{shard_toml}{instances}""")
    return cfg, ports


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return float("nan")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith((name + " ", name + "{")))


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat)."""
    cpu = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = cpu[3] + (cpu[4] if len(cpu) > 4 else 0)
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(cpu[:8]) - idle) / tick, sum(cpu[:8]) / tick


class LockSampler:
    """Every ``every`` seconds, how many of the database's backends wait for an advisory lock (the journal chain's,
    the budgets'): the lock contention, as the share of samples with a waiter and the mean number waiting."""

    def __init__(self, url: str, every: float = 0.01):
        import threading

        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self._engine = create_engine(url)
        self._db, self._every = make_url(url).database, every
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from sqlalchemy import text

        query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND wait_event_type = 'Lock' "
                     "AND wait_event = 'advisory'")
        with self._engine.connect() as conn:
            while not self._stop.wait(self._every):
                self.samples.append(conn.execute(query, {"db": self._db}).scalar_one())
                conn.commit()

    def __enter__(self) -> "LockSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self._engine.dispose()

    def figures(self) -> dict:
        n = len(self.samples) or 1
        return {"lock_samples": len(self.samples),
                "advisory_wait_share": round(sum(1 for s in self.samples if s) / n, 4),
                "advisory_waiters_mean": round(sum(self.samples) / n, 4)}


def run_mode(shards: int, args, server_url: str) -> dict:
    url = create_database(server_url)
    procs: list[subprocess.Popen] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    env.pop("FIXGW_DATABASE_URL", None)
    with tempfile.TemporaryDirectory(prefix=f"scale-out-{shards}-") as tmp:
        work = Path(tmp)
        cfg, ports = config(work, url, shards)

        def spawn(name: str, cmd: list[str]) -> subprocess.Popen:
            with open(work / f"{name}.log", "w") as out:
                p = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
            procs.append(p)
            return p
        try:
            for v in VENUES:
                spawn(v, [sys.executable, str(BENCH / "venue_probe.py"), "-c", str(cfg), "--venue", v,
                          "--stamps", str(work / f"stamps-{v}.json")])
            gateways = {name: spawn(name, [*FIXGW, "run", "-c", str(cfg), "--instance", name])
                        for name in ports["instances"]}
            deadline = time.monotonic() + 90
            while not all(_healthy(p["http_port"]) for p in ports["instances"].values()):
                if time.monotonic() > deadline or any(g.poll() is not None for g in gateways.values()):
                    logs = {n: (work / f"{n}.log").read_text()[-2000:] for n in gateways}
                    raise RuntimeError(f"mode {shards}: instances not healthy: {logs}")
                time.sleep(0.2)
            watched = {name: g.pid for name, g in gateways.items()}
            for name, g in gateways.items():
                for i, pid in enumerate(child_pids(g.pid)):
                    watched[f"{name}-writer{i}"] = pid
            pg: dict[str, int] = {}
            watch_database(pg, url)
            instance_of = {c: ("I1" if shards == 1 else f"I{i + 1}") for i, c in enumerate(CLIENTS)}
            plan = json.dumps({"phases": [{"name": "warmup", "orders": args.warmup, "window": args.window},
                                          {"name": "saturation", "orders": args.orders, "window": args.window}],
                               "drain_s": 30, "seed": 8})
            loads = {}
            for c in CLIENTS:
                port = ports["instances"][instance_of[c]]["acceptor_port"]
                loads[c] = spawn(f"load-{c}", [sys.executable, str(BENCH / "loadgen.py"), "--port", str(port),
                                               "--sender", c, "--plan", plan, "--out", str(work / f"{c}.json"),
                                               "--store", str(work / f"store-{c}")])
            # the CPU is sampled around the saturation phase: from when both clients finished warming up
            while not all("warmup:" in (work / f"load-{c}.log").read_text() for c in CLIENTS):
                if any(p.poll() is not None for p in loads.values()):
                    break
                time.sleep(0.02)
            watch_database(pg, url)
            before = {n: process_cpu(pid) or 0.0 for n, pid in {**watched, **pg}.items()}
            busy0, total0 = machine_cpu()
            with LockSampler(url) as locks:
                for p in loads.values():
                    p.wait(args.timeout)
            busy1, total1 = machine_cpu()
            after = {n: process_cpu(pid) or before[n] for n, pid in {**watched, **pg}.items()}
            top_ups = sum(_metric(p["http_port"], "fixgw_risk_budget_top_ups_total")
                          for p in ports["instances"].values())
            results = {c: json.loads((work / f"{c}.json").read_text()) for c in CLIENTS}
        finally:
            for p in reversed(procs):
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
            drop_database(server_url, url)
    phases = [next(ph for ph in r["phases"] if ph["name"] == "saturation") for r in results.values()]
    fatal = [r.get("fatal") for r in results.values() if r.get("fatal")]
    completed = sum(ph["completed"] for ph in phases)
    if fatal or completed != args.orders * len(CLIENTS):
        raise RuntimeError(f"mode {shards}: {completed} of {args.orders * len(CLIENTS)} orders completed; {fatal}")
    wall = (max(ph["done_end"] for ph in phases) - min(ph["t0"] for ph in phases)) / 1e9
    gw_cpu = sum(after[n] - before[n] for n in watched)
    pg_cpu = sum(after[n] - before[n] for n in pg)
    return {"shards": shards, "orders": completed, "wall_s": round(wall, 3), "orders_per_s": round(completed / wall, 1),
            "gateway_cpu_us_per_order": round(gw_cpu / completed * 1e6, 1),
            "database_cpu_us_per_order": round(pg_cpu / completed * 1e6, 1), "budget_top_ups": top_ups,
            "machine_busy": round((busy1 - busy0) / (total1 - total0), 3) if total1 > total0 else None,
            **locks.figures()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=3000, help="orders per client in the measured phase")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--window", type=int, default=16, help="orders in flight per client")
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--pg-url", default=DEFAULT_PG_URL, help="a PostgreSQL server (a database is made per run)")
    ap.add_argument("--smoke", action="store_true", help="60 orders a client, one cycle")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.smoke:
        args.orders, args.warmup, args.cycles, args.timeout = 60, 20, 1, 180
    runs: list[dict] = []
    for cycle in range(args.cycles):
        for shards in (1, 2):
            r = run_mode(shards, args, args.pg_url)
            r["cycle"] = cycle
            runs.append(r)
            print(f"cycle {cycle} mode {shards}: {r}", file=sys.stderr, flush=True)
    ratios = []
    for cycle in range(args.cycles):
        one, two = (next(r for r in runs if r["cycle"] == cycle and r["shards"] == n) for n in (1, 2))
        ratios.append({"throughput": two["orders_per_s"] / one["orders_per_s"],
                       "gateway_cpu_per_order": two["gateway_cpu_us_per_order"] / one["gateway_cpu_us_per_order"],
                       "database_cpu_per_order": (two["database_cpu_us_per_order"] / one["database_cpu_us_per_order"]
                                                  if one["database_cpu_us_per_order"] else None)})
    summary = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
               "args": {k: v for k, v in vars(args).items() if k != "out"}, "runs": runs,
               "median": {k: round(statistics.median(r[k] for r in ratios if r[k] is not None), 3)
                          for k in ratios[0] if any(r[k] is not None for r in ratios)}}
    lines = [f"machine: {summary['machine']}", "",
             "| mode | orders/s | gateway CPU µs/order | database CPU µs/order | budget top-ups | machine busy "
             "| advisory-lock wait (share of samples, mean waiters) |", "|---|---|---|---|---|---|---|"]
    for n in (1, 2):
        mine = [r for r in runs if r["shards"] == n]
        lines.append(f"| {n} shard(s) | {statistics.median(r['orders_per_s'] for r in mine):.0f} | "
                     f"{statistics.median(r['gateway_cpu_us_per_order'] for r in mine):.0f} | "
                     f"{statistics.median(r['database_cpu_us_per_order'] for r in mine):.0f} | "
                     f"{statistics.median(r['budget_top_ups'] for r in mine):.0f} | "
                     f"{statistics.median(r['machine_busy'] or 0 for r in mine):.0%} | "
                     f"{statistics.median(r['advisory_wait_share'] for r in mine):.1%}, "
                     f"{statistics.median(r['advisory_waiters_mean'] for r in mine):.3f} |")
    lines.append("")
    lines.append("2 shards / 1, median of per-cycle ratios: "
                 + ", ".join(f"{k} {v}" for k, v in summary["median"].items()))
    print("\n".join(lines))
    out = args.out or BENCH / "results" / f"scale-out-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
