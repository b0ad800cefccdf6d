"""What venues report about our children: executions, fills, replaces, cancel rejects, messages they refused."""
from __future__ import annotations

from typing import TYPE_CHECKING

from desk import liveness
from desk.bookings import handle_venue_cancel_reject, venue_fill, venue_replaced
from desk.common import child_fields, exec_report, order_fields
from desk.lifecycle import child_done
from desk.watch import doubt, heard
from orders.actions import Note, Outcome, VenueDontKnow
from orders.commands import ChildNotSent, VenueCancelReject, VenueExecution, VenueMessageRejected
from orders.model import CxlRejCode, CxlRejResponseTo, ExecKind, OrdStatus
from orders.states import Event, TransitionRefused

if TYPE_CHECKING:
    from desk.state import DeskState

_VENUE_KIND_EVENT = {
    ExecKind.NEW: Event.VENUE_ACK,
    ExecKind.REJECTED: Event.VENUE_REJECT,
    ExecKind.CANCELED: Event.VENUE_CANCELED,
    ExecKind.DONE_FOR_DAY: Event.DONE_FOR_DAY,
    ExecKind.EXPIRED: Event.EXPIRE,
}


def handle_child_not_sent(core: DeskState, cmd: ChildNotSent) -> Outcome:
    """The engine could not encode our message to a venue: answered as if the venue had refused it, so
    the order never waits on a message that never left (a new child: rejected, re-routed or reported to
    the client; a cancel or replace: refused, the client gets an OrderCancelReject)."""
    if cmd.msg_type != "D":
        return handle_venue_cancel_reject(core, VenueCancelReject(
            venue=cmd.venue, cl_ord_id=cmd.cl_ord_id, orig_cl_ord_id=cmd.orig_cl_ord_id or "",
            venue_order_id=None, reason=CxlRejCode.OTHER, text=cmd.text,
            response_to=CxlRejResponseTo.REPLACE if cmd.msg_type == "G" else CxlRejResponseTo.CANCEL))
    out = Outcome()
    order = core.by_child.get((cmd.venue, cmd.cl_ord_id))
    child = order.child(cmd.venue, cmd.cl_ord_id) if order is not None else None
    if child is None:
        out.warnings.append(Note(f"{cmd.venue}: order {cmd.cl_ord_id} not sent and not known: {cmd.text}",
                                 venue=cmd.venue))
        return out
    try:
        child.apply(Event.VENUE_REJECT)
    except TransitionRefused as exc:
        out.warnings.append(Note(f"order {order.order_id}: {exc} ({cmd.text})", **order_fields(order)))
        return out
    out.changed.append(order)
    heard(core, order, child, out)
    child_done(core, order, child, Event.VENUE_REJECT, cmd.venue, cmd.text, out)
    return out


def handle_venue_execution(core: DeskState, ev: VenueExecution) -> Outcome:
    if ev.mass_status_req_id is not None:  # a report of our OrderMassStatusRequest (desk.liveness)
        return liveness.mass_status_reply(core, ev)
    out = Outcome()
    order = core.by_child.get((ev.venue, ev.cl_ord_id))
    if order is None and ev.orig_cl_ord_id:
        order = core.by_child.get((ev.venue, ev.orig_cl_ord_id))
    child = None
    if order is not None:
        child = order.child(ev.venue, ev.cl_ord_id) or order.child(ev.venue, ev.orig_cl_ord_id)
    if child is None:
        text = f"no order with ClOrdID {ev.cl_ord_id or '(none)'} at {ev.venue}"
        out.warnings.append(Note(f"venue {ev.venue} sent ExecutionReport {ev.exec_id} for an unknown order: {text}",
                                  venue=ev.venue, exec_id=ev.exec_id))
        if ev.kind is ExecKind.TRADE:
            out.actions.append(VenueDontKnow(
                venue=ev.venue, venue_order_id=ev.venue_order_id, exec_id=ev.exec_id, symbol=ev.symbol,
                side=ev.side, last_qty=ev.last_qty, last_px=ev.last_px, text=text,
            ))
        return out
    if ev.kind is ExecKind.ORDER_STATUS:  # an answer to our OrderStatusRequest: reconcile (desk.liveness)
        return liveness.status_reply(core, order, child, ev, out)
    if ev.exec_id in child.seen_exec_ids:
        out.warnings.append(Note(f"duplicate ExecID {ev.exec_id} from {ev.venue} ignored (order {order.order_id})",
                                  **order_fields(order), exec_id=ev.exec_id))
        return out
    child.seen_exec_ids.add(ev.exec_id)
    if ev.venue_order_id and ev.venue_order_id != "NONE":
        child.venue_order_id = ev.venue_order_id

    if ev.kind is ExecKind.TRADE:
        return venue_fill(core, order, child, ev, out)
    if ev.kind is ExecKind.REPLACED:
        return venue_replaced(core, order, child, ev, out)
    event = _VENUE_KIND_EVENT.get(ev.kind)
    if event is None:
        out.warnings.append(Note(f"{ev.venue} ExecutionReport {ev.exec_id} ({ev.kind.value}) needs no action",
                                  **order_fields(order), exec_id=ev.exec_id))
        return out
    if event is Event.VENUE_CANCELED and child.status is OrdStatus.CANCELED:
        out.warnings.append(Note(f"order {order.order_id}: {ev.venue} confirms child {child.child_id} canceled, "
                                 "as the gateway had taken it to be when the venue disconnected",
                                 **order_fields(order), exec_id=ev.exec_id))
        return out
    try:
        child.apply(event)
    except TransitionRefused as exc:
        out.warnings.append(Note(f"order {order.order_id}: {exc} (venue {ev.venue}, ExecID {ev.exec_id})",
                                  **order_fields(order), exec_id=ev.exec_id))
        return out
    heard(core, order, child, out)
    if event is Event.VENUE_ACK:
        if order.status is OrdStatus.PENDING_NEW:  # the first venue to acknowledge: the order is working
            order.apply(Event.VENUE_ACK)
            out.actions.append(exec_report(order, ExecKind.NEW, recv_ns=ev.recv_ns))
        return out
    child_done(core, order, child, event, ev.venue, ev.text, out, ev.recv_ns)
    return out


def handle_venue_message_rejected(core: DeskState, cmd: VenueMessageRejected) -> Outcome:
    out = Outcome()
    kind = "session-level Reject (35=3)" if cmd.session_level else "BusinessMessageReject (35=j)"
    order = core.by_child.get((cmd.venue, cmd.cl_ord_id)) if cmd.cl_ord_id else None
    child = order.child(cmd.venue, cmd.cl_ord_id) if order is not None else None
    if child is None:
        out.warnings.append(Note(f"{cmd.venue} sent a {kind} of our {cmd.ref_msg_type or '?'} MsgSeqNum "
                                 f"{cmd.ref_seq or '?'} that names no order we know: {cmd.text}",
                                 venue=cmd.venue))
        return out
    text = f"{kind}: {cmd.text}"
    if cmd.ref_msg_type == "D":
        if child.status is not OrdStatus.PENDING_NEW:
            out.warnings.append(Note(f"order {order.order_id}: {cmd.venue} rejected child {child.child_id}'s "
                                     f"NewOrderSingle after reporting it {child.status.name.lower()}; ignored: "
                                     f"{text}", **child_fields(order, child)))
            return out
        child.apply(Event.VENUE_REJECT)
        heard(core, order, child, out)
        child_done(core, order, child, Event.VENUE_REJECT, cmd.venue, text, out, cmd.recv_ns)
        return out
    if cmd.ref_msg_type in ("F", "G"):
        replace = cmd.ref_msg_type == "G"
        inner = handle_venue_cancel_reject(core, VenueCancelReject(
            venue=cmd.venue, cl_ord_id=cmd.cl_ord_id, orig_cl_ord_id=child.cl_ord_id, venue_order_id=None,
            reason=CxlRejCode.OTHER, text=text, recv_ns=cmd.recv_ns,
            response_to=CxlRejResponseTo.REPLACE if replace else CxlRejResponseTo.CANCEL))
        inner.changed.append(order)
        return inner
    if cmd.ref_msg_type == "H":
        out.warnings.append(Note(f"order {order.order_id}: {cmd.venue} refused our status request for "
                                 f"{child.child_id}: {text}", **child_fields(order, child)))
        if child.status_asks:
            doubt(core, order, child, f"{cmd.venue} refused our status request: {cmd.text}", out)
        return out
    out.warnings.append(Note(f"order {order.order_id}: {cmd.venue} sent a {kind} of our "
                             f"{cmd.ref_msg_type or '?'}: {cmd.text}", **child_fields(order, child)))
    return out
