"""The core: single owner of order state. Commands in, actions out; no I/O.

``Core.handle(command)`` returns an ``Outcome`` whose actions the engine performs
in order (send to a client, send to a venue). Business problems become reject
actions, never exceptions. Anything raised from here is a bug, which the engine
catches, logs and counts.

Parents and children: the client sees one order (the parent, ``Order``); the
router places it as one or more child orders at venues (``Child``). Children's
fills are booked on the parent and reported to the client with LastMkt naming
the child's venue. A cancel goes out to every working child and is answered when
all have answered; a replace of an order with one working child is a replace at
its venue, of an order with several a cancel of all of them and a fresh routing
of the new terms once they are canceled. A child a venue rejects has its
quantity routed again, elsewhere (``RoutingPolicy.max_reroutes`` times per
order). When no child works any more the parent ends as the last one did. No
child is ever sent that could make the children's quantities exceed the
parent's (``Order.committed``).
"""
from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Callable

from desk.cancel import handle_cancel, handle_end_of_day, handle_mass_cancel
from desk.liveness import handle_tick
from desk.new_order import handle_new_order
from desk.operator import (
    handle_kill_switch, handle_operator_cancel, handle_operator_close, handle_operator_reconcile, handle_reload_risk,
)
from desk.placing import strategy_for
from desk.replace import handle_replace
from desk.risk_checks import handle_risk_day_roll, risk_roll
from desk.sessions import handle_market_data, handle_market_data_reject, handle_session_status
from desk.status import handle_status
from desk.bookings import handle_venue_cancel_reject
from desk.venue_reports import handle_child_not_sent, handle_venue_execution, handle_venue_message_rejected
from desk.watch import rewatch
from orders.model import (
    CancelRequest,
    ChildNotSent,
    ClientCancelReject,
    ClientExecReport,
    EndOfDay,
    KillSwitch,
    MarketData,
    MarketDataReject,
    MassCancelRequest,
    NewOrder,
    OperatorCancel,
    OperatorClose,
    OperatorReconcile,
    Outcome,
    RejectedOrder,
    ReloadRisk,
    ReplaceRequest,
    RiskDayRoll,
    SessionStatus,
    StatusRequest,
    Tick,
    VenueCancel,
    VenueCancelReject,
    VenueExecution,
    VenueMessageRejected,
    VenueNewOrder,
    VenueReplace,
    VenueStatusRequest,
)
from desk.options import ClientOptions
from orders.states import Child, Order
from routing.quotes import Quotes
from routing.router import RoutingPolicy, StrategySpec, Venue
from risk.engine import RiskEngine
from risk.state import RiskState

REJECTED_KEPT = 10_000  # refused new orders kept for operators, by default ([limits] rejected_orders_kept)

# Every command the core takes, and the handler in ``desk`` that answers it.
HANDLERS = {
    NewOrder: handle_new_order, CancelRequest: handle_cancel, ReplaceRequest: handle_replace,
    StatusRequest: handle_status, MassCancelRequest: handle_mass_cancel, EndOfDay: handle_end_of_day,
    VenueExecution: handle_venue_execution, VenueCancelReject: handle_venue_cancel_reject,
    VenueMessageRejected: handle_venue_message_rejected,
    ChildNotSent: handle_child_not_sent,  # the engine's safety net: a venue message it could not encode
    SessionStatus: handle_session_status, MarketData: handle_market_data, MarketDataReject: handle_market_data_reject,
    Tick: handle_tick, RiskDayRoll: handle_risk_day_roll,
    KillSwitch: handle_kill_switch, ReloadRisk: handle_reload_risk, OperatorCancel: handle_operator_cancel,
    OperatorReconcile: handle_operator_reconcile, OperatorClose: handle_operator_close,
}


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Core:
    """The order book and everything it needs to answer a command: venues, clients, risk state, quotes.

    ``handle`` dispatches each command to its handler in ``desk`` (one module per kind of
    intent), which reads and changes this state; what stays here is the state itself, its indexes,
    the queries the engine and operators make, and configuration changes. The desk's handlers are the
    core's own code: they use its underscored attributes (``_by_client``, ``_by_child``, ``_watch``...)
    as its methods did; nothing outside ``routing`` should.
    """

    def __init__(self, venues: list[Venue], clients: dict[str, ClientOptions], id_prefix: str,
                 risk: RiskEngine | None = None, risk_state: RiskState | None = None,
                 clock: Callable[[], datetime] = _utcnow, policy: RoutingPolicy | None = None,
                 rejected_kept: int = REJECTED_KEPT):
        self.risk = risk
        self.policy = policy if policy is not None else RoutingPolicy()
        self.quotes = Quotes()  # every venue's bids and offers per symbol (not kept across restarts)
        self.risk_state = risk_state if risk_state is not None else RiskState()
        self.clock = clock
        self.venues = {v.name: v for v in venues}
        self._venue_order = list(self.venues)
        self.clients = clients
        if risk is not None:
            for name, options in clients.items():
                risk.set_session_day_start(name, options.day_start)
        self.closed_sessions: set[str] = set()  # client sessions removed by `fixgw sessions reload`
        self._ids = itertools.count(1)
        self._id_prefix = id_prefix
        self.orders: dict[str, Order] = {}
        self._by_client: dict[tuple[str, str], Order] = {}
        self._by_child: dict[tuple[str, str], Order] = {}
        # New orders refused at intake, oldest first, at most ``rejected_kept`` (the oldest go first): for
        # operators only. Not orders of the book: no lookup, duplicate check or risk usage sees them.
        self.rejected: dict[str, RejectedOrder] = {}  # OrderID -> the refusal
        self.rejected_kept = rejected_kept
        self.rejected_dropped = 0  # refusals dropped past the cap since start-up
        self.operator_disabled: set[str] = set()  # client sessions an operator disabled (refused at logon)
        self._watch: dict[tuple[str, str], Order] = {}  # (venue, child_id) -> order: children awaiting an answer
        self._mass: dict[str, tuple[str, set[str]]] = {}  # MassStatusReqID -> (venue, child IDs not reported yet)
        self._restored_at: datetime | None = None  # when orders were restored (the liveness clocks restart there)

    # ------------------------------------------------------------------ queries
    def order_for_client(self, session: str, cl_ord_id: str) -> Order | None:
        return self._by_client.get((session, cl_ord_id))

    def order_by_venue_cl_ord_id(self, venue: str, cl_ord_id: str) -> Order | None:
        """The order a ClOrdID the gateway sent to ``venue`` belongs to (new, cancel or replace).

        One dict read: the drop-copy thread calls it (under the GIL a dict read is atomic) and
        uses only the fields fixed when an order is accepted: session, account and venue.
        """
        return self._by_child.get((venue, cl_ord_id))

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open]

    def touched(self, cmd, outcome: Outcome) -> list[Order]:
        """Every order ``cmd`` may have changed: the one it addressed and every one its actions concern.

        What the engine writes to the state log after each command; a superset is harmless,
        a missing order would come back stale after a restart (tests check it never is).
        """
        found: dict[str, Order] = {}
        t = type(cmd)
        order = None
        if t is VenueExecution or t is VenueCancelReject or t is VenueMessageRejected:
            order = self._by_child.get((cmd.venue, cmd.cl_ord_id)) if cmd.cl_ord_id else None
            if order is None and getattr(cmd, "orig_cl_ord_id", None):
                order = self._by_child.get((cmd.venue, cmd.orig_cl_ord_id))
        elif t is CancelRequest or t is ReplaceRequest:
            order = self._by_client.get((cmd.session, cmd.orig_cl_ord_id))
        if order is not None:
            found[order.order_id] = order
        for o in outcome.changed:
            found[o.order_id] = o
        for a in outcome.actions:
            ta = type(a)
            if ta is ClientExecReport or ta is ClientCancelReject:
                o = self.orders.get(a.order_id)
            elif ta is VenueNewOrder or ta is VenueCancel or ta is VenueReplace or ta is VenueStatusRequest:
                o = self._by_child.get((a.venue, a.cl_ord_id))
            else:
                continue
            if o is not None:
                found[o.order_id] = o
        return list(found.values())

    def restore(self, orders: list[Order]) -> None:
        """Take over orders recovered from the state log (at start-up, before any command)."""
        for order in orders:
            self.orders[order.order_id] = order
            ids = set(order.client_ids) | {order.cl_ord_id}
            if order.pending_cl_ord_id:
                ids.add(order.pending_cl_ord_id)
            if order.pending_replace is not None:
                ids.add(order.pending_replace.cl_ord_id)
            for cl in ids:
                self._by_client[(order.session, cl)] = order
            for child in order.children:
                for cl in {*child.cl_ord_ids, child.child_id, child.cl_ord_id}:
                    self._by_child[(child.venue, cl)] = order
        rewatch(self)

    def restore_rejected(self, rejected) -> None:
        """Take over refused orders recovered from the state log (oldest first), up to the cap."""
        for r in rejected:
            self._keep_rejected(r)

    def _keep_rejected(self, r: RejectedOrder, out: Outcome | None = None) -> None:
        if self.rejected_kept <= 0:
            return
        self.rejected[r.order_id] = r
        if out is not None:
            out.rejected.append(r)
        rejected = self.rejected
        while len(rejected) > self.rejected_kept:
            del rejected[next(iter(rejected))]
            self.rejected_dropped += 1

    def _index_client(self, order: Order, cl_ord_id: str) -> None:
        self._by_client[(order.session, cl_ord_id)] = order
        order.client_ids.append(cl_ord_id)

    def _index_child(self, order: Order, child: Child, cl_ord_id: str) -> None:
        self._by_child[(child.venue, cl_ord_id)] = order
        child.cl_ord_ids.append(cl_ord_id)

    def open_order_count(self, *, session: str | None = None, venue: str | None = None) -> int:
        """Open orders of a client session, or with a child working at a venue."""
        return sum(1 for o in self.orders.values()
                   if o.is_open and (session is None or o.session == session)
                   and (venue is None or any(c.venue == venue for c in o.live_children)))

    # ------------------------------------------------------------------ configuration (`fixgw sessions reload`)
    # Called on the core thread (Engine.call), so a check and the change it allows are one step.
    def add_venue(self, venue: Venue) -> None:
        self.venues[venue.name] = venue
        if venue.name not in self._venue_order:
            self._venue_order.append(venue.name)

    def remove_venue(self, name: str) -> int:
        """Stop routing to a venue; refused (returns its open order count) while it holds open orders."""
        n = self.open_order_count(venue=name)
        if n == 0:
            self.venues.pop(name, None)
            self._venue_order = [v for v in self._venue_order if v != name]
        return n

    def update_venue(self, new: Venue) -> None:
        """A venue's changed configuration (symbols, fees, priority, market data); its session state is kept.
        A changed market data setting or symbol list is subscribed with at the venue's next logon."""
        old = self.venues[new.name]
        new.up, new.md_req_id, new.meta = old.up, old.md_req_id, old.meta
        self.venues[new.name] = new

    def set_routing_order(self, names: list[str]) -> None:
        """Venues in the configuration file's order (routing prefers the first that trades a symbol)."""
        self._venue_order = [n for n in names if n in self.venues] + [n for n in self._venue_order
                                                                       if n not in names and n in self.venues]

    def set_client(self, name: str, options: ClientOptions) -> None:
        self.clients[name] = options
        if self.risk is not None:
            self.risk.set_session_day_start(name, options.day_start)
        self.closed_sessions.discard(name)

    def close_client(self, name: str) -> int:
        """Refuse a client session's new orders from now on; refused (returns the count) while it has open orders."""
        n = self.open_order_count(session=name)
        if n == 0:
            self.closed_sessions.add(name)
        return n

    # ------------------------------------------------------------------ dispatch
    def handle(self, cmd) -> Outcome:
        try:
            handler = HANDLERS[type(cmd)]
        except KeyError:
            raise TypeError(f"core cannot handle {type(cmd).__name__}") from None
        if type(cmd) is VenueExecution and cmd.last_qty and self.risk is not None:
            # a fill after a trading-day boundary counts on the new day: roll before it is booked
            rolled = Outcome()
            risk_roll(self, rolled, self.clock())
            out = handler(self, cmd)
            out.risk_events.extend(rolled.risk_events)
            out.warnings.extend(rolled.warnings)
            return out
        return handler(self, cmd)

    # ------------------------------------------------------------------ for operators
    def in_doubt_orders(self) -> list[Order]:
        """Orders in doubt (every one has a watched child: no scan of the whole book)."""
        seen: dict[str, Order] = {}
        for order in list(self._watch.values()):
            if order.order_id not in seen and order.in_doubt:
                seen[order.order_id] = order
        return list(seen.values())

    def strategy_for(self, cmd: NewOrder) -> StrategySpec:
        """The order's strategy: its own (tag 9100), else its account's, its session's, the default."""
        return strategy_for(self, cmd)

    def quote_table(self) -> list[dict]:
        """Every venue's top of book per symbol with its age, for operators."""
        now = self.clock()
        max_age = self.policy.max_quote_age
        rows = []
        for q in self.quotes.all():
            age = q.age(now)
            rows.append({"venue": q.venue, "symbol": q.symbol, "bid": q.bid, "bid_size": q.bid_size, "ask": q.ask,
                         "ask_size": q.ask_size, "age_ms": int(age.total_seconds() * 1000),
                         "fresh": age <= max_age})
        return rows

    def risk_summary(self) -> dict:
        state = self.risk_state
        return {
            "enabled": self.risk is not None,
            "kill_switches": {f"{scope} {key}".strip(): mode for (scope, key), mode in
                              state.kill.items()},
            "disabled_sessions": sorted(state.disabled_sessions),
            "open_orders": len(state.open_orders),
            "trading_day": state.day.isoformat() if state.day is not None else None,  # of the accounts' usage
            "throttle_breaches": dict(state.throttle_breaches),  # per session, this trading day
        }
