"""Operator commands: kill switch, risk rules reload, cancel, reconcile and close of orders."""
from __future__ import annotations

from typing import TYPE_CHECKING

from desk.cancel import cancel_all, send_cancel
from desk.common import child_fields, exec_report, up
from desk.risk_checks import drop_pending_replace, risk_settle
from desk.watch import ask_status
from orders.actions import Note, Outcome
from orders.commands import KillSwitch, OperatorCancel, OperatorClose, OperatorReconcile, ReloadRisk
from orders.model import ExecKind, OrdStatus
from orders.states import Order

if TYPE_CHECKING:
    from desk.state import DeskState

_KILL_SCOPES = {"global": None, "session": "session", "account": "account", "symbol": "symbol"}  # scope -> Order field


def handle_kill_switch(core: DeskState, cmd: KillSwitch) -> Outcome:
    out = Outcome()
    if core.risk is None:
        out.result = {"ok": False, "error": "risk checks are off: no [risk] rules_file is configured"}
        return out
    if cmd.scope not in _KILL_SCOPES:
        out.result = {"ok": False, "error": f"unknown kill-switch scope {cmd.scope!r} "
                                            "(use global, session, account or symbol)"}
        return out
    if cmd.scope != "global" and not cmd.key:
        out.result = {"ok": False, "error": f"a {cmd.scope} kill switch needs the {cmd.scope} it applies to"}
        return out
    if not cmd.engage:
        released = core.risk.unkill(core.risk_state, cmd.scope, cmd.key)
        out.warnings.append(Note(f"kill switch {cmd.scope} {cmd.key} released by {cmd.operator}",
                                  operator=cmd.operator))
        out.result = {"ok": True, "released": released}
        return out
    core.risk.kill(core.risk_state, cmd.scope, cmd.key, reduce_only=cmd.reduce_only)
    canceled = 0
    if cmd.cancel_open:
        attr = _KILL_SCOPES[cmd.scope]
        targets = [o for o in core.orders.values()
                   if o.is_open and (attr is None or getattr(o, attr) == cmd.key)]
        canceled = cancel_all(core, targets, out, f"kill switch {cmd.scope} {cmd.key}".rstrip())
    out.warnings.append(Note(f"kill switch {cmd.scope} {cmd.key} engaged by {cmd.operator}"
                             f"{' (reduce-only)' if cmd.reduce_only else ''}; {canceled} open order(s) canceled",
                             operator=cmd.operator))
    out.result = {"ok": True, "canceled": canceled}
    return out


def operator_order(core: DeskState, order_id: str, out: Outcome) -> Order | None:
    """The order an operator command names, or None with the refusal in ``out.result``."""
    order = core.orders.get(order_id)
    if order is None:
        out.result = {"ok": False, "error": f"unknown order {order_id}"}
    return order


def handle_operator_cancel(core: DeskState, cmd: OperatorCancel) -> Outcome:
    out = Outcome()
    if cmd.order_id is not None:
        order = operator_order(core, cmd.order_id, out)
        if order is None:
            return out
        if not order.is_open:
            out.result = {"ok": False, "error": f"order {cmd.order_id} is {order.status.name.lower()}: "
                                                "nothing to cancel"}
            return out
        targets = [order]
    else:
        targets = [o for o in core.orders.values() if o.is_open
                   and all(v is None or getattr(o, k) == v
                           for k, v in (("session", cmd.session), ("account", cmd.account),
                                        ("symbol", cmd.symbol)))]
    n = cancel_all(core, targets, out, f"operator request ({cmd.operator})")
    out.result = {"ok": True, "canceled": n}
    return out


def handle_reload_risk(core: DeskState, cmd: ReloadRisk) -> Outcome:
    out = Outcome()
    if core.risk is None:
        out.result = {"ok": False, "error": "risk checks are off: no [risk] rules_file is configured"}
        return out
    core.risk.reload(cmd.rules)
    out.warnings.append(f"risk rules reloaded from {cmd.source}")
    out.result = {"ok": True, "source": cmd.source}
    return out


def handle_operator_reconcile(core: DeskState, cmd: OperatorReconcile) -> Outcome:
    out = Outcome()
    if cmd.order_id is not None:
        order = operator_order(core, cmd.order_id, out)
        if order is None:
            return out
        orders = [order]
    else:
        orders = [o for o in core.orders.values() if o.is_open or o.in_doubt]
    asked, skipped = [], []
    for order in orders:
        for child in order.children:
            if not (child.is_open or child.in_doubt):
                continue
            if up(core, child.venue):
                ask_status(core, order, child, out)
                asked.append({"order_id": order.order_id, "venue": child.venue, "child": child.child_id})
            else:
                skipped.append({"order_id": order.order_id, "venue": child.venue, "child": child.child_id,
                                "why": f"{child.venue} is not connected"})
    out.events.append(("reconcile", f"operator {cmd.operator}: reconcile {cmd.order_id or 'all'}: "
                                    f"{len(asked)} status request(s) sent, {len(skipped)} venue(s) down"))
    out.result = {"ok": True, "asked": asked, "skipped": skipped}
    return out


def handle_operator_close(core: DeskState, cmd: OperatorClose) -> Outcome:
    """Force an order to Canceled and tell the client (unsolicited ExecutionReport): the operator's way out
    of an order in doubt, settled with the venue by other means. A child still open at a connected venue
    is sent a cancel first, so nothing the gateway closed keeps working there unnoticed; anything the
    venue reports for it afterwards is logged, not booked."""
    out = Outcome()
    order = operator_order(core, cmd.order_id, out)
    if order is None:
        return out
    if not order.is_open and not order.in_doubt:
        out.result = {"ok": False, "error": f"order {cmd.order_id} is already {order.status.name.lower()}: "
                                            "nothing to close"}
        return out
    if not cmd.reason.strip():
        out.result = {"ok": False, "error": "a reason is required to close an order"}
        return out
    was, doubt = order.status, order.in_doubt
    canceled_at = []
    for child in order.children:
        if child.is_open and up(core, child.venue):
            send_cancel(core, order, child, out)
            canceled_at.append(child.venue)
        if child.is_open:
            child.status = OrdStatus.CANCELED
        child.pending_cancel = None
        child.pending_replace = None
        child.in_doubt = None
        child.asked_at = None
        core.watch.pop((child.venue, child.child_id), None)
    order.cancel_open = False
    drop_pending_replace(core, order)
    order.pending_cl_ord_id = None
    text = f"closed by operator {cmd.operator}: {cmd.reason.strip()}"
    if order.is_open:
        order.status = OrdStatus.CANCELED
        risk_settle(core, order)
        out.actions.append(exec_report(order, ExecKind.CANCELED, text=text))
    # (an order that had ended, in doubt about what a venue reported after, keeps its end: the client knows it)
    out.changed.append(order)
    out.warnings.append(Note(f"order {order.order_id} {text} (was {was.name.lower()}"
                             f"{'; in doubt: ' + doubt if doubt else ''}); cancel sent to "
                             f"{', '.join(canceled_at) or 'no venue'}", **child_fields(order)))
    out.events.append(("operator", f"close {order.order_id} by {cmd.operator}: {cmd.reason.strip()} (was "
                                   f"{was.name.lower()}{'; in doubt: ' + doubt if doubt else ''})"))
    out.result = {"ok": True, "order_id": order.order_id, "was": was.name.lower(), "in_doubt": doubt,
                  "cancel_sent_to": canceled_at}
    return out
