"""The core: single owner of order state. Commands in, actions out; no I/O.

``Core.handle(command)`` returns an ``Outcome`` whose actions the engine performs
in order (send to a client, send to a venue). Business problems become reject
actions, never exceptions. Anything raised from here is a bug, which the engine
catches, logs and counts.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal

from routing.model import (
    CancelRequest,
    ClientCancelReject,
    ClientExecReport,
    CxlRejCode,
    CxlRejResponseTo,
    ExecKind,
    NewOrder,
    OrdStatus,
    Outcome,
    RejectCode,
    SessionStatus,
    VenueCancel,
    VenueCancelReject,
    VenueDontKnow,
    VenueExecution,
    VenueNewOrder,
)
from routing.orders import Event, Order, TransitionRefused
from routing.router import Venue, choose_venue
from routing.validation import order_shape_problem

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class ClientOptions:
    pending_new: bool = True


_VENUE_KIND_EVENT = {
    ExecKind.NEW: Event.VENUE_ACK,
    ExecKind.REJECTED: Event.VENUE_REJECT,
    ExecKind.CANCELED: Event.VENUE_CANCELED,
    ExecKind.DONE_FOR_DAY: Event.DONE_FOR_DAY,
    ExecKind.EXPIRED: Event.EXPIRE,
}
_EVENT_REPORT_KIND = {
    Event.VENUE_ACK: ExecKind.NEW,
    Event.VENUE_REJECT: ExecKind.REJECTED,
    Event.VENUE_CANCELED: ExecKind.CANCELED,
    Event.DONE_FOR_DAY: ExecKind.DONE_FOR_DAY,
    Event.EXPIRE: ExecKind.EXPIRED,
}


class Core:
    def __init__(self, venues: list[Venue], clients: dict[str, ClientOptions], id_prefix: str):
        self.venues = {v.name: v for v in venues}
        self._venue_order = list(self.venues)
        self.clients = clients
        self._ids = itertools.count(1)
        self._id_prefix = id_prefix
        self.orders: dict[str, Order] = {}
        self._by_client: dict[tuple[str, str], Order] = {}
        self._by_child: dict[tuple[str, str], Order] = {}

    # ------------------------------------------------------------------ queries
    def order_for_client(self, session: str, cl_ord_id: str) -> Order | None:
        return self._by_client.get((session, cl_ord_id))

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open]

    # ------------------------------------------------------------------ dispatch
    def handle(self, cmd) -> Outcome:
        if isinstance(cmd, VenueExecution):
            return self._venue_execution(cmd)
        if isinstance(cmd, NewOrder):
            return self._new_order(cmd)
        if isinstance(cmd, CancelRequest):
            return self._cancel(cmd)
        if isinstance(cmd, VenueCancelReject):
            return self._venue_cancel_reject(cmd)
        if isinstance(cmd, SessionStatus):
            return self._session_status(cmd)
        raise TypeError(f"core cannot handle {type(cmd).__name__}")

    # ------------------------------------------------------------------ client: new order
    def _validate(self, cmd: NewOrder) -> tuple[RejectCode, str] | None:
        if (cmd.session, cmd.cl_ord_id) in self._by_client:
            return RejectCode.DUPLICATE_ORDER, f"duplicate ClOrdID {cmd.cl_ord_id}"
        problem = order_shape_problem(cmd.qty, cmd.ord_type, cmd.price)
        if problem is not None:
            return problem
        if not any(cmd.symbol in v.symbols for v in self.venues.values()):
            return RejectCode.UNKNOWN_SYMBOL, f"unknown symbol {cmd.symbol}: no configured venue trades it"
        if cmd.ex_destination is not None and cmd.ex_destination not in self.venues:
            return RejectCode.OTHER, f"unknown ExDestination {cmd.ex_destination}"
        return None

    def _new_order(self, cmd: NewOrder) -> Outcome:
        out = Outcome()
        problem = self._validate(cmd)
        order_id = f"{self._id_prefix}-{next(self._ids)}"
        order = Order(
            order_id=order_id, session=cmd.session, cl_ord_id=cmd.cl_ord_id, symbol=cmd.symbol,
            side=cmd.side, qty=cmd.qty, ord_type=cmd.ord_type, price=cmd.price, stop_px=cmd.stop_px,
            tif=cmd.tif, account=cmd.account,
        )
        if problem is None:
            venue, why_not = choose_venue(cmd.symbol, cmd.ex_destination, self.venues, self._venue_order)
            if venue is None:
                problem = (RejectCode.EXCHANGE_CLOSED, why_not)
        if problem is not None:
            code, text = problem
            order.status = OrdStatus.REJECTED
            out.actions.append(self._report(order, ExecKind.REJECTED, recv_ns=cmd.recv_ns, reject_code=code, text=text))
            return out  # rejected orders are not kept: the ClOrdID stays free for a corrected resend

        order.venue = venue
        order.venue_cl_ord_id = order_id
        self.orders[order_id] = order
        self._by_client[(cmd.session, cmd.cl_ord_id)] = order
        self._by_child[(venue, order_id)] = order
        if self.clients.get(cmd.session, ClientOptions()).pending_new:
            out.actions.append(self._report(order, ExecKind.PENDING_NEW, recv_ns=cmd.recv_ns))
        out.actions.append(VenueNewOrder(
            venue=venue, cl_ord_id=order_id, symbol=order.symbol, side=order.side, qty=order.qty,
            ord_type=order.ord_type, price=order.price, stop_px=order.stop_px, tif=order.tif,
            account=order.account, recv_ns=cmd.recv_ns,
        ))
        return out

    # ------------------------------------------------------------------ client: cancel
    def _cancel(self, cmd: CancelRequest) -> Outcome:
        out = Outcome()
        order = self._by_client.get((cmd.session, cmd.orig_cl_ord_id))

        def refuse(code: CxlRejCode, text: str) -> Outcome:
            out.actions.append(ClientCancelReject(
                session=cmd.session, cl_ord_id=cmd.cl_ord_id, orig_cl_ord_id=cmd.orig_cl_ord_id,
                order_id=order.order_id if order else "NONE",
                ord_status=order.status if order else OrdStatus.REJECTED,
                response_to=CxlRejResponseTo.CANCEL, reason=code, text=text,
                account=order.account if order else None,
            ))
            return out

        if order is None:
            return refuse(CxlRejCode.UNKNOWN_ORDER, f"unknown order: OrigClOrdID {cmd.orig_cl_ord_id}")
        if (cmd.session, cmd.cl_ord_id) in self._by_client:
            return refuse(CxlRejCode.DUPLICATE_CLORDID, f"duplicate ClOrdID {cmd.cl_ord_id}")
        if order.status is OrdStatus.PENDING_CANCEL:
            return refuse(CxlRejCode.ALREADY_PENDING, "a cancel for this order is already pending")
        try:
            order.apply(Event.CANCEL_REQUEST)
        except TransitionRefused as exc:
            return refuse(CxlRejCode.TOO_LATE, str(exc))

        child_id = f"{order.order_id}.c{order.exec_seq + 1}"
        order.pending_cl_ord_id = cmd.cl_ord_id
        self._by_client[(cmd.session, cmd.cl_ord_id)] = order
        self._by_child[(order.venue, child_id)] = order
        out.actions.append(self._report(order, ExecKind.PENDING_CANCEL, cl_ord_id=cmd.cl_ord_id,
                                        orig_cl_ord_id=order.cl_ord_id, recv_ns=cmd.recv_ns))
        out.actions.append(VenueCancel(
            venue=order.venue, cl_ord_id=child_id, orig_cl_ord_id=order.venue_cl_ord_id,
            venue_order_id=order.venue_order_id, symbol=order.symbol, side=order.side, qty=order.qty,
        ))
        return out

    # ------------------------------------------------------------------ venue side
    def _venue_execution(self, ev: VenueExecution) -> Outcome:
        out = Outcome()
        order = self._by_child.get((ev.venue, ev.cl_ord_id))
        if order is None and ev.orig_cl_ord_id:
            order = self._by_child.get((ev.venue, ev.orig_cl_ord_id))
        if order is None:
            text = f"no order with ClOrdID {ev.cl_ord_id or '(none)'} at {ev.venue}"
            out.warnings.append(f"venue {ev.venue} sent ExecutionReport {ev.exec_id} for an unknown order: {text}")
            if ev.kind is ExecKind.TRADE:
                out.actions.append(VenueDontKnow(
                    venue=ev.venue, venue_order_id=ev.venue_order_id, exec_id=ev.exec_id, symbol=ev.symbol,
                    side=ev.side, last_qty=ev.last_qty, last_px=ev.last_px, text=text,
                ))
            return out
        if ev.exec_id in order.seen_exec_ids:
            out.warnings.append(f"duplicate ExecID {ev.exec_id} from {ev.venue} ignored (order {order.order_id})")
            return out
        order.seen_exec_ids.add(ev.exec_id)
        if ev.venue_order_id and ev.venue_order_id != "NONE":
            order.venue_order_id = ev.venue_order_id

        if ev.kind is ExecKind.TRADE:
            return self._venue_fill(order, ev, out)
        event = _VENUE_KIND_EVENT.get(ev.kind)
        if event is None:
            out.warnings.append(f"{ev.venue} ExecutionReport {ev.exec_id} ({ev.kind.value}) needs no action")
            return out
        before = order.status
        try:
            order.apply(event)
        except TransitionRefused as exc:
            out.warnings.append(f"order {order.order_id}: {exc} (venue {ev.venue}, ExecID {ev.exec_id})")
            return out
        if event is Event.VENUE_ACK and before is not OrdStatus.PENDING_NEW:
            return out  # the client already knows the order is working
        kind = _EVENT_REPORT_KIND[event]
        if event is Event.VENUE_CANCELED and order.pending_cl_ord_id:
            cl, orig = order.pending_cl_ord_id, order.cl_ord_id
            order.cl_ord_id, order.pending_cl_ord_id = cl, None
            out.actions.append(self._report(order, kind, cl_ord_id=cl, orig_cl_ord_id=orig, recv_ns=ev.recv_ns))
            return out
        text = None
        code = None
        if event is Event.VENUE_REJECT:
            code = RejectCode.VENUE
            text = f"rejected by {ev.venue}: {ev.text or 'no reason given'}"
        elif event is Event.VENUE_CANCELED:
            text = f"canceled by {ev.venue}" + (f": {ev.text}" if ev.text else "")
        out.actions.append(self._report(order, kind, recv_ns=ev.recv_ns, reject_code=code, text=text))
        return out

    def _venue_fill(self, order: Order, ev: VenueExecution, out: Outcome) -> Outcome:
        if ev.last_qty <= 0:
            out.warnings.append(f"{ev.venue} fill {ev.exec_id} with LastQty {ev.last_qty} ignored")
            return out
        room = order.qty - order.cum_qty
        event = Event.FILL if ev.last_qty >= room else Event.PARTIAL_FILL
        try:
            order.apply(event)
        except TransitionRefused as exc:
            out.warnings.append(f"order {order.order_id}: {exc}; {ev.last_qty}@{ev.last_px} from {ev.venue} not booked")
            return out
        booked = order.add_fill(ev.last_qty, ev.last_px)
        if booked < ev.last_qty:
            out.warnings.append(
                f"order {order.order_id}: {ev.venue} filled {ev.last_qty} but only {booked} remained; overfill not booked"
            )
        out.actions.append(self._report(order, ExecKind.TRADE, last_qty=booked, last_px=ev.last_px,
                                        last_mkt=ev.venue, recv_ns=ev.recv_ns))
        return out

    def _venue_cancel_reject(self, ev: VenueCancelReject) -> Outcome:
        out = Outcome()
        order = self._by_child.get((ev.venue, ev.cl_ord_id)) or self._by_child.get((ev.venue, ev.orig_cl_ord_id))
        if order is None:
            out.warnings.append(f"{ev.venue} cancel reject for unknown ClOrdID {ev.cl_ord_id}")
            return out
        try:
            order.apply(Event.VENUE_CANCEL_REJECT)
        except TransitionRefused as exc:
            out.warnings.append(f"order {order.order_id}: {exc}")
            return out
        cl = order.pending_cl_ord_id or ev.cl_ord_id
        order.pending_cl_ord_id = None
        out.actions.append(ClientCancelReject(
            session=order.session, cl_ord_id=cl, orig_cl_ord_id=order.cl_ord_id, order_id=order.order_id,
            ord_status=order.status, response_to=CxlRejResponseTo.CANCEL, reason=ev.reason,
            text=f"cancel refused by {ev.venue}: {ev.text or ev.reason.value}", account=order.account,
        ))
        return out

    def _session_status(self, ev: SessionStatus) -> Outcome:
        if ev.role == "venue" and ev.name in self.venues:
            self.venues[ev.name].up = ev.up
        return Outcome()

    # ------------------------------------------------------------------ helpers
    def _report(self, order: Order, kind: ExecKind, *, cl_ord_id: str | None = None, orig_cl_ord_id: str | None = None,
                last_qty: Decimal = ZERO, last_px: Decimal = ZERO, last_mkt: str | None = None,
                reject_code: RejectCode | None = None, text: str | None = None, recv_ns: int = 0) -> ClientExecReport:
        return ClientExecReport(
            session=order.session, order_id=order.order_id, cl_ord_id=cl_ord_id or order.cl_ord_id,
            orig_cl_ord_id=orig_cl_ord_id, exec_id=order.next_exec_id(), kind=kind, ord_status=order.status,
            symbol=order.symbol, side=order.side, order_qty=order.qty, ord_type=order.ord_type, price=order.price,
            tif=order.tif, account=order.account, last_qty=last_qty, last_px=last_px, cum_qty=order.cum_qty,
            leaves_qty=order.leaves_qty, avg_px=order.avg_px, last_mkt=last_mkt, reject_code=reject_code,
            text=text, recv_ns=recv_ns,
        )
