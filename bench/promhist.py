"""The gateway's own stage timings, from two scrapes of its /metrics endpoint.

``fixgw_hop_latency_seconds{hop,in_msg_type,out_msg_type}`` (a message's arrival
in ``fromApp`` to the resulting message handed to quickfix) and
``fixgw_core_handle_seconds`` (arrival to the core's actions all sent) are
Prometheus histograms with fixed buckets (50 µs to 1 s); ``fixgw_risk_check_seconds``
(the risk chain's check of one order or replace) has buckets from 1 µs to 10 ms. The difference of the
cumulative bucket counts between a scrape before and one after a phase is that
phase's histogram; percentiles are interpolated linearly inside the bucket
that holds them (so they are only as fine as the buckets: 50, 100, 200, 300,
500, 750 µs, 1, 2, 5 ms, ...). A percentile beyond the last finite bucket is
reported as that bound with ``over_max`` set.
"""
from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

HISTOGRAMS = ("fixgw_hop_latency_seconds", "fixgw_core_handle_seconds", "fixgw_risk_check_seconds")
_LABELS = {"fixgw_core_handle_seconds": "core_handle", "fixgw_risk_check_seconds": "risk_check"}
COUNTERS = ("process_cpu_seconds",)


def parse(text: str | None) -> dict:
    """{(histogram name, labels without le): {"buckets": {le: cumulative}, "count", "sum"}} plus counters."""
    out: dict = {}
    if not text or text.startswith("# scrape failed"):
        return out
    for family in text_string_to_metric_families(text):
        if family.name in HISTOGRAMS:
            for s in family.samples:
                labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                h = out.setdefault((family.name, labels), {"buckets": {}, "count": 0.0, "sum": 0.0})
                if s.name.endswith("_bucket"):
                    h["buckets"][float(s.labels["le"])] = s.value
                elif s.name.endswith("_count"):
                    h["count"] = s.value
                elif s.name.endswith("_sum"):
                    h["sum"] = s.value
        elif family.name in COUNTERS:
            for s in family.samples:
                out[(family.name, ())] = s.value
    return out


def delta(before: dict, after: dict) -> dict:
    """Per histogram: the counts observed between the two scrapes."""
    out = {}
    for key, h in after.items():
        if not isinstance(h, dict):
            out[key] = h - (before.get(key) or 0.0)
            continue
        b = before.get(key, {"buckets": {}, "count": 0.0, "sum": 0.0})
        d = {"buckets": {le: n - b["buckets"].get(le, 0.0) for le, n in h["buckets"].items()},
             "count": h["count"] - b["count"], "sum": h["sum"] - b["sum"]}
        if d["count"] > 0:
            out[key] = d
    return out


def percentile(h: dict, q: float) -> tuple[float, bool]:
    """(value in seconds, beyond the last finite bucket) at quantile ``q`` (0..1) of a delta histogram."""
    total = h["count"]
    rank = q * total
    prev_le, prev_n = 0.0, 0.0
    for le in sorted(h["buckets"]):
        n = h["buckets"][le]
        if n >= rank and n > 0:
            if math.isinf(le):
                return prev_le, True
            if n == prev_n:
                return le, False
            return prev_le + (le - prev_le) * (rank - prev_n) / (n - prev_n), False
        prev_le, prev_n = le, n
    return prev_le, True


def summary(before_text: str | None, after_text: str | None) -> dict:
    """{"hop client_to_venue D->D": {count, mean_us, p50_us, p90_us, p99_us, p99_9_us}, ..., "cpu_s": x}."""
    d = delta(parse(before_text), parse(after_text))
    out: dict = {}
    for (name, labels), h in sorted(d.items()):
        if not isinstance(h, dict):
            out["gateway_cpu_s"] = round(h, 3)
            continue
        lab = dict(labels)
        label = (f"hop {lab['hop']} {lab['in_msg_type']}->{lab['out_msg_type']}" if name.startswith("fixgw_hop")
                 else _LABELS[name])
        row = {"count": int(h["count"]), "mean_us": round(h["sum"] / h["count"] * 1e6, 1)}
        for q, key in ((0.5, "p50_us"), (0.9, "p90_us"), (0.99, "p99_us"), (0.999, "p99_9_us")):
            v, over = percentile(h, q)
            row[key] = round(v * 1e6, 1)
            if over:
                row[key + "_over_max"] = True
        out[label] = row
    return out
