"""Venue messages a takeover cannot tell were sent (desk/undecided.py, gateway/state/recovery.py's
``after_takeover``), without sockets: an "old active" core decides, its orders go through the state log's form
into a successor's core, which gets the undecided messages, its venues log on, and the venue's status reply
decides: nothing sent again, or the same message sent again (docs/failover.md, "Undecided venue messages at a
takeover")."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

from desk import undecided
from desk.core import Core
from desk.options import ClientOptions
from desk.state import Undecided
from gateway.state.recovery import after_takeover, poss_resend
from orders.actions import (
    ClientCancelReject, ClientExecReport, VenueCancel, VenueNewOrder, VenueReplace, VenueStatusRequest,
)
from orders.commands import (
    CancelRequest, NewOrder, ReplaceRequest, SessionStatus, TakeoverUndecided, Tick, VenueExecution,
)
from orders.model import ExecKind, OrdStatus, OrdType, Side, TimeInForce
from orders.states import order_from_state_log, order_state_log_form
from routing.router import RoutingPolicy, Venue


class Clock:
    def __init__(self):
        self.now = datetime(2026, 12, 7, 14, 0, tzinfo=timezone.utc)

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def venues(reconcile_on_logon: bool = True) -> list[Venue]:
    return [Venue("V1", frozenset({"AAPL"}), reconcile_on_logon=reconcile_on_logon), Venue("V2", frozenset({"AAPL"}))]


def old_active(clock: Clock) -> Core:
    core = Core(venues(), {"C1": ClientOptions()}, "A", clock=clock, policy=RoutingPolicy(max_reroutes=0))
    for name in ("V1", "V2"):
        core.handle(SessionStatus(name, "venue", True))
    return core


def successor(old: Core, clock: Clock, *messages, reconcile_on_logon: bool = True):
    """A core restored from ``old``'s orders as the state log has them, its venues not logged on yet, given the
    undecided ``messages``; (the core, the outcome of TakeoverUndecided)."""
    core = Core(venues(reconcile_on_logon), {"C1": ClientOptions()}, "B", clock=clock,
                policy=RoutingPolicy(max_reroutes=0))
    core.restore([order_from_state_log(order_state_log_form(o)) for o in old.orders.values()])
    return core, core.handle(TakeoverUndecided(tuple(messages)))


def place(core: Core, cl: str = "A1") -> str:
    out = core.handle(NewOrder(session="C1", cl_ord_id=cl, symbol="AAPL", side=Side.BUY, qty=D(100),
                               ord_type=OrdType.LIMIT, price=D("190.00"), ex_destination="V1"))
    return next(a for a in out.actions if isinstance(a, VenueNewOrder)).cl_ord_id


def report(child: str, kind: ExecKind, status: OrdStatus, cum="0", leaves="100", unknown=False, exec_id="E1",
           orig=None, venue_order_id="VO1", avg=None, last_qty="0", last_px="0") -> VenueExecution:
    return VenueExecution(venue="V1", cl_ord_id=child, orig_cl_ord_id=orig, venue_order_id=venue_order_id,
                          exec_id=exec_id, kind=kind, ord_status=status, symbol="AAPL", side=Side.BUY,
                          last_qty=D(last_qty), last_px=D(last_px), cum_qty=D(cum), leaves_qty=D(leaves),
                          avg_px=D(avg) if avg is not None else None, unknown_order=unknown)


def status(child: str, st: OrdStatus, **kw) -> VenueExecution:
    return report(child, ExecKind.ORDER_STATUS, st, exec_id="S1", **kw)


def unknown(child: str, with_reason: bool = True) -> VenueExecution:
    return status(child, OrdStatus.REJECTED, leaves="0", venue_order_id="NONE", unknown=with_reason)


def of(out, kind) -> list:
    return [a for a in out.actions if isinstance(a, kind)]


def logon(core: Core, venue: str = "V1"):
    out = core.handle(SessionStatus(venue, "venue", True))
    return out, [a.cl_ord_id for a in of(out, VenueStatusRequest)]


# ---------------------------------------------------------------------------- NewOrderSingle
def test_a_new_order_the_venue_knows_is_not_sent_again_and_takes_the_venues_state():
    clock = Clock()
    old = old_active(clock)
    child = place(old)  # decided, sent; the venue acknowledged it, the old active never heard
    core, out = successor(old, clock, ("V1", "D", child))
    order = core.order_for_client("C1", "A1")
    assert not out.actions and order.in_doubt and "NewOrderSingle " + child in order.in_doubt
    assert out.in_doubt == [(order.order_id, "V1")]
    _, asked = logon(core)
    assert asked == [child]  # asked, not sent
    out = core.handle(status(child, OrdStatus.NEW))
    assert not of(out, VenueNewOrder)
    (ack,) = of(out, ClientExecReport)
    assert ack.kind is ExecKind.NEW and order.status is OrdStatus.NEW
    assert not order.in_doubt and not core.undecided


def test_a_new_order_the_venue_does_not_know_is_sent_now_with_the_same_clordid_and_terms():
    clock = Clock()
    old = old_active(clock)
    child = place(old)  # decided; the old active died before it left
    core, _ = successor(old, clock, ("V1", "D", child))
    order = core.order_for_client("C1", "A1")
    logon(core)
    out = core.handle(unknown(child))
    (again,) = of(out, VenueNewOrder)
    assert (again.venue, again.cl_ord_id, again.qty, again.price, again.ord_type) == \
        ("V1", child, D(100), D("190.00"), OrdType.LIMIT)
    assert not of(out, ClientExecReport)  # the client hears nothing: its order is simply pending
    c = order.children[0]
    assert c.status is OrdStatus.PENDING_NEW and not c.in_doubt and c.status_asks == 0
    assert not core.undecided and any("sent now with the same ClOrdID" in t for _, t in out.events)
    out = core.handle(report(child, ExecKind.NEW, OrdStatus.NEW))
    assert of(out, ClientExecReport)[0].kind is ExecKind.NEW and order.status is OrdStatus.NEW


def test_a_new_order_rejected_for_another_reason_is_a_reject_not_a_second_order():
    clock = Clock()
    old = old_active(clock)
    child = place(old)
    core, _ = successor(old, clock, ("V1", "D", child))
    logon(core)
    out = core.handle(unknown(child, with_reason=False))  # Rejected without OrdRejReason 5
    assert not of(out, VenueNewOrder)
    (rej,) = of(out, ClientExecReport)
    assert rej.kind is ExecKind.REJECTED and not core.order_for_client("C1", "A1").is_open


def test_a_new_order_the_venue_had_answered_is_not_held():
    clock = Clock()
    old = old_active(clock)
    child = place(old)
    old.handle(report(child, ExecKind.NEW, OrdStatus.NEW))  # the state log has the acknowledgement
    core, out = successor(old, clock, ("V1", "D", child))
    assert not out.actions and not core.undecided and not core.order_for_client("C1", "A1").in_doubt
    assert "shows the venue had it" in str(out.warnings[0])


def test_a_message_naming_no_known_order_is_only_noted():
    clock = Clock()
    core, out = successor(old_active(clock), clock, ("V1", "D", "nope"))
    assert not out.actions and not core.undecided and "names no order" in str(out.warnings[0])


def test_a_venue_still_working_on_the_order_keeps_it_held_until_its_next_answer():
    clock = Clock()
    old = old_active(clock)
    child = place(old)
    core, _ = successor(old, clock, ("V1", "D", child))
    logon(core)
    out = core.handle(status(child, OrdStatus.PENDING_NEW))
    assert not out.actions and core.undecided
    clock.advance(60)
    assert of(core.handle(Tick()), VenueStatusRequest)  # asked again
    assert of(core.handle(unknown(child)), VenueNewOrder)


def test_a_venue_without_reconcile_on_logon_is_still_asked_about_the_held_children():
    clock = Clock()
    old = old_active(clock)
    child = place(old)
    core, _ = successor(old, clock, ("V1", "D", child), reconcile_on_logon=False)
    _, asked = logon(core)
    assert asked == [child]


def test_a_client_cancel_of_a_held_order_is_refused_until_the_venue_has_answered():
    clock = Clock()
    old = old_active(clock)
    child = place(old)
    core, _ = successor(old, clock, ("V1", "D", child))
    logon(core)
    cancel = CancelRequest(session="C1", cl_ord_id="X1", orig_cl_ord_id="A1", symbol="AAPL", side=Side.BUY)
    out = core.handle(cancel)
    (rej,) = of(out, ClientCancelReject)
    assert "reconciled with V1 after a failover" in rej.text and not of(out, VenueCancel)
    core.handle(status(child, OrdStatus.NEW))
    assert of(core.handle(CancelRequest(session="C1", cl_ord_id="X2", orig_cl_ord_id="A1", symbol="AAPL",
                                        side=Side.BUY)), VenueCancel)


# ---------------------------------------------------------------------------- cancel
def cancel_decided(clock: Clock) -> tuple[Core, str, str]:
    old = old_active(clock)
    child = place(old)
    old.handle(report(child, ExecKind.NEW, OrdStatus.NEW))
    out = old.handle(CancelRequest(session="C1", cl_ord_id="X1", orig_cl_ord_id="A1", symbol="AAPL", side=Side.BUY))
    return old, child, of(out, VenueCancel)[0].cl_ord_id


def test_a_cancel_the_venue_took_is_booked_not_sent_again():
    clock = Clock()
    old, child, cancel = cancel_decided(clock)
    core, out = successor(old, clock, ("V1", "F", cancel))
    assert core.order_for_client("C1", "A1").in_doubt and not out.actions
    logon(core)
    out = core.handle(status(cancel, OrdStatus.CANCELED, leaves="0"))
    assert not of(out, VenueCancel)
    (done,) = of(out, ClientExecReport)
    assert done.kind is ExecKind.CANCELED and not core.order_for_client("C1", "A1").is_open


def test_a_cancel_the_venue_never_got_is_sent_again_with_its_clordid():
    clock = Clock()
    old, child, cancel = cancel_decided(clock)
    core, _ = successor(old, clock, ("V1", "F", cancel))
    logon(core)
    out = core.handle(status(child, OrdStatus.NEW))
    (again,) = of(out, VenueCancel)
    assert (again.cl_ord_id, again.orig_cl_ord_id) == (cancel, child)
    assert not of(out, ClientCancelReject)  # the client's cancel is still pending, not refused
    order = core.order_for_client("C1", "A1")
    assert order.status is OrdStatus.PENDING_CANCEL and order.children[0].pending_cancel == cancel
    assert not order.in_doubt and not core.undecided


def test_fills_the_venue_reports_are_booked_before_the_cancel_is_sent_again():
    clock = Clock()
    old, child, cancel = cancel_decided(clock)
    core, _ = successor(old, clock, ("V1", "F", cancel))
    logon(core)
    out = core.handle(status(child, OrdStatus.PARTIALLY_FILLED, cum="40", leaves="60", avg="189.90"))
    (fill,) = of(out, ClientExecReport)
    assert fill.last_qty == D(40) and fill.last_px == D("189.90")
    (again,) = of(out, VenueCancel)
    assert again.cl_ord_id == cancel and out.actions.index(fill) < out.actions.index(again)


# ---------------------------------------------------------------------------- replace
def replace_decided(clock: Clock) -> tuple[Core, str, str]:
    old = old_active(clock)
    child = place(old)
    old.handle(report(child, ExecKind.NEW, OrdStatus.NEW))
    out = old.handle(ReplaceRequest(session="C1", cl_ord_id="R1", orig_cl_ord_id="A1", symbol="AAPL", side=Side.BUY,
                                    qty=D(80), ord_type=OrdType.LIMIT, price=D("189.50")))
    return old, child, of(out, VenueReplace)[0].cl_ord_id


def test_a_replace_that_took_effect_is_booked_not_sent_again():
    clock = Clock()
    old, child, replace = replace_decided(clock)
    core, _ = successor(old, clock, ("V1", "G", replace))
    logon(core)
    out = core.handle(status(replace, OrdStatus.NEW, leaves="80", orig=child))
    assert not of(out, VenueReplace)
    (done,) = of(out, ClientExecReport)
    assert done.kind is ExecKind.REPLACED
    order = core.order_for_client("C1", "R1")
    assert order.qty == D(80) and order.children[0].cl_ord_id == replace


def test_a_replace_the_venue_never_got_is_sent_again_with_its_clordid_and_terms():
    clock = Clock()
    old, child, replace = replace_decided(clock)
    core, _ = successor(old, clock, ("V1", "G", replace))
    logon(core)
    out = core.handle(status(child, OrdStatus.NEW))
    (again,) = of(out, VenueReplace)
    assert (again.cl_ord_id, again.orig_cl_ord_id, again.qty, again.price) == (replace, child, D(80), D("189.50"))
    assert not of(out, ClientCancelReject) and not core.undecided


# ---------------------------------------------------------------------------- the pure rules
def test_the_rules_per_message_kind():
    clock = Clock()
    old = old_active(clock)
    child = place(old)
    c = old.order_for_client("C1", "A1").children[0]
    assert undecided.awaits("D", child, c) == Undecided(undecided.NEW, child)
    held = Undecided(undecided.NEW, child)
    assert undecided.send_again(held, c, unknown(child))
    assert not undecided.send_again(held, c, unknown(child, with_reason=False))
    assert not undecided.send_again(held, c, status(child, OrdStatus.NEW))
    old.handle(report(child, ExecKind.NEW, OrdStatus.NEW))
    assert undecided.awaits("D", child, c) is None  # acknowledged: the venue had it
    assert not undecided.send_again(held, c, unknown(child))  # no longer pending new: the ordinary rule
    out = old.handle(CancelRequest(session="C1", cl_ord_id="X1", orig_cl_ord_id="A1", symbol="AAPL", side=Side.BUY))
    cancel = of(out, VenueCancel)[0].cl_ord_id
    held = undecided.awaits("F", cancel, c)
    assert held == Undecided(undecided.CANCEL, cancel)
    assert undecided.send_again(held, c, status(child, OrdStatus.NEW))
    assert not undecided.send_again(held, c, status(cancel, OrdStatus.CANCELED))
    assert not undecided.send_again(held, c, status(child, OrdStatus.PENDING_CANCEL))
    assert undecided.awaits("F", "other", c) is None
    assert undecided.awaits("Q", child, c) is None


def test_a_fix_status_reply_for_an_unknown_order_is_recognised_by_its_ord_rej_reason():
    from sessions.codec import decode, tagvalue

    raw = ("8=FIX.4.2\x019=0\x0135=8\x0134=9\x0149=V1\x0156=FIXGW\x0137=NONE\x0111=T-1\x0117=S9\x0120=3\x01150=8"
           "\x0139=8\x0155=AAPL\x0154=1\x0138=0\x0140=2\x01151=0\x0114=0\x016=0\x01103=5\x0158=unknown order"
           "\x0110=000\x01")
    ev = decode.decode_venue_exec(tagvalue.parse_fields(raw), "V1")
    assert ev.kind is ExecKind.ORDER_STATUS and ev.ord_status is OrdStatus.REJECTED and ev.unknown_order
    other = decode.decode_venue_exec(tagvalue.parse_fields(raw.replace("\x01103=5", "\x01103=1")), "V1")
    assert not other.unknown_order


# ---------------------------------------------------------------------------- which unsent messages (recovery)
def test_after_a_takeover_venue_orders_of_rebuilt_stores_are_undecided_and_client_messages_marked_possresend():
    d = ("venue", "V1", "35=D\x0111=A-1\x0155=AAPL\x01")
    f = ("venue", "V1", "35=F\x0111=A-1.c1\x0141=A-1\x01")
    g = ("venue", "V1", "35=G\x0111=A-1.r2\x0141=A-1\x01")
    dk = ("venue", "V1", "35=Q\x0117=E9\x01")
    er = ("client", "C1", "35=8\x0137=A-1\x0111=A1\x0117=A-1.1\x01")
    kept_venue = ("venue", "V2", "35=D\x0111=A-2\x01")
    older = VenueNewOrder(venue="V1", cl_ord_id="A-3", symbol="AAPL", side=Side.BUY, qty=D(1),
                          ord_type=OrdType.LIMIT, price=D(1), stop_px=None, tif=TimeInForce.DAY, account=None)
    resend, held = after_takeover([d, er, f, dk, g, kept_venue, older],
                                  frozenset({"venue:V1", "client:C1"}))
    assert held == [("V1", "D", "A-1"), ("V1", "F", "A-1.c1"), ("V1", "G", "A-1.r2")]
    assert resend == [("client", "C1", "35=8\x0197=Y\x0137=A-1\x0111=A1\x0117=A-1.1\x01"), dk, kept_venue, older]
    # a store this instance kept: everything as after a crash
    assert after_takeover([d, er], frozenset({"venue:V2"})) == ([d, er], [])
    assert poss_resend(resend[0]) == resend[0]  # marked once
