"""The rules of a parent order over its children: what a change to a child means for the order the client sees.

A client's order (the parent, ``Order``) is placed as child orders at venues (``Child``). These objects
decide, from the order's state alone, what comes next; the desk (desk/lifecycle.py) carries the decision
out (routes again, settles risk, writes the client's reports). No I/O, no routing, no risk here.

- ``ChildLifecycle.release``: a child stopped working without filling all of it; what it leaves undone.
- ``ParentLifecycle.next_step``: after any change to a child, whether the order waits, answers a cancel
  or replace every child has answered, or ends.
- ``ParentLifecycle.ending``: how an order ends when no child works any more: as its last child did
  (canceled, rejected, expired, done for the day), or canceled when that is no end the parent can take.
- ``ParentLifecycle.replace_refusal``: why a replace by cancel and re-route cannot go ahead, if it cannot.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from orders.model import CxlRejCode, ExecKind, OrdStatus, RejectCode
from orders.states import TRANSITIONS, Child, Event, Order

END_OF_DAY = "end of day"  # the cause of the gateway's own cancels at a session's end of day (reported Expired)

# The client's report for each way a parent can end.
END_REPORT = {
    Event.VENUE_ACK: ExecKind.NEW,
    Event.VENUE_REJECT: ExecKind.REJECTED,
    Event.VENUE_CANCELED: ExecKind.CANCELED,
    Event.DONE_FOR_DAY: ExecKind.DONE_FOR_DAY,
    Event.EXPIRE: ExecKind.EXPIRED,
}


class Step(Enum):
    """What a parent does after a change to one of its children."""
    NOTHING = "nothing"  # it works on as it is
    WAIT = "wait"  # a cancel or replace is still out at a child whose answer matters
    CANCEL_TOO_LATE = "cancel too late"  # every child answered the cancel, but the order filled meanwhile
    CANCELED = "canceled"  # every child answered the cancel and none works: the order ends
    CANCEL_REFUSED = "cancel refused"  # every child answered, some refused: the order works on
    REPLACE_ANSWERED = "replace answered"  # every child answered the cancel of a replace by re-route
    END = "end"  # no child works any more: the order ends


@dataclass(frozen=True, slots=True)
class Ending:
    """How a parent ends: the event it takes, the client's report and its reason."""
    event: Event
    kind: ExecKind
    text: str | None
    reject_code: RejectCode | None = None


class ChildLifecycle:
    """One child's end as its parent sees it."""

    __slots__ = ("order", "child")

    def __init__(self, order: Order, child: Child):
        self.order, self.child = order, child

    def release(self, event: Event, venue: str, text: str | None) -> Decimal:
        """The child stopped working (``event``: rejected, canceled, expired, done for the day) without
        filling all of it: no cancel or replace of it is out any more, the parent remembers how its quantity
        was released (its own end, if nothing else works), and what the child leaves undone is returned."""
        child = self.child
        child.pending_cancel = None
        child.pending_replace = None
        self.order.released = (event, venue, text)
        return child.qty - child.cum_qty

    def may_route_again(self) -> bool:
        """Whether the parent's state lets what this child left undone be routed elsewhere: the order is
        open, and no cancel or replace of it is in flight (their answers decide what happens next)."""
        order = self.order
        return order.is_open and not order.cancel_open and order.pending_replace is None

    def rejected_venues(self) -> frozenset[str]:
        """Venues that rejected a child of this order: not tried again for it."""
        return frozenset(c.venue for c in self.order.children if c.status is OrdStatus.REJECTED)


class ParentLifecycle:
    """The parent order's rules over its children."""

    __slots__ = ("order",)

    def __init__(self, order: Order):
        self.order = order

    def awaiting(self) -> bool:
        """A cancel is still out at a child whose answer matters: one still working, or, once the parent is
        filled, one that filled too (its venue's refusal is what the client's cancel reject says)."""
        order = self.order
        return any(c.pending_cancel and (c.is_open or not order.is_open) for c in order.children)

    def next_step(self) -> Step:
        """After any change to a child: what the parent does next (see ``Step``)."""
        order = self.order
        if order.cancel_open:
            if self.awaiting():
                return Step.WAIT
            if not order.is_open:
                return Step.CANCEL_TOO_LATE
            return Step.CANCELED if not order.live_children else Step.CANCEL_REFUSED
        if order.replace_mode == "reroute" and order.pending_replace is not None:
            return Step.WAIT if self.awaiting() else Step.REPLACE_ANSWERED
        if order.is_open and not order.live_children:
            return Step.END
        return Step.NOTHING

    def ending(self) -> Ending:
        """How the order ends now that no child works and it is not filled: as its last child did, an end
        of day's cancel as Expired, or Canceled when the last child's end is no end the parent can take
        from its state."""
        order = self.order
        event, venue, text = order.released or (Event.VENUE_CANCELED, None, None)
        if event is Event.VENUE_CANCELED and order.cancel_cause == END_OF_DAY:
            event = Event.EXPIRE
        if (order.status, event) not in TRANSITIONS:
            event = Event.VENUE_CANCELED
        code = None
        if event is Event.VENUE_REJECT:
            code = RejectCode.VENUE
            text = f"rejected by {venue}: {text or 'no reason given'}"
        elif event is Event.VENUE_CANCELED:
            if order.cancel_cause:
                text = f"canceled: {order.cancel_cause}"
            elif venue:
                text = f"canceled by {venue}" + (f": {text}" if text else "")
            else:
                text = f"canceled: {text}"
        elif event is Event.EXPIRE:
            text = f"expired: {order.cancel_cause or text or 'by the venue'}"
        else:
            text = None
        return Ending(event, END_REPORT[event], text, code)

    def replace_refusal(self) -> tuple[CxlRejCode, str] | None:
        """Why the replace in flight (by cancel and re-route) cannot take effect now that every child has
        answered its cancel, or None: a venue refused to cancel its part, the order ended meanwhile, or its
        fills leave nothing to replace."""
        order, p = self.order, self.order.pending_replace
        if order.live_children:
            code, venue, text = order.refusal or (CxlRejCode.OTHER, None, None)
            return code, f"replace refused: {venue or 'a venue'} refused to cancel its part: {text or code.value}"
        if not order.is_open:
            return CxlRejCode.TOO_LATE, f"order is {order.status.name.lower()}: too late to replace"
        if p.qty <= order.cum_qty:
            return CxlRejCode.OTHER, f"new OrderQty {p.qty} must exceed CumQty {order.cum_qty}"
        return None
