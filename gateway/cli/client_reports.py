"""How `fixgw client` shows a FIX message: one line for a person (names for the codes, the order in words)
or one JSON object for a script, passwords never shown.

Pure: a message is a ``dict[int, str]`` (tag -> last value), as ``sessions.client.FixClient`` collects them.
"""
from __future__ import annotations

import json
import time

from gateway.cli.client_script import SIDE_NAMES

TIF_NAMES = {"0": "Day", "1": "GTC", "2": "OPG", "3": "IOC", "4": "FOK", "5": "GTX", "6": "GTD"}

MSG_TYPES = {
    "0": "Heartbeat", "1": "TestRequest", "2": "ResendRequest", "3": "Reject", "4": "SequenceReset",
    "5": "Logout", "A": "Logon", "8": "ExecutionReport", "9": "OrderCancelReject", "j": "BusinessMessageReject",
    "r": "OrderMassCancelReport", "D": "NewOrderSingle", "F": "OrderCancelRequest",
    "G": "OrderCancelReplaceRequest", "H": "OrderStatusRequest", "q": "OrderMassCancelRequest",
    "W": "MarketDataSnapshotFullRefresh", "X": "MarketDataIncrementalRefresh", "Y": "MarketDataRequestReject",
}
ORD_STATUS = {
    "0": "New", "1": "PartiallyFilled", "2": "Filled", "3": "DoneForDay", "4": "Canceled", "5": "Replaced",
    "6": "PendingCancel", "7": "Stopped", "8": "Rejected", "9": "Suspended", "A": "PendingNew", "B": "Calculated",
    "C": "Expired", "D": "AcceptedForBidding", "E": "PendingReplace",
}
EXEC_TYPE = {
    "0": "New", "1": "PartialFill", "2": "Fill", "3": "DoneForDay", "4": "Canceled", "5": "Replaced",
    "6": "PendingCancel", "7": "Stopped", "8": "Rejected", "9": "Suspended", "A": "PendingNew", "B": "Calculated",
    "C": "Expired", "D": "Restated", "E": "PendingReplace", "F": "Trade", "G": "TradeCorrect", "H": "TradeCancel",
    "I": "OrderStatus",
}
ORD_REJ_REASON = {
    "0": "broker/exchange option", "1": "unknown symbol", "2": "exchange closed", "3": "order exceeds limit",
    "4": "too late to enter", "5": "unknown order", "6": "duplicate order", "11": "unsupported order characteristic",
    "13": "incorrect quantity", "15": "unknown account", "99": "other",
}
CXL_REJ_REASON = {"0": "too late to cancel", "1": "unknown order", "2": "broker/exchange option",
                  "3": "already pending", "6": "duplicate ClOrdID", "99": "other"}
SESSION_REJECT_REASON = {
    "0": "invalid tag number", "1": "required tag missing", "2": "tag not defined for this message type",
    "3": "undefined tag", "4": "tag without a value", "5": "value out of range", "6": "incorrect data format",
    "9": "CompID problem", "10": "SendingTime accuracy problem", "11": "invalid MsgType", "13": "tag repeated",
    "99": "other",
}
BUSINESS_REJECT_REASON = {"0": "other", "1": "unknown ID", "2": "unknown security", "3": "unsupported message type",
                          "4": "application not available", "5": "conditionally required field missing",
                          "6": "not authorized"}
TAG_NAMES = {
    1: "account", 6: "avg_px", 11: "cl_ord_id", 14: "cum_qty", 17: "exec_id", 20: "exec_trans_type",
    30: "last_mkt", 31: "last_px", 32: "last_qty", 34: "msg_seq_num", 37: "order_id", 38: "order_qty",
    39: "ord_status", 40: "ord_type", 41: "orig_cl_ord_id", 44: "price", 45: "ref_seq_num", 54: "side",
    55: "symbol", 58: "text", 59: "time_in_force", 60: "transact_time", 99: "stop_px", 100: "ex_destination",
    102: "cxl_rej_reason", 103: "ord_rej_reason", 108: "heart_bt_int", 150: "exec_type", 151: "leaves_qty",
    371: "ref_tag_id", 372: "ref_msg_type", 373: "session_reject_reason", 379: "business_reject_ref_id",
    380: "business_reject_reason", 434: "cxl_rej_response_to", 530: "mass_cancel_request_type",
    531: "mass_cancel_response", 533: "total_affected_orders", 9100: "strategy",
}
QUIET = frozenset({"0", "1", "2", "4"})  # heartbeats, test requests, resends, sequence resets: not shown
NEVER_SHOWN = frozenset({554, 925})  # Password, NewPassword: never printed, even if a peer echoed one


def status_is_reply(m: dict[int, str]) -> bool:
    """An ExecutionReport answering an OrderStatusRequest: ExecType I (4.4, 5.0) or ExecTransType 3 (4.2)."""
    return m.get(150) == "I" or m.get(20) == "3"


# ------------------------------------------------------------------------------------------ formatting
def clock(t: float) -> str:
    """Local wall-clock time with milliseconds, e.g. 14:03:22.118."""
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _order_words(m: dict[int, str]) -> list[str]:
    words = []
    if 54 in m:
        words.append(SIDE_NAMES.get(m[54], f"side={m[54]}"))
    if 38 in m:
        words.append(m[38])
    if 55 in m:
        words.append(m[55])
    if 44 in m:
        words.append(f"@{m[44]}")
    elif m.get(40) == "1":
        words.append("market")
    if 99 in m:
        words.append(f"stop {m[99]}")
    if m.get(59, "0") != "0":
        words.append(TIF_NAMES.get(m[59], f"tif={m[59]}"))
    if 1 in m:
        words.append(f"account {m[1]}")
    return words


def _reason(table: dict[str, str], code: str | None) -> str:
    if code is None:
        return ""
    return f"reason {code} ({table[code]})" if code in table else f"reason {code}"


def _text(m: dict[int, str]) -> list[str]:
    return [_quote(m[58])] if m.get(58) else []


def describe(m: dict[int, str]) -> str:
    """One line for a message received from (or sent to) the gateway, without the time."""
    t = m.get(35, "?")
    name = MSG_TYPES.get(t, f"MsgType {t}")
    if t == "8":
        status = ORD_STATUS.get(m.get(39, ""), f"OrdStatus={m.get(39)}")
        exec_type = m.get(150, "")
        if status_is_reply(m):
            state = f"Status {status}"
        elif exec_type in ("1", "2", "F") or exec_type == m.get(39) or not exec_type:
            state = status
        else:
            state = f"{EXEC_TYPE.get(exec_type, 'ExecType=' + exec_type)} ({status})"
        words = [name, state, m.get(11, "-")]
        if 41 in m:
            words.append(f"(was {m[41]})")
        words += _order_words(m)
        if 37 in m:
            words.append(f"OrderID={m[37]}")
        if exec_type in ("1", "2", "F") and 32 in m:
            words.append(f"last {m[32]} @{m.get(31, '?')}" + (f" {m[30]}" if 30 in m else ""))
        if 14 in m or 151 in m:
            words.append(f"cum {m.get(14, '?')} leaves {m.get(151, '?')}")
        if m.get(14) not in (None, "0") and 6 in m:
            words.append(f"avg {m[6]}")
        if m.get(39) == "8" or 103 in m:
            words.append(_reason(ORD_REJ_REASON, m.get(103)))
        return " ".join(w for w in words + _text(m) if w)
    if t == "9":
        to = {"1": "cancel", "2": "replace"}.get(m.get(434, ""), "request")
        words = [name, m.get(11, "-"), f"({to} of {m.get(41, '?')})", _reason(CXL_REJ_REASON, m.get(102))]
        if m.get(39):
            words.append(f"order is {ORD_STATUS.get(m[39], m[39])}")
        return " ".join(w for w in words + _text(m) if w)
    if t == "j":
        words = [name, f"for {MSG_TYPES.get(m.get(372, ''), m.get(372, '?'))}"]
        if 379 in m:
            words.append(m[379])
        if 45 in m:
            words.append(f"(seq {m[45]})")
        words.append(_reason(BUSINESS_REJECT_REASON, m.get(380)))
        return " ".join(w for w in words + _text(m) if w)
    if t == "3":
        words = [name, f"of {MSG_TYPES.get(m.get(372, ''), m.get(372, 'message'))} seq {m.get(45, '?')}"]
        if 371 in m:
            words.append(f"tag {m[371]}")
        words.append(_reason(SESSION_REJECT_REASON, m.get(373)))
        return " ".join(w for w in words + _text(m) if w)
    if t == "5":
        return " ".join([name] + _text(m))
    if t == "A":
        return f"{name} heartbeat {m.get(108, '?')}s"
    if t == "r":
        kind = {"1": "symbol " + m.get(55, "?"), "7": "all orders"}.get(m.get(530, ""), f"type {m.get(530)}")
        response = "rejected" if m.get(531) == "0" else "accepted"
        return " ".join([name, m.get(11, "-"), kind, response, f"affected {m.get(533, '?')}"] + _text(m))
    if t in ("D", "F", "G", "H", "q"):
        words = [name, m.get(11, "-")]
        if 41 in m:
            words.append(f"for {m[41]}")
        if t == "q":
            words.append({"1": f"symbol {m.get(55, '?')}", "7": "all orders"}.get(m.get(530, ""), ""))
        else:
            words += _order_words(m)
        if 100 in m:
            words.append(f"venue {m[100]}")
        if 9100 in m:
            words.append(f"strategy {m[9100]}")
        return " ".join(w for w in words if w)
    shown = " ".join(f"{k}={v}" for k, v in m.items() if k not in NEVER_SHOWN and k not in (8, 9, 10, 35))
    return f"{name} {shown}".rstrip()


def human_line(t: float, m: dict[int, str], sent: bool = False) -> str:
    return f"{clock(t)} {'sent ' if sent else ''}{describe(m)}"


def as_json(t: float, m: dict[int, str], sent: bool = False) -> dict:
    """The message for scripts: its type by name, the main fields by name, and every tag (as text)."""
    t_type = m.get(35, "")
    out: dict = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z",
        "event": "sent" if sent else "received",
        "msg_type": t_type,
        "name": MSG_TYPES.get(t_type, t_type),
    }
    for tag, key in TAG_NAMES.items():
        if tag in m:
            out[key] = m[tag]
    if "side" in out:
        out["side_name"] = SIDE_NAMES.get(out["side"], out["side"])
    if t_type == "8":
        out["ord_status_name"] = ORD_STATUS.get(m.get(39, ""), m.get(39))
        out["exec_type_name"] = EXEC_TYPE.get(m.get(150, ""), m.get(150))
        out["status_reply"] = status_is_reply(m)
    out["fields"] = {str(k): v for k, v in m.items() if k not in NEVER_SHOWN}
    return out


def json_line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
