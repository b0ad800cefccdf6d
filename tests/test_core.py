"""The core, without sockets: commands in, actions out."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from desk.core import Core

from desk.options import ClientOptions
from orders.actions import ClientCancelReject, ClientExecReport, VenueCancel, VenueDontKnow, VenueNewOrder
from orders.commands import CancelRequest, NewOrder, SessionStatus, VenueCancelReject, VenueExecution
from orders.model import CxlRejCode, ExecKind, OrdStatus, OrdType, RejectCode, Side
from routing.router import Venue


def make_core(pending_new=True, up=("V1", "V2")) -> Core:
    venues = [Venue("V1", frozenset({"AAPL", "MSFT"})), Venue("V2", frozenset({"AAPL", "IBM"}))]
    core = Core(venues, {"C1": ClientOptions(pending_new=pending_new)}, "T")
    for name in up:
        core.handle(SessionStatus(name, "venue", True))
    return core


def order(cl="A1", symbol="AAPL", qty="100", price="190.01", ord_type=OrdType.LIMIT, **kw) -> NewOrder:
    return NewOrder(session="C1", cl_ord_id=cl, symbol=symbol, side=Side.BUY, qty=D(qty), ord_type=ord_type,
                    price=D(price) if price is not None else None, **kw)


def venue_exec(child, kind, status, last_qty="0", last_px="0", cum="0", leaves="0", exec_id="E1", venue="V1"):
    return VenueExecution(venue=venue, cl_ord_id=child, orig_cl_ord_id=None, venue_order_id="VO1", exec_id=exec_id,
                          kind=kind, ord_status=status, symbol="AAPL", side=Side.BUY, last_qty=D(last_qty),
                          last_px=D(last_px), cum_qty=D(cum), leaves_qty=D(leaves))


def only(actions, kind):
    found = [a for a in actions if isinstance(a, kind)]
    assert len(found) == 1, actions
    return found[0]


def test_new_order_is_acknowledged_pending_and_sent_to_the_first_venue_trading_the_symbol():
    core = make_core()
    out = core.handle(order())
    ack = only(out.actions, ClientExecReport)
    assert (ack.kind, ack.ord_status, ack.leaves_qty) == (ExecKind.PENDING_NEW, OrdStatus.PENDING_NEW, D(100))
    sent = only(out.actions, VenueNewOrder)
    assert sent.venue == "V1" and sent.qty == D(100) and sent.price == D("190.01")


def test_pending_new_can_be_switched_off_per_client():
    out = make_core(pending_new=False).handle(order())
    assert [type(a) for a in out.actions] == [VenueNewOrder]


def test_ex_destination_routes_directly():
    out = make_core().handle(order(ex_destination="V2"))
    assert only(out.actions, VenueNewOrder).venue == "V2"


def test_symbol_only_on_a_down_venue_is_rejected_as_exchange_closed():
    core = make_core(up=("V1",))
    rej = only(core.handle(order(symbol="IBM")).actions, ClientExecReport)
    assert rej.ord_status is OrdStatus.REJECTED and rej.reject_code is RejectCode.EXCHANGE_CLOSED
    assert "IBM" in rej.text and "V2" in rej.text


@pytest.mark.parametrize("cmd, code, words", [
    (order(symbol="ZZZZ"), RejectCode.UNKNOWN_SYMBOL, "unknown symbol ZZZZ"),
    (order(qty="0"), RejectCode.INCORRECT_QUANTITY, "OrderQty must be positive"),
    (order(qty="-5"), RejectCode.INCORRECT_QUANTITY, "OrderQty must be positive"),
    (order(price=None), RejectCode.OTHER, "without Price"),
    (order(price="0"), RejectCode.OTHER, "Price must be positive"),
    (order(ord_type=OrdType.STOP), RejectCode.UNSUPPORTED_ORDER_CHARACTERISTIC, "not supported"),
    (order(ex_destination="NOPE"), RejectCode.OTHER, "unknown ExDestination NOPE"),
])
def test_orders_that_make_no_business_sense_are_rejected_with_a_reason(cmd, code, words):
    out = make_core().handle(cmd)
    rej = only(out.actions, ClientExecReport)
    assert rej.ord_status is OrdStatus.REJECTED and rej.reject_code is code and words in rej.text
    assert not [a for a in out.actions if isinstance(a, VenueNewOrder)]


def test_rejected_clordid_may_be_reused_but_a_live_one_may_not():
    core = make_core()
    core.handle(order(cl="A1", qty="0"))
    assert only(core.handle(order(cl="A1")).actions, VenueNewOrder)
    dup = only(core.handle(order(cl="A1")).actions, ClientExecReport)
    assert dup.reject_code is RejectCode.DUPLICATE_ORDER


def test_venue_ack_then_partial_then_full_fill_aggregates_exactly():
    core = make_core()
    child = only(core.handle(order(qty="300")).actions, VenueNewOrder).cl_ord_id
    new = only(core.handle(venue_exec(child, ExecKind.NEW, OrdStatus.NEW, exec_id="E0")).actions, ClientExecReport)
    assert new.kind is ExecKind.NEW and new.ord_status is OrdStatus.NEW
    p1 = only(core.handle(venue_exec(child, ExecKind.TRADE, OrdStatus.PARTIALLY_FILLED, "100", "190.01",
                                     exec_id="E1")).actions, ClientExecReport)
    assert (p1.ord_status, p1.cum_qty, p1.leaves_qty, p1.last_mkt) == (OrdStatus.PARTIALLY_FILLED, D(100), D(200), "V1")
    p2 = only(core.handle(venue_exec(child, ExecKind.TRADE, OrdStatus.FILLED, "200", "190.02",
                                     exec_id="E2")).actions, ClientExecReport)
    assert (p2.ord_status, p2.cum_qty, p2.leaves_qty) == (OrdStatus.FILLED, D(300), D(0))
    assert p2.avg_px == (D(100) * D("190.01") + D(200) * D("190.02")) / D(300)
    assert p1.exec_id != p2.exec_id


def test_a_resent_venue_execution_is_not_booked_twice():
    core = make_core()
    child = only(core.handle(order()).actions, VenueNewOrder).cl_ord_id
    core.handle(venue_exec(child, ExecKind.TRADE, OrdStatus.PARTIALLY_FILLED, "50", "190", exec_id="E7"))
    again = core.handle(venue_exec(child, ExecKind.TRADE, OrdStatus.PARTIALLY_FILLED, "50", "190", exec_id="E7"))
    assert again.actions == [] and "duplicate ExecID" in again.warnings[0]
    assert core.order_for_client("C1", "A1").cum_qty == D(50)


def test_a_fill_beyond_order_quantity_is_capped_and_reported():
    core = make_core()
    child = only(core.handle(order(qty="100")).actions, VenueNewOrder).cl_ord_id
    out = core.handle(venue_exec(child, ExecKind.TRADE, OrdStatus.FILLED, "150", "190", exec_id="E1"))
    fill = only(out.actions, ClientExecReport)
    assert fill.cum_qty == D(100) and fill.last_qty == D(100) and "overfill" in out.warnings[0]


def test_venue_execution_for_an_unknown_order_gets_dont_know_trade():
    out = make_core().handle(venue_exec("NOPE", ExecKind.TRADE, OrdStatus.FILLED, "10", "190"))
    dk = only(out.actions, VenueDontKnow)
    assert dk.exec_id == "E1" and "NOPE" in dk.text and out.warnings


def test_non_fill_report_for_an_unknown_order_is_only_logged():
    out = make_core().handle(venue_exec("NOPE", ExecKind.NEW, OrdStatus.NEW))
    assert out.actions == [] and out.warnings


def test_venue_reject_becomes_a_client_reject_naming_the_venue():
    core = make_core()
    child = only(core.handle(order()).actions, VenueNewOrder).cl_ord_id
    ev = venue_exec(child, ExecKind.REJECTED, OrdStatus.REJECTED)
    rej = only(core.handle(ev).actions, ClientExecReport)
    assert rej.ord_status is OrdStatus.REJECTED and "V1" in rej.text


def test_cancel_is_forwarded_and_confirmed_only_when_the_venue_confirms():
    core = make_core()
    child = only(core.handle(order()).actions, VenueNewOrder).cl_ord_id
    core.handle(venue_exec(child, ExecKind.NEW, OrdStatus.NEW, exec_id="E0"))
    out = core.handle(CancelRequest("C1", "X1", "A1", "AAPL", Side.BUY))
    pending = only(out.actions, ClientExecReport)
    assert pending.ord_status is OrdStatus.PENDING_CANCEL and (pending.cl_ord_id, pending.orig_cl_ord_id) == ("X1", "A1")
    vc = only(out.actions, VenueCancel)
    assert vc.orig_cl_ord_id == child
    done = only(core.handle(VenueExecution(
        venue="V1", cl_ord_id=vc.cl_ord_id, orig_cl_ord_id=child, venue_order_id="VO1", exec_id="E9",
        kind=ExecKind.CANCELED, ord_status=OrdStatus.CANCELED, symbol="AAPL", side=Side.BUY, last_qty=D(0),
        last_px=D(0), cum_qty=D(0), leaves_qty=D(0))).actions, ClientExecReport)
    assert done.ord_status is OrdStatus.CANCELED and (done.cl_ord_id, done.orig_cl_ord_id) == ("X1", "A1")
    assert done.leaves_qty == 0


def test_cancel_refused_by_the_venue_returns_the_order_to_working():
    core = make_core()
    child = only(core.handle(order()).actions, VenueNewOrder).cl_ord_id
    core.handle(venue_exec(child, ExecKind.TRADE, OrdStatus.PARTIALLY_FILLED, "10", "190", exec_id="E1"))
    vc = only(core.handle(CancelRequest("C1", "X1", "A1", "AAPL", Side.BUY)).actions, VenueCancel)
    rej = only(core.handle(VenueCancelReject("V1", vc.cl_ord_id, child, "VO1", CxlRejCode.TOO_LATE, "late")).actions,
               ClientCancelReject)
    assert rej.ord_status is OrdStatus.PARTIALLY_FILLED and rej.cl_ord_id == "X1" and "late" in rej.text


def test_cancel_for_an_order_that_never_existed_gets_unknown_order():
    rej = only(make_core().handle(CancelRequest("C1", "X1", "GHOST", "AAPL", Side.BUY)).actions, ClientCancelReject)
    assert rej.reason is CxlRejCode.UNKNOWN_ORDER and rej.order_id == "NONE" and "GHOST" in rej.text


def test_cancel_of_a_filled_order_is_too_late():
    core = make_core()
    child = only(core.handle(order()).actions, VenueNewOrder).cl_ord_id
    core.handle(venue_exec(child, ExecKind.TRADE, OrdStatus.FILLED, "100", "190", exec_id="E1"))
    rej = only(core.handle(CancelRequest("C1", "X1", "A1", "AAPL", Side.BUY)).actions, ClientCancelReject)
    assert rej.reason is CxlRejCode.TOO_LATE and rej.ord_status is OrdStatus.FILLED


def test_second_cancel_while_one_is_pending_is_refused():
    core = make_core()
    core.handle(order())
    core.handle(CancelRequest("C1", "X1", "A1", "AAPL", Side.BUY))
    rej = only(core.handle(CancelRequest("C1", "X2", "A1", "AAPL", Side.BUY)).actions, ClientCancelReject)
    assert rej.reason is CxlRejCode.ALREADY_PENDING


def test_fill_racing_a_cancel_completes_the_order_and_the_late_cancel_reject_changes_nothing():
    core = make_core()
    child = only(core.handle(order()).actions, VenueNewOrder).cl_ord_id
    vc = only(core.handle(CancelRequest("C1", "X1", "A1", "AAPL", Side.BUY)).actions, VenueCancel)
    fill = only(core.handle(venue_exec(child, ExecKind.TRADE, OrdStatus.FILLED, "100", "190", exec_id="E1")).actions,
                ClientExecReport)
    assert fill.ord_status is OrdStatus.FILLED and fill.cum_qty == D(100)
    rej = only(core.handle(VenueCancelReject("V1", vc.cl_ord_id, child, "VO1", CxlRejCode.TOO_LATE)).actions,
               ClientCancelReject)
    assert rej.ord_status is OrdStatus.FILLED
    assert core.order_for_client("C1", "A1").cum_qty == D(100)


# ---------------------------------------------------------------------------- replace, status, mass cancel
from orders.actions import ClientMassCancelReport, VenueReplace
from orders.commands import EndOfDay, MassCancelRequest, ReplaceRequest, StatusRequest
from orders.model import CxlRejResponseTo, TimeInForce


def working(core: Core, cl="A1", qty="100", price="185", **kw) -> str:
    """An order acknowledged by V1; returns its child ClOrdID."""
    child = only(core.handle(order(cl=cl, qty=qty, price=price, **kw)).actions, VenueNewOrder).cl_ord_id
    core.handle(venue_exec(child, ExecKind.NEW, OrdStatus.NEW, exec_id=f"ack-{cl}"))
    return child


def replace(cl="R1", orig="A1", qty="200", price="185", side=Side.BUY, symbol="AAPL") -> ReplaceRequest:
    return ReplaceRequest("C1", cl, orig, symbol, side, D(qty), OrdType.LIMIT, D(price))


def venue_replaced(vr: VenueReplace, cum="0", exec_id="ER") -> VenueExecution:
    return VenueExecution(venue="V1", cl_ord_id=vr.cl_ord_id, orig_cl_ord_id=vr.orig_cl_ord_id,
                          venue_order_id="VO1", exec_id=exec_id, kind=ExecKind.REPLACED, ord_status=OrdStatus.NEW,
                          symbol="AAPL", side=Side.BUY, last_qty=D(0), last_px=D(0), cum_qty=D(cum),
                          leaves_qty=vr.qty - D(cum))


def test_replace_is_forwarded_and_confirmed_only_when_the_venue_confirms():
    core = make_core()
    child = working(core)
    out = core.handle(replace(qty="200", price="186"))
    pending = only(out.actions, ClientExecReport)
    assert pending.ord_status is OrdStatus.PENDING_REPLACE and (pending.cl_ord_id, pending.orig_cl_ord_id) == ("R1", "A1")
    vr = only(out.actions, VenueReplace)
    assert (vr.orig_cl_ord_id, vr.qty, vr.price) == (child, D(200), D(186))
    done = only(core.handle(venue_replaced(vr)).actions, ClientExecReport)
    assert done.kind is ExecKind.REPLACED and done.ord_status is OrdStatus.NEW
    assert (done.cl_ord_id, done.orig_cl_ord_id, done.order_qty, done.price, done.leaves_qty) == \
        ("R1", "A1", D(200), D(186), D(200))
    # the chain goes on from the new ClOrdID
    again = core.handle(replace(cl="R2", orig="R1", qty="150"))
    assert only(again.actions, VenueReplace).orig_cl_ord_id == vr.cl_ord_id


def test_fill_racing_a_replace_counts_against_the_old_terms_and_survives_the_replace():
    core = make_core()
    child = working(core)
    vr = only(core.handle(replace(qty="300")).actions, VenueReplace)
    fill = only(core.handle(venue_exec(child, ExecKind.TRADE, OrdStatus.PARTIALLY_FILLED, "40", "185",
                                       exec_id="F1")).actions, ClientExecReport)
    assert fill.ord_status is OrdStatus.PENDING_REPLACE and fill.cum_qty == D(40)
    done = only(core.handle(venue_replaced(vr, cum="40")).actions, ClientExecReport)
    assert (done.ord_status, done.cum_qty, done.leaves_qty) == (OrdStatus.PARTIALLY_FILLED, D(40), D(260))


def test_fill_completing_the_order_before_a_replace_makes_the_late_replace_reject_harmless():
    core = make_core()
    child = working(core)
    vr = only(core.handle(replace(qty="300")).actions, VenueReplace)
    core.handle(venue_exec(child, ExecKind.TRADE, OrdStatus.FILLED, "100", "185", exec_id="F1"))
    rej = only(core.handle(VenueCancelReject("V1", vr.cl_ord_id, child, "VO1", CxlRejCode.TOO_LATE, "filled",
                                             response_to=CxlRejResponseTo.REPLACE)).actions, ClientCancelReject)
    assert rej.response_to is CxlRejResponseTo.REPLACE and rej.ord_status is OrdStatus.FILLED and rej.cl_ord_id == "R1"
    assert core.order_for_client("C1", "A1").cum_qty == D(100)


def test_venue_refusing_a_replace_returns_the_order_to_working_with_its_old_terms():
    core = make_core()
    child = working(core)
    vr = only(core.handle(replace(qty="300")).actions, VenueReplace)
    rej = only(core.handle(VenueCancelReject("V1", vr.cl_ord_id, child, "VO1", CxlRejCode.OTHER, "no",
                                             response_to=CxlRejResponseTo.REPLACE)).actions, ClientCancelReject)
    assert rej.ord_status is OrdStatus.NEW and "replace refused by V1" in rej.text
    o = core.order_for_client("C1", "A1")
    assert (o.qty, o.cl_ord_id, o.pending_replace) == (D(100), "A1", None)


@pytest.mark.parametrize("req, words", [
    (replace(side=Side.SELL), "may not change Side"),
    (replace(symbol="MSFT"), "may not change Symbol"),
    (replace(qty="0"), "OrderQty must be positive"),
    (replace(orig="GHOST"), "unknown order"),
])
def test_replace_that_changes_what_may_not_change_is_refused_with_a_reason(req, words):
    core = make_core()
    working(core)
    rej = only(core.handle(req).actions, ClientCancelReject)
    assert rej.response_to is CxlRejResponseTo.REPLACE and words in rej.text


def test_replace_below_what_has_filled_is_refused():
    core = make_core()
    child = working(core)
    core.handle(venue_exec(child, ExecKind.TRADE, OrdStatus.PARTIALLY_FILLED, "60", "185", exec_id="F1"))
    rej = only(core.handle(replace(qty="60")).actions, ClientCancelReject)
    assert "must exceed CumQty 60" in rej.text


def test_status_request_is_answered_from_the_gateways_state():
    core = make_core()
    child = working(core)
    core.handle(venue_exec(child, ExecKind.TRADE, OrdStatus.PARTIALLY_FILLED, "30", "185", exec_id="F1"))
    st = only(core.handle(StatusRequest("C1", "A1", "AAPL", Side.BUY)).actions, ClientExecReport)
    assert (st.kind, st.ord_status, st.cum_qty, st.leaves_qty) == (ExecKind.ORDER_STATUS, OrdStatus.PARTIALLY_FILLED,
                                                                  D(30), D(70))
    unknown = only(core.handle(StatusRequest("C1", "NOPE", "AAPL", Side.BUY)).actions, ClientExecReport)
    assert unknown.ord_status is OrdStatus.REJECTED and unknown.reject_code is RejectCode.UNKNOWN_ORDER


def test_status_of_an_order_refused_at_intake_is_the_refusal_the_client_was_told():
    core = make_core(up=("V1",))
    rej = only(core.handle(order(cl="I1", symbol="IBM")).actions, ClientExecReport)  # IBM trades only at V2, down
    st = only(core.handle(StatusRequest("C1", "I1", "IBM", Side.BUY)).actions, ClientExecReport)
    assert (st.kind, st.order_id, st.ord_status, st.reject_code, st.text) == (
        ExecKind.ORDER_STATUS, rej.order_id, OrdStatus.REJECTED, RejectCode.EXCHANGE_CLOSED, rej.text)
    assert (st.symbol, st.order_qty, st.cum_qty) == ("IBM", D(100), D(0))
    other = only(core.handle(StatusRequest("OTHER", "I1", "IBM", Side.BUY)).actions, ClientExecReport)
    assert other.order_id == "NONE"  # never another session's
    core.handle(order(cl="I1", symbol="AAPL"))  # the ClOrdID reused for a corrected order: that one is the answer
    again = only(core.handle(StatusRequest("C1", "I1", "AAPL", Side.BUY)).actions, ClientExecReport)
    assert again.ord_status is not OrdStatus.REJECTED and again.order_id != rej.order_id


def test_a_refusal_dropped_past_the_cap_is_unknown_again():
    core = make_core(up=("V1",))
    core.rejected_kept = 2
    for cl in ("I1", "I2", "I3"):
        core.handle(order(cl=cl, symbol="IBM"))
    answers = {cl: only(core.handle(StatusRequest("C1", cl, "IBM", Side.BUY)).actions, ClientExecReport).order_id
               for cl in ("I1", "I2", "I3")}
    assert answers["I1"] == "NONE" and "NONE" not in (answers["I2"], answers["I3"])
    assert len(core.rejected_by_client) == 2


def test_status_request_never_reveals_another_sessions_order():
    core = make_core()
    working(core)
    oid = core.order_for_client("C1", "A1").order_id
    st = only(core.handle(StatusRequest("OTHER", "A1", "AAPL", Side.BUY, order_id=oid)).actions, ClientExecReport)
    assert st.ord_status is OrdStatus.REJECTED and st.session == "OTHER"


def test_mass_cancel_by_symbol_reports_first_then_cancels_each_matching_order():
    core = make_core()
    working(core, cl="A1")
    working(core, cl="A2")
    working(core, cl="M1", symbol="MSFT")
    out = core.handle(MassCancelRequest("C1", "Q1", "1", symbol="AAPL"))
    report = out.actions[0]
    assert isinstance(report, ClientMassCancelReport) and (report.response, report.affected) == ("1", 2)
    assert len([a for a in out.actions if isinstance(a, VenueCancel)]) == 2
    assert core.order_for_client("C1", "M1").status is OrdStatus.NEW


@pytest.mark.parametrize("req_type, symbol, reason", [("3", None, "0"), ("1", None, "1")])
def test_mass_cancel_that_cannot_be_done_is_rejected_with_a_reason(req_type, symbol, reason):
    out = make_core().handle(MassCancelRequest("C1", "Q1", req_type, symbol=symbol))
    (report,) = out.actions
    assert (report.response, report.reject_reason, report.affected) == ("0", reason, 0) and report.text


def test_gateway_initiated_cancel_reports_its_cause_when_the_venue_confirms():
    core = make_core()
    child = working(core)
    vc = only(core.handle(MassCancelRequest("C1", "Q1", "7")).actions, VenueCancel)
    done = only(core.handle(VenueExecution(
        venue="V1", cl_ord_id=vc.cl_ord_id, orig_cl_ord_id=child, venue_order_id="VO1", exec_id="X9",
        kind=ExecKind.CANCELED, ord_status=OrdStatus.CANCELED, symbol="AAPL", side=Side.BUY, last_qty=D(0),
        last_px=D(0), cum_qty=D(0), leaves_qty=D(0))).actions, ClientExecReport)
    assert done.ord_status is OrdStatus.CANCELED and done.cl_ord_id == "A1" and "mass cancel Q1" in done.text


def cancel_confirm(core, vc: VenueCancel, exec_id: str) -> ClientExecReport:
    return only(core.handle(VenueExecution(
        venue="V1", cl_ord_id=vc.cl_ord_id, orig_cl_ord_id=vc.orig_cl_ord_id, venue_order_id="VO1", exec_id=exec_id,
        kind=ExecKind.CANCELED, ord_status=OrdStatus.CANCELED, symbol="AAPL", side=Side.BUY, last_qty=D(0),
        last_px=D(0), cum_qty=D(0), leaves_qty=D(0))).actions, ClientExecReport)


@pytest.mark.parametrize("configured", [True, False])
def test_cancel_on_disconnect_cancels_only_day_orders_and_only_when_configured(configured):
    core = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions(cancel_on_disconnect=configured)}, "T")
    core.handle(SessionStatus("V1", "venue", True))
    working(core, cl="DAY1")
    working(core, cl="GTC1", tif=TimeInForce.GTC)
    out = core.handle(SessionStatus("C1", "client", False))
    cancels = [a for a in out.actions if isinstance(a, VenueCancel)]
    assert len(cancels) == (1 if configured else 0)
    assert core.order_for_client("C1", "GTC1").status is OrdStatus.NEW


def test_end_of_day_expires_day_orders_when_the_venue_confirms_and_gtc_orders_survive():
    core = make_core()
    working(core, cl="DAY1")
    working(core, cl="GTC1", tif=TimeInForce.GTC)
    vc = only(core.handle(EndOfDay("C1")).actions, VenueCancel)
    expired = cancel_confirm(core, vc, "X1")
    assert (expired.kind, expired.ord_status, expired.cl_ord_id) == (ExecKind.EXPIRED, OrdStatus.EXPIRED, "DAY1")
    assert "end of day" in expired.text
    assert core.order_for_client("C1", "GTC1").is_open


# ---------------------------------------------------------------------------- risk wiring
from risk.engine import RiskEngine  # noqa: E402
from risk.rules import load_rules  # noqa: E402


def risk_core(rules: str) -> Core:
    core = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions()}, "T",
                risk=RiskEngine(load_rules(rules, "test.toml")))
    core.handle(SessionStatus("V1", "venue", True))
    return core


def test_risk_reject_is_an_execution_report_naming_the_rule_and_nothing_goes_to_the_venue():
    core = risk_core('chain = ["max_order_qty"]\n[limits]\nmax_order_qty = 100\n')
    out = core.handle(order(qty="101"))
    rej = only(out.actions, ClientExecReport)
    assert rej.ord_status is OrdStatus.REJECTED and "max_order_qty" in rej.text and "100" in rej.text
    assert not [a for a in out.actions if isinstance(a, VenueNewOrder)] and len(out.risk) == 1
    assert only(core.handle(order(cl="A2", qty="100")).actions, VenueNewOrder)  # exactly at the limit passes


def test_fills_and_cancels_keep_the_risk_state_in_step_with_the_orders():
    core = risk_core('chain = ["max_open_orders"]\n[limits]\nmax_open_orders = 5\n')
    child = working(core, cl="A1", qty="100")
    core.handle(venue_exec(child, ExecKind.TRADE, OrdStatus.PARTIALLY_FILLED, "40", "185", exec_id="F1"))
    state = core.risk_state
    assert state.exposure("", "AAPL").pos_qty == D(40)  # orders without an Account book under ""
    assert ("C1", "A1") in state.open_orders and state.open_orders[("C1", "A1")].leaves == D(60)
    vc = only(core.handle(CancelRequest("C1", "X1", "A1", "AAPL", Side.BUY)).actions, VenueCancel)
    cancel_confirm(core, vc, "X9")
    assert ("C1", "A1") not in state.open_orders


def test_a_confirmed_replace_moves_the_risk_booking_to_the_new_clordid_and_terms():
    core = risk_core('chain = ["max_order_qty"]\n[limits]\nmax_order_qty = 1000\n')
    working(core, cl="A1", qty="100")
    vr = only(core.handle(replace(cl="R1", orig="A1", qty="300")).actions, VenueReplace)
    core.handle(venue_replaced(vr))
    assert ("C1", "A1") not in core.risk_state.open_orders
    assert core.risk_state.open_orders[("C1", "R1")].leaves == D(300)
    refused = only(core.handle(replace(cl="R2", orig="R1", qty="1001")).actions, ClientCancelReject)
    assert "max_order_qty" in refused.text


def test_a_replace_in_flight_holds_its_new_terms_so_no_order_takes_their_room_meanwhile():
    """Position limit 500: an order of 100 is replaced to 300; until the venue answers, the new terms count
    beside the old, so an order of 300 that would pass against the old terms alone (100 + 300) is refused, as
    the replace would make it 600. Refused by the venue, the room comes back; confirmed, the new terms count
    alone."""
    core = risk_core('chain = ["max_position"]\n[limits]\nmax_position = 500\n')
    child = working(core, cl="A1", qty="100")
    vr = only(core.handle(replace(cl="R1", orig="A1", qty="300")).actions, VenueReplace)
    assert core.risk_state.exposure("", "AAPL").buy_qty == D(400)  # the old 100 and the new 300, in flight
    refused = only(core.handle(order(cl="B1", qty="300", price="185")).actions, ClientExecReport)
    assert refused.kind is ExecKind.REJECTED and "max_position" in refused.text
    core.handle(VenueCancelReject("V1", vr.cl_ord_id, child, "VO1", CxlRejCode.OTHER, "no",
                                  response_to=CxlRejResponseTo.REPLACE))
    assert core.risk_state.exposure("", "AAPL").buy_qty == D(100) and core.risk_state.holds == {}
    vr = only(core.handle(replace(cl="R2", orig="A1", qty="300")).actions, VenueReplace)
    core.handle(venue_replaced(vr))
    assert core.risk_state.exposure("", "AAPL").buy_qty == D(300) and core.risk_state.holds == {}
    assert only(core.handle(order(cl="B2", qty="200", price="185")).actions, VenueNewOrder)  # 300 + 200: at it


def test_an_order_ending_with_its_replace_in_flight_releases_both_terms():
    core = risk_core('chain = ["max_position"]\n[limits]\nmax_position = 500\n')
    child = working(core, cl="A1", qty="100")
    only(core.handle(replace(cl="R1", orig="A1", qty="300")).actions, VenueReplace)
    core.handle(venue_exec(child, ExecKind.CANCELED, OrdStatus.CANCELED, exec_id="X1"))  # unsolicited: the venue
    assert core.risk_state.exposure("", "AAPL").buy_qty == D(0) and core.risk_state.holds == {}


# --------------------------------------------------------------------------- orders refused at intake
def test_a_validation_refusal_is_kept_for_operators_with_the_reject_exactly_as_sent():
    core = make_core()
    out = core.handle(order(cl="A1", symbol="ZZZZ", account="ACC1"))
    rej = only(out.actions, ClientExecReport)
    kept = core.rejected[rej.order_id]
    assert out.rejected == [kept]
    assert (kept.session, kept.cl_ord_id, kept.account, kept.symbol, kept.side, kept.qty, kept.price) == \
        ("C1", "A1", "ACC1", "ZZZZ", Side.BUY, D(100), D("190.01"))
    assert (kept.refused_by, kept.reject_code, kept.text) == ("validation", rej.reject_code, rej.text)
    assert kept.status is OrdStatus.REJECTED and kept.received_at is not None


def test_a_risk_refusal_names_the_rule_and_counts_neither_as_open_nor_in_risk_usage():
    core = risk_core('chain = ["max_order_qty"]\n[limits]\nmax_order_qty = 100\n')
    rej = only(core.handle(order(cl="A1", qty="101")).actions, ClientExecReport)
    kept = core.rejected[rej.order_id]
    assert kept.refused_by == "risk: max_order_qty" and kept.text == rej.text and kept.reject_code is rej.reject_code
    assert core.open_order_count() == 0 and core.open_orders() == [] and rej.order_id not in core.orders
    assert core.risk_state.open_orders == {} and core.order_for_client("C1", "A1") is None


def test_the_clordid_of_a_kept_refusal_stays_free_for_a_corrected_resend():
    core = risk_core('chain = ["max_order_qty"]\n[limits]\nmax_order_qty = 100\n')
    core.handle(order(cl="A1", qty="101"))
    core.handle(order(cl="A1", symbol="ZZZZ"))
    assert len(core.rejected) == 2
    assert only(core.handle(order(cl="A1", qty="100")).actions, VenueNewOrder)  # the corrected resend works
    assert core.order_for_client("C1", "A1").qty == D(100) and core.open_order_count() == 1


def test_a_routing_refusal_says_the_router_refused_it():
    core = make_core(up=("V1",))
    rej = only(core.handle(order(symbol="IBM")).actions, ClientExecReport)
    assert core.rejected[rej.order_id].refused_by == "router"
    assert core.rejected[rej.order_id].reject_code is RejectCode.EXCHANGE_CLOSED


def test_an_account_the_session_may_not_use_is_refused_by_access_control():
    core = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions(accounts=frozenset({"ACC1"}))}, "T")
    rej = only(core.handle(order(account="ACC2")).actions, ClientExecReport)
    assert core.rejected[rej.order_id].refused_by == "access control"


def test_kept_refusals_are_capped_and_the_oldest_go_first():
    core = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions()}, "T", rejected_kept=3)
    ids = [only(core.handle(order(cl=f"A{i}", qty="0")).actions, ClientExecReport).order_id for i in range(5)]
    assert list(core.rejected) == ids[2:] and core.rejected_dropped == 2
    none_kept = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions()}, "T", rejected_kept=0)
    out = none_kept.handle(order(qty="0"))
    assert none_kept.rejected == {} and out.rejected == []
