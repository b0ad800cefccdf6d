"""An ExecutionReport, as journaled in any FIX version, rewritten as a drop copy in the receiver's version.

Pure Python, no quickfix: the input is the raw message (or its parsed fields),
the output is the copy's tag=value text without the session header, ready for
``quickfix.Message(text, False)``; the drop-copy session adds BeginString,
CompIDs, MsgSeqNum and SendingTime.

What a copy keeps: every body field of the original that the receiver's version
defines for an ExecutionReport (``dropcopy.spec``), with the original's values,
so ExecID (17), ClOrdID (11), OrderID (37), OrigClOrdID (41), Account (1),
LastMkt (30), quantities and prices are exactly the original's and receivers
can de-duplicate on them. What it changes, only where the versions differ:

- ExecType (150): FIX 4.2's Partial fill / Fill (1 / 2) become Trade (F) in 4.4
  and 5.0; Trade becomes 1 or 2 in 4.2 by OrdStatus. 4.2's ExecTransType (20)
  Cancel / Correct / Status become ExecType H / G / I and back.
- ExecTransType (20): required in 4.2, absent later; 0 (New) unless above.
- OrdStatus (39) Replaced (5), 4.2 only: the order's working state, Partially
  filled (1) if CumQty > 0, else New (0).
- OrdRejReason (103) values the receiver's version lacks: 0 (broker option) in
  4.2, 99 (Other) later.
- Any other optional field whose value the receiver's version does not define is
  left out; a *required* one makes the report untranslatable (``Untranslatable``):
  the caller counts and logs it instead of sending an invalid message.

Left out always: header and trailer fields of the original (its CompIDs,
MsgSeqNum, PossDupFlag...), repeating groups (fees, parties, contra brokers:
their structure differs between versions) and binary data fields.

Marking: CopyMsgIndicator (797) = Y in FIX 4.4 and 5.0 (4.2 has no such field:
a 4.2 receiver knows the session is a drop copy); PossResend (97) = Y in the
header when asked for, i.e. when the copy may have been sent before.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from dropcopy.spec import APPL_VER_IDS, BEGIN_STRINGS, FIX42, report_spec

SOH = "\x01"
Pairs = list[tuple[int, str]]

_TRADE_42 = ("1", "2")  # Partial fill, Fill
_TRANS_TO_EXEC = {"1": "H", "2": "G", "3": "I"}  # 4.2 ExecTransType Cancel / Correct / Status -> 4.4 ExecType
_EXEC_TO_TRANS = {"H": "1", "G": "2", "I": "3"}


class Untranslatable(ValueError):
    """The report has no valid equivalent in the receiver's FIX version."""


def parse(raw: str) -> Pairs:
    """(tag, value) pairs of a raw SOH-separated message, in order; malformed parts are skipped."""
    out: Pairs = []
    for part in raw.split(SOH):
        tag, sep, value = part.partition("=")
        if sep and tag.isdigit():
            out.append((int(tag), value))
    return out


def source_version(pairs: Pairs) -> str:
    """The application version of a parsed message: BeginString, or ApplVerID (1128) over FIXT.1.1."""
    begin = pairs[0][1] if pairs and pairs[0][0] == 8 else ""
    version = BEGIN_STRINGS.get(begin)
    if version is None:
        raise Untranslatable(f"unknown BeginString {begin!r}")
    if begin == "FIXT.1.1":
        for tag, value in pairs:
            if tag == 1128:
                return APPL_VER_IDS.get(value, version)
    return version


def _trade_exec_type_42(ord_status: str | None) -> str:
    return "2" if ord_status == "2" else "1"


def translate(pairs: Pairs, target: str, poss_resend: bool = False) -> str:
    """The drop copy of the ExecutionReport ``pairs`` for a ``target`` (FIX.4.2/4.4/5.0) session.

    Returns ``35=8<SOH>[97=Y<SOH>]<body fields><SOH>``. Raises Untranslatable.
    """
    source = source_version(pairs)
    spec = report_spec(target)
    allowed = spec.fields
    body: dict[int, str] = {}
    msg_type = exec_type = trans_type = ord_status = cum_qty = None
    for tag, value in pairs:
        if tag == 35:
            msg_type = value
        elif tag == 150:
            exec_type = value
        elif tag == 20:
            trans_type = value
        elif tag == 39:
            ord_status = value
        elif tag == 14:
            cum_qty = value
        if tag in allowed and tag not in body:
            body[tag] = value
    if msg_type != "8":
        raise Untranslatable(f"not an ExecutionReport (MsgType {msg_type})")
    if exec_type is None:
        raise Untranslatable("no ExecType (150)")

    # ExecType / ExecTransType between 4.2 and later versions
    if source == FIX42 and target != FIX42:
        if trans_type in _TRANS_TO_EXEC:
            exec_type = _TRANS_TO_EXEC[trans_type] if trans_type == "3" or exec_type in _TRADE_42 \
                else exec_type
        elif exec_type in _TRADE_42:
            exec_type = "F"
        if ord_status == "5" and "5" not in spec.enums.get(39, ()):
            ord_status = "1" if _positive(cum_qty) else "0"
            body[39] = ord_status
    elif source != FIX42 and target == FIX42:
        trans_type = _EXEC_TO_TRANS.get(exec_type, "0")
        if exec_type in ("F", "G", "H"):
            exec_type = _trade_exec_type_42(ord_status)
        elif exec_type == "I":
            exec_type = ord_status or "0"
        body[20] = trans_type
    body[150] = exec_type
    if target == FIX42 and 20 not in body:
        body[20] = "0"

    for tag in list(body):
        value = body[tag]
        if spec.value_ok(tag, value):
            continue
        if tag == 103:
            body[tag] = "0" if target == FIX42 else "99"
        elif tag in spec.required:
            raise Untranslatable(f"tag {tag}={value} has no equivalent in {target}")
        else:
            del body[tag]
    missing = spec.required.difference(body)
    if missing:
        raise Untranslatable(f"required tag(s) {', '.join(map(str, sorted(missing)))} missing for {target}")
    if 797 in allowed:
        body[797] = "Y"
    head = "35=8\x0197=Y\x01" if poss_resend else "35=8\x01"
    return head + "".join(f"{tag}={value}{SOH}" for tag, value in body.items())


def _positive(qty: str | None) -> bool:
    try:
        return qty is not None and Decimal(qty) > 0
    except InvalidOperation:
        return False
