"""Smart order routing over real sessions: three venue simulators at different prices, sizes and fees.

Books (buy side shown; each level one tick apart, level n holding n * level_size):

- VENUE1 (FIX 4.4): AAPL offers 190.01 x 500, 190.02 x 1000; take fee 0.003; conflated market data
  (a snapshot every 2 s, nothing in between); its orders canceled when our session drops.
- VENUE2 (FIX 4.2): AAPL offers 190.00 x 200, 190.01 x 400, 190.02 x 600; take fee 0.002; rejects MSFT;
  on_disconnect = reroute, and the simulator does cancel on disconnect.
- VENUE3 (FIX 5.0): AAPL offers 190.01 x 300, 190.02 x 600; no fee; conflated like VENUE1.

Fee-adjusted offers, best first: VENUE2 190.002, VENUE3 190.01, VENUE2 190.012, VENUE1 190.013,
VENUE3 190.02, VENUE2 190.022, VENUE1 190.023. Bids: VENUE3 189.99, VENUE1 189.987, VENUE2 189.978.
"""
from __future__ import annotations

import json
import time
from decimal import Decimal as D

import pytest

from gateway.config import parse_config
from gateway.journal.db import upgrade
from gateway.journal.queries import iter_events
from gateway.process.server import Gateway
from sessions.client import FixClient
from sessions.simulator.venue import VenueSimulator
from tests.fix_fixtures import Stack, free_port
from tests.test_admin_cli import fixgw

TRADE = ("1", "2", "F")
STRATEGY = 9100


def config_text(db: str, data_dir, gw_port: int, ports: dict[str, int]) -> str:
    return f"""
comp_id = "FIXGW"
data_dir = "{data_dir}"
log_level = "DEBUG"
[acceptor]
port = {gw_port}
[http]
port = {free_port()}
[journal]
database_url = "{db}"
flush_interval_ms = 2
[routing]
strategy = "best-price"
max_reroutes = 2
max_quote_age_s = 5
[clients.CLIENT44]
fix_version = "FIX.4.4"
[clients.CLIENT42]
fix_version = "FIX.4.2"
strategy = "sweep"
[venues.VENUE1]
fix_version = "FIX.4.4"
port = {ports["VENUE1"]}
symbols = ["AAPL", "MSFT", "IBM"]
reconnect_s = 1
fees = {{ take = 0.003, make = -0.002 }}
[venues.VENUE1.simulator]
prices = {{ AAPL = 190.00, MSFT = 410.00, IBM = 230.00 }}
level_size = 500
md_changes = false
md_refresh_s = 2
cancel_on_disconnect = true
[venues.VENUE2]
fix_version = "FIX.4.2"
port = {ports["VENUE2"]}
symbols = ["AAPL", "MSFT"]
reconnect_s = 1
priority = 1
on_disconnect = "reroute"
fees = {{ take = 0.002, make = -0.001 }}
[venues.VENUE2.simulator]
prices = {{ AAPL = 189.99, MSFT = 409.99 }}
level_size = 200
reject_symbols = ["MSFT"]
cancel_on_disconnect = true
[venues.VENUE3]
fix_version = "FIX.5.0"
port = {ports["VENUE3"]}
symbols = ["AAPL", "MSFT", "IBM"]
reconnect_s = 1
[venues.VENUE3.simulator]
prices = {{ AAPL = 190.00, MSFT = 410.00, IBM = 230.00 }}
level_size = 300
md_changes = false
md_refresh_s = 2
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sor")
    db = f"sqlite:///{tmp / 'journal.db'}"
    upgrade(db)
    ports = {name: free_port() for name in ("VENUE1", "VENUE2", "VENUE3")}
    text = config_text(db, tmp / "gw", free_port(), ports)
    cfg = parse_config(text, tmp / "gw", env={})
    venues = {name: VenueSimulator(comp_id=name, port=v.port, sim=v.simulator, store_dir=tmp / "venues" / name,
                                   counterparties=("FIXGW", "STREET")).start()
              for name, v in cfg.venues.items()}
    gateway = Gateway(cfg).start()
    stack = Stack(cfg=cfg, gateway=gateway, venues=venues, tmp=tmp)
    try:
        assert gateway.wait_venues_up(20), "venues did not log on"
        wait_quotes(stack, {(v, s) for v in venues for s in cfg.venues[v].symbols})
        cli_cfg = tmp / "cli.cfg"
        cli_cfg.write_text(f'data_dir = "{cfg.data_dir}"\n[http]\nport = {cfg.http.port}\n')
        yield stack, cli_cfg
    finally:
        stack.stop()


def client(stack: Stack, name: str = "CLIENT44") -> FixClient:
    if name not in stack.clients or stack.clients[name].stopped:
        stack.clients[name] = FixClient(version=stack.cfg.clients[name].fix_version, sender=name, target="FIXGW",
                                        port=stack.cfg.acceptor.port, store_dir=stack.tmp / "clients").start()
    return stack.clients[name]


def quotes(stack: Stack) -> dict:
    return {(r["venue"], r["symbol"]): r for r in stack.gateway.engine.call(lambda core: core.quote_table())}


def wait_quotes(stack: Stack, wanted, timeout: float = 10.0, check=lambda row: row["fresh"]) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        table = quotes(stack)
        if all(k in table and check(table[k]) for k in wanted):
            return table
        if time.monotonic() > deadline:
            raise AssertionError(f"quotes {sorted(wanted)} not seen: {table}")
        time.sleep(0.02)


def fills(c: FixClient, cl: str) -> list[dict]:
    return [m for m in c.exec_reports(cl) if m.get(150) in TRADE]


def order_of(stack: Stack, session: str, cl: str):
    return stack.gateway.engine.call(lambda core: core.order_for_client(session, cl))


def check_adds_up(c: FixClient, cl: str, final: dict) -> None:
    """The client's fills add up exactly to the final report: quantity, notional, AvgPx."""
    got = fills(c, cl)
    qty = sum(D(m[32]) for m in got)
    notional = sum(D(m[32]) * D(m[31]) for m in got)
    assert qty == D(final[14]) and D(final[151]) == 0 or final[39] != "2"
    assert qty == D(final[14])
    assert D(final[6]) == (notional / qty).quantize(D("1e-10")).normalize()
    cums = [D(m[14]) for m in got]
    assert cums == sorted(cums) and len(set(m[17] for m in c.exec_reports(cl))) == len(c.exec_reports(cl))


# --------------------------------------------------------------------------- best price
def test_best_price_picks_the_best_fee_adjusted_venue_each_way(env):
    stack, cli_cfg = env
    c = client(stack)
    buy = c.new_order("AAPL", "1", 100, "190.05")
    done = c.wait_exec(buy, "2")
    assert (done[30], done[31], done[14]) == ("VENUE2", "190", "100")  # VENUE2's 190.00 + 0.002 is cheapest
    sell = c.new_order("AAPL", "2", 100, ord_type="1")
    done = c.wait_exec(sell, "2")
    # VENUE1 and VENUE3 both bid 189.99; after VENUE1's 0.003 take fee, VENUE3 pays more
    assert (done[30], done[31]) == ("VENUE3", "189.99")

    order_id = done[37]
    shown = fixgw(cli_cfg, "orders", "show", order_id)
    assert shown.returncode == 0, shown.stderr
    assert "new order: best-price sell 100 limit market -> VENUE3 100" in shown.stdout
    assert "VENUE3 has the best fee-adjusted bid: 189.99 - take fee 0 = 189.99" in shown.stdout
    assert "VENUE1 189.987" in shown.stdout and "AGE_MS" in shown.stdout and "TAKE_FEE" in shown.stdout
    data = json.loads(fixgw(cli_cfg, "orders", "show", order_id, "--json").stdout)
    (route,) = data["routes"]
    seen = {q["venue"]: q for q in route["quotes"]}
    assert seen["VENUE1"]["bid"] == "189.99" and seen["VENUE1"]["take_fee"] == "0.003"
    assert all(q["trusted"] and q["age_ms"] is not None for q in seen.values())
    assert data["children"][0]["venue"] == "VENUE3" and data["strategy"] == "best-price"
    listed = fixgw(cli_cfg, "quotes")
    assert listed.returncode == 0 and "VENUE2" in listed.stdout and "190" in listed.stdout


def test_every_decision_is_journaled_and_counted(env):
    stack, _ = env
    c = client(stack)
    cl = c.new_order("AAPL", "1", 50, "190.05")
    c.wait_exec(cl, "2")
    order_id = c.exec_reports(cl)[-1][37]
    deadline = time.monotonic() + 5
    lines = []
    while not lines and time.monotonic() < deadline:
        lines = [e.text for e in iter_events(stack.cfg.journal.database_url, "routing") if order_id in e.text]
        time.sleep(0.05)
    (line,) = lines
    assert f"{order_id} CLIENT44 {cl} new order: best-price buy 50 AAPL limit 190.05 -> VENUE2 50" in line
    assert "quotes: VENUE1 189.99x500/190.01x500 age" in line and "take 0.003" in line
    from tests.test_http import get, metric
    status, text = get(stack, "/metrics")
    assert status == 200
    assert metric(text, 'fixgw_routing_decisions_total{result="routed",strategy="best-price"}') >= 1
    assert metric(text, 'fixgw_routed_orders_total{venue="VENUE2"}') >= 1
    assert 0 <= metric(text, 'fixgw_quote_age_seconds{symbol="AAPL",venue="VENUE2"}') < 5


# --------------------------------------------------------------------------- sweep
def test_a_large_order_sweeps_three_venues_and_the_fills_add_up_exactly(env):
    stack, _ = env
    c = client(stack, "CLIENT42")  # this session sweeps by default
    cl = c.new_order("AAPL", "1", 2500, "190.02")
    done = c.wait_exec(cl, "2", timeout=10)
    assert (done[14], done[151]) == ("2500", "0")
    got = fills(c, cl)
    by_venue: dict[str, D] = {}
    for m in got:
        by_venue[m[30]] = by_venue.get(m[30], D(0)) + D(m[32])
    # VENUE2 200@190.00 + 400@190.01 + 500@190.02; VENUE3 300@190.01 + 600@190.02; VENUE1 500@190.01
    assert by_venue == {"VENUE2": D(1100), "VENUE3": D(900), "VENUE1": D(500)}
    assert D(done[6]) == (200 * D("190.00") + 1200 * D("190.01") + 1100 * D("190.02")) / 2500
    check_adds_up(c, cl, done)
    order = order_of(stack, "CLIENT42", cl)
    assert [(ch.venue, ch.qty) for ch in order.children] == [("VENUE2", D(1100)), ("VENUE3", D(900)),
                                                             ("VENUE1", D(500))]
    assert sum(ch.qty for ch in order.children) == order.qty  # never more than the client's order
    # each venue received exactly its child, once
    for name, sim in stack.venues.items():
        mine = [k for k in sim.new_order_ids if k[1].startswith(order.order_id)]
        assert len(mine) == 1 and sim.new_order_ids[mine[0]] == 1, name


def test_a_sweep_rests_what_is_not_displayed_at_the_best_venue_then_a_venue_going_down_reroutes_it(env):
    stack, _ = env
    c = client(stack, "CLIENT42")
    cl = c.new_order("AAPL", "1", 4000, "190.02")  # 3600 displayed within the limit: 400 rest at VENUE2
    c.wait_for(lambda m: m.get(11) == cl and m.get(14) == "3600", what="3600 filled", timeout=10)
    order = order_of(stack, "CLIENT42", cl)
    rest = next(ch for ch in order.children if ch.venue == "VENUE2")
    assert (rest.qty, rest.cum_qty, rest.status.name) == (D(1600), D(1200), "PARTIALLY_FILLED")
    v2 = stack.venues["VENUE2"]
    assert [o.leaves_qty for o in v2.matcher.resting_orders("AAPL")] == [D(400)]

    gw = stack.gateway
    gw.session("VENUE2").logout("test: venue going down")
    try:
        # VENUE2 cancels our resting 400 as it drops; the gateway routes them to VENUE3 and VENUE1
        done = c.wait_exec(cl, "2", timeout=10)
        assert (done[14], done[151]) == ("4000", "0")
        check_adds_up(c, cl, done)
        assert {m[30] for m in fills(c, cl)} == {"VENUE1", "VENUE2", "VENUE3"}
        order = order_of(stack, "CLIENT42", cl)
        assert order.routes[-1].reason.startswith("re-route") and "VENUE2" not in [v for v, _, _ in
                                                                                   order.routes[-1].split]
        assert order.committed == order.qty
        # while VENUE2 is down, even its better price does not attract an order
        c44 = client(stack)
        cl2 = c44.new_order("AAPL", "1", 10, "190.05")
        assert c44.wait_exec(cl2, "2")[30] != "VENUE2"
        assert not v2.matcher.resting_orders("AAPL")
    finally:
        gw.session("VENUE2").logon()
        assert gw.wait_venues_up(20)
        wait_quotes(stack, {("VENUE2", "AAPL")})
    # VENUE2 is back: its late Canceled (a resend) changes nothing; the order stays filled
    time.sleep(0.3)
    assert order_of(stack, "CLIENT42", cl).cum_qty == D(4000)
    cl3 = client(stack).new_order("AAPL", "1", 10, "190.05")
    assert client(stack).wait_exec(cl3, "2")[30] == "VENUE2"


# --------------------------------------------------------------------------- re-routing a reject
def test_a_venue_reject_is_routed_to_the_next_venue_and_the_client_never_sees_it(env):
    stack, cli_cfg = env
    c = client(stack)
    cl = c.new_order("MSFT", "1", 100, "410.05")  # VENUE2 offers 410.00 (the best) but rejects MSFT
    done = c.wait_exec(cl, "2")
    assert done[30] == "VENUE3" and done[31] == "410.01"  # the next best: 410.01 + 0 beats VENUE1's 410.013
    assert [m[39] for m in c.exec_reports(cl)] == ["A", "0", "2"]  # PendingNew, New, Filled: no reject
    order = order_of(stack, "CLIENT44", cl)
    assert [(ch.venue, ch.status.name) for ch in order.children] == [("VENUE2", "REJECTED"), ("VENUE3", "FILLED")]
    reasons = [r.reason for r in order.routes]
    assert reasons[0] == "new order" and reasons[1].startswith("re-route after VENUE2 rejected 100: symbol MSFT")
    shown = fixgw(cli_cfg, "orders", "show", order.order_id).stdout
    assert "re-route after VENUE2 rejected 100" in shown and "(not to VENUE2: rejected it)" in shown
    assert "VENUE2" in shown and "rejected" in shown  # its children, with the rejected one


# --------------------------------------------------------------------------- cancel and replace across venues
def resting_on_two_venues(stack: Stack, c: FixClient, qty: int = 600) -> str:
    """A swept IBM order with a child resting at VENUE1 and one at VENUE3; returns its ClOrdID.

    VENUE1's and VENUE3's feeds are conflated (a snapshot every 2 s). Another firm's offers at both venues
    show in a snapshot and are canceled at once; the gateway, still seeing them, sweeps for them: its two
    children find nothing there and rest, one at each venue.
    """
    street = {name: FixClient(version=stack.cfg.venues[name].fix_version, sender="STREET", target=name,
                              port=stack.cfg.venues[name].port, store_dir=stack.tmp / "street").start()
              for name in ("VENUE1", "VENUE3")}
    try:
        offers = {name: s.new_order("IBM", "2", qty // 2, "230.005") for name, s in street.items()}
        for name, s in street.items():
            s.wait_exec(offers[name], "0")
        wait_quotes(stack, {("VENUE1", "IBM"), ("VENUE3", "IBM")},
                    check=lambda r: r["ask"] == D("230.005") and r["age_ms"] < 300)
        for name, s in street.items():
            s.wait_exec(s.cancel(offers[name], "IBM", "2", qty // 2), "4")
        cl = c.new_order("IBM", "1", qty, "230.005")
        c.wait_exec(cl, "A")
    finally:
        for s in street.values():
            s.stop()
    order = order_of(stack, "CLIENT42", cl)
    assert sorted((ch.venue, ch.qty) for ch in order.children) == [("VENUE1", D(qty // 2)), ("VENUE3", D(qty // 2))], \
        order.routes[-1].note
    c.wait_exec(cl, "0")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and resting_ibm(stack) != [1, 1]:
        time.sleep(0.02)
    assert resting_ibm(stack) == [1, 1]
    return cl


def resting_ibm(stack: Stack) -> list[int]:
    return [len(stack.venues[v].matcher.resting_orders("IBM")) for v in ("VENUE1", "VENUE3")]


def test_cancel_of_a_parent_with_children_resting_on_two_venues(env):
    stack, _ = env
    c = client(stack, "CLIENT42")
    cl = resting_on_two_venues(stack, c)
    x = c.cancel(cl, "IBM", "1", 600)
    pending = c.wait_exec(x, "6")
    assert pending[41] == cl
    done = c.wait_exec(x, "4")
    assert (done[41], done[14], done[151]) == (cl, "0", "0")
    assert [m[39] for m in c.exec_reports(x)] == ["6", "4"]  # one PendingCancel, one Canceled
    order = order_of(stack, "CLIENT42", x)
    assert [ch.status.name for ch in order.children] == ["CANCELED", "CANCELED"]
    assert resting_ibm(stack) == [0, 0]


def test_replace_of_a_parent_with_children_on_two_venues_cancels_them_and_routes_the_new_terms(env):
    stack, _ = env
    c = client(stack, "CLIENT42")
    cl = resting_on_two_venues(stack, c)
    r = c.replace(cl, "IBM", "1", 800, "230.00")
    c.wait_exec(r, "E")
    replaced = c.wait_for(lambda m: m.get(11) == r and m.get(150) == "5", what="Replaced")
    assert (replaced[41], replaced[38], replaced[44], replaced[151]) == (cl, "800", "230", "800")
    order = order_of(stack, "CLIENT42", r)
    # nothing is offered at 230.00: the new terms rest where resting pays best (VENUE1's -0.002 make fee)
    assert [(ch.venue, ch.qty, ch.price) for ch in order.live_children] == [("VENUE1", D(800), D("230.00"))]
    assert order.routes[-1].reason == "replace" and order.committed == D(800) + 0
    x = c.cancel(r, "IBM", "1", 800)
    assert c.wait_exec(x, "4")[14] == "0"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and resting_ibm(stack) != [0, 0]:
        time.sleep(0.02)
    assert resting_ibm(stack) == [0, 0]


def test_one_working_child_is_replaced_at_its_venue(env):
    stack, _ = env
    c = client(stack, "CLIENT42")
    cl = c.new_order("AAPL", "1", 3700, "190.02")  # 3600 displayed within the limit: 100 rest at VENUE2
    c.wait_for(lambda m: m.get(11) == cl and m.get(14) == "3600", what="3600 filled", timeout=10)
    order = order_of(stack, "CLIENT42", cl)
    assert [ch.venue for ch in order.live_children] == ["VENUE2"]
    r = c.replace(cl, "AAPL", "1", 3900, "190.02")
    replaced = c.wait_for(lambda m: m.get(11) == r and m.get(150) == "5", what="Replaced")
    assert (replaced[38], replaced[14], replaced[151]) == ("3900", "3600", "300")
    child = order_of(stack, "CLIENT42", r).live_children[0]
    assert (child.venue, child.qty, child.cum_qty) == ("VENUE2", D(1500), D(1200))  # replaced there: 300 open
    x = c.cancel(r, "AAPL", "1", 3900)
    assert c.wait_exec(x, "4")[14] == "3600"
