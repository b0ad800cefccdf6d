"""Translate between quickfix messages and the domain, for FIX 4.2, 4.4 and 5.0.

This is the one module that knows how the FIX versions differ. Everything uses
integer tags: ``msg.getField(11)`` costs about 1 µs in the binding against about
60 µs for the typed ``msg.getField(fix.ClOrdID())``.

Decoding raises quickfix's own exceptions (``FieldNotFound``, ``IncorrectTagValue``)
for messages that cannot be understood, so quickfix answers them with a
session-level Reject naming the tag. Business problems are not decided here.
"""
from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation

import quickfix as fix

from routing.model import (
    CancelRequest,
    ClientCancelReject,
    ClientExecReport,
    CxlRejCode,
    ExecKind,
    NewOrder,
    OrdStatus,
    OrdType,
    RejectCode,
    Side,
    TimeInForce,
    VenueCancel,
    VenueCancelReject,
    VenueDontKnow,
    VenueExecution,
    VenueNewOrder,
)

FIX42 = "FIX.4.2"
FIX44 = "FIX.4.4"
FIX50 = "FIX.5.0"
VERSIONS = (FIX42, FIX44, FIX50)

# BeginString on the wire for each application version.
BEGIN_STRING = {FIX42: "FIX.4.2", FIX44: "FIX.4.4", FIX50: "FIXT.1.1"}
# DefaultApplVerID (1137) for FIXT.1.1 sessions.
APPL_VER_ID = {FIX50: "7"}

_DECIMAL_PLACES = Decimal("1e-10")


def fmt(value: Decimal) -> str:
    """A Decimal as a FIX float field: no exponent, no trailing zeros."""
    if value == value.to_integral_value():
        return format(value.quantize(Decimal(1)), "f")
    return format(value.quantize(_DECIMAL_PLACES).normalize(), "f")


def utc_timestamp() -> str:
    """UTCTimestamp with milliseconds, e.g. 20261124-06:31:02.123."""
    now = time.time()
    ms = int(now * 1000) % 1000
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(now)) + f".{ms:03d}"


# --------------------------------------------------------------------------- field helpers
def _get(msg: fix.Message, tag: int) -> str:
    return msg.getField(tag)


def _opt(msg: fix.Message, tag: int) -> str | None:
    if msg.isSetField(tag):
        return msg.getField(tag)
    return None


def _decimal(msg: fix.Message, tag: int) -> Decimal:
    raw = msg.getField(tag)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise fix.IncorrectDataFormat(tag) from None
    if not value.is_finite():
        raise fix.IncorrectDataFormat(tag)
    return value


def _opt_decimal(msg: fix.Message, tag: int) -> Decimal | None:
    return _decimal(msg, tag) if msg.isSetField(tag) else None


def _enum(enum_type, msg: fix.Message, tag: int):
    try:
        return enum_type(msg.getField(tag))
    except ValueError:
        raise fix.IncorrectTagValue(tag) from None


def msg_type(msg: fix.Message) -> str:
    return msg.getHeader().getField(35)


def _new(msg_type_: str) -> fix.Message:
    msg = fix.Message()
    msg.getHeader().setField(35, msg_type_)
    return msg


# --------------------------------------------------------------------------- client side: decode
def decode_new_order(msg: fix.Message, session: str, recv_ns: int = 0) -> NewOrder:
    ord_type = _enum(OrdType, msg, 40)
    tif_raw = _opt(msg, 59)
    try:
        tif = TimeInForce(tif_raw) if tif_raw is not None else TimeInForce.DAY
    except ValueError:
        raise fix.IncorrectTagValue(59) from None
    return NewOrder(
        session=session,
        cl_ord_id=_get(msg, 11),
        symbol=_get(msg, 55),
        side=_enum(Side, msg, 54),
        qty=_decimal(msg, 38),
        ord_type=ord_type,
        price=_opt_decimal(msg, 44),
        stop_px=_opt_decimal(msg, 99),
        tif=tif,
        account=_opt(msg, 1),
        ex_destination=_opt(msg, 100),
        recv_ns=recv_ns,
    )


def decode_cancel_request(msg: fix.Message, session: str, recv_ns: int = 0) -> CancelRequest:
    side_raw = _opt(msg, 54)
    try:
        side = Side(side_raw) if side_raw is not None else None
    except ValueError:
        raise fix.IncorrectTagValue(54) from None
    return CancelRequest(
        session=session,
        cl_ord_id=_get(msg, 11),
        orig_cl_ord_id=_get(msg, 41),
        symbol=_get(msg, 55),
        side=side,
        order_id=_opt(msg, 37),
        recv_ns=recv_ns,
    )


# --------------------------------------------------------------------------- client side: encode
_EXEC_TYPE_44 = {
    ExecKind.PENDING_NEW: "A",
    ExecKind.NEW: "0",
    ExecKind.TRADE: "F",
    ExecKind.PENDING_CANCEL: "6",
    ExecKind.CANCELED: "4",
    ExecKind.PENDING_REPLACE: "E",
    ExecKind.REPLACED: "5",
    ExecKind.REJECTED: "8",
    ExecKind.DONE_FOR_DAY: "3",
    ExecKind.EXPIRED: "C",
    ExecKind.ORDER_STATUS: "I",
}

_ORD_REJ_REASON_42 = {
    RejectCode.UNKNOWN_SYMBOL: "1",
    RejectCode.EXCHANGE_CLOSED: "2",
    RejectCode.EXCEEDS_LIMIT: "3",
    RejectCode.UNKNOWN_ORDER: "5",
    RejectCode.DUPLICATE_ORDER: "6",
}
_ORD_REJ_REASON_44 = {
    **_ORD_REJ_REASON_42,
    RejectCode.UNSUPPORTED_ORDER_CHARACTERISTIC: "11",
    RejectCode.INCORRECT_QUANTITY: "13",
    RejectCode.OTHER: "99",
    RejectCode.VENUE: "0",
}

_CXL_REJ_REASON = {
    CxlRejCode.TOO_LATE: "0",
    CxlRejCode.UNKNOWN_ORDER: "1",
    CxlRejCode.ALREADY_PENDING: "3",
}
_CXL_REJ_REASON_44 = {**_CXL_REJ_REASON, CxlRejCode.DUPLICATE_CLORDID: "6", CxlRejCode.OTHER: "99"}


def exec_type(version: str, report: ClientExecReport) -> str:
    if version == FIX42:
        if report.kind is ExecKind.TRADE:
            return "2" if report.ord_status is OrdStatus.FILLED else "1"
        if report.kind is ExecKind.ORDER_STATUS:
            return report.ord_status.value  # 4.2 has no ExecType=I: a status reply repeats OrdStatus
    return _EXEC_TYPE_44[report.kind]


def ord_rej_reason(version: str, code: RejectCode) -> str:
    table = _ORD_REJ_REASON_42 if version == FIX42 else _ORD_REJ_REASON_44
    return table.get(code, "0")  # 0 = broker / exchange option, valid in every version


def cxl_rej_reason(version: str, code: CxlRejCode) -> str:
    table = _CXL_REJ_REASON if version == FIX42 else _CXL_REJ_REASON_44
    return table.get(code, "2" if version == FIX42 else "99")


def encode_exec_report(version: str, r: ClientExecReport) -> fix.Message:
    msg = _new("8")
    s = msg.setField
    s(37, r.order_id)
    s(11, r.cl_ord_id)
    if r.orig_cl_ord_id:
        s(41, r.orig_cl_ord_id)
    s(17, r.exec_id)
    if version == FIX42:
        s(20, "0")  # ExecTransType=New
    s(150, exec_type(version, r))
    s(39, r.ord_status.value)
    s(55, r.symbol)
    s(54, r.side.value)
    s(38, fmt(r.order_qty))
    s(40, r.ord_type.value)
    if r.price is not None:
        s(44, fmt(r.price))
    s(59, r.tif.value)
    if r.account:
        s(1, r.account)
    if r.kind is ExecKind.TRADE:
        s(32, fmt(r.last_qty))
        s(31, fmt(r.last_px))
        if r.last_mkt:
            s(30, r.last_mkt)
    s(151, fmt(r.leaves_qty))
    s(14, fmt(r.cum_qty))
    s(6, fmt(r.avg_px))
    if r.reject_code is not None:
        s(103, ord_rej_reason(version, r.reject_code))
    if r.text:
        s(58, r.text)
    s(60, utc_timestamp())
    return msg


def encode_cancel_reject(version: str, r: ClientCancelReject) -> fix.Message:
    msg = _new("9")
    s = msg.setField
    s(37, r.order_id)
    s(11, r.cl_ord_id)
    s(41, r.orig_cl_ord_id)
    s(39, r.ord_status.value)
    s(434, r.response_to.value)
    s(102, cxl_rej_reason(version, r.reason))
    if r.account:
        s(1, r.account)
    s(58, r.text)
    return msg


def encode_business_reject(ref_msg_type: str, ref_seq_num: str | None, text: str, reason: str = "0") -> fix.Message:
    """BusinessMessageReject (j); reason 0 = Other, 3 = Unsupported message type."""
    msg = _new("j")
    s = msg.setField
    if ref_seq_num:
        s(45, ref_seq_num)
    s(372, ref_msg_type or "?")
    s(380, reason)
    s(58, text[:1000])
    return msg


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


def decode_venue_exec(msg: fix.Message, venue: str, recv_ns: int = 0) -> VenueExecution:
    kind = _VENUE_EXEC_KIND.get(_get(msg, 150))
    if kind is None:
        raise fix.IncorrectTagValue(150)
    side_raw = _opt(msg, 54)
    try:
        side = Side(side_raw) if side_raw is not None else None
        ord_status = OrdStatus(_get(msg, 39))
    except ValueError:
        raise fix.IncorrectTagValue(39 if side_raw is None else 54) from None
    if kind is ExecKind.TRADE:
        last_qty = _decimal(msg, 32)
        last_px = _decimal(msg, 31)
    else:
        last_qty = Decimal(0)
        last_px = Decimal(0)
    return VenueExecution(
        venue=venue,
        cl_ord_id=_opt(msg, 11) or "",
        orig_cl_ord_id=_opt(msg, 41),
        venue_order_id=_get(msg, 37),
        exec_id=_get(msg, 17),
        kind=kind,
        ord_status=ord_status,
        symbol=_opt(msg, 55) or "",
        side=side,
        last_qty=last_qty,
        last_px=last_px,
        cum_qty=_decimal(msg, 14),
        leaves_qty=_decimal(msg, 151),
        text=_opt(msg, 58),
        recv_ns=recv_ns,
    )


_VENUE_CXL_REJ = {"0": CxlRejCode.TOO_LATE, "1": CxlRejCode.UNKNOWN_ORDER, "3": CxlRejCode.ALREADY_PENDING, "6": CxlRejCode.DUPLICATE_CLORDID}


def decode_venue_cancel_reject(msg: fix.Message, venue: str, recv_ns: int = 0) -> VenueCancelReject:
    return VenueCancelReject(
        venue=venue,
        cl_ord_id=_get(msg, 11),
        orig_cl_ord_id=_get(msg, 41),
        venue_order_id=_opt(msg, 37),
        reason=_VENUE_CXL_REJ.get(_opt(msg, 102) or "", CxlRejCode.OTHER),
        text=_opt(msg, 58),
        recv_ns=recv_ns,
    )


def encode_venue_new_order(version: str, o: VenueNewOrder) -> fix.Message:
    msg = _new("D")
    s = msg.setField
    s(11, o.cl_ord_id)
    if version != FIX50:
        s(21, "1")  # HandlInst: automated, no broker intervention (required in 4.2)
    s(55, o.symbol)
    s(54, o.side.value)
    s(60, utc_timestamp())
    s(38, fmt(o.qty))
    s(40, o.ord_type.value)
    if o.price is not None and o.ord_type in (OrdType.LIMIT, OrdType.STOP_LIMIT):
        s(44, fmt(o.price))
    if o.stop_px is not None and o.ord_type in (OrdType.STOP, OrdType.STOP_LIMIT):
        s(99, fmt(o.stop_px))
    s(59, o.tif.value)
    if o.account:
        s(1, o.account)
    return msg


def encode_venue_cancel(version: str, c: VenueCancel) -> fix.Message:
    msg = _new("F")
    s = msg.setField
    s(41, c.orig_cl_ord_id)
    s(11, c.cl_ord_id)
    if c.venue_order_id:
        s(37, c.venue_order_id)
    s(55, c.symbol)
    s(54, c.side.value)
    s(60, utc_timestamp())
    s(38, fmt(c.qty))
    return msg


def encode_dont_know(version: str, dk: VenueDontKnow) -> fix.Message:
    msg = _new("Q")
    s = msg.setField
    s(37, dk.venue_order_id)
    s(17, dk.exec_id)
    s(127, "D")  # DKReason: no matching order
    s(55, dk.symbol or "?")
    s(54, (dk.side or Side.BUY).value)
    s(38, fmt(dk.last_qty))
    s(32, fmt(dk.last_qty))
    s(31, fmt(dk.last_px))
    s(58, dk.text[:1000])
    return msg
