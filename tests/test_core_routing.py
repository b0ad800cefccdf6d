"""The core's smart order routing, without sockets: which strategy an order gets, the decision it records."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from desk.core import Core

from desk.options import ClientOptions
from orders.actions import ClientExecReport, VenueNewOrder
from orders.commands import MarketData, MDEntry, NewOrder, SessionStatus
from orders.model import OrdStatus, OrdType, RejectCode, Side, TimeInForce
from orders.records import describe_route
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
    from gateway.process.desk_settings import client_options, routing_policy, venue_model

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


# --------------------------------------------------------------------------- parents and children
from orders.actions import ClientCancelReject, VenueCancel, VenueReplace
from orders.commands import CancelRequest, ReplaceRequest, VenueCancelReject, VenueExecution
from orders.model import CxlRejCode, ExecKind

_n = iter(range(1, 10**6))


def ack(child: VenueNewOrder) -> VenueExecution:
    return _exec(child.venue, child.cl_ord_id, ExecKind.NEW)


def fill(child, qty, px) -> VenueExecution:
    return _exec(child.venue, child.cl_ord_id, ExecKind.TRADE, D(qty), D(px))


def _exec(venue, cl, kind, last_qty=D(0), last_px=D(0), orig=None, text=None) -> VenueExecution:
    return VenueExecution(venue=venue, cl_ord_id=cl, orig_cl_ord_id=orig, venue_order_id=f"VO-{cl}",
                          exec_id=f"E{next(_n)}", kind=kind, ord_status=OrdStatus.NEW, symbol="AAPL", side=Side.BUY,
                          last_qty=last_qty, last_px=last_px, cum_qty=D(0), leaves_qty=D(0), text=text)


def canceled(vc: VenueCancel) -> VenueExecution:
    return _exec(vc.venue, vc.cl_ord_id, ExecKind.CANCELED, orig=vc.orig_cl_ord_id)


def reports(out) -> list[ClientExecReport]:
    return [a for a in out.actions if isinstance(a, ClientExecReport)]


def of(out, kind) -> list:
    return [a for a in out.actions if isinstance(a, kind)]


def swept(core, qty="1000", price="190.02", **kw):
    """A sweep of ``qty`` over the three books; returns (outcome, children by venue)."""
    three_books(core)
    out = core.handle(new(qty=qty, price=price, strategy="sweep", **kw))
    return out, {c.venue: c for c in of(out, VenueNewOrder)}


def test_a_sweep_places_children_across_venues_and_the_client_sees_one_order_with_exact_totals():
    core = make_core()
    out, kids = swept(core)
    assert [(c.venue, c.qty) for c in of(out, VenueNewOrder)] == [("V2", D(200)), ("V1", D(500)), ("V3", D(300))]
    assert [r.ord_status for r in reports(out)] == [OrdStatus.PENDING_NEW]
    assert all(c.price == D("190.02") for c in kids.values())  # every child carries the client's limit
    (new_report,) = reports(core.handle(ack(kids["V2"])))
    assert new_report.ord_status is OrdStatus.NEW and new_report.leaves_qty == D(1000)
    assert reports(core.handle(ack(kids["V1"]))) == []  # the client already knows it is working
    r1 = reports(core.handle(fill(kids["V2"], 200, "190.00")))[0]
    r2 = reports(core.handle(fill(kids["V1"], 500, "190.01")))[0]
    r3 = reports(core.handle(fill(kids["V3"], 300, "190.01")))[0]
    assert [(r.last_mkt, r.last_qty, r.cum_qty, r.leaves_qty) for r in (r1, r2, r3)] == [
        ("V2", D(200), D(200), D(800)), ("V1", D(500), D(700), D(300)), ("V3", D(300), D(1000), D(0))]
    assert [r.ord_status for r in (r1, r2, r3)] == [OrdStatus.PARTIALLY_FILLED] * 2 + [OrdStatus.FILLED]
    assert r3.avg_px == (200 * D("190.00") + 800 * D("190.01")) / 1000  # exact
    assert len({r.exec_id for r in (r1, r2, r3)}) == 3 and {r.order_id for r in (r1, r2, r3)} == {r1.order_id}
    order = core.order_for_client("C1", "A1")
    assert order.status is OrdStatus.FILLED and [c.status for c in order.children] == [OrdStatus.FILLED] * 3


def test_the_rest_of_a_sweep_rests_at_the_best_venue_and_an_ioc_rest_is_never_sent():
    core = make_core()
    out, _ = swept(core, qty="1200", price="190.01")
    assert [(c.venue, c.qty) for c in of(out, VenueNewOrder)] == [("V2", D(400)), ("V1", D(500)), ("V3", D(300))]
    core = make_core()
    out, kids = swept(core, qty="1200", price="190.01", tif=TimeInForce.IOC)
    assert sum(c.qty for c in kids.values()) == D(1000) and out.routes[0].unrouted == D(200)
    for venue, child in kids.items():
        core.handle(fill(child, child.qty, "190.01" if venue != "V2" else "190.00"))
    order = core.order_for_client("C1", "A1")
    # everything routed filled; the 200 never sent leave the order canceled, as IOC asks
    assert order.status is OrdStatus.CANCELED and order.cum_qty == D(1000)
    assert core.handle(new("Q", qty="5")).actions  # (the core goes on)


def test_cancel_of_a_parent_with_children_on_two_venues_is_confirmed_when_both_are():
    core = make_core()
    _, kids = swept(core, qty="1000", price="190.02", cl="B1")
    core.handle(fill(kids["V1"], 100, "190.01"))
    out = core.handle(CancelRequest("C1", "X1", "B1", "AAPL", Side.BUY))
    (pending,) = reports(out)
    cancels = of(out, VenueCancel)
    assert pending.ord_status is OrdStatus.PENDING_CANCEL and {c.venue for c in cancels} == {"V1", "V2", "V3"}
    by_venue = {c.venue: c for c in cancels}
    assert by_venue["V1"].orig_cl_ord_id == kids["V1"].cl_ord_id
    assert reports(core.handle(canceled(by_venue["V2"]))) == []  # still waiting for V1 and V3
    assert reports(core.handle(canceled(by_venue["V1"]))) == []
    (done,) = reports(core.handle(canceled(by_venue["V3"])))
    assert (done.ord_status, done.cl_ord_id, done.orig_cl_ord_id, done.cum_qty, done.leaves_qty) == (
        OrdStatus.CANCELED, "X1", "B1", D(100), D(0))


def test_a_child_filling_before_its_cancel_arrives_counts_and_the_rest_is_canceled():
    core = make_core()
    _, kids = swept(core, qty="1000", price="190.02")
    out = core.handle(CancelRequest("C1", "X1", "A1", "AAPL", Side.BUY))
    by_venue = {c.venue: c for c in of(out, VenueCancel)}
    core.handle(fill(kids["V2"], 200, "190.00"))  # filled before the cancel reached V2
    core.handle(canceled(by_venue["V1"]))
    (done,) = reports(core.handle(canceled(by_venue["V3"])))  # V2's refusal is not needed: it filled
    assert (done.ord_status, done.cum_qty, done.cl_ord_id) == (OrdStatus.CANCELED, D(200), "X1")
    late = core.handle(VenueCancelReject("V2", by_venue["V2"].cl_ord_id, kids["V2"].cl_ord_id, None,
                                         CxlRejCode.TOO_LATE, "too late: filled"))
    assert late.actions == []


def test_a_venue_refusing_its_part_of_a_cancel_leaves_the_order_working_and_the_client_is_told():
    core = make_core()
    _, kids = swept(core, qty="1000", price="190.02")
    out = core.handle(CancelRequest("C1", "X1", "A1", "AAPL", Side.BUY))
    by_venue = {c.venue: c for c in of(out, VenueCancel)}
    core.handle(canceled(by_venue["V1"]))
    core.handle(canceled(by_venue["V3"]))
    out = core.handle(VenueCancelReject("V2", by_venue["V2"].cl_ord_id, kids["V2"].cl_ord_id, None,
                                        CxlRejCode.OTHER, "halted"))
    (rej,) = of(out, ClientCancelReject)
    assert rej.ord_status is OrdStatus.PENDING_NEW or rej.ord_status is OrdStatus.NEW
    assert "cancel refused by V2: halted" in rej.text and rej.cl_ord_id == "X1"
    order = core.order_for_client("C1", "A1")
    assert order.is_open and [c.venue for c in order.live_children] == ["V2"]
    traded, done = reports(core.handle(fill(kids["V2"], 200, "190.00")))  # V2 fills; nothing else works for it
    assert (traded.kind, traded.cum_qty, traded.last_mkt) == (ExecKind.TRADE, D(200), "V2")
    assert (done.ord_status, done.cum_qty, done.leaves_qty) == (OrdStatus.CANCELED, D(200), D(0))


def test_replacing_a_parent_with_several_children_cancels_them_then_routes_the_new_terms():
    core = make_core()
    _, kids = swept(core, qty="1000", price="190.02")
    core.handle(fill(kids["V1"], 100, "190.01"))
    out = core.handle(ReplaceRequest("C1", "R1", "A1", "AAPL", Side.BUY, D(600), OrdType.LIMIT, D("190.05")))
    (pending,) = reports(out)
    assert pending.ord_status is OrdStatus.PENDING_REPLACE and not of(out, VenueReplace)
    by_venue = {c.venue: c for c in of(out, VenueCancel)}
    core.handle(canceled(by_venue["V1"]))
    core.handle(canceled(by_venue["V2"]))
    out = core.handle(canceled(by_venue["V3"]))
    (replaced,) = reports(out)
    assert (replaced.kind, replaced.cl_ord_id, replaced.orig_cl_ord_id, replaced.order_qty, replaced.price,
            replaced.cum_qty, replaced.leaves_qty) == (ExecKind.REPLACED, "R1", "A1", D(600), D("190.05"), D(100),
                                                       D(500))
    placed = of(out, VenueNewOrder)
    assert sum(c.qty for c in placed) == D(500) and all(c.price == D("190.05") for c in placed)
    assert out.routes[0].reason == "replace"
    order = core.order_for_client("C1", "R1")
    assert order.committed <= order.qty


def test_one_working_child_is_replaced_at_its_venue():
    core = make_core()
    _, kids = swept(core, qty="1200", price="190.01")
    for venue in ("V2", "V3"):
        core.handle(fill(kids[venue], kids[venue].qty if venue == "V3" else 200, "190.00"))
    core.handle(_exec("V2", kids["V2"].cl_ord_id, ExecKind.CANCELED))  # V2's rest canceled by the venue
    out = core.handle(ReplaceRequest("C1", "R1", "A1", "AAPL", Side.BUY, D(900), OrdType.LIMIT, D("190.01")))
    (vr,) = of(out, VenueReplace)
    # filled 500 (V2 200 + V3 300); V1's child (500, none filled) now holds the new 900 - 500
    assert (vr.venue, vr.orig_cl_ord_id, vr.qty) == ("V1", kids["V1"].cl_ord_id, D(400))


def test_a_child_rejected_by_its_venue_is_routed_elsewhere_and_the_client_never_sees_the_reject():
    core = make_core(default=StrategySpec(BEST_PRICE), max_reroutes=2)
    three_books(core)
    first = of(core.handle(new(qty="100")), VenueNewOrder)[0]
    assert first.venue == "V2"
    out = core.handle(_exec("V2", first.cl_ord_id, ExecKind.REJECTED, text="halted"))
    (again,) = of(out, VenueNewOrder)
    assert again.venue == "V1" and again.qty == D(100) and reports(out) == []
    assert out.routes[0].reason == "re-route after V2 rejected 100: halted" and "not to V2" in out.routes[0].note
    out = core.handle(_exec("V1", again.cl_ord_id, ExecKind.REJECTED, text="no"))
    (third,) = of(out, VenueNewOrder)
    assert third.venue == "V3"
    (rej,) = reports(core.handle(_exec("V3", third.cl_ord_id, ExecKind.REJECTED, text="closed")))
    assert rej.ord_status is OrdStatus.REJECTED and rej.text == "rejected by V3: closed"  # two re-routes: done


def test_without_re_routing_configured_a_venue_reject_fails_the_order_as_before():
    core = make_core(default=StrategySpec(BEST_PRICE), max_reroutes=0)
    three_books(core)
    first = of(core.handle(new(qty="100")), VenueNewOrder)[0]
    (rej,) = reports(core.handle(_exec("V2", first.cl_ord_id, ExecKind.REJECTED, text="halted")))
    assert rej.ord_status is OrdStatus.REJECTED and rej.text == "rejected by V2: halted"


def test_a_direct_order_is_never_re_routed():
    core = make_core(max_reroutes=2)
    first = of(core.handle(new(qty="100", ex_destination="V3")), VenueNewOrder)[0]
    (rej,) = reports(core.handle(_exec("V3", first.cl_ord_id, ExecKind.REJECTED, text="no")))
    assert rej.ord_status is OrdStatus.REJECTED


@pytest.mark.parametrize("policy", ["hold", "cancel", "reroute"])
def test_orders_at_a_venue_that_disconnects_are_handled_as_configured(policy):
    core = make_core(max_reroutes=1, V2={"on_disconnect": policy})
    _, kids = swept(core, qty="1000", price="190.02")
    for child in kids.values():
        core.handle(ack(child))
    core.handle(fill(kids["V1"], 500, "190.01"))
    out = core.handle(SessionStatus("V2", "venue", False))
    order = core.order_for_client("C1", "A1")
    v2 = order.child("V2", kids["V2"].cl_ord_id)
    if policy == "hold":
        assert out.actions == [] and v2.status is OrdStatus.NEW
        rej = of(core.handle(CancelRequest("C1", "X1", "A1", "AAPL", Side.BUY)), ClientCancelReject)[0]
        assert "venue V2 is not connected" in rej.text
        return
    assert v2.status is OrdStatus.CANCELED and order in core.touched(SessionStatus("V2", "venue", False), out)
    placed = of(out, VenueNewOrder)
    if policy == "cancel":
        assert placed == [] and order.is_open  # V3's child still works
        traded, done = reports(core.handle(fill(kids["V3"], 300, "190.01")))
        assert traded.cum_qty == D(800) and done.ord_status is OrdStatus.CANCELED
        assert "V2" in done.text and "disconnected" in done.text
    else:
        assert [(c.venue, c.qty) for c in placed] == [("V1", D(200))] or [(c.venue, c.qty) for c in placed] == [
            ("V3", D(200))]
        assert order.committed <= order.qty


def test_an_order_restored_from_a_state_file_written_before_children_existed_has_one_child():
    import pickle

    from orders.states import Order, PendingReplace

    legacy = ["T-9", "C1", "A9", "AAPL", Side.BUY, D(100), OrdType.LIMIT, D(190), None, TimeInForce.DAY, None,
              OrdStatus.PENDING_REPLACE, D(40), D(7600), "V1", "T-9", "VO-9", None,
              PendingReplace("R9", "T-9.r1", D(200), D(191), OrdType.LIMIT, TimeInForce.DAY), None, "A9", 3, 1,
              {"E1"}, ["A9", "R9"], ["T-9", "T-9.r1"], T0]
    order = Order.__new__(Order)
    order.__setstate__(legacy)
    (child,) = order.children
    assert (child.venue, child.cl_ord_id, child.venue_order_id, child.cum_qty, child.cl_ord_ids) == (
        "V1", "T-9", "VO-9", D(40), ["T-9", "T-9.r1"])
    assert child.pending_replace.cl_ord_id == "T-9.r1" and order.replace_mode == "venue"
    assert order.routes == [] and order.strategy is None and order.venue == "V1"
    assert pickle.loads(pickle.dumps(order)) == order
    core = make_core()
    core.restore([order])
    out = core.handle(_exec("V1", "T-9.r1", ExecKind.REPLACED, orig="T-9"))
    (replaced,) = reports(out)
    assert (replaced.cl_ord_id, replaced.order_qty, replaced.cum_qty) == ("R9", D(200), D(40))
