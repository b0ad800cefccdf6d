"""Orders refused at intake are found with `fixgw orders list|show` (reason included), filtered by state, session,
account, symbol and time, and are still there after the gateway restarts from its state log as after a crash."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from gateway.process.server import Gateway
from tests.fix_fixtures import start_stack
from tests.test_admin_cli import fixgw
from tests.test_admin_requests import call

RULES = 'version = 1\nchain = ["max_order_qty"]\n[limits]\nmax_order_qty = 1000\n'


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("admin_rejected")
    rules = tmp / "rules.toml"
    rules.write_text(RULES)
    stack = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp, extra_toml=f"""
[risk]
rules_file = "{rules}"
reference_prices = {{ AAPL = 190.00, MSFT = 410.00, ORCL = 120.00 }}
""")
    cli_cfg = tmp / "cli.cfg"
    cli_cfg.write_text(f'data_dir = "{stack.cfg.data_dir}"\n[http]\nport = {stack.cfg.http.port}\n')
    yield stack, cli_cfg
    stack.stop()


def listed(cfg, *args: str) -> list[dict]:
    out = fixgw(cfg, "orders", "list", *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["orders"]


def crash_and_restart(stack) -> None:
    """Stop the gateway leaving its state log as a crash would (no final snapshot), and start it again."""
    for c in stack.clients.values():
        c.stop()
    gw = stack.gateway
    gw.statelog.close = lambda state: None  # what kill -9 leaves: the records, no clean snapshot
    gw.stop()
    stack.gateway = Gateway(stack.cfg, config_path=stack.config_path).start()
    assert stack.gateway.wait_venues_up(20)
    assert not stack.gateway.recovered.clean


def test_refused_orders_are_listed_with_their_reason_filtered_and_found_again_after_a_restart(env):
    stack, cfg = env
    c = stack.client("CLIENT44")
    unknown = c.wait_exec(c.new_order("ZZZZ", "1", 10, "5.00", account="RJ1"), "8")
    between = datetime.now(timezone.utc).isoformat()
    too_big = c.wait_exec(c.new_order("AAPL", "2", 1001, "190.00", account="RJ1"), "8")

    rows = listed(cfg, "--state", "rejected", "--session", "CLIENT44")
    assert [(r["order_id"], r["cl_ord_id"], r["reason"]) for r in rows] == [
        (unknown[37], unknown[11], unknown[58]), (too_big[37], too_big[11], too_big[58])]
    assert [r["refused_by"] for r in rows] == ["validation", "risk: max_order_qty"]
    assert rows[1] | {"time": None} == rows[1] | {
        "account": "RJ1", "symbol": "AAPL", "side": "sell", "qty": "1001", "price": "190.00", "ord_type": "limit",
        "status": "rejected", "reject_code": "exceeds_limit", "ord_rej_reason": too_big[103], "time": None}
    assert rows[0]["ord_rej_reason"] == unknown[103] == "1"  # Unknown symbol, as the client was told

    # filters: time received, symbol (one no venue trades: only refused orders carry it), account, comma lists
    assert [r["order_id"] for r in listed(cfg, "--state", "rejected", "--since", between)] == [too_big[37]]
    assert [r["order_id"] for r in listed(cfg, "--state", "rejected,filled", "--until", between,
                                          "--account", "RJ1")] == [unknown[37]]
    assert [r["order_id"] for r in listed(cfg, "--symbol", "ZZZZ")] == [unknown[37]]
    assert listed(cfg, "--state", "rejected", "--open") == []

    table = fixgw(cfg, "orders", "list", "--state", "rejected", "--session", "CLIENT44")
    assert table.returncode == 0 and "REASON" in table.stdout.splitlines()[0]
    assert too_big[58] in table.stdout and unknown[58] in table.stdout

    shown = fixgw(cfg, "orders", "show", too_big[37])
    assert shown.returncode == 0, shown.stderr
    assert f"reason: {too_big[58]}" in shown.stdout and "refused_by: risk: max_order_qty" in shown.stdout

    # the ClOrdID stays free: the corrected resend trades; a plain list has both, oldest first
    c.wait_exec(c.new_order("AAPL", "2", 1000, "189.00", account="RJ1", cl_ord_id=too_big[11]), "2")
    everything = listed(cfg, "--account", "RJ1")
    assert [(r["cl_ord_id"], r["status"]) for r in everything] == [
        (unknown[11], "rejected"), (too_big[11], "rejected"), (too_big[11], "filled")]
    by_cl = json.loads(fixgw(cfg, "orders", "show", too_big[11], "--session", "CLIENT44", "--json").stdout)
    assert by_cl["status"] == "filled" and [a["order_id"] for a in by_cl["also"]] == [too_big[37]]

    crash_and_restart(stack)
    assert listed(cfg, "--state", "rejected", "--session", "CLIENT44") == rows
    shown = fixgw(cfg, "orders", "show", unknown[37])
    assert shown.returncode == 0 and f"reason: {unknown[58]}" in shown.stdout


def test_an_unknown_state_time_or_name_is_refused_naming_what_is_valid(env):
    stack, cfg = env
    c = stack.client("CLIENT44")
    c.wait_exec(c.new_order("YYYY", "1", 10, "5.00"), "8")  # refused, without an Account
    status, answer = call(stack, "GET", "/admin/orders?account=NOSUCH")
    assert status == 400 and answer["error"].startswith("unknown account NOSUCH (known: ") and "RJ1" in answer["error"]
    out = fixgw(cfg, "orders", "list", "--state", "rejected,refused")
    assert out.returncode == 1 and "unknown order state 'refused'" in out.stderr
    assert "rejected" in out.stderr and "partially_filled" in out.stderr
    out = fixgw(cfg, "orders", "list", "--since", "yesterday")
    assert out.returncode == 1 and "--since: not an ISO 8601 date or time: 'yesterday'" in out.stderr
    status, answer = call(stack, "GET", "/admin/orders?state=bogus")
    assert status == 400 and answer["error"].startswith("unknown order state 'bogus' (valid: new, ")
    status, answer = call(stack, "GET", "/admin/orders?until=2026-13-01")
    assert status == 400 and answer["error"].startswith("until: not an ISO 8601")
    status, answer = call(stack, "GET", "/admin/orders/NOSUCH?session=CLIENT44")
    assert status == 404 and answer["error"] == "no order with OrderID or ClOrdID NOSUCH in session CLIENT44"


def test_an_order_every_venue_rejected_is_listed_with_the_text_the_client_got():
    from gateway.admin.order_rows import order_row
    from orders.actions import ClientExecReport
    from orders.model import ExecKind, OrdStatus
    from tests.test_core import make_core, only, order, venue_exec

    core = make_core()
    child = core.handle(order()).actions[-1].cl_ord_id
    rej = only(core.handle(venue_exec(child, ExecKind.REJECTED, OrdStatus.REJECTED)).actions, ClientExecReport)
    row = order_row(core.orders[rej.order_id])
    assert (row["status"], row["refused_by"], row["reason"]) == ("rejected", "venue V1", rej.text)
