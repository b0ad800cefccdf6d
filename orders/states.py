"""The order state machine, as data, and the orders the core owns: a parent per client order, a child
per venue order placed for it.

``TRANSITIONS`` maps (state, event) to the next state. A pair that is not in the
table is refused with a reason from ``refusal()``; callers turn that into a FIX
reject (client side) or a logged, counted anomaly (venue side). ``WORKING`` is a
placeholder resolved from the order's fills: NEW if nothing has filled yet,
otherwise PARTIALLY_FILLED.

The same table drives both levels. A ``Child`` moves as its venue reports (it is
a venue order). The parent ``Order`` moves on the client's requests and on what
its children's events mean for the client: the first acknowledgement, fills
(FILL when the parent's quantity is reached), and, once no child is working
any more, the event that ended the last one (see ``desk.core``). With one
child the parent moves exactly as that child does.
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from enum import Enum
from operator import attrgetter

from orders.model import OrdStatus, OrdType, PlainForm, Side, TimeInForce, compact_pickle


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
    child_cl_ord_id: str  # our new ClOrdID at the venue ("" when the children are canceled and re-routed)
    qty: Decimal
    price: Decimal | None
    ord_type: OrdType
    tif: TimeInForce


def tuple_pickle(layout: str | None = None, slim: tuple[str, tuple[str, ...]] | None = None):
    """Pickle a slots dataclass as the tuple of its fields, in order, built in C (``attrgetter``).

    A state file written before a field was added has fewer values: the missing
    (trailing) fields take their defaults. With ``layout``, the tuple starts with
    that marker, and a state without it is an older layout that ``cls._legacy``
    converts first, to the values of every field in order.

    ``slim`` = (marker, fields left out): ``__setstate__`` also takes a state that
    starts with that marker and has the fields ``cls._slim_fields`` (all but those), which come back with their
    defaults (the state log writes orders so and carries their routing decisions
    separately: ``order_state_log_form``). Copies and every other pickle keep
    every field.
    """
    def decorate(cls):
        every = tuple(f.name for f in fields(cls))
        get = attrgetter(*every)
        defaults = {f.name: (f.default_factory if f.default_factory is not MISSING else (lambda v=f.default: v))
                    for f in fields(cls)}
        setter = object.__setattr__

        def _set(self, names, values):
            for name, value in zip(names, values):
                setter(self, name, value)
            for name in names[len(values):]:
                setter(self, name, defaults[name]())

        if layout is None:
            def __getstate__(self):
                return get(self)
        else:
            def __getstate__(self):
                return (layout, *get(self))

        slim_marker, slim_names, left_out = None, (), ()
        if slim is not None:
            slim_marker, left_out = slim
            slim_names = tuple(n for n in every if n not in left_out)
        cls._slim_fields = slim_names

        def __setstate__(self, state):
            if layout is not None:
                marker = state[0] if state else None
                if marker == slim_marker and slim_marker is not None:
                    _set(self, slim_names, state[1:])
                    for name in left_out:
                        setter(self, name, defaults[name]())
                    return
                state = state[1:] if marker == layout else cls._legacy(state)
            _set(self, every, state)

        cls.__getstate__ = __getstate__
        cls.__setstate__ = __setstate__
        return cls
    return decorate


class _Stateful:
    """The transition table and exact fill booking, shared by parents and children."""

    __slots__ = ()

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

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL

    @property
    def avg_px(self) -> Decimal:
        if not self.cum_qty:
            return Decimal(0)
        return self.notional / self.cum_qty


@compact_pickle
@dataclass(frozen=True, slots=True)
class ChildReplace:
    """New terms of a replace in flight at a child's venue."""

    cl_ord_id: str  # our new ClOrdID at the venue
    qty: Decimal
    price: Decimal | None
    ord_type: OrdType
    tif: TimeInForce


@tuple_pickle()
@dataclass(slots=True)
class Child(_Stateful):
    """One order the gateway placed at a venue for a client order, as the venue reports it."""

    child_id: str  # the ClOrdID it was sent with: its name
    venue: str
    qty: Decimal
    price: Decimal | None
    ord_type: OrdType
    tif: TimeInForce
    status: OrdStatus = OrdStatus.PENDING_NEW
    cum_qty: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    cl_ord_id: str = ""  # its current ClOrdID at the venue (a replace changes it)
    venue_order_id: str | None = None
    pending_cancel: str | None = None  # our ClOrdID of a cancel in flight
    pending_replace: ChildReplace | None = None
    cl_ord_ids: list[str] = field(default_factory=list)  # every ClOrdID we used for it at the venue
    seen_exec_ids: set[str] = field(default_factory=set)
    # liveness (desk.watch): when we last sent the venue something it must answer (the order, a cancel,
    # a replace or a status request), how many status requests are out since, and why the child is in doubt
    asked_at: datetime | None = None
    status_asks: int = 0
    in_doubt: str | None = None

    @property
    def leaves_qty(self) -> Decimal:
        return Decimal(0) if self.status in TERMINAL else self.qty - self.cum_qty

    @property
    def awaiting(self) -> str | None:
        """What the venue has not answered yet: "new" (the order itself), "cancel" or "replace"; None."""
        if self.status is OrdStatus.PENDING_NEW:
            return "new"
        if self.pending_cancel is not None and self.status not in TERMINAL:
            return "cancel"
        if self.pending_replace is not None and self.status not in TERMINAL:
            return "replace"
        return None

    @property
    def committed(self) -> Decimal:
        """The most it can ever fill: what it filled if finished, else its quantity (the larger of the old and
        new one while a replace is in flight)."""
        if self.status in TERMINAL:
            return self.cum_qty
        if self.pending_replace is not None and self.pending_replace.qty > self.qty:
            return self.pending_replace.qty
        return self.qty

    def owns(self, cl_ord_id: str) -> bool:
        return cl_ord_id == self.child_id or cl_ord_id in self.cl_ord_ids

    def apply_replace(self) -> None:
        """The venue confirmed the pending replace: the new terms and ClOrdID take effect."""
        p = self.pending_replace
        self.qty, self.price, self.ord_type, self.tif, self.cl_ord_id = p.qty, p.price, p.ord_type, p.tif, p.cl_ord_id
        self.pending_replace = None
        if self.cum_qty >= self.qty:
            self.status = OrdStatus.FILLED


# The fields an Order had when it held one venue order itself (state files written then).
_LEGACY_ORDER_FIELDS = (
    "order_id", "session", "cl_ord_id", "symbol", "side", "qty", "ord_type", "price", "stop_px", "tif", "account",
    "status", "cum_qty", "notional", "venue", "venue_cl_ord_id", "venue_order_id", "pending_cl_ord_id",
    "pending_replace", "cancel_cause", "risk_key", "exec_seq", "child_seq", "seen_exec_ids", "client_ids",
    "child_ids", "accepted_at", "strategy", "routes")


# "order/2" since orders have children; the state log writes "order/3", without the routing decisions,
# and logs each decision once instead (gateway/state/log.py)
@tuple_pickle(layout="order/2", slim=("order/3", ("routes",)))
@dataclass(slots=True)
class Order(_Stateful):
    """A client order as the gateway owns it (the parent), with the child orders it placed at venues."""

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
    pending_cl_ord_id: str | None = None  # client ClOrdID of a cancel in flight
    pending_replace: "PendingReplace | None" = None  # new terms of a replace in flight
    cancel_cause: str | None = None  # why the gateway itself cancels it (mass cancel, disconnect, end of day)
    risk_key: str | None = None  # the ClOrdID the risk state books this order under
    exec_seq: int = 0
    child_seq: int = 0
    # every ClOrdID the client has used for this order: what the core's lookups are rebuilt from after a
    # restart (with each child's ``cl_ord_ids``)
    client_ids: list[str] = field(default_factory=list)
    accepted_at: datetime | None = None  # when the gateway accepted it (UTC)
    strategy: str | None = None  # the routing strategy that placed it (e.g. best-price, preferred:V2,V1, direct)
    routes: list = field(default_factory=list)  # every RouteDecision taken for it, oldest first
    children: list[Child] = field(default_factory=list)  # in the order they were placed
    reroutes: int = 0  # quantity sent elsewhere after a venue reject or disconnect, so far
    cancel_open: bool = False  # a cancel is out at its children; the parent answers when all have
    replace_mode: str | None = None  # a replace in flight: "venue" (its one child replaced there) or "reroute"
    refusal: tuple | None = None  # (CxlRejCode, venue, text) of a child's refused cancel, for the answer
    released: tuple | None = None  # (Event, venue, text): how quantity last stopped working without filling

    @staticmethod
    def _legacy(state) -> tuple:
        return _from_legacy(state)

    @property
    def in_doubt(self) -> str | None:
        """Why the gateway does not know this order's state at a venue (a child in doubt), or None."""
        for c in self.children:
            if c.in_doubt:
                return f"{c.venue} {c.child_id}: {c.in_doubt}"
        return None

    @property
    def leaves_qty(self) -> Decimal:
        if self.status in TERMINAL:
            return Decimal(0)
        return self.qty - self.cum_qty

    @property
    def live_children(self) -> list[Child]:
        return [c for c in self.children if c.status not in TERMINAL]

    @property
    def committed(self) -> Decimal:
        """What its children may ever fill in total: never more than the order's quantity."""
        return sum((c.committed for c in self.children), Decimal(0))

    @property
    def working(self) -> Decimal:
        """Quantity working at venues now."""
        return sum((c.leaves_qty for c in self.children), Decimal(0))

    @property
    def venues(self) -> list[str]:
        return list(dict.fromkeys(c.venue for c in self.children))

    @property
    def venue(self) -> str | None:
        """Its first child's venue (with one child, the venue holding the order)."""
        return self.children[0].venue if self.children else None

    @property
    def venue_cl_ord_id(self) -> str | None:
        return self.children[0].cl_ord_id if self.children else None

    @property
    def venue_order_id(self) -> str | None:
        return self.children[0].venue_order_id if self.children else None

    @property
    def child_ids(self) -> list[str]:
        """Every ClOrdID we used at venues for it, child by child."""
        return [cid for c in self.children for cid in c.cl_ord_ids]

    def child(self, venue: str, cl_ord_id: str | None) -> Child | None:
        """The child at ``venue`` that ``cl_ord_id`` (any ClOrdID we used for it) names."""
        if not cl_ord_id:
            return None
        for c in self.children:
            if c.venue == venue and c.owns(cl_ord_id):
                return c
        return None

    def next_exec_id(self) -> str:
        self.exec_seq += 1
        return f"{self.order_id}.{self.exec_seq}"

    def next_child_id(self, kind: str) -> str:
        """A new ClOrdID at a venue for this order: a child ("n"), a cancel ("c") or a replace ("r")."""
        self.child_seq += 1
        return f"{self.order_id}.{kind}{self.child_seq}"

    def apply_replace(self) -> None:
        """The replace is confirmed: the client's new terms and ClOrdID take effect."""
        p = self.pending_replace
        self.qty, self.price, self.ord_type, self.tif = p.qty, p.price, p.ord_type, p.tif
        self.cl_ord_id = p.cl_ord_id
        self.pending_replace = None
        self.replace_mode = None
        if self.cum_qty >= self.qty:
            self.status = OrdStatus.FILLED


# ----------------------------------------------------------------------------- the state log's form of an order
# The state log writes an order after every command that touches it. ``order_state_log_form`` is the order's
# slim state ("order/3", no routing decisions) as plain values (``PlainForm``: Decimals as text, enums as
# codes, UTC datetimes as bytes), its children's too; ``order_from_state_log`` turns it back, and also
# reads the forms of older logs (objects where this writes text). Fields added later come back with their
# defaults from older records, as with every tuple_pickle layout.
_SLIM = Order._slim_fields  # tuple_pickle's "order/3": every field but the routing decisions
_SLIM_GET, _ORDER_FORM = attrgetter(*_SLIM), PlainForm(Order, _SLIM)
_CHILDREN = _SLIM.index("children")
_CHILD_FIELDS = tuple(f.name for f in fields(Child))
_CHILD_GET, _CHILD_FORM = attrgetter(*_CHILD_FIELDS), PlainForm(Child, _CHILD_FIELDS)


def order_state_log_form(order: Order) -> list:
    v = _ORDER_FORM.dump(list(_SLIM_GET(order)))
    dump, get = _CHILD_FORM.dump, _CHILD_GET
    v[_CHILDREN] = [dump(list(get(c))) for c in v[_CHILDREN]]
    return v


def order_from_state_log(form) -> Order:
    v = _ORDER_FORM.load(list(form))
    v[_CHILDREN] = [tuple(_CHILD_FORM.load(list(cv))) for cv in v[_CHILDREN]]
    return order_from_slim(v)


def order_from_slim(values: list) -> Order:
    """An order from the values of its slim fields (``Order._slim_fields``, "order/3"), each child given as the
    tuple of its fields' values; ``values`` is used in place."""
    children = []
    for child_values in values[_CHILDREN]:
        child = Child.__new__(Child)
        child.__setstate__(child_values)
        children.append(child)
    values[_CHILDREN] = children
    order = Order.__new__(Order)
    order.__setstate__(("order/3", *values))
    return order


def _from_legacy(state) -> tuple:
    """An Order pickled when it held its one venue order itself: the same order with that venue order as
    its only child."""
    d = dict(zip(_LEGACY_ORDER_FIELDS, state))
    d.setdefault("strategy", None)
    d.setdefault("routes", [])
    children, mode = [], None
    if d["venue"] is not None:
        child = Child(child_id=d["order_id"], venue=d["venue"], qty=d["qty"], price=d["price"],
                      ord_type=d["ord_type"], tif=d["tif"], status=d["status"], cum_qty=d["cum_qty"],
                      notional=d["notional"], cl_ord_id=d["venue_cl_ord_id"] or d["order_id"],
                      venue_order_id=d["venue_order_id"], cl_ord_ids=list(d["child_ids"]) or [d["order_id"]],
                      seen_exec_ids=set(d["seen_exec_ids"]))
        if d["status"] is OrdStatus.PENDING_CANCEL and d["child_ids"]:
            child.pending_cancel = d["child_ids"][-1]
        p = d["pending_replace"]
        if p is not None:
            child.pending_replace = ChildReplace(p.child_cl_ord_id, p.qty, p.price, p.ord_type, p.tif)
            mode = "venue"
        children.append(child)
    cancel_open = d["status"] is OrdStatus.PENDING_CANCEL
    return (d["order_id"], d["session"], d["cl_ord_id"], d["symbol"], d["side"], d["qty"], d["ord_type"],
            d["price"], d["stop_px"], d["tif"], d["account"], d["status"], d["cum_qty"], d["notional"],
            d["pending_cl_ord_id"], d["pending_replace"], d["cancel_cause"], d["risk_key"], d["exec_seq"],
            d["child_seq"], list(d["client_ids"]), d["accepted_at"], d["strategy"], d["routes"], children, 0,
            cancel_open, mode, None, None)
