"""The order state machine, as data.

``TRANSITIONS`` maps (state, event) to the next state. A pair that is not in the
table is refused with a reason from ``refusal()``; callers turn that into a FIX
reject (client side) or a logged, counted anomaly (venue side). ``WORKING`` is a
placeholder resolved from the order's fills: NEW if nothing has filled yet,
otherwise PARTIALLY_FILLED.
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from enum import Enum
from operator import attrgetter

from routing.model import OrdStatus, OrdType, Side, TimeInForce, compact_pickle


class Event(str, Enum):
    VENUE_ACK = "venue_ack"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    VENUE_REJECT = "venue_reject"
    CANCEL_REQUEST = "cancel_request"
    VENUE_CANCELED = "venue_canceled"  # solicited or unsolicited
    VENUE_CANCEL_REJECT = "venue_cancel_reject"
    REPLACE_REQUEST = "replace_request"
    VENUE_REPLACED = "venue_replaced"
    VENUE_REPLACE_REJECT = "venue_replace_reject"
    DONE_FOR_DAY = "done_for_day"
    EXPIRE = "expire"


S = OrdStatus
E = Event
WORKING = "working"

TERMINAL = frozenset({S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED, S.DONE_FOR_DAY})

TRANSITIONS: dict[tuple[OrdStatus, Event], OrdStatus | str] = {
    # awaiting the venue's acknowledgement
    (S.PENDING_NEW, E.VENUE_ACK): S.NEW,
    (S.PENDING_NEW, E.PARTIAL_FILL): S.PARTIALLY_FILLED,  # venue may skip the ack
    (S.PENDING_NEW, E.FILL): S.FILLED,
    (S.PENDING_NEW, E.VENUE_REJECT): S.REJECTED,
    (S.PENDING_NEW, E.VENUE_CANCELED): S.CANCELED,  # e.g. IOC with nothing to match
    (S.PENDING_NEW, E.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.PENDING_NEW, E.REPLACE_REQUEST): S.PENDING_REPLACE,
    (S.PENDING_NEW, E.EXPIRE): S.EXPIRED,
    # working
    (S.NEW, E.VENUE_ACK): S.NEW,  # duplicate ack: harmless
    (S.NEW, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.NEW, E.FILL): S.FILLED,
    (S.NEW, E.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.NEW, E.REPLACE_REQUEST): S.PENDING_REPLACE,
    (S.NEW, E.VENUE_CANCELED): S.CANCELED,
    (S.NEW, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.NEW, E.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_FILLED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, E.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, E.REPLACE_REQUEST): S.PENDING_REPLACE,
    (S.PARTIALLY_FILLED, E.VENUE_CANCELED): S.CANCELED,
    (S.PARTIALLY_FILLED, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.PARTIALLY_FILLED, E.EXPIRE): S.EXPIRED,
    # a cancel is on its way to the venue: fills still count, the venue decides
    (S.PENDING_CANCEL, E.VENUE_ACK): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.PARTIAL_FILL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.FILL): S.FILLED,
    (S.PENDING_CANCEL, E.VENUE_CANCELED): S.CANCELED,
    (S.PENDING_CANCEL, E.VENUE_CANCEL_REJECT): WORKING,
    (S.PENDING_CANCEL, E.VENUE_REJECT): S.REJECTED,
    (S.PENDING_CANCEL, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.PENDING_CANCEL, E.EXPIRE): S.EXPIRED,
    # a replace is on its way to the venue: fills against the old terms still count
    (S.PENDING_REPLACE, E.VENUE_ACK): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, E.PARTIAL_FILL): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, E.FILL): S.FILLED,
    (S.PENDING_REPLACE, E.VENUE_REPLACED): WORKING,
    (S.PENDING_REPLACE, E.VENUE_REPLACE_REJECT): WORKING,
    (S.PENDING_REPLACE, E.VENUE_CANCELED): S.CANCELED,
    (S.PENDING_REPLACE, E.VENUE_REJECT): S.REJECTED,
    (S.PENDING_REPLACE, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.PENDING_REPLACE, E.EXPIRE): S.EXPIRED,
    # a cancel/replace reject that arrives after the order completed changes nothing
    (S.FILLED, E.VENUE_CANCEL_REJECT): S.FILLED,
    (S.CANCELED, E.VENUE_CANCEL_REJECT): S.CANCELED,
    (S.FILLED, E.VENUE_REPLACE_REJECT): S.FILLED,
    (S.CANCELED, E.VENUE_REPLACE_REJECT): S.CANCELED,
}

_REFUSALS = {
    E.CANCEL_REQUEST: "order is {state}: too late to cancel",
    E.REPLACE_REQUEST: "order is {state}: too late to replace",
    E.PARTIAL_FILL: "fill for an order that is {state}",
    E.FILL: "fill for an order that is {state}",
}


def refusal(state: OrdStatus, event: Event) -> str:
    template = _REFUSALS.get(event, "{event} not allowed when order is {state}")
    return template.format(state=state.name.lower(), event=event.value)


class TransitionRefused(Exception):
    """Raised by ``Order.apply`` for a (state, event) pair outside the table."""

    def __init__(self, state: OrdStatus, event: Event):
        super().__init__(refusal(state, event))
        self.state = state
        self.event = event


@compact_pickle
@dataclass(frozen=True, slots=True)
class PendingReplace:
    cl_ord_id: str  # the client's new ClOrdID
    child_cl_ord_id: str  # our new ClOrdID at the venue
    qty: Decimal
    price: Decimal | None
    ord_type: OrdType
    tif: TimeInForce


@dataclass(slots=True)
class Order:
    """A client order as the gateway owns it, with the child it has at a venue."""

    order_id: str
    session: str
    cl_ord_id: str
    symbol: str
    side: Side
    qty: Decimal
    ord_type: OrdType
    price: Decimal | None
    stop_px: Decimal | None
    tif: TimeInForce
    account: str | None
    status: OrdStatus = OrdStatus.PENDING_NEW
    cum_qty: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)  # sum of last_qty * last_px: AvgPx is exact
    venue: str | None = None
    venue_cl_ord_id: str | None = None
    venue_order_id: str | None = None
    pending_cl_ord_id: str | None = None  # client ClOrdID of a cancel in flight
    pending_replace: "PendingReplace | None" = None  # new terms of a replace in flight
    cancel_cause: str | None = None  # why the gateway itself cancels it (mass cancel, disconnect, end of day)
    risk_key: str | None = None  # the ClOrdID the risk state books this order under
    exec_seq: int = 0
    child_seq: int = 0
    seen_exec_ids: set[str] = field(default_factory=set)
    # every ClOrdID the client has used for this order, and every ClOrdID we have used for
    # it at its venue: what the core's lookups are rebuilt from after a restart
    client_ids: list[str] = field(default_factory=list)
    child_ids: list[str] = field(default_factory=list)
    accepted_at: datetime | None = None  # when the gateway accepted it (UTC)
    strategy: str | None = None  # the routing strategy that placed it (best-price, preferred, sweep, direct)
    routes: list = field(default_factory=list)  # every RouteDecision taken for it, oldest first

    # Pickled (the state log) as a tuple of the fields in order. A state file written before a field
    # was added has fewer values: the missing (trailing) fields take their defaults.
    def __getstate__(self):
        return _ORDER_GET(self)

    def __setstate__(self, state):
        for name, value in zip(_ORDER_FIELDS, state):
            object.__setattr__(self, name, value)
        for name, default in _ORDER_DEFAULTS[len(state):]:
            object.__setattr__(self, name, default())

    @property
    def leaves_qty(self) -> Decimal:
        if self.status in TERMINAL:
            return Decimal(0)
        return self.qty - self.cum_qty

    @property
    def avg_px(self) -> Decimal:
        if not self.cum_qty:
            return Decimal(0)
        return self.notional / self.cum_qty

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL

    def next_exec_id(self) -> str:
        self.exec_seq += 1
        return f"{self.order_id}.{self.exec_seq}"

    def next_child_id(self, kind: str) -> str:
        """A new ClOrdID at the venue for this order's next cancel ("c") or replace ("r")."""
        self.child_seq += 1
        return f"{self.order_id}.{kind}{self.child_seq}"

    def apply_replace(self) -> None:
        """The venue confirmed the pending replace: the new terms and ClOrdIDs take effect."""
        p = self.pending_replace
        self.qty, self.price, self.ord_type, self.tif = p.qty, p.price, p.ord_type, p.tif
        self.cl_ord_id, self.venue_cl_ord_id = p.cl_ord_id, p.child_cl_ord_id
        self.pending_replace = None
        if self.cum_qty >= self.qty:
            self.status = OrdStatus.FILLED

    def apply(self, event: Event) -> OrdStatus:
        """Move to the state the table names for ``event``; raise TransitionRefused otherwise."""
        target = TRANSITIONS.get((self.status, event))
        if target is None:
            raise TransitionRefused(self.status, event)
        if target == WORKING:
            target = OrdStatus.PARTIALLY_FILLED if self.cum_qty else OrdStatus.NEW
        self.status = target
        return target

    def add_fill(self, qty: Decimal, px: Decimal) -> Decimal:
        """Book a fill; returns the quantity actually booked (never beyond OrderQty)."""
        room = self.qty - self.cum_qty
        booked = qty if qty <= room else room
        if booked > 0:
            self.cum_qty += booked
            self.notional += booked * px
        return booked


_ORDER_FIELDS = tuple(f.name for f in fields(Order))
_ORDER_GET = attrgetter(*_ORDER_FIELDS)
_ORDER_DEFAULTS = tuple(
    (f.name, f.default_factory if f.default_factory is not MISSING else (lambda v=f.default: v))
    for f in fields(Order))
