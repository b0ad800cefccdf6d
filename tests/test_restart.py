"""A gateway stopped and started again keeps its orders, its risk state and its operators' switches;
a shadow limit reports over real sessions without blocking. Each test runs with each kind of state log: the file
(SQLite journal) and the database ([recovery] state_log = "database", PostgreSQL journal)."""
from __future__ import annotations

import contextlib
import time
from decimal import Decimal

import pytest

from gateway.journal.queries import iter_events
from gateway.process.server import Gateway
from orders.commands import KillSwitch
from tests.db_fixtures import new_postgres_database
from tests.fix_fixtures import start_stack
from tests.test_observability import scrape

RULES = """
chain = ["kill_switch", "max_order_qty", "max_position", "daily_notional"]
[limits]
max_order_qty = 100000
max_position = { value = 150, shadow = true }   # on trial: reported, never blocks
max_daily_notional = 10000000
"""


STATE_LOGS = ["file", pytest.param("database", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=STATE_LOGS)
def stack(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("restart")
    rules = tmp / "rules.toml"
    rules.write_text(RULES)
    with (new_postgres_database() if request.param == "database" else contextlib.nullcontext()) as pg_url:
        s = start_stack(pg_url or f"sqlite:///{tmp / 'journal.db'}", tmp, extra_toml=f"""
[risk]
rules_file = "{rules}"
reference_prices = {{ AAPL = 190.00, MSFT = 410.00, ORCL = 120.00 }}
[recovery]
state_log = "{request.param}"
""")
        assert s.gateway.statelog.kind == request.param
        yield s
        s.stop()


def risk_picture(gw: Gateway) -> dict:
    def read(core):
        rs = core.risk_state
        return {"exposures": {k: (e.pos_qty, e.pos_notional, e.buy_qty, e.buy_notional, e.sell_qty,
                                  e.sell_notional) for k, e in rs.exposures.items()},
                "daily": {a: v for a, v in rs.usage.used.items() if v}, "open": sorted(rs.open_orders),
                "kill": dict(rs.kill_switches.engaged), "operator_disabled": set(core.operator_disabled)}
    return gw.engine.call(read)


def test_a_shadow_limit_reports_would_have_rejected_and_lets_the_order_trade(stack):
    c = stack.client("CLIENT44")
    first = c.new_order("AAPL", "1", 100, "190.10", account="SH1")
    c.wait_exec(first, "2")
    second = c.new_order("AAPL", "1", 100, "190.10", account="SH1")  # position would reach 200 > 150
    filled = c.wait_exec(second, "2")
    assert Decimal(filled[14]) == 100
    stack.gateway.journal.flush()
    texts = [e.text for e in iter_events(stack.cfg.journal.database_url) if second in e.text]
    assert any("max_position (shadow)" in t and "150" in t for t in texts), texts
    assert not any(first in e.text and "shadow" in e.text for e in iter_events(stack.cfg.journal.database_url))
    samples = scrape(stack)
    assert samples[("fixgw_risk_rejects_total", (("mode", "shadow"), ("rule", "max_position")))] >= 1
    assert samples[("fixgw_routed_orders_total", (("venue", "VENUE1"),))] >= 2


def test_an_enforced_limit_is_counted_by_rule(stack):
    c = stack.client("CLIENT44")
    c.wait_exec(c.new_order("AAPL", "1", 100001, "190.10"), "8")
    assert scrape(stack)[("fixgw_risk_rejects_total", (("mode", "enforced"), ("rule", "max_order_qty")))] >= 1


def test_orders_exposure_and_switches_survive_a_restart(stack):
    c = stack.client("CLIENT44")
    resting = c.new_order("ORCL", "1", 100, "119.00", account="RS1")  # rests at VENUE2
    c.wait_exec(resting, "0")
    c.wait_exec(c.new_order("AAPL", "1", 100, "190.10", account="RS1"), "2")  # a position
    gw = stack.gateway
    assert gw.engine.request(KillSwitch("symbol", "MSFT", operator="test")).result["ok"]
    gw.engine.call(lambda core: core.operator_disabled.add("CLIENT50"))
    before = risk_picture(gw)
    open_before = gw.engine.call(lambda core: sorted((o.order_id, o.cl_ord_id, o.status.value, o.cum_qty)
                                                     for o in core.open_orders()))

    c.stop()
    gw.stop()
    stack.gateway = Gateway(stack.cfg).start()
    assert stack.gateway.wait_venues_up(20)
    assert stack.gateway.recovered.clean  # a stop, not a crash: nothing to repair

    assert risk_picture(stack.gateway) == before
    assert stack.gateway.engine.call(lambda core: sorted((o.order_id, o.cl_ord_id, o.status.value, o.cum_qty)
                                                         for o in core.open_orders())) == open_before
    assert stack.gateway.logon_refusal("CLIENT50") == "session disabled by an operator"

    c = stack.client("CLIENT44")  # logs on again
    rej = c.wait_exec(c.new_order("MSFT", "1", 10, "410.00"), "8")
    assert "kill_switch" in rej[58]
    canceled = c.wait_exec(c.cancel(resting, "ORCL", "1", 100), "4")  # the venue still knows it by our id
    assert canceled[41] == resting
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and stack.gateway.engine.call(lambda core: len(core.open_orders())):
        time.sleep(0.05)
    stack.gateway.engine.request(KillSwitch("symbol", "MSFT", engage=False))
    stack.gateway.engine.call(lambda core: core.operator_disabled.discard("CLIENT50"))


def test_a_report_for_a_logged_out_client_is_journaled_when_it_is_sent_not_only_when_resent(stack):
    from gateway.journal.queries import iter_messages
    from orders.commands import OperatorCancel

    c = stack.client("CLIENT44")
    cl = c.new_order("ORCL", "1", 100, "119.00", account="OFF1")  # rests at VENUE2
    order_id = c.wait_exec(cl, "0")[37]
    c.stop()  # the client is away
    assert stack.gateway.engine.request(OperatorCancel(order_id=order_id, operator="test")).result["canceled"] == 1

    def canceled_rows():
        stack.gateway.journal.flush()
        return [r for r in iter_messages(stack.cfg.journal.database_url, direction="O")
                if r.order_id == order_id and "\x0139=4\x01" in r.raw]
    deadline = time.monotonic() + 5
    while not canceled_rows() and time.monotonic() < deadline:
        time.sleep(0.05)
    (row,) = canceled_rows()  # journaled while the client is logged out: nothing on the wire yet
    assert not row.poss_dup and row.seq_num is not None  # as quickfix stored it, header filled in
    c = stack.client("CLIENT44")  # logs on again: quickfix re-sends it
    resent = c.wait_exec(cl, "4")
    assert resent.get(43) == "Y"
    assert any(r.poss_dup for r in canceled_rows())  # and the resend on the wire is journaled too
