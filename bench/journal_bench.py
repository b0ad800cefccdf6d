"""The journal on its own: sustained write rate with batching, commit lag, and replay time.

Uses the gateway's own ``JournalWriter`` (batching, hash chain, COPY on
PostgreSQL, multi-row INSERTs on SQLite, the crash spool in front of it) on a fresh
database per backend: a SQLite file in a temporary directory, and a new
database on the PostgreSQL server at --pg-url (dropped afterwards). The
messages are what the gateway journals for one filled order, seven per order
(client D in, PendingNew, New and Fill out; venue D out, New and Fill in), with
real tag=value text of about 200 bytes.

The writer is the gateway's default, the child process fed by the spool
(--writer process), or a thread of this process (--writer thread).

1. Open loop at fixed rates (--rates, messages/s, each --duration s): a
   producer thread calls ``record()`` on a 1 ms tick to keep to the rate.
   Reported: the rate achieved by the producer and committed by the writer, the
   backlog when the producer stopped, and the commit lag of every row (the time
   from ``record()`` to its batch's commit returning on the writer thread, or,
   with the process writer, to the gateway hearing of the commit from the
   child, as drop copies do; HdrHistogram).
2. Burst: --burst messages recorded as fast as possible; the write rate is
   messages / time until the last one is committed.
3. Replay: the time to rebuild the order picture from --replay messages (and,
   with --replay-1m, from 1,000,000): every row read in id order (streamed as
   ``fixgw journal replay`` does), every message parsed into fields
   (``journal_replay.split_fields``), and per ClOrdID the orders, fills and
   final status counted; checked against what was written. Also timed: the
   same picture from the indexed columns (msg_type, cl_ord_id) and two
   ``str.find`` lookups per row, without splitting every field.

Run: .venv/bin/python bench/journal_bench.py [--replay-1m]
Output: bench/results/journal-<time>.json and a markdown table on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from hdrh.histogram import HdrHistogram  # noqa: E402

from analyze import hist_summary  # noqa: E402
from gateway.journal import db as gdb  # noqa: E402
from gateway.journal.writer import JournalWriter  # noqa: E402
from gateway.journal.process import ProcessJournalWriter  # noqa: E402
from gateway.journal.replay import Filters, iter_replay, split_fields  # noqa: E402
from throughput import machine, pg_database  # noqa: E402

SOH = "\x01"
CLIENT = "FIX.4.4:FIXGW->BENCH"
VENUE = "FIX.4.4:FIXGW->VENUE1"


class LagWriter(JournalWriter):
    """JournalWriter that records each committed row's commit lag (µs) on the writer thread."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lag = HdrHistogram(1, 600_000_000, 3)
        self.batch_sizes = HdrHistogram(1, 1_000_000, 3)
        self.hist_lock = threading.Lock()  # the histograms are recorded on the writer's thread, read on the main one

    def _write(self, msgs, events, spooled=None):
        super()._write(msgs, events, spooled)
        now_us = time.time_ns() // 1000
        with self.hist_lock:
            record = self.lag.record_value
            for row in msgs:
                record(max(1, now_us - row[7]))
            if msgs:
                self.batch_sizes.record_value(len(msgs))

    def reset(self) -> None:
        with self.hist_lock:
            self.lag.reset()
            self.batch_sizes.reset()


class ProcessLagWriter(ProcessJournalWriter):
    """The gateway's default writer ([journal] writer = "process"): ``record()`` appends to the spool, a
    child process commits. A row's commit lag ends when the gateway hears of its commit (the child's
    report, which is also what wakes the drop-copy sender): the lag a drop-copy receiver sees."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lag = HdrHistogram(1, 600_000_000, 3)
        self.batch_sizes = HdrHistogram(1, 1_000_000, 3)  # rows per commit report
        self.hist_lock = threading.Lock()  # recorded on the thread reading the child's reports, read on the main one
        self._stamps: deque[int] = deque()  # record() times (µs) of the rows not yet heard committed
        self._heard = 0
        self.add_commit_listener(self._on_commit)

    def record(self, session_id: str, direction: str, raw: str) -> None:
        self._stamps.append(time.time_ns() // 1000)
        super().record(session_id, direction, raw)

    def _on_commit(self) -> None:  # on the thread reading the child's reports
        committed = self.committed
        n = min(committed - self._heard, len(self._stamps))
        self._heard = committed
        now_us = time.time_ns() // 1000
        with self.hist_lock:
            pop, record = self._stamps.popleft, self.lag.record_value
            for _ in range(n):
                record(max(1, now_us - pop()))
            if n:
                self.batch_sizes.record_value(n)

    def reset(self) -> None:  # after a flush(): nothing in flight
        with self.hist_lock:
            self._stamps.clear()
            self._heard = self.committed
            self.lag.reset()
            self.batch_sizes.reset()


class Flow:
    """Journal rows of filled orders, seven per order, with per-session sequence numbers."""

    def __init__(self):
        self.seq = {(CLIENT, "I"): 0, (CLIENT, "O"): 0, (VENUE, "I"): 0, (VENUE, "O"): 0}
        self.orders = 0

    def _msg(self, session: str, direction: str, body: str) -> tuple[str, str, str]:
        key = (session, direction)
        self.seq[key] += 1
        ours = direction == "O"
        peer = "BENCH" if session == CLIENT else "VENUE1"
        sender, target = ("FIXGW", peer) if ours else (peer, "FIXGW")
        head = f"35={body[:1]}{SOH}34={self.seq[key]}{SOH}49={sender}{SOH}52=20261124-10:00:00.000{SOH}56={target}{SOH}"
        text = head + body[2:]
        return session, direction, f"8=FIX.4.4{SOH}9={len(text)}{SOH}{text}10=000{SOH}"

    def order(self) -> list[tuple[str, str, str]]:
        self.orders += 1
        n = self.orders
        cl, oid = f"C{n}", f"GW-{n}"
        qty, px = 100 + n % 300, f"190.{5 + n % 40:02d}"
        d = f"11={cl}{SOH}21=1{SOH}38={qty}{SOH}40=2{SOH}44={px}{SOH}54=1{SOH}55=AAPL{SOH}59=0{SOH}60=20261124-10:00:00.000{SOH}"
        er = (f"37={oid}{SOH}11={cl}{SOH}17=E{n}.%s{SOH}150=%s{SOH}39=%s{SOH}55=AAPL{SOH}54=1{SOH}38={qty}{SOH}"
              f"14=%s{SOH}151=%s{SOH}6=%s{SOH}60=20261124-10:00:00.000{SOH}")
        vd = d.replace(f"11={cl}", f"11={oid}")
        ver = er.replace(f"37={oid}{SOH}11={cl}", f"37=V{n}{SOH}11={oid}")
        fill = f"32={qty}{SOH}31=190.01{SOH}"
        return [
            self._msg(CLIENT, "I", "D|" + d),
            self._msg(CLIENT, "O", "8|" + er % ("a", "A", "A", 0, qty, 0)),
            self._msg(VENUE, "O", "D|" + vd),
            self._msg(VENUE, "I", "8|" + ver % ("n", "0", "0", 0, qty, 0)),
            self._msg(VENUE, "I", "8|" + ver % ("f", "F", "2", qty, 0, "190.01") + fill),
            self._msg(CLIENT, "O", "8|" + er % ("n", "0", "0", 0, qty, 0)),
            self._msg(CLIENT, "O", "8|" + er % ("f", "F", "2", qty, 0, "190.01") + fill),
        ]

    def messages(self):
        while True:
            yield from self.order()


def open_loop(writer: LagWriter, flow, rate: float, duration: float) -> dict:
    """Record ``rate`` messages/s for ``duration`` s on a 1 ms tick; wait for the commits."""
    writer.flush(30)
    writer.reset()
    committed0 = writer.committed
    record = writer.record
    total = int(rate * duration)
    sent = 0
    t0 = time.perf_counter()
    while sent < total:
        due = min(total, int((time.perf_counter() - t0) * rate) + 1)
        while sent < due:
            sid, d, raw = next(flow)
            record(sid, d, raw)
            sent += 1
        time.sleep(0.001)
    t_sent = time.perf_counter()
    backlog = writer.queue_depth()
    committed_by_end = writer.committed - committed0
    ok = writer.flush(300)
    t_done = time.perf_counter()
    return {
        "offered_per_s": rate, "messages": total, "recorded_per_s": round(total / (t_sent - t0)),
        "committed_per_s_during": round(committed_by_end / (t_sent - t0)),
        "backlog_at_end": backlog, "drain_s": round(t_done - t_sent, 3), "flushed": ok,
        **summaries(writer),
    }


def burst(writer: LagWriter, flow, n: int) -> dict:
    writer.flush(30)
    writer.reset()
    record = writer.record
    t0 = time.perf_counter()
    for _ in range(n):
        sid, d, raw = next(flow)
        record(sid, d, raw)
    t_rec = time.perf_counter()
    ok = writer.flush(600)
    t1 = time.perf_counter()
    return {"messages": n, "record_s": round(t_rec - t0, 3), "committed_per_s": round(n / (t1 - t0)),
            "flushed": ok, **summaries(writer)}


def summaries(writer) -> dict:
    """The commit lag and batch size histograms, read under the lock their recording thread takes (a listener may
    still be recording the last report when ``flush`` returns)."""
    with writer.hist_lock:
        return {"commit_lag_us": hist_summary(writer.lag), "batch_rows": hist_summary(writer.batch_sizes)}


def fill_to(writer: LagWriter, flow, target: int, deadline: float) -> int:
    """Record orders until the journal holds ``target`` messages (or the deadline); returns messages written."""
    record = writer.record
    n = 0
    while writer.submitted < target and time.monotonic() < deadline:
        for _ in range(7000):
            sid, d, raw = next(flow)
            record(sid, d, raw)
        n += 7000
        if writer.queue_depth() > 200_000:
            writer.flush(120)
    writer.flush(600)
    return n


def replay(url: str, limit: int) -> dict:
    """Rebuild the order picture from the first ``limit`` messages: full parse, then indexed columns only."""
    engine = gdb.make_engine(url)
    try:
        out = {}
        # 1. as `fixgw journal replay` reads: every column, every message split into its fields
        t0 = time.perf_counter()
        orders: dict[str, list] = {}  # ClOrdID -> [new orders, fills, last OrdStatus]
        rows = 0
        it = iter_replay(engine, Filters(), batch=5000)
        try:
            for row in it:
                rows += 1
                if rows > limit:
                    break
                f = dict(split_fields(row.raw))
                if row.session_id != CLIENT:
                    continue
                mt = f.get("35")
                if mt == "D" and row.direction == "I":
                    orders.setdefault(f["11"], [0, 0, None])[0] += 1
                elif mt == "8" and row.direction == "O":
                    o = orders.setdefault(f["11"], [0, 0, None])
                    if f.get("150") in ("F", "1", "2"):
                        o[1] += 1
                    o[2] = f.get("39")
        finally:
            it.close()
        t1 = time.perf_counter()
        rows = min(rows, limit)
        out["full_parse"] = {"rows": rows, "seconds": round(t1 - t0, 2), "rows_per_s": round(rows / (t1 - t0)),
                             "orders": len(orders), "fills": sum(o[1] for o in orders.values()),
                             "filled": sum(1 for o in orders.values() if o[2] == "2")}
        # 2. the indexed columns, and two str.find lookups for ExecType and OrdStatus
        from sqlalchemy import select

        from gateway.journal.db import journal_messages as t
        from gateway.journal.queries import stream_rows

        t0 = time.perf_counter()
        picture: dict[str, list] = {}
        stmt = (select(t.c.direction, t.c.msg_type, t.c.cl_ord_id, t.c.raw).where(t.c.session_id == CLIENT)
                .where(t.c.id <= limit).order_by(t.c.id))
        n = 0
        for direction, mt, cl, raw in stream_rows(engine, stmt, 5000):
            n += 1
            if mt == "D" and direction == "I":
                picture.setdefault(cl, [0, 0, None])[0] += 1
            elif mt == "8" and direction == "O":
                o = picture.setdefault(cl, [0, 0, None])
                i = raw.find(f"{SOH}150=") + 5
                if raw[i] in "F12":
                    o[1] += 1
                j = raw.find(f"{SOH}39=") + 4
                o[2] = raw[j:raw.find(SOH, j)]
        t1 = time.perf_counter()
        out["indexed_columns"] = {"rows_read": n, "seconds": round(t1 - t0, 2), "orders": len(picture),
                                  "fills": sum(o[1] for o in picture.values())}
        return out
    finally:
        engine.dispose()


def run_backend(name: str, url: str, tmp: Path, args, cluster: bool = False) -> dict:
    """``cluster``: the writer of a cluster's active instance: its own spool position, the chain's advisory lock
    and head read in every transaction, and every transaction fenced by a real lease's token."""
    gdb.upgrade(url)
    result: dict = {"backend": name}
    instance = "bench" if cluster else None
    spool = tmp / f"spool-{name.replace(' ', '-')}"
    if args.writer == "process":
        writer = ProcessLagWriter(url, batch_max=args.batch_max, flush_interval_ms=args.flush_ms,
                                  spool_dir=spool, instance=instance)
    else:
        writer = LagWriter(url, batch_max=args.batch_max, flush_interval_ms=args.flush_ms,
                           spool_dir=None if args.no_spool else spool, instance=instance)
    writer.start()
    if cluster:
        from gateway.cluster.lease import Lease
        from gateway.journal.fencing import Term

        lease_engine = gdb.make_engine(url)
        token = Lease(lease_engine, "bench").try_acquire(instance, 3600)
        lease_engine.dispose()
        writer.set_term(Term("bench", token))
    flow = Flow()
    msgs = flow.messages()
    try:
        for _ in range(700):  # warm-up: the first commit (and a process writer's child) is up before timing
            writer.record(*next(msgs))
        writer.flush(60)
        result["open_loop"] = [open_loop(writer, msgs, r, args.duration) for r in args.rates]
        for r in result["open_loop"]:
            print(f"{name}: {r['offered_per_s']:.0f}/s offered: committed {r['committed_per_s_during']}/s, "
                  f"lag p99 {r['commit_lag_us']['p99']} µs, backlog {r['backlog_at_end']}", flush=True)
        result["burst"] = burst(writer, msgs, args.burst)
        print(f"{name}: burst of {args.burst}: {result['burst']['committed_per_s']}/s", flush=True)
        deadline = time.monotonic() + args.max_seconds
        result["replay"] = []
        for size in [args.replay] + ([1_000_000] if args.replay_1m else []):
            fill_to(writer, msgs, size, deadline)
            have = writer.committed
            if have < size:
                result["replay"].append({"messages": size, "skipped": f"only {have} written within --max-seconds"})
                break
            r = replay(url, size)
            r["messages"] = size
            result["replay"].append(r)
            print(f"{name}: replay {size}: full parse {r['full_parse']['seconds']} s "
                  f"({r['full_parse']['rows_per_s']}/s), indexed columns {r['indexed_columns']['seconds']} s",
                  flush=True)
    finally:
        writer.stop(60)
    result["written_orders"] = flow.orders
    return result


def markdown(s: dict) -> str:
    lines = [f"Command: `{s['command']}`  ", f"Machine: {s['machine']}; load average before "
             f"{s['load_average_before']}  ", f"Journal writer: {s.get('writer', 'thread')}, flush_interval_ms "
             f"{s.get('flush_ms', 5)}  ", "",
             "| backend | offered msgs/s | committed msgs/s | backlog at end | commit lag p50 µs | p99 | p99.9 | max "
             "| rows per commit p50 |", "|---|---|---|---|---|---|---|---|---|"]
    for b in s["backends"]:
        for r in b.get("open_loop", []):
            lag = r["commit_lag_us"] or {}
            lines.append(f"| {b['backend']} | {r['offered_per_s']:,.0f} | {r['committed_per_s_during']:,} | "
                         f"{r['backlog_at_end']:,} | {lag.get('p50', '–'):,} | {lag.get('p99', '–'):,} | "
                         f"{lag.get('p99_9', '–'):,} | {lag.get('max', '–'):,} | "
                         f"{(r['batch_rows'] or {}).get('p50', '–')} |")
        if "burst" in b:
            r = b["burst"]
            lines.append(f"| {b['backend']} | burst of {r['messages']:,} | {r['committed_per_s']:,} | – | – | – | – | "
                         f"– | {(r['batch_rows'] or {}).get('p50', '–')} |")
    lines += ["", "| backend | messages replayed | orders rebuilt | full parse s | rows/s | indexed columns s |",
              "|---|---|---|---|---|---|"]
    for b in s["backends"]:
        for r in b.get("replay", []):
            if "skipped" in r:
                lines.append(f"| {b['backend']} | {r['messages']:,} | {r['skipped']} | | | |")
                continue
            fp = r["full_parse"]
            lines.append(f"| {b['backend']} | {r['messages']:,} | {fp['orders']:,} ({fp['fills']:,} fills) | "
                         f"{fp['seconds']} | {fp['rows_per_s']:,} | {r['indexed_columns']['seconds']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="sqlite,pg",
                    help="sqlite, pg, pg-cluster (the writer of a cluster's active instance: chain lock, fence)")
    ap.add_argument("--rates", default="5000,10000,20000,40000", help="open-loop messages/s")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per rate")
    ap.add_argument("--burst", type=int, default=100_000)
    ap.add_argument("--replay", type=int, default=100_000, help="messages to rebuild the order picture from")
    ap.add_argument("--replay-1m", action="store_true", help="also 1,000,000 messages (about a minute or more)")
    ap.add_argument("--max-seconds", type=float, default=300.0, help="time bound for writing the replay journals")
    ap.add_argument("--batch-max", type=int, default=2000, help="as [journal] batch_max")
    ap.add_argument("--flush-ms", type=int, default=5, help="as [journal] flush_interval_ms")
    ap.add_argument("--writer", choices=("process", "thread"), default="process",
                    help="as [journal] writer: the child process fed by the spool (the default; a row's lag ends "
                         "when the gateway hears of its commit), or a thread of this process")
    ap.add_argument("--no-spool", action="store_true", help="without the crash spool in front of the queue "
                                                             "(thread writer only)")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    args = ap.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if args.no_spool and args.writer == "process":
        ap.error("--no-spool needs --writer thread: the process writer reads the spool")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    summary = {"command": "python bench/journal_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": machine(), "load_average_before": [round(x, 2) for x in os.getloadavg()],
               "python": platform.python_version(), "writer": args.writer, "flush_ms": args.flush_ms,
               "backends": []}
    with tempfile.TemporaryDirectory(prefix="fixgw-journal-bench-") as d:
        tmp = Path(d)
        for b in backends:
            if b == "sqlite":
                summary["backends"].append(run_backend("SQLite", f"sqlite:///{tmp / 'journal.db'}", tmp, args))
            elif b == "pg":
                with pg_database(args.pg_url) as url:
                    summary["backends"].append(run_backend("PostgreSQL", url, tmp, args))
            elif b == "pg-cluster":
                with pg_database(args.pg_url) as url:
                    summary["backends"].append(run_backend("PostgreSQL, cluster instance", url, tmp, args,
                                                           cluster=True))
    summary["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"journal-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(summary, indent=1))
    md = markdown(summary)
    out.with_suffix(".md").write_text(md)
    print()
    print(md)
    print(f"\nresult files: {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
