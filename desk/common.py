"""What every handler of the desk shares: client reports, cancel rejects, access control, venue connectivity."""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from orders.actions import ClientCancelReject, ClientExecReport, Note, Outcome
from orders.model import CxlRejCode, CxlRejResponseTo, ExecKind, OrdStatus, RejectCode, TimeInForce
from desk.options import DEFAULT_OPTIONS
from orders.states import Child, Order

if TYPE_CHECKING:
    from desk.state import DeskState

ZERO = Decimal(0)


def order_fields(order: Order) -> dict:
    """The IDs of an order, as log fields for a Note."""
    return {"session": order.session, "cl_ord_id": order.cl_ord_id, "order_id": order.order_id,
            "venue": ",".join(order.venues) or None}


def child_fields(order: Order, child: Child | None = None) -> dict:
    """The IDs of an order and the venue of one of its children, as log fields for a Note."""
    ids = {"order_id": order.order_id, "session": order.session, "cl_ord_id": order.cl_ord_id}
    if child is not None:
        ids["venue"] = child.venue
    return ids


def account_problem(core: DeskState, session: str, account: str | None, required: bool = True) -> str | None:
    """Why ``session`` may not use ``account``, or None. A session with an accounts list must name one
    of them on a new order (``required``); a cancel or replace may leave Account out (the order's own)."""
    allowed = core.clients.get(session, DEFAULT_OPTIONS).accounts
    if allowed is None:
        return None
    if account is None:
        return f"Account (1) is required on session {session}" if required else None
    if account not in allowed:
        return f"account {account} is not permitted for session {session}"
    return None


def refuse_account(out: Outcome, session: str, cl_ord_id: str, what: str, problem: str) -> None:
    out.audit.append((session, f"{what} {cl_ord_id} refused: {problem}"))
    out.warnings.append(Note(f"access control: {what} {cl_ord_id} refused: {problem}", session=session,
                             cl_ord_id=cl_ord_id))


def cxl_reject(out: Outcome, session: str, cl_ord_id: str, orig_cl_ord_id: str, order: Order | None,
               response_to: CxlRejResponseTo, code: CxlRejCode, text: str) -> Outcome:
    out.actions.append(ClientCancelReject(
        session=session, cl_ord_id=cl_ord_id, orig_cl_ord_id=orig_cl_ord_id,
        order_id=order.order_id if order else "NONE",
        ord_status=order.status if order else OrdStatus.REJECTED,
        response_to=response_to, reason=code, text=text, account=order.account if order else None,
    ))
    return out


def up(core: DeskState, name: str) -> bool:
    venue = core.venues.get(name)
    return venue is not None and venue.up


def venue_connected(core: DeskState, order: Order) -> bool:
    """Every venue where the order has a child working is connected."""
    return all(up(core, c.venue) for c in order.live_children)


def open_orders_of(core: DeskState, session: str, tif: TimeInForce | None = None) -> list[Order]:
    return [o for o in core.orders.values()
            if o.session == session and o.is_open and (tif is None or o.tif is tif)]


def exec_report(order: Order, kind: ExecKind, *, cl_ord_id: str | None = None, orig_cl_ord_id: str | None = None,
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
