"""No child order left in doubt: liveness checks and reconciliation with venues. Pure: no I/O.

A child order waits for its venue's answer after each message we send it (the order, a cancel, a
replace). ``Child.asked_at`` says since when, ``Child.awaiting`` what for. On each ``Tick`` (the
engine's timer, about once a second):

1. a child whose venue has not answered within the venue's ``ack_timeout_s`` is asked for its state
   (OrderStatusRequest, ``VenueStatusRequest``);
2. if the status reply does not come within ``status_timeout_s`` either, the child (and so its order)
   is *in doubt*: logged, counted, listed by ``fixgw orders list --in-doubt``, and asked again every
   ``status_retry_s``. It stays in doubt until the venue says something about it or an operator closes
   it: the gateway never invents a state the venue did not report (a book that drifts from the venue's
   is worse than one that says it does not know).

A venue that logs on again (after a disconnect, or the gateway's restart) is asked the state of every
open child there (``reconcile_on_logon``). An operator can ask the same for one order or all
(``OperatorReconcile``). Each status reply is reconciled (``status_reply``): fills the gateway missed
are booked at the price the venue's AvgPx implies and reported to the client; the child takes the
state the venue reports; a venue that no longer knows an order it had acknowledged leaves it in doubt.

A venue's session-level Reject (35=3) or BusinessMessageReject (35=j) of one of our messages is an
answer too (``VenueMessageRejected``, in ``venue_reports``): of a NewOrderSingle, the child is rejected
(re-routed or rejected to the client, as any venue reject); of a cancel or a replace, it is refused
(the client gets an OrderCancelReject with the order's real state).

Here: the timer (``handle_tick``), asking a venue (``reconcile_venue``) and reconciling its answers
(``status_reply``, ``mass_status_reply``). The clocks themselves are kept by ``watch``; an operator's
reconcile and close are in ``operator``.

The same machinery is what a standby needs when it takes over: restore the orders, then reconcile
every open child with its venue.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from desk import bookings, undecided
from desk.common import child_fields, exec_report
from desk.lifecycle import child_done, confirm_replace, progress
from desk.risk_checks import risk_settle
from desk.watch import ask_status, doubt, heard
from orders.actions import Note, Outcome, VenueMassStatusRequest
from orders.commands import Tick, VenueCancelReject, VenueExecution
from orders.model import CxlRejCode, CxlRejResponseTo, ExecKind, OrdStatus
from orders.states import Child, Event, Order, TransitionRefused

if TYPE_CHECKING:
    from desk.state import DeskState


# what a venue's OrdStatus in a status reply means for a child that is no longer working there
_ENDED = {OrdStatus.CANCELED: Event.VENUE_CANCELED, OrdStatus.EXPIRED: Event.EXPIRE,
          OrdStatus.DONE_FOR_DAY: Event.DONE_FOR_DAY}
_WORKING = (OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED)
_PENDING = (OrdStatus.PENDING_NEW, OrdStatus.PENDING_CANCEL, OrdStatus.PENDING_REPLACE)


def handle_tick(core: DeskState, cmd: Tick) -> Outcome:
    out = Outcome()
    if not core.watch:
        return out
    now = core.clock()
    for key, order in list(core.watch.items()):
        child = order.child(key[0], key[1])
        if child is None or (not child.is_open and not child.in_doubt):
            core.watch.pop(key, None)
            continue
        venue = core.venues.get(child.venue)
        if venue is None:
            continue
        waiting = child.awaiting
        if waiting is None and not child.in_doubt:
            core.watch.pop(key, None)
            continue
        since = child.asked_at or now
        if child.asked_at is None:
            child.asked_at = now
        restored = core.restored_at
        if restored is not None and since < restored:
            since = restored  # asked before a restart: its clock starts again at the restart
        elapsed = (now - since).total_seconds()
        if not venue.up:
            if waiting is not None and elapsed >= venue.ack_timeout_s and not child.in_doubt:
                doubt(core, order, child, f"no answer to our {waiting} before {venue.name} disconnected; it is "
                                          "asked when the venue logs on again", out)
            continue
        if child.status_asks == 0:
            if elapsed >= venue.ack_timeout_s:
                out.warnings.append(Note(f"order {order.order_id}: {venue.name} has not answered our {waiting} "
                                         f"for child {child.child_id} in {elapsed:.1f} s; asking its status",
                                         **child_fields(order, child)))
                ask_status(core, order, child, out)
            continue
        if not child.in_doubt and elapsed >= venue.status_timeout_s:
            doubt(core, order, child, f"{venue.name} answered neither our {waiting or 'request'} nor "
                                      f"{child.status_asks} status request(s)", out)
        elif child.in_doubt and elapsed >= venue.status_retry_s:
            ask_status(core, order, child, out)
    return out


def reconcile_venue(core: DeskState, venue_name: str, out: Outcome, why: str) -> int:
    """Ask the state of every open (or in-doubt) child at a venue; returns how many were asked. A venue with
    ``mass_status`` is asked once, with an OrderMassStatusRequest; the others once per child."""
    venue = core.venues.get(venue_name)
    mass = venue is not None and venue.mass_status
    for req_id in [r for r, (v, _) in core.mass_status.items() if v == venue_name]:
        del core.mass_status[req_id]  # asked before it dropped: its answers will not come
    asked: set[str] = set()
    for order in list(core.orders.values()):
        for child in order.children:
            if child.venue == venue_name and (child.is_open or child.in_doubt):
                if mass:
                    child.asked_at = core.clock()
                    child.status_asks += 1
                    core.watch[(child.venue, child.child_id)] = order
                    out.changed.append(order)
                else:
                    ask_status(core, order, child, out)
                asked.add(child.child_id)
    if not asked:
        return 0
    if mass:
        req_id = core.new_id("MS")
        core.mass_status[req_id] = (venue_name, asked)
        out.actions.append(VenueMassStatusRequest(venue=venue_name, req_id=req_id))
        what = f"one OrderMassStatusRequest {req_id} for {len(asked)} open child order(s)"
    else:
        what = f"{len(asked)} OrderStatusRequest(s)"
    out.warnings.append(Note(f"{venue_name}: asking the state of its open orders ({why}): {what}",
                             venue=venue_name))
    out.events.append(("reconcile", f"{venue_name}: {what} sent ({why})"))
    return len(asked)


def mass_status_reply(core: DeskState, ev: VenueExecution) -> Outcome:
    """One report of our OrderMassStatusRequest: reconcile the child it names; after the last one, every
    child it did not name (the venue has no working order for it: filled, canceled, or never there) is
    asked on its own."""
    out = Outcome()
    pending = core.mass_status.get(ev.mass_status_req_id)
    order = core.by_child.get((ev.venue, ev.cl_ord_id)) if ev.cl_ord_id else None
    child = order.child(ev.venue, ev.cl_ord_id) if order is not None else None
    if child is not None:
        if pending is not None:
            pending[1].discard(child.child_id)
        status_reply(core, order, child, ev, out)
    elif ev.cl_ord_id and ev.venue_order_id != "NONE":
        out.warnings.append(Note(f"{ev.venue} reports a working order we do not know in mass status "
                                 f"{ev.mass_status_req_id}: ClOrdID {ev.cl_ord_id}, OrderID {ev.venue_order_id}",
                                 venue=ev.venue))
    if ev.last_report and pending is not None:
        del core.mass_status[ev.mass_status_req_id]
        for child_id in sorted(pending[1]):
            order = core.by_child.get((ev.venue, child_id))
            child = order.child(ev.venue, child_id) if order is not None else None
            if child is not None and (child.is_open or child.in_doubt):
                ask_status(core, order, child, out)
    return out


def status_reply(core: DeskState, order: Order, child: Child, ev: VenueExecution, out: Outcome) -> Outcome:
    """Reconcile a child with the state its venue reports (an answer to our OrderStatusRequest)."""
    view = ev.ord_status
    said = f"{ev.venue} reports {view.name.lower()}, CumQty {ev.cum_qty}"
    # a message a takeover could not tell was sent (desk.undecided): sent again if this shows it never arrived
    held = core.undecided.get((child.venue, child.child_id)) if core.undecided else None
    again = held is not None and undecided.send_again(held, child, ev)
    if held is not None and not undecided.still_held(view):
        del core.undecided[(child.venue, child.child_id)]
    if ev.venue_order_id and ev.venue_order_id != "NONE":
        child.venue_order_id = ev.venue_order_id
    if again and held.kind == undecided.NEW:
        undecided.resend(core, order, child, held, said, out)
        return out
    if view is OrdStatus.REJECTED and child.cum_qty == 0:
        if child.status is OrdStatus.PENDING_NEW:
            child.apply(Event.VENUE_REJECT)
            heard(core, order, child, out)
            note_diff(order, child, f"{said}: the venue does not have the order "
                                          f"({ev.text or 'no reason given'}); taken as rejected", out)
            child_done(core, order, child, Event.VENUE_REJECT, ev.venue,
                       f"the venue does not have the order: {ev.text or 'no reason given'}", out, ev.recv_ns)
            return out
    if view is OrdStatus.REJECTED:
        doubt(core, order, child, f"{said} ({ev.text or 'no reason given'}) while the gateway has it "
                                  f"{child.status.name.lower()} with CumQty {child.cum_qty}", out)
        return out
    # fills the gateway never heard of
    if ev.cum_qty > child.cum_qty:
        missing = ev.cum_qty - child.cum_qty
        px = None
        if ev.avg_px is not None and ev.avg_px > 0:
            try:
                px = (ev.cum_qty * ev.avg_px - child.notional) / missing
            except (InvalidOperation, ArithmeticError):
                px = None
        if px is None or px <= 0:
            doubt(core, order, child, f"{said} but the gateway booked {child.cum_qty}, and the reply has no "
                                      "usable AvgPx to book the difference at", out)
            return out
        px = px.quantize(Decimal("0.00000001")).normalize() if px.as_tuple().exponent < -8 else px
        note_diff(order, child, f"{said}: {missing} filled that the gateway had not booked; booked at "
                                      f"{px} (from AvgPx {ev.avg_px})", out)
        fill = VenueExecution(
            venue=ev.venue, cl_ord_id=child.cl_ord_id, orig_cl_ord_id=None, venue_order_id=ev.venue_order_id,
            exec_id=f"reconcile:{ev.exec_id}:{ev.cum_qty}", kind=ExecKind.TRADE, ord_status=view,
            symbol=order.symbol, side=order.side, last_qty=missing, last_px=px, cum_qty=ev.cum_qty,
            leaves_qty=ev.leaves_qty, text="fill found by reconciliation", recv_ns=ev.recv_ns)
        child.seen_exec_ids.add(fill.exec_id)
        bookings.venue_fill(core, order, child, fill, out)
    elif ev.cum_qty < child.cum_qty:
        doubt(core, order, child, f"{said} but the gateway booked {child.cum_qty}", out)
        return out
    if not child.is_open:
        heard(core, order, child, out)
        if order.is_open:
            progress(core, order, out, ev.recv_ns)
        return out
    if view in _WORKING:
        if child.status is OrdStatus.PENDING_NEW:
            child.apply(Event.VENUE_ACK)
            note_diff(order, child, f"{said}: its acknowledgement was lost; taken as working", out)
            if order.status is OrdStatus.PENDING_NEW:
                order.apply(Event.VENUE_ACK)
                out.actions.append(exec_report(order, ExecKind.NEW, recv_ns=ev.recv_ns))
        if child.pending_replace is not None and ev.cl_ord_id == child.pending_replace.cl_ord_id:
            note_diff(order, child, f"{said} under our replace's ClOrdID: the replace took effect", out)
            child.apply(Event.VENUE_REPLACED)
            if order.pending_replace is not None:
                order.apply(Event.VENUE_REPLACED)
                child.apply_replace()
                confirm_replace(core, order, out, ev.recv_ns)
                risk_settle(core, order)
            else:
                child.apply_replace()
        elif again:  # a takeover's cancel or replace the venue never got
            undecided.resend(core, order, child, held, said, out)
            return out
        elif child.pending_cancel is not None or child.pending_replace is not None:
            what = "cancel" if child.pending_cancel is not None else "replace"
            note_diff(order, child, f"{said}: our {what} was not taken", out)
            inner = bookings.handle_venue_cancel_reject(core, VenueCancelReject(
                venue=ev.venue, cl_ord_id=child.pending_cancel or child.pending_replace.cl_ord_id,
                orig_cl_ord_id=child.cl_ord_id, venue_order_id=ev.venue_order_id, reason=CxlRejCode.OTHER,
                text=f"the venue reports the order still working: our {what} was not taken",
                recv_ns=ev.recv_ns,
                response_to=CxlRejResponseTo.CANCEL if what == "cancel" else CxlRejResponseTo.REPLACE))
            out.actions.extend(inner.actions)
            out.warnings.extend(inner.warnings)
            out.events.extend(inner.events)
        heard(core, order, child, out)
        out.changed.append(order)
        return out
    event = _ENDED.get(view)
    if event is not None:
        try:
            child.apply(event)
        except TransitionRefused as exc:
            doubt(core, order, child, f"{said}, which the gateway cannot apply: {exc}", out)
            return out
        note_diff(order, child, f"{said}: taken as {child.status.name.lower()}", out)
        heard(core, order, child, out)
        child_done(core, order, child, event, ev.venue, ev.text or f"{view.name.lower()} at the venue", out,
                   ev.recv_ns)
        return out
    if view in _PENDING:  # the venue is still working on it: wait again
        child.asked_at = core.clock()
        out.changed.append(order)
        return out
    # e.g. Filled with fewer fills than the child's quantity and none missing: nothing to apply, so say so
    doubt(core, order, child, f"{said} while the gateway has it {child.status.name.lower()} with CumQty "
                              f"{child.cum_qty} of {child.qty}: the two cannot be reconciled", out)
    return out


def note_diff(order: Order, child: Child, text: str, out: Outcome) -> None:
    out.warnings.append(Note(f"reconciled order {order.order_id}, child {child.child_id}: {text}",
                             **child_fields(order, child)))
    out.events.append(("reconcile", f"{order.order_id} {child.venue} {child.child_id}: {text}"))
    out.changed.append(order)
