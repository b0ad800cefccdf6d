"""The core's smart order routing, without sockets: which strategy an order gets, the decision it records."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from routing.core import ClientOptions, Core
from routing.model import (
    ClientExecReport, MarketData, MDEntry, NewOrder, OrdStatus, OrdType, RejectCode, SessionStatus, Side,
    TimeInForce, VenueNewOrder, describe_route,
)
from routing.router import BEST_PRICE, PREFERRED, RoutingPolicy, StrategySpec, Venue

T0 = datetime(2026, 11, 24, 14, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self):
        self.t = T0

    def __call__(self):
        return self.t


def make_core(default=StrategySpec(PREFERRED), accounts=None, clients=None, clock=None, max_reroutes=2, **venue_kw):
    venues = [Venue("V1", frozenset({"AAPL", "IBM"}), **venue_kw.get("V1", {})),
              Venue("V2", frozenset({"AAPL"}), **venue_kw.get("V2", {})),
              Venue("V3", frozenset({"AAPL", "IBM"}), **venue_kw.get("V3", {}))]
    core = Core(venues, clients or {"C1": ClientOptions(), "C2": ClientOptions(strategy=StrategySpec(BEST_PRICE))},
                "T", clock=clock or Clock(),
                policy=RoutingPolicy(max_quote_age=timedelta(seconds=5), default=default, accounts=accounts or {},
                                     max_reroutes=max_reroutes))
    for name in ("V1", "V2", "V3"):
        core.handle(SessionStatus(name, "venue", True))
    return core


def book(core, venue, bids=(), asks=(), symbol="AAPL"):
    entries = tuple(MDEntry(Side.BUY, D(p), D(s)) for p, s in bids) + tuple(MDEntry(Side.SELL, D(p), D(s))
                                                                            for p, s in asks)
    core.handle(MarketData(venue=venue, req_id="R", symbol=symbol, entries=entries, snapshot=True))


def three_books(core):
    """V1 asks 190.01 x 500; V2 asks 190.00 x 200 (the best); V3 asks 190.01 x 300."""
    book(core, "V1", bids=[("189.99", 500)], asks=[("190.01", 500), ("190.02", 1000)])
    book(core, "V2", bids=[("190.00", 300)], asks=[("190.00", 200), ("190.03", 400)])
    book(core, "V3", bids=[("189.97", 800)], asks=[("190.01", 300)])


def new(cl="A1", qty="100", price="190.05", session="C1", side=Side.BUY, **kw) -> NewOrder:
    return NewOrder(session=session, cl_ord_id=cl, symbol=kw.pop("symbol", "AAPL"), side=side, qty=D(qty),
                    ord_type=OrdType.LIMIT if price is not None else OrdType.MARKET,
                    price=D(price) if price is not None else None, **kw)


def sent(out) -> list[tuple[str, D]]:
    return [(a.venue, a.qty) for a in out.actions if isinstance(a, VenueNewOrder)]


# --------------------------------------------------------------------------- which strategy
def test_the_default_strategy_is_the_first_venue_by_priority_as_before_the_router():
    core = make_core()
    three_books(core)
    out = core.handle(new())
    assert sent(out) == [("V1", D(100))]
    (decision,) = out.routes
    assert (decision.strategy, decision.reason) == ("preferred", "new order")


def test_strategy_by_session_then_account_then_order_tag_then_exdestination():
    core = make_core(accounts={"ACC": StrategySpec(PREFERRED, ("V3",))})
    three_books(core)
    assert sent(core.handle(new("S1", session="C2"))) == [("V2", D(100))]  # C2: best-price
    assert sent(core.handle(new("S2", session="C2", account="ACC"))) == [("V3", D(100))]  # the account's
    assert sent(core.handle(new("S3", session="C2", account="ACC", strategy="preferred:V1"))) == [("V1", D(100))]
    out = core.handle(new("S4", session="C2", strategy="preferred:V1", ex_destination="V3"))
    assert sent(out) == [("V3", D(100))] and out.routes[0].strategy == "direct"


def test_an_unknown_strategy_on_the_order_is_rejected_with_the_reason():
    core = make_core()
    for cl, text, words in (("X1", "fastest", "unknown routing strategy 'fastest' (tag 9100)"),
                            ("X2", "preferred:NOPE", "unknown venue NOPE")):
        rej = next(a for a in core.handle(new(cl, strategy=text)).actions if isinstance(a, ClientExecReport))
        assert rej.ord_status is OrdStatus.REJECTED and rej.reject_code is RejectCode.OTHER and words in rej.text


# --------------------------------------------------------------------------- the decision and its inputs
def test_the_decision_records_the_quotes_with_their_age_the_fees_and_the_split():
    clock = Clock()
    core = make_core(default=StrategySpec(BEST_PRICE), clock=clock, V2={"take_fee": D("0.02")},
                     V1={"take_fee": D("0.003"), "make_fee": D("-0.002"), "priority": 1})
    three_books(core)
    clock.t += timedelta(milliseconds=1500)
    book(core, "V3", bids=[("189.97", 800)], asks=[("190.01", 300)])  # V3's quote is younger
    clock.t += timedelta(milliseconds=500)
    out = core.handle(new())
    (d,) = out.routes
    assert sent(out) == [("V3", D(100))]  # 190.01 + 0 beats V1's 190.013 and V2's 190.02
    assert (d.strategy, d.qty, d.limit, d.side) == ("best-price", D(100), D("190.05"), Side.BUY)
    seen = {q.venue: q for q in d.quotes}
    assert (seen["V1"].ask, seen["V1"].ask_size, seen["V1"].age_ms, seen["V1"].take_fee, seen["V1"].make_fee,
            seen["V1"].priority) == (D("190.01"), D(500), 2000, D("0.003"), D("-0.002"), 1)
    assert seen["V3"].age_ms == 500 and all(q.trusted for q in d.quotes)
    order = core.order_for_client("C1", "A1")
    assert d.split == (("V3", D(100), order.order_id),) and order.routes == [d] and order.strategy == "best-price"
    line = describe_route(d)
    assert "best-price buy 100 AAPL limit 190.05 -> V3 100" in line and "V1 189.99x500/190.01x500 age 2000ms" in line
    assert "take 0.003 make -0.002 prio 1" in line


def test_stale_quotes_are_not_trusted():
    clock = Clock()
    core = make_core(default=StrategySpec(BEST_PRICE), clock=clock)
    three_books(core)
    clock.t += timedelta(seconds=4)
    book(core, "V3", asks=[("190.01", 300)])
    clock.t += timedelta(seconds=2)  # V1 and V2 are 6 s old: V2's better offer is not trusted
    out = core.handle(new())
    assert sent(out) == [("V3", D(100))]
    seen = {q.venue: q for q in out.routes[0].quotes}
    assert not seen["V2"].trusted and seen["V2"].age_ms == 6000 and seen["V3"].trusted
    assert "STALE" in describe_route(out.routes[0])


def test_a_venue_down_is_not_routed_to_and_nowhere_to_go_is_a_recorded_decision():
    core = make_core(default=StrategySpec(BEST_PRICE))
    three_books(core)
    core.handle(SessionStatus("V2", "venue", False))
    assert sent(core.handle(new("A1"))) == [("V1", D(100))]
    for v in ("V1", "V3"):
        core.handle(SessionStatus(v, "venue", False))
    out = core.handle(new("A2"))
    rej = next(a for a in out.actions if isinstance(a, ClientExecReport))
    assert rej.reject_code is RejectCode.EXCHANGE_CLOSED and "no venue trading AAPL is connected" in rej.text
    assert out.routes[0].split == () and core.order_for_client("C1", "A2") is None


# --------------------------------------------------------------------------- configuration
CONFIG = """
[routing]
strategy = "best-price"
max_quote_age_s = 2.5
[routing.accounts.HEDGE]
strategy = "preferred"
preferred_venues = ["V2", "V1"]
[clients.C1]
fix_version = "FIX.4.4"
strategy = "preferred"
preferred_venues = ["V1"]
[venues.V1]
fix_version = "FIX.4.4"
port = 9001
symbols = ["AAPL"]
priority = 2
fees = { take = 0.003, make = -0.002 }
[venues.V2]
fix_version = "FIX.4.2"
port = 9002
symbols = ["AAPL"]
"""


def test_routing_settings_are_read_validated_and_given_to_the_core(tmp_path):
    from gateway.config import parse_config
    from gateway.server import client_options, routing_policy, venue_model

    cfg = parse_config(CONFIG, tmp_path, env={})
    policy = routing_policy(cfg)
    assert policy.default == StrategySpec(BEST_PRICE) and policy.max_quote_age == timedelta(seconds=2.5)
    assert policy.accounts == {"HEDGE": StrategySpec(PREFERRED, ("V2", "V1"))}
    assert client_options(cfg.clients["C1"]).strategy == StrategySpec(PREFERRED, ("V1",))
    v1 = venue_model("V1", cfg.venues["V1"])
    assert (v1.priority, v1.take_fee, v1.make_fee) == (2, D("0.003"), D("-0.002"))
    assert venue_model("V2", cfg.venues["V2"]).take_fee == D(0)


@pytest.mark.parametrize("change, words", [
    (('preferred_venues = ["V2", "V1"]', 'preferred_venues = ["V9"]'), "names V9, not a configured venue"),
    (('strategy = "best-price"', 'strategy = "fastest"'), "routing.strategy"),
    (("take = 0.003", "take = 3"), "venues.V1.fees.take"),
    (('strategy = "preferred"\npreferred_venues = ["V1"]', 'strategy = "best-price"\npreferred_venues = ["V1"]'),
     'preferred_venues needs strategy = "preferred"'),
    (("priority = 2", "priorty = 2"), "venues.V1.priorty"),
])
def test_a_bad_routing_setting_stops_start_up_naming_it(tmp_path, change, words):
    from gateway.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=words.replace(".", r"\.").replace("(", r"\(")):
        parse_config(CONFIG.replace(*change), tmp_path, env={})
