"""What an operator sees of a scenario: per-hop latency histograms on /metrics and structured log events."""
from __future__ import annotations

import json
import logging
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from gateway.observability.logs import JsonFormatter


def scrape(stack) -> dict[tuple, float]:
    host, port = stack.gateway.http.address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def hop_count(samples, hop: str, in_type: str, out_type: str) -> float:
    key = ("fixgw_hop_latency_seconds_count",
           (("hop", hop), ("in_msg_type", in_type), ("out_msg_type", out_type)))
    return samples.get(key, 0.0)


def test_a_scenario_populates_every_hop_histogram(stack):
    hops = [("client_to_venue", "D", "D"), ("client_to_venue", "F", "F"), ("client_to_venue", "G", "G"),
            ("venue_to_client", "8", "8"), ("client_to_client", "D", "8"), ("client_to_client", "F", "8"),
            ("client_to_client", "G", "8"), ("client_to_client", "F", "9")]
    before = scrape(stack)
    c = stack.client("CLIENT44")
    c.wait_exec(c.new_order("AAPL", "1", 100, "190.05"), "2")          # D out, ack, venue fill back
    resting = c.new_order("MSFT", "1", 100, "400")
    c.wait_exec(resting, "0")
    replaced = c.replace(resting, "MSFT", "1", 200, "400.5")           # G out, PendingReplace, Replaced
    c.wait_for(lambda m: m.get(35) == "8" and m.get(11) == replaced and m.get(150) == "5", what="Replaced")
    c.wait_exec(c.cancel(replaced, "MSFT", "1", 200), "4")              # F out, PendingCancel, Canceled
    unknown = c.cancel("NO-SUCH-ORDER", "MSFT", "1", 100)               # the gateway's own cancel reject
    c.wait_for(lambda m: m.get(35) == "9" and m.get(11) == unknown, what="OrderCancelReject")
    after = scrape(stack)
    for hop in hops:
        assert hop_count(after, *hop) > hop_count(before, *hop), f"no observation for hop {hop}"
    buckets = [v for (name, labels), v in after.items() if name == "fixgw_hop_latency_seconds_bucket"
               and ("hop", "client_to_venue") in labels and ("in_msg_type", "D") in labels]
    assert len(buckets) == 17  # 16 bounds from 50 µs to 1 s, and +Inf


def test_rejects_and_logons_are_logged_with_their_ids(stack, caplog):
    caplog.set_level(logging.INFO)
    c = stack.client("CLIENT42")
    rejected = c.new_order("NOPE", "1", 10, "1.00")
    report = c.wait_exec(rejected, "8")
    deadline = time.monotonic() + 5  # the core logs the reject just after handing it to quickfix
    while True:
        lines = [json.loads(JsonFormatter().format(r)) for r in list(caplog.records)]
        reject = [line for line in lines if line["msg"].startswith("order rejected")]
        if reject or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert reject, [line["msg"] for line in lines]
    assert reject[-1]["session"] == "CLIENT42" and reject[-1]["cl_ord_id"] == rejected
    assert reject[-1]["order_id"] == report[37]
    logons = [line for line in lines if line["msg"].startswith("session logged on")]
    assert any(line.get("session") == "CLIENT42" and line.get("role") == "client" for line in logons)


def test_every_metric_the_runbook_and_dashboard_name_is_served(stack):
    import re
    from pathlib import Path

    host, port = stack.gateway.http.address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
        families = list(text_string_to_metric_families(r.read().decode()))
    served = {s.name for f in families for s in f.samples}
    served |= {f.name + suffix for f in families for suffix in ("", "_total", "_bucket", "_count", "_sum")}
    docs = Path(__file__).resolve().parent.parent / "docs"
    for doc in (docs / "operations.md", docs / "grafana" / "fixgw.json"):
        names = set(re.findall(r"\b((?:fixgw|process)_[a-z_]+)\b", doc.read_text()))
        assert names, doc
        assert names <= served, f"{doc.name} names metrics /metrics does not serve: {sorted(names - served)}"
