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
from dataclasses import dataclass
from datetime import datetime, time, timezone
from decimal import Decimal
from time import perf_counter_ns
from typing import Callable

from routing.model import (
    CancelRequest,
    ChildNotSent,
    ClientCancelReject,
    ClientExecReport,
    ClientMassCancelReport,
    CxlRejCode,
    CxlRejResponseTo,
    EndOfDay,
    ExecKind,
    KillSwitch,
    LogoutClient,
    MarketData,
    MarketDataReject,
    MassCancelRequest,
    MassCancelScope,
    NewOrder,
    Note,
    OrdStatus,
    OperatorCancel,
    OperatorClose,
    OperatorReconcile,
    OrdType,
    Outcome,
    QuoteSeen,
    RejectCode,
    RejectedOrder,
    ReloadRisk,
    ReplaceRequest,
    RiskDayRoll,
    RouteDecision,
    SessionStatus,
    Side,
    StatusRequest,
    Tick,
    TimeInForce,
    VenueCancel,
    VenueCancelReject,
    VenueDontKnow,
    VenueExecution,
    VenueMarketDataRequest,
    VenueMessageRejected,
    VenueNewOrder,
    VenueReplace,
    VenueStatusRequest,
    with_split,
)
from routing.liveness import VenueLiveness
from routing.orders import TRANSITIONS, Child, ChildReplace, Event, Order, PendingReplace, TransitionRefused
from routing.quotes import Quotes
from routing.router import (
    DIRECT, Candidate, Leg, Route, RoutingPolicy, StrategySpec, Venue, direct, parse_strategy, route,
)
from routing.validation import order_shape_problem
from risk.engine import RiskEngine
from risk.state import RiskState

ZERO = Decimal(0)
REJECTED_KEPT = 10_000  # refused new orders kept for operators, by default ([limits] rejected_orders_kept)


@dataclass(frozen=True, slots=True)
class ClientOptions:
    pending_new: bool = True
    cancel_on_disconnect: bool = False
    accounts: frozenset[str] | None = None  # the Accounts (1) the session may use; None: any
    strategy: StrategySpec | None = None  # the session's routing strategy (None: the account's or the default)
    day_start: time | None = None  # UTC: where the session's per-day risk usage rolls (its schedule's start)



END_OF_DAY = "end of day"


_VENUE_KIND_EVENT = {
    ExecKind.NEW: Event.VENUE_ACK,
    ExecKind.REJECTED: Event.VENUE_REJECT,
    ExecKind.CANCELED: Event.VENUE_CANCELED,
    ExecKind.DONE_FOR_DAY: Event.DONE_FOR_DAY,
    ExecKind.EXPIRED: Event.EXPIRE,
}
_TERMINAL_EVENTS = frozenset({Event.VENUE_REJECT, Event.VENUE_CANCELED, Event.DONE_FOR_DAY, Event.EXPIRE})
_EVENT_REPORT_KIND = {
    Event.VENUE_ACK: ExecKind.NEW,
    Event.VENUE_REJECT: ExecKind.REJECTED,
    Event.VENUE_CANCELED: ExecKind.CANCELED,
    Event.DONE_FOR_DAY: ExecKind.DONE_FOR_DAY,
    Event.EXPIRE: ExecKind.EXPIRED,
}


def _ids(order: Order) -> dict:
    """The IDs of an order, as log fields for a Note."""
    return {"session": order.session, "cl_ord_id": order.cl_ord_id, "order_id": order.order_id,
            "venue": ",".join(order.venues) or None}


def _unrouted(route: Route) -> str:
    return f"{route.unrouted} not routed (IOC: no more displayed liquidity within the limit)"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Core(VenueLiveness):
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
        self._handlers = {
            VenueExecution: self._venue_execution, NewOrder: self._new_order, CancelRequest: self._cancel,
            ReplaceRequest: self._replace, StatusRequest: self._status, MassCancelRequest: self._mass_cancel,
            EndOfDay: self._end_of_day, VenueCancelReject: self._venue_cancel_reject,
            SessionStatus: self._session_status, KillSwitch: self._kill_switch, ReloadRisk: self._reload_risk,
            OperatorCancel: self._operator_cancel, MarketData: self._market_data,
            MarketDataReject: self._market_data_reject, VenueMessageRejected: self._venue_message_rejected,
            Tick: self._tick, OperatorReconcile: self._operator_reconcile, OperatorClose: self._operator_close,
            RiskDayRoll: self._risk_day_roll,
        }
        self._handlers[ChildNotSent] = self._child_not_sent  # the engine's safety net (below)

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
        self._rewatch()

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

    def set_venue_symbols(self, name: str, symbols: frozenset[str]) -> None:
        self.venues[name].symbols = symbols

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
            handler = self._handlers[type(cmd)]
        except KeyError:
            raise TypeError(f"core cannot handle {type(cmd).__name__}") from None
        if type(cmd) is VenueExecution and cmd.last_qty and self.risk is not None:
            # a fill after a trading-day boundary counts on the new day: roll before it is booked
            rolled = Outcome()
            self._risk_roll(rolled, self.clock())
            out = handler(cmd)
            out.risk_events.extend(rolled.risk_events)
            out.warnings.extend(rolled.warnings)
            return out
        return handler(cmd)

    # ------------------------------------------------------------------ a venue message the engine could not send
    def _child_not_sent(self, cmd: ChildNotSent) -> Outcome:
        """The engine could not encode our message to a venue: answered as if the venue had refused it, so
        the order never waits on a message that never left (a new child: rejected, re-routed or reported to
        the client; a cancel or replace: refused, the client gets an OrderCancelReject)."""
        if cmd.msg_type != "D":
            return self._venue_cancel_reject(VenueCancelReject(
                venue=cmd.venue, cl_ord_id=cmd.cl_ord_id, orig_cl_ord_id=cmd.orig_cl_ord_id or "",
                venue_order_id=None, reason=CxlRejCode.OTHER, text=cmd.text,
                response_to=CxlRejResponseTo.REPLACE if cmd.msg_type == "G" else CxlRejResponseTo.CANCEL))
        out = Outcome()
        order = self._by_child.get((cmd.venue, cmd.cl_ord_id))
        child = order.child(cmd.venue, cmd.cl_ord_id) if order is not None else None
        if child is None:
            out.warnings.append(Note(f"{cmd.venue}: order {cmd.cl_ord_id} not sent and not known: {cmd.text}",
                                     venue=cmd.venue))
            return out
        try:
            child.apply(Event.VENUE_REJECT)
        except TransitionRefused as exc:
            out.warnings.append(Note(f"order {order.order_id}: {exc} ({cmd.text})", **_ids(order)))
            return out
        out.changed.append(order)
        self._heard(order, child, out)
        self._child_done(order, child, Event.VENUE_REJECT, cmd.venue, cmd.text, out)
        return out

    # ------------------------------------------------------------------ client: new order
    def _account_problem(self, session: str, account: str | None, required: bool = True) -> str | None:
        """Why ``session`` may not use ``account``, or None. A session with an accounts list must name one
        of them on a new order (``required``); a cancel or replace may leave Account out (the order's own)."""
        allowed = self.clients.get(session, ClientOptions()).accounts
        if allowed is None:
            return None
        if account is None:
            return f"Account (1) is required on session {session}" if required else None
        if account not in allowed:
            return f"account {account} is not permitted for session {session}"
        return None

    def _refuse_account(self, out: Outcome, session: str, cl_ord_id: str, what: str, problem: str) -> None:
        out.audit.append((session, f"{what} {cl_ord_id} refused: {problem}"))
        out.warnings.append(Note(f"access control: {what} {cl_ord_id} refused: {problem}", session=session,
                                 cl_ord_id=cl_ord_id))

    def _validate(self, cmd: NewOrder) -> tuple[RejectCode, str, str] | None:
        """(code, reason, who refused it) if the order cannot be taken at all, else None."""
        if cmd.session in self.closed_sessions:
            return RejectCode.OTHER, f"session {cmd.session} was removed from the gateway's configuration", "session"
        account = self._account_problem(cmd.session, cmd.account)
        if account is not None:
            return RejectCode.UNKNOWN_ACCOUNT, account, "access control"
        if (cmd.session, cmd.cl_ord_id) in self._by_client:
            return RejectCode.DUPLICATE_ORDER, f"duplicate ClOrdID {cmd.cl_ord_id}", "validation"
        problem = order_shape_problem(cmd.qty, cmd.ord_type, cmd.price)
        if problem is not None:
            return *problem, "validation"
        if not any(cmd.symbol in v.symbols for v in self.venues.values()):
            return RejectCode.UNKNOWN_SYMBOL, f"unknown symbol {cmd.symbol}: no configured venue trades it", "validation"
        if cmd.ex_destination is not None and cmd.ex_destination not in self.venues:
            return RejectCode.OTHER, f"unknown ExDestination {cmd.ex_destination}", "validation"
        if cmd.strategy is not None and cmd.ex_destination is None:
            try:
                spec = parse_strategy(cmd.strategy)
            except ValueError as exc:
                return RejectCode.OTHER, str(exc), "validation"
            unknown = [v for v in spec.venues if v not in self.venues]
            if unknown:
                return (RejectCode.OTHER, f"unknown venue {', '.join(unknown)} in routing strategy {cmd.strategy}",
                        "validation")
        return None

    # ------------------------------------------------------------------ routing
    def strategy_for(self, cmd: NewOrder) -> StrategySpec:
        """The order's strategy: its own (tag 9100), else its account's, its session's, the default."""
        if cmd.strategy is not None:
            return parse_strategy(cmd.strategy)
        if cmd.account is not None and cmd.account in self.policy.accounts:
            return self.policy.accounts[cmd.account]
        client = self.clients.get(cmd.session)
        if client is not None and client.strategy is not None:
            return client.strategy
        return self.policy.default

    def _candidates(self, symbol: str, now: datetime) -> tuple[list[Candidate], tuple[QuoteSeen, ...]]:
        """Every configured venue as the router sees it for ``symbol`` now, and the record of it."""
        max_age = self.policy.max_quote_age
        candidates, seen = [], []
        for rank, name in enumerate(self._venue_order):
            v = self.venues[name]
            q = self.quotes.quote(name, symbol)
            age = q.age(now) if q is not None else None
            trusted = q is not None and v.up and age <= max_age
            candidates.append(Candidate(name, v.up, symbol in v.symbols, v.priority, rank, v.take_fee, v.make_fee,
                                        q if trusted else None))
            seen.append(QuoteSeen(name, v.up, symbol in v.symbols, q.bid if q else None, q.bid_size if q else ZERO,
                                  q.ask if q else None, q.ask_size if q else ZERO,
                                  int(age.total_seconds() * 1000) if age is not None else None, trusted,
                                  v.take_fee, v.make_fee, v.priority))
        return candidates, tuple(seen)

    def _decide(self, order: Order, qty: Decimal, reason: str, ex_destination: str | None = None,
                exclude: frozenset[str] = frozenset()) -> tuple[Route, RouteDecision]:
        """Run the order's strategy (or its ExDestination) for ``qty``: the route, and the decision with its inputs
        (not yet recorded: ``_place`` records it with the children it creates)."""
        now = self.clock()
        candidates, seen = self._candidates(order.symbol, now)
        if exclude:
            candidates = [c for c in candidates if c.name not in exclude]
        limit = order.price if order.ord_type is OrdType.LIMIT else None
        if ex_destination is not None:
            result = direct(order.symbol, qty, ex_destination, candidates)
        else:
            result = route(parse_strategy(order.strategy), order.symbol, order.side, qty, limit, order.tif,
                           candidates)
        decision = RouteDecision(
            at=now, order_id=order.order_id, session=order.session, cl_ord_id=order.cl_ord_id, reason=reason,
            strategy=order.strategy, symbol=order.symbol, side=order.side, qty=qty, limit=limit, quotes=seen,
            split=(), note=result.note + (f" (not to {', '.join(sorted(exclude))}: rejected it)" if exclude else ""),
            unrouted=result.unrouted)
        return result, decision

    def _place(self, order: Order, legs: tuple[Leg, ...], decision: RouteDecision, out: Outcome,
               recv_ns: int = 0) -> list[Child]:
        """Send a child order for each leg; record the decision with the children it made."""
        children = []
        for leg in legs:
            room = order.qty - order.committed
            if leg.qty > room:  # never: the router splits at most what is left; a guard against overfills
                out.warnings.append(Note(f"order {order.order_id}: {leg.qty} for {leg.venue} would exceed the "
                                         f"order's quantity ({room} left unplaced); not sent", **_ids(order)))
                continue
            child_id = order.order_id if not order.children else order.next_child_id("n")
            child = Child(child_id=child_id, venue=leg.venue, qty=leg.qty, price=order.price,
                          ord_type=order.ord_type, tif=order.tif, cl_ord_id=child_id)
            order.children.append(child)
            self._index_child(order, child, child_id)
            self._expect(order, child)
            children.append(child)
            out.actions.append(VenueNewOrder(
                venue=leg.venue, cl_ord_id=child_id, symbol=order.symbol, side=order.side, qty=leg.qty,
                ord_type=order.ord_type, price=order.price, stop_px=order.stop_px, tif=order.tif,
                account=order.account, recv_ns=recv_ns,
            ))
        decision = with_split(decision, tuple((c.venue, c.qty, c.child_id) for c in children)) if children \
            else decision
        order.routes.append(decision)
        out.routes.append(decision)
        return children

    def _route_more(self, order: Order, qty: Decimal, reason: str, out: Outcome, recv_ns: int = 0,
                    exclude: frozenset[str] = frozenset()) -> bool:
        """Route ``qty`` more of an accepted order with its strategy; False if no venue can take any of it."""
        if qty <= 0 or order.strategy == DIRECT:
            return False
        result, decision = self._decide(order, qty, reason, exclude=exclude)
        if not result.ok:
            order.routes.append(decision)
            out.routes.append(decision)
            order.released = (Event.VENUE_CANCELED, None, f"{qty} could not be routed again: {result.note}")
            return False
        if result.unrouted:
            order.released = (Event.VENUE_CANCELED, None, _unrouted(result))
        return bool(self._place(order, result.legs, decision, out, recv_ns))

    def _new_order(self, cmd: NewOrder) -> Outcome:
        out = Outcome()
        problem = self._validate(cmd)
        order_id = f"{self._id_prefix}-{next(self._ids)}"
        order = Order(
            order_id=order_id, session=cmd.session, cl_ord_id=cmd.cl_ord_id, symbol=cmd.symbol,
            side=cmd.side, qty=cmd.qty, ord_type=cmd.ord_type, price=cmd.price, stop_px=cmd.stop_px,
            tif=cmd.tif, account=cmd.account,
        )
        now = self.clock()
        if self.risk is not None:
            self._risk_roll(out, now)
            if problem is not None:  # refused before the risk check: still a message for the throttle
                self.risk.count("D", cmd.session, self.risk_state, now, account=cmd.account, symbol=cmd.symbol)
        if problem is None and self.risk is not None:
            t0 = perf_counter_ns()
            decision = self.risk.check(cmd, self.risk_state, now)
            out.risk_ns.append(perf_counter_ns() - t0)
            refused = self._risk_check(out, decision, cmd.session, cmd.cl_ord_id)
            if refused is not None:
                problem = (*refused, f"risk: {decision.reject.rule}")
        if problem is None:
            order.strategy = DIRECT if cmd.ex_destination is not None else self.strategy_for(cmd).describe()
            routed, decision = self._decide(order, order.qty, "new order", cmd.ex_destination)
            if not routed.ok:
                out.routes.append(decision)
                problem = (RejectCode.EXCHANGE_CLOSED, routed.note, "router")
        if problem is not None:
            code, text, by = problem
            if code is RejectCode.UNKNOWN_ACCOUNT:
                self._refuse_account(out, cmd.session, cmd.cl_ord_id, "order", text)
            order.status = OrdStatus.REJECTED
            out.actions.append(self._report(order, ExecKind.REJECTED, recv_ns=cmd.recv_ns, reject_code=code, text=text))
            # Not an order of the book: the ClOrdID stays free for a corrected resend, nothing counts it as
            # open or in risk usage. Kept apart, for operators (`fixgw orders list --state rejected`).
            self._keep_rejected(RejectedOrder(
                order_id=order_id, session=cmd.session, cl_ord_id=cmd.cl_ord_id, account=cmd.account,
                symbol=cmd.symbol, side=cmd.side, qty=cmd.qty, price=cmd.price, ord_type=cmd.ord_type, tif=cmd.tif,
                received_at=now, refused_by=by, reject_code=code, text=text, stop_px=cmd.stop_px), out)
            return out

        order.risk_key = cmd.cl_ord_id
        order.accepted_at = now
        if self.risk is not None:
            self.risk.on_accepted(cmd, self.risk_state, now)
        self.orders[order_id] = order
        self._index_client(order, cmd.cl_ord_id)
        if self.clients.get(cmd.session, ClientOptions()).pending_new:
            out.actions.append(self._report(order, ExecKind.PENDING_NEW, recv_ns=cmd.recv_ns))
        self._place(order, routed.legs, decision, out, cmd.recv_ns)
        if routed.unrouted:
            order.released = (Event.VENUE_CANCELED, None, _unrouted(routed))
        if not order.live_children:  # an IOC sweep that found nothing to route (never: it falls back)
            self._progress(order, out, cmd.recv_ns)
        return out

    # ------------------------------------------------------------------ client: cancel / replace
    def _cxl_reject(self, out: Outcome, session: str, cl_ord_id: str, orig_cl_ord_id: str, order: Order | None,
                    response_to: CxlRejResponseTo, code: CxlRejCode, text: str) -> Outcome:
        out.actions.append(ClientCancelReject(
            session=session, cl_ord_id=cl_ord_id, orig_cl_ord_id=orig_cl_ord_id,
            order_id=order.order_id if order else "NONE",
            ord_status=order.status if order else OrdStatus.REJECTED,
            response_to=response_to, reason=code, text=text, account=order.account if order else None,
        ))
        return out

    def _pending_problem(self, session: str, cl_ord_id: str, order: Order | None,
                         orig_cl_ord_id: str) -> tuple[CxlRejCode, str] | None:
        """Why a cancel or replace cannot even be considered, or None."""
        if order is None:
            return CxlRejCode.UNKNOWN_ORDER, f"unknown order: OrigClOrdID {orig_cl_ord_id}"
        if (session, cl_ord_id) in self._by_client:
            return CxlRejCode.DUPLICATE_CLORDID, f"duplicate ClOrdID {cl_ord_id}"
        if order.status is OrdStatus.PENDING_CANCEL:
            return CxlRejCode.ALREADY_PENDING, "a cancel for this order is already pending"
        if order.status is OrdStatus.PENDING_REPLACE:
            return CxlRejCode.ALREADY_PENDING, "a replace for this order is already pending"
        if order.is_open and not self._venue_connected(order):
            down = ", ".join(v for v in order.venues if not self._up(v) and
                             any(c.venue == v for c in order.live_children))
            return CxlRejCode.OTHER, f"venue {down} is not connected; try again when it is"
        return None

    def _up(self, name: str) -> bool:
        venue = self.venues.get(name)
        return venue is not None and venue.up

    def _venue_connected(self, order: Order) -> bool:
        """Every venue where the order has a child working is connected."""
        return all(self._up(c.venue) for c in order.live_children)

    def _cancel(self, cmd: CancelRequest) -> Outcome:
        out = Outcome()
        order = self._by_client.get((cmd.session, cmd.orig_cl_ord_id))
        if self.risk is not None:
            refused = self._risk_message(out, "F", cmd.session, cmd.cl_ord_id, cmd.symbol,
                                         cmd.account or (order.account if order is not None else None))
            if refused is not None:
                return self._cxl_reject(out, cmd.session, cmd.cl_ord_id, cmd.orig_cl_ord_id, order,
                                        CxlRejResponseTo.CANCEL, CxlRejCode.OTHER, refused)
        account = self._account_problem(cmd.session, cmd.account, required=False)
        if account is not None:
            self._refuse_account(out, cmd.session, cmd.cl_ord_id, "cancel", account)
            return self._cxl_reject(out, cmd.session, cmd.cl_ord_id, cmd.orig_cl_ord_id, order,
                                    CxlRejResponseTo.CANCEL, CxlRejCode.OTHER, account)
        problem = self._pending_problem(cmd.session, cmd.cl_ord_id, order, cmd.orig_cl_ord_id)
        if problem is None:
            try:
                self._start_cancel(order, out, client_cl_ord_id=cmd.cl_ord_id, recv_ns=cmd.recv_ns)
                return out
            except TransitionRefused as exc:
                problem = (CxlRejCode.TOO_LATE, str(exc))
        return self._cxl_reject(out, cmd.session, cmd.cl_ord_id, cmd.orig_cl_ord_id, order,
                                CxlRejResponseTo.CANCEL, *problem)

    def _start_cancel(self, order: Order, out: Outcome, *, client_cl_ord_id: str | None = None,
                      cause: str | None = None, recv_ns: int = 0) -> None:
        """Send a cancel for each of ``order``'s working children; the client hears Canceled only when every
        venue has answered (``_progress``).

        ``client_cl_ord_id`` is the ClOrdID of the client's own cancel request; without one the
        gateway cancels on its own account (``cause``: mass cancel, disconnect, end of day) and
        the reports carry the order's ClOrdID.
        """
        order.apply(Event.CANCEL_REQUEST)  # raises TransitionRefused when too late
        order.pending_cl_ord_id = client_cl_ord_id
        order.cancel_cause = cause
        order.cancel_open = True
        order.refusal = None
        if client_cl_ord_id is not None:
            self._index_client(order, client_cl_ord_id)
        out.actions.append(self._report(order, ExecKind.PENDING_CANCEL, cl_ord_id=client_cl_ord_id,
                                        orig_cl_ord_id=order.cl_ord_id if client_cl_ord_id else None,
                                        text=f"cancel requested: {cause}" if cause else None, recv_ns=recv_ns))
        for child in order.live_children:
            self._cancel_child(order, child, out)
        if not self._awaiting(order):
            self._progress(order, out, recv_ns)

    def _cancel_child(self, order: Order, child: Child, out: Outcome) -> None:
        try:
            child.apply(Event.CANCEL_REQUEST)
        except TransitionRefused as exc:  # never: the parent refuses a second cancel or replace
            out.warnings.append(Note(f"order {order.order_id}: child {child.child_id} at {child.venue} not "
                                     f"canceled: {exc}", **_ids(order)))
            return
        child.pending_cancel = self._send_cancel(order, child, out)
        self._expect(order, child)

    def _send_cancel(self, order: Order, child: Child, out: Outcome) -> str:
        """An OrderCancelRequest for ``child`` at its venue, under a new ClOrdID of ours (returned)."""
        cancel_id = order.next_child_id("c")
        self._index_child(order, child, cancel_id)
        out.actions.append(VenueCancel(
            venue=child.venue, cl_ord_id=cancel_id, orig_cl_ord_id=child.cl_ord_id,
            venue_order_id=child.venue_order_id, symbol=order.symbol, side=order.side, qty=child.qty,
        ))
        return cancel_id

    def _replace(self, cmd: ReplaceRequest) -> Outcome:
        out = Outcome()
        order = self._by_client.get((cmd.session, cmd.orig_cl_ord_id))
        if self.risk is not None:  # counted here, judged by the risk check below (if it gets that far)
            now = self.clock()
            self._risk_roll(out, now)
            self.risk.count("G", cmd.session, self.risk_state, now, symbol=cmd.symbol,
                            account=cmd.account or (order.account if order is not None else None))
        # the Account given, else the order's: a replace changes what trades, so the session must still be
        # allowed the account (a cancel without Account is always allowed: it only reduces exposure)
        account = self._account_problem(cmd.session, cmd.account if cmd.account is not None
                                        else (order.account if order is not None else None),
                                        required=order is not None)
        if account is not None:
            self._refuse_account(out, cmd.session, cmd.cl_ord_id, "replace", account)
            return self._cxl_reject(out, cmd.session, cmd.cl_ord_id, cmd.orig_cl_ord_id, order,
                                    CxlRejResponseTo.REPLACE, CxlRejCode.OTHER, account)
        problem = self._pending_problem(cmd.session, cmd.cl_ord_id, order, cmd.orig_cl_ord_id)
        if problem is None:
            problem = self._replace_problem(order, cmd)
        if problem is None and self.risk is not None:
            new_terms = self._as_new_order(order, cmd)
            t0 = perf_counter_ns()
            decision = self.risk.check_replace(new_terms, order.risk_key, self.risk_state, now, count_message=False)
            out.risk_ns.append(perf_counter_ns() - t0)
            rejected = self._risk_check(out, decision, cmd.session, cmd.cl_ord_id)
            if rejected is not None:
                problem = (CxlRejCode.OTHER, rejected[1])
        if problem is None:
            try:
                order.apply(Event.REPLACE_REQUEST)
            except TransitionRefused as exc:
                problem = (CxlRejCode.TOO_LATE, str(exc))
        if problem is not None:
            return self._cxl_reject(out, cmd.session, cmd.cl_ord_id, cmd.orig_cl_ord_id, order,
                                    CxlRejResponseTo.REPLACE, *problem)
        tif = cmd.tif or order.tif
        live = order.live_children
        self._index_client(order, cmd.cl_ord_id)
        if len(live) == 1:
            # one child working: replace it at its venue, keeping whatever priority the venue allows.
            # Its new quantity leaves the new OrderQty minus everything filled working there.
            child = live[0]
            child.apply(Event.REPLACE_REQUEST)  # as the parent could, so can its one working child
            child_id = order.next_child_id("r")
            qty = child.cum_qty + (cmd.qty - order.cum_qty)
            order.pending_replace = PendingReplace(cl_ord_id=cmd.cl_ord_id, child_cl_ord_id=child_id, qty=cmd.qty,
                                                   price=cmd.price, ord_type=cmd.ord_type, tif=tif)
            order.replace_mode = "venue"
            child.pending_replace = ChildReplace(child_id, qty, cmd.price, cmd.ord_type, tif)
            self._index_child(order, child, child_id)
            self._expect(order, child)
            out.actions.append(self._report(order, ExecKind.PENDING_REPLACE, cl_ord_id=cmd.cl_ord_id,
                                            orig_cl_ord_id=order.cl_ord_id, recv_ns=cmd.recv_ns))
            out.actions.append(VenueReplace(
                venue=child.venue, cl_ord_id=child_id, orig_cl_ord_id=child.cl_ord_id,
                venue_order_id=child.venue_order_id, symbol=order.symbol, side=order.side, qty=qty,
                ord_type=cmd.ord_type, price=cmd.price, tif=tif, account=order.account,
            ))
            return out
        # several children working (a sweep): cancel them all, then route the new terms afresh
        # (``_progress``); the client hears Replaced once every venue has confirmed its cancel.
        order.pending_replace = PendingReplace(cl_ord_id=cmd.cl_ord_id, child_cl_ord_id="", qty=cmd.qty,
                                               price=cmd.price, ord_type=cmd.ord_type, tif=tif)
        order.replace_mode = "reroute"
        order.refusal = None
        out.actions.append(self._report(order, ExecKind.PENDING_REPLACE, cl_ord_id=cmd.cl_ord_id,
                                        orig_cl_ord_id=order.cl_ord_id, recv_ns=cmd.recv_ns))
        for child in live:
            self._cancel_child(order, child, out)
        if not self._awaiting(order):
            self._progress(order, out, cmd.recv_ns)
        return out

    @staticmethod
    def _replace_problem(order: Order, cmd: ReplaceRequest) -> tuple[CxlRejCode, str] | None:
        if cmd.side is not order.side:
            return CxlRejCode.OTHER, f"a replace may not change Side ({order.side.name} to {cmd.side.name})"
        if cmd.symbol != order.symbol:
            return CxlRejCode.OTHER, f"a replace may not change Symbol ({order.symbol} to {cmd.symbol})"
        if cmd.account is not None and cmd.account != order.account:
            return CxlRejCode.OTHER, f"a replace may not change Account ({order.account} to {cmd.account})"
        shape = order_shape_problem(cmd.qty, cmd.ord_type, cmd.price)
        if shape is not None:
            return CxlRejCode.OTHER, shape[1]
        if cmd.qty <= order.cum_qty:
            return CxlRejCode.OTHER, f"new OrderQty {cmd.qty} must exceed CumQty {order.cum_qty}"
        return None

    # ------------------------------------------------------------------ client: status and mass cancel
    def _status(self, cmd: StatusRequest) -> Outcome:
        out = Outcome()
        order = self._by_client.get((cmd.session, cmd.cl_ord_id))
        if order is None and cmd.order_id:
            order = self.orders.get(cmd.order_id)
            if order is not None and order.session != cmd.session:
                order = None  # never reveal another session's order
        throttled = None
        if self.risk is not None:
            # Over the throttle a status request is still answered with the order's true status: an answer
            # saying Rejected could make a client resend an order that is working. Text names the throttle.
            throttled = self._risk_message(out, "H", cmd.session, cmd.cl_ord_id, cmd.symbol,
                                           order.account if order is not None else None)
        if order is not None:
            out.actions.append(self._report(order, ExecKind.ORDER_STATUS, cl_ord_id=cmd.cl_ord_id, text=throttled))
            return out
        out.actions.append(ClientExecReport(
            session=cmd.session, order_id="NONE", cl_ord_id=cmd.cl_ord_id, orig_cl_ord_id=None,
            exec_id=f"{self._id_prefix}-S{next(self._ids)}", kind=ExecKind.ORDER_STATUS,
            ord_status=OrdStatus.REJECTED, symbol=cmd.symbol, side=cmd.side or Side.BUY, order_qty=ZERO,
            ord_type=OrdType.LIMIT, price=None, tif=TimeInForce.DAY, account=None, last_qty=ZERO, last_px=ZERO,
            cum_qty=ZERO, leaves_qty=ZERO, avg_px=ZERO, reject_code=RejectCode.UNKNOWN_ORDER,
            text=f"unknown order: ClOrdID {cmd.cl_ord_id}" + (f"; {throttled}" if throttled else ""),
        ))
        return out

    def _mass_cancel(self, cmd: MassCancelRequest) -> Outcome:
        out = Outcome()
        mass_id = f"{self._id_prefix}-M{next(self._ids)}"

        def report(response: str, affected: int, reason: str | None = None, text: str | None = None) -> None:
            out.actions.insert(0, ClientMassCancelReport(
                session=cmd.session, cl_ord_id=cmd.cl_ord_id, mass_order_id=mass_id,
                request_type=cmd.request_type, response=response, affected=affected, reject_reason=reason,
                text=text))

        if self.risk is not None:
            refused = self._risk_message(out, "q", cmd.session, cmd.cl_ord_id, cmd.symbol or "")
            if refused is not None:
                report("0", 0, "99", refused)
                return out
        try:
            scope = MassCancelScope(cmd.request_type)
        except ValueError:
            report("0", 0, "0", f"MassCancelRequestType {cmd.request_type} is not supported (use 1 or 7)")
            return out
        if scope is MassCancelScope.SYMBOL and not cmd.symbol:
            report("0", 0, "1", "MassCancelRequestType 1 (by security) needs Symbol (55)")
            return out
        targets = [o for o in self._open_orders_of(cmd.session)
                   if (scope is MassCancelScope.ALL or o.symbol == cmd.symbol)
                   and (cmd.side is None or o.side is cmd.side)]
        affected = self._cancel_all(targets, out, f"mass cancel {cmd.cl_ord_id}")
        report(scope.value, affected)
        return out

    def _open_orders_of(self, session: str, tif: TimeInForce | None = None) -> list[Order]:
        return [o for o in self.orders.values()
                if o.session == session and o.is_open and (tif is None or o.tif is tif)]

    def _cancel_all(self, orders: list[Order], out: Outcome, cause: str) -> int:
        """Start a gateway-initiated cancel for each order that can take one; returns how many."""
        started = 0
        for order in orders:
            if order.status in (OrdStatus.PENDING_CANCEL, OrdStatus.PENDING_REPLACE):
                out.warnings.append(Note(f"order {order.order_id} not canceled for {cause}: it is {order.status.name}",
                                      **_ids(order)))
                continue
            if not self._venue_connected(order):
                down = ", ".join(c.venue for c in order.live_children if not self._up(c.venue))
                out.warnings.append(Note(f"order {order.order_id} not canceled for {cause}: venue {down} is not "
                                         "connected (a cancel sent now would never reach it)", **_ids(order)))
                continue
            try:
                self._start_cancel(order, out, cause=cause)
                started += 1
            except TransitionRefused as exc:
                out.warnings.append(Note(f"order {order.order_id} not canceled for {cause}: {exc}", **_ids(order)))
        return started

    def _end_of_day(self, cmd: EndOfDay) -> Outcome:
        """Day orders still open expire: canceled at their venues, reported Expired when confirmed."""
        out = Outcome()
        n = self._cancel_all(self._open_orders_of(cmd.session, TimeInForce.DAY), out, END_OF_DAY)
        if n:
            out.warnings.append(Note(f"end of day for {cmd.session}: {n} Day order(s) being expired",
                                      session=cmd.session))
        return out

    # ------------------------------------------------------------------ venue side
    def _venue_execution(self, ev: VenueExecution) -> Outcome:
        if ev.mass_status_req_id is not None:  # a report of our OrderMassStatusRequest (routing.liveness)
            return self._mass_status_reply(ev)
        out = Outcome()
        order = self._by_child.get((ev.venue, ev.cl_ord_id))
        if order is None and ev.orig_cl_ord_id:
            order = self._by_child.get((ev.venue, ev.orig_cl_ord_id))
        child = None
        if order is not None:
            child = order.child(ev.venue, ev.cl_ord_id) or order.child(ev.venue, ev.orig_cl_ord_id)
        if child is None:
            text = f"no order with ClOrdID {ev.cl_ord_id or '(none)'} at {ev.venue}"
            out.warnings.append(Note(f"venue {ev.venue} sent ExecutionReport {ev.exec_id} for an unknown order: {text}",
                                      venue=ev.venue, exec_id=ev.exec_id))
            if ev.kind is ExecKind.TRADE:
                out.actions.append(VenueDontKnow(
                    venue=ev.venue, venue_order_id=ev.venue_order_id, exec_id=ev.exec_id, symbol=ev.symbol,
                    side=ev.side, last_qty=ev.last_qty, last_px=ev.last_px, text=text,
                ))
            return out
        if ev.kind is ExecKind.ORDER_STATUS:  # an answer to our OrderStatusRequest: reconcile (routing.liveness)
            return self._status_reply(order, child, ev, out)
        if ev.exec_id in child.seen_exec_ids:
            out.warnings.append(Note(f"duplicate ExecID {ev.exec_id} from {ev.venue} ignored (order {order.order_id})",
                                      **_ids(order), exec_id=ev.exec_id))
            return out
        child.seen_exec_ids.add(ev.exec_id)
        if ev.venue_order_id and ev.venue_order_id != "NONE":
            child.venue_order_id = ev.venue_order_id

        if ev.kind is ExecKind.TRADE:
            return self._venue_fill(order, child, ev, out)
        if ev.kind is ExecKind.REPLACED:
            return self._venue_replaced(order, child, ev, out)
        event = _VENUE_KIND_EVENT.get(ev.kind)
        if event is None:
            out.warnings.append(Note(f"{ev.venue} ExecutionReport {ev.exec_id} ({ev.kind.value}) needs no action",
                                      **_ids(order), exec_id=ev.exec_id))
            return out
        if event is Event.VENUE_CANCELED and child.status is OrdStatus.CANCELED:
            out.warnings.append(Note(f"order {order.order_id}: {ev.venue} confirms child {child.child_id} canceled, "
                                     "as the gateway had taken it to be when the venue disconnected",
                                     **_ids(order), exec_id=ev.exec_id))
            return out
        try:
            child.apply(event)
        except TransitionRefused as exc:
            out.warnings.append(Note(f"order {order.order_id}: {exc} (venue {ev.venue}, ExecID {ev.exec_id})",
                                      **_ids(order), exec_id=ev.exec_id))
            return out
        self._heard(order, child, out)
        if event is Event.VENUE_ACK:
            if order.status is OrdStatus.PENDING_NEW:  # the first venue to acknowledge: the order is working
                order.apply(Event.VENUE_ACK)
                out.actions.append(self._report(order, ExecKind.NEW, recv_ns=ev.recv_ns))
            return out
        self._child_done(order, child, event, ev.venue, ev.text, out, ev.recv_ns)
        return out

    def _child_done(self, order: Order, child: Child, event: Event, venue: str, text: str | None, out: Outcome,
                    recv_ns: int = 0, reroute: bool | None = None) -> None:
        """A child finished without filling all of it (rejected, canceled, expired, done for the day): what it
        leaves undone is routed again (after a reject, or ``reroute``) or, once nothing works any more, ends
        the parent."""
        child.pending_cancel = None
        child.pending_replace = None
        order.released = (event, venue, text)
        left = child.qty - child.cum_qty
        if reroute is None:
            reroute = event is Event.VENUE_REJECT
        if (reroute and left > 0 and order.is_open and not order.cancel_open and order.pending_replace is None
                and order.strategy != DIRECT):
            rejected = frozenset(c.venue for c in order.children if c.status is OrdStatus.REJECTED)
            why = (f"re-route after {venue} rejected {left}: {text or 'no reason given'}"
                   if event is Event.VENUE_REJECT else f"re-route: {text}")
            if order.reroutes >= self.policy.max_reroutes:
                if self.policy.max_reroutes:
                    out.warnings.append(Note(f"order {order.order_id}: {left} not routed again: already re-routed "
                                             f"{order.reroutes} time(s) (max_reroutes)", **_ids(order)))
            else:
                order.reroutes += 1
                self._route_more(order, min(left, order.qty - order.committed), why, out, recv_ns,
                                 exclude=rejected)
                order.released = (event, venue, text)  # if the new children fail too, the parent ends as this
        self._progress(order, out, recv_ns)

    @staticmethod
    def _awaiting(order: Order) -> bool:
        """A cancel is still out at a child whose answer matters: one still working, or, once the parent is
        filled, one that filled too (its venue's refusal is what the client's cancel reject says)."""
        return any(c.pending_cancel and (c.is_open or not order.is_open) for c in order.children)

    def _progress(self, order: Order, out: Outcome, recv_ns: int = 0) -> None:
        """After any change to a child: answer a cancel or replace every child that matters has answered, or
        end the parent when no child works any more."""
        live = order.live_children
        if order.cancel_open:
            if self._awaiting(order):
                return
            order.cancel_open = False
            if not order.is_open:  # filled meanwhile: the cancel came too late
                self._cancel_refused(order, out)
            elif not live:
                self._finish(order, out, recv_ns)
            else:  # a venue refused: the order works on
                order.apply(Event.VENUE_CANCEL_REJECT)
                self._cancel_refused(order, out)
            return
        if order.replace_mode == "reroute" and order.pending_replace is not None:
            if self._awaiting(order):
                return
            self._replace_rerouted(order, out, recv_ns)
            return
        if order.is_open and not live:
            self._finish(order, out, recv_ns)

    def _finish(self, order: Order, out: Outcome, recv_ns: int = 0) -> None:
        """No child works any more and the order is not filled: it ends as its last child did (canceled,
        rejected, expired, done for the day), or canceled when that is no end the parent can take."""
        event, venue, text = order.released or (Event.VENUE_CANCELED, None, None)
        if event is Event.VENUE_CANCELED and order.cancel_cause == END_OF_DAY:
            event = Event.EXPIRE
        if (order.status, event) not in TRANSITIONS:
            event = Event.VENUE_CANCELED
        order.apply(event)
        order.cancel_open = False
        self._risk_settle(order)
        kind = _EVENT_REPORT_KIND[event]
        if event is Event.VENUE_CANCELED and order.pending_cl_ord_id:
            cl, orig = order.pending_cl_ord_id, order.cl_ord_id
            order.cl_ord_id, order.pending_cl_ord_id = cl, None
            out.actions.append(self._report(order, kind, cl_ord_id=cl, orig_cl_ord_id=orig, recv_ns=recv_ns))
            return
        code = None
        if event is Event.VENUE_REJECT:
            code = RejectCode.VENUE
            text = f"rejected by {venue}: {text or 'no reason given'}"
        elif event is Event.VENUE_CANCELED:
            text = (f"canceled: {order.cancel_cause}" if order.cancel_cause else
                    f"canceled by {venue}" + (f": {text}" if text else "") if venue else f"canceled: {text}")
        elif event is Event.EXPIRE:
            text = f"expired: {order.cancel_cause or text or 'by the venue'}"
        else:
            text = None
        out.actions.append(self._report(order, kind, recv_ns=recv_ns, reject_code=code, text=text))

    def _cancel_refused(self, order: Order, out: Outcome) -> None:
        """Tell the client its cancel was refused (or note that the gateway's own cancel was)."""
        code, venue, text = order.refusal or (CxlRejCode.TOO_LATE, None, None)
        order.refusal = None
        cl = order.pending_cl_ord_id
        order.pending_cl_ord_id = None
        if cl is None:  # a cancel the gateway started itself: the client heard PendingCancel, so it hears this
            cause = order.cancel_cause
            out.warnings.append(Note(f"order {order.order_id}: {venue or 'the venue'} refused the "
                                     f"{cause} cancel: {text or code.value}", **_ids(order)))
            order.cancel_cause = None
            if order.is_open:  # unsolicited: the order's real state, so client and gateway agree again
                out.actions.append(self._report(order, ExecKind.RESTATED,
                                                text=f"cancel ({cause}) refused by {venue or 'the venue'}: "
                                                     f"{text or code.value}; the order works on"))
            return
        out.actions.append(ClientCancelReject(
            session=order.session, cl_ord_id=cl, orig_cl_ord_id=order.cl_ord_id, order_id=order.order_id,
            ord_status=order.status, response_to=CxlRejResponseTo.CANCEL, reason=code,
            text=f"cancel refused by {venue or 'the venue'}: {text or code.value}", account=order.account,
        ))

    def _replace_rerouted(self, order: Order, out: Outcome, recv_ns: int = 0) -> None:
        """Every child of a replaced order has answered its cancel: confirm the replace and route the new
        terms, or refuse it (a venue refused to cancel, or fills left nothing to replace)."""
        p = order.pending_replace
        problem = None
        if order.live_children:
            code, venue, text = order.refusal or (CxlRejCode.OTHER, None, None)
            problem = (code, f"replace refused: {venue or 'a venue'} refused to cancel its part: "
                             f"{text or code.value}")
        elif not order.is_open:
            problem = (CxlRejCode.TOO_LATE, f"order is {order.status.name.lower()}: too late to replace")
        elif p.qty <= order.cum_qty:
            problem = (CxlRejCode.OTHER, f"new OrderQty {p.qty} must exceed CumQty {order.cum_qty}")
        order.refusal = None
        if problem is not None:
            order.pending_replace = None
            order.replace_mode = None
            if order.is_open:
                order.apply(Event.VENUE_REPLACE_REJECT)
            out.actions.append(ClientCancelReject(
                session=order.session, cl_ord_id=p.cl_ord_id, orig_cl_ord_id=order.cl_ord_id,
                order_id=order.order_id, ord_status=order.status, response_to=CxlRejResponseTo.REPLACE,
                reason=problem[0], text=problem[1], account=order.account))
            if order.is_open:  # what the canceled children held is routed again on the old terms
                self._route_more(order, order.qty - order.cum_qty - order.working, "replace refused: restore",
                                 out, recv_ns)
                if not order.live_children:
                    self._finish(order, out, recv_ns)
            return
        order.apply(Event.VENUE_REPLACED)
        self._confirm_replace(order, out, recv_ns)
        self._route_more(order, order.qty - order.cum_qty, "replace", out, recv_ns)
        if order.is_open and not order.live_children:
            self._finish(order, out, recv_ns)

    def _venue_fill(self, order: Order, child: Child, ev: VenueExecution, out: Outcome) -> Outcome:
        if ev.last_qty <= 0:
            out.warnings.append(Note(f"{ev.venue} fill {ev.exec_id} with LastQty {ev.last_qty} ignored",
                                      **_ids(order), exec_id=ev.exec_id))
            return out
        child_room = child.qty - child.cum_qty
        try:
            child.apply(Event.FILL if ev.last_qty >= child_room else Event.PARTIAL_FILL)
        except TransitionRefused as exc:
            lost = child.status is OrdStatus.CANCELED and self.venues.get(ev.venue) is not None \
                and self.venues[ev.venue].on_disconnect != "hold"
            out.warnings.append(Note(f"order {order.order_id}: {exc}; {ev.last_qty}@{ev.last_px} from {ev.venue} "
                                     "not booked" + (f" (child {child.child_id} was taken as canceled when the venue "
                                                     "disconnected, on_disconnect: reconcile with the venue)"
                                                     if lost else ""), **_ids(order), exec_id=ev.exec_id))
            return out
        child_booked = child.add_fill(ev.last_qty, ev.last_px)
        self._heard(order, child, out)
        room = order.qty - order.cum_qty
        try:
            order.apply(Event.FILL if child_booked >= room else Event.PARTIAL_FILL)
        except TransitionRefused as exc:
            out.warnings.append(Note(f"order {order.order_id}: {exc}; {ev.last_qty}@{ev.last_px} from {ev.venue} "
                                      "not booked", **_ids(order), exec_id=ev.exec_id))
            return out
        booked = order.add_fill(child_booked, ev.last_px)
        if self.risk is not None and booked > 0:
            self.risk_state.on_fill(order.session, order.risk_key, booked, ev.last_px)
            self.risk_state.set_last_trade(order.symbol, ev.last_px)
        if booked < ev.last_qty:
            out.warnings.append(Note(
                f"order {order.order_id}: {ev.venue} filled {ev.last_qty} but only {booked} remained; overfill not booked",
                **_ids(order), exec_id=ev.exec_id))
        out.actions.append(self._report(order, ExecKind.TRADE, last_qty=booked, last_px=ev.last_px,
                                        last_mkt=ev.venue, recv_ns=ev.recv_ns))
        self._risk_settle(order)
        if not child.is_open:
            self._progress(order, out, ev.recv_ns)
        return out

    def _venue_replaced(self, order: Order, child: Child, ev: VenueExecution, out: Outcome) -> Outcome:
        if child.pending_replace is None or order.pending_replace is None:
            out.warnings.append(Note(f"order {order.order_id}: {ev.venue} reported a replace nobody asked for "
                                     f"(ExecID {ev.exec_id}); ignored", **_ids(order), exec_id=ev.exec_id))
            return out
        try:
            child.apply(Event.VENUE_REPLACED)
            order.apply(Event.VENUE_REPLACED)
        except TransitionRefused as exc:
            out.warnings.append(Note(f"order {order.order_id}: {exc}", **_ids(order), exec_id=ev.exec_id))
            return out
        child.apply_replace()
        self._heard(order, child, out)
        self._confirm_replace(order, out, ev.recv_ns)
        self._risk_settle(order)
        return out

    def _confirm_replace(self, order: Order, out: Outcome, recv_ns: int) -> None:
        """The client's new terms take effect: re-book its risk under the new ClOrdID and report Replaced."""
        orig = order.cl_ord_id
        order.apply_replace()
        if self.risk is not None:
            new = self._as_new_order(order)
            self.risk_state.on_replace(order.session, order.risk_key, new)
            order.risk_key = new.cl_ord_id
        out.actions.append(self._report(order, ExecKind.REPLACED, orig_cl_ord_id=orig, recv_ns=recv_ns))

    def _venue_cancel_reject(self, ev: VenueCancelReject) -> Outcome:
        out = Outcome()
        order = self._by_child.get((ev.venue, ev.cl_ord_id)) or self._by_child.get((ev.venue, ev.orig_cl_ord_id))
        child = None
        if order is not None:
            child = order.child(ev.venue, ev.cl_ord_id) or order.child(ev.venue, ev.orig_cl_ord_id)
        if child is None:
            out.warnings.append(Note(f"{ev.venue} cancel reject for unknown ClOrdID {ev.cl_ord_id}", venue=ev.venue))
            return out
        replace = ev.response_to is CxlRejResponseTo.REPLACE
        text = ev.text or ev.reason.value
        if replace:
            try:
                child.apply(Event.VENUE_REPLACE_REJECT)
                order.apply(Event.VENUE_REPLACE_REJECT)
            except TransitionRefused as exc:
                out.warnings.append(Note(f"order {order.order_id}: {exc}", **_ids(order)))
                return out
            child.pending_replace = None
            self._heard(order, child, out)
            cl = order.pending_replace.cl_ord_id if order.pending_replace else ev.cl_ord_id
            order.pending_replace = None
            order.replace_mode = None
            out.actions.append(ClientCancelReject(
                session=order.session, cl_ord_id=cl, orig_cl_ord_id=order.cl_ord_id, order_id=order.order_id,
                ord_status=order.status, response_to=ev.response_to, reason=ev.reason,
                text=f"replace refused by {ev.venue}: {text}", account=order.account,
            ))
            return out
        if child.pending_cancel is None:
            out.warnings.append(Note(f"order {order.order_id}: {ev.venue} refused a cancel we are not waiting for "
                                     f"({ev.cl_ord_id}): {text}", **_ids(order)))
            return out
        try:
            child.apply(Event.VENUE_CANCEL_REJECT)
        except TransitionRefused as exc:  # it ended meanwhile (rejected, say): the cancel is moot all the same
            out.warnings.append(Note(f"order {order.order_id}: {exc}", **_ids(order)))
        child.pending_cancel = None
        self._heard(order, child, out)
        if child.is_open or order.refusal is None:
            order.refusal = (ev.reason, ev.venue, ev.text or ev.reason.value)
        self._progress(order, out)
        return out

    def _session_status(self, ev: SessionStatus) -> Outcome:
        out = Outcome()
        if ev.role == "venue" and ev.name in self.venues:
            venue = self.venues[ev.name]
            venue.up = ev.up
            if ev.up:
                self._subscribe(venue, out)
                if venue.reconcile_on_logon:  # what did it do while we were away? (routing.liveness)
                    self._reconcile_venue(venue.name, out, "its session logged on")
            else:
                venue.md_req_id = None
                self.quotes.drop_venue(ev.name)  # its quotes die with the session
                if venue.on_disconnect != "hold":
                    self._venue_lost(venue, out)
        elif ev.role == "client" and not ev.up and self.clients.get(ev.name, ClientOptions()).cancel_on_disconnect:
            n = self._cancel_all(self._open_orders_of(ev.name, TimeInForce.DAY), out,
                                 "the client session disconnected (cancel_on_disconnect)")
            if n:
                out.warnings.append(Note(f"{ev.name} disconnected: canceling its {n} open Day order(s)", session=ev.name))
        return out

    def _venue_lost(self, venue: Venue, out: Outcome) -> None:
        """A venue that cancels its orders when our session drops (on_disconnect = cancel or reroute): its
        children are canceled now; with reroute, what they held goes to the other venues."""
        text = f"the venue disconnected and cancels open orders on disconnect (on_disconnect = {venue.on_disconnect})"
        n = 0
        for order in list(self.orders.values()):
            lost = [c for c in order.live_children if c.venue == venue.name]
            if not lost:
                continue
            for child in lost:
                child.status = OrdStatus.CANCELED
                n += 1
                self._child_done(order, child, Event.VENUE_CANCELED, venue.name, text, out,
                                 reroute=venue.on_disconnect == "reroute")
            out.changed.append(order)
        if n:
            out.warnings.append(Note(f"{venue.name} disconnected: {n} child order(s) there treated as canceled "
                                     f"(on_disconnect = {venue.on_disconnect})", venue=venue.name))

    # ------------------------------------------------------------------ market data
    def _subscribe(self, venue: Venue, out: Outcome) -> None:
        """Ask a venue that just logged on for its bids and offers in every symbol it trades."""
        if not venue.md_enabled or not venue.symbols:
            return
        venue.md_req_id = f"{self._id_prefix}-MD{next(self._ids)}"
        out.actions.append(VenueMarketDataRequest(venue=venue.name, req_id=venue.md_req_id,
                                                  symbols=tuple(sorted(venue.symbols)), depth=venue.md_depth,
                                                  incremental=venue.md_incremental))

    def _market_data(self, md: MarketData) -> Outcome:
        """A venue's full or incremental refresh: update its book; the consolidated best bid and offer
        becomes the risk engine's quote reference."""
        if md.venue not in self.venues:
            return Outcome()
        now = self.clock()
        max_age = self.policy.max_quote_age
        for symbol in self.quotes.apply(md, now):
            bid, ask = self.quotes.best(symbol, self._venue_order, now, max_age)
            if bid is not None and ask is not None:
                self.risk_state.set_quote(symbol, bid, ask)
        return Outcome()

    def _market_data_reject(self, rej: MarketDataReject) -> Outcome:
        out = Outcome()
        out.warnings.append(Note(f"{rej.venue} refused market data request {rej.req_id}: "
                                 f"{rej.text or 'no reason given'} (MDReqRejReason {rej.reason or '-'}); "
                                 "its quotes are unknown, routing treats it as quoteless", venue=rej.venue))
        return out

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

    # ------------------------------------------------------------------ operator commands
    _KILL_SCOPES = {"global": None, "session": "session", "account": "account", "symbol": "symbol"}

    def _kill_switch(self, cmd: KillSwitch) -> Outcome:
        out = Outcome()
        if self.risk is None:
            out.result = {"ok": False, "error": "risk checks are off: no [risk] rules_file is configured"}
            return out
        if cmd.scope not in self._KILL_SCOPES:
            out.result = {"ok": False, "error": f"unknown kill-switch scope {cmd.scope!r} "
                                                "(use global, session, account or symbol)"}
            return out
        if cmd.scope != "global" and not cmd.key:
            out.result = {"ok": False, "error": f"a {cmd.scope} kill switch needs the {cmd.scope} it applies to"}
            return out
        if not cmd.engage:
            released = self.risk.unkill(self.risk_state, cmd.scope, cmd.key)
            out.warnings.append(Note(f"kill switch {cmd.scope} {cmd.key} released by {cmd.operator}",
                                      operator=cmd.operator))
            out.result = {"ok": True, "released": released}
            return out
        self.risk.kill(self.risk_state, cmd.scope, cmd.key, reduce_only=cmd.reduce_only)
        canceled = 0
        if cmd.cancel_open:
            attr = self._KILL_SCOPES[cmd.scope]
            targets = [o for o in self.orders.values()
                       if o.is_open and (attr is None or getattr(o, attr) == cmd.key)]
            canceled = self._cancel_all(targets, out, f"kill switch {cmd.scope} {cmd.key}".rstrip())
        out.warnings.append(Note(f"kill switch {cmd.scope} {cmd.key} engaged by {cmd.operator}"
                                 f"{' (reduce-only)' if cmd.reduce_only else ''}; {canceled} open order(s) canceled",
                                 operator=cmd.operator))
        out.result = {"ok": True, "canceled": canceled}
        return out

    def _operator_order(self, order_id: str, out: Outcome) -> Order | None:
        """The order an operator command names, or None with the refusal in ``out.result``."""
        order = self.orders.get(order_id)
        if order is None:
            out.result = {"ok": False, "error": f"unknown order {order_id}"}
        return order

    def _operator_cancel(self, cmd: OperatorCancel) -> Outcome:
        out = Outcome()
        if cmd.order_id is not None:
            order = self._operator_order(cmd.order_id, out)
            if order is None:
                return out
            if not order.is_open:
                out.result = {"ok": False, "error": f"order {cmd.order_id} is {order.status.name.lower()}: "
                                                    "nothing to cancel"}
                return out
            targets = [order]
        else:
            targets = [o for o in self.orders.values() if o.is_open
                       and all(v is None or getattr(o, k) == v
                               for k, v in (("session", cmd.session), ("account", cmd.account),
                                            ("symbol", cmd.symbol)))]
        n = self._cancel_all(targets, out, f"operator request ({cmd.operator})")
        out.result = {"ok": True, "canceled": n}
        return out

    def _reload_risk(self, cmd: ReloadRisk) -> Outcome:
        out = Outcome()
        if self.risk is None:
            out.result = {"ok": False, "error": "risk checks are off: no [risk] rules_file is configured"}
            return out
        self.risk.reload(cmd.rules)
        out.warnings.append(f"risk rules reloaded from {cmd.source}")
        out.result = {"ok": True, "source": cmd.source}
        return out

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

    # ------------------------------------------------------------------ risk
    def _risk_check(self, out: Outcome, decision, session: str, cl_ord_id: str) -> tuple[RejectCode, str] | None:
        """Record the decision; return (code, reason) if it blocks the order."""
        out.risk.append((session, cl_ord_id, decision))
        for shadow in decision.shadow_rejects:
            out.warnings.append(Note(f"risk shadow: {session} {cl_ord_id} would have been rejected: {shadow.text}",
                                      session=session, cl_ord_id=cl_ord_id))
        if decision.session_disabled:
            out.warnings.append(Note(f"risk: session {session} disabled after repeated throttle breaches; "
                                     "an operator must re-enable it", session=session, cl_ord_id=cl_ord_id))
            out.actions.append(LogoutClient(session, "disabled after repeated throttle breaches; "
                                                     "an operator must re-enable the session"))
        elif decision.logout:
            out.actions.append(LogoutClient(session, "message rate above the throttle's logout threshold"))
        if decision.accepted:
            return None
        return decision.reject.code, decision.reject.text

    def _risk_roll(self, out: Outcome, now: datetime) -> None:
        """Per-day risk usage belongs to the trading day ``now`` is in: roll it when a boundary has passed
        (cheap otherwise). What it dropped is journaled as risk events."""
        for text in self.risk.roll(self.risk_state, now):
            out.risk_events.append(text)
            out.warnings.append(Note(f"risk: {text}"))

    def _risk_message(self, out: Outcome, msg_type: str, session: str, cl_ord_id: str, symbol: str = "",
                      account: str | None = None) -> str | None:
        """Count a cancel (F), status request (H) or mass cancel (q) for the throttle; the reason if the
        throttle refuses it (a cancel only with throttle_refuse_cancels)."""
        now = self.clock()
        self._risk_roll(out, now)
        decision = self.risk.message(msg_type, session, self.risk_state, now, account=account, symbol=symbol)
        if decision is None:
            return None
        refused = self._risk_check(out, decision, session, cl_ord_id)
        return None if refused is None else refused[1]

    def _risk_day_roll(self, cmd: RiskDayRoll) -> Outcome:
        """The scheduled roll at a trading-day boundary: the roll happens (and is journaled) with no order
        flowing; any message after the boundary would roll first anyway."""
        out = Outcome()
        if self.risk is not None:
            self._risk_roll(out, self.clock())
        return out

    def _risk_settle(self, order: Order) -> None:
        """A finished order no longer counts as open for risk (fills were booked as they came)."""
        if self.risk is not None and not order.is_open:
            self.risk_state.on_done(order.session, order.risk_key)

    @staticmethod
    def _as_new_order(order: Order, replace: ReplaceRequest | None = None) -> NewOrder:
        """The order's terms (or a replace's new terms) as the NewOrder the risk engine checks."""
        if replace is None:
            return NewOrder(session=order.session, cl_ord_id=order.cl_ord_id, symbol=order.symbol, side=order.side,
                            qty=order.qty, ord_type=order.ord_type, price=order.price, tif=order.tif,
                            account=order.account)
        return NewOrder(session=replace.session, cl_ord_id=replace.cl_ord_id, symbol=order.symbol, side=order.side,
                        qty=replace.qty, ord_type=replace.ord_type, price=replace.price,
                        tif=replace.tif or order.tif, account=order.account)

    # ------------------------------------------------------------------ helpers
    def _report(self, order: Order, kind: ExecKind, *, cl_ord_id: str | None = None, orig_cl_ord_id: str | None = None,
                last_qty: Decimal = ZERO, last_px: Decimal = ZERO, last_mkt: str | None = None,
                reject_code: RejectCode | None = None, text: str | None = None, recv_ns: int = 0) -> ClientExecReport:
        return ClientExecReport(
            session=order.session, order_id=order.order_id, cl_ord_id=cl_ord_id or order.cl_ord_id,
            orig_cl_ord_id=orig_cl_ord_id, exec_id=order.next_exec_id(), kind=kind, ord_status=order.status,
            symbol=order.symbol, side=order.side, order_qty=order.qty, ord_type=order.ord_type, price=order.price,
            tif=order.tif, account=order.account, last_qty=last_qty, last_px=last_px, cum_qty=order.cum_qty,
            leaves_qty=order.leaves_qty, avg_px=order.avg_px, last_mkt=last_mkt, reject_code=reject_code,
            text=text, recv_ns=recv_ns,
        )
