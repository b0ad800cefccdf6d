"""The journal writer process's CPU per row, and the same against another revision, in the same run.

The writer child (``python -m gateway.journal.process``, the gateway's default journal writer) is started on an
empty spool file and a fresh database, exactly as the gateway starts it; once it has reported its first (empty)
commit, its CPU time so far (start-up, imports, the first connection) is read from /proc/<pid>/stat, and
--rows records of realistic FIX messages (bench/journal_bench.py's filled orders, seven messages per order,
and a session event every --event-every orders) are appended to the spool at --rate rows/s on a 1 ms tick, as
the gateway's threads append them. When the child reports the last row committed, its CPU time (user +
system, all threads) is read again: the difference over the rows is its CPU per row.

--rev REV: the child also runs from ``git archive REV gateway fixspecs`` (a temporary directory) on the same
spool records, alternating with this tree round by round (which goes first alternates too), or, with
--together, at the same time as this tree's (each with its own spool and database); reported: the median of
the per-round ratios (this tree / REV). Every round's rows are checked: the hash chain verifies,
and with --rev, both children's rows (every column but the id, chain hashes included) are identical.

--profile FILE: the first round of this tree under py-spy (raw format: collapsed stacks, all threads; py-spy
samples wall time, so a thread waiting in a system call may count as busy).
--flush-ms: the child's [journal] flush_interval_ms (its read, and commit, cadence; 5 by default).

Run: .venv/bin/python bench/journal_cpu.py --rev HEAD~1 [--together] [--rounds 5] [--rows 30000] [--backend sqlite|pg]
Output: a line per round and a summary on stdout; with --out, the same as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from gateway.journal import db as gdb  # noqa: E402
from gateway.journal.process import CONFIG_ENV  # noqa: E402
from gateway.journal.spool import Spool  # noqa: E402
from journal_bench import Flow  # noqa: E402
from revision import revision_tree  # noqa: E402

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU time of process ``pid`` (all its threads) so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS  # utime, stime (fields 14 and 15 of stat)


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of all the threads of ``pid`` so far (each a sleep and a
    wake-up: in a virtual machine, tens of µs of CPU)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[1])
    return total


def records(n: int, event_every: int) -> list[tuple[str, str, str]]:
    """``n`` journal rows (session, direction or "E", text): filled orders, an event every ``event_every``."""
    flow = Flow()
    out: list[tuple[str, str, str]] = []
    while len(out) < n:
        out += flow.order()
        if event_every and flow.orders % event_every == 0:
            out.append(("FIX.4.4:FIXGW->VENUE1", "E", f"Resend request ignored, order {flow.orders}"))
    return out[:n]


@contextmanager
def database(backend: str, tmp: Path, pg_url: str, tag: str):
    if backend == "sqlite":
        url = f"sqlite:///{tmp / f'journal-{tag}.db'}"
        gdb.upgrade(url)
        yield url
    else:
        from throughput import pg_database
        with pg_database(pg_url) as url:
            gdb.upgrade(url)
            yield url


def table_dump(url: str) -> tuple[list, list]:
    """Every journal row but its id, in id order (chain hashes included)."""
    from sqlalchemy import text
    engine = gdb.make_engine(url)
    try:
        with engine.connect() as conn:
            msgs = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in conn.execute(text(
                "SELECT session_id, direction, seq_num, msg_type, cl_ord_id, order_id, poss_dup, ts_us, raw, "
                "recovered, chain_hash FROM journal_messages ORDER BY id"))]
            events = [tuple(r) for r in conn.execute(text(
                "SELECT session_id, ts_us, text FROM session_events ORDER BY id"))]
        return msgs, events
    finally:
        engine.dispose()


def verify(url: str) -> None:
    from gateway.journal.verify import verify_database
    engine = gdb.make_engine(url)
    try:
        result = verify_database(engine)
    finally:
        engine.dispose()
    if result.problem is not None or not result.checked:
        raise SystemExit(f"the hash chain does not verify: {result}")


def one_round(trees: dict[str, Path], urls: dict[str, str], tmp: Path, recs: list, stamps: list[int], rate: float,
              flush_ms: int, profile: Path | None) -> dict:
    """Start a child from each of ``trees`` on an empty spool of its own, feed them all ``recs`` (the same
    records, appended to each spool in turn); each child's CPU over them."""
    children = {name: Child(tree, urls[name], tmp, flush_ms) for name, tree in trees.items()}
    spy = None
    try:
        for child in children.values():
            child.reports.wait(0)
        if profile is not None:
            pid = children["this"].process.pid
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                                    "--threads", "--rate", "500", "-o", str(profile), "--pid", str(pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        for child in children.values():
            child.begin()
        appends = [child.spool.append for child in children.values()]
        t0 = time.perf_counter()
        sent = 0
        n = len(recs)
        while sent < n:
            due = n if not rate else min(n, int((time.perf_counter() - t0) * rate) + 1)
            while sent < due:
                sid, kind, text = recs[sent]
                for append in appends:
                    append(stamps[sent], sid, kind, text)
                sent += 1
            if rate:
                time.sleep(0.001)
        return {name: child.end(n) for name, child in children.items()}
    finally:
        for child in children.values():
            child.close()
        if spy is not None:
            spy.wait(30)


class Child:
    """A writer child on an empty spool file of its own, started as the gateway starts it."""

    def __init__(self, tree: Path, url: str, tmp: Path, flush_ms: int):
        spool_dir = Path(tempfile.mkdtemp(prefix="spool-", dir=tmp))
        self.spool = Spool.create(spool_dir, lambda entry: None)
        config = {"database_url": url, "batch_max": 2000, "flush_interval_ms": flush_ms,
                  "spool_dir": str(spool_dir), "spool": self.spool.path.name, "start": 0, "instance": None,
                  "term": None}
        env = {**os.environ, CONFIG_ENV: json.dumps(config), "PYTHONPATH": str(tree)}
        self.process = subprocess.Popen([sys.executable, "-m", "gateway.journal.process"], env=env, cwd=tree,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.reports = Reports(self.process)

    def begin(self) -> None:
        self._cpu0, self._switches0 = cpu_seconds(self.process.pid), context_switches(self.process.pid)

    def end(self, n: int) -> dict:
        """Wait for ``n`` rows committed; the CPU since begin(); stop the child."""
        committed = self.reports.wait(n)
        pid = self.process.pid
        user, system = (b - a for a, b in zip(self._cpu0, cpu_seconds(pid)))
        switches = context_switches(pid) - self._switches0
        self.process.stdin.write(b"stop\n")
        self.process.stdin.flush()
        self.process.wait(60)
        cpu = user + system
        return {"rows": committed, "cpu_s": cpu, "cpu_us_per_row": cpu / n * 1e6, "user_s": user,
                "system_s": system, "switches_per_1000_rows": 1000 * switches / n}

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.spool.close(remove=True)


class Reports:
    """The child's report lines, read as they come (as the gateway's reader thread does: a child whose
    stdout pipe is full blocks in its commit report, and would commit fewer, larger batches)."""

    def __init__(self, child: subprocess.Popen):
        self.child = child
        self.committed = -1
        self.fatal: str | None = None
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.child.stdout:
            with self._cond:
                if line.startswith(b"c "):
                    self.committed = int(line.split()[1])
                elif b"fatal" in line:
                    self.fatal = line.decode().strip()
                self._cond.notify_all()
        with self._cond:
            self.fatal = self.fatal or f"the writer child exited ({self.child.wait()})"
            self._cond.notify_all()

    def wait(self, n: int, timeout: float = 600) -> int:
        """Until the child says ``n`` rows are committed; how many it said."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.committed >= n or self.fatal, timeout):
                raise SystemExit(f"the writer child did not commit {n} rows within {timeout} s")
            if self.committed < n:
                raise SystemExit(f"the writer child failed before committing {n} rows: {self.fatal}")
            return self.committed


def describe(name: str, r: dict) -> str:
    return (f"{name} {r['cpu_us_per_row']:.1f} µs/row ({r['system_s'] / r['cpu_s']:.0%} system, "
            f"{r['switches_per_1000_rows']:.0f} context switches per 1000 rows)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=30_000)
    ap.add_argument("--rate", type=float, default=10_000, help="rows/s appended to the spool (0: all at once)")
    ap.add_argument("--flush-ms", type=int, default=5, help="as [journal] flush_interval_ms (the child's poll)")
    ap.add_argument("--event-every", type=int, default=5, help="a session event every this many orders")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rev", help="also run the child of this revision, alternating; report this tree / REV")
    ap.add_argument("--together", action="store_true",
                    help="with --rev: run both children at the same time on the same records (each its own spool "
                         "and database), instead of one after the other: the machine's ups and downs hit both")
    ap.add_argument("--backend", choices=("sqlite", "pg"), default="sqlite")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--profile", type=Path, help="py-spy raw profile of this tree's first round")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    recs = records(args.rows, args.event_every)
    base_ns = time.time_ns()
    stamps = [base_ns + 1000 * i + 7 for i in range(len(recs))]
    results: dict = {"command": "python bench/journal_cpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                     "rows": len(recs), "rate": args.rate, "backend": args.backend, "rounds": []}
    with tempfile.TemporaryDirectory(prefix="fixgw-journal-cpu-") as d, revision_tree(args.rev) as rev_tree:
        tmp = Path(d)
        trees = {"this": ROOT}
        if rev_tree is not None:
            trees["rev"] = rev_tree
        for r in range(args.rounds):
            # both children at once (the same records, the same moments), or one after the other, in turns
            groups = [list(trees)] if args.together else [[name] for name in
                                                          (list(trees) if r % 2 == 0 else list(reversed(trees)))]
            row: dict = {}
            dumps = {}
            for group in groups:
                with ExitStack() as stack:
                    urls = {name: stack.enter_context(database(args.backend, tmp, args.pg_url, f"{r}-{name}"))
                            for name in group}
                    prof = args.profile if (r == 0 and "this" in group) else None
                    row.update(one_round({name: trees[name] for name in group}, urls, tmp, recs, stamps, args.rate,
                                         args.flush_ms, prof))
                    for name, url in urls.items():
                        verify(url)
                        if args.rev:
                            dumps[name] = table_dump(url)
            if args.rev:
                if dumps["this"] != dumps["rev"]:
                    raise SystemExit(f"round {r}: the rows written differ between this tree and {args.rev}")
                row["ratio"] = row["this"]["cpu_s"] / row["rev"]["cpu_s"]
            results["rounds"].append(row)
            print(f"round {r}: " + ", ".join(describe(k, v) for k, v in row.items() if isinstance(v, dict))
                  + (f", ratio {row['ratio']:.3f} (rows identical, chain verifies)" if args.rev else ""), flush=True)
    this = statistics.median(x["this"]["cpu_us_per_row"] for x in results["rounds"])
    results["this_cpu_us_per_row_median"] = this
    line = f"CPU per row, this tree: median {this:.1f} µs"
    if args.rev:
        ratio = statistics.median(x["ratio"] for x in results["rounds"])
        results["ratio_median"] = ratio
        rev = statistics.median(x["rev"]["cpu_us_per_row"] for x in results["rounds"])
        line += (f"; {args.rev}: {rev:.1f} µs; this/{args.rev} median of per-round ratios {ratio:.3f} "
                 f"(min {min(x['ratio'] for x in results['rounds']):.3f}, "
                 f"max {max(x['ratio'] for x in results['rounds']):.3f})")
    print(line)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
