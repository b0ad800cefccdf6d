"""Routing decisions from given books: the strategies are pure functions of what the router sees."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest

from orders.model import Side, TimeInForce
from routing.quotes import Quote
from routing.router import (
    BEST_PRICE, PREFERRED, SWEEP, Candidate, Leg, StrategySpec, best_price, direct, parse_strategy, preferred, route,
    sweep,
)

T = datetime(2026, 11, 24, 14, 0, tzinfo=timezone.utc)
BUY, SELL = Side.BUY, Side.SELL
DAY, IOC, FOK = TimeInForce.DAY, TimeInForce.IOC, TimeInForce.FOK


def book(name, bids=(), asks=()):
    return Quote(name, "AAPL", tuple((D(p), D(s)) for p, s in bids), tuple((D(p), D(s)) for p, s in asks), T)


def venue(name, rank, bids=(), asks=(), *, up=True, trades=True, priority=0, take="0", make="0", quote=True):
    return Candidate(name, up, trades, priority, rank, D(take), D(make),
                     book(name, bids, asks) if quote else None)


# Three venues at different prices and sizes (the scenario tests run the same books):
# V1 asks 190.01 x 500, 190.02 x 1000; V2 asks 190.00 x 200, 190.03 x 400; V3 asks 190.01 x 300
def three(**kw):
    return [venue("V1", 0, bids=[("189.99", 500), ("189.98", 1000)], asks=[("190.01", 500), ("190.02", 1000)],
                  **kw.get("V1", {})),
            venue("V2", 1, bids=[("190.00", 300)], asks=[("190.00", 200), ("190.03", 400)], **kw.get("V2", {})),
            venue("V3", 2, bids=[("189.97", 800)], asks=[("190.01", 300)], **kw.get("V3", {}))]


def legs(r):
    return [(leg.venue, leg.qty) for leg in r.legs]


# --------------------------------------------------------------------------- best-price
def test_best_price_sends_the_whole_order_to_the_best_offer_for_a_buy_and_best_bid_for_a_sell():
    assert legs(best_price("AAPL", BUY, D(1000), D("190.05"), three())) == [("V2", D(1000))]
    r = best_price("AAPL", SELL, D(100), None, three())
    assert legs(r) == [("V2", D(100))] and "V2 has the best fee-adjusted bid: 190 - take fee 0 = 190" in r.note


def test_best_price_is_fee_aware():
    # V2's 190.00 plus a 0.02 take fee costs more than V1's 190.01 plus 0.003
    cands = three(V2={"take": "0.02"}, V1={"take": "0.003"})
    r = best_price("AAPL", BUY, D(100), D("190.05"), cands)
    assert legs(r) == [("V3", D(100))]  # V3 190.01 + 0 beats V1 190.013
    assert "190.01 + take fee 0 = 190.01" in r.note and "V1 190.013" in r.note and "V2 190.02" in r.note
    # a sell receives the bid minus the fee: V2's 190.00 - 0.02 = 189.98 < V1's 189.99 - 0
    assert legs(best_price("AAPL", SELL, D(100), None, three(V2={"take": "0.02"}))) == [("V1", D(100))]


def test_equal_prices_go_to_the_lower_priority_number_then_to_configuration_order():
    cands = three(V2={"quote": False})  # V1 and V3 both offer 190.01
    assert legs(best_price("AAPL", BUY, D(100), None, cands)) == [("V1", D(100))]
    cands = three(V2={"quote": False}, V1={"priority": 2}, V3={"priority": 1})
    assert legs(best_price("AAPL", BUY, D(100), None, cands)) == [("V3", D(100))]


def test_venues_down_or_not_trading_the_symbol_are_never_chosen():
    cands = three(V2={"up": False}, V1={"trades": False})
    assert legs(best_price("AAPL", BUY, D(100), None, cands)) == [("V3", D(100))]
    none = best_price("AAPL", BUY, D(100), None, three(V1={"up": False}, V2={"up": False}, V3={"up": False}))
    assert not none.ok and none.note == "no venue trading AAPL is connected (V1, V2, V3 down)"


def test_an_order_no_venue_can_fill_now_rests_where_resting_costs_least():
    # a buy at 189.50 crosses no offer: rest where the make fee is lowest (a rebate is negative)
    cands = three(V1={"make": "-0.002"}, V3={"make": "-0.0025"})
    r = best_price("AAPL", BUY, D(100), D("189.50"), cands)
    assert legs(r) == [("V3", D(100))] and "no venue can fill it now" in r.note and "-0.0025" in r.note


def test_without_fresh_quotes_best_price_falls_back_to_priority_and_configuration_order():
    cands = three(V1={"quote": False}, V2={"quote": False, "priority": 1}, V3={"quote": False})
    r = best_price("AAPL", BUY, D(100), D("190.05"), cands)
    assert legs(r) == [("V1", D(100))] and "no fresh quotes" in r.note


# --------------------------------------------------------------------------- preferred
def test_preferred_takes_the_named_venue_then_its_fallbacks_in_order():
    assert legs(preferred("AAPL", BUY, D(100), None, three(), ("V3", "V1"))) == [("V3", D(100))]
    r = preferred("AAPL", BUY, D(100), None, three(V3={"up": False}), ("V3", "V1"))
    assert legs(r) == [("V1", D(100))] and r.note == "V1: fallback (V3 down)"
    r = preferred("AAPL", BUY, D(100), None, three(V3={"up": False}, V1={"trades": False}), ("V3", "V1"))
    assert not r.ok and "V3 down; V1 does not trade AAPL" in r.note


def test_preferred_without_a_list_is_the_first_venue_by_priority_that_is_up():
    assert legs(preferred("AAPL", BUY, D(100), None, three(V1={"up": False}))) == [("V2", D(100))]
    assert legs(preferred("AAPL", BUY, D(100), None, three(V3={"priority": -1}))) == [("V3", D(100))]


def test_direct_names_the_venue_and_nothing_else():
    assert legs(direct("AAPL", D(5), "V2", three())) == [("V2", D(5))]
    assert direct("AAPL", D(5), "V2", three(V2={"up": False})).note == "ExDestination V2 is not connected"
    assert direct("AAPL", D(5), "V2", three(V2={"trades": False})).note == "ExDestination V2 does not trade AAPL"


# --------------------------------------------------------------------------- sweep
def test_sweep_takes_displayed_size_best_price_first_across_venues():
    # buy 1000 up to 190.02: V2 200 @190.00, V1 500 @190.01, V3 300 @190.01 (V1 first: configuration order)
    r = sweep("AAPL", BUY, D(1000), D("190.02"), DAY, three())
    assert legs(r) == [("V2", D(200)), ("V1", D(500)), ("V3", D(300))] and r.unrouted == 0
    assert sum(leg.qty for leg in r.legs) == D(1000)


def test_sweep_stops_at_the_limit_and_the_rest_rests_at_the_best_venue():
    # buy 1200 up to 190.01: 200 + 500 + 300 = 1000 displayed within the limit; 200 rest at V2 (best price)
    r = sweep("AAPL", BUY, D(1200), D("190.01"), DAY, three())
    assert legs(r) == [("V2", D(400)), ("V1", D(500)), ("V3", D(300))]
    assert "the other 200 rests at V2" in r.note


def test_an_ioc_sweep_does_not_route_what_is_not_displayed():
    r = sweep("AAPL", BUY, D(1200), D("190.01"), IOC, three())
    assert legs(r) == [("V2", D(200)), ("V1", D(500)), ("V3", D(300))] and r.unrouted == D(200)
    assert sum(leg.qty for leg in r.legs) + r.unrouted == D(1200)


def test_a_sweep_sells_into_the_highest_bids_fee_adjusted():
    # sell 900 down to 189.98: V2 300 @190.00, V1 500 @189.99, then V1 100 @189.98 (V3's 189.97 is below)
    r = sweep("AAPL", SELL, D(900), D("189.98"), DAY, three())
    assert legs(r) == [("V2", D(300)), ("V1", D(600))]
    # with a 0.015 take fee V2's bid is worth 189.985: V1's 189.99 comes first
    r = sweep("AAPL", SELL, D(400), D("189.98"), DAY, three(V2={"take": "0.015"}))
    assert legs(r) == [("V1", D(400))]


def test_a_sweep_ignores_venues_down_and_quotes_not_trusted():
    r = sweep("AAPL", BUY, D(1000), D("190.02"), DAY, three(V2={"up": False}, V3={"quote": False}))
    assert legs(r) == [("V1", D(1000))]  # 500 @190.01 + 500 of V1's 1000 @190.02


def test_a_fill_or_kill_order_is_not_split_and_nothing_displayed_falls_back_to_best_price():
    r = sweep("AAPL", BUY, D(1000), D("190.02"), FOK, three())
    assert legs(r) == [("V2", D(1000))] and r.strategy == SWEEP and "fill-or-kill is not split" in r.note
    r = sweep("AAPL", BUY, D(100), D("189.00"), DAY, three(V3={"make": "-0.003"}))
    assert legs(r) == [("V3", D(100))] and "no displayed liquidity within the limit" in r.note


def test_a_sweep_never_routes_more_than_the_order():
    for qty in (1, 199, 200, 701, 1000, 5000):
        for tif in (DAY, IOC):
            r = sweep("AAPL", BUY, D(qty), None, tif, three())
            assert sum(leg.qty for leg in r.legs) + r.unrouted == D(qty), (qty, tif, r)


# --------------------------------------------------------------------------- choosing the strategy
@pytest.mark.parametrize("text, spec", [
    ("best-price", StrategySpec(BEST_PRICE)), ("SWEEP", StrategySpec(SWEEP)), ("preferred", StrategySpec(PREFERRED)),
    ("preferred:V3, V1", StrategySpec(PREFERRED, ("V3", "V1"))),
])
def test_the_order_tag_names_a_strategy(text, spec):
    assert parse_strategy(text) == spec


@pytest.mark.parametrize("text", ["fastest", "sweep:V1", ""])
def test_a_strategy_the_router_does_not_know_is_refused_with_the_reason(text):
    with pytest.raises(ValueError, match="9100"):
        parse_strategy(text)


def test_route_dispatches_on_the_strategy():
    assert legs(route(StrategySpec(BEST_PRICE), "AAPL", BUY, D(10), None, DAY, three())) == [("V2", D(10))]
    assert legs(route(StrategySpec(PREFERRED, ("V3",)), "AAPL", BUY, D(10), None, DAY, three())) == [("V3", D(10))]
    assert route(StrategySpec(SWEEP), "AAPL", BUY, D(300), None, DAY, three()).legs == (Leg("V2", D(200)),
                                                                                         Leg("V1", D(100)))
