"""The load generator: one FIX.4.4 client (SenderCompID BENCH, or --sender) that runs a plan of load phases.

Run by bench/throughput.py as its own process, so its threads never share a GIL
with the orchestrator's. Phases, in order:

- open loop at a fixed rate: order k has the intended send time t0 + k / rate;
  the sender thread sleeps until then (never spins: the machine has 2 cores)
  and sends. Latencies are measured from the intended time, so a sender or a
  system that falls behind shows in them (no coordinated omission); a send more
  than 1 ms after its intended time is a late send.
- closed loop ("window"): at most ``window`` orders in flight; an order leaves
  the window when it reaches its final state. Latency from the actual send.

Each order follows bench/workload.py: resting orders (kind R) are replaced as
soon as their New arrives and canceled as soon as the Replaced arrives, from the
session's callback, so those follow-ups are timed from when they were triggered.

Every time stamp is ``time.perf_counter_ns()``: CLOCK_MONOTONIC, one clock for
every process on the machine, so the venues' receive stamps compare with ours.

Output (``--out``): JSON with, per phase, one row per order (see ``Order.row``),
the gateway's /metrics text before and after (``--metrics-url``), the CPU time of
the watched processes and of the whole machine before and after, and the
client's message counts and FileStore sequence numbers at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import quickfix as fix

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workload import Mix, Spec  # noqa: E402

from sessions.codec.tagvalue import utc_timestamp  # noqa: E402
from sessions.filestore import read_info  # noqa: E402
from sessions.fixsettings import build_settings, graceful_stop, session_id  # noqa: E402

SOH = "\x01"
pc = time.perf_counter_ns
CLK_TCK = os.sysconf("SC_CLK_TCK")


def field(raw: str, tag: str) -> str | None:
    """The value of the first ``tag`` ("<SOH>35=") in a raw message, or None."""
    i = raw.find(tag)
    if i < 0:
        return None
    i += len(tag)
    j = raw.find(SOH, i)
    return raw[i:j] if j >= 0 else raw[i:]


F11, F35, F37, F39, F150 = (f"{SOH}{t}=" for t in (11, 35, 37, 39, 150))


class Order:
    __slots__ = ("cl", "spec", "intended", "sent", "ack", "new", "fill", "rej", "rep_sent", "replaced",
                 "cxl_sent", "canceled", "fills", "oid", "err", "done", "phase")

    def __init__(self, cl: str, spec: Spec, phase: "Phase"):
        self.cl = cl
        self.spec = spec
        self.phase = phase
        self.intended = self.sent = self.ack = self.new = self.fill = self.rej = 0
        self.rep_sent = self.replaced = self.cxl_sent = self.canceled = self.done = 0
        self.fills = 0
        self.oid = ""
        self.err = ""

    def row(self) -> list:
        return [self.spec.kind, self.cl, self.oid, self.intended, self.sent, self.ack, self.new, self.fill, self.rej,
                self.rep_sent, self.replaced, self.cxl_sent, self.canceled, self.done, self.fills, self.err]


ROW_FIELDS = ["kind", "cl_ord_id", "order_id", "intended", "sent", "ack", "new", "fill", "rej", "rep_sent", "replaced",
              "cxl_sent", "canceled", "done", "fills", "err"]


class Phase:
    def __init__(self, name: str, orders: int, rate: float = 0.0, window: int = 0):
        self.name, self.n, self.rate, self.window = name, orders, rate, window
        self.orders: list[Order] = []
        self.completed = 0
        self.all_done = threading.Event()
        self.sem = threading.Semaphore(window) if window else None
        self.t0 = self.sent_end = self.done_end = 0
        self.extra: dict = {}


class LoadApp(fix.Application):
    def __init__(self):
        super().__init__()
        self.logged_on = threading.Event()
        self.sid: fix.SessionID | None = None
        self.by_cl: dict[str, Order] = {}
        self.sent_main: dict[str, int] = {}  # MsgType -> sent by the sender thread
        self.sent_cb: dict[str, int] = {}  # MsgType -> sent from the callback (follow-ups)
        self.received: dict[str, int] = {}  # "35/150" -> received
        self.errors: list[str] = []
        self.error_count = 0

    def _error(self, text: str) -> None:
        self.error_count += 1
        if len(self.errors) < 50:
            self.errors.append(text)

    def onCreate(self, sid): pass

    def onLogon(self, sid):
        self.sid = sid
        self.logged_on.set()

    def onLogout(self, sid): self.logged_on.clear()
    def toAdmin(self, msg, sid): pass
    def toApp(self, msg, sid): pass

    def fromAdmin(self, msg, sid):
        try:
            raw = msg.toString()
            if field(raw, F35) == "3":
                self._error("session Reject: " + raw.replace(SOH, "|"))
        except BaseException as exc:  # noqa: BLE001 - nothing may reach quickfix
            self._error(f"fromAdmin: {exc!r}")

    def fromApp(self, msg, sid):
        now = pc()
        try:
            self._on_app(msg.toString(), now)
        except BaseException as exc:  # noqa: BLE001 - nothing may reach quickfix
            self._error(f"fromApp: {exc!r}")

    def _on_app(self, raw: str, now: int) -> None:
        mt = field(raw, F35)
        if mt != "8":
            key = mt or "?"
            self.received[key] = self.received.get(key, 0) + 1
            self._error(f"unexpected MsgType {mt}: " + raw.replace(SOH, "|"))
            if mt == "9":
                o = self.by_cl.get(field(raw, F11) or "")
                if o is not None:
                    self._done(o, now, "cancel reject")
            return
        et = field(raw, F150)
        key = f"8/{et}"
        self.received[key] = self.received.get(key, 0) + 1
        o = self.by_cl.get(field(raw, F11) or "")
        if o is None:
            self._error("report for an unknown ClOrdID: " + raw.replace(SOH, "|"))
            return
        if not o.ack:
            o.ack = now
            o.oid = field(raw, F37) or ""
        if et == "0":
            if not o.new:
                o.new = now
                if o.spec.kind == "R":
                    self._send_follow_up(o, "G")
        elif et == "F" or et == "1" or et == "2":
            o.fills += 1
            if field(raw, F39) == "2":
                o.fill = now
                self._done(o, now)
        elif et == "5":
            o.replaced = now
            self._send_follow_up(o, "F")
        elif et == "4":
            o.canceled = now
            self._done(o, now)
        elif et == "8":
            o.rej = now
            self._done(o, now, "" if o.spec.kind == "X" else "rejected")

    def _done(self, o: Order, now: int, err: str = "") -> None:
        if o.done:
            return
        o.done = now
        if err:
            o.err = err
            self._error(f"{o.cl}: {err}")
        p = o.phase
        p.completed += 1
        p.done_end = now
        if p.sem is not None:
            p.sem.release()
        if p.completed >= p.n:
            p.all_done.set()

    def _send_follow_up(self, o: Order, mt: str) -> None:
        s = o.spec
        if mt == "G":
            cl, orig = o.cl + ".r", o.cl
            text = (f"35=G{SOH}41={orig}{SOH}11={cl}{SOH}21=1{SOH}55={s.symbol}{SOH}54=1{SOH}60={utc_timestamp()}{SOH}"
                    f"38={s.replace_qty}{SOH}40=2{SOH}44={s.price}{SOH}59=0{SOH}")
        else:
            cl, orig = o.cl + ".c", o.cl + ".r"
            text = (f"35=F{SOH}41={orig}{SOH}11={cl}{SOH}55={s.symbol}{SOH}54=1{SOH}60={utc_timestamp()}{SOH}"
                    f"38={s.replace_qty}{SOH}")
        self.by_cl[cl] = o
        msg = fix.Message(text, False)
        t = pc()
        if mt == "G":
            o.rep_sent = t
        else:
            o.cxl_sent = t
        fix.Session.sendToTarget(msg, self.sid)
        self.sent_cb[mt] = self.sent_cb.get(mt, 0) + 1

    # ---------------------------------------------------------------- sender thread
    def send_new(self, o: Order) -> None:
        s = o.spec
        msg = fix.Message(f"35=D{SOH}11={o.cl}{SOH}21=1{SOH}55={s.symbol}{SOH}54=1{SOH}60={utc_timestamp()}{SOH}"
                          f"38={s.qty}{SOH}40=2{SOH}44={s.price}{SOH}59=0{SOH}", False)
        self.by_cl[o.cl] = o
        o.sent = pc()
        fix.Session.sendToTarget(msg, self.sid)
        self.sent_main["D"] = self.sent_main.get("D", 0) + 1


def process_cpu(pid: int) -> float | None:
    """CPU seconds the process's live threads have run (the scheduler's nanosecond counts, user + system)."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                pass  # the thread just ended
    except OSError:
        return None
    return total / 1e9


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name (/proc/PID/task/TID/comm; threads of one name summed): the gateway names its
    threads at the OS level (sessions/threadnames.py), quickfix's after the engine that made them."""
    out: dict[str, float] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            comm = (task / "comm").read_text().strip()
            ns = int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # the thread just ended
        out[comm] = out.get(comm, 0.0) + ns / 1e9
    return out


# watched processes whose CPU is also sampled per thread name
THREADS_OF = ("gateway", "forwarder")


def cpu_sample(pids: dict[str, int]) -> dict:
    """CPU seconds (user + system) of each watched process (and of the threads of THREADS_OF, by name, under
    "threads:NAME"), and busy/total seconds of the whole machine."""
    out: dict = {"wall_ns": pc()}
    for name, pid in pids.items():
        out[name] = process_cpu(pid)
        if name in THREADS_OF:
            out[f"threads:{name}"] = thread_cpu(pid)
    try:
        cpu = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = cpu[3] + (cpu[4] if len(cpu) > 4 else 0)
        out["machine_total_s"] = sum(cpu[:8]) / CLK_TCK
        out["machine_busy_s"] = (sum(cpu[:8]) - idle) / CLK_TCK
    except (OSError, ValueError):
        pass
    return out


def watch_database(pids: dict[str, int], url: str | None) -> None:
    """Add to ``pids`` the PostgreSQL backends now serving the database of ``url`` (pg0, pg1, ...): a connection
    made after the start (a committer's, at its first record) is watched from the next phase on."""
    if not url:
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :db AND "
                                      "pid <> pg_backend_pid() AND backend_type = 'client backend'"),
                                 {"db": make_url(url).database}).scalars().all()
    finally:
        engine.dispose()
    known = set(pids.values())
    for pid in found:
        if pid not in known:
            pids[f"pg{sum(1 for name in pids if name.startswith('pg'))}"] = pid


def scrape(url: str | None) -> str | None:
    if not url:
        return None
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    except OSError as exc:
        return f"# scrape failed: {exc!r}"


def run_phase(app: LoadApp, phase: Phase, mix: Mix, prefix: str, drain_s: float) -> None:
    sleep = time.sleep
    orders = phase.orders = [Order(f"{prefix}{phase.name}-{k}", mix.next(), phase) for k in range(phase.n)]
    send = app.send_new
    t0 = phase.t0 = pc() + 2_000_000
    if phase.rate:
        period = 1e9 / phase.rate
        for k, o in enumerate(orders):
            t = t0 + int(k * period)
            wait = t - pc()
            if wait > 0:
                sleep(wait / 1e9)
            o.intended = t
            send(o)
    else:
        acquire = phase.sem.acquire
        while pc() < t0:
            sleep(0.001)
        for o in orders:
            if not acquire(timeout=30):
                raise RuntimeError(f"phase {phase.name}: no order finished for 30 s "
                                   f"({phase.completed}/{phase.n} done)")
            o.intended = pc()
            send(o)
    phase.sent_end = pc()
    phase.all_done.wait(drain_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sender", default="BENCH", help="SenderCompID of the load client (default BENCH)")
    ap.add_argument("--plan", required=True, help="JSON: {phases: [{name, orders, rate | window}], drain_s, seed}")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--store", type=Path, required=True, help="quickfix FileStore directory")
    ap.add_argument("--metrics-url", default=None)
    ap.add_argument("--watch", default="", help="name=pid,... processes whose CPU time is sampled per phase")
    ap.add_argument("--watch-database", default=None,
                    help="a PostgreSQL URL: the server processes serving its database are sampled too (pg0, ...)")
    ap.add_argument("--profile-pid", type=int, default=0, help="run py-spy on this process during --profile-phase")
    ap.add_argument("--profile-phase", default="saturation")
    ap.add_argument("--profile-out", type=Path, default=None)
    ap.add_argument("--py-spy", default="py-spy")
    ap.add_argument("--profile-flags", default="--native --gil")
    args = ap.parse_args()
    plan = json.loads(args.plan)
    pids = {"loadgen": os.getpid()}
    for item in filter(None, args.watch.split(",")):
        name, _, pid = item.partition("=")
        pids[name] = int(pid)

    sid = session_id("FIX.4.4", args.sender, "FIXGW")
    settings = build_settings("initiator", args.store, [(sid, "FIX.4.4", {
        "SocketConnectHost": "127.0.0.1", "SocketConnectPort": str(args.port), "ReconnectInterval": "1"})])
    app = LoadApp()
    engine = fix.SocketInitiator(app, fix.FileStoreFactory(settings), settings, fix.ScreenLogFactory(False, False, False))
    engine.start()
    result: dict = {"row_fields": ROW_FIELDS, "phases": []}
    try:
        if not app.logged_on.wait(30):
            raise RuntimeError(f"load client could not log on to port {args.port}")
        mix = Mix(plan.get("seed", 8), plan.get("mix", "mix"))
        prefix = plan.get("prefix") or f"B{time.time_ns() % 10**10:x}-"
        for spec in plan["phases"]:
            phase = Phase(spec["name"], spec["orders"], spec.get("rate", 0.0), spec.get("window", 0))
            profiler = None
            if args.profile_pid and phase.name == args.profile_phase and args.profile_out:
                profiler = subprocess.Popen(
                    [args.py_spy, "record", *args.profile_flags.split(), "--format", "raw", "--rate", "250",
                     "-p", str(args.profile_pid), "-o", str(args.profile_out)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                time.sleep(1.0)  # py-spy attaches
            watch_database(pids, args.watch_database)
            m0, c0 = scrape(args.metrics_url), cpu_sample(pids)
            run_phase(app, phase, mix, prefix, plan.get("drain_s", 30))
            c1, m1 = cpu_sample(pids), scrape(args.metrics_url)
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                try:
                    _, err = profiler.communicate(timeout=60)
                    phase.extra["profile"] = {"file": str(args.profile_out), "rc": profiler.returncode,
                                              "stderr": (err or "")[-2000:]}
                except subprocess.TimeoutExpired:
                    profiler.kill()
            result["phases"].append({
                "name": phase.name, "rate": phase.rate, "window": phase.window, "orders": phase.n,
                "completed": phase.completed, "t0": phase.t0, "sent_end": phase.sent_end,
                "done_end": phase.done_end, "rows": [o.row() for o in phase.orders],
                "metrics_before": m0, "metrics_after": m1, "cpu_before": c0, "cpu_after": c1, **phase.extra})
            print(f"loadgen: {phase.name}: {phase.completed}/{phase.n} done", file=sys.stderr, flush=True)
            time.sleep(0.3)  # let stragglers and the journal settle between phases
    except Exception as exc:  # noqa: BLE001 - reported in the result, the orchestrator decides
        result["fatal"] = f"{type(exc).__name__}: {exc}"
    finally:
        time.sleep(0.2)
        graceful_stop(engine, [sid], 3.0)
        engine = None
    info = read_info(args.store, sid)
    result.update({
        "sent": {k: app.sent_main.get(k, 0) + app.sent_cb.get(k, 0) for k in {*app.sent_main, *app.sent_cb}},
        "received": app.received, "errors": app.errors, "error_count": app.error_count,
        "store": {"next_sender": info.next_sender, "next_target": info.next_target} if info else None,
    })
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
