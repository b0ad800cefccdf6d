"""A client's cancel/replace: at the venue for one working child, else cancel all children and route the new terms."""
from __future__ import annotations

from time import perf_counter_ns
from typing import TYPE_CHECKING

from desk.cancel import cancel_child, pending_problem
from desk.common import account_problem, cxl_reject, exec_report, refuse_account
from desk.lifecycle import progress
from desk.risk_checks import as_new_order, risk_check, risk_roll
from desk.watch import expect
from orders.lifecycle import ParentLifecycle
from orders.actions import Outcome, VenueReplace
from orders.commands import ReplaceRequest
from orders.model import CxlRejCode, CxlRejResponseTo, ExecKind
from orders.states import ChildReplace, Event, Order, PendingReplace, TransitionRefused
from orders.validation import order_shape_problem

if TYPE_CHECKING:
    from desk.state import DeskState


def handle_replace(core: DeskState, cmd: ReplaceRequest) -> Outcome:
    out = Outcome()
    order = core.by_client.get((cmd.session, cmd.orig_cl_ord_id))
    if core.risk is not None:  # counted here, judged by the risk check below (if it gets that far)
        now = core.clock()
        risk_roll(core, out, now)
        core.risk.count("G", cmd.session, core.risk_state, now, symbol=cmd.symbol,
                        account=cmd.account or (order.account if order is not None else None))
    # the Account given, else the order's: a replace changes what trades, so the session must still be
    # allowed the account (a cancel without Account is always allowed: it only reduces exposure)
    account = account_problem(core, cmd.session, cmd.account if cmd.account is not None
                              else (order.account if order is not None else None),
                              required=order is not None)
    if account is not None:
        refuse_account(out, cmd.session, cmd.cl_ord_id, "replace", account)
        return cxl_reject(out, cmd.session, cmd.cl_ord_id, cmd.orig_cl_ord_id, order,
                          CxlRejResponseTo.REPLACE, CxlRejCode.OTHER, account)
    problem = pending_problem(core, cmd.session, cmd.cl_ord_id, order, cmd.orig_cl_ord_id)
    if problem is None:
        problem = replace_problem(order, cmd)
    if problem is None and core.risk is not None:
        new_terms = as_new_order(order, cmd)
        t0 = perf_counter_ns()
        decision = core.risk.check_replace(new_terms, order.risk_key, core.risk_state, now, count_message=False)
        out.risk_ns.append(perf_counter_ns() - t0)
        rejected = risk_check(out, decision, cmd.session, cmd.cl_ord_id)
        if rejected is not None:
            problem = (CxlRejCode.OTHER, rejected[1])
    if problem is None:
        try:
            order.apply(Event.REPLACE_REQUEST)
        except TransitionRefused as exc:
            problem = (CxlRejCode.TOO_LATE, str(exc))
    if problem is not None:
        return cxl_reject(out, cmd.session, cmd.cl_ord_id, cmd.orig_cl_ord_id, order,
                          CxlRejResponseTo.REPLACE, *problem)
    tif = cmd.tif or order.tif
    live = order.live_children
    core.index_client(order, cmd.cl_ord_id)
    if core.risk is not None:  # until the venue answers, the new terms count too (no order can take their room)
        core.risk.hold_replace(new_terms, order.risk_key, core.risk_state)
    if len(live) == 1:
        # one child working: replace it at its venue, keeping whatever priority the venue allows.
        # Its new quantity leaves the new OrderQty minus everything filled working there.
        child = live[0]
        child.apply(Event.REPLACE_REQUEST)  # as the parent could, so can its one working child
        child_id = order.next_child_id("r")
        qty = child.cum_qty + (cmd.qty - order.cum_qty)
        order.pending_replace = PendingReplace(cl_ord_id=cmd.cl_ord_id, child_cl_ord_id=child_id, qty=cmd.qty,
                                               price=cmd.price, ord_type=cmd.ord_type, tif=tif)
        order.replace_mode = "venue"
        child.pending_replace = ChildReplace(child_id, qty, cmd.price, cmd.ord_type, tif)
        core.index_child(order, child, child_id)
        expect(core, order, child)
        out.actions.append(exec_report(order, ExecKind.PENDING_REPLACE, cl_ord_id=cmd.cl_ord_id,
                                       orig_cl_ord_id=order.cl_ord_id, recv_ns=cmd.recv_ns))
        out.actions.append(VenueReplace(
            venue=child.venue, cl_ord_id=child_id, orig_cl_ord_id=child.cl_ord_id,
            venue_order_id=child.venue_order_id, symbol=order.symbol, side=order.side, qty=qty,
            ord_type=cmd.ord_type, price=cmd.price, tif=tif, account=order.account,
        ))
        return out
    # several children working (a sweep): cancel them all, then route the new terms afresh
    # (``lifecycle.progress``); the client hears Replaced once every venue has confirmed its cancel.
    order.pending_replace = PendingReplace(cl_ord_id=cmd.cl_ord_id, child_cl_ord_id="", qty=cmd.qty,
                                           price=cmd.price, ord_type=cmd.ord_type, tif=tif)
    order.replace_mode = "reroute"
    order.refusal = None
    out.actions.append(exec_report(order, ExecKind.PENDING_REPLACE, cl_ord_id=cmd.cl_ord_id,
                                   orig_cl_ord_id=order.cl_ord_id, recv_ns=cmd.recv_ns))
    for child in live:
        cancel_child(core, order, child, out)
    if not ParentLifecycle(order).awaiting():
        progress(core, order, out, cmd.recv_ns)
    return out


def replace_problem(order: Order, cmd: ReplaceRequest) -> tuple[CxlRejCode, str] | None:
    if cmd.side is not order.side:
        return CxlRejCode.OTHER, f"a replace may not change Side ({order.side.name} to {cmd.side.name})"
    if cmd.symbol != order.symbol:
        return CxlRejCode.OTHER, f"a replace may not change Symbol ({order.symbol} to {cmd.symbol})"
    if cmd.account is not None and cmd.account != order.account:
        return CxlRejCode.OTHER, f"a replace may not change Account ({order.account} to {cmd.account})"
    shape = order_shape_problem(cmd.qty, cmd.ord_type, cmd.price)
    if shape is not None:
        return CxlRejCode.OTHER, shape[1]
    if cmd.qty <= order.cum_qty:
        return CxlRejCode.OTHER, f"new OrderQty {cmd.qty} must exceed CumQty {order.cum_qty}"
    return None
