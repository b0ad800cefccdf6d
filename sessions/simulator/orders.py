"""How the venue simulator answers order entry: NewOrderSingle (D), OrderCancelRequest (F),
OrderCancelReplaceRequest (G), OrderStatusRequest (H) and OrderMassStatusRequest (AF) against its matcher
(``OrderEntry``), or, where ``[venues.X.simulator.misbehave]`` says so, badly (``Misbehaviour``).

Status: an OrderStatusRequest (H) is answered with the order's state (ExecType I in
4.4/5.0, ExecType = OrdStatus in 4.2; OrdStatusReqID 790 echoed), or for an order
the venue does not know with OrdStatus 8, OrdRejReason 5 and Text "unknown order".
An OrderMassStatusRequest (AF, 4.4/5.0; MassStatusReqType 7 all orders or 1 one
symbol, Side 54 optional) gets one status report per working order of the session,
each with MassStatusReqID (584) and TotNumReports (911), LastRptRequested (912) =Y
on the last; when none matches, a single report with OrderID NONE, OrdStatus 8,
TotNumReports 0 says so.

Misbehaviour (see ``MisbehaviourConfig``): per message type and symbol, the venue
can answer D/G with a session Reject (35=3), D/F/G/H/AF with a
BusinessMessageReject (35=j), or not at all ("silent": the message is consumed at
the session level and ignored).
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from decimal import Decimal, InvalidOperation
from typing import Callable

import quickfix as fix

from orders.actions import ClientExecReport
from orders.model import Side
from sessions.codec import decode, encode, tagvalue
from sessions.simulator.outbox import Outbox, Outgoing
from venuesim import misbehave
from venuesim.config import MisbehaviourConfig
from venuesim.matcher import Matcher

log = logging.getLogger("fixgw.venuesim")


def _decimal_field(msg: fix.Message, tag: int) -> Decimal:
    try:
        value = Decimal(msg.getField(tag))
    except InvalidOperation:
        raise fix.IncorrectDataFormat(tag) from None
    if not value.is_finite():
        raise fix.IncorrectDataFormat(tag)
    return value


class OrderEntry:
    """D, F, G, H and AF from one session (``owner``, its session key) against the matcher.

    Shares the simulator's ``lock`` (which guards the matcher): the reports of one request are encoded and
    queued under it, in matcher order; then ``book_changed(symbol)`` lets the market data feed publish what
    the request did to the book.
    """

    def __init__(self, matcher: Matcher, lock: threading.Lock, outbox: Outbox,
                 book_changed: Callable[[str], None]):
        self._matcher = matcher
        self._lock = lock
        self._outbox = outbox
        self._book_changed = book_changed
        self.orders_received = 0  # NewOrderSingle messages received (accepted or rejected)
        self.new_order_ids: Counter[tuple[str, str]] = Counter()  # (session key, ClOrdID) -> NewOrderSingles seen

    def new_order(self, msg: fix.Message, owner: str, recv_ns: int) -> None:
        order = decode.decode_new_order(msg, owner, recv_ns)  # quickfix exceptions on bad fields
        with self._lock:
            self.orders_received += 1
            self.new_order_ids[(owner, order.cl_ord_id)] += 1
            self._outbox.reports(self._matcher.submit(order))
            self._book_changed(order.symbol)

    def cancel(self, msg: fix.Message, owner: str, recv_ns: int) -> None:
        req = decode.decode_cancel_request(msg, owner, recv_ns)
        with self._lock:
            self._outbox.reports(self._matcher.cancel(owner, req.orig_cl_ord_id, req.cl_ord_id, recv_ns))
            self._book_changed(req.symbol)

    def replace(self, msg: fix.Message, owner: str, recv_ns: int) -> None:
        orig = msg.getField(41)
        cl_ord_id = msg.getField(11)
        symbol = msg.getField(55)
        qty = _decimal_field(msg, 38)
        price = _decimal_field(msg, 44) if msg.isSetField(44) else None
        with self._lock:
            self._outbox.reports(self._matcher.replace(owner, orig, cl_ord_id, qty, price, recv_ns))
            self._book_changed(symbol)

    def status(self, msg: fix.Message, owner: str, recv_ns: int) -> None:
        cl_ord_id = msg.getField(11)
        symbol = msg.getField(55)
        try:
            side = Side(msg.getField(54))
        except ValueError:
            raise fix.IncorrectTagValue(54) from None
        echo = f"790={msg.getField(790)}{tagvalue.SOH}" if msg.isSetField(790) else ""  # OrdStatusReqID
        with self._lock:
            report = self._matcher.status(owner, cl_ord_id, symbol, side)
            self._outbox.put([(self._with_fields(report, echo), self._outbox.sessions[owner])])

    def mass_status(self, msg: fix.Message, owner: str, recv_ns: int) -> None:
        """OrderMassStatusRequest (AF): a status report per working order; see the module docstring."""
        req_id = msg.getField(584)
        req_type = msg.getField(585)
        if req_type not in ("1", "7"):  # 1: one security, 7: all orders; the rest select what we do not keep
            raise fix.IncorrectTagValue(585)
        symbol = msg.getField(55) if req_type == "1" else None  # FieldNotFound: quickfix rejects it
        side = None
        if msg.isSetField(54):
            try:
                side = Side(msg.getField(54))
            except ValueError:
                raise fix.IncorrectTagValue(54) from None
        sid = self._outbox.sessions[owner]
        with self._lock:
            orders = self._matcher.open_orders(owner, symbol, side)
            out: Outgoing = []
            for n, order in enumerate(orders, 1):
                extra = (f"584={req_id}{tagvalue.SOH}911={len(orders)}{tagvalue.SOH}"
                         f"912={'Y' if n == len(orders) else 'N'}")
                out.append((self._with_fields(self._matcher.status_of(order), extra + tagvalue.SOH), sid))
            if not orders:
                out.append((fix.Message(self._no_orders_report(owner, req_id, symbol, side), False), sid))
            self._outbox.put(out)

    def _with_fields(self, report: ClientExecReport, extra: str) -> fix.Message:
        """An execution report in its owner's version, with ``extra`` (tag=value SOH ...) added."""
        return fix.Message(encode.encode_exec_report.text(self._outbox.versions[report.session], report) + extra,
                           False)

    def _no_orders_report(self, owner: str, req_id: str, symbol: str | None, side: Side | None) -> str:
        """The one answer to a mass status request that matches no working order."""
        soh = tagvalue.SOH  # AF exists from FIX 4.4 on (quickfix refuses it on 4.2 sessions): ExecType I
        return (f"35=8{soh}37=NONE{soh}17={self._matcher.reporter.next_exec_id()}{soh}150=I{soh}39=8{soh}"
                f"55={symbol or '[N/A]'}{soh}54={(side or Side.BUY).value}{soh}151=0{soh}14=0{soh}6=0{soh}"
                f"584={req_id}{soh}911=0{soh}912=Y{soh}58=no working order matches the mass status request{soh}"
                f"60={tagvalue.utc_timestamp()}{soh}")


class Misbehaviour:
    """Answers the order entry messages ``cfg`` names with a Reject, a BusinessMessageReject or nothing,
    queued under the simulator's ``lock`` after the reports already queued for that session."""

    def __init__(self, name: str, cfg: MisbehaviourConfig, lock: threading.Lock, outbox: Outbox):
        self._name = name
        self._cfg = cfg
        self._lock = lock
        self._outbox = outbox
        self.misbehaved: Counter[tuple[str, str]] = Counter()  # (message kind, mode) -> messages misanswered

    def answer(self, msg: fix.Message, msg_type: str, owner: str) -> bool:
        """Answer ``msg`` as ``misbehave`` says (a Reject, a BusinessMessageReject or nothing); False: normally."""
        kind = misbehave.MESSAGE_KIND.get(msg_type)
        if kind is None:
            return False
        cfg = self._cfg
        mode = cfg.mode(kind, msg.getField(55) if msg.isSetField(55) else None)
        if mode == "normal":
            return False
        seq = msg.getHeader().getField(34)
        if mode == "session_reject":
            text = misbehave.session_reject(seq, msg_type)
        elif mode == "business_reject":
            version = self._outbox.versions[owner]
            text = misbehave.business_reject(
                seq, msg_type, cfg.business_reject_reason, msg.getField(11) if msg.isSetField(11) else None,
                tagvalue.APPL_VER_ID.get(version) if cfg.appl_ver_id_in_reject else None)
        else:
            text = None
        with self._lock:  # queued after the reports already queued for this session
            self.misbehaved[(kind, mode)] += 1
            if text is not None:
                self._outbox.put([(fix.Message(text, False), self._outbox.sessions[owner])])
        log.info("venue simulator %s: %s %s from %s answered %s (misbehave)", self._name, kind, seq, owner, mode)
        return True
