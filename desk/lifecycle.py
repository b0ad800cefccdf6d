"""What a parent order does after any change to a child: route again, answer a pending cancel or replace, or end."""
from __future__ import annotations

from typing import TYPE_CHECKING

from desk.common import END_OF_DAY, exec_report, order_fields
from desk.placing import route_more
from desk.risk_checks import as_new_order, risk_settle
from orders.model import (
    ClientCancelReject,
    CxlRejCode,
    CxlRejResponseTo,
    ExecKind,
    Note,
    OrdStatus,
    Outcome,
    RejectCode,
)
from orders.states import TRANSITIONS, Child, Event, Order
from routing.router import DIRECT

if TYPE_CHECKING:
    from desk.core import Core

_EVENT_REPORT_KIND = {
    Event.VENUE_ACK: ExecKind.NEW,
    Event.VENUE_REJECT: ExecKind.REJECTED,
    Event.VENUE_CANCELED: ExecKind.CANCELED,
    Event.DONE_FOR_DAY: ExecKind.DONE_FOR_DAY,
    Event.EXPIRE: ExecKind.EXPIRED,
}


def child_done(core: Core, order: Order, child: Child, event: Event, venue: str, text: str | None, out: Outcome,
               recv_ns: int = 0, reroute: bool | None = None) -> None:
    """A child finished without filling all of it (rejected, canceled, expired, done for the day): what it
    leaves undone is routed again (after a reject, or ``reroute``) or, once nothing works any more, ends
    the parent."""
    child.pending_cancel = None
    child.pending_replace = None
    order.released = (event, venue, text)
    left = child.qty - child.cum_qty
    if reroute is None:
        reroute = event is Event.VENUE_REJECT
    if (reroute and left > 0 and order.is_open and not order.cancel_open and order.pending_replace is None
            and order.strategy != DIRECT):
        rejected = frozenset(c.venue for c in order.children if c.status is OrdStatus.REJECTED)
        why = (f"re-route after {venue} rejected {left}: {text or 'no reason given'}"
               if event is Event.VENUE_REJECT else f"re-route: {text}")
        if order.reroutes >= core.policy.max_reroutes:
            if core.policy.max_reroutes:
                out.warnings.append(Note(f"order {order.order_id}: {left} not routed again: already re-routed "
                                         f"{order.reroutes} time(s) (max_reroutes)", **order_fields(order)))
        else:
            order.reroutes += 1
            route_more(core, order, min(left, order.qty - order.committed), why, out, recv_ns,
                       exclude=rejected)
            order.released = (event, venue, text)  # if the new children fail too, the parent ends as this
    progress(core, order, out, recv_ns)


def awaiting(order: Order) -> bool:
    """A cancel is still out at a child whose answer matters: one still working, or, once the parent is
    filled, one that filled too (its venue's refusal is what the client's cancel reject says)."""
    return any(c.pending_cancel and (c.is_open or not order.is_open) for c in order.children)


def progress(core: Core, order: Order, out: Outcome, recv_ns: int = 0) -> None:
    """After any change to a child: answer a cancel or replace every child that matters has answered, or
    end the parent when no child works any more."""
    live = order.live_children
    if order.cancel_open:
        if awaiting(order):
            return
        order.cancel_open = False
        if not order.is_open:  # filled meanwhile: the cancel came too late
            cancel_refused(core, order, out)
        elif not live:
            finish(core, order, out, recv_ns)
        else:  # a venue refused: the order works on
            order.apply(Event.VENUE_CANCEL_REJECT)
            cancel_refused(core, order, out)
        return
    if order.replace_mode == "reroute" and order.pending_replace is not None:
        if awaiting(order):
            return
        replace_rerouted(core, order, out, recv_ns)
        return
    if order.is_open and not live:
        finish(core, order, out, recv_ns)


def finish(core: Core, order: Order, out: Outcome, recv_ns: int = 0) -> None:
    """No child works any more and the order is not filled: it ends as its last child did (canceled,
    rejected, expired, done for the day), or canceled when that is no end the parent can take."""
    event, venue, text = order.released or (Event.VENUE_CANCELED, None, None)
    if event is Event.VENUE_CANCELED and order.cancel_cause == END_OF_DAY:
        event = Event.EXPIRE
    if (order.status, event) not in TRANSITIONS:
        event = Event.VENUE_CANCELED
    order.apply(event)
    order.cancel_open = False
    risk_settle(core, order)
    kind = _EVENT_REPORT_KIND[event]
    if event is Event.VENUE_CANCELED and order.pending_cl_ord_id:
        cl, orig = order.pending_cl_ord_id, order.cl_ord_id
        order.cl_ord_id, order.pending_cl_ord_id = cl, None
        out.actions.append(exec_report(order, kind, cl_ord_id=cl, orig_cl_ord_id=orig, recv_ns=recv_ns))
        return
    code = None
    if event is Event.VENUE_REJECT:
        code = RejectCode.VENUE
        text = f"rejected by {venue}: {text or 'no reason given'}"
    elif event is Event.VENUE_CANCELED:
        text = (f"canceled: {order.cancel_cause}" if order.cancel_cause else
                f"canceled by {venue}" + (f": {text}" if text else "") if venue else f"canceled: {text}")
    elif event is Event.EXPIRE:
        text = f"expired: {order.cancel_cause or text or 'by the venue'}"
    else:
        text = None
    out.actions.append(exec_report(order, kind, recv_ns=recv_ns, reject_code=code, text=text))


def cancel_refused(core: Core, order: Order, out: Outcome) -> None:
    """Tell the client its cancel was refused (or note that the gateway's own cancel was)."""
    code, venue, text = order.refusal or (CxlRejCode.TOO_LATE, None, None)
    order.refusal = None
    cl = order.pending_cl_ord_id
    order.pending_cl_ord_id = None
    if cl is None:  # a cancel the gateway started itself: the client heard PendingCancel, so it hears this
        cause = order.cancel_cause
        out.warnings.append(Note(f"order {order.order_id}: {venue or 'the venue'} refused the "
                                 f"{cause} cancel: {text or code.value}", **order_fields(order)))
        order.cancel_cause = None
        if order.is_open:  # unsolicited: the order's real state, so client and gateway agree again
            out.actions.append(exec_report(order, ExecKind.RESTATED,
                                           text=f"cancel ({cause}) refused by {venue or 'the venue'}: "
                                           f"{text or code.value}; the order works on"))
        return
    out.actions.append(ClientCancelReject(
        session=order.session, cl_ord_id=cl, orig_cl_ord_id=order.cl_ord_id, order_id=order.order_id,
        ord_status=order.status, response_to=CxlRejResponseTo.CANCEL, reason=code,
        text=f"cancel refused by {venue or 'the venue'}: {text or code.value}", account=order.account,
    ))


def replace_rerouted(core: Core, order: Order, out: Outcome, recv_ns: int = 0) -> None:
    """Every child of a replaced order has answered its cancel: confirm the replace and route the new
    terms, or refuse it (a venue refused to cancel, or fills left nothing to replace)."""
    p = order.pending_replace
    problem = None
    if order.live_children:
        code, venue, text = order.refusal or (CxlRejCode.OTHER, None, None)
        problem = (code, f"replace refused: {venue or 'a venue'} refused to cancel its part: "
                         f"{text or code.value}")
    elif not order.is_open:
        problem = (CxlRejCode.TOO_LATE, f"order is {order.status.name.lower()}: too late to replace")
    elif p.qty <= order.cum_qty:
        problem = (CxlRejCode.OTHER, f"new OrderQty {p.qty} must exceed CumQty {order.cum_qty}")
    order.refusal = None
    if problem is not None:
        order.pending_replace = None
        order.replace_mode = None
        if order.is_open:
            order.apply(Event.VENUE_REPLACE_REJECT)
        out.actions.append(ClientCancelReject(
            session=order.session, cl_ord_id=p.cl_ord_id, orig_cl_ord_id=order.cl_ord_id,
            order_id=order.order_id, ord_status=order.status, response_to=CxlRejResponseTo.REPLACE,
            reason=problem[0], text=problem[1], account=order.account))
        if order.is_open:  # what the canceled children held is routed again on the old terms
            route_more(core, order, order.qty - order.cum_qty - order.working, "replace refused: restore",
                       out, recv_ns)
            if not order.live_children:
                finish(core, order, out, recv_ns)
        return
    order.apply(Event.VENUE_REPLACED)
    confirm_replace(core, order, out, recv_ns)
    route_more(core, order, order.qty - order.cum_qty, "replace", out, recv_ns)
    if order.is_open and not order.live_children:
        finish(core, order, out, recv_ns)


def confirm_replace(core: Core, order: Order, out: Outcome, recv_ns: int) -> None:
    """The client's new terms take effect: re-book its risk under the new ClOrdID and report Replaced."""
    orig = order.cl_ord_id
    order.apply_replace()
    if core.risk is not None:
        new = as_new_order(order)
        core.risk_state.on_replace(order.session, order.risk_key, new)
        order.risk_key = new.cl_ord_id
    out.actions.append(exec_report(order, ExecKind.REPLACED, orig_cl_ord_id=orig, recv_ns=recv_ns))
