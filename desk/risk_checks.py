"""The core's side of the risk engine: record a decision, roll the trading day, count throttled messages, settle."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from orders.actions import LogoutClient, Note, Outcome
from orders.commands import NewOrder, ReplaceRequest, RiskDayRoll
from orders.model import RejectCode
from orders.states import Order, PendingReplace

if TYPE_CHECKING:
    from desk.state import DeskState


def risk_check(out: Outcome, decision, session: str, cl_ord_id: str) -> tuple[RejectCode, str] | None:
    """Record the decision; return (code, reason) if it blocks the order."""
    out.risk.append((session, cl_ord_id, decision))
    for shadow in decision.shadow_rejects:
        out.warnings.append(Note(f"risk shadow: {session} {cl_ord_id} would have been rejected: {shadow.text}",
                                  session=session, cl_ord_id=cl_ord_id))
    if decision.session_disabled:
        out.warnings.append(Note(f"risk: session {session} disabled after repeated throttle breaches; "
                                 "an operator must re-enable it", session=session, cl_ord_id=cl_ord_id))
        out.actions.append(LogoutClient(session, "disabled after repeated throttle breaches; "
                                                 "an operator must re-enable the session"))
    elif decision.logout:
        out.actions.append(LogoutClient(session, "message rate above the throttle's logout threshold"))
    if decision.accepted:
        return None
    return decision.reject.code, decision.reject.text


def risk_roll(core: DeskState, out: Outcome, now: datetime) -> None:
    """Per-day risk usage belongs to the trading day ``now`` is in: roll it when a boundary has passed
    (cheap otherwise). What it dropped is journaled as risk events."""
    for text in core.risk.roll(core.risk_state, now):
        out.risk_events.append(text)
        out.warnings.append(Note(f"risk: {text}"))


def risk_message(core: DeskState, out: Outcome, msg_type: str, session: str, cl_ord_id: str, symbol: str = "",
                 account: str | None = None) -> str | None:
    """Count a cancel (F), status request (H) or mass cancel (q) for the throttle; the reason if the
    throttle refuses it (a cancel only with throttle_refuse_cancels)."""
    now = core.clock()
    risk_roll(core, out, now)
    decision = core.risk.message(msg_type, session, core.risk_state, now, account=account, symbol=symbol)
    if decision is None:
        return None
    refused = risk_check(out, decision, session, cl_ord_id)
    return None if refused is None else refused[1]


def handle_risk_day_roll(core: DeskState, cmd: RiskDayRoll) -> Outcome:
    """The scheduled roll at a trading-day boundary: the roll happens (and is journaled) with no order
    flowing; any message after the boundary would roll first anyway."""
    out = Outcome()
    if core.risk is not None:
        risk_roll(core, out, core.clock())
    return out


def risk_settle(core: DeskState, order: Order) -> None:
    """A finished order no longer counts as open for risk (fills were booked as they came)."""
    if core.risk is not None and not order.is_open:
        core.risk_state.on_done(order.session, order.risk_key)


def drop_pending_replace(core: DeskState, order: Order) -> None:
    """The order's replace in flight is refused or abandoned: forget it, and its new terms no longer count in
    the risk state."""
    order.pending_replace = None
    order.replace_mode = None
    core.risk_state.release_hold(order.session, order.risk_key)


def hold_pending_replaces(core: DeskState, orders) -> None:
    """After a restart: each open order's replace in flight holds its new terms again (``RiskState.holds`` are
    not in the state log; what the venue answers releases them as before)."""
    if core.risk is None:
        return
    for order in orders:
        if order.pending_replace is not None:
            core.risk.hold_replace(as_new_order(order, order.pending_replace), order.risk_key, core.risk_state)


def as_new_order(order: Order, replace: ReplaceRequest | PendingReplace | None = None) -> NewOrder:
    """The order's terms (or a replace's new terms: as asked, or in flight) as the NewOrder the risk engine
    checks. A replace comes on the order's own session."""
    if replace is None:
        return NewOrder(session=order.session, cl_ord_id=order.cl_ord_id, symbol=order.symbol, side=order.side,
                        qty=order.qty, ord_type=order.ord_type, price=order.price, tif=order.tif,
                        account=order.account)
    return NewOrder(session=order.session, cl_ord_id=replace.cl_ord_id, symbol=order.symbol, side=order.side,
                    qty=replace.qty, ord_type=replace.ord_type, price=replace.price,
                    tif=replace.tif or order.tif, account=order.account)
