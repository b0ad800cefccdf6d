"""The venue simulator's pure matching book and matcher (venuesim.book, venuesim.matcher)."""
from __future__ import annotations

import itertools
from decimal import Decimal as D

import pytest

from venuesim.config import SimulatorConfig
from orders.actions import ClientCancelReject, ClientExecReport
from orders.commands import NewOrder
from orders.model import CxlRejCode, CxlRejResponseTo, ExecKind, OrdStatus, OrdType, RejectCode, Side, TimeInForce
from venuesim.book import TopOfBook
from venuesim.matcher import Matcher

# Asks: 190.01 x500, 190.02 x1000, 190.03 x1500, 190.04 x2000, 190.05 x2500 (7500 in all)
# Bids: 189.99 x500, 189.98 x1000, 189.97 x1500, 189.96 x2000, 189.95 x2500
CFG = SimulatorConfig(prices={"AAPL": D("190.00"), "MSFT": D("410.00"), "HALT": D("10")},
                      tick=D("0.01"), half_spread_ticks=1, depth=5, level_size=D(500), reject_symbols=("HALT",))
_ids = itertools.count(1)


@pytest.fixture
def m() -> Matcher:
    return Matcher(CFG, id_prefix="V1", last_mkt="V1")


def order(side: Side, qty, price=None, *, symbol="AAPL", owner="S1", tif=TimeInForce.DAY, ord_type=None,
          cl=None) -> NewOrder:
    return NewOrder(session=owner, cl_ord_id=cl or f"c{next(_ids)}", symbol=symbol, side=side, qty=D(str(qty)),
                    ord_type=ord_type or (OrdType.LIMIT if price is not None else OrdType.MARKET),
                    price=D(str(price)) if price is not None else None, tif=tif)


def buy(qty, price=None, **kw) -> NewOrder:
    return order(Side.BUY, qty, price, **kw)


def sell(qty, price=None, **kw) -> NewOrder:
    return order(Side.SELL, qty, price, **kw)


def trades(reports, owner=None) -> list[ClientExecReport]:
    return [r for r in reports if isinstance(r, ClientExecReport) and r.kind is ExecKind.TRADE
            and (owner is None or r.session == owner)]


def kinds(reports) -> list[ExecKind]:
    return [r.kind for r in reports]


# --------------------------------------------------------------------------- synthetic book
def test_synthetic_book_has_configured_spread_depth_and_sizes(m):
    book = m.books["AAPL"]
    assert book.depth(Side.SELL) == [(D("190.01"), D(500)), (D("190.02"), D(1000)), (D("190.03"), D(1500)),
                                     (D("190.04"), D(2000)), (D("190.05"), D(2500))]
    assert book.depth(Side.BUY)[0] == (D("189.99"), D(500))
    assert book.depth(Side.BUY)[-1] == (D("189.95"), D(2500))
    assert m.top_of_book("AAPL") == TopOfBook(D("189.99"), D(500), D("190.01"), D(500))


def test_bid_levels_never_go_to_zero_or_below():
    m = Matcher(SimulatorConfig(prices={"PENNY": D("0.03")}, depth=5))
    assert [p for p, _ in m.books["PENNY"].depth(Side.BUY)] == [D("0.02"), D("0.01")]


# --------------------------------------------------------------------------- fills
def test_marketable_buy_fills_fully_at_the_best_ask(m):
    reports = m.submit(buy(300, "190.05"))
    assert kinds(reports) == [ExecKind.NEW, ExecKind.TRADE]
    fill = reports[1]
    assert (fill.last_qty, fill.last_px, fill.cum_qty, fill.leaves_qty, fill.avg_px) == \
        (D(300), D("190.01"), D(300), D(0), D("190.01"))
    assert fill.ord_status is OrdStatus.FILLED
    assert fill.last_mkt == "V1"
    assert reports[0].ord_status is OrdStatus.NEW and reports[0].leaves_qty == D(300)


def test_marketable_buy_walks_the_ask_levels_with_exact_avg_px(m):
    reports = m.submit(buy(1000, "190.02"))
    fills = trades(reports)
    assert [(f.last_qty, f.last_px) for f in fills] == [(D(500), D("190.01")), (D(500), D("190.02"))]
    assert [f.ord_status for f in fills] == [OrdStatus.PARTIALLY_FILLED, OrdStatus.FILLED]
    assert [f.cum_qty for f in fills] == [D(500), D(1000)]
    assert [f.leaves_qty for f in fills] == [D(500), D(0)]
    assert fills[-1].avg_px == D("190.015")
    assert all(isinstance(f.avg_px, D) and isinstance(f.last_px, D) for f in fills)


def test_marketable_sell_walks_the_bid_levels(m):
    fills = trades(m.submit(sell(2000)))
    assert [(f.last_qty, f.last_px) for f in fills] == [(D(500), D("189.99")), (D(1000), D("189.98")),
                                                        (D(500), D("189.97"))]
    assert fills[-1].avg_px == D("189.98")  # (500*189.99 + 1000*189.98 + 500*189.97) / 2000


def test_avg_px_is_exact_decimal_arithmetic():
    cfg = SimulatorConfig(prices={"X": D("0.3")}, tick=D("0.1"), depth=3, level_size=D(1))
    m = Matcher(cfg)
    fills = trades(m.submit(buy(3, symbol="X")))  # 1 @ 0.4, 2 @ 0.5
    assert fills[-1].avg_px == (D("0.4") + 2 * D("0.5")) / 3
    assert fills[-1].cum_qty * fills[-1].avg_px == D("1.4")  # no float error anywhere


def test_fractional_quantities_stay_exact():
    m = Matcher(SimulatorConfig(prices={"BTC": D("60000")}, tick=D("0.5"), level_size=D("0.25")))
    fills = trades(m.submit(buy("0.3", symbol="BTC")))
    assert [(f.last_qty, f.last_px) for f in fills] == [(D("0.25"), D("60000.5")), (D("0.05"), D("60001.0"))]
    assert fills[-1].avg_px == (D("0.25") * D("60000.5") + D("0.05") * D("60001")) / D("0.3")


def test_limit_order_bigger_than_depth_rests_its_remainder(m):
    reports = m.submit(buy(8000, "190.05"))
    assert kinds(reports) == [ExecKind.NEW] + [ExecKind.TRADE] * 5
    last = reports[-1]
    assert last.cum_qty == D(7500) and last.leaves_qty == D(500)
    assert last.ord_status is OrdStatus.PARTIALLY_FILLED
    [resting] = m.resting_orders("AAPL")
    assert resting.cl_ord_id == last.cl_ord_id and resting.leaves_qty == D(500)
    # the synthetic asks that would cross the resting bid are not replenished: the book never crosses
    assert m.top_of_book("AAPL") == TopOfBook(D("190.05"), D(500), None, D(0))


def test_market_order_bigger_than_depth_cancels_its_remainder(m):
    reports = m.submit(buy(8000))
    assert kinds(reports) == [ExecKind.NEW] + [ExecKind.TRADE] * 5 + [ExecKind.CANCELED]
    canceled = reports[-1]
    assert canceled.ord_status is OrdStatus.CANCELED
    assert (canceled.cum_qty, canceled.leaves_qty) == (D(7500), D(0))
    assert m.resting_orders("AAPL") == []


def test_ioc_remainder_is_canceled(m):
    reports = m.submit(buy(800, "190.01", tif=TimeInForce.IOC))
    assert kinds(reports) == [ExecKind.NEW, ExecKind.TRADE, ExecKind.CANCELED]
    assert reports[1].last_qty == D(500)
    assert (reports[-1].cum_qty, reports[-1].leaves_qty, reports[-1].ord_status) == \
        (D(500), D(0), OrdStatus.CANCELED)
    assert m.resting_orders("AAPL") == []


def test_non_marketable_ioc_is_canceled_without_fills(m):
    reports = m.submit(sell(100, "191", tif=TimeInForce.IOC))
    assert kinds(reports) == [ExecKind.NEW, ExecKind.CANCELED]


def test_fok_fills_completely_when_enough_is_available(m):
    reports = m.submit(buy(1500, "190.02", tif=TimeInForce.FOK))
    assert kinds(reports) == [ExecKind.NEW, ExecKind.TRADE, ExecKind.TRADE]
    assert reports[-1].ord_status is OrdStatus.FILLED


def test_fok_does_not_fill_at_all_when_not_enough_is_available(m):
    reports = m.submit(buy(1501, "190.02", tif=TimeInForce.FOK))
    assert kinds(reports) == [ExecKind.NEW, ExecKind.CANCELED]
    assert reports[-1].cum_qty == D(0)
    assert m.top_of_book("AAPL").ask_size == D(500)  # nothing was taken


def test_non_marketable_limit_rests_as_new(m):
    reports = m.submit(buy(100, "189.50"))
    assert kinds(reports) == [ExecKind.NEW]
    assert reports[0].ord_status is OrdStatus.NEW and reports[0].leaves_qty == D(100)
    assert [o.cl_ord_id for o in m.resting_orders("AAPL")] == [reports[0].cl_ord_id]


def test_synthetic_liquidity_is_replenished_after_every_order(m):
    first = trades(m.submit(buy(500)))
    second = trades(m.submit(buy(500)))
    assert [(f.last_qty, f.last_px) for f in first] == [(D(500), D("190.01"))]
    assert [(f.last_qty, f.last_px) for f in second] == [(D(500), D("190.01"))]
    assert m.top_of_book("AAPL") == TopOfBook(D("189.99"), D(500), D("190.01"), D(500))


def test_resting_order_inside_the_spread_has_price_priority_and_its_owner_gets_the_fill(m):
    rest = m.submit(buy(300, "190.00", owner="S1"))[0]
    assert m.top_of_book("AAPL").bid == D("190.00")
    reports = m.submit(sell(500, owner="S2"))
    aggressor = trades(reports, "S2")
    passive = trades(reports, "S1")
    assert [(f.last_qty, f.last_px) for f in aggressor] == [(D(300), D("190.00")), (D(200), D("189.99"))]
    assert [(f.cl_ord_id, f.last_qty, f.last_px, f.ord_status) for f in passive] == \
        [(rest.cl_ord_id, D(300), D("190.00"), OrdStatus.FILLED)]
    assert passive[0].order_id == rest.order_id and passive[0].last_mkt == "V1"
    # the aggressor's fill comes before the resting owner's, per match
    assert [r.session for r in trades(reports)] == ["S2", "S1", "S2"]
    assert m.resting_orders("AAPL") == []


def test_synthetic_level_has_time_priority_over_client_order_at_the_same_price(m):
    m.submit(buy(300, "189.99", owner="S1"))
    fills = trades(m.submit(sell(600, owner="S2")))
    # 500 synthetic at 189.99 first, then the client's 300 at 189.99 takes the next 100
    assert [(f.session, f.last_qty, f.last_px) for f in fills] == [
        ("S2", D(500), D("189.99")), ("S2", D(100), D("189.99")), ("S1", D(100), D("189.99"))]


def test_resting_orders_at_the_same_price_fill_in_time_order(m):
    a = m.submit(sell(100, "190.005", owner="A"))[0]
    b = m.submit(sell(100, "190.005", owner="B"))[0]
    fills = trades(m.submit(buy(150, "190.005", owner="C")))
    assert [(f.session, f.last_qty) for f in fills] == [("C", D(100)), ("A", D(100)), ("C", D(50)), ("B", D(50))]
    assert m.order("A", a.cl_ord_id).status is OrdStatus.FILLED
    assert m.order("B", b.cl_ord_id).leaves_qty == D(50)


def test_partially_filled_resting_order_keeps_resting(m):
    rest = m.submit(sell(1000, "190.00", owner="S1"))[0]
    m.submit(buy(400, owner="S2"))
    o = m.order("S1", rest.cl_ord_id)
    assert (o.status, o.cum_qty, o.leaves_qty) == (OrdStatus.PARTIALLY_FILLED, D(400), D(600))
    assert m.top_of_book("AAPL").ask == D("190.00")


# --------------------------------------------------------------------------- rejects
@pytest.mark.parametrize("new, code, text", [
    (buy(100, "10", symbol="NOPE"), RejectCode.UNKNOWN_SYMBOL, "Unknown symbol NOPE"),
    (buy(100, "10", symbol="HALT"), RejectCode.VENUE, "reject_symbols"),
    (buy(0, "190"), RejectCode.INCORRECT_QUANTITY, "OrderQty must be positive"),
    (buy(-5), RejectCode.INCORRECT_QUANTITY, "OrderQty must be positive"),
    (order(Side.BUY, 100, None, ord_type=OrdType.LIMIT), RejectCode.OTHER, "without Price"),
    (buy(100, "-1"), RejectCode.OTHER, "positive"),
    (order(Side.BUY, 100, "190", ord_type=OrdType.STOP), RejectCode.UNSUPPORTED_ORDER_CHARACTERISTIC,
     "OrdType stop is not supported"),
    (order(Side.BUY, 100, "190", ord_type=OrdType.STOP_LIMIT), RejectCode.UNSUPPORTED_ORDER_CHARACTERISTIC,
     "OrdType stop_limit is not supported"),
])
def test_invalid_orders_are_rejected_with_a_reason(m, new, code, text):
    [rep] = m.submit(new)
    assert rep.kind is ExecKind.REJECTED and rep.ord_status is OrdStatus.REJECTED
    assert rep.reject_code is code
    assert text in rep.text
    assert (rep.cum_qty, rep.leaves_qty) == (D(0), D(0))


def test_duplicate_clordid_is_rejected_and_the_original_is_untouched(m):
    first = m.submit(buy(100, "189", cl="dup"))[0]
    [rep] = m.submit(buy(100, "189", cl="dup"))
    assert rep.reject_code is RejectCode.DUPLICATE_ORDER
    assert m.order("S1", "dup").order_id == first.order_id
    assert m.order("S1", "dup").status is OrdStatus.NEW


def test_order_and_exec_ids_are_unique(m):
    reports = m.submit(buy(3000)) + m.submit(sell(3000)) + m.submit(buy(10, "100"))
    assert len({r.exec_id for r in reports}) == len(reports)
    assert len({r.order_id for r in reports}) == 3
    assert all(r.order_id.startswith("V1-") for r in reports)


# --------------------------------------------------------------------------- cancel
def test_cancel_of_resting_order_cancels_it_and_removes_it_from_the_book(m):
    new = m.submit(buy(100, "189.50", cl="o1"))[0]
    [rep] = m.cancel("S1", "o1", "x1")
    assert isinstance(rep, ClientExecReport)
    assert (rep.kind, rep.ord_status, rep.cl_ord_id, rep.orig_cl_ord_id, rep.leaves_qty, rep.order_id) == \
        (ExecKind.CANCELED, OrdStatus.CANCELED, "x1", "o1", D(0), new.order_id)
    assert m.resting_orders("AAPL") == []


def test_cancel_of_partially_filled_order_keeps_its_cum_qty(m):
    m.submit(sell(1000, "190.00", cl="s1"))
    m.submit(buy(400, owner="S2"))
    [rep] = m.cancel("S1", "s1", "x1")
    assert (rep.ord_status, rep.cum_qty, rep.leaves_qty, rep.avg_px) == \
        (OrdStatus.CANCELED, D(400), D(0), D("190.00"))


def test_cancel_of_unknown_order_is_rejected_as_unknown(m):
    [rej] = m.cancel("S1", "nope", "x1")
    assert isinstance(rej, ClientCancelReject)
    assert (rej.reason, rej.order_id, rej.ord_status, rej.response_to) == \
        (CxlRejCode.UNKNOWN_ORDER, "NONE", OrdStatus.REJECTED, CxlRejResponseTo.CANCEL)


def test_cancel_of_another_sessions_order_is_unknown(m):
    m.submit(buy(100, "189", owner="S1", cl="o1"))
    [rej] = m.cancel("S2", "o1", "x1")
    assert rej.reason is CxlRejCode.UNKNOWN_ORDER


def test_cancel_of_filled_order_is_too_late(m):
    m.submit(buy(100, cl="o1"))
    [rej] = m.cancel("S1", "o1", "x1")
    assert (rej.reason, rej.ord_status) == (CxlRejCode.TOO_LATE, OrdStatus.FILLED)


def test_cancel_of_canceled_order_is_too_late(m):
    m.submit(buy(100, "189", cl="o1"))
    m.cancel("S1", "o1", "x1")
    [rej] = m.cancel("S1", "x1", "x2")
    assert (rej.reason, rej.ord_status) == (CxlRejCode.TOO_LATE, OrdStatus.CANCELED)


def test_cancel_unsuppresses_synthetic_levels(m):
    m.submit(buy(8000, "190.05", cl="big"))
    assert m.top_of_book("AAPL").ask is None
    m.cancel("S1", "big", "x")
    assert m.top_of_book("AAPL") == TopOfBook(D("189.99"), D(500), D("190.01"), D(500))


# --------------------------------------------------------------------------- replace
def test_replace_reducing_quantity_keeps_time_priority(m):
    m.submit(sell(100, "190.005", owner="A", cl="a1"))
    m.submit(sell(100, "190.005", owner="B", cl="b1"))
    [rep] = m.replace("A", "a1", "a2", D(50))
    assert (rep.kind, rep.ord_status, rep.cl_ord_id, rep.orig_cl_ord_id, rep.order_qty, rep.price) == \
        (ExecKind.REPLACED, OrdStatus.NEW, "a2", "a1", D(50), D("190.005"))
    fills = trades(m.submit(buy(60, "190.005", owner="C")))
    assert [(f.session, f.last_qty) for f in fills] == [("C", D(50)), ("A", D(50)), ("C", D(10)), ("B", D(10))]


def test_replace_changing_price_loses_time_priority(m):
    m.submit(sell(100, "190.005", owner="A", cl="a1"))
    m.submit(sell(100, "190.006", owner="B", cl="b1"))
    m.replace("B", "b1", "b2", D(100), D("190.005"))
    m.replace("A", "a1", "a2", D(100), D("190.004"))
    m.replace("A", "a2", "a3", D(100), D("190.005"))  # back to B's price, but later
    fills = trades(m.submit(buy(100, "190.005", owner="C")))
    assert [(f.session, f.last_qty) for f in fills] == [("C", D(100)), ("B", D(100))]


def test_replace_that_becomes_marketable_fills(m):
    m.submit(buy(800, "189.00", cl="o1"))
    reports = m.replace("S1", "o1", "o2", D(800), D("190.02"))
    assert kinds(reports) == [ExecKind.REPLACED, ExecKind.TRADE, ExecKind.TRADE]
    assert [(r.last_qty, r.last_px) for r in reports[1:]] == [(D(500), D("190.01")), (D(300), D("190.02"))]
    assert reports[-1].ord_status is OrdStatus.FILLED and reports[-1].cl_ord_id == "o2"
    assert reports[-1].avg_px == (500 * D("190.01") + 300 * D("190.02")) / 800


def test_replace_of_partially_filled_order_reports_status_partially_filled(m):
    m.submit(sell(1000, "190.00", cl="s1"))
    m.submit(buy(400, owner="S2"))
    [rep] = m.replace("S1", "s1", "s2", D(800))
    assert (rep.ord_status, rep.cum_qty, rep.leaves_qty) == (OrdStatus.PARTIALLY_FILLED, D(400), D(400))


def test_replace_quantity_must_exceed_filled_quantity(m):
    m.submit(sell(1000, "190.00", cl="s1"))
    m.submit(buy(400, owner="S2"))
    for qty in (D(400), D(300)):
        [rej] = m.replace("S1", "s1", f"s-{qty}", qty)
        assert isinstance(rej, ClientCancelReject)
        assert (rej.reason, rej.response_to, rej.ord_status) == \
            (CxlRejCode.OTHER, CxlRejResponseTo.REPLACE, OrdStatus.PARTIALLY_FILLED)
        assert "must exceed the filled quantity 400" in rej.text
    assert m.order("S1", "s1").qty == D(1000)


def test_replace_of_unknown_or_finished_order_is_rejected(m):
    [unknown] = m.replace("S1", "nope", "n2", D(10))
    assert (unknown.reason, unknown.order_id, unknown.response_to) == \
        (CxlRejCode.UNKNOWN_ORDER, "NONE", CxlRejResponseTo.REPLACE)
    m.submit(buy(100, cl="f1"))
    [late] = m.replace("S1", "f1", "f2", D(200))
    assert (late.reason, late.ord_status) == (CxlRejCode.TOO_LATE, OrdStatus.FILLED)


def test_replaced_order_can_be_canceled_by_its_new_clordid(m):
    m.submit(buy(100, "189", cl="o1"))
    m.replace("S1", "o1", "o2", D(200))
    [rep] = m.cancel("S1", "o2", "o3")
    assert (rep.ord_status, rep.orig_cl_ord_id, rep.order_qty) == (OrdStatus.CANCELED, "o2", D(200))


# --------------------------------------------------------------------------- status, retention
def test_status_of_known_and_unknown_orders(m):
    m.submit(sell(1000, "190.00", cl="s1"))
    m.submit(buy(400, owner="S2"))
    rep = m.status("S1", "s1")
    assert (rep.kind, rep.ord_status, rep.cum_qty, rep.leaves_qty) == \
        (ExecKind.ORDER_STATUS, OrdStatus.PARTIALLY_FILLED, D(400), D(600))
    unknown = m.status("S1", "zzz", "AAPL", Side.SELL)
    assert (unknown.ord_status, unknown.order_id, unknown.reject_code) == \
        (OrdStatus.REJECTED, "NONE", RejectCode.UNKNOWN_ORDER)


def test_finished_orders_are_forgotten_beyond_the_retention():
    m = Matcher(CFG, done_retention=2)
    for cl in ("a", "b", "c"):
        m.submit(buy(1, cl=cl))
    assert m.order("S1", "a") is None
    assert m.order("S1", "c").status is OrdStatus.FILLED
    [rej] = m.cancel("S1", "a", "x")
    assert rej.reason is CxlRejCode.UNKNOWN_ORDER


def test_a_sessions_resting_orders_are_canceled_when_the_venue_cancels_on_disconnect(m):
    m.submit(buy(100, "189.995", owner="S1", cl="b1"))
    m.submit(sell(100, "410.005", owner="S1", cl="s1", symbol="MSFT"))
    m.submit(buy(50, "189.995", owner="S2", cl="b2"))
    reports, symbols = m.cancel_owner("S1", "disconnected")
    assert {(r.cl_ord_id, r.kind, r.ord_status, r.text) for r in reports} == {
        ("b1", ExecKind.CANCELED, OrdStatus.CANCELED, "disconnected"),
        ("s1", ExecKind.CANCELED, OrdStatus.CANCELED, "disconnected")}
    assert symbols == {"AAPL", "MSFT"}
    assert [o.cl_ord_id for o in m.resting_orders("AAPL")] == ["b2"]  # another session's order stays
    assert m.top_of_book("MSFT") == TopOfBook(D("409.99"), D(500), D("410.01"), D(500))


def test_a_venue_that_forgets_a_sessions_orders_no_longer_knows_them_and_sends_nothing(m):
    m.submit(buy(100, "189.995", owner="S1", cl="rest"))
    m.submit(buy(10, owner="S1", cl="done"))
    m.submit(buy(50, "189.995", owner="S2", cl="other"))
    assert m.forget("S1") == (2, {"AAPL"})
    assert m.order("S1", "rest") is None and m.order("S1", "done") is None
    assert m.status("S1", "rest").reject_code is RejectCode.UNKNOWN_ORDER
    [rej] = m.cancel("S1", "rest", "x")
    assert rej.reason is CxlRejCode.UNKNOWN_ORDER
    assert [o.cl_ord_id for o in m.resting_orders("AAPL")] == ["other"]
    assert m.submit(buy(100, "189.995", owner="S1", cl="rest"))[0].kind is ExecKind.NEW  # the ClOrdID is free again
    assert m.forget() == (2, {"AAPL"}) and m.all_orders() == []


def test_open_orders_lists_a_sessions_working_orders_oldest_first_by_symbol_and_side(m):
    m.submit(buy(100, "189.50", owner="S1", cl="b1"))
    m.submit(sell(100, "410.50", owner="S1", cl="s1", symbol="MSFT"))
    m.submit(buy(100, "189.40", owner="S1", cl="b2"))
    m.submit(buy(10, owner="S1", cl="filled"))
    m.submit(buy(100, "189.50", owner="S2", cl="theirs"))
    assert [o.cl_ord_id for o in m.open_orders("S1")] == ["b1", "s1", "b2"]
    assert [o.cl_ord_id for o in m.open_orders("S1", "AAPL")] == ["b1", "b2"]
    assert [o.cl_ord_id for o in m.open_orders("S1", side=Side.SELL)] == ["s1"]
    rep = m.status_of(m.order("S1", "b2"))
    assert (rep.kind, rep.ord_status, rep.leaves_qty) == (ExecKind.ORDER_STATUS, OrdStatus.NEW, D(100))


# --------------------------------------------------------------------------- restart with the book kept
def test_a_restarted_matcher_takes_back_working_orders_with_their_fills_chain_and_priority(m):
    m.submit(buy(100, "189.00", cl="k1"))
    m.submit(buy(100, "189.00", cl="k2", owner="S2"))
    m.submit(buy(700, "190.01", cl="k3"))  # 500 filled, 200 rest at 190.01
    m.replace("S1", "k1", "k1b", D(150), D("189.00"))
    m.submit(buy(100, "190.10", cl="gone"))  # filled at once: not working, not saved
    saved = m.resting_book()
    # a replace that raised the quantity lost its time priority, as at a venue: k1b is now the youngest
    assert [(d["owner"], d["cl_ord_ids"]) for d in saved] == [("S2", ["k2"]), ("S1", ["k3"]), ("S1", ["k1", "k1b"])]

    fresh = Matcher(CFG, id_prefix="V1b", last_mkt="V1")
    assert fresh.restore_book(saved) == 3
    k3 = fresh.order("S1", "k3")
    assert (k3.cum_qty, k3.leaves_qty, k3.status, k3.avg_px) == (D(500), D(200), OrdStatus.PARTIALLY_FILLED,
                                                                  D("190.01"))
    assert fresh.order("S1", "k1") is fresh.order("S1", "k1b") and fresh.order("S1", "k1b").qty == D(150)
    assert fresh.order("S1", "gone") is None
    status = fresh.status("S2", "k2")
    assert status.ord_status is OrdStatus.NEW and status.order_id == m.order("S2", "k2").order_id
    # price, then time priority as before the restart
    assert [o.cl_ord_id for o in fresh.resting_orders("AAPL")] == ["k3", "k2", "k1b"]
    assert fresh.top_of_book("AAPL") == m.top_of_book("AAPL")
    assert kinds(fresh.cancel("S2", "k2", "k2x")) == [ExecKind.CANCELED]


def test_restoring_skips_orders_for_symbols_no_longer_traded_and_orders_already_known(m):
    m.submit(buy(100, "189.00", cl="a1"))
    saved = m.resting_book()
    saved.append({**saved[0], "symbol": "GONE", "cl_ord_ids": ["z1"]})
    fresh = Matcher(CFG, id_prefix="V1b")
    assert fresh.restore_book(saved) == 1
    assert fresh.restore_book(saved) == 0
