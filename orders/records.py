"""What the desk decided about an order, kept for operators, the journal and the state log: routing decisions with
what the router saw, and new orders refused at intake, each with its plain-value state-log form. Pure."""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from operator import attrgetter

from orders.model import OrdStatus, OrdType, PlainForm, RejectCode, Side, TimeInForce, compact_pickle


# Not frozen (nor RouteDecision): made for every venue (and twice per decision) of every order routed, on the
# core thread, where a frozen dataclass's __init__ costs a call of object.__setattr__ per field. Nothing hashes
# them or changes them once made (``with_split`` makes a new decision).
@compact_pickle
@dataclass(slots=True)
class QuoteSeen:
    """One venue as the router saw it when it decided: its top of book, the quote's age, its fees."""

    venue: str
    up: bool
    trades: bool
    bid: Decimal | None
    bid_size: Decimal
    ask: Decimal | None
    ask_size: Decimal
    age_ms: int | None  # None: no quote at all
    trusted: bool  # young enough to route on
    take_fee: Decimal
    make_fee: Decimal
    priority: int


@compact_pickle
@dataclass(slots=True)  # not frozen: see QuoteSeen
class RouteDecision:
    """A routing decision and its inputs: what the router saw, which strategy, the split it chose."""

    at: datetime
    order_id: str
    session: str
    cl_ord_id: str
    reason: str  # new order, replace, re-route after a venue reject, a venue disconnected
    strategy: str  # best-price, preferred, sweep, direct
    symbol: str
    side: Side
    qty: Decimal  # the quantity routed
    limit: Decimal | None
    quotes: tuple[QuoteSeen, ...]
    split: tuple[tuple[str, Decimal, str], ...]  # (venue, quantity, child ClOrdID); empty: nowhere to go
    note: str  # the strategy's reason for the split
    unrouted: Decimal = Decimal(0)  # not sent anywhere (an IOC sweep's rest)


_QUOTE_FIELDS = tuple(f.name for f in fields(QuoteSeen))
_QUOTE_GET, _QUOTE_FORM = attrgetter(*_QUOTE_FIELDS), PlainForm(QuoteSeen, _QUOTE_FIELDS)
_ROUTE_FIELDS = tuple(f.name for f in fields(RouteDecision))
_ROUTE_GET, _ROUTE_FORM = attrgetter(*_ROUTE_FIELDS), PlainForm(RouteDecision, _ROUTE_FIELDS)
_QUOTES, _SPLIT = _ROUTE_FIELDS.index("quotes"), _ROUTE_FIELDS.index("split")


def with_split(d: RouteDecision, split: tuple) -> RouteDecision:
    """``d`` with ``split`` (what ``dataclasses.replace`` does, without its walk over the fields)."""
    v = list(_ROUTE_GET(d))
    v[_SPLIT] = split
    return RouteDecision(*v)


def route_state_log_form(d: RouteDecision) -> list:
    """A routing decision as plain values (``PlainForm``), its quotes and split too."""
    v = _ROUTE_FORM.dump(list(_ROUTE_GET(d)))
    v[_QUOTES] = [_QUOTE_FORM.dump(list(_QUOTE_GET(q))) for q in v[_QUOTES]]
    v[_SPLIT] = [(venue, str(qty), child) for venue, qty, child in v[_SPLIT]]
    return v


def route_from_state_log(v: list) -> RouteDecision:
    _ROUTE_FORM.load(v)
    v[_QUOTES] = tuple(QuoteSeen(*_QUOTE_FORM.load(q)) for q in v[_QUOTES])
    v[_SPLIT] = tuple((venue, Decimal(qty), child) for venue, qty, child in v[_SPLIT])
    return RouteDecision(*v)


@compact_pickle
@dataclass(frozen=True, slots=True)
class RejectedOrder:
    """A new order the gateway refused at intake (validation, access control, risk, routing), as operators
    look it up: the reject exactly as the client was told (OrderID, code, Text) and who refused it.

    Not an order of the book: it never counts as open, in risk usage or in duplicate ClOrdID checks (the
    ClOrdID stays free for a corrected resend). The core keeps the latest ones (``Core.rejected``).
    """

    order_id: str  # the OrderID (37) of the reject ExecutionReport
    session: str
    cl_ord_id: str
    account: str | None
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal | None
    ord_type: OrdType
    tif: TimeInForce
    received_at: datetime  # when the core took it (UTC)
    refused_by: str  # "validation", "access control", "session", "risk: RULE" or "router"
    reject_code: RejectCode  # OrdRejReason (103) as the gateway names it; the codec maps it per FIX version
    text: str  # Text (58), exactly as sent
    stop_px: Decimal | None = None

    @property
    def status(self) -> OrdStatus:
        return OrdStatus.REJECTED


_REJECTED_FIELDS = tuple(f.name for f in fields(RejectedOrder))
_REJECTED_GET, _REJECTED_FORM = attrgetter(*_REJECTED_FIELDS), PlainForm(RejectedOrder, _REJECTED_FIELDS)


def rejected_state_log_form(r: RejectedOrder) -> list:
    """A refused order as plain values (``PlainForm``): one small state-log entry per rejection."""
    return _REJECTED_FORM.dump(list(_REJECTED_GET(r)))


def rejected_from_state_log(v: list) -> RejectedOrder:
    return RejectedOrder(*_REJECTED_FORM.load(list(v)))


def describe_route(d: RouteDecision) -> str:
    """One journal line for a routing decision, with its inputs."""
    def px(v):
        return "-" if v is None else str(v)

    seen = "; ".join(
        f"{q.venue}{'' if q.up else ' down'}{'' if q.trades else ' (does not trade it)'} "
        + (f"{px(q.bid)}x{px(q.bid_size)}/{px(q.ask)}x{px(q.ask_size)} age {q.age_ms}ms"
           f"{'' if q.trusted else ' STALE'}" if q.age_ms is not None else "no quote")
        + f" fees take {px(q.take_fee)} make {px(q.make_fee)} prio {q.priority}"
        for q in d.quotes)
    split = ", ".join(f"{v} {px(q)} ({child})" for v, q, child in d.split) or "nowhere"
    return (f"{d.order_id} {d.session} {d.cl_ord_id} {d.reason}: {d.strategy} {d.side.name.lower()} {px(d.qty)} "
            f"{d.symbol} limit {px(d.limit) if d.limit is not None else 'market'} -> {split}"
            + (f", {px(d.unrouted)} not routed" if d.unrouted else "") + f" | {d.note} | quotes: {seen or 'none'}")
