"""Closed-loop saturation and one-in-flight latency, including drop copies (R) and TLS (T).

The first harness; bench/throughput.py (open-loop rates, the order mix, mode B,
HdrHistogram, completeness) is the main one now. This one is kept for the modes
it alone has: R (every client report drop-copied to a receiver) and T (the
client session over TLS), whose figures docs/performance.md reports.

Modes, interleaved within one run (A, C, D, A, C, D, ...) so machine drift hits all:
  A  bench/executor.py: one quickfix acceptor that acks and fills each order itself
     (the floor: one FIX hop, no routing, no journal).
  C  `fixgw run` (SQLite journal on, the demo's risk rules with every check on but
     a throttle a load test can pass) with two `fixgw venue-sim` processes: the
     gateway's real topology, venues outside its process.
  P  as C, with the journal on PostgreSQL (a fresh database on --pg-url's server;
     skipped with --pg-url "").
  R  as C, with a drop-copy session (FIX.4.4, every client-side report) and its
     receiver logged on in this process: the cost of copying every report, and
     the copy's lag behind the client's own report (Fill received -> copy received).
  D  `fixgw demo`: the same, all in one process, as a newcomer runs it.
  T  as C, with the client's session over TLS (1.3, client certificate verified): the gateway's
     TLS terminator in front of its acceptor, and a client-side terminator (gateway/security/tls.py) in
     this process in front of the load client, as a real client's TLS stack would be. Venue
     sessions stay plaintext. Compare T with C (same run) for the cost of TLS.
This process is the load generator: one FIX.4.4 client. Every order is a
marketable limit buy of 100 AAPL that fills at once; an order is done when its
Fill (39=2) arrives.
  - throughput: closed loop with --window orders in flight (saturation);
  - latency: one order in flight, client send -> Fill, p50 and p99.
All processes share this machine's cores (2 here), load generator included.

Run:  .venv/bin/python bench/saturation.py --modes C,R,T --pg-url ""   (a few minutes)
Output: a table on stdout and bench/results/throughput-<time>.json
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
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

from sessions.codec.tagvalue import utc_timestamp  # noqa: E402
from sessions.fixsettings import build_settings, dictionary_settings, graceful_stop, session_id  # noqa: E402
from throughput import bench_rules, free_port, pg_database  # noqa: E402  (bench/ is on sys.path when run as a script)


class _Client(fix.Application):
    """A test initiator's quickfix callbacks: logon state only; subclasses read fromApp."""

    def __init__(self):
        super().__init__()
        self.logged_on = threading.Event()

    def onCreate(self, sid): pass
    def onLogon(self, sid): self.logged_on.set()
    def onLogout(self, sid): self.logged_on.clear()
    def toAdmin(self, msg, sid): pass
    def fromAdmin(self, msg, sid): pass
    def toApp(self, msg, sid): pass


class LoadApp(_Client):
    def __init__(self):
        super().__init__()
        self.done = 0
        self.window: threading.Semaphore | None = None
        self.all_done = threading.Event()
        self.target = 0
        self.rejected = 0
        self.fill_ns: list[int] = []
        self.fill_at: dict[str, int] = {}  # ClOrdID -> when its Fill arrived (latency burst only)
        self.track = False

    def fromApp(self, msg, sid):
        try:
            status = msg.getField(39)
            if status == "2" or status == "8":
                if status == "8":
                    self.rejected += 1
                else:
                    now = time.perf_counter_ns()
                    self.fill_ns.append(now)
                    if self.track:
                        self.fill_at[msg.getField(11)] = now
                self.done += 1
                self.window.release()
                if self.done >= self.target:
                    self.all_done.set()
        except Exception:  # noqa: BLE001
            pass


class CopyReceiver(_Client):
    """A drop-copy receiver: counts the copies and notes when each Fill copy arrived."""

    def __init__(self):
        super().__init__()
        self.copies = 0
        self.fill_at: dict[str, int] = {}

    def fromApp(self, msg, sid):
        try:
            self.copies += 1
            if msg.getField(39) == "2":
                self.fill_at[msg.getField(11)] = time.perf_counter_ns()
        except Exception:  # noqa: BLE001
            pass


def run_load(port: int, sender: str, n_orders: int, window: int, warmup: int, tmp: Path,
             latency_orders: int = 0, dropcopy_port: int | None = None) -> dict:
    sid = session_id("FIX.4.4", sender, "FIXGW")
    settings = build_settings("initiator", tmp / f"load-{sender}-{port}", [(sid, "FIX.4.4", {
        "SocketConnectHost": "127.0.0.1", "SocketConnectPort": str(port), "ReconnectInterval": "1"})])
    app = LoadApp()
    if dropcopy_port is not None:
        dc_sid = session_id("FIX.4.4", "DC44", "FIXGW")
        settings.set(dc_sid, _session_dict({**dictionary_settings("FIX.4.4"), "ConnectionType": "initiator",
                                            "SocketConnectHost": "127.0.0.1",
                                            "SocketConnectPort": str(dropcopy_port), "ReconnectInterval": "1"}))
    rx = CopyReceiver()
    engine = fix.SocketInitiator(_Router(app, rx), fix.FileStoreFactory(settings), settings,
                                 fix.ScreenLogFactory(False, False, False))
    engine.start()
    try:
        if not app.logged_on.wait(20):
            raise RuntimeError(f"load client could not log on to port {port}")
        if dropcopy_port is not None and not rx.logged_on.wait(20):
            raise RuntimeError(f"drop-copy receiver could not log on to port {dropcopy_port}")

        def burst(count: int, prefix: str, window: int = window) -> float:
            app.done = 0
            app.target = count
            app.all_done.clear()
            app.fill_ns.clear()
            app.window = threading.Semaphore(window)
            start = time.perf_counter()
            for i in range(count):
                if not app.window.acquire(timeout=30):
                    raise RuntimeError(f"no fill for 30 s ({app.done}/{count} done)")
                sent_ns.append(time.perf_counter_ns())
                msg = fix.Message()
                msg.getHeader().setField(35, "D")
                msg.setField(11, f"{prefix}{i}")
                msg.setField(21, "1")
                msg.setField(55, "AAPL")
                msg.setField(54, "1")
                msg.setField(60, utc_timestamp())
                # varied so no two orders within the risk chain's 1 s duplicate window are alike:
                # 4,000 (qty, price) pairs, all marketable at the best ask and inside the price band
                n = next(order_seq)
                msg.setField(38, str(100 + n % 100))
                msg.setField(40, "2")
                msg.setField(44, f"190.{5 + (n // 100) % 40:02d}")
                fix.Session.sendToTarget(msg, sid)
            if not app.all_done.wait(60):
                raise RuntimeError(f"only {app.done}/{count} fills within 60 s")
            return count / (time.perf_counter() - start)

        sent_ns: list[int] = []
        order_seq = itertools.count()
        burst(warmup, f"W{time.monotonic_ns()}-")
        rate = burst(n_orders, f"M{time.monotonic_ns()}-")
        result = {"orders_per_s": round(rate, 1), "rejected": app.rejected}
        if latency_orders:
            sent_ns.clear()
            app.track = True
            burst(latency_orders, f"L{time.monotonic_ns()}-", window=1)
            lat = sorted((f - s) / 1000 for s, f in zip(sent_ns, app.fill_ns))
            result["latency_us_p50"] = round(lat[len(lat) // 2])
            result["latency_us_p99"] = round(lat[min(len(lat) - 1, int(len(lat) * 0.99))])
        if dropcopy_port is not None:
            # every report copied: 3 per order (PendingNew, New, Fill)
            expected = 3 * (warmup + n_orders + latency_orders)
            deadline = time.monotonic() + 30
            while rx.copies < expected and time.monotonic() < deadline:
                time.sleep(0.05)
            result["copies"] = rx.copies
            result["copies_expected"] = expected
            lag = sorted((rx.fill_at[c] - t) / 1000 for c, t in app.fill_at.items() if c in rx.fill_at)
            if lag:
                result["copy_lag_us_p50"] = round(lag[len(lag) // 2])
                result["copy_lag_us_p99"] = round(lag[min(len(lag) - 1, int(len(lag) * 0.99))])
        return result
    finally:
        graceful_stop(engine, [sid] + ([session_id("FIX.4.4", "DC44", "FIXGW")] if dropcopy_port else []), 2.0)


class _Router(fix.Application):
    """One initiator, two sessions: the load client's and the drop-copy receiver's."""

    def __init__(self, load: LoadApp, rx: CopyReceiver):
        super().__init__()
        self._load, self._rx = load, rx

    def _app(self, sid):
        return self._rx if sid.getSenderCompID().getValue() == "DC44" else self._load

    def onCreate(self, sid): pass
    def onLogon(self, sid): self._app(sid).onLogon(sid)
    def onLogout(self, sid): self._app(sid).onLogout(sid)
    def toAdmin(self, msg, sid): pass
    def fromAdmin(self, msg, sid): pass
    def toApp(self, msg, sid): pass
    def fromApp(self, msg, sid): self._app(sid).fromApp(msg, sid)


def _session_dict(values: dict[str, str]) -> fix.Dictionary:
    d = fix.Dictionary()
    for k, v in values.items():
        d.setString(k, str(v))
    return d


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


def make_certs(tmp: Path):
    from tests.tls_certs import make_pki

    return make_pki(tmp / "pki")


def demo_config(tmp: Path, port: int, dropcopy_port: int | None = None, tls=None) -> Path:
    v1, v2 = free_port(), free_port()
    rules = bench_rules(tmp)
    cfg = tmp / "bench-gateway.cfg"
    cfg.write_text(f"""
comp_id = "FIXGW"
data_dir = "var"
log_level = "INFO"
[acceptor]
port = {port}
[http]
port = {free_port()}
[journal]
database_url = "sqlite:///var/journal.db"
[clients.BENCH]
fix_version = "FIX.4.4"
{f'tls = {{ cert = "{tls.server.cert}", key = "{tls.server.key}", client_ca = "{tls.ca}", verify_client = true }}'
 if tls else ""}
[risk]
rules_file = "{rules}"
reference_prices = {{ AAPL = 190.00 }}
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
""" + (f"""
[dropcopy]
port = {dropcopy_port}
[dropcopy.sessions.DC44]
fix_version = "FIX.4.4"
""" if dropcopy_port else ""))
    return cfg


FIXGW = [sys.executable, "-m", "gateway.cli"]


@contextlib.contextmanager
def _no_database():
    yield None


def wait_for_line(proc: subprocess.Popen, stream, needles: set[str], timeout: float = 30) -> None:
    """Read ``stream`` until every needle was seen, then keep draining it in the background."""
    deadline = time.monotonic() + timeout
    missing = set(needles)
    for line in stream:
        missing = {n for n in missing if n not in line}
        if not missing:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"not seen within {timeout}s: {missing}")
    threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()


def start_sut(mode: str, tmp: Path, database_url: str | None = None, dropcopy_port: int | None = None,
              tls=None) -> tuple[list[subprocess.Popen], int]:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FIXGW_DATABASE_URL", None)
    if database_url:
        env["FIXGW_DATABASE_URL"] = database_url
    procs: list[subprocess.Popen] = []

    def spawn(cmd, **kw) -> subprocess.Popen:
        p = subprocess.Popen(cmd, cwd=tmp, env=env, text=True, **kw)
        procs.append(p)
        return p

    if mode == "A":
        gw = spawn([sys.executable, str(ROOT / "bench" / "executor.py"), "--port", str(port), "--target", "BENCH"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elif mode in ("C", "P", "R", "T"):
        cfg = str(demo_config(tmp, port, dropcopy_port, tls if mode == "T" else None))
        subprocess.run([*FIXGW, "db", "upgrade", "-c", cfg], cwd=tmp, env=env, check=True, capture_output=True)
        for venue in ("VENUE1", "VENUE2"):
            spawn([*FIXGW, "venue-sim", "-c", cfg, "--venue", venue], stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL)
        gw = spawn([*FIXGW, "run", "-c", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_line(gw, gw.stderr, {"session logged on: VENUE1", "session logged on: VENUE2"})
    else:
        gw = spawn([*FIXGW, "demo", "-c", str(demo_config(tmp, port))], stdout=subprocess.PIPE,
                   stderr=subprocess.DEVNULL)
        wait_for_line(gw, gw.stdout, {"fixgw demo is running"})  # printed once the venues are logged on
    wait_port(port, gw)
    return procs, port


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=3000, help="measured orders per run")
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--window", type=int, default=32, help="orders in flight (closed loop)")
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--latency-orders", type=int, default=500, help="orders sent one at a time for latency")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                    help="PostgreSQL server for mode P (a database is created and dropped per run)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--modes", default=None, help="comma-separated subset, e.g. A,C,R,T (A is always run; T, the client over TLS, only when named)")
    args = ap.parse_args()

    modes = ("A", "C", "P", "R", "D") if args.pg_url else ("A", "C", "R", "D")
    if args.modes:
        wanted = {"A", *args.modes.split(",")}
        modes = tuple(m for m in ("A", "C", "P", "R", "T", "D") if m in wanted and (m != "P" or args.pg_url))
    results: list[dict] = []
    for cycle in range(1, args.cycles + 1):
        for mode in modes:
            with tempfile.TemporaryDirectory(prefix=f"fixgw-bench-{mode}-") as d, \
                    (pg_database(args.pg_url) if mode == "P" else _no_database()) as db_url:
                tmp = Path(d)
                dc_port = free_port() if mode == "R" else None
                pki = make_certs(tmp) if mode == "T" else None
                procs, port = start_sut(mode, tmp, db_url, dc_port, pki)
                client_tls = None
                try:
                    if pki is not None:  # the load client speaks TLS through a client-side terminator
                        from gateway.security.auth import PeerBook
                        from gateway.security.tls import TlsTerminator, client_context

                        client_tls = TlsTerminator(PeerBook()).start()
                        port = client_tls.connect_out("load", "127.0.0.1", port, client_context(
                            pki.ca, pki.client.cert, pki.client.key), "localhost")
                    r = run_load(port, "BENCH", args.orders, args.window, args.warmup, tmp, args.latency_orders,
                                 dc_port)
                finally:
                    if client_tls is not None:
                        client_tls.stop()
                    for p in reversed(procs):
                        p.terminate()
                        try:
                            p.wait(20)
                        except subprocess.TimeoutExpired:
                            p.kill()
            results.append({"cycle": cycle, "mode": mode, **r})
            print(f"cycle {cycle} mode {mode}: {r}", flush=True)

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results if r["mode"] == mode)

    def ratio(mode: str, key: str) -> float:
        """Median over cycles of (mode / A) within the same cycle."""
        per_cycle = [next(r[key] for r in results if r["cycle"] == c and r["mode"] == mode) /
                     next(r[key] for r in results if r["cycle"] == c and r["mode"] == "A")
                     for c in range(1, args.cycles + 1)]
        return round(statistics.median(per_cycle), 3)

    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"
    keys = ("orders_per_s", "latency_us_p50", "latency_us_p99")
    summary = {
        "command": "python bench/saturation.py " + " ".join(sys.argv[1:]),
        "machine": machine,
        "orders": args.orders, "window": args.window, "cycles": args.cycles, "latency_orders": args.latency_orders,
        "runs": results,
        "median": {m: {k: med(m, k) for k in keys} for m in modes},
        "ratio_to_A": {m: {k: ratio(m, k) for k in keys} for m in modes if m != "A"},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"saturation-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(summary, indent=2))
    if "C" in modes and "T" in modes:  # the cost of TLS: T against C, cycle by cycle
        summary["ratio_T_to_C"] = {k: round(statistics.median(
            next(r[k] for r in results if r["cycle"] == c and r["mode"] == "T") /
            next(r[k] for r in results if r["cycle"] == c and r["mode"] == "C")
            for c in range(1, args.cycles + 1)), 3) for k in keys}
        out.write_text(json.dumps(summary, indent=2))
    names = {"A": "A: bare quickfix executor", "C": "C: fixgw run + 2 venue-sim processes",
             "P": "P: as C, journal on PostgreSQL", "R": "R: as C, every report drop-copied to a receiver",
             "D": "D: fixgw demo (one process)",
             "T": "T: as C, client session over TLS"}
    print()
    print("| mode | orders/s (median) | vs A | send→Fill p50 µs | vs A | p99 µs | vs A |")
    print("|---|---|---|---|---|---|---|")
    for m in modes:
        md = summary["median"][m]
        rt = summary["ratio_to_A"].get(m, {k: 1.0 for k in keys})
        print(f"| {names[m]} | {md['orders_per_s']:.0f} | {rt['orders_per_s']:.2f} | {md['latency_us_p50']:.0f} | "
              f"{rt['latency_us_p50']:.2f} | {md['latency_us_p99']:.0f} | {rt['latency_us_p99']:.2f} |")
    if "R" in modes:
        for k in ("copy_lag_us_p50", "copy_lag_us_p99"):
            summary["median"]["R"][k] = med("R", k)
        print(f"\nR: copies received {[r['copies'] for r in results if r['mode'] == 'R']} of "
              f"{[r['copies_expected'] for r in results if r['mode'] == 'R']} expected; copy lag behind the "
              f"client's Fill p50 {summary['median']['R']['copy_lag_us_p50']:.0f} µs, "
              f"p99 {summary['median']['R']['copy_lag_us_p99']:.0f} µs")
        out.write_text(json.dumps(summary, indent=2))
    if "ratio_T_to_C" in summary:
        print(f"\nTLS cost, T / C per cycle (median): {summary['ratio_T_to_C']}")
    print(f"\nmachine: {machine}\nresult file: {out}")


if __name__ == "__main__":
    main()
