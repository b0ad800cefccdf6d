"""The domain into outbound FIX: reports to clients (8, 9, r, j), child orders and requests to venues
(D, F, G, H, AF, Q), market data (V, and W, X, Y for the venue simulator), each as one tag=value string
handed to quickfix in one binding call (``sessions.codec`` package docstring, "Cost model").

Every text is checked against the sessions' encoding before a session could meet it (``check_encodable``).
"""
from __future__ import annotations

import threading

import quickfix as fix

from orders.actions import (
    ClientCancelReject, ClientExecReport, ClientMassCancelReport, VenueCancel, VenueDontKnow, VenueMarketDataRequest,
    VenueMassStatusRequest, VenueNewOrder, VenueReplace, VenueStatusRequest,
)
from orders.model import CxlRejCode, ExecKind, OrdStatus, OrdType, RejectCode, Side
from sessions.codec.tagvalue import BID, FIX42, FIX50, OFFER, SOH, fmt, utc_timestamp
from sessions.fixsettings import spec_path


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

