"""Translate between quickfix messages and the domain, for FIX 4.2, 4.4 and 5.0.

This is the one module that knows how the FIX versions differ.

Cost model (docs/quickfix-binding.md): every call into the binding releases and
retakes the GIL, and with several busy threads each of those becomes a thread
switch. So an outbound message is built as one tag=value string and handed to
quickfix in one call (``fix.Message(text, False)``), and an inbound message is
read with one ``toString()`` and split in Python, instead of one
``setField``/``getField`` call per field.

Decoding raises quickfix's own exceptions (``FieldNotFound``, ``IncorrectTagValue``)
for messages that cannot be understood, so quickfix answers them with a
session-level Reject naming the tag. Business problems are not decided here.

Intake rule (docs/architecture.md, "What the gateway accepts"): a client's message
is accepted only if everything the gateway will echo back or forward can be encoded
again, exactly. String fields must be printable ASCII, the sessions' one encoding
(``_str``: otherwise 373=6, IncorrectDataFormat); quantities and prices must be plain
FIX decimals (no exponent, no "NaN") within ``IntakeLimits`` (``_qty``/``_px``:
otherwise 373=5, value out of range). ``tests/test_intake.py`` checks, with wide
generated inputs, that every encoder can write whatever the decoders accept.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import quickfix as fix

from orders.model import (
    CancelRequest,
    ClientCancelReject,
    ClientExecReport,
    ClientMassCancelReport,
    CxlRejCode,
    CxlRejResponseTo,
    MarketData,
    MarketDataReject,
    MassCancelRequest,
    MDEntry,
    MDUpdateAction,
    ReplaceRequest,
    StatusRequest,
    VenueReplace,
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
    VenueMarketDataRequest,
    VenueMassStatusRequest,
    VenueMessageRejected,
    VenueNewOrder,
    VenueStatusRequest,
)
from routing.router import STRATEGY_TAG
from sessions.fixsettings import spec_path

FIX42 = "FIX.4.2"
FIX44 = "FIX.4.4"
FIX50 = "FIX.5.0"
VERSIONS = (FIX42, FIX44, FIX50)

# BeginString on the wire for each application version.
BEGIN_STRING = {FIX42: "FIX.4.2", FIX44: "FIX.4.4", FIX50: "FIXT.1.1"}
# DefaultApplVerID (1137) for FIXT.1.1 sessions.
APPL_VER_ID = {FIX50: "7"}

_DECIMAL_PLACES = Decimal("1e-10")


_FMT_CACHE: dict[Decimal, str] = {}  # prices and quantities repeat: most calls are one dict read
_FMT_CACHE_MAX = 50_000


def fmt(value: Decimal) -> str:
    """A Decimal as a FIX float field: no exponent, no trailing zeros."""
    if not value:
        return "0"  # also for -0, which equals 0 and so must not be cached as "-0"
    text = _FMT_CACHE.get(value)  # equal values (100, 100.0) format alike
    if text is not None:
        return text
    if value == value.to_integral_value():
        text = format(value.quantize(Decimal(1)), "f")
    else:
        text = format(value.quantize(_DECIMAL_PLACES).normalize(), "f")
    if len(_FMT_CACHE) >= _FMT_CACHE_MAX:
        _FMT_CACHE.clear()
    _FMT_CACHE[value] = text
    return text


_stamp = (-1, "")  # (unix second, its "YYYYMMDD-HH:MM:SS."), replaced as one object: safe across threads


def utc_timestamp() -> str:
    """UTCTimestamp with milliseconds, e.g. 20261124-06:31:02.123 (the date and time formatted once a second)."""
    global _stamp
    second, milli = divmod(time.time_ns() // 1_000_000, 1000)
    known, prefix = _stamp
    if second != known:
        prefix = time.strftime("%Y%m%d-%H:%M:%S.", time.gmtime(second))
        _stamp = (second, prefix)
    return f"{prefix}{milli:03d}"


# --------------------------------------------------------------------------- field helpers
SOH = "\x01"
Fields = dict[int, str]


def parse_fields(raw: str) -> Fields:
    """tag -> value for a raw FIX string (the last value wins for a repeated tag)."""
    out: Fields = {}
    for part in raw.split(SOH):
        if part:
            tag, _, value = part.partition("=")
            out[int(tag)] = value
    return out


def parse_pairs(raw: str) -> list[tuple[int, str]]:
    """(tag, value) in wire order, repeated tags kept: for messages with repeating groups."""
    out = []
    for part in raw.split(SOH):
        if part:
            tag, _, value = part.partition("=")
            out.append((int(tag), value))
    return out


def fields(msg) -> Fields:
    """The fields of a quickfix Message (header, body, trailer), read with one binding call."""
    if isinstance(msg, dict):
        return msg
    return parse_fields(msg.toString())


def _text(value: str) -> str:
    """A free-text value that cannot break the message (no SOH inside) and is in the sessions' encoding:
    a character outside printable ASCII (a venue's Text in another script, a lone surrogate) becomes "?"."""
    if not value.isascii():
        value = value.encode("ascii", "replace").decode("ascii")
    return value.replace(SOH, " ")[:1000]


class Unencodable(ValueError):
    """A message's text holds a character outside the sessions' encoding (ASCII): the binding's string setter
    would raise TypeError on a lone surrogate, and a peer expects ASCII anyway. Names the first such tag."""

    def __init__(self, tag: str):
        super().__init__(f"tag {tag} holds a character outside ASCII, the sessions' encoding")
        self.tag = tag


def check_encodable(text: str) -> str:
    """``text`` if every character is ASCII (one flag check: CPython knows it of every str), else Unencodable."""
    if text.isascii():
        return text
    for part in text.split(SOH):
        if not part.isascii():
            raise Unencodable(part.partition("=")[0])
    raise Unencodable("?")  # never: a non-ASCII text has a non-ASCII part


def _body(msg_type: str, pairs) -> str:
    """A message's text from MsgType and (tag, value) pairs, None values left out (quickfix adds the header)."""
    parts = ["35=", msg_type, SOH]
    append = parts.append
    for tag, value in pairs:
        if value is not None:
            append(f"{tag}={value}{SOH}")
    return "".join(parts)


def _build(msg_type: str, pairs) -> fix.Message:
    """One quickfix Message from (tag, value) pairs, in one binding call; None values are left out."""
    return fix.Message(_body(msg_type, pairs), False)


def _message(text_encoder):
    """``encode_x(version, r)`` returns a quickfix Message; ``encode_x.text(version, r)`` its text, which
    the engine writes to the state log before it sends the message (gateway/outbound.py)."""
    def encode(version: str, r) -> fix.Message:
        return fix.Message(text_encoder(version, r), False)

    encode.text = text_encoder
    encode.__name__ = encode.__qualname__ = text_encoder.__name__
    encode.__doc__ = text_encoder.__doc__
    return encode


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
LIMIT_CEILING = Decimal(10) ** 15  # the most a limit may be set to (gateway/config.py checks it)
DECIMALS_CEILING = 10  # the most decimal places ``fmt`` writes

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
    ExecKind.RESTATED: "D",  # Restated, in every version (4.2 included)
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
    RejectCode.UNKNOWN_ACCOUNT: "15",
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


@_message
def encode_exec_report(version: str, r: ClientExecReport) -> str:
    # Three or more per order, all on the core thread: written out as text pieces in field order instead of
    # (tag, value) pairs through ``_body`` (2.4x faster in a micro-benchmark; tests/test_codec.py pins the
    # exact text). Enums' ``_value_`` is their plain attribute (``.value`` is a descriptor call).
    out = [f"35=8\x0137={r.order_id}\x0111={r.cl_ord_id}\x01"]
    add = out.append
    if r.orig_cl_ord_id:
        add(f"41={r.orig_cl_ord_id}\x01")
    add(f"17={r.exec_id}\x01")
    if version == FIX42:
        # ExecTransType, 4.2 only: 3 (Status) answers an OrderStatusRequest, as 4.2 prescribes; 0 (New) otherwise
        add("20=3\x01" if r.kind is ExecKind.ORDER_STATUS else "20=0\x01")
    add(f"150={exec_type(version, r)}\x0139={r.ord_status._value_}\x0155={r.symbol}\x0154={r.side._value_}"
        f"\x0138={fmt(r.order_qty)}\x0140={r.ord_type._value_}\x01")
    if r.price is not None:
        add(f"44={fmt(r.price)}\x01")
    add(f"59={r.tif._value_}\x01")
    if r.account:
        add(f"1={r.account}\x01")
    if r.kind is ExecKind.TRADE:
        add(f"32={fmt(r.last_qty)}\x0131={fmt(r.last_px)}\x01")
        if r.last_mkt:
            add(f"30={r.last_mkt}\x01")
    add(f"151={fmt(r.leaves_qty)}\x0114={fmt(r.cum_qty)}\x016={fmt(r.avg_px)}\x01")
    if r.reject_code is not None:
        add(f"103={ord_rej_reason(version, r.reject_code)}\x01")
    if r.text:
        add(f"58={_text(r.text)}\x01")
    add(f"60={utc_timestamp()}\x01")
    return "".join(out)


@_message
def encode_cancel_reject(version: str, r: ClientCancelReject) -> str:
    return _body("9", (
        (37, r.order_id),
        (11, r.cl_ord_id),
        (41, r.orig_cl_ord_id),
        (39, r.ord_status.value),
        (434, r.response_to.value),
        (102, cxl_rej_reason(version, r.reason)),
        (1, r.account or None),
        (58, _text(r.text)),
    ))


@_message
def encode_mass_cancel_report(version: str, r: ClientMassCancelReport) -> str:
    return _body("r", (
        (11, r.cl_ord_id),
        (37, r.mass_order_id),
        (530, r.request_type),
        (531, r.response),
        (532, r.reject_reason),
        (533, str(r.affected)),
        (58, _text(r.text) if r.text else None),
    ))


def encode_business_reject(ref_msg_type: str, ref_seq_num: str | None, text: str, reason: str = "0",
                           ref_id: str | None = None) -> fix.Message:
    """BusinessMessageReject (j); reason 0 = Other, 3 = Unsupported message type.

    ``ref_id`` goes in BusinessRejectRefID (379), e.g. the ClOrdID the sender knows. Every value passes
    ``_text``: this is the answer of last resort, it must be encodable whatever it quotes.
    """
    return _build("j", (
        (45, ref_seq_num or None),
        (372, _text(ref_msg_type or "?")),
        (379, _text(ref_id) if ref_id else None),
        (380, reason),
        (58, _text(text)),
    ))


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


_PRICED = (OrdType.LIMIT, OrdType.STOP_LIMIT)
_STOPPED = (OrdType.STOP, OrdType.STOP_LIMIT)


@_message
def encode_venue_new_order(version: str, o: VenueNewOrder) -> str:
    return _body("D", (
        (11, o.cl_ord_id),
        (21, "1" if version != FIX50 else None),  # HandlInst: automated (required in 4.2)
        (55, o.symbol),
        (54, o.side.value),
        (60, utc_timestamp()),
        (38, fmt(o.qty)),
        (40, o.ord_type.value),
        (44, fmt(o.price) if o.price is not None and o.ord_type in _PRICED else None),
        (99, fmt(o.stop_px) if o.stop_px is not None and o.ord_type in _STOPPED else None),
        (59, o.tif.value),
        (1, o.account or None),
    ))


@_message
def encode_venue_cancel(version: str, c: VenueCancel) -> str:
    return _body("F", (
        (41, c.orig_cl_ord_id),
        (11, c.cl_ord_id),
        (37, c.venue_order_id or None),
        (55, c.symbol),
        (54, c.side.value),
        (60, utc_timestamp()),
        (38, fmt(c.qty)),
    ))


@_message
def encode_venue_replace(version: str, r: VenueReplace) -> str:
    return _body("G", (
        (41, r.orig_cl_ord_id),
        (11, r.cl_ord_id),
        (37, r.venue_order_id or None),
        (21, "1" if version != FIX50 else None),
        (55, r.symbol),
        (54, r.side.value),
        (60, utc_timestamp()),
        (38, fmt(r.qty)),
        (40, r.ord_type.value),
        (44, fmt(r.price) if r.price is not None and r.ord_type in _PRICED else None),
        (59, r.tif.value),
        (1, r.account or None),
    ))


@_message
def encode_venue_mass_status_request(version: str, r: VenueMassStatusRequest) -> str:
    return _body("AF", (
        (584, r.req_id),
        (585, "7"),  # MassStatusReqType: status for all orders
    ))


@_message
def encode_venue_status_request(version: str, r: VenueStatusRequest) -> str:
    return _body("H", (
        (37, r.venue_order_id or None),
        (11, r.cl_ord_id),
        (55, r.symbol),
        (54, r.side.value),
    ))


@_message
def encode_dont_know(version: str, dk: VenueDontKnow) -> str:
    return _body("Q", (
        (37, dk.venue_order_id),
        (17, dk.exec_id),
        (127, "D"),  # DKReason: no matching order
        (55, dk.symbol or "?"),
        (54, (dk.side or Side.BUY).value),
        (38, fmt(dk.last_qty)),
        (32, fmt(dk.last_qty)),
        (31, fmt(dk.last_px)),
        (58, _text(dk.text)),
    ))


# --------------------------------------------------------------------------- market data (V, W, X, Y)
# Messages with repeating groups cannot be built from a flat string without a data dictionary:
# quickfix would keep the fields but sort them by tag, tearing the group entries apart. With the
# version's dictionary, ``fix.Message(text, dd, False)`` parses the groups (still one binding call).
# quickfix 1.16 drops the last entry of a trailing group unless another field follows it, so the
# text ends with a CheckSum (10), which quickfix recomputes when it sends the message.
_DICTIONARIES: dict[str, tuple] = {}
_DD_LOCK = threading.Lock()
BID, OFFER = "0", "1"  # MDEntryType (269)
_ENTRY_SIDE = {BID: Side.BUY, OFFER: Side.SELL}
_SIDE_ENTRY = {Side.BUY: BID, Side.SELL: OFFER}


def dictionaries(version: str) -> tuple:
    """The data dictionaries a message of ``version`` is parsed with: (app,) or (transport, app) for FIX 5.0."""
    dds = _DICTIONARIES.get(version)
    if dds is None:
        with _DD_LOCK:
            dds = _DICTIONARIES.get(version)
            if dds is None:
                if version == FIX50:
                    dds = (fix.DataDictionary(spec_path("FIXT11.xml")), fix.DataDictionary(spec_path("FIX50.xml")))
                else:
                    dds = (fix.DataDictionary(spec_path("FIX42.xml" if version == FIX42 else "FIX44.xml")),)
                _DICTIONARIES[version] = dds
    return dds


def _build_grouped(version: str, msg_type: str, pairs) -> fix.Message:
    """Like ``_build``, for a message with repeating groups: ``pairs`` in dictionary order, groups included."""
    parts = ["35=", msg_type, SOH]
    append = parts.append
    for tag, value in pairs:
        if value is not None:
            append(f"{tag}={value}{SOH}")
    append("10=000" + SOH)
    dds = dictionaries(version)
    if len(dds) == 2:
        return fix.Message("".join(parts), dds[0], dds[1], False)
    return fix.Message("".join(parts), dds[0], False)


def encode_md_request(version: str, r: VenueMarketDataRequest) -> fix.Message:
    """MarketDataRequest (V): bids and offers (267 group), one NoRelatedSym (146) entry per symbol."""
    pairs = [(262, r.req_id), (263, "1" if r.subscribe else "2"), (264, str(r.depth)),
             (265, ("1" if r.incremental else "0") if r.subscribe else None),
             (267, "2"), (269, BID), (269, OFFER), (146, str(len(r.symbols)))]
    pairs += [(55, symbol) for symbol in r.symbols]
    return _build_grouped(version, "V", pairs)


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


def encode_md_snapshot(version: str, req_id: str | None, symbol: str, bids, asks) -> fix.Message:
    """MarketDataSnapshotFullRefresh (W) of one symbol: ``bids``/``asks`` as (price, size), best first."""
    entries = [(BID, px, size) for px, size in bids] + [(OFFER, px, size) for px, size in asks]
    pairs = [(262, req_id), (55, symbol), (268, str(len(entries)))]
    for entry_type, px, size in entries:
        pairs += [(269, entry_type), (270, fmt(px)), (271, fmt(size))]
    return _build_grouped(version, "W", pairs)


def encode_md_incremental(version: str, req_id: str | None, entries) -> fix.Message:
    """MarketDataIncrementalRefresh (X): ``entries`` as (MDUpdateAction, Side, symbol, price, size)."""
    pairs = [(262, req_id), (268, str(len(entries)))]
    for action, side, symbol, px, size in entries:
        pairs += [(279, action.value), (269, _SIDE_ENTRY[side]), (55, symbol), (270, fmt(px)),
                  (271, fmt(size))]
    return _build_grouped(version, "X", pairs)


def encode_md_reject(version: str, req_id: str, reason: str | None, text: str) -> fix.Message:
    """MarketDataRequestReject (Y); MDReqRejReason (281): 0 unknown symbol, 1 duplicate MDReqID, ..."""
    return _build("Y", ((262, req_id), (281, reason), (58, _text(text))))


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
