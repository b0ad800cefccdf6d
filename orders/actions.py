"""What the desk decides: outbound actions (reports to clients, orders and requests to venues), the notes it logs,
and the ``Outcome`` of one command that carries them to the engine. Pure."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from orders.model import (
    CxlRejCode, CxlRejResponseTo, ExecKind, OrdStatus, OrdType, RejectCode, Side, TimeInForce, compact_pickle,
)


# Not frozen (nor VenueNewOrder): the actions made for every order on the core thread (three or more execution
# reports per order). A frozen dataclass's __init__ sets each field through object.__setattr__: this one took
# 3.0 us frozen, 0.7 us not. Nothing hashes them or changes them once made.
@compact_pickle
@dataclass(slots=True)
class ClientExecReport:
    session: str
    order_id: str
    cl_ord_id: str
    orig_cl_ord_id: str | None
    exec_id: str
    kind: ExecKind
    ord_status: OrdStatus
    symbol: str
    side: Side
    order_qty: Decimal
    ord_type: OrdType
    price: Decimal | None
    tif: TimeInForce
    account: str | None
    last_qty: Decimal
    last_px: Decimal
    cum_qty: Decimal
    leaves_qty: Decimal
    avg_px: Decimal
    last_mkt: str | None = None
    reject_code: RejectCode | None = None
    text: str | None = None
    recv_ns: int = 0  # carried from the triggering message, for hop latency


@compact_pickle
@dataclass(frozen=True, slots=True)
class ClientCancelReject:
    session: str
    cl_ord_id: str
    orig_cl_ord_id: str
    order_id: str  # "NONE" when the order is unknown, as FIX prescribes
    ord_status: OrdStatus
    response_to: CxlRejResponseTo
    reason: CxlRejCode
    text: str
    account: str | None = None


@compact_pickle
@dataclass(slots=True)  # not frozen: see ClientExecReport
class VenueNewOrder:
    venue: str
    cl_ord_id: str
    symbol: str
    side: Side
    qty: Decimal
    ord_type: OrdType
    price: Decimal | None
    stop_px: Decimal | None
    tif: TimeInForce
    account: str | None
    recv_ns: int = 0


@compact_pickle
@dataclass(frozen=True, slots=True)
class VenueCancel:
    venue: str
    cl_ord_id: str
    orig_cl_ord_id: str
    venue_order_id: str | None
    symbol: str
    side: Side
    qty: Decimal


@compact_pickle
@dataclass(frozen=True, slots=True)
class VenueReplace:
    venue: str
    cl_ord_id: str
    orig_cl_ord_id: str
    venue_order_id: str | None
    symbol: str
    side: Side
    qty: Decimal
    ord_type: OrdType
    price: Decimal | None
    tif: TimeInForce
    account: str | None


@compact_pickle
@dataclass(frozen=True, slots=True)
class VenueStatusRequest:
    """OrderStatusRequest (H) to a venue for one of our child orders: its answer reconciles the child."""

    venue: str
    cl_ord_id: str  # the child's current ClOrdID at the venue
    venue_order_id: str | None
    symbol: str
    side: Side


@compact_pickle
@dataclass(frozen=True, slots=True)
class VenueMassStatusRequest:
    """OrderMassStatusRequest (AF, FIX 4.4 and 5.0) to a venue: the state of all our orders there, one report
    each (desk/liveness.py, for a venue with ``mass_status``)."""

    venue: str
    req_id: str  # MassStatusReqID (584)


@compact_pickle
@dataclass(frozen=True, slots=True)
class ClientMassCancelReport:
    """OrderMassCancelReport (r)."""

    session: str
    cl_ord_id: str
    mass_order_id: str
    request_type: str
    response: str  # MassCancelResponse (531): 0 = rejected, else the request type
    affected: int
    reject_reason: str | None = None  # MassCancelRejectReason (532)
    text: str | None = None


@compact_pickle
@dataclass(frozen=True, slots=True)
class LogoutClient:
    """Log a client session out (e.g. the risk throttle's second threshold)."""

    session: str
    reason: str


@compact_pickle
@dataclass(frozen=True, slots=True)
class VenueDontKnow:
    """DontKnowTrade (Q): a venue reported a fill for an order we do not know."""

    venue: str
    venue_order_id: str
    exec_id: str
    symbol: str
    side: Side | None
    last_qty: Decimal
    last_px: Decimal
    text: str


@compact_pickle
@dataclass(frozen=True, slots=True)
class VenueMarketDataRequest:
    """MarketDataRequest (V) to a venue: subscribe to (or unsubscribe from) the bids and offers of symbols."""

    venue: str
    req_id: str
    symbols: tuple[str, ...]
    depth: int  # MarketDepth (264): 0 = full book, 1 = top of book, N = N levels per side
    subscribe: bool = True  # SubscriptionRequestType (263): 1 subscribe, 2 unsubscribe
    incremental: bool = True  # MDUpdateType (265): 1 incremental refresh (X), 0 full refresh (W)


class Note(str):
    """A warning for the log: its text, plus the IDs it concerns (session, order_id, ...) as log fields.

    It is a ``str``, so code that reads warnings as text keeps working.
    """

    fields: dict

    def __new__(cls, text: str, **ids) -> "Note":
        note = super().__new__(cls, text)
        note.fields = {k: v for k, v in ids.items() if v is not None}
        return note


@dataclass(slots=True)
class Outcome:
    """What the core decided for one command: actions to perform, in order, and notes to log."""

    actions: list = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # Note, or plain str
    risk: list = field(default_factory=list)  # (session, ClOrdID, risk.engine.Decision), for journaling
    risk_events: list = field(default_factory=list)  # risk lines that concern no one order (a day roll)
    risk_ns: list = field(default_factory=list)  # how long each risk check took (ns), for the metrics
    audit: list = field(default_factory=list)  # (session, text): security refusals, journaled as session events
    routes: list = field(default_factory=list)  # RouteDecision, for journaling and metrics
    changed: list = field(default_factory=list)  # orders changed that no action names (for the state log)
    result: object = None  # the answer to an operator command
    events: list = field(default_factory=list)  # (category, text): journaled as session events (reconciliation)
    in_doubt: list = field(default_factory=list)  # (order ID, venue) that became in doubt (alerted and counted)
    rejected: list = field(default_factory=list)  # RejectedOrder: new orders refused at intake (for the state log)
