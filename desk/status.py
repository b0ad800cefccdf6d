"""A client's order status request, answered from the book."""
from __future__ import annotations

from typing import TYPE_CHECKING

from desk.common import ZERO, exec_report
from desk.risk_checks import risk_message
from orders.actions import ClientExecReport, Outcome
from orders.commands import StatusRequest
from orders.model import ExecKind, OrdStatus, OrdType, RejectCode, Side, TimeInForce

if TYPE_CHECKING:
    from desk.state import DeskState


def handle_status(core: DeskState, cmd: StatusRequest) -> Outcome:
    out = Outcome()
    order = core.by_client.get((cmd.session, cmd.cl_ord_id))
    if order is None and cmd.order_id:
        order = core.orders.get(cmd.order_id)
        if order is not None and order.session != cmd.session:
            order = None  # never reveal another session's order
    throttled = None
    if core.risk is not None:
        # Over the throttle a status request is still answered with the order's true status: an answer
        # saying Rejected could make a client resend an order that is working. Text names the throttle.
        throttled = risk_message(core, out, "H", cmd.session, cmd.cl_ord_id, cmd.symbol,
                                 order.account if order is not None else None)
    if order is not None:
        out.actions.append(exec_report(order, ExecKind.ORDER_STATUS, cl_ord_id=cmd.cl_ord_id, text=throttled))
        return out
    refused = core.refusal(cmd.session, cmd.cl_ord_id)
    if refused is not None:  # refused at intake: Rejected, with the OrderID and the reason the client was told
        out.actions.append(ClientExecReport(
            session=cmd.session, order_id=refused.order_id, cl_ord_id=cmd.cl_ord_id, orig_cl_ord_id=None,
            exec_id=core.new_id("S"), kind=ExecKind.ORDER_STATUS, ord_status=OrdStatus.REJECTED,
            symbol=refused.symbol, side=refused.side, order_qty=refused.qty, ord_type=refused.ord_type,
            price=refused.price, tif=refused.tif, account=refused.account, last_qty=ZERO, last_px=ZERO,
            cum_qty=ZERO, leaves_qty=ZERO, avg_px=ZERO, reject_code=refused.reject_code,
            text=refused.text + (f"; {throttled}" if throttled else "")))
        return out
    out.actions.append(ClientExecReport(
        session=cmd.session, order_id="NONE", cl_ord_id=cmd.cl_ord_id, orig_cl_ord_id=None,
        exec_id=core.new_id("S"), kind=ExecKind.ORDER_STATUS,
        ord_status=OrdStatus.REJECTED, symbol=cmd.symbol, side=cmd.side or Side.BUY, order_qty=ZERO,
        ord_type=OrdType.LIMIT, price=None, tif=TimeInForce.DAY, account=None, last_qty=ZERO, last_px=ZERO,
        cum_qty=ZERO, leaves_qty=ZERO, avg_px=ZERO, reject_code=RejectCode.UNKNOWN_ORDER,
        text=f"unknown order: ClOrdID {cmd.cl_ord_id}" + (f"; {throttled}" if throttled else ""),
    ))
    return out
