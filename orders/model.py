"""Order domain vocabulary: enumerations, inbound commands and outbound actions.

Pure Python, no quickfix. Enum values are the FIX code points where FIX has a
version-independent one (Side, OrdType, TimeInForce, OrdStatus); per-version
differences (ExecType, OrdRejReason) are resolved by ``sessions.codec``.

Prices and quantities are ``Decimal``; nothing here ever holds a float.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from operator import attrgetter


def compact_pickle(cls):
    """Pickle a frozen slots dataclass as a plain tuple of its fields.

    The state log pickles commands' results on every order; the ``__getstate__``
    that ``dataclass(frozen=True, slots=True)`` adds walks ``fields()`` in Python and
    was most of that cost. ``attrgetter`` builds the tuple in C.
    """
    names = tuple(f.name for f in fields(cls))
    get = attrgetter(*names) if len(names) > 1 else (lambda obj, _g=attrgetter(names[0]): (_g(obj),))
    setter = object.__setattr__

    def __getstate__(self):
        return get(self)

    def __setstate__(self, state):
        for name, value in zip(names, state):
            setter(self, name, value)

    cls.__getstate__ = __getstate__
    cls.__setstate__ = __setstate__
    return cls


class Side(str, Enum):
    BUY = "1"
    SELL = "2"
    SELL_SHORT = "5"


class OrdType(str, Enum):
    MARKET = "1"
    LIMIT = "2"
    STOP = "3"
    STOP_LIMIT = "4"


class TimeInForce(str, Enum):
    DAY = "0"
    GTC = "1"
    IOC = "3"
    FOK = "4"


class OrdStatus(str, Enum):
    NEW = "0"
    PARTIALLY_FILLED = "1"
    FILLED = "2"
    DONE_FOR_DAY = "3"
    CANCELED = "4"
    PENDING_CANCEL = "6"
    REJECTED = "8"
    PENDING_NEW = "A"
    EXPIRED = "C"
    PENDING_REPLACE = "E"


class ExecKind(str, Enum):
    """What an execution report says happened; the codec maps it to ExecType per version."""

    PENDING_NEW = "pending_new"
    NEW = "new"
    TRADE = "trade"
    PENDING_CANCEL = "pending_cancel"
    CANCELED = "canceled"
    PENDING_REPLACE = "pending_replace"
    REPLACED = "replaced"
    REJECTED = "rejected"
    DONE_FOR_DAY = "done_for_day"
    EXPIRED = "expired"
    ORDER_STATUS = "order_status"
    RESTATED = "restated"  # unsolicited: the order's state as it really is (e.g. after a refused gateway cancel)


class RejectCode(str, Enum):
    """Why an order was rejected; mapped to OrdRejReason (103) per FIX version."""

    UNKNOWN_SYMBOL = "unknown_symbol"
    EXCHANGE_CLOSED = "exchange_closed"
    EXCEEDS_LIMIT = "exceeds_limit"
    UNKNOWN_ORDER = "unknown_order"
    DUPLICATE_ORDER = "duplicate_order"
    INCORRECT_QUANTITY = "incorrect_quantity"
    UNSUPPORTED_ORDER_CHARACTERISTIC = "unsupported_order_characteristic"
    UNKNOWN_ACCOUNT = "unknown_account"
    VENUE = "venue"
    OTHER = "other"


class CxlRejCode(str, Enum):
    """Why a cancel/replace was refused; mapped to CxlRejReason (102)."""

    TOO_LATE = "too_late"
    UNKNOWN_ORDER = "unknown_order"
    ALREADY_PENDING = "already_pending"
    DUPLICATE_CLORDID = "duplicate_clordid"
    OTHER = "other"


class CxlRejResponseTo(str, Enum):
    CANCEL = "1"
    REPLACE = "2"


# --------------------------------------------------------------------------- plain-value forms
_UTC = timezone.utc
_PLAIN_ENUMS = {"Side": Side, "OrdType": OrdType, "TimeInForce": TimeInForce, "OrdStatus": OrdStatus,
                "RejectCode": RejectCode}


class PlainForm:
    """Field values of a dataclass as plain values, for the state log, and back.

    Decimals become their text (``str`` round-trips exactly, exponent and trailing zeros included), the
    order enums their FIX codes, and UTC datetimes their 10-byte pickled state. A pickler copies such values
    in C; a Decimal, an enum or a datetime costs it a reduce call and a class reference each, which was most
    of the state log's time (bench/state_log.py). ``load`` also takes values that are still objects (the
    forms of older state logs), so one reader serves both.
    """

    def __init__(self, cls, names: tuple[str, ...]):
        kinds = {f.name: str(f.type).strip('"').replace(" | None", "") for f in fields(cls)}
        self.decimals = tuple(i for i, n in enumerate(names) if kinds[n] == "Decimal")
        self.times = tuple(i for i, n in enumerate(names) if kinds[n] == "datetime")
        self.enums = tuple((i, _PLAIN_ENUMS[kinds[n]]) for i, n in enumerate(names) if kinds[n] in _PLAIN_ENUMS)

    def dump(self, v: list) -> list:
        """Make ``v`` (the values, in ``names`` order) plain, in place."""
        for i in self.decimals:
            x = v[i]
            if x is not None:
                v[i] = str(x)
        for i, _ in self.enums:
            x = v[i]
            if x is not None:
                v[i] = x._value_
        for i in self.times:
            x = v[i]
            if x is not None and x.tzinfo is _UTC:
                v[i] = x.__reduce__()[1][0]
        return v

    def load(self, v: list) -> list:
        """Turn ``dump``'s values (or an older form's, whose Decimals and datetimes are objects) back, in place.
        A form written before trailing fields were added is shorter: those fields are left to their defaults."""
        n = len(v)
        for i in self.decimals:
            if i < n and type(v[i]) is str:
                v[i] = Decimal(v[i])
        for i, enum in self.enums:
            if i < n and v[i] is not None:
                v[i] = enum(v[i])
        for i in self.times:
            if i < n and type(v[i]) is bytes:
                v[i] = datetime(v[i], _UTC)
        return v


# --------------------------------------------------------------------------- inbound commands
@compact_pickle
@dataclass(frozen=True, slots=True)
class NewOrder:
    """A client's NewOrderSingle, decoded from any FIX version."""

    session: str  # client session name (the client's CompID)
    cl_ord_id: str
    symbol: str
    side: Side
    qty: Decimal
    ord_type: OrdType
    price: Decimal | None = None
    stop_px: Decimal | None = None
    tif: TimeInForce = TimeInForce.DAY
    account: str | None = None
    ex_destination: str | None = None
    recv_ns: int = 0  # monotonic receive stamp (time.perf_counter_ns) for latency metrics
    seq: int = 0  # MsgSeqNum (34) it arrived with; 0 when not from a FIX session
    poss_dup: bool = False  # PossDupFlag (43=Y): a resend that may already have been processed
    strategy: str | None = None  # the routing strategy the client asked for on this order (custom tag 9100)


@compact_pickle
@dataclass(frozen=True, slots=True)
class CancelRequest:
    session: str
    cl_ord_id: str
    orig_cl_ord_id: str
    symbol: str
    side: Side | None
    order_id: str | None = None
    recv_ns: int = 0
    account: str | None = None  # Account (1), when the request carries one
    seq: int = 0  # MsgSeqNum (34) it arrived with; 0 when not from a FIX session
    poss_dup: bool = False  # PossDupFlag (43=Y): a resend that may already have been processed


@compact_pickle
@dataclass(frozen=True, slots=True)
class ReplaceRequest:
    """OrderCancelReplaceRequest (G): the order's new terms."""

    session: str
    cl_ord_id: str
    orig_cl_ord_id: str
    symbol: str
    side: Side
    qty: Decimal
    ord_type: OrdType
    price: Decimal | None = None
    tif: TimeInForce | None = None
    account: str | None = None
    recv_ns: int = 0
    seq: int = 0  # MsgSeqNum (34) it arrived with; 0 when not from a FIX session
    poss_dup: bool = False  # PossDupFlag (43=Y): a resend that may already have been processed


@compact_pickle
@dataclass(frozen=True, slots=True)
class StatusRequest:
    """OrderStatusRequest (H): answered from the gateway's own state."""

    session: str
    cl_ord_id: str
    symbol: str
    side: Side | None
    order_id: str | None = None
    seq: int = 0  # MsgSeqNum (34) it arrived with; 0 when not from a FIX session
    poss_dup: bool = False  # PossDupFlag (43=Y): a resend that may already have been processed


class MassCancelScope(str, Enum):
    """MassCancelRequestType (530) values the gateway supports."""

    SYMBOL = "1"
    ALL = "7"


@compact_pickle
@dataclass(frozen=True, slots=True)
class MassCancelRequest:
    """OrderMassCancelRequest (q), FIX 4.4 and 5.0."""

    session: str
    cl_ord_id: str
    request_type: str  # raw 530 value, validated by the core
    symbol: str | None = None
    side: Side | None = None
    seq: int = 0  # MsgSeqNum (34) it arrived with; 0 when not from a FIX session
    poss_dup: bool = False  # PossDupFlag (43=Y): a resend that may already have been processed


@compact_pickle
@dataclass(frozen=True, slots=True)
class EndOfDay:
    """The configured end of a client session's trading day: its open Day orders expire."""

    session: str


@dataclass(frozen=True, slots=True)
class RiskDayRoll:
    """A trading-day boundary (risk/days.py) passed: per-day risk usage rolls even if no message flows."""


@compact_pickle
@dataclass(frozen=True, slots=True)
class KillSwitch:
    """Operator: engage (or release) a risk kill switch; optionally cancel the open orders it covers."""

    scope: str  # global | session | account | symbol
    key: str = ""
    engage: bool = True
    reduce_only: bool = False
    cancel_open: bool = False
    operator: str = "operator"


@compact_pickle
@dataclass(frozen=True, slots=True)
class OperatorCancel:
    """Operator: cancel one order (order_id) or every open order matching the filters, at their venues."""

    order_id: str | None = None
    session: str | None = None
    account: str | None = None
    symbol: str | None = None
    operator: str = "operator"


@compact_pickle
@dataclass(frozen=True, slots=True)
class ReloadRisk:
    """Operator: swap in new, already validated risk rules; exposure state is kept."""

    rules: object  # risk.rules.RulesFile
    source: str = ""


@compact_pickle
@dataclass(frozen=True, slots=True)
class VenueExecution:
    """An ExecutionReport received from a venue, decoded from any FIX version."""

    venue: str
    cl_ord_id: str  # our child order's ClOrdID at the venue
    orig_cl_ord_id: str | None
    venue_order_id: str
    exec_id: str
    kind: ExecKind
    ord_status: OrdStatus
    symbol: str
    side: Side | None
    last_qty: Decimal
    last_px: Decimal
    cum_qty: Decimal
    leaves_qty: Decimal
    text: str | None = None
    recv_ns: int = 0
    seq: int = 0  # MsgSeqNum (34) it arrived with; 0 when not from a FIX session
    poss_dup: bool = False  # PossDupFlag (43=Y): a resend that may already have been processed
    avg_px: Decimal | None = None  # AvgPx (6): what a status reply's missing fills are booked at
    order_qty: Decimal | None = None  # OrderQty (38), when given: tells a status reply which terms are live
    mass_status_req_id: str | None = None  # MassStatusReqID (584): one report of our OrderMassStatusRequest
    last_report: bool = False  # LastRptRequested (912=Y): the last report of that mass status request


@compact_pickle
@dataclass(frozen=True, slots=True)
class VenueMessageRejected:
    """A venue refused one of our messages without an ExecutionReport or OrderCancelReject: a session-level
    Reject (35=3, which names only RefSeqNum) or a BusinessMessageReject (35=j).

    The venue session resolves RefSeqNum (45) to the message we sent with that MsgSeqNum
    (``sessions.sent_index``), so the core learns which child order and which request it refused.
    """

    venue: str
    ref_msg_type: str  # RefMsgType (372) of the refused message, or what we sent with that MsgSeqNum
    ref_seq: int  # RefSeqNum (45); 0 when the reject did not carry one
    cl_ord_id: str | None  # the ClOrdID of the refused message, when known
    text: str
    session_level: bool  # 35=3 (True) or 35=j (False)
    recv_ns: int = 0
    seq: int = 0
    poss_dup: bool = False


@dataclass(frozen=True, slots=True)
class Tick:
    """The engine's timer: the core checks child orders whose venue has not answered in time."""


@compact_pickle
@dataclass(frozen=True, slots=True)
class OperatorReconcile:
    """Operator: ask the venues for the state of one order's children (order_id), or of every open order's."""

    order_id: str | None = None
    operator: str = "operator"


@compact_pickle
@dataclass(frozen=True, slots=True)
class OperatorClose:
    """Operator: force an order to a terminal state (Canceled) and tell the client, e.g. an order left in doubt
    that the operator has settled with the venue by other means."""

    order_id: str
    reason: str
    operator: str = "operator"


@compact_pickle
@dataclass(frozen=True, slots=True)
class VenueCancelReject:
    venue: str
    cl_ord_id: str
    orig_cl_ord_id: str
    venue_order_id: str | None
    reason: CxlRejCode
    text: str | None = None
    recv_ns: int = 0
    response_to: CxlRejResponseTo = CxlRejResponseTo.CANCEL
    seq: int = 0  # MsgSeqNum (34) it arrived with; 0 when not from a FIX session
    poss_dup: bool = False  # PossDupFlag (43=Y): a resend that may already have been processed


class MDUpdateAction(str, Enum):
    """MDUpdateAction (279) of an incremental market data entry."""

    NEW = "0"
    CHANGE = "1"
    DELETE = "2"


@compact_pickle
@dataclass(frozen=True, slots=True)
class MDEntry:
    """One price level of a venue's book: a bid (side BUY, MDEntryType 0) or an offer (SELL, MDEntryType 1)."""

    side: Side
    price: Decimal
    size: Decimal
    action: MDUpdateAction = MDUpdateAction.NEW  # incrementals only: new, change or delete the level
    symbol: str = ""  # incrementals only: each entry names its symbol


@compact_pickle
@dataclass(frozen=True, slots=True)
class MarketData:
    """A venue's market data: a full refresh (W) of one symbol's book, or incremental updates (X)."""

    venue: str
    req_id: str | None
    symbol: str | None  # the full refresh's symbol; None for incrementals (each entry names its own)
    entries: tuple[MDEntry, ...]
    snapshot: bool  # True: the entries replace the symbol's book; False: they update it level by level
    recv_ns: int = 0
    seq: int = 0  # MsgSeqNum (34) it arrived with
    poss_dup: bool = False


@compact_pickle
@dataclass(frozen=True, slots=True)
class MarketDataReject:
    """MarketDataRequestReject (Y): a venue refused our subscription."""

    venue: str
    req_id: str
    reason: str | None
    text: str | None = None


@compact_pickle
@dataclass(frozen=True, slots=True)
class SessionStatus:
    """A session logged on (up=True) or out."""

    name: str
    role: str  # "client" or "venue"
    up: bool


@compact_pickle
@dataclass(frozen=True, slots=True)
class ChildNotSent:
    """The engine could not encode a message for a venue (gateway/process/engine.py, its safety net): the core treats
    it as the venue's refusal, so the order never waits for an answer that cannot come. A new order (D) is a
    rejected child (routed again or reported to the client); a cancel (F) or replace (G), a refused one."""

    venue: str
    cl_ord_id: str  # our ClOrdID of the message that was not sent
    msg_type: str  # "D", "F" or "G"
    text: str
    orig_cl_ord_id: str | None = None  # F and G: the child's ClOrdID they were for


# --------------------------------------------------------------------------- outbound actions
@compact_pickle
@dataclass(frozen=True, slots=True)
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
@dataclass(frozen=True, slots=True)
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


# --------------------------------------------------------------------------- routing decisions
@compact_pickle
@dataclass(frozen=True, slots=True)
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
@dataclass(frozen=True, slots=True)
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


Command = (NewOrder | CancelRequest | ReplaceRequest | StatusRequest | MassCancelRequest | EndOfDay
           | KillSwitch | ReloadRisk | OperatorCancel | VenueExecution | VenueCancelReject | SessionStatus
           | MarketData | MarketDataReject | ChildNotSent)
Action = (ClientExecReport | ClientCancelReject | ClientMassCancelReport | VenueNewOrder | VenueCancel
          | VenueReplace | VenueDontKnow | LogoutClient | VenueMarketDataRequest)


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
