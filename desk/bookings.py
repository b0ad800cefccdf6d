"""What a venue's report books on a child and its parent: a fill, a replace taken effect, a cancel refused.

Shared by the venue's own reports (venue_reports) and by reconciliation (liveness), which books what a status
reply shows the gateway had not heard."""
from __future__ import annotations

from typing import TYPE_CHECKING

from desk.common import exec_report, order_fields
from desk.lifecycle import confirm_replace, progress
from desk.risk_checks import drop_pending_replace, risk_settle
from desk.watch import heard
from orders.actions import ClientCancelReject, Note, Outcome
from orders.commands import VenueCancelReject, VenueExecution
from orders.model import CxlRejResponseTo, ExecKind, OrdStatus
from orders.states import Child, Event, Order, TransitionRefused

if TYPE_CHECKING:
    from desk.state import DeskState


def venue_fill(core: DeskState, order: Order, child: Child, ev: VenueExecution, out: Outcome) -> Outcome:
    if ev.last_qty <= 0:
        out.warnings.append(Note(f"{ev.venue} fill {ev.exec_id} with LastQty {ev.last_qty} ignored",
                                  **order_fields(order), exec_id=ev.exec_id))
        return out
    child_room = child.qty - child.cum_qty
    try:
        child.apply(Event.FILL if ev.last_qty >= child_room else Event.PARTIAL_FILL)
    except TransitionRefused as exc:
        lost = child.status is OrdStatus.CANCELED and core.venues.get(ev.venue) is not None \
            and core.venues[ev.venue].on_disconnect != "hold"
        out.warnings.append(Note(f"order {order.order_id}: {exc}; {ev.last_qty}@{ev.last_px} from {ev.venue} "
                                 "not booked" + (f" (child {child.child_id} was taken as canceled when the venue "
                                                 "disconnected, on_disconnect: reconcile with the venue)"
                                                 if lost else ""), **order_fields(order), exec_id=ev.exec_id))
        return out
    child_booked = child.add_fill(ev.last_qty, ev.last_px)
    heard(core, order, child, out)
    room = order.qty - order.cum_qty
    try:
        order.apply(Event.FILL if child_booked >= room else Event.PARTIAL_FILL)
    except TransitionRefused as exc:
        out.warnings.append(Note(f"order {order.order_id}: {exc}; {ev.last_qty}@{ev.last_px} from {ev.venue} "
                                  "not booked", **order_fields(order), exec_id=ev.exec_id))
        return out
    booked = order.add_fill(child_booked, ev.last_px)
    if core.risk is not None and booked > 0:
        core.risk_state.on_fill(order.session, order.risk_key, booked, ev.last_px)
        core.risk_state.set_last_trade(order.symbol, ev.last_px)
    if booked < ev.last_qty:
        out.warnings.append(Note(
            f"order {order.order_id}: {ev.venue} filled {ev.last_qty} but only {booked} remained; overfill not booked",
            **order_fields(order), exec_id=ev.exec_id))
    out.actions.append(exec_report(order, ExecKind.TRADE, last_qty=booked, last_px=ev.last_px,
                                   last_mkt=ev.venue, recv_ns=ev.recv_ns))
    risk_settle(core, order)
    if not child.is_open:
        progress(core, order, out, ev.recv_ns)
    return out


def venue_replaced(core: DeskState, order: Order, child: Child, ev: VenueExecution, out: Outcome) -> Outcome:
    if child.pending_replace is None or order.pending_replace is None:
        out.warnings.append(Note(f"order {order.order_id}: {ev.venue} reported a replace nobody asked for "
                                 f"(ExecID {ev.exec_id}); ignored", **order_fields(order), exec_id=ev.exec_id))
        return out
    try:
        child.apply(Event.VENUE_REPLACED)
        order.apply(Event.VENUE_REPLACED)
    except TransitionRefused as exc:
        out.warnings.append(Note(f"order {order.order_id}: {exc}", **order_fields(order), exec_id=ev.exec_id))
        return out
    child.apply_replace()
    heard(core, order, child, out)
    confirm_replace(core, order, out, ev.recv_ns)
    risk_settle(core, order)
    return out


def handle_venue_cancel_reject(core: DeskState, ev: VenueCancelReject) -> Outcome:
    out = Outcome()
    order = core.by_child.get((ev.venue, ev.cl_ord_id)) or core.by_child.get((ev.venue, ev.orig_cl_ord_id))
    child = None
    if order is not None:
        child = order.child(ev.venue, ev.cl_ord_id) or order.child(ev.venue, ev.orig_cl_ord_id)
    if child is None:
        out.warnings.append(Note(f"{ev.venue} cancel reject for unknown ClOrdID {ev.cl_ord_id}", venue=ev.venue))
        return out
    replace = ev.response_to is CxlRejResponseTo.REPLACE
    text = ev.text or ev.reason.value
    if replace:
        try:
            child.apply(Event.VENUE_REPLACE_REJECT)
            order.apply(Event.VENUE_REPLACE_REJECT)
        except TransitionRefused as exc:
            out.warnings.append(Note(f"order {order.order_id}: {exc}", **order_fields(order)))
            return out
        child.pending_replace = None
        heard(core, order, child, out)
        cl = order.pending_replace.cl_ord_id if order.pending_replace else ev.cl_ord_id
        drop_pending_replace(core, order)
        out.actions.append(ClientCancelReject(
            session=order.session, cl_ord_id=cl, orig_cl_ord_id=order.cl_ord_id, order_id=order.order_id,
            ord_status=order.status, response_to=ev.response_to, reason=ev.reason,
            text=f"replace refused by {ev.venue}: {text}", account=order.account,
        ))
        return out
    if child.pending_cancel is None:
        out.warnings.append(Note(f"order {order.order_id}: {ev.venue} refused a cancel we are not waiting for "
                                 f"({ev.cl_ord_id}): {text}", **order_fields(order)))
        return out
    try:
        child.apply(Event.VENUE_CANCEL_REJECT)
    except TransitionRefused as exc:  # it ended meanwhile (rejected, say): the cancel is moot all the same
        out.warnings.append(Note(f"order {order.order_id}: {exc}", **order_fields(order)))
    child.pending_cancel = None
    heard(core, order, child, out)
    if child.is_open or order.refusal is None:
        order.refusal = (ev.reason, ev.venue, ev.text or ev.reason.value)
    progress(core, order, out)
    return out
