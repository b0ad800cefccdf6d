"""Prometheus metrics updated on events (prometheus-client). Names follow fixgw_<thing>_<unit>.

Figures that can be read from live state (sessions, journal, queues, open orders)
are collected at scrape time instead, by gateway.http.GatewayCollector.

The hop histograms are observed on the core thread for every message sent, so
each (hop, MsgType) child is bound here once: an observation is then one dict
lookup and ``observe()``, with no label resolution on the order path. They are
``CoreHistogram``s: written by the core thread only, so an observation takes no
lock (prometheus-client's Histogram takes one twice per observation, a cost the
benchmark profile showed on the core thread).
"""
from __future__ import annotations

from bisect import bisect_left

from prometheus_client import REGISTRY, Counter, Gauge, disable_created_metrics
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

# No `<counter>_created` series next to every `_total` (one more series per counter and label set that no
# dashboard or alert reads). The library checks this flag when it renders samples, so it holds for every
# counter in the process (gateway.admin.http_guard's too): gateway.admin.http imports this module before serving /metrics.
disable_created_metrics()


class _CoreHistogramChild:
    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket (not cumulative); the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self._bounds, value)] += 1  # "le": a value equal to a bound is in its bucket
        self.sum += value


class CoreHistogram:
    """A Prometheus histogram that one thread observes (the core thread) and the scrape reads.

    An observation is a bisect and two additions under the GIL, with no lock. A scrape
    may see a bucket and the sum one observation apart, which Prometheus's rate() and
    histogram_quantile() do not notice. Same exposition as a prometheus-client Histogram
    (``_bucket``, ``_count``, ``_sum``).
    """

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...] = (),
                 buckets: tuple[float, ...] = (), registry=REGISTRY):
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(sorted(float(b) for b in buckets))
        self._children: dict[tuple[str, ...], _CoreHistogramChild] = {}
        if not self.labelnames:
            self._children[()] = _CoreHistogramChild(self.bounds)
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> _CoreHistogramChild:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, not {values}")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._children.setdefault(key, _CoreHistogramChild(self.bounds))
        return child

    def observe(self, value: float) -> None:
        self._children[()].observe(value)

    def describe(self):
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self):
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        for key, child in list(self._children.items()):
            counts, total = list(child.counts), child.sum
            cumulative, running = [], 0
            for le, n in zip(les, counts):
                running += n
                cumulative.append((le, running))
            family.add_metric(list(key), cumulative, sum_value=total)
        yield family


# 50 µs to 1 s: the gateway's own hops are tens to hundreds of microseconds when
# healthy; milliseconds mean queueing, a slow session lock or a GC pause.
LATENCY_BUCKETS = (0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05,
                   0.1, 0.25, 0.5, 1.0)

STATE_LOG_HALTS = Counter(
    "fixgw_state_log_halts_total",
    "Times the gateway stopped because its database state log failed for good (fenced, or the database down "
    "past [recovery] state_log_grace_s): it sent nothing more and the process exited non-zero",
)
INTERNAL_ERRORS = Counter(
    "fixgw_internal_errors_total",
    "Unexpected exceptions caught at a boundary (quickfix callback, core, outbound)",
    ["where"],
)
CORE_HANDLE_SECONDS = CoreHistogram(
    "fixgw_core_handle_seconds",
    "Time from a message's arrival on a session thread to the core's decision recorded and its messages handed "
    "to the sender thread",
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0),
)
RISK_CHECK_SECONDS = CoreHistogram(
    "fixgw_risk_check_seconds",
    "Time the pre-trade risk chain took to check one new order or replace (every rule, on the core thread)",
    buckets=(0.000001, 0.000002, 0.000005, 0.00001, 0.000015, 0.00002, 0.00003, 0.00005, 0.0001, 0.00025, 0.001,
             0.01),
)
HOP_SECONDS = CoreHistogram(
    "fixgw_hop_latency_seconds",
    "Time from a message's arrival (fromApp) to a resulting message handed to quickfix (sendToTarget returned). "
    "hop: client_to_venue (order, cancel, replace sent to the venue), venue_to_client (execution report or "
    "cancel reject to the client), client_to_client (the gateway's own ack or reject). in_msg_type: the MsgType "
    "that arrived; out_msg_type: the MsgType sent",
    ("hop", "in_msg_type", "out_msg_type"),
    buckets=LATENCY_BUCKETS,
)

# (hop, in MsgType, out MsgType) -> bound child; gateway.process.sender maps (command, action) types onto these keys
HOPS = {key: HOP_SECONDS.labels(*key) for key in (
    ("client_to_venue", "D", "D"), ("client_to_venue", "F", "F"), ("client_to_venue", "G", "G"),
    ("venue_to_client", "8", "8"), ("venue_to_client", "9", "9"),
    ("client_to_client", "D", "8"), ("client_to_client", "F", "8"), ("client_to_client", "F", "9"),
    ("client_to_client", "G", "8"), ("client_to_client", "G", "9"),
)}

RISK_REJECTS = Counter(
    "fixgw_risk_rejects_total",
    "New orders and replaces the pre-trade risk chain refused, by the rule that fired; mode=shadow counts the "
    "ones a shadow rule would have refused (they were let through)",
    ["rule", "mode"],
)
ROUTED_ORDERS = Counter(
    "fixgw_routed_orders_total", "Orders the router sent to a venue (NewOrderSingle out), by venue", ["venue"],
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
DROPCOPY_STREAM_HELD = Gauge(
    "fixgw_dropcopy_stream_held_seconds",
    "PostgreSQL: how long the oldest transaction on the database server that holds a transaction id has run; drop "
    "copies of rows written after it began wait until it ends (gateway/journal/stream.py). Transactions of other "
    "database roles count only if fixgw's role may see them (pg_read_all_stats). 0 on SQLite",
)
ROUTING_DECISIONS = Counter(
    "fixgw_routing_decisions_total",
    "Routing decisions by strategy (best-price, preferred, sweep, direct) and result (routed, or none: no venue "
    "could take the order)",
    ["strategy", "result"],
)

# No order left in doubt (desk/liveness.py)
ORDERS_IN_DOUBT = Gauge(
    "fixgw_orders_in_doubt",
    "Orders whose state at a venue the gateway does not know (a child unanswered after its status requests, or "
    "reported by the venue in a state the gateway cannot reconcile); `fixgw orders list --in-doubt` names them",
)
IN_DOUBT_TOTAL = Counter(
    "fixgw_orders_put_in_doubt_total", "Orders that became in doubt (each time), by venue", ["venue"],
)
VENUE_STATUS_REQUESTS = Counter(
    "fixgw_venue_status_requests_total",
    "OrderStatusRequests (H) sent to venues to reconcile a child order (unanswered in time, the venue's logon, an "
    "operator's reconcile), by venue",
    ["venue"],
)
VENUE_MESSAGE_REJECTS = Counter(
    "fixgw_venue_message_rejects_total",
    "Our messages a venue refused with a session-level Reject (level=session, 35=3) or a BusinessMessageReject "
    "(level=business, 35=j), by venue and the refused MsgType",
    ["venue", "level", "ref_msg_type"],
)
VENUE_LOGON_FAILURES = Counter(
    "fixgw_venue_logon_failures_total",
    "Our logons a venue did not accept (gateway/process/logon_watch.py), by venue and reason: logout (the venue answered "
    "with a Logout, its Text in the log), disconnect (it closed the connection without an answer: usually CompIDs "
    "or a FIX version it does not know), timeout (no answer within the logon timeout)",
    ["venue", "reason"],
)

# quickfix's acceptor threads reading on after closing (sessions/closing.py): the gate gave up waiting
QUICKFIX_UNRELEASED = Counter(
    "fixgw_quickfix_unreleased_connections_total",
    "Client or drop-copy connections quickfix closed and had not let go of 3 s later: its thread may have read "
    "bytes of a socket opened since (docs/quickfix-binding.md, 'A closed connection's thread reads on')",
)
# the front door (gateway/security/frontdoor.py): connections it closed on the public FIX ports, and why
CONNECTIONS_CLOSED = Counter(
    "fixgw_connections_closed_total",
    "Connections the front door closed on a public FIX port. port_kind: client or dropcopy; reason: "
    "prelogon_timeout, too_large, garbage, not_logon, unknown_session, session_in_use, too_many_connections, "
    "tls_handshake, gateway_unreachable",
    ["port_kind", "reason"],
)

# an active/standby cluster (gateway/cluster/): the lease this instance holds while it is the active one
CLUSTER_LEASE_RENEWALS = Counter(
    "fixgw_cluster_lease_renewals_total",
    "Renewals of the cluster's lease by this instance while it is the active one (every third of lease_ttl_s)",
)
CLUSTER_LEASE_LOSSES = Counter(
    "fixgw_cluster_lease_losses_total",
    "Times this instance lost the lease it held (not renewed in time, or taken over); it then ends at once",
)
CLUSTER_CONTROLS_APPLIED = Counter(
    "fixgw_cluster_controls_applied_total",
    "Commands of a sharded cluster's control plane this instance applied for its shard, by kind and whether it "
    "carried them out (ok false: refused or failed; `fixgw cluster controls` says why)",
    ["kind", "ok"],
)
RISK_BUDGET_TOP_UPS = Counter(
    "fixgw_risk_budget_top_ups_total",
    "Times this shard asked the database for more of a shared risk limit (one transaction each), by limit",
    ["limit"],
)
RISK_BUDGET_REFUSALS = Counter(
    "fixgw_risk_budget_refusals_total",
    "Orders refused because the other shards hold the rest of a shared risk limit, by limit",
    ["limit"],
)
CLUSTER_TAKEOVERS = Counter(
    "fixgw_cluster_takeovers_total", "Times this instance acquired the cluster's lease and became the active one",
)
CLUSTER_IS_LEADER = Gauge(
    "fixgw_cluster_is_leader",
    "1 while this instance holds its cluster's lease (the active one); 0 otherwise, and in a gateway without a "
    "[cluster] (a standby serves no /metrics until it leads)",
)


def count_callback_error(callback: str, session: str, exc: BaseException) -> None:
    """A quickfix callback's exception, caught at the boundary (sessions/ logs it): counted under its callback."""
    INTERNAL_ERRORS.labels(callback).inc()
