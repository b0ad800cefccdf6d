"""First throughput figure: orders/s end to end, gateway vs a bare quickfix executor.

Modes, interleaved within one run (A, C, A, C, ...) so machine drift hits both:
  A  bench/executor.py: one quickfix acceptor that acks and fills each order itself.
  C  `fixgw demo`: the gateway (SQLite journal on) with its two venue simulators.
Each system under test runs in its own process; this process is the load
generator: one FIX.4.4 client, closed loop with a fixed number of orders in
flight. An order counts as done when its Fill (39=2) arrives. Every order is a
marketable limit buy of 100 AAPL, which the venue simulator fills at once.

Run:  .venv/bin/python bench/throughput.py            (about a minute)
Output: a table on stdout and bench/results/throughput-<time>.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import quickfix as fix

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sessions.codec import utc_timestamp  # noqa: E402
from sessions.fixsettings import build_settings, graceful_stop, session_id  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoadApp(fix.Application):
    def __init__(self):
        super().__init__()
        self.logged_on = threading.Event()
        self.done = 0
        self.window: threading.Semaphore | None = None
        self.all_done = threading.Event()
        self.target = 0

    def onCreate(self, sid): pass
    def onLogon(self, sid): self.logged_on.set()
    def onLogout(self, sid): self.logged_on.clear()
    def toAdmin(self, msg, sid): pass
    def fromAdmin(self, msg, sid): pass
    def toApp(self, msg, sid): pass

    def fromApp(self, msg, sid):
        try:
            if msg.getField(39) == "2":
                self.done += 1
                self.window.release()
                if self.done >= self.target:
                    self.all_done.set()
        except Exception:  # noqa: BLE001
            pass


def run_load(port: int, sender: str, n_orders: int, window: int, warmup: int, tmp: Path) -> float:
    sid = session_id("FIX.4.4", sender, "FIXGW")
    settings = build_settings("initiator", tmp / f"load-{sender}-{port}", [(sid, "FIX.4.4", {
        "SocketConnectHost": "127.0.0.1", "SocketConnectPort": str(port), "ReconnectInterval": "1"})])
    app = LoadApp()
    engine = fix.SocketInitiator(app, fix.FileStoreFactory(settings), settings, fix.ScreenLogFactory(False, False, False))
    engine.start()
    try:
        if not app.logged_on.wait(20):
            raise RuntimeError(f"load client could not log on to port {port}")

        def burst(count: int, prefix: str) -> float:
            app.done = 0
            app.target = count
            app.all_done.clear()
            app.window = threading.Semaphore(window)
            start = time.perf_counter()
            for i in range(count):
                if not app.window.acquire(timeout=30):
                    raise RuntimeError(f"no fill for 30 s ({app.done}/{count} done)")
                msg = fix.Message()
                msg.getHeader().setField(35, "D")
                msg.setField(11, f"{prefix}{i}")
                msg.setField(21, "1")
                msg.setField(55, "AAPL")
                msg.setField(54, "1")
                msg.setField(60, utc_timestamp())
                msg.setField(38, "100")
                msg.setField(40, "2")
                msg.setField(44, "190.05")
                fix.Session.sendToTarget(msg, sid)
            if not app.all_done.wait(60):
                raise RuntimeError(f"only {app.done}/{count} fills within 60 s")
            return count / (time.perf_counter() - start)

        burst(warmup, f"W{time.monotonic_ns()}-")
        return burst(n_orders, f"M{time.monotonic_ns()}-")
    finally:
        graceful_stop(engine, [sid], 2.0)


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"system under test exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} not open after {timeout}s")


def demo_config(tmp: Path, port: int) -> Path:
    v1, v2 = free_port(), free_port()
    cfg = tmp / "bench-gateway.cfg"
    cfg.write_text(f"""
comp_id = "FIXGW"
data_dir = "var"
log_level = "WARNING"
[acceptor]
port = {port}
[journal]
database_url = "sqlite:///var/journal.db"
[clients.BENCH]
fix_version = "FIX.4.4"
[venues.VENUE1]
fix_version = "FIX.4.4"
port = {v1}
symbols = ["AAPL"]
reconnect_s = 1
[venues.VENUE1.simulator]
prices = {{ AAPL = 190.00 }}
[venues.VENUE2]
fix_version = "FIX.4.2"
port = {v2}
symbols = ["AAPL"]
reconnect_s = 1
[venues.VENUE2.simulator]
prices = {{ AAPL = 190.02 }}
""")
    return cfg


def start_sut(mode: str, tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FIXGW_DATABASE_URL", None)
    if mode == "A":
        cmd = [sys.executable, str(ROOT / "bench" / "executor.py"), "--port", str(port), "--target", "BENCH"]
    else:
        cfg = demo_config(tmp, port)
        cmd = [sys.executable, "-m", "gateway.cli", "demo", "-c", str(cfg)]
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if mode == "C":
        for line in proc.stdout:  # the banner is printed once the venues are logged on
            if "fixgw demo is running" in line:
                break
    wait_port(port, proc)
    return proc, port


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=3000, help="measured orders per run")
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--window", type=int, default=32, help="orders in flight (closed loop)")
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()

    results: list[dict] = []
    for cycle in range(1, args.cycles + 1):
        for mode in ("A", "C"):
            with tempfile.TemporaryDirectory(prefix=f"fixgw-bench-{mode}-") as d:
                tmp = Path(d)
                proc, port = start_sut(mode, tmp)
                try:
                    rate = run_load(port, "BENCH", args.orders, args.window, args.warmup, tmp)
                finally:
                    proc.terminate()
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
            results.append({"cycle": cycle, "mode": mode, "orders_per_s": round(rate, 1)})
            print(f"cycle {cycle} mode {mode}: {rate:8.1f} orders/s", flush=True)

    by_cycle = {}
    for r in results:
        by_cycle.setdefault(r["cycle"], {})[r["mode"]] = r["orders_per_s"]
    ratios = [c["C"] / c["A"] for c in by_cycle.values()]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"
    summary = {
        "command": "python bench/throughput.py " + " ".join(sys.argv[1:]),
        "machine": machine,
        "orders": args.orders, "window": args.window, "cycles": args.cycles,
        "runs": results,
        "median_A": statistics.median(c["A"] for c in by_cycle.values()),
        "median_C": statistics.median(c["C"] for c in by_cycle.values()),
        "median_ratio_C_to_A": round(statistics.median(ratios), 3),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"throughput-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(summary, indent=2))
    print()
    print("| cycle | A: bare quickfix executor (orders/s) | C: fixgw demo (orders/s) | C / A |")
    print("|---|---|---|---|")
    for cycle, c in by_cycle.items():
        print(f"| {cycle} | {c['A']:.0f} | {c['C']:.0f} | {c['C'] / c['A']:.2f} |")
    print(f"| median | {summary['median_A']:.0f} | {summary['median_C']:.0f} | {summary['median_ratio_C_to_A']:.2f} |")
    print(f"\nmachine: {machine}\nresult file: {out}")


if __name__ == "__main__":
    main()
