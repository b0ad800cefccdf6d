"""The pure part of `fixgw client`: its command grammar, what counts as an answer, and how reports read.

No quickfix here (the session is ``sessions.client.FixClient``, driven by gateway/cli/client.py), so all of
this is unit-tested on plain values. A message is a ``dict[int, str]`` (tag -> last value), as FixClient
collects them.

Grammar, one command per line (the same words after ``fixgw client NAME`` on the command line)::

    buy|sell|short QTY SYMBOL [--limit PX] [--stop PX] [--tif day|gtc|ioc|fok] [--account A]
                              [--venue V] [--strategy S] [--id CLORDID] [--no-wait]
    cancel CLORDID [--symbol S --side buy|sell|short] [--qty Q] [--id CLORDID] [--no-wait]
    replace CLORDID [--qty Q] [--limit PX] [--symbol S --side SIDE] [--id CLORDID] [--no-wait]
    status CLORDID [--symbol S --side SIDE]
    mass-cancel [SYMBOL]
    wait [CLORDID]        until the order (default: the last one sent) is filled, canceled, rejected or expired
    sleep SECONDS         pause; reports go on being shown
    help | quit

``#`` starts a comment. Orders sent in the same run are remembered, so ``cancel C1`` (or ``cancel last``)
needs nothing else; an order from an earlier run needs ``--symbol`` and ``--side`` (FIX requires them).
"""
from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

# ------------------------------------------------------------------------------------------ exit statuses
EXIT_OK = 0          # every request was answered and accepted
EXIT_ERROR = 1       # could not log on (refused, no connection), configuration problem (click.ClickException)
EXIT_USAGE = 2       # a command line that does not parse (nothing was sent for it)
EXIT_REFUSED = 3     # the gateway answered with a refusal: order Rejected, OrderCancelReject, Reject, BMR
EXIT_TIMEOUT = 4     # no final answer within --timeout
EXIT_DISCONNECTED = 5  # the session ended before the run did (a Logout from the gateway, a dropped connection)

SIDES = {"buy": "1", "sell": "2", "short": "5"}
SIDE_NAMES = {v: k for k, v in SIDES.items()}
TIFS = {"day": "0", "gtc": "1", "ioc": "3", "fok": "4"}
TIF_NAMES = {"0": "Day", "1": "GTC", "2": "OPG", "3": "IOC", "4": "FOK", "5": "GTX", "6": "GTD"}

HELP = """commands (one per line; # starts a comment):
  buy|sell|short QTY SYMBOL [--limit PX] [--stop PX] [--tif day|gtc|ioc|fok] [--account A]
                            [--venue V] [--strategy S] [--id CLORDID] [--no-wait]
  cancel CLORDID [--symbol S --side buy|sell|short] [--qty Q] [--id CLORDID] [--no-wait]
  replace CLORDID [--qty Q] [--limit PX] [--symbol S --side SIDE] [--id CLORDID] [--no-wait]
  status CLORDID [--symbol S --side SIDE]
  mass-cancel [SYMBOL]        (FIX 4.4 and 5.0)
  wait [CLORDID]              until the order (default: the last one) is filled, canceled, rejected or expired
  sleep SECONDS               pause (reports go on being shown)
  help, quit
CLORDID "last" is the last order sent in this run; --symbol/--side are only needed for an order
sent before this run."""


class CommandError(ValueError):
    """A command line that does not parse; the message says what is wrong."""


# ------------------------------------------------------------------------------------------ intents
@dataclass(frozen=True)
class NewOrder:
    side: str  # FIX Side: 1 buy, 2 sell, 5 sell short
    qty: Decimal
    symbol: str
    limit: Decimal | None = None
    stop: Decimal | None = None
    tif: str | None = None  # FIX TimeInForce; None: not sent (the gateway's default, Day)
    account: str | None = None
    venue: str | None = None  # ExDestination (100)
    strategy: str | None = None  # routing strategy, custom tag 9100
    cl_ord_id: str | None = None
    wait: bool = True

    @property
    def ord_type(self) -> str:
        if self.stop is not None:
            return "4" if self.limit is not None else "3"
        return "2" if self.limit is not None else "1"


@dataclass(frozen=True)
class Cancel:
    orig_cl_ord_id: str
    symbol: str | None = None
    side: str | None = None
    qty: Decimal | None = None
    cl_ord_id: str | None = None
    wait: bool = True


@dataclass(frozen=True)
class Replace:
    orig_cl_ord_id: str
    qty: Decimal | None = None
    limit: Decimal | None = None
    symbol: str | None = None
    side: str | None = None
    cl_ord_id: str | None = None
    wait: bool = True


@dataclass(frozen=True)
class Status:
    cl_ord_id: str
    symbol: str | None = None
    side: str | None = None


@dataclass(frozen=True)
class MassCancel:
    symbol: str | None = None  # None: all orders of the session (MassCancelRequestType 7), else by symbol (1)


@dataclass(frozen=True)
class Wait:
    cl_ord_id: str | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Quit:
    pass


Intent = NewOrder | Cancel | Replace | Status | MassCancel | Wait | Sleep | Help | Quit

# option name -> (takes a value, intents that accept it)
_OPTIONS = {
    "--limit": True, "--stop": True, "--tif": True, "--account": True, "--venue": True, "--strategy": True,
    "--id": True, "--no-wait": False, "--symbol": True, "--side": True, "--qty": True,
}
_ALLOWED = {
    "order": {"--limit", "--stop", "--tif", "--account", "--venue", "--strategy", "--id", "--no-wait"},
    "cancel": {"--symbol", "--side", "--qty", "--id", "--no-wait"},
    "replace": {"--qty", "--limit", "--symbol", "--side", "--id", "--no-wait"},
    "status": {"--symbol", "--side"},
}


def parse_line(line: str) -> Intent | None:
    """One line of a file or the prompt: None for a blank line or a comment."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError as exc:
        raise CommandError(f"cannot split the line into words: {exc}") from None
    return parse_words(words) if words else None


def parse_words(words: list[str] | tuple[str, ...]) -> Intent:
    """A command given as words (the command line's ACTION, or a line split by ``parse_line``)."""
    if not words:
        raise CommandError("no command given")
    verb, rest = words[0].lower(), list(words[1:])
    if verb in SIDES:
        args, opts = _split(verb, rest, _ALLOWED["order"])
        _arity(verb, args, 2, "QTY SYMBOL")
        qty = _decimal(args[0], "QTY", positive=True)
        tif = opts.get("--tif")
        if tif is not None and tif.lower() not in TIFS:
            raise CommandError(f"--tif {tif}: use one of {', '.join(TIFS)}")
        return NewOrder(side=SIDES[verb], qty=qty, symbol=_word(args[1], "SYMBOL"),
                        limit=_opt_decimal(opts, "--limit"), stop=_opt_decimal(opts, "--stop"),
                        tif=TIFS[tif.lower()] if tif is not None else None,
                        account=_opt_word(opts, "--account"), venue=_opt_word(opts, "--venue"),
                        strategy=_opt_word(opts, "--strategy"), cl_ord_id=_opt_word(opts, "--id"),
                        wait="--no-wait" not in opts)
    if verb == "cancel":
        args, opts = _split(verb, rest, _ALLOWED["cancel"])
        _arity(verb, args, 1, "CLORDID")
        symbol, side = _symbol_side(opts)
        return Cancel(orig_cl_ord_id=_word(args[0], "CLORDID"), symbol=symbol, side=side,
                      qty=_opt_decimal(opts, "--qty"), cl_ord_id=_opt_word(opts, "--id"),
                      wait="--no-wait" not in opts)
    if verb == "replace":
        args, opts = _split(verb, rest, _ALLOWED["replace"])
        _arity(verb, args, 1, "CLORDID")
        if "--qty" not in opts and "--limit" not in opts:
            raise CommandError("replace: give --qty and/or --limit (what changes)")
        symbol, side = _symbol_side(opts)
        return Replace(orig_cl_ord_id=_word(args[0], "CLORDID"), qty=_opt_decimal(opts, "--qty"),
                       limit=_opt_decimal(opts, "--limit"), symbol=symbol, side=side,
                       cl_ord_id=_opt_word(opts, "--id"), wait="--no-wait" not in opts)
    if verb == "status":
        args, opts = _split(verb, rest, _ALLOWED["status"])
        _arity(verb, args, 1, "CLORDID")
        symbol, side = _symbol_side(opts)
        return Status(cl_ord_id=_word(args[0], "CLORDID"), symbol=symbol, side=side)
    if verb == "mass-cancel":
        args, _ = _split(verb, rest, set())
        if len(args) > 1:
            raise CommandError("mass-cancel takes at most one SYMBOL (none: every order of the session)")
        return MassCancel(symbol=_word(args[0], "SYMBOL") if args else None)
    if verb == "wait":
        args, _ = _split(verb, rest, set())
        if len(args) > 1:
            raise CommandError("wait takes at most one CLORDID (none: the last order sent)")
        return Wait(cl_ord_id=_word(args[0], "CLORDID") if args else None)
    if verb == "sleep":
        args, _ = _split(verb, rest, set())
        _arity(verb, args, 1, "SECONDS")
        try:
            seconds = float(args[0])
        except ValueError:
            raise CommandError(f"sleep: {args[0]!r} is not a number of seconds") from None
        if not 0 <= seconds <= 86400:
            raise CommandError("sleep: SECONDS must be between 0 and 86400")
        return Sleep(seconds)
    if verb in ("help", "?"):
        return Help()
    if verb in ("quit", "exit"):
        return Quit()
    raise CommandError(f"unknown command {words[0]!r}: use buy, sell, short, cancel, replace, status, "
                       "mass-cancel, wait, sleep, help or quit")


def check_version(intent: Intent | None, version: str) -> Intent | None:
    """Refuse what the session's FIX version cannot say (FIX 4.2 has no OrderMassCancelRequest)."""
    if isinstance(intent, MassCancel) and version == "FIX.4.2":
        raise CommandError("mass-cancel needs FIX 4.4 or 5.0 (this session speaks FIX.4.2): cancel orders one "
                           "by one")
    return intent


def _split(verb: str, words: list[str], allowed: set[str]) -> tuple[list[str], dict[str, str]]:
    args: list[str] = []
    opts: dict[str, str] = {}
    i = 0
    while i < len(words):
        w = words[i]
        if w.startswith("--"):
            name, eq, value = w.partition("=")
            if name not in _OPTIONS or name not in allowed:
                known = ", ".join(sorted(allowed)) or "none"
                raise CommandError(f"{verb}: unknown option {name} (options: {known})")
            if name in opts:
                raise CommandError(f"{verb}: {name} given twice")
            if _OPTIONS[name]:
                if not eq:
                    i += 1
                    if i >= len(words):
                        raise CommandError(f"{verb}: {name} needs a value")
                    value = words[i]
                opts[name] = value
            else:
                if eq:
                    raise CommandError(f"{verb}: {name} takes no value")
                opts[name] = ""
        else:
            args.append(w)
        i += 1
    return args, opts


def _arity(verb: str, args: list[str], n: int, what: str) -> None:
    if len(args) != n:
        raise CommandError(f"{verb} needs {what}, got {' '.join(args) or 'nothing'}")


def _word(value: str, what: str) -> str:
    if not value or not all(33 <= ord(ch) <= 126 for ch in value):
        raise CommandError(f"{what} {value!r} must be printable ASCII without spaces")
    return value


def _opt_word(opts: dict[str, str], name: str) -> str | None:
    return _word(opts[name], name) if name in opts else None


def _decimal(text: str, what: str, positive: bool = False) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CommandError(f"{what} {text!r} is not a number") from None
    if not value.is_finite() or "e" in text.lower():
        raise CommandError(f"{what} {text!r} is not a plain decimal number")
    if positive and value <= 0:
        raise CommandError(f"{what} must be positive, got {text}")
    return value


def _opt_decimal(opts: dict[str, str], name: str) -> Decimal | None:
    return _decimal(opts[name], name, positive=True) if name in opts else None


def _symbol_side(opts: dict[str, str]) -> tuple[str | None, str | None]:
    side = opts.get("--side")
    if side is not None and side.lower() not in SIDES:
        raise CommandError(f"--side {side}: use buy, sell or short")
    return _opt_word(opts, "--symbol"), SIDES[side.lower()] if side is not None else None


# ------------------------------------------------------------------------------------------ names
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


# ------------------------------------------------------------------------------------------ answers
PENDING = frozenset({"A", "6", "E"})  # PendingNew, PendingCancel, PendingReplace
DONE = frozenset({"2", "3", "4", "8", "C"})  # Filled, DoneForDay, Canceled, Rejected, Expired


@dataclass
class OrderRecord:
    """An order this run sent (or was told about): what a cancel, replace or status request must repeat."""

    cl_ord_id: str  # the live ClOrdID: the latest replace's once the gateway confirmed it
    symbol: str
    side: str
    qty: Decimal | None
    limit: Decimal | None = None
    account: str | None = None
    ord_status: str | None = None
    names: set[str] = field(default_factory=set)  # every ClOrdID of the chain


@dataclass
class Request:
    """One message sent, waiting for its answer."""

    kind: str  # MsgType sent: D, F, G, H, q
    cl_ord_id: str
    seq: str | None = None  # its MsgSeqNum, to match a session Reject (which names only that)
    outcome: str | None = None  # None while waiting; "ok", "refused"
    answer: dict[int, str] | None = None


class Tracker:
    """Which request each received message answers, and the state of each order this run knows.

    ``feed`` every received message in order; a request is answered when:
    - NewOrderSingle: an ExecutionReport for its ClOrdID that is not PendingNew (New, a fill, Rejected, ...);
    - cancel / replace: an ExecutionReport for its ClOrdID that is not PendingCancel/PendingReplace, or an
      OrderCancelReject for it;
    - status: the ExecutionReport answering it (ExecType I, or ExecTransType 3 in 4.2);
    - mass cancel: the OrderMassCancelReport;
    - any: a BusinessMessageReject naming its ClOrdID or MsgSeqNum, or a session Reject naming its MsgSeqNum.
    Refused: Rejected (39=8), OrderCancelReject, the two rejects, an unknown order's status, a refused mass cancel.
    """

    def __init__(self) -> None:
        self.orders: dict[str, OrderRecord] = {}
        self.pending: list[Request] = []
        self.last_order: str | None = None

    # -- what we sent
    def sent_order(self, o: NewOrder, cl_ord_id: str) -> None:
        rec = OrderRecord(cl_ord_id=cl_ord_id, symbol=o.symbol, side=o.side, qty=o.qty, limit=o.limit,
                          account=o.account, names={cl_ord_id})
        self.orders[cl_ord_id] = rec
        self.last_order = cl_ord_id

    def order(self, cl_ord_id: str) -> OrderRecord | None:
        return self.orders.get(cl_ord_id)

    def adopt(self, cl_ord_id: str, symbol: str, side: str, qty: Decimal | None) -> OrderRecord:
        """An order of an earlier run, described by the command (--symbol, --side)."""
        rec = OrderRecord(cl_ord_id=cl_ord_id, symbol=symbol, side=side, qty=qty, names={cl_ord_id})
        self.orders[cl_ord_id] = rec
        return rec

    def expect(self, kind: str, cl_ord_id: str, seq: str | None) -> Request:
        req = Request(kind=kind, cl_ord_id=cl_ord_id, seq=seq)
        self.pending.append(req)
        return req

    def link(self, new_cl_ord_id: str, rec: OrderRecord) -> None:
        """A cancel's or replace's ClOrdID refers to the same order (reports may carry either)."""
        rec.names.add(new_cl_ord_id)
        self.orders[new_cl_ord_id] = rec

    # -- what we received
    def feed(self, m: dict[int, str]) -> list[Request]:
        """Note one received message; returns the requests it answered."""
        t = m.get(35)
        cl = m.get(11)
        if t == "8" and cl in self.orders:
            rec = self.orders[cl]
            if not status_is_reply(m) or m.get(103) != "5":
                rec.ord_status = m.get(39, rec.ord_status)
            if m.get(150) == "5":  # Replaced: the chain goes on under the new ClOrdID
                rec.cl_ord_id = cl
                if 38 in m:
                    rec.qty = Decimal(m[38])
                if 44 in m:
                    rec.limit = Decimal(m[44])
        answered = []
        for req in self.pending:
            outcome = self._answers(req, m)
            if outcome is not None:
                req.outcome, req.answer = outcome, m
                answered.append(req)
        if answered:
            self.pending = [r for r in self.pending if r.outcome is None]
        return answered

    @staticmethod
    def _answers(req: Request, m: dict[int, str]) -> str | None:
        t = m.get(35)
        if t == "3":
            return "refused" if req.seq is not None and m.get(45) == req.seq else None
        if t == "j":
            mine = m.get(379) == req.cl_ord_id or (req.seq is not None and m.get(45) == req.seq)
            return "refused" if mine else None
        if m.get(11) != req.cl_ord_id:
            return None
        if t == "8":
            status = m.get(39)
            if req.kind == "H":
                if not status_is_reply(m):
                    return None
                return "refused" if m.get(103) == "5" else "ok"
            if status_is_reply(m) or status in PENDING:
                return None
            return "refused" if status == "8" else "ok"
        if t == "9" and req.kind in ("F", "G"):
            return "refused"
        if t == "r" and req.kind == "q":
            return "refused" if m.get(531) == "0" else "ok"
        return None

    def done(self, cl_ord_id: str) -> bool:
        """Whether the order is over: Filled, Canceled, Rejected, Expired or DoneForDay."""
        rec = self.orders.get(cl_ord_id)
        return rec is not None and rec.ord_status in DONE
