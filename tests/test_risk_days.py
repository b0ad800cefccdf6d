"""Per-day risk usage rolls at trading-day boundaries, with a fake clock; a restart after the roll does not bring
yesterday's usage back (the real state log and recovery path)."""
from __future__ import annotations

import dataclasses
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal as D

from gateway.state import recovery
from gateway.state.log import StateLog
from gateway.state.records import State
from risk.days import day_begins, next_boundary, trading_day
from risk.engine import RiskEngine
from risk.rules import load_rules
from risk.state import RiskState
from desk.core import Core
from desk.options import ClientOptions
from orders.commands import NewOrder, RiskDayRoll, SessionStatus, StatusRequest, VenueExecution
from orders.model import ExecKind, OrdStatus, OrdType, Side, TimeInForce
from routing.router import Venue

UTC = timezone.utc
DAY1 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)

RULES = """
chain = ["throttle", "daily_notional"]
[limits]
max_daily_notional = 30000
throttle_msgs = 2
throttle_window_ms = 1000
throttle_disable_after = 3
"""
DAILY = """
chain = ["daily_notional"]
[limits]
max_daily_notional = 50000
"""


class Clock:
    """A clock the test moves; each reading is the same until it is moved."""

    def __init__(self, t: datetime = DAY1):
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def to(self, t: datetime) -> None:
        self.t = t


def order(cl: str, qty=100, px="100", session="C1", account="ACC1", tif=TimeInForce.DAY, seq=0) -> NewOrder:
    return NewOrder(session=session, cl_ord_id=cl, symbol="AAPL", side=Side.BUY, qty=D(qty), ord_type=OrdType.LIMIT,
                    price=D(px), tif=tif, account=account, seq=seq)


# --------------------------------------------------------------------------- trading days
def test_a_trading_day_begins_at_its_boundary_and_is_named_by_the_date_it_begins_on():
    at_2100 = time(21, 0)
    assert trading_day(datetime(2026, 11, 24, 20, 59, 59, tzinfo=UTC), at_2100) == date(2026, 11, 23)
    assert trading_day(datetime(2026, 11, 24, 21, 0, tzinfo=UTC), at_2100) == date(2026, 11, 24)
    assert trading_day(datetime(2026, 11, 25, 3, 0, tzinfo=UTC), at_2100) == date(2026, 11, 24)
    assert trading_day(datetime(2026, 11, 24, 23, 59, tzinfo=UTC)) == date(2026, 11, 24)  # default: the UTC date
    assert day_begins(date(2026, 11, 24), at_2100) == datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
    assert next_boundary(datetime(2026, 11, 24, 21, 0, tzinfo=UTC), at_2100) == datetime(2026, 11, 25, 21, 0,
                                                                                          tzinfo=UTC)
    # a time in another zone is the same moment
    east = timezone(timedelta(hours=9))
    assert trading_day(datetime(2026, 11, 25, 8, 0, tzinfo=east)) == date(2026, 11, 24)


# --------------------------------------------------------------------------- engine and state
def test_yesterdays_daily_notional_does_not_count_today_and_an_open_order_carries_over_with_its_open_quantity():
    engine, state = RiskEngine(load_rules(RULES, "t")), RiskState()
    engine.roll(state, DAY1)
    filled = order("F1", 200)  # 20000
    engine.on_accepted(filled, state, DAY1)
    state.on_fill("C1", "F1", D(200), D(100))
    resting = order("R1", 50)  # 5000 open
    engine.on_accepted(resting, state, DAY1)
    state.on_fill("C1", "R1", D(10), D(100))  # 1000 of it filled today
    assert state.usage.used["ACC1"] == D(25000)
    refused = engine.check(order("N1", 60), state, DAY1 + timedelta(seconds=5))
    assert not refused.accepted and refused.reject.rule == "daily_notional"

    next_day = datetime(2026, 11, 25, 0, 0, 1, tzinfo=UTC)
    events = engine.roll(state, next_day)
    assert len(events) == 1 and "trading day 2026-11-25" in events[0] and "ACC1 21000" in events[0]
    assert state.usage.day == date(2026, 11, 25)
    assert state.usage.used["ACC1"] == D(4000)  # the carried order's 40 open, not yesterday's fills
    assert state.usage.filled == {}
    assert engine.check(order("N2", 260), state, next_day).accepted  # 4000 + 26000 = 30000: at the limit
    assert not engine.check(order("N3", 261), state, next_day + timedelta(seconds=5)).accepted


def test_the_roll_is_a_no_op_until_the_boundary_and_a_clock_stepping_back_never_brings_a_day_back():
    engine, state = RiskEngine(load_rules(RULES, "t")), RiskState()
    assert engine.roll(state, DAY1) == []  # the first day: nothing to drop
    engine.on_accepted(order("F1", 100), state, DAY1)
    state.on_fill("C1", "F1", D(100), D(100))
    assert engine.roll(state, datetime(2026, 11, 24, 23, 59, 59, tzinfo=UTC)) == []
    assert state.usage.used["ACC1"] == D(10000)
    assert engine.roll(state, datetime(2026, 11, 25, tzinfo=UTC))  # exactly at the boundary
    assert engine.roll(state, datetime(2026, 11, 25, 0, 0, 1, tzinfo=UTC)) == []
    state.usage.filled["ACC1"] = state.usage.used["ACC1"] = D(500)
    assert engine.roll(state, DAY1) == [] and state.usage.day == date(2026, 11, 25)  # stepping back: nothing
    assert state.usage.used["ACC1"] == D(500)


def test_account_usage_rolls_at_the_configured_trading_day_start():
    engine, state = RiskEngine(load_rules(RULES, "t"), account_day_start=time(21, 0)), RiskState()
    engine.roll(state, DAY1)
    engine.on_accepted(order("F1", 100), state, DAY1)
    state.on_fill("C1", "F1", D(100), D(100))
    assert state.usage.day == date(2026, 11, 23)  # 15:00 is in the day that began yesterday at 21:00
    assert engine.roll(state, datetime(2026, 11, 24, 20, 59, 59, tzinfo=UTC)) == []
    assert state.usage.used["ACC1"] == D(10000)
    assert engine.roll(state, datetime(2026, 11, 24, 21, 0, tzinfo=UTC))
    assert state.usage.used.get("ACC1", D(0)) == 0 and state.usage.day == date(2026, 11, 24)


def breach(engine, state, session, at, n=3):
    """``n`` orders in one instant: the third and later are over throttle_msgs 2."""
    for i in range(n):
        engine.check(order(f"{session}-{at:%H%M%S}-{i}", 1, session=session, account=None), state, at)


def test_a_sessions_breach_count_rolls_at_its_own_schedule_start_and_a_disabled_session_stays_disabled():
    engine, state = RiskEngine(load_rules(RULES, "t")), RiskState()
    engine.set_session_day_start("C1", time(13, 30))  # C1's FIX schedule starts 13:30 UTC; C2 has none
    at = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    engine.roll(state, at)
    breach(engine, state, "C1", at, 4)
    breach(engine, state, "C2", at, 4)
    assert state.throttle.breaches == {"C1": 2, "C2": 2}
    assert state.usage.session_days == {"C1": date(2026, 11, 23), "C2": date(2026, 11, 24)}

    events = engine.roll(state, datetime(2026, 11, 24, 13, 30, tzinfo=UTC))
    assert len(events) == 1 and "session C1" in events[0] and "was 2" in events[0]
    assert state.throttle.breaches == {"C2": 2}  # C2 rolls at midnight, with the accounts
    later = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    breach(engine, state, "C1", later, 4)  # two breaches today: not yet the third
    assert "C1" not in state.throttle.disabled
    breach(engine, state, "C2", later, 3)  # its third today: disabled
    assert state.throttle.disabled == {"C2"}

    events = engine.roll(state, datetime(2026, 11, 25, 0, 0, tzinfo=UTC))
    assert any("session C2" in e and "stays disabled" in e for e in events)
    assert "C2" not in state.throttle.breaches and state.throttle.disabled == {"C2"}  # an operator re-enables it


# --------------------------------------------------------------------------- through the core
def make_core(clock: Clock, rules: str = DAILY, **options) -> Core:
    core = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions(**options), "C2": ClientOptions()}, "T",
                risk=RiskEngine(load_rules(rules, "t")), clock=clock)
    core.handle(SessionStatus("V1", "venue", True))
    return core


def fill(core: Core, cl: str, qty, px="100", seq=0) -> VenueExecution:
    o = core.order_for_client("C1", cl)
    child = o.children[0]
    return VenueExecution(venue="V1", cl_ord_id=child.cl_ord_id, orig_cl_ord_id=None, venue_order_id="VO" + cl,
                          exec_id=f"X-{cl}-{qty}-{seq}", kind=ExecKind.TRADE, ord_status=OrdStatus.PARTIALLY_FILLED,
                          symbol="AAPL", side=Side.BUY, last_qty=D(qty), last_px=D(px), cum_qty=D(0),
                          leaves_qty=D(0), seq=seq)


def test_a_fill_after_the_boundary_counts_on_the_new_day_even_with_no_order_in_between():
    clock = Clock()
    core = make_core(clock)
    core.handle(order("G1", 300, tif=TimeInForce.GTC))  # 30000 open: the whole day's limit
    core.handle(fill(core, "G1", 100))
    clock.to(datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    out = core.handle(fill(core, "G1", 50))  # first message of the new day: a fill
    assert out.risk_events and "trading day 2026-11-25" in out.risk_events[0]
    rs = core.risk_state
    assert rs.usage.filled == {"ACC1": D(5000)}
    assert rs.usage.used["ACC1"] == D(5000) + D(150) * 100  # today's fill + what is still open


def test_the_scheduled_roll_rolls_and_reports_with_no_order_flowing():
    clock = Clock()
    core = make_core(clock)
    core.handle(order("A1", 100))
    core.handle(fill(core, "A1", 100))
    assert core.handle(RiskDayRoll()).risk_events == []
    clock.to(datetime(2026, 11, 25, 0, 0, tzinfo=UTC))
    out = core.handle(RiskDayRoll())
    assert len(out.risk_events) == 1 and "ACC1 10000" in out.risk_events[0]
    assert core.risk_state.usage.used.get("ACC1", D(0)) == 0


def test_a_session_rolls_at_the_start_given_in_its_options_and_at_a_new_one_after_a_reload():
    clock = Clock(datetime(2026, 11, 24, 13, 0, tzinfo=UTC))
    core = make_core(clock, RULES, day_start=time(13, 30))
    for i in range(4):
        core.handle(StatusRequest(session="C1", cl_ord_id=f"S{i}", symbol="AAPL", side=Side.BUY))
    assert core.risk_state.throttle.breaches == {"C1": 2}
    clock.to(datetime(2026, 11, 24, 13, 30, tzinfo=UTC))
    assert any("session C1" in e for e in core.handle(RiskDayRoll()).risk_events)
    assert core.risk_state.throttle.breaches == {}
    core.set_client("C1", ClientOptions(day_start=time(14, 0)))  # `fixgw sessions reload`: a new schedule
    for i in range(4):
        core.handle(StatusRequest(session="C1", cl_ord_id=f"T{i}", symbol="AAPL", side=Side.BUY))
    clock.to(datetime(2026, 11, 24, 14, 0, tzinfo=UTC))
    assert core.handle(RiskDayRoll()).risk_events == []  # its day began at 13:30 on the old schedule ...
    clock.to(datetime(2026, 11, 25, 14, 0, tzinfo=UTC))
    assert any("session C1" in e for e in core.handle(RiskDayRoll()).risk_events)  # ... the next at 14:00


# --------------------------------------------------------------------------- across a restart
def recorded(tmp_path, clock: Clock):
    core = make_core(clock)
    log = StateLog(tmp_path)
    log.open(State())
    return core, log, recovery.Recorder(log, core, State())


def run(core, rec, cmd):
    out = core.handle(cmd)
    rec.record(cmd, out)
    return out


def restarted(tmp_path, clock: Clock) -> tuple[Core, State]:
    state = StateLog(tmp_path).recover()
    core = make_core(clock)
    recovery.restore_core(core, state)
    return core, state


def day_one(core, rec):
    """A GTC order 100 of 300 filled (10000, 20000 open) and a Day order filled whole (10000): 40000 used."""
    run(core, rec, order("G1", 300, tif=TimeInForce.GTC, seq=1))
    run(core, rec, fill(core, "G1", 100, seq=1))
    run(core, rec, order("A1", 100, seq=2))
    run(core, rec, fill(core, "A1", 100, seq=2))
    assert core.risk_state.usage.used["ACC1"] == D(40000)


def test_a_restart_after_the_roll_starts_from_the_new_days_usage_not_from_every_fill_it_still_knows(tmp_path):
    clock = Clock()
    core, log, rec = recorded(tmp_path, clock)
    day_one(core, rec)
    clock.to(datetime(2026, 11, 25, 0, 0, 5, tzinfo=UTC))
    assert run(core, rec, RiskDayRoll()).risk_events  # the scheduled roll, recorded
    run(core, rec, fill(core, "G1", 20, seq=3))  # 2000 filled today
    today = dict(core.risk_state.usage.used)
    assert today == {"ACC1": D(2000) + D(180) * 100}

    back, state = restarted(tmp_path, clock)  # a crash: the log is folded without a snapshot
    assert not state.clean
    assert back.risk_state.usage.day == date(2026, 11, 25)
    assert dict(back.risk_state.usage.used) == today  # not the 12000 filled on G1 in all, nor A1's 10000
    # 20000 + 25000 is within 50000; with yesterday's 22000 filled it would not be
    assert back.handle(order("B1", 250)).actions[0].kind is ExecKind.PENDING_NEW

    # a clean stop writes the same picture into the snapshot
    log.close(rec.capture())
    again, state = restarted(tmp_path, clock)
    assert state.clean and dict(again.risk_state.usage.used) == today


def test_a_restart_across_a_boundary_the_gateway_was_down_for_rolls_at_its_first_message(tmp_path):
    clock = Clock()
    core, log, rec = recorded(tmp_path, clock)
    day_one(core, rec)
    log.close(rec.capture())
    clock.to(datetime(2026, 11, 25, 8, 0, tzinfo=UTC))  # down over midnight
    back, _ = restarted(tmp_path, clock)
    assert back.risk_state.usage.day == date(2026, 11, 24)  # as recorded, until a message or the roll moves it on
    out = back.handle(order("B1", 100))
    assert "trading day 2026-11-25" in out.risk_events[0]
    assert out.actions[0].kind is ExecKind.PENDING_NEW
    assert back.risk_state.usage.used["ACC1"] == D(200) * 100 + D(100) * 100  # G1's open 200 + B1


def test_a_restart_on_the_same_day_keeps_the_days_usage(tmp_path):
    clock = Clock()
    core, log, rec = recorded(tmp_path, clock)
    day_one(core, rec)
    back, _ = restarted(tmp_path, clock)
    assert dict(back.risk_state.usage.used) == dict(core.risk_state.usage.used)
    out = back.handle(order("B1", 101))  # 40000 used: 50100 is over 50000
    assert out.actions[0].kind is ExecKind.REJECTED and "daily_notional" in out.actions[0].text


def test_a_state_log_without_day_records_keeps_the_counts_rebuilt_from_its_orders(tmp_path):
    """A log written before this version: the rebuilt counts are kept (the safe side) until the next roll."""
    clock = Clock()
    core, log, rec = recorded(tmp_path, clock)
    day_one(core, rec)
    state = StateLog(tmp_path).recover()
    state = dataclasses.replace(state, risk_day=None)
    back = make_core(clock)
    recovery.restore_core(back, state)
    assert back.risk_state.usage.day is None and back.risk_state.usage.used["ACC1"] == D(40000)
    back.handle(RiskDayRoll())
    assert back.risk_state.usage.day == date(2026, 11, 24) and back.risk_state.usage.used["ACC1"] == D(40000)
    clock.to(datetime(2026, 11, 25, 0, 0, tzinfo=UTC))
    back.handle(RiskDayRoll())
    assert back.risk_state.usage.used["ACC1"] == D(20000)  # G1's open 200


def test_per_day_usage_goes_into_the_records_as_plain_values_only_when_it_changes(tmp_path):
    from gateway.state.records import load_record

    clock = Clock()
    core, log, rec = recorded(tmp_path, clock)
    run(core, rec, order("G1", 300, tif=TimeInForce.GTC, seq=1))
    run(core, rec, StatusRequest(session="C1", cl_ord_id="G1", symbol="AAPL", side=Side.BUY, seq=2))
    run(core, rec, fill(core, "G1", 100, seq=1))
    data = (tmp_path / "state.log").read_bytes()
    records, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "little")
        records.append(load_record(data[pos + 8:pos + 8 + n]))
        pos += 8 + n
    days = [r.risk_day for r in records]
    assert days[0] == ("2026-11-24", True, {}, {})  # the first day set
    assert days[1] is None  # a status request changes no usage
    assert days[2] == ("2026-11-24", False, {"ACC1": "10000"}, {})
