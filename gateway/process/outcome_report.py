"""What a command's outcome tells the audit trail and the operators, on the core thread: journal events (access
refusals, risk decisions, trading-day rolls, routing decisions, reconciliation), metrics (routing decisions, risk
checks and rejects, children in doubt, venue rejects) and the core's warnings as log lines."""
from __future__ import annotations

import logging
from typing import Callable

from gateway.observability import metrics
from risk.engine import describe_decision
from desk.core import Core
from orders.commands import Tick, VenueMessageRejected
from orders.records import describe_route

log = logging.getLogger("fixgw.engine")


class OutcomeReport:
    """Reports each outcome the engine's core thread gets from the core (``report``)."""

    def __init__(self, core: Core, journal_event: Callable[[str, str], None] | None):
        self.core = core
        self._journal_event = journal_event  # (session or category, text) -> None
        self._decisions: dict[tuple[str, str], object] = {}  # (strategy, result) -> fixgw_routing_decisions_total

    def report(self, command, outcome) -> None:
        event = self._journal_event
        if outcome.audit and event is not None:
            for session, text in outcome.audit:  # access-control refusals (the core's account checks)
                event("access", f"{session}: {text}")
        if outcome.risk and event is not None:
            for session, cl_ord_id, decision in outcome.risk:
                event("risk", describe_decision(decision, session, cl_ord_id))
        if outcome.risk_events and event is not None:
            for text in outcome.risk_events:  # trading-day rolls of per-day risk usage
                event("risk", text)
        for decision in outcome.routes:
            if event is not None:
                event("routing", describe_route(decision))
            key = (decision.strategy.partition(":")[0], "routed" if decision.split else "none")
            counter = self._decisions.get(key)
            if counter is None:
                counter = self._decisions[key] = metrics.ROUTING_DECISIONS.labels(*key)
            counter.inc()
        for ns in outcome.risk_ns:
            metrics.RISK_CHECK_SECONDS.observe(ns / 1e9)
        for _, _, decision in outcome.risk:
            if decision.reject is not None:
                metrics.RISK_REJECTS.labels(decision.reject.rule, "enforced").inc()
            for shadow in decision.shadow_rejects:
                metrics.RISK_REJECTS.labels(shadow.rule, "shadow").inc()
        for warning in outcome.warnings:
            log.warning("%s", warning, extra=getattr(warning, "fields", None))
        if outcome.events and event is not None:
            for category, text in outcome.events:  # reconciliation: what changed and why, for the audit trail
                event(category, text)
        for _, venue in outcome.in_doubt:
            metrics.IN_DOUBT_TOTAL.labels(venue).inc()
        if type(command) is Tick:
            metrics.ORDERS_IN_DOUBT.set(len(self.core.in_doubt_orders()))
        elif type(command) is VenueMessageRejected:
            metrics.VENUE_MESSAGE_REJECTS.labels(command.venue, "session" if command.session_level else "business",
                                                 command.ref_msg_type or "?").inc()
