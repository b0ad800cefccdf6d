"""The report of bench/failover.py: a table per event, "k/N" per check, the clients' logon times (p50, max), the
problems found in words; as markdown (printed and written) and JSON (also: python bench/failover_report.py R.json)."""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from failover_checks import KEEP

CHECKS = ("logon", "seq", "orders", "clordid", "journal", "dropcopy", "deposed")
TITLES = {"logon": "logon ≤ 5 s", "seq": "seq continuous", "orders": "orders known as at venue",
          "clordid": "ClOrdID once", "journal": "journal gapless, chain ok", "dropcopy": "drop copy once, in order",
          "deposed": "old active silent / exit 3 (handover: exit 0, numbers exact)"}


def totals(result: dict) -> dict:
    out = {}
    for name in CHECKS:
        ran = [e["checks"][name] for e in result["events"] if name in e.get("checks", {})]
        if ran:
            out[name] = {"passed": sum(1 for c in ran if c["ok"]), "of": len(ran)}
    logons = [t for e in result["events"] for t in (e.get("logon_s") or {}).values()]
    done = sorted(t for t in logons if t is not None)
    takeovers = sorted(e["takeover_s"] for e in result["events"] if e.get("takeover_s") is not None)
    out["logon_s"] = _spread(done) | {"never": len(logons) - len(done)}
    out["takeover_s"] = _spread(takeovers)
    out["all_passed"] = bool(result["events"]) and all(v["passed"] == v["of"] for k, v in out.items() if k in CHECKS)
    return out


def _spread(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50": None, "max": None}
    return {"n": len(values), "p50": round(statistics.median(values), 3), "max": round(max(values), 3)}


def _mark(e: dict, name: str) -> str:
    c = e.get("checks", {}).get(name)
    return "–" if c is None else ("ok" if c["ok"] else f"**FAIL** ({c['problem_count']})")


def markdown(result: dict) -> str:
    t = result["totals"]
    a = result["args"]
    lines = [f"# Failover harness, {result['started']}", "",
             f"- machine: {result['machine']}; load average before {result['load_before']}, after "
             f"{result['load_after']}",
             f"- {a['instances']} instances, lease ttl {a['ttl']} s, seq_gap {a['seq_gap']}; flow {a['rate']} "
             f"orders/s from 2 FIX.4.4 clients (bench/workload.py's mix), 1 drop-copy receiver, 2 venue simulators; "
             f"seed {a['seed']}; {result['elapsed_s']:.0f} s",
             f"- events: {', '.join(f'{n} {k}' for k, n in result['planned'].items())}"
             + (f" (run: {len(result['events'])}; {result['stopped_early']})" if result.get("stopped_early") else ""),
             "", "| # | event | old → new | takeover s | clients logged on s | orders checked, unsettled | "
             + " | ".join(TITLES[c] for c in CHECKS) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(CHECKS)]
    for e in result["events"]:
        if "error" in e:
            lines.append(f"| {e['index']} | {e['kind']} | error: {e['error']} |")
            continue
        logons = ", ".join("–" if v is None else f"{v:.2f}" for v in e["logon_s"].values())
        o = e["checks"]["orders"]["figures"]
        lines.append(f"| {e['index']} | {e['kind']} | {e['old']} → {e.get('new') or '?'} | "
                     f"{e['takeover_s'] if e['takeover_s'] is not None else '–'} | {logons} | "
                     f"{o['checked']}, {o['unsettled']} | "
                     + " | ".join(_mark(e, c) for c in CHECKS) + " |")
    lines += ["", "**Totals** (events passing / events checked): "
              + "; ".join(f"{TITLES[c]} {t[c]['passed']}/{t[c]['of']}" for c in CHECKS if c in t), "",
              f"Clients logged on to the successor after the event: p50 {t['logon_s']['p50']} s, max "
              f"{t['logon_s']['max']} s over {t['logon_s']['n']} logons ({t['logon_s']['never']} never); the "
              f"successor held the lease p50 {t['takeover_s']['p50']} s, max {t['takeover_s']['max']} s after.", ""]
    figures = result.get("figures", {})
    if figures:
        lines += ["Figures: " + "; ".join(f"{k} {v}" for k, v in figures.items()), ""]
    problems = [(e["index"], e["kind"], n, c) for e in result["events"]
                for n, c in e.get("checks", {}).items() if not c["ok"]]
    if problems:
        lines += ["## Problems", ""]
        for i, kind, name, c in problems:
            lines.append(f"- event {i} ({kind}), {TITLES.get(name, name)}: {c['problem_count']} problem(s); "
                         f"figures {c['figures']}")
            lines += [f"  - {p}" for p in c["problems"][:KEEP]]
            if name == "logon":
                ev = result["events"][i - 1]
                lines += [f"  - {client}'s attempts (s after the event): " + "; ".join(ev["attempts"][client])
                          for client, t in ev["logon_s"].items() if t is None or t > 5.0]
    if result.get("unplanned_exits"):
        lines += ["", "## Instances that ended unasked", ""]
        lines += [f"- {x}" for x in result["unplanned_exits"]]
    return "\n".join(lines) + "\n"


def write(result: dict, out_dir: Path, name: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    j, m = out_dir / f"{name}.json", out_dir / f"{name}.md"
    j.write_text(json.dumps(result, indent=1, default=str))
    m.write_text(markdown(result))
    return j, m


if __name__ == "__main__":
    print(markdown(json.loads(Path(sys.argv[1]).read_text())))
