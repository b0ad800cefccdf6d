"""Routing an accepted order: the order's strategy, the venues as the router sees them, the children it places."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from desk.common import ZERO, order_fields
from desk.watch import expect
from orders.actions import Note, Outcome, VenueNewOrder
from orders.commands import NewOrder
from orders.model import OrdType
from orders.records import QuoteSeen, RouteDecision, with_split
from orders.states import Child, Event, Order
from routing.router import DIRECT, Candidate, Leg, Route, StrategySpec, direct, parse_strategy, route

if TYPE_CHECKING:
    from desk.state import DeskState


def unrouted_note(routed: Route) -> str:
    return f"{routed.unrouted} not routed (IOC: no more displayed liquidity within the limit)"


def strategy_for(core: DeskState, cmd: NewOrder) -> StrategySpec:
    """The order's strategy: its own (tag 9100), else its account's, its session's, the default."""
    if cmd.strategy is not None:
        return parse_strategy(cmd.strategy)
    if cmd.account is not None and cmd.account in core.policy.accounts:
        return core.policy.accounts[cmd.account]
    client = core.clients.get(cmd.session)
    if client is not None and client.strategy is not None:
        return client.strategy
    return core.policy.default


def venue_candidates(core: DeskState, symbol: str, now: datetime) -> tuple[list[Candidate], tuple[QuoteSeen, ...]]:
    """Every configured venue as the router sees it for ``symbol`` now, and the record of it."""
    max_age = core.policy.max_quote_age
    candidates, seen = [], []
    for rank, name in enumerate(core.venue_order):
        v = core.venues[name]
        q = core.quotes.quote(name, symbol)
        age = q.age(now) if q is not None else None
        trusted = q is not None and v.up and age <= max_age
        candidates.append(Candidate(name, v.up, symbol in v.symbols, v.priority, rank, v.take_fee, v.make_fee,
                                    q if trusted else None))
        seen.append(QuoteSeen(name, v.up, symbol in v.symbols, q.bid if q else None, q.bid_size if q else ZERO,
                              q.ask if q else None, q.ask_size if q else ZERO,
                              int(age.total_seconds() * 1000) if age is not None else None, trusted,
                              v.take_fee, v.make_fee, v.priority))
    return candidates, tuple(seen)


def decide(core: DeskState, order: Order, qty: Decimal, reason: str, ex_destination: str | None = None,
           exclude: frozenset[str] = frozenset()) -> tuple[Route, RouteDecision]:
    """Run the order's strategy (or its ExDestination) for ``qty``: the route, and the decision with its inputs
    (not yet recorded: ``place`` records it with the children it creates)."""
    now = core.clock()
    candidates, seen = venue_candidates(core, order.symbol, now)
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


def place(core: DeskState, order: Order, legs: tuple[Leg, ...], decision: RouteDecision, out: Outcome,
          recv_ns: int = 0) -> list[Child]:
    """Send a child order for each leg; record the decision with the children it made."""
    children = []
    for leg in legs:
        room = order.qty - order.committed
        if leg.qty > room:  # never: the router splits at most what is left; a guard against overfills
            out.warnings.append(Note(f"order {order.order_id}: {leg.qty} for {leg.venue} would exceed the "
                                     f"order's quantity ({room} left unplaced); not sent", **order_fields(order)))
            continue
        child_id = order.order_id if not order.children else order.next_child_id("n")
        child = Child(child_id=child_id, venue=leg.venue, qty=leg.qty, price=order.price,
                      ord_type=order.ord_type, tif=order.tif, cl_ord_id=child_id)
        order.children.append(child)
        core.index_child(order, child, child_id)
        expect(core, order, child)
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


def route_more(core: DeskState, order: Order, qty: Decimal, reason: str, out: Outcome, recv_ns: int = 0,
               exclude: frozenset[str] = frozenset()) -> bool:
    """Route ``qty`` more of an accepted order with its strategy; False if no venue can take any of it."""
    if qty <= 0 or order.strategy == DIRECT:
        return False
    result, decision = decide(core, order, qty, reason, exclude=exclude)
    if not result.ok:
        order.routes.append(decision)
        out.routes.append(decision)
        order.released = (Event.VENUE_CANCELED, None, f"{qty} could not be routed again: {result.note}")
        return False
    if result.unrouted:
        order.released = (Event.VENUE_CANCELED, None, unrouted_note(result))
    return bool(place(core, order, result.legs, decision, out, recv_ns))
