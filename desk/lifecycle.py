"""What the desk does after any change to a child, as the parent's rules (orders.lifecycle) decide: route again,
answer a pending cancel or replace, or end the order, with the risk and client reports that go with it."""
from __future__ import annotations

from typing import TYPE_CHECKING

from desk.common import exec_report, order_fields
from desk.placing import route_more
from desk.risk_checks import as_new_order, drop_pending_replace, risk_settle
from orders.actions import ClientCancelReject, Note, Outcome
from orders.model import CxlRejCode, CxlRejResponseTo, ExecKind
from orders.lifecycle import ChildLifecycle, ParentLifecycle, Step
from orders.states import Child, Event, Order
from routing.router import DIRECT

if TYPE_CHECKING:
    from desk.state import DeskState


def child_done(core: DeskState, order: Order, child: Child, event: Event, venue: str, text: str | None,
               out: Outcome, recv_ns: int = 0, reroute: bool | None = None) -> None:
    """A child finished without filling all of it (rejected, canceled, expired, done for the day): what it
    leaves undone is routed again (after a reject, or ``reroute``) or, once nothing works any more, ends
    the parent."""
    life = ChildLifecycle(order, child)
    left = life.release(event, venue, text)
    if reroute is None:
        reroute = event is Event.VENUE_REJECT
    if reroute and left > 0 and life.may_route_again() and order.strategy != DIRECT:
        why = (f"re-route after {venue} rejected {left}: {text or 'no reason given'}"
               if event is Event.VENUE_REJECT else f"re-route: {text}")
        if order.reroutes >= core.policy.max_reroutes:
            if core.policy.max_reroutes:
                out.warnings.append(Note(f"order {order.order_id}: {left} not routed again: already re-routed "
                                         f"{order.reroutes} time(s) (max_reroutes)", **order_fields(order)))
        else:
            order.reroutes += 1
            route_more(core, order, min(left, order.qty - order.committed), why, out, recv_ns,
                       exclude=life.rejected_venues())
            order.released = (event, venue, text)  # if the new children fail too, the parent ends as this
    progress(core, order, out, recv_ns)


def progress(core: DeskState, order: Order, out: Outcome, recv_ns: int = 0) -> None:
    """After any change to a child: do what the parent's rules say comes next (``ParentLifecycle.next_step``)."""
    step = ParentLifecycle(order).next_step()
    if step is Step.NOTHING or step is Step.WAIT:
        return
    if step is Step.REPLACE_ANSWERED:
        replace_rerouted(core, order, out, recv_ns)
        return
    if step is Step.END:
        finish(core, order, out, recv_ns)
        return
    order.cancel_open = False  # every child answered the cancel
    if step is Step.CANCELED:
        finish(core, order, out, recv_ns)
        return
    if step is Step.CANCEL_REFUSED:  # a venue refused: the order works on
        order.apply(Event.VENUE_CANCEL_REJECT)
    cancel_refused(core, order, out)  # or filled meanwhile: the cancel came too late


def finish(core: DeskState, order: Order, out: Outcome, recv_ns: int = 0) -> None:
    """No child works any more and the order is not filled: it ends (``ParentLifecycle.ending``), its risk
    usage is settled and the client hears how."""
    ending = ParentLifecycle(order).ending()
    order.apply(ending.event)
    order.cancel_open = False
    risk_settle(core, order)
    if ending.event is Event.VENUE_CANCELED and order.pending_cl_ord_id:  # the client's own cancel
        cl, orig = order.pending_cl_ord_id, order.cl_ord_id
        order.cl_ord_id, order.pending_cl_ord_id = cl, None
        out.actions.append(exec_report(order, ending.kind, cl_ord_id=cl, orig_cl_ord_id=orig, recv_ns=recv_ns))
        return
    out.actions.append(exec_report(order, ending.kind, recv_ns=recv_ns, reject_code=ending.reject_code,
                                   text=ending.text))


def cancel_refused(core: DeskState, order: Order, out: Outcome) -> None:
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


def replace_rerouted(core: DeskState, order: Order, out: Outcome, recv_ns: int = 0) -> None:
    """Every child of a replaced order has answered its cancel: confirm the replace and route the new
    terms, or refuse it (a venue refused to cancel, or fills left nothing to replace)."""
    p = order.pending_replace
    problem = ParentLifecycle(order).replace_refusal()
    order.refusal = None
    if problem is not None:
        drop_pending_replace(core, order)
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


def confirm_replace(core: DeskState, order: Order, out: Outcome, recv_ns: int) -> None:
    """The client's new terms take effect: re-book its risk under the new ClOrdID and report Replaced."""
    orig = order.cl_ord_id
    order.apply_replace()
    if core.risk is not None:
        new = as_new_order(order)
        core.risk_state.on_replace(order.session, order.risk_key, new)
        order.risk_key = new.cl_ord_id
    out.actions.append(exec_report(order, ExecKind.REPLACED, orig_cl_ord_id=orig, recv_ns=recv_ns))
