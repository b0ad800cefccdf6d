"""Scenarios, as FIX conversations, against venues that answer badly or not at all (issue 17, item 1):
the client always hears what became of its order, or the gateway says it does not know (in doubt).

VENUE2 is a FIX 5.0 venue simulator told to misbehave per symbol:
  ORCL  NewOrderSingle -> 35=3 45=<seq> 58=Value is incorrect (out of range) for this tag 371=40 372=D 373=5
  XXXX  NewOrderSingle -> nothing (the order never exists there); OrderStatusRequest -> "unknown order"
  MSFT  NewOrderSingle -> nothing; OrderStatusRequest -> nothing
  AAPL  OrderCancelRequest -> 35=j 372=F 380=3, with DefaultApplVerID (1137) in the body (as quickfix 1.16 sends)
Orders reach VENUE2 by ExDestination (100). VENUE1 (FIX 4.4) behaves, and is asked with OrderMassStatusRequest.
"""
from __future__ import annotations

import time

import pytest

from gateway.journal.queries import iter_events, iter_messages
from tests.fix_fixtures import start_stack

FAST = "ack_timeout_s = 1\nstatus_timeout_s = 1\nstatus_retry_s = 2"
MISBEHAVE = """
[venues.VENUE2.simulator.misbehave]
appl_ver_id_in_reject = true
symbols = { ORCL = { new_order = "session_reject" }, XXXX = { new_order = "silent" }, MSFT = { new_order = "silent", status = "silent" }, AAPL = { cancel = "business_reject" } }
"""
TO_VENUE2 = {100: "VENUE2"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("misbehaving_venue")
    s = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp, venue_versions=("FIX.4.4", "FIX.5.0"),
                    venue_options={"VENUE2": FAST, "VENUE1": "mass_status = true"}, extra_toml=MISBEHAVE)
    yield s
    s.stop()


def order_of(stack, name: str, cl_ord_id: str):
    return stack.gateway.engine.call(lambda core: core.order_for_client(name, cl_ord_id))


@pytest.mark.parametrize("name", ["CLIENT42", "CLIENT44", "CLIENT50"])
def test_a_venue_session_reject_of_the_child_order_rejects_the_clients_order_with_the_venues_reason(stack, name):
    c = stack.client(name)
    # client -> gateway:  35=D 11=<cl> 55=ORCL 54=1 38=100 40=2 44=119 100=VENUE2
    cl = c.new_order("ORCL", "1", 100, "119.00", extra=TO_VENUE2)
    # gateway -> client:  35=8 39=A (PendingNew)
    c.wait_exec(cl, "A")
    # gateway -> VENUE2:  35=D ...;  VENUE2 -> gateway:  35=3 45=<seq> 371=40 372=D 373=5
    # gateway -> client:  35=8 39=8 (Rejected) 58=... session-level Reject ... out of range
    rejected = c.wait_exec(cl, "8", timeout=10)
    assert "session-level Reject (35=3)" in rejected[58] and "out of range" in rejected[58], rejected
    order = order_of(stack, name, cl)
    assert not order.is_open and order.children[0].status.name == "REJECTED"


def test_a_venue_that_never_acknowledges_is_asked_and_the_order_it_never_got_is_rejected(stack):
    c = stack.client("CLIENT44")
    cl = c.new_order("XXXX", "1", 10, "10.00", extra=TO_VENUE2)
    c.wait_exec(cl, "A")
    # VENUE2 says nothing. After ack_timeout_s (1 s): gateway -> VENUE2  35=H 11=<child>
    # VENUE2 -> gateway: 35=8 150=I 39=8 58=unknown order; gateway -> client: 35=8 39=8 58=... does not have ...
    rejected = c.wait_exec(cl, "8", timeout=10)
    assert "does not have the order" in rejected[58], rejected
    stack.gateway.journal.flush()
    sid = stack.gateway.venue_sids["VENUE2"].toString()
    asked = [r for r in iter_messages(stack.cfg.journal.database_url, sid, "O") if r.msg_type == "H"]
    assert asked, "no OrderStatusRequest was sent to the silent venue"


def test_a_venue_that_answers_neither_the_order_nor_the_status_request_leaves_the_order_in_doubt_loudly(stack):
    c = stack.client("CLIENT44")
    cl = c.new_order("MSFT", "1", 10, "400.00", extra=TO_VENUE2)
    c.wait_exec(cl, "A")
    gw = stack.gateway
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not gw.engine.call(lambda core: bool(core.in_doubt_orders())):
        time.sleep(0.1)
    doubtful = gw.engine.call(lambda core: [(o.cl_ord_id, o.in_doubt, o.status.name) for o in core.in_doubt_orders()])
    assert [(x[0], x[2]) for x in doubtful] == [(cl, "PENDING_NEW")], doubtful
    assert "status request" in doubtful[0][1]
    # never silently pending: journaled and counted, and the client's order is still PendingNew (nothing invented)
    order_id = gw.engine.call(lambda core: core.order_for_client("CLIENT44", cl).order_id)
    gw.journal.flush()
    assert any(order_id in e.text and "in doubt" in e.text
               for e in iter_events(stack.cfg.journal.database_url) if e.session_id == "reconcile")
    from tests.test_observability import scrape
    deadline = time.monotonic() + 5  # the gauge is set on the timer's next tick
    while scrape(stack)[("fixgw_orders_in_doubt", ())] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert scrape(stack)[("fixgw_orders_in_doubt", ())] >= 1
    assert [m[39] for m in c.exec_reports(cl)] == ["A"]
    # the operator settles it: the client hears Canceled with the operator's reason
    from orders.commands import OperatorClose
    result = gw.engine.request(OperatorClose(order_id=order_id, reason="VENUE2 confirmed by phone: no order",
                                             operator="test")).result
    assert result["ok"] and result["in_doubt"]
    closed = c.wait_exec(cl, "4")
    assert "closed by operator test: VENUE2 confirmed by phone" in closed[58]
    assert gw.engine.call(lambda core: core.in_doubt_orders()) == []


def test_a_business_reject_of_a_cancel_carrying_1137_is_read_and_the_client_keeps_a_true_picture(stack):
    c = stack.client("CLIENT44")
    cl = c.new_order("AAPL", "1", 100, "180.00", extra=TO_VENUE2)  # rests at VENUE2
    c.wait_exec(cl, "0")
    x = c.cancel(cl, "AAPL", "1", 100)
    c.wait_exec(x, "6")
    # VENUE2 -> gateway: 35=j 45=<seq of our F> 372=F 380=3 1137=9: our venue session takes it (no 35=3 371=1137)
    # gateway -> client: 35=9 39=0 (the order is still New) 434=1 58=cancel refused by VENUE2: BusinessMessageReject
    reject = c.wait_for(lambda m: m.get(35) == "9" and m.get(11) == x, what="the cancel reject", timeout=10)
    assert reject[39] == "0" and reject[434] == "1" and "BusinessMessageReject" in reject[58], reject
    order = order_of(stack, "CLIENT44", cl)
    assert order.status.name == "NEW" and order.in_doubt is None
    stack.gateway.journal.flush()
    sid = stack.gateway.venue_sids["VENUE2"].toString()
    ours = [r.raw for r in iter_messages(stack.cfg.journal.database_url, sid, "O") if r.msg_type == "3"]
    assert not any("371=1137" in raw for raw in ours), ours
    # tidy up: close it (the venue refuses cancels of AAPL)
    from orders.commands import OperatorClose
    stack.gateway.engine.request(OperatorClose(order_id=order.order_id, reason="test over", operator="test"))


def test_the_operator_finds_an_order_in_doubt_asks_again_and_closes_it_from_the_cli(stack):
    """`fixgw orders list --in-doubt`, `fixgw orders reconcile ID` (exit 1 while in doubt), `fixgw orders close`."""
    import json

    from tests.test_admin_cli import fixgw

    cli_cfg = stack.tmp / "cli.cfg"
    cli_cfg.write_text(f'data_dir = "{stack.cfg.data_dir}"\n[http]\nport = {stack.cfg.http.port}\n')
    c = stack.client("CLIENT42")
    cl = c.new_order("MSFT", "1", 7, "400.00", extra=TO_VENUE2)  # VENUE2 answers neither it nor status requests
    c.wait_exec(cl, "A")
    gw = stack.gateway
    order_id = gw.engine.call(lambda core: core.order_for_client("CLIENT42", cl).order_id)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not gw.engine.call(lambda core: core.orders[order_id].in_doubt):
        time.sleep(0.1)

    listed = fixgw(cli_cfg, "orders", "list", "--in-doubt", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["orders"]
    assert [r["order_id"] for r in rows] == [order_id] and "status request" in rows[0]["in_doubt"]
    table = fixgw(cli_cfg, "orders", "list", "--in-doubt")
    assert order_id in table.stdout and "IN_DOUBT" in table.stdout

    asked = fixgw(cli_cfg, "orders", "reconcile", order_id, "--wait", "1")
    assert asked.returncode == 1, asked.stdout + asked.stderr  # still in doubt: the venue does not answer
    assert "asked 1 child order(s)" in asked.stdout and f"IN DOUBT {order_id}" in asked.stdout
    refused = fixgw(cli_cfg, "orders", "close", order_id, "--reason", " ")
    assert refused.returncode == 1 and "reason" in refused.stderr

    closed = fixgw(cli_cfg, "orders", "close", order_id, "--reason", "VENUE2 has no such order (phone, ticket 7)")
    assert closed.returncode == 0, closed.stderr
    assert f"{order_id} closed (was pending_new; in doubt:" in closed.stdout
    report = c.wait_exec(cl, "4")
    assert "ticket 7" in report[58]
    assert json.loads(fixgw(cli_cfg, "orders", "list", "--in-doubt", "--json").stdout)["orders"] == []
    gw.journal.flush()
    assert any("orders/" + order_id + "/close" in e.text and "-> 200" in e.text
               for e in iter_events(stack.cfg.journal.database_url, "operator"))


def test_reconcile_of_an_order_the_venue_knows_reports_no_difference_and_exits_0(stack):
    from tests.test_admin_cli import fixgw

    cli_cfg = stack.tmp / "cli.cfg"
    cli_cfg.write_text(f'data_dir = "{stack.cfg.data_dir}"\n[http]\nport = {stack.cfg.http.port}\n')
    c = stack.client("CLIENT44")
    cl = c.new_order("MSFT", "1", 10, "400.00")  # rests at VENUE1, which behaves
    c.wait_exec(cl, "0")
    order_id = stack.gateway.engine.call(lambda core: core.order_for_client("CLIENT44", cl).order_id)
    out = fixgw(cli_cfg, "orders", "reconcile", order_id)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no differences: the gateway agrees with the venues" in out.stdout
    c.wait_exec(c.cancel(cl, "MSFT", "1", 10), "4")


def test_a_mass_status_venue_that_logs_on_again_is_asked_with_one_order_mass_status_request(stack):
    c = stack.client("CLIENT44")
    cl = c.new_order("MSFT", "1", 10, "400.00")  # rests at VENUE1
    c.wait_exec(cl, "0")
    gw = stack.gateway
    sid = gw.venue_sids["VENUE1"].toString()
    gw.journal.flush()
    before = max(r.id for r in iter_messages(stack.cfg.journal.database_url, sid))
    session = gw.session("VENUE1")
    session.logout()
    deadline = time.monotonic() + 10
    while session.isLoggedOn() and time.monotonic() < deadline:
        time.sleep(0.05)
    session.logon()
    assert gw.wait_venues_up(20)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        gw.journal.flush()
        answers = [r for r in iter_messages(stack.cfg.journal.database_url, sid, "I")
                   if r.msg_type == "8" and "\x01584=" in r.raw and r.id > before]
        if answers:
            break
        time.sleep(0.1)
    asked = [r for r in iter_messages(stack.cfg.journal.database_url, sid, "O")
             if r.msg_type in ("AF", "H") and r.id > before]
    assert [r.msg_type for r in asked] == ["AF"], [r.raw for r in asked]
    assert answers and "\x01912=Y\x01" in answers[-1].raw
    order = order_of(stack, "CLIENT44", cl)
    assert order.status.name == "NEW" and order.in_doubt is None and order.children[0].status_asks == 0
    c.wait_exec(c.cancel(cl, "MSFT", "1", 10), "4")
