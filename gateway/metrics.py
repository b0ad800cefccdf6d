"""Prometheus metrics (prometheus-client). Names follow the fixgw_<thing>_<unit> convention."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INTERNAL_ERRORS = Counter(
    "fixgw_internal_errors_total",
    "Unexpected exceptions caught at a boundary (quickfix callback, core, outbound)",
    ["where"],
)
MESSAGES_HANDLED = Counter(
    "fixgw_core_commands_total", "Commands handled by the core, by type", ["command"],
)
CORE_QUEUE_DEPTH = Gauge("fixgw_core_queue_depth", "Commands waiting for the core thread")
CORE_HANDLE_SECONDS = Histogram(
    "fixgw_core_handle_seconds", "Time from a message's arrival on a session thread to the core's actions sent",
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0),
)
