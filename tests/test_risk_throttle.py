"""The message throttle counts what its rules name (by default every client message: D, F, G, H, q), per session
and per account; cancels are counted but never refused unless the rules say so. A fake clock sets the rate."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from risk.engine import RiskEngine
from risk.rules import RulesError, load_rules
from desk.core import Core
from desk.options import ClientOptions
from orders.actions import ClientCancelReject, ClientExecReport, ClientMassCancelReport, LogoutClient
from orders.commands import CancelRequest, MassCancelRequest, NewOrder, ReplaceRequest, SessionStatus, StatusRequest
from orders.model import ExecKind, OrdStatus, OrdType, Side, TimeInForce
from routing.router import Venue

START = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)
RATE = timedelta(seconds=1) / 300  # 300 messages a second

RULES = """
chain = ["kill_switch", "throttle", "max_order_qty"]
[limits]
max_order_qty = 100000
throttle_msgs = 100
throttle_window_ms = 1000
"""


class Clock:
    def __init__(self):
        self.t = START

    def __call__(self):
        return self.t


def make_core(rules: str) -> tuple[Core, Clock]:
    clock = Clock()
    core = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions(), "C2": ClientOptions()}, "T",
                risk=RiskEngine(load_rules(rules, "t")), clock=clock)
    core.handle(SessionStatus("V1", "venue", True))
    return core, clock


def new(cl: str, qty=100, session="C1", account=None, symbol="AAPL") -> NewOrder:
    return NewOrder(session=session, cl_ord_id=cl, symbol=symbol, side=Side.BUY, qty=D(qty), ord_type=OrdType.LIMIT,
                    price=D(100), tif=TimeInForce.GTC, account=account)


def cancel(i: int, orig: str = "NOPE") -> CancelRequest:
    return CancelRequest(session="C1", cl_ord_id=f"X{i}", orig_cl_ord_id=orig, symbol="AAPL", side=Side.BUY)


def status(i: int, cl: str) -> StatusRequest:
    return StatusRequest(session="C1", cl_ord_id=cl, symbol="AAPL", side=Side.BUY)


def flood(core: Core, clock: Clock, make, n: int = 600, start: datetime = START) -> list:
    """``n`` messages at 300 a second; their outcomes."""
    outs = []
    for i in range(n):
        clock.t = start + i * RATE
        outs.append(core.handle(make(i)))
    return outs


def in_last_second(n: int = 600) -> int:
    """How many of ``n`` messages sent at 300 a second fall in the second up to the last one (window end
    inclusive, start exclusive; 1/300 s is 3333 microseconds, so 301)."""
    last = START + (n - 1) * RATE
    return sum(1 for i in range(n) if START + i * RATE > last - timedelta(seconds=1))


def resting(core: Core, clock: Clock, cl: str = "O1") -> None:
    clock.t = START - timedelta(seconds=5)
    assert type(core.handle(new(cl)).actions[-1]).__name__ == "VenueNewOrder"  # sent to the venue


def test_600_cancels_at_300_a_second_are_counted_but_never_refused_and_then_orders_are_throttled():
    core, clock = make_core(RULES + "throttle_logout_msgs = 200\nthrottle_disable_after = 5\n")
    resting(core, clock)
    outs = flood(core, clock, cancel)
    for out in outs:  # each answered as if there were no throttle: the order is unknown
        (rej,) = out.actions
        assert type(rej) is ClientCancelReject and rej.text.startswith("unknown order")
    over = [d for out in outs for _, _, d in out.risk]
    assert len(over) == 500  # the 101st to the 600th: over the limit, reported, let through
    assert all(d.accepted and "let through" in d.shadow_rejects[0].text for d in over)
    now = clock.t
    assert core.risk_state.throttle.session_count("C1", now, timedelta(seconds=1)) == in_last_second() == 301
    rs = core.risk_state
    assert rs.throttle.breaches == {} and rs.throttle.disabled == set()
    assert not any(type(a) is LogoutClient for out in outs for a in out.actions)

    out = core.handle(new("N1"))  # the cancels used up the session's rate: over the logout threshold even
    rej = next(a for a in out.actions if type(a) is ClientExecReport)
    assert rej.kind is ExecKind.REJECTED and "exceeds throttle_logout_msgs 200" in rej.text
    assert any(type(a) is LogoutClient for a in out.actions)
    out = core.handle(cancel(999, orig="O1"))  # a client can always take its risk away
    assert out.actions[0].kind is ExecKind.PENDING_CANCEL and type(out.actions[1]).__name__ == "VenueCancel"


def test_with_throttle_refuse_cancels_a_cancel_over_the_limit_gets_a_cancel_reject_naming_the_throttle():
    core, clock = make_core(RULES + "throttle_refuse_cancels = true\n")
    resting(core, clock)
    outs = flood(core, clock, cancel, n=150)
    texts = [out.actions[0].text for out in outs]
    assert all(t.startswith("unknown order") for t in texts[:100])
    assert all(t.startswith("throttle: ") and "exceeds throttle_msgs 100" in t for t in texts[100:])
    assert core.risk_state.throttle.breaches == {"C1": 50}
    out = core.handle(MassCancelRequest(session="C1", cl_ord_id="M1", request_type="7"))
    (report,) = out.actions
    assert type(report) is ClientMassCancelReport and report.response == "0" and report.reject_reason == "99"
    assert "throttle" in report.text
    assert core.order_for_client("C1", "O1").status is not OrdStatus.PENDING_CANCEL  # nothing was canceled


def test_600_status_requests_at_300_a_second_are_counted_throttled_and_disable_the_session():
    core, clock = make_core(RULES + "throttle_logout_msgs = 200\nthrottle_disable_after = 5\n")
    resting(core, clock)
    outs = flood(core, clock, lambda i: status(i, "O1"))
    reports = [next(a for a in out.actions if type(a) is ClientExecReport) for out in outs]
    # always the order's true status: a status answer never says Rejected for a working order
    assert all(r.kind is ExecKind.ORDER_STATUS and r.ord_status is OrdStatus.PENDING_NEW for r in reports)
    assert all(r.text is None for r in reports[:100])
    assert "exceeds throttle_msgs 100" in reports[100].text
    assert "disabled" in reports[-1].text
    logouts = [(i, a) for i, out in enumerate(outs) for a in out.actions if type(a) is LogoutClient]
    assert logouts[0][0] == 104 and "repeated throttle breaches" in logouts[0][1].reason  # the 5th breach
    assert core.risk_state.throttle.disabled == {"C1"}
    rej = core.handle(new("N1")).actions[0]
    assert rej.kind is ExecKind.REJECTED and "disabled" in rej.text
    # every one counted, and the refused order too
    assert core.risk_state.throttle.session_count("C1", clock.t, timedelta(seconds=1)) == in_last_second() + 1


def test_a_status_request_for_an_unknown_order_over_the_limit_says_both():
    core, clock = make_core(RULES)
    outs = flood(core, clock, lambda i: status(i, f"U{i}"), n=101)
    last = outs[-1].actions[0]
    assert last.ord_status is OrdStatus.REJECTED and "unknown order" in last.text and "throttle" in last.text


def test_the_rules_name_the_message_types_the_throttle_counts():
    core, clock = make_core(RULES + 'throttle_msg_types = ["D", "G"]\n')
    resting(core, clock)
    outs = flood(core, clock, lambda i: status(i, "O1"))
    assert not any(out.risk for out in outs) and all(out.actions[0].text is None for out in outs)
    assert core.risk_state.throttle.session_count("C1", clock.t, timedelta(seconds=1)) == 0
    assert core.handle(new("N1")).actions[0].kind is ExecKind.PENDING_NEW

    core, clock = make_core(RULES + 'throttle_msg_types = ["F"]\n')
    flood(core, clock, cancel, n=200)
    assert core.risk_state.throttle.session_count("C1", clock.t, timedelta(seconds=1)) == 200
    # an order is a type the throttle does not count here: not limited by it either
    assert core.handle(new("N1")).actions[0].kind is ExecKind.PENDING_NEW


def test_replaces_and_mass_cancels_count_too():
    core, clock = make_core(RULES)
    resting(core, clock)
    clock.t = START
    for i in range(50):
        core.handle(MassCancelRequest(session="C1", cl_ord_id=f"M{i}", request_type="1", symbol="MSFT"))
    for i in range(50):
        core.handle(ReplaceRequest(session="C1", cl_ord_id=f"R{i}", orig_cl_ord_id="NOPE", symbol="AAPL",
                                   side=Side.BUY, qty=D(10), ord_type=OrdType.LIMIT, price=D(100)))
    assert core.risk_state.throttle.session_count("C1", clock.t, timedelta(seconds=1)) == 100
    assert "throttle" in core.handle(new("N1")).actions[0].text


def test_orders_refused_before_the_risk_check_still_count():
    core, clock = make_core(RULES)
    flood(core, clock, lambda i: new(f"B{i}", symbol="NOPE"), n=100)  # unknown symbol: refused by validation
    clock.t += RATE
    rej = core.handle(new("N1")).actions[0]
    assert rej.kind is ExecKind.REJECTED and "101 messages" in rej.text


def test_an_accounts_messages_are_counted_across_its_sessions():
    rules = RULES.replace("throttle_msgs = 100\n", "") + "[accounts.ACC1]\naccount_throttle_msgs = 50\n"
    core, clock = make_core(rules)
    for i in range(60):
        clock.t = START + i * RATE
        session = "C1" if i % 2 else "C2"
        kind = core.handle(new(f"A{i}", qty=1 + i, session=session, account="ACC1")).actions[0]
        assert (kind.kind is ExecKind.REJECTED) == (i >= 50), i
    assert "for account ACC1" in kind.text and "account_throttle_msgs 50" in kind.text
    assert core.handle(new("B1", session="C1", account="ACC2")).actions[0].kind is ExecKind.PENDING_NEW
    assert core.risk_state.throttle.breaches == {}  # an account's limit is no one session's breach
    out = core.handle(CancelRequest(session="C2", cl_ord_id="X1", orig_cl_ord_id="A0", symbol="AAPL", side=Side.BUY))
    assert out.actions[0].kind is ExecKind.PENDING_CANCEL  # its order's account is counted; a cancel goes through
    assert core.risk_state.throttle.account_count("ACC1", clock.t, timedelta(seconds=1)) == 61


def test_an_unknown_message_type_in_the_rules_is_refused_naming_the_key():
    with pytest.raises(RulesError) as err:
        load_rules('[sessions.C1]\nthrottle_msg_types = ["D", "Z"]\n', "rules.toml")
    assert "sessions.C1.throttle_msg_types" in str(err.value)
