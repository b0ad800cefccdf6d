"""Inbound FIX into the domain: clients' intents (D, F, G, H, q), venues' reports and rejects (8, 9, 3, j),
market data (V for the venue simulator, W, X, Y), each as a frozen command (``orders.commands``) or report.

Raises quickfix's own exceptions for a message that cannot be understood (quickfix then answers with a
Reject naming the tag), and applies the intake rule to clients' messages (``IntakeLimits``, ``_str``; the
``sessions.codec`` package docstring).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import quickfix as fix

from orders.commands import (
    CancelRequest, MarketData, MarketDataReject, MassCancelRequest, MDEntry, NewOrder, ReplaceRequest, StatusRequest,
    VenueCancelReject, VenueExecution, VenueMessageRejected,
)
from orders.model import CxlRejCode, CxlRejResponseTo, ExecKind, MDUpdateAction, OrdStatus, OrdType, Side, TimeInForce
from routing.router import STRATEGY_TAG
from sessions.codec.tagvalue import BID, OFFER, Fields, fields, parse_fields, parse_pairs


# --------------------------------------------------------------------------- intake limits
@dataclass(frozen=True, slots=True)
class IntakeLimits:
    """The largest quantity and price, and the most decimal places, a client's order may carry
    (gateway.cfg ``[limits]``). ``fmt`` writes at most 10 decimal places and Decimal arithmetic keeps 28
    digits, so the configuration caps these at 10**15 and 10 places: anything accepted formats exactly."""

    max_qty: Decimal = Decimal(10) ** 12
    max_price: Decimal = Decimal(10) ** 12
    max_decimals: int = 8


DEFAULT_LIMITS = IntakeLimits()

# FIX's float types: an optional minus, digits, an optional decimal point (no exponent, no sign "+", no spaces;
# quickfix's own check lets "1." and ".5" through too)
_FIX_DECIMAL = re.compile(r"-?(\d*)(?:\.(\d*))?")


def printable_ascii(value: str) -> bool:
    """The sessions' encoding: FIX String fields carry printable ASCII (0x20-0x7E). Two flag checks in C."""
    return value.isascii() and value.isprintable()


def _str(f: Fields, tag: int) -> str:
    """A required string field the gateway echoes back or forwards: printable ASCII, or 373=6 naming it.

    A byte quickfix cannot decode as UTF-8 reaches Python as a lone surrogate (SWIG's "surrogateescape"),
    which no string setter of the binding can take back: such a value must never be accepted.
    """
    value = _get(f, tag)
    if not (value.isascii() and value.isprintable()):
        raise fix.IncorrectDataFormat(tag)
    return value


def _opt_str(f: Fields, tag: int) -> str | None:
    value = f.get(tag)
    if value is not None and not (value.isascii() and value.isprintable()):
        raise fix.IncorrectDataFormat(tag)
    return value


def _bounded(f: Fields, tag: int, limit: Decimal, decimals: int) -> Decimal:
    """A quantity or price within the intake limits: exactly what ``fmt`` will write back."""
    raw = _get(f, tag)
    match = _FIX_DECIMAL.fullmatch(raw)
    if match is None or not (match.group(1) or match.group(2)):
        raise fix.IncorrectDataFormat(tag)
    if len((match.group(2) or "").rstrip("0")) > decimals:
        raise fix.IncorrectTagValue(tag)
    value = Decimal(raw)  # exact: Decimal keeps every digit of the text, whatever its length
    if abs(value) > limit:
        raise fix.IncorrectTagValue(tag)
    return value


def _qty(f: Fields, tag: int, limits: IntakeLimits) -> Decimal:
    return _bounded(f, tag, limits.max_qty, limits.max_decimals)


def _px(f: Fields, tag: int, limits: IntakeLimits) -> Decimal | None:
    return _bounded(f, tag, limits.max_price, limits.max_decimals) if tag in f else None


def _get(f: Fields, tag: int) -> str:
    try:
        return f[tag]
    except KeyError:
        raise fix.FieldNotFound(tag) from None


def _decimal(f: Fields, tag: int) -> Decimal:
    raw = _get(f, tag)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise fix.IncorrectDataFormat(tag) from None
    if not value.is_finite():
        raise fix.IncorrectDataFormat(tag)
    return value


def _opt_decimal(f: Fields, tag: int) -> Decimal | None:
    return _decimal(f, tag) if tag in f else None


def _enum(enum_type, f: Fields, tag: int):
    try:
        return enum_type(_get(f, tag))
    except ValueError:
        raise fix.IncorrectTagValue(tag) from None


def _opt_enum(enum_type, f: Fields, tag: int):
    return _enum(enum_type, f, tag) if tag in f else None


def _seq(f: Fields) -> int:
    """MsgSeqNum (34), or 0 for a message built outside a session (tests, tools)."""
    raw = f.get(34)
    return int(raw) if raw and raw.isdigit() else 0


def _poss_dup(f: Fields) -> bool:
    return f.get(43) == "Y"


# --------------------------------------------------------------------------- client side: decode
# Every string a command keeps is read with ``_str``/``_opt_str`` and every number with ``_qty``/``_px``, so a
# command exists only if all of it can be written back (module docstring). ``limits``: gateway.cfg [limits].
def decode_new_order(msg, session: str, recv_ns: int = 0, limits: IntakeLimits = DEFAULT_LIMITS) -> NewOrder:
    """A NewOrderSingle (a quickfix Message or its ``fields()``) as a domain command."""
    f = fields(msg)
    return NewOrder(
        session=session,
        cl_ord_id=_str(f, 11),
        symbol=_str(f, 55),
        side=_enum(Side, f, 54),
        qty=_qty(f, 38, limits),
        ord_type=_enum(OrdType, f, 40),
        price=_px(f, 44, limits),
        stop_px=_px(f, 99, limits),
        tif=_opt_enum(TimeInForce, f, 59) or TimeInForce.DAY,
        account=_opt_str(f, 1),
        ex_destination=_opt_str(f, 100),
        recv_ns=recv_ns,
        seq=_seq(f),
        poss_dup=_poss_dup(f),
        strategy=_opt_str(f, STRATEGY_TAG),
    )


def decode_cancel_request(msg, session: str, recv_ns: int = 0) -> CancelRequest:
    f = fields(msg)
    return CancelRequest(
        session=session,
        cl_ord_id=_str(f, 11),
        orig_cl_ord_id=_str(f, 41),
        symbol=_str(f, 55),
        side=_opt_enum(Side, f, 54),
        order_id=_opt_str(f, 37),
        recv_ns=recv_ns,
        seq=_seq(f),
        poss_dup=_poss_dup(f),
        account=_opt_str(f, 1),
    )


def decode_replace_request(msg, session: str, recv_ns: int = 0,
                           limits: IntakeLimits = DEFAULT_LIMITS) -> ReplaceRequest:
    f = fields(msg)
    return ReplaceRequest(
        session=session,
        cl_ord_id=_str(f, 11),
        orig_cl_ord_id=_str(f, 41),
        symbol=_str(f, 55),
        side=_enum(Side, f, 54),
        qty=_qty(f, 38, limits),
        ord_type=_enum(OrdType, f, 40),
        price=_px(f, 44, limits),
        tif=_opt_enum(TimeInForce, f, 59),
        account=_opt_str(f, 1),
        recv_ns=recv_ns,
        seq=_seq(f),
        poss_dup=_poss_dup(f),
    )


def decode_status_request(msg, session: str) -> StatusRequest:
    f = fields(msg)
    return StatusRequest(session=session, cl_ord_id=_str(f, 11), symbol=_str(f, 55), side=_opt_enum(Side, f, 54),
                         order_id=_opt_str(f, 37), seq=_seq(f), poss_dup=_poss_dup(f))


def decode_mass_cancel(msg, session: str) -> MassCancelRequest:
    f = fields(msg)
    return MassCancelRequest(session=session, cl_ord_id=_str(f, 11), request_type=_str(f, 530),
                             symbol=_opt_str(f, 55), side=_opt_enum(Side, f, 54), seq=_seq(f),
                             poss_dup=_poss_dup(f))


# --------------------------------------------------------------------------- venue side
_VENUE_EXEC_KIND = {
    "0": ExecKind.NEW,
    "1": ExecKind.TRADE,  # 4.2 Partial fill
    "2": ExecKind.TRADE,  # 4.2 Fill
    "F": ExecKind.TRADE,
    "3": ExecKind.DONE_FOR_DAY,
    "4": ExecKind.CANCELED,
    "5": ExecKind.REPLACED,
    "6": ExecKind.PENDING_CANCEL,
    "8": ExecKind.REJECTED,
    "A": ExecKind.PENDING_NEW,
    "C": ExecKind.EXPIRED,
    "E": ExecKind.PENDING_REPLACE,
    "I": ExecKind.ORDER_STATUS,
}


_ZERO = Decimal(0)


def decode_venue_exec(msg, venue: str, recv_ns: int = 0) -> VenueExecution:
    f = fields(msg)
    kind = _VENUE_EXEC_KIND.get(_get(f, 150))
    if kind is None:
        raise fix.IncorrectTagValue(150)
    if f.get(20) == "3":  # FIX 4.2: ExecTransType Status, the answer to an OrderStatusRequest (no ExecType I)
        kind = ExecKind.ORDER_STATUS
    trade = kind is ExecKind.TRADE
    return VenueExecution(
        venue=venue,
        cl_ord_id=f.get(11) or "",
        orig_cl_ord_id=f.get(41),
        venue_order_id=_get(f, 37),
        exec_id=_get(f, 17),
        kind=kind,
        ord_status=_enum(OrdStatus, f, 39),
        symbol=f.get(55) or "",
        side=_opt_enum(Side, f, 54),
        last_qty=_decimal(f, 32) if trade else _ZERO,
        last_px=_decimal(f, 31) if trade else _ZERO,
        cum_qty=_decimal(f, 14),
        leaves_qty=_decimal(f, 151),
        text=f.get(58),
        recv_ns=recv_ns,
        seq=_seq(f),
        poss_dup=_poss_dup(f),
        avg_px=_opt_decimal(f, 6),
        order_qty=_opt_decimal(f, 38),
        mass_status_req_id=f.get(584),
        last_report=f.get(912) == "Y",
        unknown_order=f.get(103) == "5",  # OrdRejReason Unknown order (4.2 and later)
    )


def decode_venue_reject(f: Fields, venue: str, ref: "tuple[str, str] | None", recv_ns: int = 0
                        ) -> VenueMessageRejected:
    """A venue's session-level Reject (35=3) or BusinessMessageReject (35=j) of one of our messages.

    ``ref``: (MsgType, ClOrdID) of the message we sent with its RefSeqNum (45), from the venue session's
    ``sessions.sent_index.SentIndex``; a 35=3 names nothing else. A 35=j may name the ClOrdID in
    BusinessRejectRefID (379), which is used when the index does not know the sequence number.
    """
    session_level = f.get(35) == "3"
    ref_seq = int(f[45]) if (f.get(45) or "").isdigit() else 0
    ref_type = f.get(372) or (ref[0] if ref else "")
    cl_ord_id = ref[1] if ref and ref[1] and (not f.get(372) or ref[0] == f.get(372)) else None
    if cl_ord_id is None and not session_level:
        cl_ord_id = f.get(379)
    if session_level:
        reason = f"SessionRejectReason {f.get(373) or '-'}" + (f", tag {f[371]}" if f.get(371) else "")
    else:
        reason = f"BusinessRejectReason {f.get(380) or '-'}"
    text = f"{f.get(58) or 'no text'} ({reason})"
    return VenueMessageRejected(venue=venue, ref_msg_type=ref_type, ref_seq=ref_seq, cl_ord_id=cl_ord_id, text=text,
                                session_level=session_level, recv_ns=recv_ns, seq=_seq(f), poss_dup=_poss_dup(f))


_VENUE_CXL_REJ = {"0": CxlRejCode.TOO_LATE, "1": CxlRejCode.UNKNOWN_ORDER, "3": CxlRejCode.ALREADY_PENDING, "6": CxlRejCode.DUPLICATE_CLORDID}


def decode_venue_cancel_reject(msg, venue: str, recv_ns: int = 0) -> VenueCancelReject:
    f = fields(msg)
    return VenueCancelReject(
        venue=venue,
        cl_ord_id=_get(f, 11),
        orig_cl_ord_id=_get(f, 41),
        venue_order_id=f.get(37),
        reason=_VENUE_CXL_REJ.get(f.get(102) or "", CxlRejCode.OTHER),
        text=f.get(58),
        recv_ns=recv_ns,
        response_to=CxlRejResponseTo.REPLACE if f.get(434) == "2" else CxlRejResponseTo.CANCEL,
        seq=_seq(f),
        poss_dup=_poss_dup(f),
    )


# --------------------------------------------------------------------------- market data (V, W, X, Y)
_ENTRY_SIDE = {BID: Side.BUY, OFFER: Side.SELL}


@dataclass(frozen=True, slots=True)
class MDRequest:
    """A decoded MarketDataRequest (V), for the venue simulator."""

    req_id: str
    request_type: str  # 263: 0 snapshot, 1 subscribe, 2 unsubscribe
    depth: int  # 264: 0 = full book
    incremental: bool  # 265 = 1
    entry_types: tuple[str, ...]
    symbols: tuple[str, ...]


def decode_md_request(raw: str) -> MDRequest:
    f = parse_fields(raw)
    request_type = _get(f, 263)
    if request_type not in ("0", "1", "2"):
        raise fix.IncorrectTagValue(263)
    depth_text = _get(f, 264)
    if not depth_text.isdigit():
        raise fix.IncorrectTagValue(264)
    pairs = parse_pairs(raw)
    types = tuple(v for t, v in pairs if t == 269)
    symbols = tuple(v for t, v in pairs if t == 55)
    return MDRequest(req_id=_get(f, 262), request_type=request_type, depth=int(depth_text),
                     incremental=f.get(265) == "1", entry_types=types, symbols=symbols)


def _md_entries(pairs: list[tuple[int, str]], start_tag: int) -> list[dict[int, str]]:
    """The entries of the NoMDEntries (268) group: a new entry starts at each ``start_tag``."""
    entries: list[dict[int, str]] = []
    inside = False
    for tag, value in pairs:
        if tag == 268:
            inside = True
            continue
        if not inside:
            continue
        if tag == start_tag:
            entries.append({})
        if entries and tag != 10:
            entries[-1].setdefault(tag, value)
    return entries


def _md_decimal(entry: dict[int, str], tag: int) -> Decimal:
    try:
        value = Decimal(entry[tag])
    except KeyError:
        raise fix.FieldNotFound(tag) from None
    except InvalidOperation:
        raise fix.IncorrectDataFormat(tag) from None
    if not value.is_finite():
        raise fix.IncorrectDataFormat(tag)
    return value


def decode_md_snapshot(raw: str, venue: str, recv_ns: int = 0) -> MarketData:
    """A MarketDataSnapshotFullRefresh (W): the symbol's bids and offers; other entry types are left out."""
    f = parse_fields(raw)
    out = []
    for e in _md_entries(parse_pairs(raw), 269):
        side = _ENTRY_SIDE.get(e.get(269))
        if side is None:
            continue  # trades, imbalances, ...: not part of the book
        size = _md_decimal(e, 271) if 271 in e else Decimal(0)
        out.append(MDEntry(side=side, price=_md_decimal(e, 270), size=size))
    return MarketData(venue=venue, req_id=f.get(262), symbol=_get(f, 55), entries=tuple(out), snapshot=True,
                      recv_ns=recv_ns, seq=_seq(f), poss_dup=_poss_dup(f))


def decode_md_incremental(raw: str, venue: str, recv_ns: int = 0) -> MarketData:
    """A MarketDataIncrementalRefresh (X): level updates of bids and offers, each naming its symbol."""
    f = parse_fields(raw)
    out = []
    for e in _md_entries(parse_pairs(raw), 279):
        side = _ENTRY_SIDE.get(e.get(269))
        if side is None:
            continue
        try:
            action = MDUpdateAction(e[279])
        except ValueError:
            raise fix.IncorrectTagValue(279) from None
        size = _md_decimal(e, 271) if 271 in e else Decimal(0)
        out.append(MDEntry(side=side, price=_md_decimal(e, 270), size=size, action=action,
                           symbol=e.get(55) or f.get(55) or ""))
    return MarketData(venue=venue, req_id=f.get(262), symbol=None, entries=tuple(out), snapshot=False,
                      recv_ns=recv_ns, seq=_seq(f), poss_dup=_poss_dup(f))


def decode_md_reject(raw: str, venue: str) -> MarketDataReject:
    f = parse_fields(raw)
    return MarketDataReject(venue=venue, req_id=f.get(262) or "", reason=f.get(281), text=f.get(58))
