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
(``OperatorReconcile``). Each status reply is reconciled (``_status_reply``): fills the gateway missed
are booked at the price the venue's AvgPx implies and reported to the client; the child takes the
state the venue reports; a venue that no longer knows an order it had acknowledged leaves it in doubt.

A venue's session-level Reject (35=3) or BusinessMessageReject (35=j) of one of our messages is an
answer too (``VenueMessageRejected``): of a NewOrderSingle, the child is rejected (re-routed or
rejected to the client, as any venue reject); of a cancel or a replace, it is refused (the client
gets an OrderCancelReject with the order's real state).

The same machinery is what a standby needs when it takes over: restore the orders, then reconcile
every open child with its venue.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from routing.model import (
    CxlRejCode,
    CxlRejResponseTo,
    ExecKind,
    Note,
    OperatorClose,
    OperatorReconcile,
    OrdStatus,
    Outcome,
    Tick,
    VenueCancelReject,
    VenueExecution,
    VenueMassStatusRequest,
    VenueMessageRejected,
    VenueStatusRequest,
)
from routing.orders import Child, Event, Order, TransitionRefused

# what a venue's OrdStatus in a status reply means for a child that is no longer working there
_ENDED = {OrdStatus.CANCELED: Event.VENUE_CANCELED, OrdStatus.EXPIRED: Event.EXPIRE,
          OrdStatus.DONE_FOR_DAY: Event.DONE_FOR_DAY}
_WORKING = (OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED)
_PENDING = (OrdStatus.PENDING_NEW, OrdStatus.PENDING_CANCEL, OrdStatus.PENDING_REPLACE)


def _ids(order: Order, child: Child | None = None) -> dict:
    ids = {"order_id": order.order_id, "session": order.session, "cl_ord_id": order.cl_ord_id}
    if child is not None:
        ids["venue"] = child.venue
    return ids


class VenueLiveness:
    """The core's handlers for liveness and reconciliation (mixed into ``routing.core.Core``, whose order
    book, venues, clock and reporting they use)."""

    # ------------------------------------------------------------------ bookkeeping
    def _expect(self, order: Order, child: Child) -> None:
        """We just sent ``child``'s venue something it must answer: start its clock."""
        child.asked_at = self.clock()
        child.status_asks = 0
        self._watch[(child.venue, child.child_id)] = order

    def _heard(self, order: Order, child: Child, out: Outcome) -> None:
        """The venue said something about ``child`` that the gateway applied: if it no longer waits for
        anything, it is settled (and no longer in doubt)."""
        if child.awaiting is not None:
            return
        child.asked_at = None
        child.status_asks = 0
        if child.in_doubt:
            out.warnings.append(Note(f"order {order.order_id}: child {child.child_id} at {child.venue} is no "
                                     f"longer in doubt: the venue reports it {child.status.name.lower()}",
                                     **_ids(order, child)))
            out.events.append(("reconcile", f"{order.order_id} {child.venue} {child.child_id}: resolved, "
                                            f"{child.status.name.lower()} (was in doubt: {child.in_doubt})"))
            child.in_doubt = None
            out.changed.append(order)
        self._watch.pop((child.venue, child.child_id), None)

    def _doubt(self, order: Order, child: Child, why: str, out: Outcome) -> None:
        if child.in_doubt == why:
            return
        first = child.in_doubt is None
        child.in_doubt = why
        self._watch[(child.venue, child.child_id)] = order
        out.changed.append(order)
        out.warnings.append(Note(f"order {order.order_id} IN DOUBT: child {child.child_id} at {child.venue}: {why}",
                                 **_ids(order, child)))
        out.events.append(("reconcile", f"{order.order_id} {child.venue} {child.child_id}: in doubt: {why}"))
        if first:
            out.in_doubt.append((order.order_id, child.venue))

    def in_doubt_orders(self) -> list[Order]:
        """Orders in doubt (every one has a watched child: no scan of the whole book)."""
        seen: dict[str, Order] = {}
        for order in list(self._watch.values()):
            if order.order_id not in seen and order.in_doubt:
                seen[order.order_id] = order
        return list(seen.values())

    def _rewatch(self) -> None:
        """After a restore: watch every child that waits for its venue or is in doubt. Their clocks restart
        now: each venue is asked about them when it logs on (``reconcile_on_logon``), and only a venue that
        stays away longer than its ``ack_timeout_s`` leaves them in doubt."""
        self._watch = {}
        self._restored_at = self.clock()
        for order in self.orders.values():
            for child in order.children:
                if child.in_doubt or (child.awaiting is not None and child.is_open):
                    self._watch[(child.venue, child.child_id)] = order

    def _ask_status(self, order: Order, child: Child, out: Outcome) -> None:
        child.asked_at = self.clock()
        child.status_asks += 1
        self._watch[(child.venue, child.child_id)] = order
        out.changed.append(order)
        out.actions.append(VenueStatusRequest(venue=child.venue, cl_ord_id=child.cl_ord_id or child.child_id,
                                              venue_order_id=child.venue_order_id, symbol=order.symbol,
                                              side=order.side))

    # ------------------------------------------------------------------ the timer
    def _tick(self, cmd: Tick) -> Outcome:
        out = Outcome()
        if not self._watch:
            return out
        now = self.clock()
        for key, order in list(self._watch.items()):
            child = order.child(key[0], key[1])
            if child is None or (not child.is_open and not child.in_doubt):
                self._watch.pop(key, None)
                continue
            venue = self.venues.get(child.venue)
            if venue is None:
                continue
            waiting = child.awaiting
            if waiting is None and not child.in_doubt:
                self._watch.pop(key, None)
                continue
            since = child.asked_at or now
            if child.asked_at is None:
                child.asked_at = now
            restored = self._restored_at
            if restored is not None and since < restored:
                since = restored  # asked before a restart: its clock starts again at the restart
            elapsed = (now - since).total_seconds()
            if not venue.up:
                if waiting is not None and elapsed >= venue.ack_timeout_s and not child.in_doubt:
                    self._doubt(order, child, f"no answer to our {waiting} before {venue.name} disconnected; it is "
                                              "asked when the venue logs on again", out)
                continue
            if child.status_asks == 0:
                if elapsed >= venue.ack_timeout_s:
                    out.warnings.append(Note(f"order {order.order_id}: {venue.name} has not answered our {waiting} "
                                             f"for child {child.child_id} in {elapsed:.1f} s; asking its status",
                                             **_ids(order, child)))
                    self._ask_status(order, child, out)
                continue
            if not child.in_doubt and elapsed >= venue.status_timeout_s:
                self._doubt(order, child, f"{venue.name} answered neither our {waiting or 'request'} nor "
                                          f"{child.status_asks} status request(s)", out)
            elif child.in_doubt and elapsed >= venue.status_retry_s:
                self._ask_status(order, child, out)
        return out

    # ------------------------------------------------------------------ asking
    def _reconcile_venue(self, venue_name: str, out: Outcome, why: str) -> int:
        """Ask the state of every open (or in-doubt) child at a venue; returns how many were asked. A venue with
        ``mass_status`` is asked once, with an OrderMassStatusRequest; the others once per child."""
        venue = self.venues.get(venue_name)
        mass = venue is not None and venue.mass_status
        for req_id in [r for r, (v, _) in self._mass.items() if v == venue_name]:
            del self._mass[req_id]  # asked before it dropped: its answers will not come
        asked: set[str] = set()
        for order in list(self.orders.values()):
            for child in order.children:
                if child.venue == venue_name and (child.is_open or child.in_doubt):
                    if mass:
                        child.asked_at = self.clock()
                        child.status_asks += 1
                        self._watch[(child.venue, child.child_id)] = order
                        out.changed.append(order)
                    else:
                        self._ask_status(order, child, out)
                    asked.add(child.child_id)
        if not asked:
            return 0
        if mass:
            req_id = f"{self._id_prefix}-MS{next(self._ids)}"
            self._mass[req_id] = (venue_name, asked)
            out.actions.append(VenueMassStatusRequest(venue=venue_name, req_id=req_id))
            what = f"one OrderMassStatusRequest {req_id} for {len(asked)} open child order(s)"
        else:
            what = f"{len(asked)} OrderStatusRequest(s)"
        out.warnings.append(Note(f"{venue_name}: asking the state of its open orders ({why}): {what}",
                                 venue=venue_name))
        out.events.append(("reconcile", f"{venue_name}: {what} sent ({why})"))
        return len(asked)

    def _mass_status_reply(self, ev: VenueExecution) -> Outcome:
        """One report of our OrderMassStatusRequest: reconcile the child it names; after the last one, every
        child it did not name (the venue has no working order for it: filled, canceled, or never there) is
        asked on its own."""
        out = Outcome()
        pending = self._mass.get(ev.mass_status_req_id)
        order = self._by_child.get((ev.venue, ev.cl_ord_id)) if ev.cl_ord_id else None
        child = order.child(ev.venue, ev.cl_ord_id) if order is not None else None
        if child is not None:
            if pending is not None:
                pending[1].discard(child.child_id)
            self._status_reply(order, child, ev, out)
        elif ev.cl_ord_id and ev.venue_order_id != "NONE":
            out.warnings.append(Note(f"{ev.venue} reports a working order we do not know in mass status "
                                     f"{ev.mass_status_req_id}: ClOrdID {ev.cl_ord_id}, OrderID {ev.venue_order_id}",
                                     venue=ev.venue))
        if ev.last_report and pending is not None:
            del self._mass[ev.mass_status_req_id]
            for child_id in sorted(pending[1]):
                order = self._by_child.get((ev.venue, child_id))
                child = order.child(ev.venue, child_id) if order is not None else None
                if child is not None and (child.is_open or child.in_doubt):
                    self._ask_status(order, child, out)
        return out

    def _operator_reconcile(self, cmd: OperatorReconcile) -> Outcome:
        out = Outcome()
        if cmd.order_id is not None:
            order = self._operator_order(cmd.order_id, out)
            if order is None:
                return out
            orders = [order]
        else:
            orders = [o for o in self.orders.values() if o.is_open or o.in_doubt]
        asked, skipped = [], []
        for order in orders:
            for child in order.children:
                if not (child.is_open or child.in_doubt):
                    continue
                if self._up(child.venue):
                    self._ask_status(order, child, out)
                    asked.append({"order_id": order.order_id, "venue": child.venue, "child": child.child_id})
                else:
                    skipped.append({"order_id": order.order_id, "venue": child.venue, "child": child.child_id,
                                    "why": f"{child.venue} is not connected"})
        out.events.append(("reconcile", f"operator {cmd.operator}: reconcile {cmd.order_id or 'all'}: "
                                        f"{len(asked)} status request(s) sent, {len(skipped)} venue(s) down"))
        out.result = {"ok": True, "asked": asked, "skipped": skipped}
        return out

    def _operator_close(self, cmd: OperatorClose) -> Outcome:
        """Force an order to Canceled and tell the client (unsolicited ExecutionReport): the operator's way out
        of an order in doubt, settled with the venue by other means. A child still open at a connected venue
        is sent a cancel first, so nothing the gateway closed keeps working there unnoticed; anything the
        venue reports for it afterwards is logged, not booked."""
        out = Outcome()
        order = self._operator_order(cmd.order_id, out)
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
            if child.is_open and self._up(child.venue):
                self._send_cancel(order, child, out)
                canceled_at.append(child.venue)
            if child.is_open:
                child.status = OrdStatus.CANCELED
            child.pending_cancel = None
            child.pending_replace = None
            child.in_doubt = None
            child.asked_at = None
            self._watch.pop((child.venue, child.child_id), None)
        order.cancel_open = False
        order.pending_replace = None
        order.replace_mode = None
        order.pending_cl_ord_id = None
        text = f"closed by operator {cmd.operator}: {cmd.reason.strip()}"
        if order.is_open:
            order.status = OrdStatus.CANCELED
            self._risk_settle(order)
            out.actions.append(self._report(order, ExecKind.CANCELED, text=text))
        # (an order that had ended, in doubt about what a venue reported after, keeps its end: the client knows it)
        out.changed.append(order)
        out.warnings.append(Note(f"order {order.order_id} {text} (was {was.name.lower()}"
                                 f"{'; in doubt: ' + doubt if doubt else ''}); cancel sent to "
                                 f"{', '.join(canceled_at) or 'no venue'}", **_ids(order)))
        out.events.append(("operator", f"close {order.order_id} by {cmd.operator}: {cmd.reason.strip()} (was "
                                       f"{was.name.lower()}{'; in doubt: ' + doubt if doubt else ''})"))
        out.result = {"ok": True, "order_id": order.order_id, "was": was.name.lower(), "in_doubt": doubt,
                      "cancel_sent_to": canceled_at}
        return out

    # ------------------------------------------------------------------ answers
    def _venue_message_rejected(self, cmd: VenueMessageRejected) -> Outcome:
        out = Outcome()
        kind = "session-level Reject (35=3)" if cmd.session_level else "BusinessMessageReject (35=j)"
        order = self._by_child.get((cmd.venue, cmd.cl_ord_id)) if cmd.cl_ord_id else None
        child = order.child(cmd.venue, cmd.cl_ord_id) if order is not None else None
        if child is None:
            out.warnings.append(Note(f"{cmd.venue} sent a {kind} of our {cmd.ref_msg_type or '?'} MsgSeqNum "
                                     f"{cmd.ref_seq or '?'} that names no order we know: {cmd.text}",
                                     venue=cmd.venue))
            return out
        text = f"{kind}: {cmd.text}"
        if cmd.ref_msg_type == "D":
            if child.status is not OrdStatus.PENDING_NEW:
                out.warnings.append(Note(f"order {order.order_id}: {cmd.venue} rejected child {child.child_id}'s "
                                         f"NewOrderSingle after reporting it {child.status.name.lower()}; ignored: "
                                         f"{text}", **_ids(order, child)))
                return out
            child.apply(Event.VENUE_REJECT)
            self._heard(order, child, out)
            self._child_done(order, child, Event.VENUE_REJECT, cmd.venue, text, out, cmd.recv_ns)
            return out
        if cmd.ref_msg_type in ("F", "G"):
            replace = cmd.ref_msg_type == "G"
            inner = self._venue_cancel_reject(VenueCancelReject(
                venue=cmd.venue, cl_ord_id=cmd.cl_ord_id, orig_cl_ord_id=child.cl_ord_id, venue_order_id=None,
                reason=CxlRejCode.OTHER, text=text, recv_ns=cmd.recv_ns,
                response_to=CxlRejResponseTo.REPLACE if replace else CxlRejResponseTo.CANCEL))
            inner.changed.append(order)
            return inner
        if cmd.ref_msg_type == "H":
            out.warnings.append(Note(f"order {order.order_id}: {cmd.venue} refused our status request for "
                                     f"{child.child_id}: {text}", **_ids(order, child)))
            if child.status_asks:
                self._doubt(order, child, f"{cmd.venue} refused our status request: {cmd.text}", out)
            return out
        out.warnings.append(Note(f"order {order.order_id}: {cmd.venue} sent a {kind} of our "
                                 f"{cmd.ref_msg_type or '?'}: {cmd.text}", **_ids(order, child)))
        return out

    def _status_reply(self, order: Order, child: Child, ev: VenueExecution, out: Outcome) -> Outcome:
        """Reconcile a child with the state its venue reports (an answer to our OrderStatusRequest)."""
        view = ev.ord_status
        said = f"{ev.venue} reports {view.name.lower()}, CumQty {ev.cum_qty}"
        if ev.venue_order_id and ev.venue_order_id != "NONE":
            child.venue_order_id = ev.venue_order_id
        if view is OrdStatus.REJECTED and child.cum_qty == 0:
            if child.status is OrdStatus.PENDING_NEW:
                child.apply(Event.VENUE_REJECT)
                self._heard(order, child, out)
                self._note_diff(order, child, f"{said}: the venue does not have the order "
                                              f"({ev.text or 'no reason given'}); taken as rejected", out)
                self._child_done(order, child, Event.VENUE_REJECT, ev.venue,
                                 f"the venue does not have the order: {ev.text or 'no reason given'}", out, ev.recv_ns)
                return out
        if view is OrdStatus.REJECTED:
            self._doubt(order, child, f"{said} ({ev.text or 'no reason given'}) while the gateway has it "
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
                self._doubt(order, child, f"{said} but the gateway booked {child.cum_qty}, and the reply has no "
                                          "usable AvgPx to book the difference at", out)
                return out
            px = px.quantize(Decimal("0.00000001")).normalize() if px.as_tuple().exponent < -8 else px
            self._note_diff(order, child, f"{said}: {missing} filled that the gateway had not booked; booked at "
                                          f"{px} (from AvgPx {ev.avg_px})", out)
            fill = VenueExecution(
                venue=ev.venue, cl_ord_id=child.cl_ord_id, orig_cl_ord_id=None, venue_order_id=ev.venue_order_id,
                exec_id=f"reconcile:{ev.exec_id}:{ev.cum_qty}", kind=ExecKind.TRADE, ord_status=view,
                symbol=order.symbol, side=order.side, last_qty=missing, last_px=px, cum_qty=ev.cum_qty,
                leaves_qty=ev.leaves_qty, text="fill found by reconciliation", recv_ns=ev.recv_ns)
            child.seen_exec_ids.add(fill.exec_id)
            self._venue_fill(order, child, fill, out)
        elif ev.cum_qty < child.cum_qty:
            self._doubt(order, child, f"{said} but the gateway booked {child.cum_qty}", out)
            return out
        if not child.is_open:
            self._heard(order, child, out)
            if order.is_open:
                self._progress(order, out, ev.recv_ns)
            return out
        if view in _WORKING:
            if child.status is OrdStatus.PENDING_NEW:
                child.apply(Event.VENUE_ACK)
                self._note_diff(order, child, f"{said}: its acknowledgement was lost; taken as working", out)
                if order.status is OrdStatus.PENDING_NEW:
                    order.apply(Event.VENUE_ACK)
                    out.actions.append(self._report(order, ExecKind.NEW, recv_ns=ev.recv_ns))
            if child.pending_replace is not None and ev.cl_ord_id == child.pending_replace.cl_ord_id:
                self._note_diff(order, child, f"{said} under our replace's ClOrdID: the replace took effect", out)
                child.apply(Event.VENUE_REPLACED)
                if order.pending_replace is not None:
                    order.apply(Event.VENUE_REPLACED)
                    child.apply_replace()
                    self._confirm_replace(order, out, ev.recv_ns)
                    self._risk_settle(order)
                else:
                    child.apply_replace()
            elif child.pending_cancel is not None or child.pending_replace is not None:
                what = "cancel" if child.pending_cancel is not None else "replace"
                self._note_diff(order, child, f"{said}: our {what} was not taken", out)
                inner = self._venue_cancel_reject(VenueCancelReject(
                    venue=ev.venue, cl_ord_id=child.pending_cancel or child.pending_replace.cl_ord_id,
                    orig_cl_ord_id=child.cl_ord_id, venue_order_id=ev.venue_order_id, reason=CxlRejCode.OTHER,
                    text=f"the venue reports the order still working: our {what} was not taken",
                    recv_ns=ev.recv_ns,
                    response_to=CxlRejResponseTo.CANCEL if what == "cancel" else CxlRejResponseTo.REPLACE))
                out.actions.extend(inner.actions)
                out.warnings.extend(inner.warnings)
                out.events.extend(inner.events)
            self._heard(order, child, out)
            out.changed.append(order)
            return out
        event = _ENDED.get(view)
        if event is not None:
            try:
                child.apply(event)
            except TransitionRefused as exc:
                self._doubt(order, child, f"{said}, which the gateway cannot apply: {exc}", out)
                return out
            self._note_diff(order, child, f"{said}: taken as {child.status.name.lower()}", out)
            self._heard(order, child, out)
            self._child_done(order, child, event, ev.venue, ev.text or f"{view.name.lower()} at the venue", out,
                             ev.recv_ns)
            return out
        if view in _PENDING:  # the venue is still working on it: wait again
            child.asked_at = self.clock()
            out.changed.append(order)
            return out
        # e.g. Filled with fewer fills than the child's quantity and none missing: nothing to apply, so say so
        self._doubt(order, child, f"{said} while the gateway has it {child.status.name.lower()} with CumQty "
                                  f"{child.cum_qty} of {child.qty}: the two cannot be reconciled", out)
        return out

    def _note_diff(self, order: Order, child: Child, text: str, out: Outcome) -> None:
        out.warnings.append(Note(f"reconciled order {order.order_id}, child {child.child_id}: {text}",
                                 **_ids(order, child)))
        out.events.append(("reconcile", f"{order.order_id} {child.venue} {child.child_id}: {text}"))
        out.changed.append(order)

