"""The demo stopped and started again, gateway and simulated venues together: the orders resting at the
venues are still there, and the gateway, asking each venue their state when it logs on, agrees with it
(nothing stranded, nothing assumed). A venue that lost its book instead puts them in doubt, loudly."""
from __future__ import annotations

import time

from gateway.process.server import Gateway
from tests.fix_fixtures import Stack, start_stack, start_venues


def wait_until(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def restart(stack: Stack, keep_orders: bool) -> Stack:
    """Stop the gateway and the venues in good order, then start them again on the same stores."""
    stack.stop()
    venues = start_venues(stack.cfg, stack.tmp, keep_orders=keep_orders)
    for v in venues.values():
        v.wire.rows = []  # keep what each venue reads, from its first message on
    gateway = Gateway(stack.cfg, config_path=stack.config_path).start()
    again = Stack(cfg=stack.cfg, gateway=gateway, venues=venues, tmp=stack.tmp, config_path=stack.config_path)
    assert gateway.wait_venues_up(20), "venues did not log on again"
    return again


def order_view(gw: Gateway, cl_ord_id: str):
    return gw.engine.call(lambda core: next(
        ((o.status.name, o.in_doubt, [(c.venue, c.status.name, c.in_doubt) for c in o.children])
         for o in core.orders.values() if cl_ord_id in o.client_ids), None))


def test_orders_resting_at_restarted_simulators_are_reconciled_as_still_working(tmp_path):
    stack = start_stack(f"sqlite:///{tmp_path / 'journal.db'}", tmp_path, keep_venue_orders=True)
    try:
        c = stack.client("CLIENT44")
        resting = c.new_order("ORCL", "1", 100, "119.00")  # rests at VENUE2
        c.wait_exec(resting, "0")
        stack.client("CLIENT44").stop()
        stack = restart(stack, keep_orders=True)
        v2 = stack.venues["VENUE2"]
        # the gateway asked VENUE2 (OrderStatusRequest) and the venue answered from its kept book
        assert wait_until(lambda: any(d == "I" and "\x0135=H\x01" in raw for _, d, raw in list(v2.wire.rows)))
        assert wait_until(lambda: order_view(stack.gateway, resting) is not None
                          and order_view(stack.gateway, resting)[2][0][1] == "NEW")
        time.sleep(0.5)  # the reply has been applied: nothing put in doubt afterwards
        assert order_view(stack.gateway, resting) == ("NEW", None, [("VENUE2", "NEW", None)])
        assert stack.gateway.engine.call(lambda core: core.in_doubt_orders()) == []
        # and the venue still works it: the client's cancel goes through
        c = stack.client("CLIENT44")
        c.cancel(resting, "ORCL", "1", 100)
        assert wait_until(lambda: order_view(stack.gateway, resting)[0] == "CANCELED")
    finally:
        stack.stop()


def test_orders_at_a_simulator_restarted_without_its_book_are_put_in_doubt(tmp_path):
    stack = start_stack(f"sqlite:///{tmp_path / 'journal.db'}", tmp_path, keep_venue_orders=True)
    try:
        c = stack.client("CLIENT44")
        resting = c.new_order("ORCL", "1", 100, "119.00")
        c.wait_exec(resting, "0")
        stack.client("CLIENT44").stop()
        stack = restart(stack, keep_orders=False)
        assert wait_until(lambda: (order_view(stack.gateway, resting) or ("", None))[1] is not None)
        status, doubt, children = order_view(stack.gateway, resting)
        assert status == "NEW" and "unknown order" in doubt and children[0][2]
    finally:
        stack.stop()
