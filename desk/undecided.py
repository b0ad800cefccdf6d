"""Venue messages a takeover cannot tell were sent: the children they concern are held in doubt, asked about, and
then settled by the venue's answer or sent again. Pure: no I/O.

After a takeover (docs/failover.md) the successor's FIX stores are rebuilt from the journal, which may lack messages
the old active sent and never committed. A NewOrderSingle, cancel or replace that the state log decided and the
rebuilt store does not hold may or may not have reached the venue. Sending it again blindly could place an order
twice (the venue refuses the duplicate ClOrdID, and that refusal would then reject a child that is working) or
send a cancel or replace twice. So:

- ``handle_takeover_undecided`` (the ``TakeoverUndecided`` command, before any venue logs on; the rule is
  ``awaits``): a child whose state shows the venue answered that message (its acknowledgement, fills, the cancel's
  or replace's outcome) is left alone: the venue had it, and nothing is sent. Every other open child is held: put in
  doubt, with nothing sent for it, and asked its state (OrderStatusRequest) when its venue logs on (with the other
  open children if ``reconcile_on_logon``, else on its own: ``ask``). A client's cancel or replace of its order is
  refused until then (``holds``).
- ``send_again`` (on the status reply, before the ordinary reconciliation in desk/liveness.py; ``resend``):
  - a NewOrderSingle the venue does not know (OrdStatus Rejected with OrdRejReason 5, Unknown order) for a child
    still pending new with nothing filled: it was never placed, and the copy the old active may have written can
    no longer arrive (the successor's gap fill stands for its MsgSeqNum). It is sent now with the same ClOrdID and
    terms, and waits for its acknowledgement like any order;
  - a cancel or replace the venue's state shows not taken (the child still working under its old ClOrdID): sent
    again, with the same ClOrdID;
  - anything else is the ordinary reconciliation: the venue knows the order (its state is taken), the cancel or
    replace took effect (booked), a Rejected with another reason (the venue refused the order: a reject).
  A venue still working on it (a pending status) keeps the message held until its next answer.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from desk.common import child_fields, up
from desk.state import Undecided
from desk.watch import ask_status, doubt, expect
from orders.actions import Note, Outcome, VenueCancel, VenueNewOrder, VenueReplace
from orders.commands import TakeoverUndecided, VenueExecution
from orders.model import OrdStatus
from orders.states import Child, Order

if TYPE_CHECKING:
    from desk.state import DeskState

NEW, CANCEL, REPLACE = "new", "cancel", "replace"
_KIND = {"D": NEW, "F": CANCEL, "G": REPLACE}
_NAME = {NEW: "NewOrderSingle", CANCEL: "OrderCancelRequest", REPLACE: "OrderCancelReplaceRequest"}
_WORKING = (OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED)
_PENDING = (OrdStatus.PENDING_NEW, OrdStatus.PENDING_CANCEL, OrdStatus.PENDING_REPLACE)


def what(held: Undecided) -> str:
    """The held message, named for a log line: "NewOrderSingle T-1"."""
    return f"{_NAME[held.kind]} {held.cl_ord_id}"


# ------------------------------------------------------------------ the rules (pure decisions)
def concerned(order: Order | None, venue: str, msg_type: str, cl_ord_id: str) -> Child | None:
    """The child a venue message (MsgType, ClOrdID) was about: the order's child (D), or the child the cancel (F)
    or replace (G) was for (its ClOrdID is indexed to the child)."""
    if order is None or msg_type not in _KIND:
        return None
    return order.child(venue, cl_ord_id)


def awaits(msg_type: str, cl_ord_id: str, child: Child) -> Undecided | None:
    """The message to hold for ``child``, or None when the child's state shows its venue answered it (so the venue
    had it) or the child is finished (nothing is sent for it any more)."""
    if not child.is_open:
        return None
    kind = _KIND.get(msg_type)
    if kind == NEW:
        # no acknowledgement (it would have given the venue's OrderID), no fill: not answered. A child that is
        # pending a cancel or replace decided since is held too; only one still pending new can be sent again.
        answered = child.venue_order_id is not None or child.cum_qty > 0 or child.status not in _PENDING
    elif kind == CANCEL:
        answered = child.pending_cancel != cl_ord_id
    elif kind == REPLACE:
        answered = child.pending_replace is None or child.pending_replace.cl_ord_id != cl_ord_id
    else:
        return None
    return None if answered else Undecided(kind, cl_ord_id)


def send_again(held: Undecided, child: Child, ev: VenueExecution) -> bool:
    """Whether the venue's status reply ``ev`` shows ``held`` never reached it, so it is to be sent again (see the
    module); False: the ordinary reconciliation applies."""
    view = ev.ord_status
    if held.kind == NEW:
        return (view is OrdStatus.REJECTED and ev.unknown_order and child.status is OrdStatus.PENDING_NEW
                and child.cum_qty == 0 and child.child_id == held.cl_ord_id)
    if view not in _WORKING or not child.is_open:
        return False
    if held.kind == CANCEL:
        return child.pending_cancel == held.cl_ord_id
    p = child.pending_replace
    return p is not None and p.cl_ord_id == held.cl_ord_id and ev.cl_ord_id != held.cl_ord_id


def still_held(view: OrdStatus) -> bool:
    """Whether a status reply leaves a held message held: the venue is still working on the order (pending)."""
    return view in _PENDING


# ------------------------------------------------------------------ the desk's side
def handle_takeover_undecided(core: DeskState, cmd: TakeoverUndecided) -> Outcome:
    """Hold each child a takeover's undecided message concerns (see the module); ask those at a venue already up."""
    out = Outcome()
    for venue, msg_type, cl_ord_id in cmd.messages:
        order = core.by_child.get((venue, cl_ord_id))
        child = concerned(order, venue, msg_type, cl_ord_id)
        kind = _NAME.get(_KIND.get(msg_type, ""), msg_type)
        if child is None:
            out.warnings.append(Note(f"takeover: our {kind} {cl_ord_id} to {venue} is not in the journal and "
                                     "names no order the state log knows; not sent again", venue=venue))
            continue
        held = awaits(msg_type, cl_ord_id, child)
        if held is None:
            out.warnings.append(Note(f"takeover: our {kind} {cl_ord_id} to {venue} (order {order.order_id}) is not "
                                     "in the journal, but the child's state shows the venue had it (or the child is "
                                     "finished); not sent again", **child_fields(order, child)))
            continue
        core.undecided[(venue, child.child_id)] = held
        doubt(core, order, child, f"the previous active instance decided our {what(held)} and the journal does not "
                                  f"show it sent; {venue} is asked whether it has it before it is sent again", out)
        if up(core, venue):
            ask_status(core, order, child, out)
    return out


def ask(core: DeskState, venue: str, out: Outcome) -> int:
    """Ask the state of each held child at ``venue`` (its session logged on, and it does not reconcile every open
    child then); returns how many were asked."""
    n = 0
    for (v, child_id) in list(core.undecided):
        order = core.by_child.get((v, child_id)) if v == venue else None
        child = order.child(v, child_id) if order is not None else None
        if child is not None:
            ask_status(core, order, child, out)
            n += 1
    return n


def holds(core: DeskState, order: Order) -> str | None:
    """The venue of a child of ``order`` that is held (the gateway does not act on the order until it has asked), or
    None."""
    for c in order.children:
        if (c.venue, c.child_id) in core.undecided:
            return c.venue
    return None


def resend(core: DeskState, order: Order, child: Child, held: Undecided, said: str, out: Outcome) -> None:
    """Send ``held`` again, with its ClOrdID and the child's terms, and wait for its answer like any message."""
    venue = child.venue
    if held.kind == NEW:
        action = VenueNewOrder(venue=venue, cl_ord_id=held.cl_ord_id, symbol=order.symbol, side=order.side,
                               qty=child.qty, ord_type=child.ord_type, price=child.price, stop_px=order.stop_px,
                               tif=child.tif, account=order.account)
        why = "the venue does not know the order: it was never placed; sent now with the same ClOrdID"
    elif held.kind == CANCEL:
        action = VenueCancel(venue=venue, cl_ord_id=held.cl_ord_id, orig_cl_ord_id=child.cl_ord_id,
                             venue_order_id=child.venue_order_id, symbol=order.symbol, side=order.side, qty=child.qty)
        why = "the venue has the order working: our cancel never reached it; sent again"
    else:
        p = child.pending_replace
        action = VenueReplace(venue=venue, cl_ord_id=held.cl_ord_id, orig_cl_ord_id=child.cl_ord_id,
                              venue_order_id=child.venue_order_id, symbol=order.symbol, side=order.side, qty=p.qty,
                              ord_type=p.ord_type, price=p.price, tif=p.tif, account=order.account)
        why = "the venue has the order working under its old terms: our replace never reached it; sent again"
    out.actions.append(action)
    expect(core, order, child)  # its clock starts again: answered, or asked about, like any message
    child.in_doubt = None
    text = f"{said}: our {what(held)} after the takeover: {why}"
    out.warnings.append(Note(f"reconciled order {order.order_id}, child {child.child_id}: {text}",
                             **child_fields(order, child)))
    out.events.append(("reconcile", f"{order.order_id} {venue} {child.child_id}: {text}"))
    out.changed.append(order)
