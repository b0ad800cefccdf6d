"""No child order left in doubt (desk/liveness.py), without sockets: a fake clock and the core's commands."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

from desk.core import Core

from desk.options import ClientOptions
from orders.actions import ClientCancelReject, ClientExecReport, VenueCancel, VenueNewOrder, VenueStatusRequest
from orders.commands import (
    CancelRequest, NewOrder, OperatorCancel, OperatorClose, OperatorReconcile, SessionStatus, Tick, VenueExecution,
    VenueMessageRejected,
)
from orders.model import CxlRejResponseTo, ExecKind, OrdStatus, OrdType, Side
from orders.states import Child, order_from_state_log, order_state_log_form
from routing.router import RoutingPolicy, Venue


class Clock:
    def __init__(self):
        self.now = datetime(2026, 12, 7, 14, 0, tzinfo=timezone.utc)

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_core(clock: Clock, max_reroutes: int = 0) -> Core:
    venues = [Venue("V1", frozenset({"AAPL"}), ack_timeout_s=5, status_timeout_s=5, status_retry_s=30),
              Venue("V2", frozenset({"AAPL"}))]
    core = Core(venues, {"C1": ClientOptions()}, "T", clock=clock, policy=RoutingPolicy(max_reroutes=max_reroutes))
    for name in ("V1", "V2"):
        core.handle(SessionStatus(name, "venue", True))
    return core


def new_order(cl="A1", qty="100") -> NewOrder:
    return NewOrder(session="C1", cl_ord_id=cl, symbol="AAPL", side=Side.BUY, qty=D(qty), ord_type=OrdType.LIMIT,
                    price=D("190.00"), ex_destination="V1")


def status_reply(child: str, status: OrdStatus, cum="0", avg=None, text=None, exec_id="S1") -> VenueExecution:
    return VenueExecution(venue="V1", cl_ord_id=child, orig_cl_ord_id=None, venue_order_id="VO1", exec_id=exec_id,
                          kind=ExecKind.ORDER_STATUS, ord_status=status, symbol="AAPL", side=Side.BUY,
                          last_qty=D(0), last_px=D(0), cum_qty=D(cum), leaves_qty=D(0),
                          avg_px=D(avg) if avg is not None else None, text=text)


def ack(child: str) -> VenueExecution:
    return VenueExecution(venue="V1", cl_ord_id=child, orig_cl_ord_id=None, venue_order_id="VO1", exec_id="E-ack",
                          kind=ExecKind.NEW, ord_status=OrdStatus.NEW, symbol="AAPL", side=Side.BUY,
                          last_qty=D(0), last_px=D(0), cum_qty=D(0), leaves_qty=D(100))


def reports(out) -> list[ClientExecReport]:
    return [a for a in out.actions if isinstance(a, ClientExecReport)]


def placed(core: Core, clock: Clock, cl="A1"):
    out = core.handle(new_order(cl))
    child = next(a for a in out.actions if isinstance(a, VenueNewOrder))
    return core.order_for_client("C1", cl), child.cl_ord_id


# ---------------------------------------------------------------------------- session-level and business rejects
def test_a_session_level_reject_of_a_child_new_order_rejects_the_clients_order_with_the_venues_text():
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    out = core.handle(VenueMessageRejected(venue="V1", ref_msg_type="D", ref_seq=4, cl_ord_id=child,
                                           text="Value is incorrect (out of range) for this tag (SessionRejectReason 5, "
                                                "tag 40)", session_level=True))
    (rej,) = reports(out)
    assert rej.kind is ExecKind.REJECTED and rej.ord_status is OrdStatus.REJECTED
    assert "session-level Reject (35=3)" in rej.text and "out of range" in rej.text
    assert not order.is_open and order.children[0].status is OrdStatus.REJECTED


def test_a_session_level_reject_is_re_routed_when_the_policy_allows():
    clock = Clock()
    venues = [Venue("V1", frozenset({"AAPL"})), Venue("V2", frozenset({"AAPL"}))]
    core = Core(venues, {"C1": ClientOptions()}, "T", clock=clock, policy=RoutingPolicy(max_reroutes=1))
    core.handle(SessionStatus("V1", "venue", True))
    core.handle(SessionStatus("V2", "venue", True))
    out = core.handle(NewOrder(session="C1", cl_ord_id="A1", symbol="AAPL", side=Side.BUY, qty=D(100),
                               ord_type=OrdType.LIMIT, price=D("190")))
    first = next(a for a in out.actions if isinstance(a, VenueNewOrder))
    out = core.handle(VenueMessageRejected(venue=first.venue, ref_msg_type="D", ref_seq=2, cl_ord_id=first.cl_ord_id,
                                           text="no", session_level=True))
    again = next(a for a in out.actions if isinstance(a, VenueNewOrder))
    assert again.venue != first.venue
    assert not reports(out)  # the client's order works on, elsewhere


def test_a_business_reject_of_a_cancel_refuses_the_cancel_and_tells_the_client_the_real_state():
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    core.handle(ack(child))
    out = core.handle(CancelRequest(session="C1", cl_ord_id="X1", orig_cl_ord_id="A1", symbol="AAPL", side=Side.BUY))
    cancel = next(a for a in out.actions if isinstance(a, VenueCancel))
    out = core.handle(VenueMessageRejected(venue="V1", ref_msg_type="F", ref_seq=5, cl_ord_id=cancel.cl_ord_id,
                                           text="Unsupported Message Type (BusinessRejectReason 3)",
                                           session_level=False))
    rej = next(a for a in out.actions if isinstance(a, ClientCancelReject))
    assert rej.response_to is CxlRejResponseTo.CANCEL and rej.ord_status is OrdStatus.NEW
    assert "BusinessMessageReject" in rej.text
    assert order.status is OrdStatus.NEW and order.children[0].awaiting is None


def test_a_reject_naming_no_known_order_is_only_noted():
    core = make_core(Clock())
    out = core.handle(VenueMessageRejected(venue="V1", ref_msg_type="D", ref_seq=99, cl_ord_id=None, text="x",
                                           session_level=True))
    assert not out.actions and "names no order we know" in out.warnings[0]


# ---------------------------------------------------------------------------- a venue that never answers
def test_an_unanswered_child_is_asked_its_status_then_put_in_doubt_then_resolved_by_the_reply():
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    clock.advance(4)
    assert not core.handle(Tick()).actions  # not yet: ack_timeout_s is 5
    clock.advance(1.5)
    out = core.handle(Tick())
    (ask,) = out.actions
    assert isinstance(ask, VenueStatusRequest) and ask.cl_ord_id == child and ask.venue == "V1"
    clock.advance(5.5)
    out = core.handle(Tick())
    assert out.in_doubt == [(order.order_id, "V1")] and order.in_doubt and "status request" in order.in_doubt
    assert core.in_doubt_orders() == [order]
    assert any(cat == "reconcile" and "in doubt" in text for cat, text in out.events)
    clock.advance(1)
    assert not core.handle(Tick()).actions  # in doubt: asked again only every status_retry_s
    clock.advance(30)
    assert isinstance(core.handle(Tick()).actions[0], VenueStatusRequest)
    out = core.handle(status_reply(child, OrdStatus.NEW))
    (new,) = reports(out)
    assert new.kind is ExecKind.NEW and order.status is OrdStatus.NEW
    assert order.in_doubt is None and core.in_doubt_orders() == []


def test_an_answered_child_is_never_asked():
    clock = Clock()
    core = make_core(clock)
    _, child = placed(core, clock)
    core.handle(ack(child))
    clock.advance(60)
    assert not core.handle(Tick()).actions


def test_a_status_reply_books_the_fills_the_gateway_missed_at_the_price_avgpx_implies():
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    core.handle(ack(child))
    out = core.handle(status_reply(child, OrdStatus.PARTIALLY_FILLED, cum="40", avg="190.00"))
    (fill,) = reports(out)
    assert fill.kind is ExecKind.TRADE and fill.last_qty == D(40) and fill.last_px == D("190.00")
    assert order.cum_qty == D(40) and order.status is OrdStatus.PARTIALLY_FILLED
    # asked again, the venue reports the same: nothing more is booked
    assert not reports(core.handle(status_reply(child, OrdStatus.PARTIALLY_FILLED, cum="40", avg="190.00",
                                                exec_id="S2")))


def test_a_status_reply_of_a_filled_order_completes_it_for_the_client():
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    out = core.handle(status_reply(child, OrdStatus.FILLED, cum="100", avg="189.99"))
    kinds = [(r.kind, r.ord_status) for r in reports(out)]
    assert (ExecKind.TRADE, OrdStatus.FILLED) in kinds and not order.is_open and order.cum_qty == D(100)


def test_a_venue_that_does_not_know_an_unacknowledged_order_has_rejected_it():
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    out = core.handle(status_reply(child, OrdStatus.REJECTED, text="unknown order"))
    (rej,) = reports(out)
    assert rej.kind is ExecKind.REJECTED and "does not have the order" in rej.text and not order.is_open


def test_a_venue_that_forgot_a_working_order_leaves_it_in_doubt_never_invents_a_state():
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    core.handle(ack(child))
    out = core.handle(status_reply(child, OrdStatus.REJECTED, text="unknown order"))
    assert not reports(out) and order.status is OrdStatus.NEW and order.is_open
    assert order.in_doubt and "unknown order" in order.in_doubt


def test_a_status_reply_saying_canceled_ends_the_order_as_canceled():
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    core.handle(ack(child))
    out = core.handle(status_reply(child, OrdStatus.CANCELED))
    (done,) = reports(out)
    assert done.kind is ExecKind.CANCELED and not order.is_open


def test_an_unanswered_cancel_whose_order_the_venue_reports_working_is_refused_to_the_client():
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    core.handle(ack(child))
    core.handle(CancelRequest(session="C1", cl_ord_id="X1", orig_cl_ord_id="A1", symbol="AAPL", side=Side.BUY))
    clock.advance(6)
    assert isinstance(core.handle(Tick()).actions[0], VenueStatusRequest)
    out = core.handle(status_reply(child, OrdStatus.NEW))
    rej = next(a for a in out.actions if isinstance(a, ClientCancelReject))
    assert rej.ord_status is OrdStatus.NEW and "cancel was not taken" in rej.text
    assert order.status is OrdStatus.NEW and order.in_doubt is None


def test_a_venue_that_logs_on_again_is_asked_about_every_open_child_there():
    clock = Clock()
    core = make_core(clock)
    _, c1 = placed(core, clock, "A1")
    _, c2 = placed(core, clock, "A2")
    core.handle(ack(c1))
    core.handle(SessionStatus("V1", "venue", False))
    out = core.handle(SessionStatus("V1", "venue", True))
    asked = sorted(a.cl_ord_id for a in out.actions if isinstance(a, VenueStatusRequest))
    assert asked == sorted([c1, c2])


def test_a_child_unanswered_when_its_venue_drops_is_in_doubt_until_the_venue_is_back():
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    core.handle(SessionStatus("V1", "venue", False))
    clock.advance(6)
    core.handle(Tick())
    assert order.in_doubt and "disconnected" in order.in_doubt
    out = core.handle(SessionStatus("V1", "venue", True))
    assert any(isinstance(a, VenueStatusRequest) for a in out.actions)
    core.handle(status_reply(child, OrdStatus.NEW))
    assert order.in_doubt is None and order.status is OrdStatus.NEW


# ---------------------------------------------------------------------------- operator tools
def test_a_refused_operator_cancel_restates_the_order_to_the_client_so_both_views_agree():
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    core.handle(ack(child))
    out = core.handle(OperatorCancel(order_id=order.order_id, operator="ops"))
    (pending,) = reports(out)
    assert pending.kind is ExecKind.PENDING_CANCEL
    cancel = next(a for a in out.actions if isinstance(a, VenueCancel))
    from orders.commands import VenueCancelReject
    from orders.model import CxlRejCode
    out = core.handle(VenueCancelReject(venue="V1", cl_ord_id=cancel.cl_ord_id, orig_cl_ord_id=child,
                                        venue_order_id="VO1", reason=CxlRejCode.TOO_LATE, text="no"))
    (restated,) = reports(out)
    assert restated.kind is ExecKind.RESTATED and restated.ord_status is OrdStatus.NEW
    assert "refused" in restated.text and order.status is OrdStatus.NEW


def test_operator_close_ends_an_order_in_doubt_tells_the_client_and_cancels_what_may_still_work():
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    core.handle(ack(child))
    core.handle(status_reply(child, OrdStatus.REJECTED, text="unknown order"))  # forgot its book: in doubt
    assert order.in_doubt
    out = core.handle(OperatorClose(order_id=order.order_id, reason="settled by phone with V1", operator="ops"))
    assert out.result["ok"] and out.result["was"] == "new" and out.result["in_doubt"]
    (closed,) = reports(out)
    assert closed.kind is ExecKind.CANCELED and closed.ord_status is OrdStatus.CANCELED
    assert "closed by operator ops: settled by phone with V1" in closed.text
    assert any(isinstance(a, VenueCancel) for a in out.actions)
    assert not order.is_open and order.in_doubt is None and core.in_doubt_orders() == []
    assert any(cat == "operator" for cat, _ in out.events)


def test_operator_close_refuses_unknown_or_finished_orders_and_needs_a_reason():
    clock = Clock()
    core = make_core(clock)
    assert not core.handle(OperatorClose(order_id="NOPE", reason="x")).result["ok"]
    order, child = placed(core, clock)
    assert "reason" in core.handle(OperatorClose(order_id=order.order_id, reason=" ")).result["error"]
    core.handle(status_reply(child, OrdStatus.CANCELED))
    assert "already" in core.handle(OperatorClose(order_id=order.order_id, reason="x")).result["error"]


def test_operator_reconcile_asks_every_open_child_and_names_those_at_a_venue_that_is_down():
    clock = Clock()
    core = make_core(clock)
    placed(core, clock, "A1")
    core.handle(NewOrder(session="C1", cl_ord_id="A2", symbol="AAPL", side=Side.BUY, qty=D(5),
                         ord_type=OrdType.LIMIT, price=D("190"), ex_destination="V2"))
    core.handle(SessionStatus("V2", "venue", False))
    out = core.handle(OperatorReconcile(operator="ops"))
    assert [a["venue"] for a in out.result["asked"]] == ["V1"]
    assert [s["venue"] for s in out.result["skipped"]] == ["V2"]
    assert sum(isinstance(a, VenueStatusRequest) for a in out.actions) == 1


# ---------------------------------------------------------------------------- persistence
def test_liveness_fields_survive_the_state_log_and_older_forms_still_load():
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    clock.advance(6)
    core.handle(Tick())
    clock.advance(6)
    core.handle(Tick())
    back = order_from_state_log(order_state_log_form(order))
    c = back.children[0]
    assert c.in_doubt == order.children[0].in_doubt and c.status_asks == 1 and c.asked_at == clock.now - \
        timedelta(seconds=6)
    old_form = order_state_log_form(order)
    n_new = 3  # asked_at, status_asks, in_doubt: a log written before they existed has none of them
    children_index = [i for i, v in enumerate(old_form) if isinstance(v, list) and v and isinstance(v[0], list)][0]
    old_form[children_index] = [cv[:-n_new] for cv in old_form[children_index]]
    c = order_from_state_log(old_form).children[0]
    assert (c.asked_at, c.status_asks, c.in_doubt) == (None, 0, None)
    assert isinstance(c, Child)


def test_restored_orders_are_watched_again():
    clock = Clock()
    core = make_core(clock)
    order, _ = placed(core, clock)
    again = make_core(clock)
    again.restore([order_from_state_log(order_state_log_form(order))])
    clock.advance(10)
    assert any(isinstance(a, VenueStatusRequest) for a in again.handle(Tick()).actions)


def test_a_fix42_status_reply_is_recognised_by_its_exec_trans_type_and_books_missed_fills():
    """FIX 4.2 has no ExecType I: a status reply is ExecTransType 3 with ExecType repeating OrdStatus."""
    from sessions.codec import decode, tagvalue

    raw = ("8=FIX.4.2\x019=0\x0135=8\x0134=9\x0149=V1\x0156=FIXGW\x0137=VO1\x0111=T-1\x0117=S9\x0120=3\x01150=2"
           "\x0139=2\x0155=AAPL\x0154=1\x0138=100\x0140=2\x0144=190\x01151=0\x0114=100\x016=189.5\x0110=000\x01")
    ev = decode.decode_venue_exec(tagvalue.parse_fields(raw), "V1")
    assert ev.kind is ExecKind.ORDER_STATUS and ev.avg_px == D("189.5") and ev.cum_qty == D(100)
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    out = core.handle(status_reply(child, ev.ord_status, cum=str(ev.cum_qty), avg=str(ev.avg_px)))
    assert [(r.kind, r.last_qty, r.last_px) for r in reports(out)] == [(ExecKind.TRADE, D(100), D("189.5"))]
    assert not order.is_open


# ---------------------------------------------------------------------------- OrderMassStatusRequest
def test_a_mass_status_venue_is_asked_once_and_the_children_it_does_not_mention_one_by_one():
    from orders.actions import VenueMassStatusRequest

    clock = Clock()
    venues = [Venue("V1", frozenset({"AAPL"}), mass_status=True)]
    core = Core(venues, {"C1": ClientOptions()}, "T", clock=clock)
    core.handle(SessionStatus("V1", "venue", True))
    o1, c1 = placed(core, clock, "A1")
    o2, c2 = placed(core, clock, "A2")
    o3, c3 = placed(core, clock, "A3")
    for c in (c1, c2, c3):
        core.handle(ack(c))
    core.handle(SessionStatus("V1", "venue", False))
    out = core.handle(SessionStatus("V1", "venue", True))
    (mass,) = [a for a in out.actions if isinstance(a, VenueMassStatusRequest)]
    assert not any(isinstance(a, VenueStatusRequest) for a in out.actions)

    def report(child, status, cum, avg, last):
        return VenueExecution(venue="V1", cl_ord_id=child, orig_cl_ord_id=None, venue_order_id="VO", exec_id="M",
                              kind=ExecKind.ORDER_STATUS, ord_status=status, symbol="AAPL", side=Side.BUY,
                              last_qty=D(0), last_px=D(0), cum_qty=D(cum), leaves_qty=D(0), avg_px=D(avg),
                              mass_status_req_id=mass.req_id, last_report=last)
    assert not reports(core.handle(report(c1, OrdStatus.NEW, "0", "0", False)))
    filled = reports(core.handle(report(c2, OrdStatus.PARTIALLY_FILLED, "30", "190", False)))
    assert [(r.kind, r.last_qty) for r in filled] == [(ExecKind.TRADE, D(30))]  # missed while away
    # a "no more" last report naming no order: the one not mentioned (c3) is asked on its own
    out = core.handle(VenueExecution(venue="V1", cl_ord_id="", orig_cl_ord_id=None, venue_order_id="NONE",
                                     exec_id="M9", kind=ExecKind.ORDER_STATUS, ord_status=OrdStatus.REJECTED,
                                     symbol="AAPL", side=Side.BUY, last_qty=D(0), last_px=D(0), cum_qty=D(0),
                                     leaves_qty=D(0), mass_status_req_id=mass.req_id, last_report=True))
    assert [a.cl_ord_id for a in out.actions if isinstance(a, VenueStatusRequest)] == [c3]
    assert core.mass_status == {}


def test_mass_status_on_a_fix42_venue_is_refused_in_the_configuration(tmp_path):
    import pytest
    from gateway.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="mass_status needs FIX 4.4"):
        parse_config('[venues.V1]\nfix_version = "FIX.4.2"\nport = 5001\nsymbols = ["AAPL"]\nmass_status = true\n',
                     tmp_path, env={})


def test_closing_a_finished_order_in_doubt_clears_the_doubt_and_tells_the_client_nothing_new():
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    core.handle(status_reply(child, OrdStatus.FILLED, cum="100", avg="190"))
    assert not order.is_open
    core.handle(status_reply(child, OrdStatus.FILLED, cum="60", avg="190", exec_id="S2"))  # the venue now says 60
    assert order.in_doubt and "booked 100" in order.in_doubt
    out = core.handle(OperatorClose(order_id=order.order_id, reason="venue confirmed 100 by phone", operator="ops"))
    assert out.result["ok"] and out.result["was"] == "filled"
    assert reports(out) == [] and order.status is OrdStatus.FILLED and order.in_doubt is None


def test_a_status_reply_the_gateway_cannot_apply_leaves_the_order_in_doubt_rather_than_nothing():
    clock = Clock()
    core = make_core(clock)
    order, child = placed(core, clock)
    core.handle(ack(child))
    out = core.handle(status_reply(child, OrdStatus.FILLED, cum="0", avg="0"))  # "filled", yet nothing filled
    assert not reports(out) and order.status is OrdStatus.NEW
    assert order.in_doubt and "cannot be reconciled" in order.in_doubt
