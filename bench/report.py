"""Markdown tables from a bench/throughput.py result (also: python bench/report.py RESULT.json)."""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def _fmt(v, digits: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}" if isinstance(v, (int, float)) else str(v)


def _ratio(entry: dict | None) -> str:
    if not entry or entry.get("ratio_to_A") is None:
        return "–"
    return f"{entry['ratio_to_A']:.2f}"


def run_line(r: dict, seconds: float) -> str:
    if r.get("error") and not r.get("phases"):
        return f"cycle {r['cycle']} mode {r['mode']}: FAILED {r['error']}"
    parts = []
    for name, p in r.get("phases", {}).items():
        if name == "warmup":
            continue
        fill = (p["latency_us"].get("fill") or {})
        parts.append(f"{name} {p['completed_per_s']:.0f}/s fill p50 {fill.get('p50', '-')} p99 {fill.get('p99', '-')}"
                     f" µs late {p['late_sends'] if p['late_sends'] is not None else '-'}"
                     f" unfinished {p['unfinished']}")
    missing = (r.get("completeness") or {}).get("missing")
    err = f" ERROR {r['error']}" if r.get("error") else ""
    return (f"cycle {r['cycle']} mode {r['mode']} ({seconds:.0f} s): " + "; ".join(parts)
            + f"; missing messages {missing}{err}")


def _pg_keys(cpu: dict) -> list[str]:
    """The watched PostgreSQL backends of a run's database (bench/throughput.py names them pg0, pg1, ...)."""
    return [k for k in cpu if k.startswith("pg") and k[2:].isdigit()]


# the processes of the system under test: the gateway and its journal writer process (C, P, O...), the
# forwarder (B), the executor (A)
SUT_PROCESSES = ("gateway", "journal", "journal1", "forwarder", "executor")


def cpu_per_order(run: dict, phase: str, database: bool = False) -> float | None:
    """µs of CPU per completed order of the system under test: the gateway and its writer process, or B's
    forwarder, or A's executor (``database``: and the PostgreSQL backends serving its database)."""
    cpu = (run.get("phases", {}).get(phase) or {}).get("cpu") or {}
    keys = [k for k in SUT_PROCESSES if k in cpu]
    if database:
        keys += _pg_keys(cpu)
    return sum(cpu[k]["us_per_order"] for k in keys) if keys else None


def compare_revisions(s: dict, phases: list[str], rates: list[str]) -> list[str]:
    """C (this tree) against O (the gateway at --rev), cycle by cycle: the same-run measure of a change."""
    return compare_modes(s, phases, rates, "C", "O", f"**This tree (C) against the gateway at `{s.get('rev')}` (O)**")


def compare_modes(s: dict, phases: list[str], rates: list[str], mine: str, base: str, title: str) -> list[str]:
    """Mode ``mine`` against mode ``base``, cycle by cycle: ``mine``'s figure divided by ``base``'s."""
    by = {(r["cycle"], r["mode"]): r for r in s["runs"] if r.get("phases")}
    cycles = sorted({c for c, _ in by})
    rows = []

    def fig(run, phase, *path):
        v = run["phases"].get(phase)
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        return v

    def row(label, get, better):
        ratios = []
        for c in cycles:
            cur, old = by.get((c, mine)), by.get((c, base))
            a, b = (get(cur), get(old)) if cur and old else (None, None)
            if a and b:
                ratios.append(a / b)
        if ratios:
            rows.append(f"| {label} | {', '.join(f'{x:.2f}' for x in ratios)} | "
                        f"**{statistics.median(ratios):.2f}** | {better} |")

    if "saturation" in phases:
        row("saturation orders/s", lambda r: fig(r, "saturation", "completed_per_s"), "higher")
        row("saturation CPU per order (gateway + writer process)", lambda r: cpu_per_order(r, "saturation"), "lower")
        row("saturation CPU per order (+ the database's backends)",
            lambda r: cpu_per_order(r, "saturation", database=True), "lower")
        row("saturation send→Fill p50", lambda r: fig(r, "saturation", "latency_us", "fill", "p50"), "lower")
    for ph in rates:
        row(f"{ph[5:]}/s order→ack p50", lambda r, ph=ph: fig(r, ph, "latency_us", "ack", "p50"), "lower")
        row(f"{ph[5:]}/s order→ack p99", lambda r, ph=ph: fig(r, ph, "latency_us", "ack", "p99"), "lower")
        row(f"{ph[5:]}/s CPU per order (+ the database's backends)",
            lambda r, ph=ph: cpu_per_order(r, ph, database=True), "lower")
        row(f"{ph[5:]}/s send→Fill p50", lambda r, ph=ph: fig(r, ph, "latency_us", "fill", "p50"), "lower")
        row(f"{ph[5:]}/s send→Fill p99", lambda r, ph=ph: fig(r, ph, "latency_us", "fill", "p99"), "lower")
        row(f"{ph[5:]}/s done/s", lambda r, ph=ph: fig(r, ph, "completed_per_s"), "higher")
    if not rows:
        return []
    return [f"{title}, same cycles: {mine}'s figure divided by {base}'s, per cycle and median", "",
            "| figure | per cycle | median | better |", "|---|---|---|---|", *rows, ""]


def thread_cpu(s: dict, mode: str, phase: str) -> dict[str, float]:
    """Median over the mode's runs of µs of CPU per order of each thread (by OS name) of its system under test
    (the gateway's, the forwarder's), from loadgen's per-thread samples."""
    per: dict[str, list[float]] = {}
    for r in s["runs"]:
        if r["mode"] != mode or not r.get("phases") or phase not in r["phases"]:
            continue
        for proc in (r["phases"][phase].get("cpu_threads") or {}).values():
            for comm, us in proc.items():
                per.setdefault(comm, []).append(us)
    return {comm: statistics.median(v) for comm, v in sorted(per.items(), key=lambda kv: -statistics.median(kv[1]))}


def thread_table(s: dict, modes: list[str], phase: str) -> list[str]:
    """The system under test's CPU per order by thread, per mode (the kernel's per-thread counts, not a sample)."""
    lines = []
    for m in modes:
        threads = thread_cpu(s, m, phase)
        if not threads:
            continue
        total = sum(threads.values()) or 1.0
        if not lines:
            lines += [f"**CPU per order by thread** ({phase}; µs per completed order of each thread of the process "
                      "under test, from /proc/PID/task/*/schedstat, threads of one OS name summed; the gateway's "
                      "journal writer process is not in it)", "", "| mode | thread | µs per order | share |",
                      "|---|---|---|---|"]
        for comm, us in threads.items():
            lines.append(f"| {m} | {comm} | {us:,.0f} | {100 * us / total:.0f}% |")
    return lines + [""] if lines else []


def markdown(s: dict) -> str:
    agg = s["aggregate"]
    modes = s["modes"]
    names = s["mode_names"]
    phases = [p["name"] for p in s["plan"]["phases"] if p["name"] != "warmup"]
    rates = [p for p in phases if p.startswith("rate-")]
    lines = [f"Command: `{s['command']}`  ", f"Machine: {s['machine']}  ",
             f"Started {s['started']}, {s['seconds']} s; load average before {s['load_average_before']}, "
             f"after {s['load_average_after']}. Medians over {s['cycles']} cycle(s); \"×A\" is the median over "
             "cycles of the ratio to mode A in the same cycle. Latencies in µs, HdrHistogram. Order mix: "
             f"{s['plan'].get('mix', 'mix')} (bench/workload.py).", ""]

    def g(mode, phase, key):
        return agg.get(mode, {}).get(phase, {}).get(key)

    def med(mode, phase, key):
        e = g(mode, phase, key)
        return None if e is None else e["median"]

    if "saturation" in phases:
        sat = next(p for p in s["plan"]["phases"] if p["name"] == "saturation")
        lines += [f"**Saturation** (closed loop, {sat['window']} orders in flight, {sat['orders']} orders)",
                  "", "| mode | orders/s | ×A | send→Fill p50 | p99 | p99.9 | max | final state p99 |",
                  "|---|---|---|---|---|---|---|---|"]
        for m in modes:
            lines.append(f"| {names[m]} | {_fmt(med(m, 'saturation', 'completed_per_s'))} | "
                         f"{_ratio(g(m, 'saturation', 'completed_per_s')) if m != 'A' else '1.00'} | "
                         f"{_fmt(med(m, 'saturation', 'latency_us.fill.p50'))} | "
                         f"{_fmt(med(m, 'saturation', 'latency_us.fill.p99'))} | "
                         f"{_fmt(med(m, 'saturation', 'latency_us.fill.p99_9'))} | "
                         f"{_fmt(med(m, 'saturation', 'latency_us.fill.max'))} | "
                         f"{_fmt(med(m, 'saturation', 'latency_us.final.p99'))} |")
        lines.append("")
    if rates:
        lines += ["**Open loop** (latency from the intended send time; late = sent more than 1 ms after it; done/s = "
                  "orders that reached their final state per second, from the phase's start to its last answer)", "",
                  "| offered/s | mode | sent/s | late | done/s | send→New p50 | p99 | send→Fill p50 | ×A | p90 | p99 | "
                  "×A | p99.9 | max | order→venue p50 | p99 | ×A |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for ph in rates:
            for m in modes:
                one = m == "A"
                late = med(m, ph, "late_sends")
                pct = med(m, ph, "late_pct")
                unf = med(m, ph, "unfinished")
                lines.append(
                    f"| {ph[5:]} | {m} | {_fmt(med(m, ph, 'sent_per_s'))} | "
                    f"{_fmt(late)} ({_fmt(pct, 1)}%){' UNFINISHED ' + _fmt(unf) if unf else ''} | "
                    f"{_fmt(med(m, ph, 'completed_per_s'))} | "
                    f"{_fmt(med(m, ph, 'latency_us.new.p50'))} | {_fmt(med(m, ph, 'latency_us.new.p99'))} | "
                    f"{_fmt(med(m, ph, 'latency_us.fill.p50'))} | "
                    f"{'1.00' if one else _ratio(g(m, ph, 'latency_us.fill.p50'))} | "
                    f"{_fmt(med(m, ph, 'latency_us.fill.p90'))} | {_fmt(med(m, ph, 'latency_us.fill.p99'))} | "
                    f"{'1.00' if one else _ratio(g(m, ph, 'latency_us.fill.p99'))} | "
                    f"{_fmt(med(m, ph, 'latency_us.fill.p99_9'))} | {_fmt(med(m, ph, 'latency_us.fill.max'))} | "
                    f"{_fmt(med(m, ph, 'latency_us.venue.p50'))} | {_fmt(med(m, ph, 'latency_us.venue.p99'))} | "
                    f"{'1.00' if one else _ratio(g(m, ph, 'latency_us.venue.p99'))} |")
        lines.append("")
        lines += ["**Other messages of the mix** (p50 / p99 µs; ack = first report: PendingNew in C/P, New in A/B)",
                  "", "| offered/s | mode | ack | venue reject | replace→Replaced | cancel→Canceled |",
                  "|---|---|---|---|---|---|"]
        for ph in rates:
            for m in modes:
                cells = []
                for h in ("ack", "reject", "replace", "cancel"):
                    cells.append(f"{_fmt(med(m, ph, f'latency_us.{h}.p50'))} / "
                                 f"{_fmt(med(m, ph, f'latency_us.{h}.p99'))}")
                lines.append(f"| {ph[5:]} | {m} | " + " | ".join(cells) + " |")
        lines.append("")
    if "C" in modes and "O" in modes:
        lines += compare_revisions(s, phases, rates)
    if "S" in modes:  # the database state log against the file's, with the same PostgreSQL journal (P), and C
        for base in [m for m in ("P", "C") if m in modes]:
            lines += compare_modes(s, phases, rates, "S", base,
                                   f"**The state log in PostgreSQL (S) against the file state log ({base})**")
    stage_modes = [m for m in modes if m in ("C", "P", "S", "W", "O", "D")]
    if stage_modes:
        lines += ["**Gateway stages** from its /metrics histograms (bucket-interpolated, p50 / p99 µs; buckets "
                  "50, 100, 200, 300, 500, 750 µs, 1, 2, 5 ms...; the risk chain's 1, 2, 5, 10, 15, 20, 30, 50, "
                  "100 µs...)", "",
                  "| phase | mode | client→venue D | client→client D (PendingNew) | venue→client 8 | core_handle "
                  "| risk chain |",
                  "|---|---|---|---|---|---|---|"]
        for ph in phases:
            for m in stage_modes:
                cells = []
                for label in ("hop client_to_venue D->D", "hop client_to_client D->8", "hop venue_to_client 8->8",
                              "core_handle", "risk_check"):
                    vals = [(r["phases"].get(ph, {}).get("gateway_stages") or {}).get(label)
                            for r in s["runs"] if r["mode"] == m and r.get("phases")]
                    vals = [v for v in vals if v]
                    if not vals:
                        cells.append("–")
                        continue
                    cells.append(" / ".join(
                        "> 1 s" if any(v.get(f"{key}_over_max") for v in vals) or
                        statistics.median(v[key] for v in vals) >= 1e6
                        else f"{statistics.median(v[key] for v in vals):,.0f}" for key in ("p50_us", "p99_us")))
                lines.append(f"| {ph} | {m} | " + " | ".join(cells) + " |")
        lines.append("")
    cpu_phase = "saturation" if "saturation" in phases else (rates[-1] if rates else None)
    if cpu_phase:
        lines += [f"**CPU per order** ({cpu_phase}; µs of CPU per completed order, user + system, and cores busy)",
                  "", "| mode | system under test (C, P: with its journal writer process) | venues (both) | load generator | "
                  "PostgreSQL backends of its database | other processes on the "
                  "machine (cores) |", "|---|---|---|---|---|---|"]
        for m in modes:
            rows = [r["phases"][cpu_phase].get("cpu", {}) for r in s["runs"]
                    if r["mode"] == m and r.get("phases") and cpu_phase in r["phases"]]
            if not rows:
                continue

            def cell(keys):
                per = [sum(c[k]["us_per_order"] for k in keys if k in c) for c in rows
                       if any(k in c for k in keys)]
                cores = [sum(c[k]["cores"] for k in keys if k in c) for c in rows if any(k in c for k in keys)]
                return f"{statistics.median(per):,.0f} ({statistics.median(cores):.2f})" if per else "–"

            other = [c["machine"]["other_cores"] for c in rows if "machine" in c]
            pg = sorted({k for c in rows for k in _pg_keys(c)})
            lines.append(f"| {m} | {cell(list(SUT_PROCESSES))} | {cell(['VENUE1', 'VENUE2'])} | "
                         f"{cell(['loadgen'])} | {cell(pg)} | {f'{statistics.median(other):.2f}' if other else '–'} |")
        lines.append("")
        lines += thread_table(s, modes, cpu_phase)
    lines += ["**Completeness** (every run): messages each peer sent or received against the journal (C, P: "
              "every MsgSeqNum of every session, both directions) or the forwarder's / executor's counts (A, B)", "",
              "| mode | runs | orders | unfinished | client errors | messages checked | missing | duplicated |",
              "|---|---|---|---|---|---|---|---|"]
    for m in modes:
        rs = [r for r in s["runs"] if r["mode"] == m]
        orders = sum(p["orders"] for r in rs for p in r.get("phases", {}).values())
        unf = sum(p["unfinished"] for r in rs for p in r.get("phases", {}).values())
        errs = sum((r.get("client") or {}).get("error_count", 0) for r in rs)
        checks = [c for r in rs for c in (r.get("completeness") or {}).get("checks", [])]
        failed = sum(1 for r in rs if r.get("error"))
        lines.append(f"| {m} | {len(rs)}{f' ({failed} FAILED)' if failed else ''} | {orders:,} | {unf} | {errs} | "
                     f"{sum(c['expected'] for c in checks):,} | {sum(c['missing'] for c in checks)} | "
                     f"{sum(c['extra'] for c in checks)} |")
    lines.append("")
    if s.get("profile"):
        p = s["profile"]
        how = ("py-spy --native --idle: every thread, running or waiting" if p.get("wall")
               else "py-spy --native --gil: the thread holding the GIL")
        lines += [f"**Profile** of C's gateway at saturation ({how}; {p.get('samples', 0)} samples; share of "
                  "samples)", "", "| thread | share |", "|---|---|"]
        for name, share in p.get("threads", []):
            lines.append(f"| {name} | {share:.1%} |")
        if p.get("wall") and p.get("core_thread"):
            lines += ["", "| the core thread's time (fixgw-core, wall clock) | share |", "|---|---|"]
            for name, share in p["core_thread"]:
                lines.append(f"| {name} | {share:.1%} |")
        lines += ["", "| own time (leaf frame) | share |", "|---|---|"]
        for name, share in p.get("leaf", [])[:15]:
            lines.append(f"| `{name}` | {share:.1%} |")
        lines += ["", "| inclusive (any frame on the stack) | share |", "|---|---|"]
        for name, share in p.get("inclusive", [])[:25]:
            lines.append(f"| `{name}` | {share:.1%} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(json.loads(Path(sys.argv[1]).read_text())))
