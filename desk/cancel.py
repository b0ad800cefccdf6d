"""Cancels: a client's cancel, a mass cancel, end of day, and the gateway's own cancels of many orders."""
from __future__ import annotations

from typing import TYPE_CHECKING

from desk.common import (
    account_problem,
    cxl_reject,
    exec_report,
    open_orders_of,
    order_fields,
    refuse_account,
    up,
    venue_connected,
)
from desk.lifecycle import progress
from desk.risk_checks import risk_message
from desk.undecided import holds
from desk.watch import expect
from orders.lifecycle import END_OF_DAY, ParentLifecycle
from orders.actions import ClientMassCancelReport, Note, Outcome, VenueCancel
from orders.commands import CancelRequest, EndOfDay, MassCancelRequest
from orders.model import CxlRejCode, CxlRejResponseTo, ExecKind, MassCancelScope, OrdStatus, TimeInForce
from orders.states import Child, Event, Order, TransitionRefused

if TYPE_CHECKING:
    from desk.state import DeskState


def pending_problem(core: DeskState, session: str, cl_ord_id: str, order: Order | None,
                    orig_cl_ord_id: str) -> tuple[CxlRejCode, str] | None:
    """Why a cancel or replace cannot even be considered, or None."""
    if order is None:
        return CxlRejCode.UNKNOWN_ORDER, f"unknown order: OrigClOrdID {orig_cl_ord_id}"
    if (session, cl_ord_id) in core.by_client:
        return CxlRejCode.DUPLICATE_CLORDID, f"duplicate ClOrdID {cl_ord_id}"
    if order.status is OrdStatus.PENDING_CANCEL:
        return CxlRejCode.ALREADY_PENDING, "a cancel for this order is already pending"
    if order.status is OrdStatus.PENDING_REPLACE:
        return CxlRejCode.ALREADY_PENDING, "a replace for this order is already pending"
    held = holds(core, order) if core.undecided else None
    if held is not None:
        return CxlRejCode.OTHER, (f"the order is being reconciled with {held} after a failover (its last message "
                                  "there may not have been sent); try again when it is")
    if order.is_open and not venue_connected(core, order):
        down = ", ".join(v for v in order.venues if not up(core, v) and
                         any(c.venue == v for c in order.live_children))
        return CxlRejCode.OTHER, f"venue {down} is not connected; try again when it is"
    return None


def handle_cancel(core: DeskState, cmd: CancelRequest) -> Outcome:
    out = Outcome()
    order = core.by_client.get((cmd.session, cmd.orig_cl_ord_id))
    if core.risk is not None:
        refused = risk_message(core, out, "F", cmd.session, cmd.cl_ord_id, cmd.symbol,
                               cmd.account or (order.account if order is not None else None))
        if refused is not None:
            return cxl_reject(out, cmd.session, cmd.cl_ord_id, cmd.orig_cl_ord_id, order,
                              CxlRejResponseTo.CANCEL, CxlRejCode.OTHER, refused)
    account = account_problem(core, cmd.session, cmd.account, required=False)
    if account is not None:
        refuse_account(out, cmd.session, cmd.cl_ord_id, "cancel", account)
        return cxl_reject(out, cmd.session, cmd.cl_ord_id, cmd.orig_cl_ord_id, order,
                          CxlRejResponseTo.CANCEL, CxlRejCode.OTHER, account)
    problem = pending_problem(core, cmd.session, cmd.cl_ord_id, order, cmd.orig_cl_ord_id)
    if problem is None:
        try:
            start_cancel(core, order, out, client_cl_ord_id=cmd.cl_ord_id, recv_ns=cmd.recv_ns)
            return out
        except TransitionRefused as exc:
            problem = (CxlRejCode.TOO_LATE, str(exc))
    return cxl_reject(out, cmd.session, cmd.cl_ord_id, cmd.orig_cl_ord_id, order,
                      CxlRejResponseTo.CANCEL, *problem)


def start_cancel(core: DeskState, order: Order, out: Outcome, *, client_cl_ord_id: str | None = None,
                 cause: str | None = None, recv_ns: int = 0) -> None:
    """Send a cancel for each of ``order``'s working children; the client hears Canceled only when every
    venue has answered (``lifecycle.progress``).

    ``client_cl_ord_id`` is the ClOrdID of the client's own cancel request; without one the
    gateway cancels on its own account (``cause``: mass cancel, disconnect, end of day) and
    the reports carry the order's ClOrdID.
    """
    order.apply(Event.CANCEL_REQUEST)  # raises TransitionRefused when too late
    order.pending_cl_ord_id = client_cl_ord_id
    order.cancel_cause = cause
    order.cancel_open = True
    order.refusal = None
    if client_cl_ord_id is not None:
        core.index_client(order, client_cl_ord_id)
    out.actions.append(exec_report(order, ExecKind.PENDING_CANCEL, cl_ord_id=client_cl_ord_id,
                                   orig_cl_ord_id=order.cl_ord_id if client_cl_ord_id else None,
                                   text=f"cancel requested: {cause}" if cause else None, recv_ns=recv_ns))
    for child in order.live_children:
        cancel_child(core, order, child, out)
    if not ParentLifecycle(order).awaiting():
        progress(core, order, out, recv_ns)


def cancel_child(core: DeskState, order: Order, child: Child, out: Outcome) -> None:
    try:
        child.apply(Event.CANCEL_REQUEST)
    except TransitionRefused as exc:  # never: the parent refuses a second cancel or replace
        out.warnings.append(Note(f"order {order.order_id}: child {child.child_id} at {child.venue} not "
                                 f"canceled: {exc}", **order_fields(order)))
        return
    child.pending_cancel = send_cancel(core, order, child, out)
    expect(core, order, child)


def send_cancel(core: DeskState, order: Order, child: Child, out: Outcome) -> str:
    """An OrderCancelRequest for ``child`` at its venue, under a new ClOrdID of ours (returned)."""
    cancel_id = order.next_child_id("c")
    core.index_child(order, child, cancel_id)
    out.actions.append(VenueCancel(
        venue=child.venue, cl_ord_id=cancel_id, orig_cl_ord_id=child.cl_ord_id,
        venue_order_id=child.venue_order_id, symbol=order.symbol, side=order.side, qty=child.qty,
    ))
    return cancel_id


def handle_mass_cancel(core: DeskState, cmd: MassCancelRequest) -> Outcome:
    out = Outcome()
    mass_id = core.new_id("M")

    def report(response: str, affected: int, reason: str | None = None, text: str | None = None) -> None:
        out.actions.insert(0, ClientMassCancelReport(
            session=cmd.session, cl_ord_id=cmd.cl_ord_id, mass_order_id=mass_id,
            request_type=cmd.request_type, response=response, affected=affected, reject_reason=reason,
            text=text))

    if core.risk is not None:
        refused = risk_message(core, out, "q", cmd.session, cmd.cl_ord_id, cmd.symbol or "")
        if refused is not None:
            report("0", 0, "99", refused)
            return out
    try:
        scope = MassCancelScope(cmd.request_type)
    except ValueError:
        report("0", 0, "0", f"MassCancelRequestType {cmd.request_type} is not supported (use 1 or 7)")
        return out
    if scope is MassCancelScope.SYMBOL and not cmd.symbol:
        report("0", 0, "1", "MassCancelRequestType 1 (by security) needs Symbol (55)")
        return out
    targets = [o for o in open_orders_of(core, cmd.session)
               if (scope is MassCancelScope.ALL or o.symbol == cmd.symbol)
               and (cmd.side is None or o.side is cmd.side)]
    affected = cancel_all(core, targets, out, f"mass cancel {cmd.cl_ord_id}")
    report(scope.value, affected)
    return out


def cancel_all(core: DeskState, orders: list[Order], out: Outcome, cause: str) -> int:
    """Start a gateway-initiated cancel for each order that can take one; returns how many."""
    started = 0
    for order in orders:
        if order.status in (OrdStatus.PENDING_CANCEL, OrdStatus.PENDING_REPLACE):
            out.warnings.append(Note(f"order {order.order_id} not canceled for {cause}: it is {order.status.name}",
                                  **order_fields(order)))
            continue
        if not venue_connected(core, order):
            down = ", ".join(c.venue for c in order.live_children if not up(core, c.venue))
            out.warnings.append(Note(f"order {order.order_id} not canceled for {cause}: venue {down} is not "
                                     "connected (a cancel sent now would never reach it)", **order_fields(order)))
            continue
        try:
            start_cancel(core, order, out, cause=cause)
            started += 1
        except TransitionRefused as exc:
            out.warnings.append(Note(f"order {order.order_id} not canceled for {cause}: {exc}", **order_fields(order)))
    return started


def handle_end_of_day(core: DeskState, cmd: EndOfDay) -> Outcome:
    """Day orders still open expire: canceled at their venues, reported Expired when confirmed."""
    out = Outcome()
    n = cancel_all(core, open_orders_of(core, cmd.session, TimeInForce.DAY), out, END_OF_DAY)
    if n:
        out.warnings.append(Note(f"end of day for {cmd.session}: {n} Day order(s) being expired",
                                  session=cmd.session))
    return out
