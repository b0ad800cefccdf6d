"""Children awaiting their venue's answer: start a clock, settle it, put a child in doubt, ask its status."""
from __future__ import annotations

from typing import TYPE_CHECKING

from desk.common import child_fields
from orders.actions import Note, Outcome, VenueStatusRequest
from orders.states import Child, Order

if TYPE_CHECKING:
    from desk.state import DeskState


def expect(core: DeskState, order: Order, child: Child) -> None:
    """We just sent ``child``'s venue something it must answer: start its clock."""
    child.asked_at = core.clock()
    child.status_asks = 0
    core.watch[(child.venue, child.child_id)] = order


def heard(core: DeskState, order: Order, child: Child, out: Outcome) -> None:
    """The venue said something about ``child`` that the gateway applied: if it no longer waits for
    anything, it is settled (and no longer in doubt)."""
    if child.awaiting is not None:
        return
    if core.undecided:  # nothing awaited: nothing a takeover held for it is left to decide (desk.undecided)
        core.undecided.pop((child.venue, child.child_id), None)
    child.asked_at = None
    child.status_asks = 0
    if child.in_doubt:
        out.warnings.append(Note(f"order {order.order_id}: child {child.child_id} at {child.venue} is no "
                                 f"longer in doubt: the venue reports it {child.status.name.lower()}",
                                 **child_fields(order, child)))
        out.events.append(("reconcile", f"{order.order_id} {child.venue} {child.child_id}: resolved, "
                                        f"{child.status.name.lower()} (was in doubt: {child.in_doubt})"))
        child.in_doubt = None
        out.changed.append(order)
    core.watch.pop((child.venue, child.child_id), None)


def doubt(core: DeskState, order: Order, child: Child, why: str, out: Outcome) -> None:
    if child.in_doubt == why:
        return
    first = child.in_doubt is None
    child.in_doubt = why
    core.watch[(child.venue, child.child_id)] = order
    out.changed.append(order)
    out.warnings.append(Note(f"order {order.order_id} IN DOUBT: child {child.child_id} at {child.venue}: {why}",
                             **child_fields(order, child)))
    out.events.append(("reconcile", f"{order.order_id} {child.venue} {child.child_id}: in doubt: {why}"))
    if first:
        out.in_doubt.append((order.order_id, child.venue))


def rewatch(core: DeskState) -> None:
    """After a restore: watch every child that waits for its venue or is in doubt. Their clocks restart
    now: each venue is asked about them when it logs on (``reconcile_on_logon``), and only a venue that
    stays away longer than its ``ack_timeout_s`` leaves them in doubt."""
    core.watch = {}
    core.restored_at = core.clock()
    for order in core.orders.values():
        for child in order.children:
            if child.in_doubt or (child.awaiting is not None and child.is_open):
                core.watch[(child.venue, child.child_id)] = order


def ask_status(core: DeskState, order: Order, child: Child, out: Outcome) -> None:
    child.asked_at = core.clock()
    child.status_asks += 1
    core.watch[(child.venue, child.child_id)] = order
    out.changed.append(order)
    out.actions.append(VenueStatusRequest(venue=child.venue, cl_ord_id=child.cl_ord_id or child.child_id,
                                          venue_order_id=child.venue_order_id, symbol=order.symbol,
                                          side=order.side))
