"""The order-state log in PostgreSQL against the file state log, per record and per order, in the same run.

The records are the engine's own for real orders (as in bench/state_log.py: a
NewOrderSingle routed to a venue as a child order, the venue's ack, a fill; the
text of each message the command sends, encoded as the engine does), captured
once from ``Recorder.record`` and then appended, identically, to:

1. the file state log (``StateLog``, a real file in a temporary directory, no
   fsync: the default), where a record is durable when ``append`` returns;
2. the database log (``PgStateLog``) one record at a time: append, then wait
   until it is durable (one transaction per record, the worst case: a gateway
   handling one command at a time);
3. the database log in group commits: every record appended as fast as the
   caller can, then the time until the last one is durable (what a burst
   costs); the caller's own time per append is reported too (pickling and
   queueing: what the core thread pays);
4. the database log at a steady rate (--rate records/s for --duration s): the
   time from each ``append`` to its record being reported durable (p50, p99):
   what the engine's sender would wait before sending a record's messages.

Prints microseconds per record and per order (3 records) and the ratio of each
database figure to the file log's, from the same run. Absolute figures depend on the machine and above all on
the database's disk (a commit waits for its WAL flush); the ratios are what to compare. A fresh database on the
server at --pg-url, dropped afterwards.

Run: .venv/bin/python bench/pg_state_log.py [--orders N] [--single N] [--rate R] [--duration S]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal as D
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from desk.core import Core  # noqa: E402
from desk.options import ClientOptions  # noqa: E402
from gateway.journal import db  # noqa: E402
from gateway.state import recovery  # noqa: E402
from gateway.state.log import StateLog  # noqa: E402
from gateway.state.pglog import PgStateLog  # noqa: E402
from gateway.state.records import State  # noqa: E402
from orders.commands import NewOrder, SessionStatus  # noqa: E402
from orders.model import ExecKind, OrdType, Side
from routing.router import Venue  # noqa: E402
from state_log import OUTBOUND, venue_report  # noqa: E402
from throughput import machine, pg_database  # noqa: E402


class Capture:
    """Stands in for a state log: keeps the arguments of each append."""

    def __init__(self):
        self.calls: list[tuple] = []

    def append(self, *args) -> int:
        self.calls.append(args)
        return len(self.calls)


def records_for(n: int) -> list[tuple]:
    """The state-log appends the engine makes for ``n`` orders (new, venue ack, fill each), as arguments."""
    core = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions()}, "T")
    core.handle(SessionStatus("V1", "venue", True))
    cap = Capture()
    rec = recovery.Recorder(cap, core, State())
    for i in range(n):
        new = NewOrder(session="C1", cl_ord_id=f"A{i}", symbol="AAPL", side=Side.BUY, qty=D(100),
                       ord_type=OrdType.LIMIT, price=D(190), seq=i + 2)
        out = core.handle(new)
        rec.record(new, out, [OUTBOUND.encode(a) for a in out.actions])
        o = core.order_for_client("C1", f"A{i}")
        ack, fill = venue_report(o, ExecKind.NEW, 2 * i + 2), venue_report(o, ExecKind.TRADE, 2 * i + 3, D(100), D(190))
        for cmd in (ack, fill):
            out = core.handle(cmd)
            rec.record(cmd, out, [OUTBOUND.encode(a) for a in out.actions])
    assert len(cap.calls) == 3 * n and all(c[3] for c in cap.calls[:3])  # each record has its messages
    return cap.calls


def file_log(calls: list[tuple]) -> dict:
    with tempfile.TemporaryDirectory() as d:
        log = StateLog(d)
        log.open(State())
        t0 = time.perf_counter()
        for args in calls:
            log.append(*args)
        elapsed = time.perf_counter() - t0
        log.close(State())
    return {"us_per_record": elapsed / len(calls) * 1e6, "bytes_per_record": log.bytes_written / len(calls)}


def pg_single(engine, calls: list[tuple]) -> dict:
    log = PgStateLog(engine, "bench-single")
    log.open(State())
    t0 = time.perf_counter()
    for args in calls:
        assert log.wait_durable(log.append(*args), timeout=30)
    elapsed = time.perf_counter() - t0
    log.close(State())
    return {"us_per_record": elapsed / len(calls) * 1e6, "transactions": log.committer.transactions}


def pg_group(engine, calls: list[tuple]) -> dict:
    log = PgStateLog(engine, "bench-group")
    log.open(State())
    t0 = time.perf_counter()
    for args in calls:
        last = log.append(*args)
    t1 = time.perf_counter()
    assert log.wait_durable(last, timeout=300)
    elapsed = time.perf_counter() - t0
    c = log.committer
    log.close(State())
    return {"us_per_record": elapsed / len(calls) * 1e6, "append_us_per_record": (t1 - t0) / len(calls) * 1e6,
            "transactions": c.transactions, "mean_group": c.committed / c.transactions,
            "bytes_per_record": log.bytes_written / len(calls)}


def pg_paced(engine, calls: list[tuple], rate: float, duration: float) -> dict:
    appended: dict[int, float] = {}
    lat: list[float] = []
    lock = threading.Lock()

    def durable(ticket: int) -> None:
        now = time.perf_counter()
        with lock:
            for t in [t for t in appended if t <= ticket]:
                lat.append(now - appended.pop(t))

    log = PgStateLog(engine, "bench-paced", on_durable=durable)
    log.open(State())
    n = min(len(calls), int(rate * duration))
    start = time.perf_counter()
    for i in range(n):
        due = start + i / rate
        while (now := time.perf_counter()) < due:
            time.sleep(min(due - now, 0.0005))
        with lock:
            appended[log.append(*calls[i])] = time.perf_counter()
    assert log.wait_durable(n, timeout=60)
    c = log.committer
    log.close(State())
    lat.sort()
    return {"records": n, "rate": rate, "p50_us": statistics.median(lat) * 1e6,
            "p99_us": lat[int(len(lat) * 0.99) - 1] * 1e6, "max_us": lat[-1] * 1e6,
            "transactions": c.transactions, "mean_group": c.committed / c.transactions}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=3000, help="orders (3 records each) for the file log and the burst")
    ap.add_argument("--single", type=int, default=300, help="records committed one at a time")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of file, burst and single, interleaved (medians)")
    ap.add_argument("--rate", type=float, default=3000.0, help="records/s for the steady phase (3 per order)")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds of the steady phase")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args(argv)

    calls = records_for(args.orders)
    load_before = os.getloadavg()
    rounds = []
    with pg_database(args.pg_url) as url:
        db.upgrade(url)
        engine = db.make_engine(url)
        try:
            pg_single(engine, calls[:30])  # warm up: connections, plans
            for _ in range(args.rounds):
                rounds.append({"file": file_log(calls), "group": pg_group(engine, calls),
                               "single": pg_single(engine, calls[:args.single])})
            paced = pg_paced(engine, calls, args.rate, args.duration)
        finally:
            engine.dispose()
    print(f"machine: {machine()}; load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"records: {len(calls)} ({args.orders} orders: new with its child, venue ack, fill), "
          f"{rounds[0]['file']['bytes_per_record']:.0f} bytes each on average; {args.rounds} rounds, medians "
          "(ratios: the median of each round's ratio to the same round's file log)\n")
    med = statistics.median
    f = med(r["file"]["us_per_record"] for r in rounds)
    print("| state log | µs per record | µs per order | ratio to the file log (range) |")
    print("|---|---|---|---|")
    print(f"| file, durable when append returns | {f:.1f} | {f * 3:.1f} | 1.0x |")
    rows = [(f"PostgreSQL, one transaction per record ({args.single} records)", "single", "us_per_record"),
            (f"PostgreSQL, group commit of a burst of {len(calls)} records, until the last is durable",
             "group", "us_per_record"),
            ("PostgreSQL, group commit: the caller's own time per append (pickle, queue)", "group",
             "append_us_per_record")]
    for name, phase, key in rows:
        us = med(r[phase][key] for r in rounds)
        ratios = sorted(r[phase][key] / r["file"]["us_per_record"] for r in rounds)
        print(f"| {name} | {us:.1f} | {us * 3:.1f} | {med(ratios):.1f}x ({ratios[0]:.1f}-{ratios[-1]:.1f}) |")
    groups = [r["group"] for r in rounds]
    print(f"\nburst: {med(g['transactions'] for g in groups):.0f} transactions per burst "
          f"(mean group {med(g['mean_group'] for g in groups):.0f} records)")
    print(f"steady {paced['rate']:.0f} records/s ({paced['rate'] / 3:.0f} orders/s) for {args.duration:g} s: "
          f"append to durable p50 {paced['p50_us']:.0f} µs, p99 {paced['p99_us']:.0f} µs, max {paced['max_us']:.0f} µs "
          f"({paced['transactions']} transactions, mean group {paced['mean_group']:.1f} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
