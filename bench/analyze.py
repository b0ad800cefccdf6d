"""Turn the load generator's raw per-order stamps into the benchmark's figures.

Latencies go into HdrHistograms (1 µs to 60 s, 3 significant digits) in
microseconds, measured from each order's *intended* send time (open loop) or
its actual send time (closed loop, where the two are the same):

- ack: the first report the client gets for the order (PendingNew from the
  gateway; New from modes A and B, which have no PendingNew);
- new: the New (ExecType 0) report, i.e. the venue's acknowledgement back at the client;
- fill: the last fill (OrdStatus 2) of a marketable order;
- venue: the order's arrival at the venue's quickfix callback (the executor in mode A);
- reject: the venue's reject back at the client (kind X);
- replace / cancel: a follow-up's send to its Replaced / Canceled;
- final: the order's final state, whatever its kind.
"""
from __future__ import annotations

import statistics

from hdrh.histogram import HdrHistogram

import promhist

PCTS = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9))
LATE_NS = 1_000_000
MARKETABLE = ("M", "M2", "MI")


def new_hist() -> HdrHistogram:
    return HdrHistogram(1, 60_000_000, 3)


def hist_summary(h: HdrHistogram) -> dict | None:
    n = h.get_total_count()
    if not n:
        return None
    out = {"count": n}
    for key, q in PCTS:
        out[key] = h.get_value_at_percentile(q)
    out["max"] = h.get_max_value()
    out["mean"] = round(h.get_mean_value(), 1)
    return out


def phase_figures(phase: dict, fields: list[str], stamps: dict[str, int], child_key: str | None,
                  pids: dict[str, int] | None = None) -> dict:
    """Figures of one phase of one run. ``child_key``: the row field the venue knows the order by."""
    ix = {f: i for i, f in enumerate(fields)}
    K, INT, SENT = ix["kind"], ix["intended"], ix["sent"]
    ACK, NEW, FILL, REJ = ix["ack"], ix["new"], ix["fill"], ix["rej"]
    RS, RD, CS, CD, DONE, ERR, NF = (ix["rep_sent"], ix["replaced"], ix["cxl_sent"], ix["canceled"], ix["done"],
                                     ix["err"], ix["fills"])
    hs = {k: new_hist() for k in ("ack", "new", "fill", "venue", "reject", "replace", "cancel", "final")}
    late = unfinished = errors = fills = 0
    worst_late = 0
    ckey = ix.get(child_key) if child_key else None
    rows = phase["rows"]
    for r in rows:
        t0 = r[INT]
        kind = r[K]
        lag = r[SENT] - t0
        if lag > LATE_NS:
            late += 1
        worst_late = max(worst_late, lag)
        if r[ACK]:
            hs["ack"].record_value(max(1, (r[ACK] - t0) // 1000))
        if r[NEW] and kind != "X":
            hs["new"].record_value(max(1, (r[NEW] - t0) // 1000))
        if r[FILL] and kind in MARKETABLE:
            hs["fill"].record_value(max(1, (r[FILL] - t0) // 1000))
        if r[REJ] and kind == "X":
            hs["reject"].record_value(max(1, (r[REJ] - t0) // 1000))
        if r[RD] and r[RS]:
            hs["replace"].record_value(max(1, (r[RD] - r[RS]) // 1000))
        if r[CD] and r[CS]:
            hs["cancel"].record_value(max(1, (r[CD] - r[CS]) // 1000))
        if r[DONE]:
            hs["final"].record_value(max(1, (r[DONE] - t0) // 1000))
        else:
            unfinished += 1
        if r[ERR]:
            errors += 1
        fills += r[NF]
        if ckey is not None:
            st = stamps.get(r[ckey])
            if st:
                hs["venue"].record_value(max(1, (st - t0) // 1000))
    n = len(rows)
    t0 = phase["t0"]
    out = {
        "orders": n, "completed": phase["completed"], "unfinished": unfinished, "errors": errors, "fills": fills,
        "offered_per_s": phase["rate"] or None, "window": phase["window"] or None,
        "sent_per_s": round(n / max(1e-9, (phase["sent_end"] - t0) / 1e9), 1) if n else 0,
        "completed_per_s": round(phase["completed"] / max(1e-9, (phase["done_end"] - t0) / 1e9), 1)
        if phase["done_end"] else 0,
        "late_sends": late if phase["rate"] else None,
        "late_pct": round(100.0 * late / n, 2) if phase["rate"] and n else None,
        "worst_send_lag_us": worst_late // 1000,
        "latency_us": {k: hist_summary(h) for k, h in hs.items()},
        "hdr": {k: h.encode().decode() for k, h in hs.items() if h.get_total_count()},
    }
    c0, c1 = phase.get("cpu_before") or {}, phase.get("cpu_after") or {}
    wall = (c1.get("wall_ns", 0) - c0.get("wall_ns", 0)) / 1e9
    if wall > 0:
        cpu = {}
        for name in c1:
            if name in ("wall_ns", "machine_total_s", "machine_busy_s") or name.startswith("threads:"):
                continue
            if c0.get(name) is not None and c1.get(name) is not None:
                used = c1[name] - c0[name]
                cpu[name] = {"cores": round(used / wall, 3),
                             "us_per_order": round(used / max(1, phase["completed"]) * 1e6, 1)}
        if "machine_busy_s" in c1 and "machine_busy_s" in c0:
            total = c1["machine_total_s"] - c0["machine_total_s"]
            busy = c1["machine_busy_s"] - c0["machine_busy_s"]
            ours = sum(v["cores"] for v in cpu.values()) * wall
            cpu["machine"] = {"busy_pct": round(100 * busy / total, 1) if total else None,
                              "other_cores": round(max(0.0, busy - ours) / wall, 3)}
        out["cpu"] = cpu
        threads = {}
        for name in c1:
            if name.startswith("threads:") and name in c0:
                t0, t1 = c0[name], c1[name]
                # threads alive at the end; one started during the phase counts from zero
                threads[name.partition(":")[2]] = {
                    comm: round((t1[comm] - t0.get(comm, 0.0)) / max(1, phase["completed"]) * 1e6, 1)
                    for comm in t1 if t1[comm] > t0.get(comm, 0.0)}
        if threads:
            out["cpu_threads"] = threads  # process -> thread name -> µs of CPU per completed order
    if phase.get("metrics_after"):
        out["gateway_stages"] = promhist.summary(phase.get("metrics_before"), phase.get("metrics_after"))
    return out


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def aggregate(runs: list[dict], modes: list[str]) -> dict:
    """Median over cycles of each figure, and the median over cycles of its ratio to mode A in the same cycle."""
    out: dict = {}
    by = {(r["cycle"], r["mode"]): r for r in runs if r.get("phases")}
    cycles = sorted({r["cycle"] for r in runs})
    phases = []
    for r in runs:
        for p in r.get("phases", {}):
            if p not in phases:
                phases.append(p)

    def value(run, phase, path):
        v = run["phases"].get(phase) if run else None
        for k in path:
            if v is None:
                return None
            v = v.get(k)
        return v

    paths = [("sent_per_s",), ("completed_per_s",), ("late_pct",), ("late_sends",), ("unfinished",)]
    paths += [("latency_us", h, p) for h in ("ack", "new", "fill", "venue", "reject", "replace", "cancel", "final")
              for p in ("p50", "p90", "p99", "p99_9", "max")]
    for mode in modes:
        for phase in phases:
            fig = {}
            for path in paths:
                vals = [value(by.get((c, mode)), phase, path) for c in cycles]
                m = median(vals)
                if m is None:
                    continue
                entry = {"median": m, "per_cycle": vals}
                if mode != "A":
                    ratios = []
                    for c, v in zip(cycles, vals):
                        a = value(by.get((c, "A")), phase, path)
                        if v is not None and a:
                            ratios.append(v / a)
                    if ratios:
                        entry["ratio_to_A"] = round(statistics.median(ratios), 2)
                fig[".".join(path)] = entry
            out.setdefault(mode, {})[phase] = fig
    return out
