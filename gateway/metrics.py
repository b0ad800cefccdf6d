"""Prometheus metrics updated on events (prometheus-client). Names follow fixgw_<thing>_<unit>.

Figures that can be read from live state (sessions, journal, queues, open orders)
are collected at scrape time instead, by gateway.http.GatewayCollector.
"""
from __future__ import annotations

from prometheus_client import Counter, Histogram

INTERNAL_ERRORS = Counter(
    "fixgw_internal_errors_total",
    "Unexpected exceptions caught at a boundary (quickfix callback, core, outbound)",
    ["where"],
)
CORE_HANDLE_SECONDS = Histogram(
    "fixgw_core_handle_seconds", "Time from a message's arrival on a session thread to the core's actions sent",
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0),
)
DROPCOPY_SENT = Counter(
    "fixgw_dropcopy_copies_sent_total",
    "Drop copies handed to a drop-copy session (quickfix stores each, and sends it when the session is logged on)",
    ["session"],
)
DROPCOPY_REPLAYED = Counter(
    "fixgw_dropcopy_copies_replayed_total",
    "Drop copies sent again from the journal with PossResend (97=Y): cause catch_up after a sequence reset, "
    "store loss or restart; cause operator for `fixgw journal replay --to-session`",
    ["session", "cause"],
)
DROPCOPY_UNTRANSLATABLE = Counter(
    "fixgw_dropcopy_untranslatable_total",
    "Source ExecutionReports in a drop-copy session's scope that have no valid form in its FIX version (not sent)",
    ["session"],
)
DROPCOPY_REFUSED = Counter(
    "fixgw_dropcopy_inbound_refused_total",
    "Application messages a drop-copy receiver sent, refused with a BusinessMessageReject (nothing acted on)",
    ["session", "msg_type"],
)
