"""End-to-end benchmark: the gateway against a bare executor and a bare forwarder, in one run.

Modes, interleaved within one invocation (A, B, C, P, A, B, C, P, ...) so machine
drift hits all of them alike:

  A  bench/executor.py: one quickfix acceptor that answers each order itself
     (one FIX hop, no routing, no journal). The floor.
  B  bench/forwarder.py: a pass-through forwarder, client acceptor in, one
     initiator per venue out, to the same venue processes as C. Two FIX hops and
     a hand-off thread; no risk, no journal, no order state beyond an id map. B
     against C isolates the gateway's own cost.
  C  `fixgw run`: the full gateway (the demo's risk rules with every check on,
     the throttle raised for a load test; router; SQLite journal; state log and
     spool) with two venue processes (bench/venue_probe.py: `fixgw venue-sim`'s
     simulator plus a receive stamp per order).
  P  as C, with the journal on PostgreSQL (a fresh database on --pg-url's server;
     left out with --pg-url "").
  S  (optional, --modes) as P, with the order-state log in that database too
     ([recovery] state_log = "database": group commit, each message sent once its
     record is committed). S against P in the same cycle is the per-order cost of
     durable state in PostgreSQL against the file state log (issue 20).
  W  (optional, --modes) as C, with the journal committed by a thread of the
     gateway process ([journal] writer = "thread") instead of its writer process.
  O  (optional, --modes, with --rev REV) as C, with the gateway (and its writer
     process) from another git revision, REV, exported with `git archive` and put
     first on PYTHONPATH; venues and load generator stay this tree's. C against O
     in the same cycle is a same-run measurement of what changed between the two.
  D  (optional, --modes) `fixgw demo`: gateway and simulators in one process.

Each run: warm-up, then open-loop phases at fixed rates (--rates, each
--duration seconds, latency from the intended send time), then one closed-loop
saturation phase with --window orders in flight. The order mix is
bench/workload.py. The load generator (bench/loadgen.py) is its own process.
After each run the messages are counted against both peers: in C and P every
MsgSeqNum each peer's FileStore says was sent on each session must be in the
gateway's journal once; in A and B the forwarder's / executor's counts must match
the client's and the venues'. Every figure of B, C and P is also given as a ratio
to A from the same cycle (the median over cycles of those ratios). With a
PostgreSQL database (P, S), the CPU of its backends (the server processes
serving the run's connections: the journal writer's, the state log committer's)
is sampled too, as pg0, pg1, ... (the server's shared background processes, WAL
writer and checkpointer, are not: other users of the server share them).

Run:     .venv/bin/python bench/throughput.py                 (about 10 minutes)
Smoke:   .venv/bin/python bench/throughput.py --smoke         (seconds; what the test runs)
Profile: add --profile (needs `pip install py-spy`): py-spy on C's gateway during
         the first cycle's saturation phase, top frames in the result.
Output:  bench/results/bench-<time>.json and .md (the markdown tables).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
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

import analyze  # noqa: E402
from ports import free_port  # noqa: E402,F401 - (saturation.py imports it from here)
import report  # noqa: E402
from revision import revision_tree  # noqa: E402,F401 - (tests/test_bench_smoke.py uses it from here)
from workload import REFERENCE_PRICES, VENUES, venue_sections  # noqa: E402

FIXGW = [sys.executable, "-m", "gateway.cli"]
MODE_NAMES = {
    "A": "A: bare quickfix executor (1 hop)",
    "B": "B: pass-through forwarder (2 hops)",
    "C": "C: fixgw run, SQLite journal",
    "P": "P: fixgw run, PostgreSQL journal",
    "S": "S: as P, state log in PostgreSQL",
    "W": "W: as C, journal written by a thread of the gateway",
    "O": "O: as C, gateway from --rev",
    "D": "D: fixgw demo (one process)",
}
CLIENT_KEY = "FIX.4.4:FIXGW->BENCH"


def child_pids(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def bench_rules(tmp: Path, tree: Path | None = None) -> Path:
    """The demo's risk rules, every check on, with a throttle a load test can pass, written into ``tmp``; those of
    ``tree`` (mode O's revision) when given, whose gateway may not know keys added since."""
    demo_rules = ((tree or ROOT) / "risk" / "demo_rules.toml").read_text()
    rules = tmp / "bench-rules.toml"
    rules.write_text(demo_rules.replace("throttle_msgs = 100 ", "throttle_msgs = 1000000 ")
                     .replace("throttle_logout_msgs = 200 ", "throttle_logout_msgs = 2000000 "))
    return rules


def bench_config(tmp: Path, journal_flush_ms: int | None = None, journal_writer: str = "process",
                 tree: Path | None = None, state_log: str = "file") -> tuple[Path, dict]:
    """The gateway configuration all modes share (ports, venues, symbols), and its ports."""
    ports = {"client": free_port(), "http": free_port(), "VENUE1": free_port(), "VENUE2": free_port()}
    rules = bench_rules(tmp, tree)
    refs = ", ".join(f"{s} = {p}" for s, p in REFERENCE_PRICES.items())
    venues = venue_sections(ports)
    recovery = f'[recovery]\nstate_log = "{state_log}"\n' if state_log != "file" else ""
    cfg = tmp / "bench-gateway.cfg"
    cfg.write_text(f"""
comp_id = "FIXGW"
data_dir = "var"
log_level = "INFO"
[acceptor]
port = {ports["client"]}
[http]
port = {ports["http"]}
[journal]
database_url = "sqlite:///var/journal.db"
{f"flush_interval_ms = {journal_flush_ms}" if journal_flush_ms is not None else ""}
writer = "{journal_writer}"
{recovery}[clients.BENCH]
fix_version = "FIX.4.4"
[risk]
rules_file = "{rules}"
reference_prices = {{ {refs} }}
""" + venues)
    return cfg, ports


@contextlib.contextmanager
def pg_database(server_url: str):
    """A fresh PostgreSQL database for one run, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"fixgw_bench_{os.getpid()}_{time.monotonic_ns() % 10**9}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Run:
    """The processes of one mode's run, their logs in the run's directory."""

    def __init__(self, mode: str, tmp: Path, database_url: str | None, journal_flush_ms: int | None = None,
                 gateway_tree: Path | None = None):
        self.mode, self.tmp = mode, tmp
        self.cfg, self.ports = bench_config(tmp, journal_flush_ms, "thread" if mode == "W" else "process",
                                            gateway_tree, "database" if mode == "S" else "file")
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.env.pop("FIXGW_DATABASE_URL", None)
        self.gateway_tree = gateway_tree
        if gateway_tree is not None:  # mode O: the gateway's packages from another revision, ahead of this tree's
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(gateway_tree), os.environ.get("PYTHONPATH")]))
        self.database_url = database_url
        if database_url:
            self.env["FIXGW_DATABASE_URL"] = database_url
        self.procs: dict[str, subprocess.Popen] = {}
        self.order: list[str] = []  # stop order: the system under test first, venues last

    def spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        out = open(self.tmp / f"{name}.log", "w")
        p = subprocess.Popen(cmd, cwd=self.tmp, env=self.env, stdout=out, stderr=subprocess.STDOUT, text=True)
        out.close()
        self.procs[name] = p
        self.order.insert(0, name)
        return p

    def wait_line(self, name: str, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        log = self.tmp / f"{name}.log"
        while time.monotonic() < deadline:
            if needle in log.read_text(errors="replace"):
                return
            if self.procs[name].poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{name} not ready ({needle!r} not seen); its log:\n{log.read_text()[-3000:]}")

    def wait_health(self, name: str, timeout: float = 40) -> None:
        url = f"http://127.0.0.1:{self.ports['http']}/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                break
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} not healthy within {timeout}s; its log:\n"
                           f"{(self.tmp / f'{name}.log').read_text()[-3000:]}")

    def start(self) -> None:
        mode, cfg = self.mode, str(self.cfg)
        if mode == "A":
            self.spawn("executor", [sys.executable, str(BENCH / "executor.py"), "--port", str(self.ports["client"]),
                                    "--target", "BENCH", "--stamps", str(self.tmp / "stamps-executor.json"),
                                    "--store", str(self.tmp / "executor-store")])
            self.wait_line("executor", "executor listening")
            return
        if mode == "D":
            subprocess.run([*FIXGW, "db", "upgrade", "-c", cfg], cwd=self.tmp, env=self.env, check=True,
                           capture_output=True)
            self.spawn("gateway", [*FIXGW, "demo", "-c", cfg])
            self.wait_health("gateway")
            return
        for venue in VENUES:
            self.spawn(venue, [sys.executable, str(BENCH / "venue_probe.py"), "-c", cfg, "--venue", venue,
                               "--stamps", str(self.tmp / f"stamps-{venue}.json")])
        for venue in VENUES:
            self.wait_line(venue, "venue-probe")
        if mode == "B":
            self.spawn("forwarder", [sys.executable, str(BENCH / "forwarder.py"), "-c", cfg,
                                     "--counts", str(self.tmp / "forwarder-counts.json"),
                                     "--store", str(self.tmp / "forwarder-store")])
            self.wait_line("forwarder", "forwarder ready")
            return
        if self.gateway_tree is not None:  # an editable install must not win over PYTHONPATH
            where = subprocess.run([sys.executable, "-c", "import gateway, routing; print(gateway.__file__, "
                                    "routing.__file__)"], cwd=self.tmp, env=self.env, capture_output=True, text=True,
                                   check=True).stdout.split()
            if not all(Path(w).is_relative_to(self.gateway_tree) for w in where):
                raise RuntimeError(f"mode O would not run the gateway from {self.gateway_tree}: {where}")
        subprocess.run([*FIXGW, "db", "upgrade", "-c", cfg], cwd=self.tmp, env=self.env, check=True,
                       capture_output=True)
        self.spawn("gateway", [*FIXGW, "run", "-c", cfg])
        self.wait_health("gateway")

    @property
    def sut(self) -> str:
        return {"A": "executor", "B": "forwarder"}.get(self.mode, "gateway")

    def watch(self) -> str:
        pids = {n: p.pid for n, p in self.procs.items()}
        if self.mode in ("C", "P", "S", "O"):  # the journal's writer process (gateway/journal/process.py) is the gateway's too
            for i, pid in enumerate(child_pids(self.procs["gateway"].pid)):
                pids[f"journal{i or ''}"] = pid
        return ",".join(f"{n}={pid}" for n, pid in pids.items())

    def stop(self) -> dict[str, int | None]:
        codes = {}
        for name in self.order:
            p = self.procs[name]
            if p.poll() is None:
                p.terminate()
            try:
                codes[name] = p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait()
        return codes


def load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def journal_seqs(run: Run) -> dict[tuple[str, str], list[int]]:
    """(session, direction) -> MsgSeqNums in the gateway's journal."""
    out: dict[tuple[str, str], list[int]] = {}
    query = "SELECT session_id, direction, seq_num FROM journal_messages"
    if run.database_url:
        from sqlalchemy import create_engine, text

        engine = create_engine(run.database_url)
        try:
            with engine.connect() as conn:
                rows = list(conn.execute(text(query)))
        finally:
            engine.dispose()
    else:
        with contextlib.closing(sqlite3.connect(run.tmp / "var" / "journal.db")) as db:
            rows = db.execute(query).fetchall()
    for sid, direction, seq in rows:
        out.setdefault((sid, direction), []).append(seq)
    return out


def completeness(run: Run, lg: dict) -> dict:
    """Messages each peer sent and received, against what the system under test recorded or forwarded."""
    import quickfix as fix

    from sessions.filestore import read_info

    lg_store = lg.get("store") or {}
    lg_app_sent = sum(lg.get("sent", {}).values())
    lg_app_received = sum(lg.get("received", {}).values())
    out: dict = {"client_app_sent": lg_app_sent, "client_app_received": lg_app_received, "checks": []}
    missing = 0

    def check(what: str, expected: int, seen: int, extra: int = 0) -> None:
        nonlocal missing
        gap = max(0, expected - seen)
        missing += gap
        out["checks"].append({"what": what, "expected": expected, "seen": seen, "missing": gap, "extra": extra})

    venues = {v: load_json(run.tmp / f"stamps-{v}.json") for v in VENUES}
    if run.mode in GATEWAY_MODES:
        seqs = journal_seqs(run)
        peers = {CLIENT_KEY: (lg_store.get("next_sender", 1) - 1, lg_store.get("next_target", 1) - 1)}
        for v, (version, *_rest) in VENUES.items():
            info = read_info(run.tmp / "var" / "venue-sim" / v, fix.SessionID(version, v, "FIXGW"))
            # the venue sent next_sender - 1 messages (our inbound) and received next_target - 1 (our outbound)
            peers[f"{version}:FIXGW->{v}"] = ((info.next_sender - 1, info.next_target - 1) if info else (0, 0))
        for key, (peer_sent, peer_received) in peers.items():
            for direction, expected in (("I", peer_sent), ("O", peer_received)):
                got = seqs.get((key, direction), [])
                distinct = set(got)
                present = len(distinct & set(range(1, expected + 1)))
                check(f"journal {key} {direction}", expected, present, extra=len(got) - len(distinct))
        out["journal_rows"] = sum(len(v) for v in seqs.values())
    elif run.mode == "B":
        fw = load_json(run.tmp / "forwarder-counts.json").get("counts", {})
        venue_in = sum(sum(v.get("received", {}).values()) for v in venues.values())
        venue_out = sum(v.get("sent") or 0 for v in venues.values())
        check("forwarder client in vs client sent", lg_app_sent, fw.get("client_in", 0))
        check("venues received vs forwarder sent", fw.get("venue_out", 0), venue_in)
        check("forwarder venue in vs venues sent", venue_out, fw.get("venue_in", 0))
        check("client received vs forwarder sent", fw.get("client_out", 0), lg_app_received)
    elif run.mode == "A":
        ex = load_json(run.tmp / "stamps-executor.json")
        check("executor received vs client sent", lg_app_sent, sum(ex.get("received", {}).values()))
    out["missing"] = missing
    return out


GATEWAY_MODES = ("C", "P", "S", "W", "O")  # modes whose system under test is `fixgw run`


def run_one(mode: str, cycle: int, args, plan: dict, profile_file: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"fixgw-bench-{mode}-") as d, \
            (pg_database(args.pg_url) if mode in ("P", "S") else contextlib.nullcontext()) as db_url:
        tmp = Path(d)
        run = Run(mode, tmp, db_url, args.journal_flush_ms, args.rev_tree if mode == "O" else None)
        result: dict = {"cycle": cycle, "mode": mode}
        try:
            run.start()
            cmd = [sys.executable, str(BENCH / "loadgen.py"), "--port", str(run.ports["client"]),
                   "--plan", json.dumps(plan), "--out", str(tmp / "loadgen.json"), "--store", str(tmp / "loadgen"),
                   "--watch", run.watch()]
            if mode in (*GATEWAY_MODES, "D"):
                cmd += ["--metrics-url", f"http://127.0.0.1:{run.ports['http']}/metrics"]
            if db_url:
                cmd += ["--watch-database", db_url]
            if profile_file is not None:
                cmd += ["--profile-pid", str(run.procs["gateway"].pid), "--py-spy", args.py_spy,
                        "--profile-flags", "--native --idle" if args.profile_wall else "--native --gil",
                        "--profile-out", str(profile_file)]
            lg_proc = subprocess.run(cmd, cwd=tmp, env=run.env, capture_output=True, text=True,
                                     timeout=args.run_timeout)
            if lg_proc.returncode != 0:
                raise RuntimeError(f"load generator failed ({lg_proc.returncode}):\n{lg_proc.stderr[-3000:]}")
        except Exception as exc:  # noqa: BLE001 - recorded; the other runs go on
            result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            result["exit_codes"] = run.stop()
        lg = load_json(tmp / "loadgen.json")
        if lg.get("fatal"):
            result["error"] = lg["fatal"]
        if not lg.get("phases"):
            result.setdefault("error", "no result from the load generator")
            for name in run.procs:
                result.setdefault("logs", {})[name] = (tmp / f"{name}.log").read_text(errors="replace")[-2000:]
            return result
        stamps: dict[str, int] = {}
        for f in tmp.glob("stamps-*.json"):
            stamps.update(load_json(f).get("stamps", {}))
        child = "cl_ord_id" if mode in ("A", "B") else "order_id" if mode in GATEWAY_MODES else None
        result["phases"] = {p["name"]: analyze.phase_figures(p, lg["row_fields"], stamps, child)
                            for p in lg["phases"]}
        result["client"] = {"errors": lg.get("errors", [])[:10], "error_count": lg.get("error_count", 0),
                            "sent": lg.get("sent"), "received": lg.get("received")}
        if mode != "D":
            result["completeness"] = completeness(run, lg)
        if mode in (*GATEWAY_MODES, "D"):
            errors = [line for line in (tmp / "gateway.log").read_text(errors="replace").splitlines()
                      if "level=error" in line or "level=critical" in line or "Traceback" in line]
            result["gateway_errors"] = errors[:10]
        return result


def make_plan(args) -> dict:
    phases = [{"name": "warmup", "rate": args.warmup_rate, "orders": args.warmup}]
    for rate in args.rates:
        phases.append({"name": f"rate-{rate:g}", "rate": rate, "orders": max(1, int(rate * args.duration))})
    if args.saturation_orders:
        phases.append({"name": "saturation", "window": args.window, "orders": args.saturation_orders})
    return {"phases": phases, "drain_s": args.drain, "seed": args.seed, "mix": args.mix}


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = f", {int(Path('/proc/meminfo').read_text().split()[1]) // 1024 // 1024} GiB"
    return (f"{platform.machine()} {model}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, "
            f"Linux {platform.release()}")


def load_average() -> list[float]:
    with contextlib.suppress(OSError):
        return [round(x, 2) for x in os.getloadavg()]
    return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="A,B,C,P", help="comma-separated, from A,B,C,P,S,W,O,D (order within a cycle)")
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--rates", default="250,500,1000,2000", help="open-loop rates, orders/s")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per open-loop rate")
    ap.add_argument("--warmup", type=int, default=1000, help="warm-up orders (not reported)")
    ap.add_argument("--warmup-rate", type=float, default=500.0)
    ap.add_argument("--saturation-orders", type=int, default=4000, help="closed-loop orders (0: no such phase)")
    ap.add_argument("--window", type=int, default=32, help="orders in flight in the closed-loop phase")
    ap.add_argument("--drain", type=float, default=30.0, help="seconds to wait for the last answers of a phase")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--mix", choices=("mix", "marketable"), default="mix",
                    help="order mix (bench/workload.py); marketable: marketable AAPL buys only")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                    help="PostgreSQL server for modes P and S (a database is created and dropped per run); '' drops "
                         "them")
    ap.add_argument("--journal-flush-ms", type=int, default=None,
                    help="the gateway's [journal] flush_interval_ms (default: the gateway's default)")
    ap.add_argument("--rev", default=None, help="git revision whose gateway mode O runs (e.g. main~3)")
    ap.add_argument("--profile", action="store_true", help="py-spy the gateway of C's first run (saturation)")
    ap.add_argument("--profile-wall", action="store_true",
                    help="with --profile: sample every thread all the time (--idle), not only the GIL holder")
    ap.add_argument("--run-timeout", type=float, default=900.0)
    ap.add_argument("--smoke", action="store_true",
                    help="tiny run to check the harness: A,B,C, 1 cycle, 60 orders at 200/s, 40 closed loop")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    ap.add_argument("--name", default=None, help="result file name (default bench-<time>)")
    if ap.parse_args(argv).smoke:  # other defaults; flags given explicitly still win
        ap.set_defaults(modes="A,B,C", cycles=1, rates="200", duration=0.3, warmup=20, warmup_rate=200.0,
                        saturation_orders=40, window=8, drain=15.0)
    args = ap.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    modes = [m.strip().upper() for m in args.modes.split(",") if m.strip()]
    if not args.pg_url:
        modes = [m for m in modes if m not in ("P", "S")]
    unknown = [m for m in modes if m not in MODE_NAMES]
    if unknown:
        ap.error(f"unknown mode(s) {unknown}")
    if ("O" in modes) != bool(args.rev):
        ap.error("mode O and --rev go together")
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if args.profile and not py_spy:
        ap.error("--profile needs py-spy (pip install py-spy)")
    args.py_spy = py_spy

    plan = make_plan(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    name = args.name or f"bench-{stamp}"
    command = "python bench/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    started = time.time()
    load_before = load_average()
    runs = []
    with revision_tree(args.rev) as args.rev_tree:
        for cycle in range(1, args.cycles + 1):
            for mode in modes:
                profile_file = (args.out / f"{name}-profile.txt" if (args.profile and mode == "C" and cycle == 1)
                                else None)
                t = time.monotonic()
                r = run_one(mode, cycle, args, plan, profile_file)
                runs.append(r)
                print(report.run_line(r, time.monotonic() - t), flush=True)
    summary = {
        "command": command, "machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                                                             time.localtime(started)),
        "seconds": round(time.time() - started), "load_average_before": load_before,
        "load_average_after": load_average(), "modes": modes, "mode_names": {m: MODE_NAMES[m] for m in modes},
        "plan": plan, "cycles": args.cycles, "rev": args.rev, "runs": runs, "aggregate": analyze.aggregate(runs, modes),
    }
    if args.profile:
        prof = args.out / f"{name}-profile.txt"
        if prof.exists():
            import profile_top

            summary["profile"] = {"file": str(prof), "wall": args.profile_wall, **profile_top.summarize(prof)}
    out = args.out / f"{name}.json"
    out.write_text(json.dumps(summary, indent=1))
    md = report.markdown(summary)
    (args.out / f"{name}.md").write_text(md)
    print()
    print(md)
    print(f"result files: {out} and {out.with_suffix('.md')}")
    failed = [r for r in runs if r.get("error") or (r.get("completeness") or {}).get("missing")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
