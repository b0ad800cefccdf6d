"""A client's new order: validate, check risk at intake, route and place it; a refused one is kept for operators."""
from __future__ import annotations

from time import perf_counter_ns
from typing import TYPE_CHECKING

from desk.common import account_problem, exec_report, refuse_account
from desk.lifecycle import progress
from desk.placing import decide, place, strategy_for, unrouted_note
from desk.risk_checks import risk_check, risk_roll
from orders.actions import Outcome
from orders.commands import NewOrder
from orders.model import ExecKind, OrdStatus, RejectCode
from orders.records import RejectedOrder
from desk.options import DEFAULT_OPTIONS
from orders.states import Event, Order
from routing.router import DIRECT, parse_strategy
from orders.validation import order_shape_problem

if TYPE_CHECKING:
    from desk.state import DeskState


def validate(core: DeskState, cmd: NewOrder) -> tuple[RejectCode, str, str] | None:
    """(code, reason, who refused it) if the order cannot be taken at all, else None."""
    if cmd.session in core.closed_sessions:
        return RejectCode.OTHER, f"session {cmd.session} was removed from the gateway's configuration", "session"
    account = account_problem(core, cmd.session, cmd.account)
    if account is not None:
        return RejectCode.UNKNOWN_ACCOUNT, account, "access control"
    if (cmd.session, cmd.cl_ord_id) in core.by_client:
        return RejectCode.DUPLICATE_ORDER, f"duplicate ClOrdID {cmd.cl_ord_id}", "validation"
    problem = order_shape_problem(cmd.qty, cmd.ord_type, cmd.price)
    if problem is not None:
        return *problem, "validation"
    if not any(cmd.symbol in v.symbols for v in core.venues.values()):
        return RejectCode.UNKNOWN_SYMBOL, f"unknown symbol {cmd.symbol}: no configured venue trades it", "validation"
    if cmd.ex_destination is not None and cmd.ex_destination not in core.venues:
        return RejectCode.OTHER, f"unknown ExDestination {cmd.ex_destination}", "validation"
    if cmd.strategy is not None and cmd.ex_destination is None:
        try:
            spec = parse_strategy(cmd.strategy)
        except ValueError as exc:
            return RejectCode.OTHER, str(exc), "validation"
        unknown = [v for v in spec.venues if v not in core.venues]
        if unknown:
            return (RejectCode.OTHER, f"unknown venue {', '.join(unknown)} in routing strategy {cmd.strategy}",
                    "validation")
    return None


def handle_new_order(core: DeskState, cmd: NewOrder) -> Outcome:
    out = Outcome()
    problem = validate(core, cmd)
    order_id = core.new_id()
    order = Order(
        order_id=order_id, session=cmd.session, cl_ord_id=cmd.cl_ord_id, symbol=cmd.symbol,
        side=cmd.side, qty=cmd.qty, ord_type=cmd.ord_type, price=cmd.price, stop_px=cmd.stop_px,
        tif=cmd.tif, account=cmd.account,
    )
    now = core.clock()
    if core.risk is not None:
        risk_roll(core, out, now)
        if problem is not None:  # refused before the risk check: still a message for the throttle
            core.risk.count("D", cmd.session, core.risk_state, now, account=cmd.account, symbol=cmd.symbol)
    if problem is None and core.risk is not None:
        t0 = perf_counter_ns()
        decision = core.risk.check(cmd, core.risk_state, now)
        out.risk_ns.append(perf_counter_ns() - t0)
        refused = risk_check(out, decision, cmd.session, cmd.cl_ord_id)
        if refused is not None:
            problem = (*refused, f"risk: {decision.reject.rule}")
    if problem is None:
        order.strategy = DIRECT if cmd.ex_destination is not None else strategy_for(core, cmd).describe()
        routed, decision = decide(core, order, order.qty, "new order", cmd.ex_destination)
        if not routed.ok:
            out.routes.append(decision)
            problem = (RejectCode.EXCHANGE_CLOSED, routed.note, "router")
    if problem is not None:
        code, text, by = problem
        if code is RejectCode.UNKNOWN_ACCOUNT:
            refuse_account(out, cmd.session, cmd.cl_ord_id, "order", text)
        order.status = OrdStatus.REJECTED
        out.actions.append(exec_report(order, ExecKind.REJECTED, recv_ns=cmd.recv_ns, reject_code=code, text=text))
        # Not an order of the book: the ClOrdID stays free for a corrected resend, nothing counts it as
        # open or in risk usage. Kept apart, for operators (`fixgw orders list --state rejected`).
        core.keep_rejected(RejectedOrder(
            order_id=order_id, session=cmd.session, cl_ord_id=cmd.cl_ord_id, account=cmd.account,
            symbol=cmd.symbol, side=cmd.side, qty=cmd.qty, price=cmd.price, ord_type=cmd.ord_type, tif=cmd.tif,
            received_at=now, refused_by=by, reject_code=code, text=text, stop_px=cmd.stop_px), out)
        return out

    order.risk_key = cmd.cl_ord_id
    order.accepted_at = now
    if core.risk is not None:
        core.risk.on_accepted(cmd, core.risk_state, now)
    core.orders[order_id] = order
    core.index_client(order, cmd.cl_ord_id)
    if core.clients.get(cmd.session, DEFAULT_OPTIONS).pending_new:
        out.actions.append(exec_report(order, ExecKind.PENDING_NEW, recv_ns=cmd.recv_ns))
    place(core, order, routed.legs, decision, out, cmd.recv_ns)
    if routed.unrouted:
        order.released = (Event.VENUE_CANCELED, None, unrouted_note(routed))
    if not order.live_children:  # an IOC sweep that found nothing to route (never: it falls back)
        progress(core, order, out, cmd.recv_ns)
    return out
