"""The gateway's HTTP endpoint: Prometheus metrics at /metrics, health at /health, admin API at /admin/.

Session, journal and engine figures are read when Prometheus scrapes (a custom
collector), so they cost the order path nothing. It listens on 127.0.0.1 by
default: it is for the operator's own Prometheus and load balancer checks. A
slow, silent, oversized or vanishing client is closed with the reason logged and
counted (gateway/admin/http_guard.py, the [http] limits).
"""
from __future__ import annotations

import json
import logging
import threading
import time

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.observability import metrics as _metrics  # noqa: F401 - its setup (no `_created` series) holds before the first scrape
from gateway.config import HttpConfig
from gateway.admin.http_guard import GuardedHTTPServer, GuardedRequestHandler
from gateway.security.tls import server_context

log = logging.getLogger("fixgw.http")

# /health says unhealthy when the journal's oldest uncommitted row is older than this
JOURNAL_LAG_LIMIT_S = 5.0
JOURNAL_LAG_HELP = ("How far the journal's durable record is behind now: age in seconds of the oldest message or "
                    "event captured and not yet committed to the database; 0 when all are committed. `fixgw status` "
                    "and /health show the same figure (journal.commit_lag_seconds)")


def health(gateway) -> tuple[bool, dict]:
    """(healthy, details): the journal is committing, every venue session is logged on, the state log writes.

    Drop-copy sessions are listed (logged on, copies pending) but never make the gateway
    unhealthy: a receiver that is down loses nothing (its copies wait in its store and the
    journal), and taking the gateway out of rotation would stop trading for every client.
    Alert on fixgw_session_up{role="dropcopy"} and fixgw_dropcopy_pending_copies instead.
    """
    journal = gateway.journal
    lag = journal.commit_lag_seconds()
    venues = {name: gateway.is_logged_on(name) for name in gateway.venue_sids}
    problems = []
    if not journal.healthy:
        problems.append(f"journal is failing to commit: {journal.last_error}")
    if lag > JOURNAL_LAG_LIMIT_S:
        problems.append(f"journal is {lag:.1f} s behind")
    problems += [f"venue {name} is not logged on" for name, up in venues.items() if not up]
    tls = getattr(gateway, "tls", None)
    if tls is not None and gateway.started_at and gateway.tls_in_use and not tls.running:
        problems.append(f"the front door and TLS terminator thread is not running ({tls.last_error or 'stopped'}): "
                        "client and drop-copy connections cannot be made")
    if gateway.engine.state_log_failures:
        problems.append(f"the order-state log failed {gateway.engine.state_log_failures} write(s): a crash now "
                        "would lose order state (check the disk under data_dir/state)")
    statelog = state_log_status(gateway)
    if statelog["failed"]:
        problems.append(f"the order-state log stopped ({statelog['failed']}): the gateway sends nothing and stops")
    dropcopy = gateway.dropcopy.status() if getattr(gateway, "dropcopy", None) is not None else []
    return not problems, {
        "healthy": not problems, "problems": problems, "venues": venues,
        "dropcopy": {d["name"]: {"logged_on": d["logged_on"], "copies_pending": d["copies_pending"]}
                     for d in dropcopy},
        # commit_lag_seconds: the figure fixgw_journal_commit_lag_seconds exports (JournalWriter.commit_lag_seconds)
        "journal": {"healthy": journal.healthy, "commit_lag_seconds": lag, "queue_depth": journal.queue_depth()},
        "state_log": statelog,
        "uptime_seconds": round(time.time() - gateway.started_at, 1) if gateway.started_at else 0,
    }


def state_log_status(gateway) -> dict:
    """The state log's kind (file, database), its durable lag (records appended and not yet committed: their
    messages wait) and why it stopped for good, if it did."""
    statelog = gateway.statelog
    out = {"kind": statelog.kind, "pending_records": statelog.pending, "failed": statelog.fatal or gateway.halted}
    if statelog.kind == "database":
        out["stream"] = statelog.stream
    return out


class GatewayCollector:
    """Prometheus collector reading the gateway's live state at scrape time."""

    def __init__(self, gateway):
        self._gw = gateway

    def collect(self):
        gw = self._gw
        up = GaugeMetricFamily("fixgw_session_up", "1 if the FIX session is logged on", labels=["session", "role"])
        sender = GaugeMetricFamily("fixgw_session_next_sender_seqnum", "Next MsgSeqNum we will send",
                                   labels=["session", "role"])
        target = GaugeMetricFamily("fixgw_session_next_target_seqnum", "Next MsgSeqNum we expect",
                                   labels=["session", "role"])
        for role, sids in (("client", gw.client_sids), ("venue", gw.venue_sids),
                           ("dropcopy", getattr(gw, "dropcopy_sids", {}))):
            for name in sids:
                session = gw.session(name)
                up.add_metric([name, role], 1.0 if session is not None and session.isLoggedOn() else 0.0)
                if session is not None:
                    sender.add_metric([name, role], session.getExpectedSenderNum())
                    target.add_metric([name, role], session.getExpectedTargetNum())
        yield up
        yield sender
        yield target

        j = gw.journal
        names = {sid.toString(): name for name, sid in
                 {**gw.client_sids, **gw.venue_sids, **getattr(gw, "dropcopy_sids", {})}.items()}
        messages = CounterMetricFamily(
            "fixgw_messages", "FIX messages read (in) and written (out) per session and MsgType, as journaled",
            labels=["session", "direction", "msg_type"])
        for (sid, direction, msg_type), n in dict(j.message_counts).items():
            messages.add_metric([names.get(sid, sid), "in" if direction == "I" else "out", msg_type or "?"], n)
        yield messages
        yield GaugeMetricFamily("fixgw_journal_queue_depth", "Journal rows (messages and events) captured and not "
                                "yet committed to the database", value=j.queue_depth())
        yield GaugeMetricFamily("fixgw_journal_commit_lag_seconds", JOURNAL_LAG_HELP, value=j.commit_lag_seconds())
        yield GaugeMetricFamily("fixgw_journal_last_batch_rows", "Rows in the last committed batch",
                                value=j.last_batch_size)
        yield GaugeMetricFamily("fixgw_journal_last_commit_seconds", "Duration of the last commit",
                                value=j.last_commit_seconds)
        yield GaugeMetricFamily("fixgw_journal_healthy", "1 while journal commits succeed", value=float(j.healthy))
        yield CounterMetricFamily("fixgw_journal_committed_rows", "Journal rows committed", value=j.committed)
        yield CounterMetricFamily("fixgw_journal_batches", "Journal batches committed", value=j.batches)
        yield GaugeMetricFamily("fixgw_core_queue_depth", "Commands waiting for the core thread",
                                value=gw.engine.queue_depth())
        yield CounterMetricFamily("fixgw_core_commands_handled", "Commands the core handled", value=gw.engine.handled)
        yield GaugeMetricFamily("fixgw_send_queue_depth", "Messages the core decided that the sender thread has "
                                "not sent yet", value=gw.engine.send_queue_depth())
        yield GaugeMetricFamily("fixgw_state_log_pending_records", "State log records appended and not yet durable "
                                "(the database state log's group commit; their messages wait); 0 with the file log",
                                value=gw.statelog.pending)
        yield GaugeMetricFamily("fixgw_open_orders", "Orders not yet in a final state",
                                value=sum(1 for o in list(gw.core.orders.values()) if o.is_open))
        service = getattr(gw, "dropcopy", None)
        if service is not None:
            pending = GaugeMetricFamily(
                "fixgw_dropcopy_pending_copies",
                "Drop copies handed to the session and not yet acknowledged by the receiver", labels=["session"])
            mark = GaugeMetricFamily(
                "fixgw_dropcopy_watermark_journal_id",
                "Journal id up to which source reports were copied (sent) or acknowledged by the receiver (acked)",
                labels=["session", "kind"])
            for d in service.status():
                pending.add_metric([d["name"]], d["copies_pending"])
                for kind in ("sent", "acked"):
                    if d[f"{kind}_id"] is not None:
                        mark.add_metric([d["name"], kind], d[f"{kind}_id"])
            yield pending
            yield mark
            yield GaugeMetricFamily("fixgw_dropcopy_healthy", "1 while the drop-copy thread's cycles succeed",
                                    value=float(service.healthy))
        ages = GaugeMetricFamily("fixgw_quote_age_seconds", "Age of each venue's quote per symbol (routing trusts "
                                 "it up to [routing] max_quote_age_s)", labels=["venue", "symbol"])
        try:
            rows = gw.engine.call(lambda core: core.quote_table(), timeout=1.0)
        except Exception:  # noqa: BLE001 - a busy core must not fail the scrape
            rows = []
        for row in rows:
            ages.add_metric([row["venue"], row["symbol"]], row["age_ms"] / 1000)
        yield ages


class _Handler(GuardedRequestHandler):
    """The routes. Connection hygiene (deadline, size limits, complete requests only) is GuardedRequestHandler's."""

    gateway = None  # set on the subclass made per server
    admin = None

    def do_POST(self):  # noqa: N802
        self._admin("POST")

    def _admin(self, method: str) -> None:
        try:
            status, answer = self.admin.handle(method, self.path, self.body, self.headers, self.peer)
            body = json.dumps(answer).encode()
        except Exception:  # noqa: BLE001
            log.exception("admin %s %s failed", method, self.path)
            status, body = 500, b'{"error": "internal error; see the gateway log"}'
        self.send_bytes(status, "application/json", body)  # outside the try: a client gone is not our error

    def on_refused(self, status: int | None, message: str) -> None:
        """A refused or dropped admin call is journaled as an operator action too; the answer is the same."""
        if self.admin is not None and (self.path or "").startswith("/admin/"):
            self.admin.refused(self.command or "?", self.path, getattr(self, "headers", None) or {}, self.peer,
                               status, message)
        super().on_refused(status, message)

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path.startswith("/admin/"):
            return self._admin("GET")
        try:
            if self.path == "/metrics":
                status, content_type, body = 200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
            elif self.path == "/health":
                ok, details = health(self.gateway)
                status, content_type, body = 200 if ok else 503, "application/json", json.dumps(details).encode()
            else:
                status, content_type, body = 404, "text/plain", b"not found: try /metrics or /health\n"
        except Exception:  # noqa: BLE001 - a scrape must never take anything down
            log.exception("HTTP %s failed", self.path)
            status, content_type, body = 500, "text/plain", b"internal error\n"
        self.send_bytes(status, content_type, body)


class HttpEndpoint:
    def __init__(self, gateway, host: str, port: int, admin=None, limits: HttpConfig | None = None):
        self._collector = GatewayCollector(gateway)
        limits = limits or HttpConfig()
        handler = type("GatewayHandler", (_Handler,), {"gateway": gateway, "admin": admin, "limits": limits})
        tls = None
        if limits.tls is not None:
            t = limits.tls
            tls = server_context(t.cert, t.key, t.client_ca, t.verify_client)
        self._scheme = "https" if tls is not None else "http"
        self._server = GuardedHTTPServer((host, port), handler, limits, tls)
        # (polled every 50 ms, not the default 500: stop() waits for the poll, and a planned handover for the stop)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fixgw-http", daemon=True)
        self.address = self._server.server_address

    def start(self) -> None:
        REGISTRY.register(self._collector)
        self._thread.start()
        log.info("metrics and health on %s://%s:%d/metrics and /health", self._scheme, *self.address)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        try:
            REGISTRY.unregister(self._collector)
        except KeyError:
            pass
