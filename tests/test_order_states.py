"""The order state table: every (state, event) pair is either a defined move or a refusal with a reason."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from orders.model import OrdStatus, OrdType, Side, TimeInForce
from orders.states import TERMINAL, TRANSITIONS, WORKING, Event, Order, TransitionRefused, refusal


def fresh(status: OrdStatus, cum: str = "0") -> Order:
    o = Order(order_id="O1", session="C1", cl_ord_id="A1", symbol="AAPL", side=Side.BUY, qty=D(100),
              ord_type=OrdType.LIMIT, price=D(1), stop_px=None, tif=TimeInForce.DAY, account=None, status=status)
    o.cum_qty = D(cum)
    return o


@pytest.mark.parametrize("state", list(OrdStatus))
@pytest.mark.parametrize("event", list(Event))
def test_every_state_event_pair_moves_to_a_defined_state_or_is_refused_with_a_reason(state, event):
    o = fresh(state)
    if (state, event) in TRANSITIONS:
        assert o.apply(event) in set(OrdStatus)
    else:
        with pytest.raises(TransitionRefused) as info:
            o.apply(event)
        assert str(info.value) == refusal(state, event) and state.name.lower() in str(info.value)
        assert o.status is state  # a refused event changes nothing


def test_terminal_states_accept_no_fill_and_no_cancel():
    for state in TERMINAL:
        for event in (Event.FILL, Event.PARTIAL_FILL, Event.CANCEL_REQUEST):
            assert (state, event) not in TRANSITIONS


@pytest.mark.parametrize("cum, expected", [("0", OrdStatus.NEW), ("40", OrdStatus.PARTIALLY_FILLED)])
def test_cancel_reject_returns_to_new_or_partially_filled_by_what_has_filled(cum, expected):
    assert TRANSITIONS[(OrdStatus.PENDING_CANCEL, Event.VENUE_CANCEL_REJECT)] == WORKING
    assert fresh(OrdStatus.PENDING_CANCEL, cum).apply(Event.VENUE_CANCEL_REJECT) is expected


def test_fills_never_book_beyond_order_quantity():
    o = fresh(OrdStatus.NEW)
    assert o.add_fill(D(60), D("10.5")) == D(60)
    assert o.add_fill(D(60), D("10.7")) == D(40)
    assert o.cum_qty == D(100) and o.avg_px == (D(60) * D("10.5") + D(40) * D("10.7")) / D(100)
    assert o.add_fill(D(1), D(1)) == D(0)
