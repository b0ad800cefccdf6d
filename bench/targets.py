"""Issue 21's targets in one command: the full gateway (C) against a bare pass-through (B), same run, same machine.

Two invocations of bench/throughput.py, each with B and C interleaved in cycles:

  1. saturation: a closed loop (--window orders in flight) gives each mode's rate and its CPU per completed
     order (the gateway's process and its journal writer process for C; the forwarder for B);
  2. half load: an open loop at half of C's median saturation rate from step 1, for the order-to-ack p99
     (send -> the first report: PendingNew in C, New in B) of both at the same rate.

Then, per cycle, the ratios C/B (the median over cycles is the figure), and whether each holds:

  CPU per order at saturation        C <= 2.5x B
  saturation rate                    C >= 0.6x B
  order-to-ack p99 at half C's rate  C <= 2x B
  journal writer process             <= 15% of C's CPU (writer / (gateway + writer), at saturation)
  nothing lost                       every message of every run in the journal (C) or counted (B)

With --rev REV, mode O (the gateway at another revision, see throughput.py) runs in the same cycles and
each ratio is given for it too, and C against O: what changed since REV.

Run:    .venv/bin/python bench/targets.py                 (about 4 minutes)
        .venv/bin/python bench/targets.py --rev main~3    (C against an earlier gateway as well)
Smoke:  .venv/bin/python bench/targets.py --smoke         (seconds: checks the harness, not the targets)
Output: the table on stdout; bench/results/<name>-saturation.* and <name>-half.* are throughput.py's results.
Exit:   0 when every target holds (or with --smoke, when the runs completed), 1 otherwise.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import report  # noqa: E402
import throughput  # noqa: E402

# (what, how to read it, the bound, "<=" or ">=")
TARGETS = (
    ("CPU per order at saturation, C / B", "cpu_ratio", 2.5, "<="),
    ("saturation rate, C / B", "saturation_ratio", 0.6, ">="),
    ("order-to-ack p99 at half C's saturation rate, C / B", "ack_p99_ratio", 2.0, "<="),
    ("journal writer process, share of C's CPU", "journal_share", 0.15, "<="),
)


def cpu_per_order(run: dict) -> float | None:
    """µs of CPU per completed order at saturation of the system under test (C, O: with the writer process)."""
    return report.cpu_per_order(run, "saturation")


def saturation_rate(run: dict) -> float | None:
    return (run.get("phases") or {}).get("saturation", {}).get("completed_per_s")


def journal_share(run: dict) -> float | None:
    cpu = (run.get("phases") or {}).get("saturation", {}).get("cpu") or {}
    if "gateway" not in cpu or "journal" not in cpu:
        return None
    total = cpu["gateway"]["us_per_order"] + cpu["journal"]["us_per_order"]
    return cpu["journal"]["us_per_order"] / total if total else None


def ack_p99(run: dict) -> float | None:
    phases = run.get("phases") or {}
    name = next((n for n in phases if n.startswith("rate-")), None)
    return phases[name]["latency_us"]["ack"]["p99"] if name else None


def by_cycle(runs: list[dict]) -> dict[int, dict[str, dict]]:
    cycles: dict[int, dict[str, dict]] = {}
    for r in runs:
        cycles.setdefault(r["cycle"], {})[r["mode"]] = r
    return cycles


def _ratio(a, b):
    return a / b if a is not None and b else None


def figures(sat_runs: list[dict], half_runs: list[dict], mode: str, base: str) -> dict[str, dict[int, float]]:
    """Per cycle, the ratios of ``mode`` to ``base`` (and the writer's share of ``mode``'s CPU):
    {target key: {cycle: value}}."""
    out: dict[str, dict[int, float]] = {key: {} for _, key, _, _ in TARGETS}
    for cycle, runs in by_cycle(sat_runs).items():
        m, b = runs.get(mode), runs.get(base)
        if m is None or b is None:
            continue
        for key, value in (("cpu_ratio", _ratio(cpu_per_order(m), cpu_per_order(b))),
                           ("saturation_ratio", _ratio(saturation_rate(m), saturation_rate(b))),
                           ("journal_share", journal_share(m))):
            if value is not None:
                out[key][cycle] = value
    for cycle, runs in by_cycle(half_runs).items():
        m, b = runs.get(mode), runs.get(base)
        if m is not None and b is not None:
            value = _ratio(ack_p99(m), ack_p99(b))
            if value is not None:
                out["ack_p99_ratio"][cycle] = value
    return out


def holds(value: float, bound: float, op: str) -> bool:
    return value <= bound if op == "<=" else value >= bound


def lost(runs: list[dict]) -> list[str]:
    """What went wrong in any run: errors, unfinished orders, messages missing or duplicated (a journal check's
    ``extra``: a MsgSeqNum seen more than once)."""
    problems = []
    for r in runs:
        c = r.get("completeness") or {}
        duplicated = sum(check.get("extra", 0) for check in c.get("checks", ()))
        unfinished = sum(p.get("unfinished", 0) for p in (r.get("phases") or {}).values())
        if r.get("error") or c.get("missing") or duplicated or unfinished:
            problems.append(f"cycle {r['cycle']} mode {r['mode']}: error {r.get('error')!r}, missing "
                            f"{c.get('missing')}, duplicated {duplicated}, unfinished {unfinished}")
    return problems


def table(sat_runs: list[dict], half_runs: list[dict], modes: list[str], check: bool) -> tuple[str, bool]:
    lines = ["| target | bound | " + " | ".join(f"{m}/B per cycle | {m}/B median" for m in modes if m != "B")
             + " | holds (C) |", "|---|---|" + "---|---|" * (len(modes) - 1) + "---|"]
    ok = True
    per_mode = {m: figures(sat_runs, half_runs, m, "B") for m in modes if m != "B"}
    for what, key, bound, op in TARGETS:
        cells = []
        for m, figs in per_mode.items():
            values = list(figs[key].values())
            cells.append(", ".join(f"{v:.2f}" for v in values) or "-")
            cells.append(f"**{statistics.median(values):.2f}**" if values else "-")
        c = list(per_mode.get("C", {}).get(key, {}).values())
        verdict = "-" if not c else ("yes" if holds(statistics.median(c), bound, op) else "NO")
        ok &= verdict == "yes"
        lines.append(f"| {what} | {op} {bound:g} | " + " | ".join(cells) + f" | {verdict} |")
    problems = lost(sat_runs + half_runs)
    ok &= not problems
    lines.append(f"| nothing lost (every run) | 0 | {'; '.join(problems) or 'none missing, duplicated or unfinished'}"
                 + " |" * (2 * len(per_mode) - 1) + f" | {'yes' if not problems else 'NO'} |")
    if "O" in per_mode:
        against = []
        for _, key, _, _ in TARGETS:
            c, o = per_mode["C"][key], per_mode["O"][key]
            ratios = [c[cycle] / o[cycle] for cycle in c if o.get(cycle)]  # the same cycle's C over O
            if ratios:
                against.append(f"{key} {statistics.median(ratios):.2f}")
        lines += ["", "C against O (the gateway at --rev) in the same cycles, median of per-cycle ratios: "
                  + "; ".join(against)]
    return "\n".join(lines), (ok if check else not problems)


def run_throughput(argv: list[str], quiet: bool) -> dict:
    name = argv[argv.index("--name") + 1]
    out = Path(argv[argv.index("--out") + 1])
    sink = io.StringIO() if quiet else None
    with (contextlib.redirect_stdout(sink) if sink is not None else contextlib.nullcontext()):
        throughput.main(argv)
    return json.loads((out / f"{name}.json").read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--saturation-orders", type=int, default=3000)
    ap.add_argument("--half-duration", type=float, default=8.0, help="seconds of the half-load phase")
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--rev", default=None, help="also run the gateway at this git revision (mode O)")
    ap.add_argument("--smoke", action="store_true", help="one short cycle: checks the harness, not the targets")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    ap.add_argument("--name", default=None)
    ap.add_argument("--verbose", action="store_true", help="print throughput.py's own lines and tables")
    args = ap.parse_args(argv)
    if args.smoke:
        args.cycles, args.saturation_orders, args.half_duration, args.warmup = 1, 60, 0.5, 20
    modes = ["B", "C"] + (["O"] if args.rev else [])
    name = args.name or time.strftime("targets-%Y%m%dT%H%M%S")
    common = ["--modes", ",".join(modes), "--cycles", str(args.cycles), "--warmup", str(args.warmup),
              "--warmup-rate", "200" if args.smoke else "500", "--pg-url", "", "--out", str(args.out),
              "--drain", "15" if args.smoke else "30"]
    if args.rev:
        common += ["--rev", args.rev]
    started = time.time()
    sat = run_throughput(common + ["--rates", "", "--saturation-orders", str(args.saturation_orders),
                                   "--name", f"{name}-saturation"], quiet=not args.verbose)
    c_rates = [saturation_rate(r) for r in sat["runs"] if r["mode"] == "C" and saturation_rate(r)]
    if not c_rates:
        print("C reached no saturation rate; see " + str(args.out / f"{name}-saturation.md"))
        return 1
    half = round(statistics.median(c_rates) / 2)
    half_run = run_throughput(common + ["--rates", str(half), "--duration", str(args.half_duration),
                                        "--saturation-orders", "0", "--name", f"{name}-half"],
                              quiet=not args.verbose)
    text, ok = table(sat["runs"], half_run["runs"], modes, check=not args.smoke)
    header = (f"Issue 21's targets: {sat['machine']}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
              f"{round(time.time() - started)} s; {args.cycles} cycle(s) of {', '.join(modes)}; saturation "
              f"{args.saturation_orders} orders, 32 in flight (C median {statistics.median(c_rates):.0f}/s); half "
              f"load {half}/s for {args.half_duration:g} s.")
    threads = report.thread_cpu(sat, "C", "saturation")
    if threads:
        total = sum(threads.values()) or 1.0
        text += ("\n\nC's gateway process at saturation, CPU per order by thread (median of cycles): "
                 + ", ".join(f"{comm} {us:,.0f} µs ({100 * us / total:.0f}%)" for comm, us in threads.items()))
    print(header)
    print()
    print(text)
    (args.out / f"{name}.md").write_text(header + "\n\n" + text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
