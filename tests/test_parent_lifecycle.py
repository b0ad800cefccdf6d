"""The parent order's rules over its children (orders.lifecycle), without a desk, a router or risk."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from orders.lifecycle import END_OF_DAY, ChildLifecycle, ParentLifecycle, Step
from orders.model import CxlRejCode, ExecKind, OrdStatus, OrdType, RejectCode, Side, TimeInForce
from orders.states import Child, Event, Order, PendingReplace


def parent(status: OrdStatus = OrdStatus.NEW, qty: str = "100", cum: str = "0") -> Order:
    o = Order(order_id="O1", session="C1", cl_ord_id="A1", symbol="AAPL", side=Side.BUY, qty=D(qty),
              ord_type=OrdType.LIMIT, price=D(1), stop_px=None, tif=TimeInForce.DAY, account=None, status=status)
    o.cum_qty = D(cum)
    return o


def child(order: Order, venue: str, qty: str, status: OrdStatus = OrdStatus.NEW, cum: str = "0",
          pending_cancel: str | None = None) -> Child:
    c = Child(child_id=f"{order.order_id}.n{len(order.children) + 1}", venue=venue, qty=D(qty), price=D(1),
              ord_type=OrdType.LIMIT, tif=TimeInForce.DAY, status=status, cum_qty=D(cum),
              pending_cancel=pending_cancel)
    order.children.append(c)
    return c


# ----------------------------------------------------------------------------- what comes next
def test_an_order_with_a_working_child_and_nothing_in_flight_works_on():
    o = parent()
    child(o, "V1", "100")
    assert ParentLifecycle(o).next_step() is Step.NOTHING


def test_an_open_order_whose_children_all_ended_ends():
    o = parent()
    child(o, "V1", "60", OrdStatus.CANCELED)
    child(o, "V2", "40", OrdStatus.REJECTED)
    assert ParentLifecycle(o).next_step() is Step.END


def test_a_cancel_waits_for_every_working_child_to_answer():
    o = parent(OrdStatus.PENDING_CANCEL)
    o.cancel_open = True
    child(o, "V1", "60", OrdStatus.CANCELED)
    child(o, "V2", "40", pending_cancel="O1.c3")
    life = ParentLifecycle(o)
    assert life.awaiting() and life.next_step() is Step.WAIT


def test_a_cancel_every_child_answered_with_none_working_cancels_the_order():
    o = parent(OrdStatus.PENDING_CANCEL)
    o.cancel_open = True
    child(o, "V1", "60", OrdStatus.CANCELED)
    child(o, "V2", "40", OrdStatus.CANCELED)
    assert ParentLifecycle(o).next_step() is Step.CANCELED


def test_a_cancel_a_venue_refused_leaves_the_order_working():
    o = parent(OrdStatus.PENDING_CANCEL)
    o.cancel_open = True
    child(o, "V1", "60", OrdStatus.CANCELED)
    child(o, "V2", "40")  # its cancel was refused: nothing pending, still working
    assert ParentLifecycle(o).next_step() is Step.CANCEL_REFUSED


def test_a_cancel_answered_after_the_order_filled_is_too_late():
    o = parent(OrdStatus.FILLED, cum="100")
    o.cancel_open = True
    child(o, "V1", "100", OrdStatus.FILLED, cum="100")
    assert ParentLifecycle(o).next_step() is Step.CANCEL_TOO_LATE


def test_once_filled_a_cancel_still_out_at_a_filled_child_is_awaited_for_its_refusal():
    o = parent(OrdStatus.FILLED, cum="100")
    o.cancel_open = True
    child(o, "V1", "100", OrdStatus.FILLED, cum="100", pending_cancel="O1.c2")
    assert ParentLifecycle(o).next_step() is Step.WAIT


def test_a_replace_by_reroute_is_answered_once_every_child_answered_its_cancel():
    o = parent(OrdStatus.PENDING_REPLACE)
    o.replace_mode = "reroute"
    o.pending_replace = PendingReplace(cl_ord_id="A2", child_cl_ord_id="", qty=D(150), price=D(1), ord_type=OrdType.LIMIT,
                                       tif=TimeInForce.DAY)
    c = child(o, "V1", "100", pending_cancel="O1.c2")
    assert ParentLifecycle(o).next_step() is Step.WAIT
    c.pending_cancel, c.status = None, OrdStatus.CANCELED
    assert ParentLifecycle(o).next_step() is Step.REPLACE_ANSWERED


# ----------------------------------------------------------------------------- how an order ends
@pytest.mark.parametrize("event, venue, text, kind, says", [
    (Event.VENUE_REJECT, "V1", "unknown symbol", ExecKind.REJECTED, "rejected by V1: unknown symbol"),
    (Event.VENUE_REJECT, "V1", None, ExecKind.REJECTED, "rejected by V1: no reason given"),
    (Event.VENUE_CANCELED, "V1", "unsolicited", ExecKind.CANCELED, "canceled by V1: unsolicited"),
    (Event.VENUE_CANCELED, None, "venue gone", ExecKind.CANCELED, "canceled: venue gone"),
    (Event.EXPIRE, "V1", None, ExecKind.EXPIRED, "expired: by the venue"),
    (Event.DONE_FOR_DAY, "V1", None, ExecKind.DONE_FOR_DAY, None),
])
def test_an_order_ends_as_its_last_child_did(event, venue, text, kind, says):
    o = parent(OrdStatus.PENDING_NEW if event is Event.VENUE_REJECT else OrdStatus.NEW)  # never acknowledged
    o.released = (event, venue, text)
    ending = ParentLifecycle(o).ending()
    assert (ending.event, ending.kind, ending.text) == (event, kind, says)
    assert ending.reject_code is (RejectCode.VENUE if event is Event.VENUE_REJECT else None)


def test_the_gateways_own_cancel_names_its_cause_and_an_end_of_day_cancel_is_an_expiry():
    o = parent()
    o.released, o.cancel_cause = (Event.VENUE_CANCELED, "V1", None), "kill switch"
    assert ParentLifecycle(o).ending().text == "canceled: kill switch"
    o.cancel_cause = END_OF_DAY
    ending = ParentLifecycle(o).ending()
    assert (ending.event, ending.kind, ending.text) == (Event.EXPIRE, ExecKind.EXPIRED, "expired: end of day")


def test_an_end_the_parent_cannot_take_from_its_state_becomes_a_cancel():
    o = parent(OrdStatus.PARTIALLY_FILLED, cum="40")  # a partly filled order cannot be Rejected
    o.released = (Event.VENUE_REJECT, "V2", "halted")
    ending = ParentLifecycle(o).ending()
    assert (ending.event, ending.kind) == (Event.VENUE_CANCELED, ExecKind.CANCELED)


def test_an_order_that_never_released_anything_ends_canceled():
    ending = ParentLifecycle(parent()).ending()
    assert (ending.event, ending.kind) == (Event.VENUE_CANCELED, ExecKind.CANCELED)


# ----------------------------------------------------------------------------- a replace by cancel and re-route
def _replacing(qty: str, cum: str = "0", status: OrdStatus = OrdStatus.PENDING_REPLACE) -> Order:
    o = parent(status, cum=cum)
    o.replace_mode = "reroute"
    o.pending_replace = PendingReplace(cl_ord_id="A2", child_cl_ord_id="", qty=D(qty), price=D(1), ord_type=OrdType.LIMIT,
                                       tif=TimeInForce.DAY)
    return o


def test_a_replace_goes_ahead_when_every_child_is_canceled_and_the_new_quantity_exceeds_the_fills():
    o = _replacing("150", cum="40")
    child(o, "V1", "100", OrdStatus.CANCELED, cum="40")
    assert ParentLifecycle(o).replace_refusal() is None


def test_a_replace_is_refused_when_a_venue_refused_to_cancel_its_part():
    o = _replacing("150")
    child(o, "V1", "100")
    o.refusal = (CxlRejCode.TOO_LATE, "V1", "already filled")
    code, text = ParentLifecycle(o).replace_refusal()
    assert code is CxlRejCode.TOO_LATE and text == "replace refused: V1 refused to cancel its part: already filled"


def test_a_replace_is_refused_when_the_fills_leave_nothing_to_replace():
    o = _replacing("40", cum="40")
    child(o, "V1", "100", OrdStatus.CANCELED, cum="40")
    assert ParentLifecycle(o).replace_refusal() == (CxlRejCode.OTHER, "new OrderQty 40 must exceed CumQty 40")


def test_a_replace_of_an_order_that_ended_meanwhile_is_too_late():
    o = _replacing("150", cum="100", status=OrdStatus.FILLED)
    child(o, "V1", "100", OrdStatus.FILLED, cum="100")
    assert ParentLifecycle(o).replace_refusal() == (CxlRejCode.TOO_LATE, "order is filled: too late to replace")


# ----------------------------------------------------------------------------- a child's end
def test_a_released_child_drops_what_was_in_flight_and_returns_what_it_left_undone():
    o = parent()
    c = child(o, "V1", "100", OrdStatus.REJECTED, cum="30", pending_cancel="O1.c2")
    life = ChildLifecycle(o, c)
    assert life.release(Event.VENUE_REJECT, "V1", "halted") == D(70)
    assert c.pending_cancel is None and c.pending_replace is None
    assert o.released == (Event.VENUE_REJECT, "V1", "halted")


def test_what_a_child_left_undone_may_be_routed_again_only_while_nothing_else_is_in_flight():
    o = parent()
    c = child(o, "V1", "100", OrdStatus.REJECTED)
    assert ChildLifecycle(o, c).may_route_again()
    o.cancel_open = True
    assert not ChildLifecycle(o, c).may_route_again()
    o.cancel_open = False
    o.status = OrdStatus.CANCELED
    assert not ChildLifecycle(o, c).may_route_again()


def test_venues_that_rejected_a_child_are_not_tried_again_for_the_order():
    o = parent()
    child(o, "V1", "50", OrdStatus.REJECTED)
    c = child(o, "V2", "50", OrdStatus.REJECTED)
    child(o, "V3", "50", OrdStatus.CANCELED)
    assert ChildLifecycle(o, c).rejected_venues() == {"V1", "V2"}
