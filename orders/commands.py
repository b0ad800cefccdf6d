"""What the desk is asked to do: inbound commands, decoded from clients' and venues' FIX messages or given by the
gateway itself (ticks, operators, session changes, the trading day). Frozen, pickled compactly, pure."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from orders.model import (
    CxlRejCode, CxlRejResponseTo, ExecKind, MDUpdateAction, OrdStatus, OrdType, Side, TimeInForce, compact_pickle,
)


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
    unknown_order: bool = False  # OrdRejReason (103) 5, Unknown order: a status reply for an order the venue lacks


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


@compact_pickle
@dataclass(frozen=True, slots=True)
class TakeoverUndecided:
    """Venue messages a previous active instance decided that this instance's takeover cannot tell were sent: the
    state log has them, the FIX stores rebuilt from the journal do not (docs/failover.md). The desk holds the
    children they concern in doubt and asks their venues before acting on them again (desk/undecided.py)."""

    messages: tuple[tuple[str, str, str], ...]  # (venue, MsgType "D", "F" or "G", the message's ClOrdID), in order
