"""Risk engine: chain order, shadow mode, throttle with disable, kill switch, replace, reload."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path

import pytest

from risk.engine import RiskEngine
from risk.rules import RulesError, load_rules
from risk.state import RiskState
from orders.commands import NewOrder
from orders.model import OrdType, RejectCode, Side

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)
DEMO = Path(__file__).parents[1].joinpath("risk/demo_rules.toml").read_text()


def order(qty="100", price="190", side=Side.BUY, cl="1", symbol="AAPL", session="S1", account="ACC1",
          ord_type=OrdType.LIMIT):
    return NewOrder(session, cl, symbol, side, D(qty), ord_type, None if price is None else D(price), account=account)


def engine(text):
    return RiskEngine(load_rules(text))


def test_demo_rules_accept_and_reject():
    e, s = engine(DEMO), RiskState()
    s.set_last_trade("AAPL", D("190"))
    d = e.check(order(), s, NOW)
    assert d.accepted and d.reject is None and not d.shadow_rejects
    assert list(d.evaluated) == list(e.rules.chain) and all(v.passed for v in d.evaluated.values())
    d = e.check(order("100001", cl="2"), s, NOW)
    assert not d.accepted and d.reject.rule == "max_order_qty" and d.reject.code is RejectCode.EXCEEDS_LIMIT
    assert e.check(order(symbol="XXXX", cl="3"), s, NOW).reject.rule == "restricted_symbols"
    assert e.check(order(price="209.01", cl="4"), s, NOW).reject.rule == "price_band"
    assert e.check(order("26316", "190", cl="5"), s, NOW).reject.rule == "max_order_notional"  # 5,000,040


def test_chain_order_decides_first_reject_and_stops():
    text = '[limits]\nmax_order_qty = 10\nrestricted_symbols = ["AAPL"]\n'
    d = engine('chain = ["max_order_qty", "restricted_symbols"]\n' + text).check(order("11"), RiskState(), NOW)
    assert d.reject.rule == "max_order_qty" and "restricted_symbols" not in d.evaluated
    d = engine('chain = ["restricted_symbols", "max_order_qty"]\n' + text).check(order("11"), RiskState(), NOW)
    assert d.reject.rule == "restricted_symbols" and list(d.evaluated) == ["restricted_symbols"]


def test_check_not_in_chain_does_not_run():
    d = engine('chain = ["max_order_qty"]\n[limits]\nrestricted_symbols = ["AAPL"]\n').check(order(), RiskState(), NOW)
    assert d.accepted and list(d.evaluated) == ["max_order_qty"]


def test_shadow_limit_reports_but_does_not_block():
    e = engine("[limits]\nmax_order_qty = { value = 10, shadow = true }\n")
    d = e.check(order("11"), RiskState(), NOW)
    assert d.accepted and d.reject is None
    (r,) = d.shadow_rejects
    assert r.shadow and r.rule == "max_order_qty" and r.values["qty"] == D(11)
    assert d.evaluated["max_order_qty"].passed is False and d.evaluated["max_order_qty"].shadow


def test_shadow_rules_still_evaluated_after_blocking_reject():
    e = engine('chain = ["restricted_symbols", "max_order_qty", "max_open_orders"]\n'
               '[limits]\nrestricted_symbols = ["AAPL"]\nmax_order_qty = { value = 10, shadow = true }\n'
               'max_open_orders = 1\n')
    s = RiskState()
    s.on_accepted(order(cl="old"))
    d = e.check(order("11"), s, NOW)
    assert not d.accepted and d.reject.rule == "restricted_symbols"
    assert [r.rule for r in d.shadow_rejects] == ["max_order_qty"]
    assert "max_open_orders" not in d.evaluated  # blocking checks stop at the first reject


def test_shadow_checks_list():
    e = engine('shadow_checks = ["restricted_symbols"]\n[limits]\nrestricted_symbols = ["AAPL"]\n')
    d = e.check(order(), RiskState(), NOW)
    assert d.accepted and d.shadow_rejects[0].rule == "restricted_symbols"


THROTTLE = ("[sessions.S1]\nthrottle_msgs = 3\nthrottle_logout_msgs = 5\nthrottle_window_ms = 1000\n"
            "throttle_disable_after = 3\n")


def test_throttle_thresholds_through_engine():
    e, s = engine(THROTTLE), RiskState()
    results = [e.check(order(cl=str(i)), s, NOW + timedelta(milliseconds=i)) for i in range(6)]
    assert [d.accepted for d in results] == [True, True, True, False, False, False]
    assert [d.logout for d in results] == [False] * 5 + [True]
    assert results[3].reject.code is RejectCode.EXCEEDS_LIMIT
    # S2 has no throttle configured and is not affected
    assert e.check(order(session="S2"), s, NOW).accepted


def test_throttle_breaches_disable_until_operator_enables():
    e, s = engine(THROTTLE), RiskState()
    for i in range(3):
        e.check(order(cl=str(i)), s, NOW)
    assert e.check(order(cl="a"), s, NOW).session_disabled is False  # breach 1
    assert e.check(order(cl="b"), s, NOW).session_disabled is False  # breach 2
    d = e.check(order(cl="c"), s, NOW)  # breach 3
    assert d.session_disabled and "S1" in s.throttle.disabled
    later = NOW + timedelta(minutes=5)  # window long gone: still disabled
    d = e.check(order(cl="d"), s, later)
    assert not d.accepted and "disabled" in d.reject.text
    s.throttle.enable("S1")  # what the operator's `fixgw sessions enable` calls
    assert s.throttle.breaches == {}
    assert e.check(order(cl="e"), s, later + timedelta(seconds=1)).accepted


def test_shadow_throttle_does_not_count_breaches():
    e, s = engine("[limits]\nthrottle_msgs = { value = 1, shadow = true }\nthrottle_disable_after = 1\n"), RiskState()
    e.check(order(), s, NOW)
    d = e.check(order(cl="2"), s, NOW)
    assert d.accepted and d.shadow_rejects[0].rule == "throttle"
    assert s.throttle.disabled == set() and s.throttle.breaches == {}


def test_note_message_counts_other_messages():
    e, s = engine(THROTTLE), RiskState()
    for _ in range(3):
        e.note_message("S1", s, NOW)
    assert e.check(order(), s, NOW).reject.rule == "throttle"


def test_kill_switch_via_engine_and_reduce_only():
    e, s = engine(DEMO), RiskState()
    s.set_last_trade("AAPL", D("190"))
    e.on_accepted(order("100", cl="a"), s, NOW)
    s.on_fill("S1", "a", D("100"), D("190"))
    RiskEngine.kill(s, "session", "S1")
    d = e.check(order(cl="b"), s, NOW)
    assert not d.accepted and d.reject.rule == "kill_switch" and "session S1" in d.reject.text
    RiskEngine.kill(s, "session", "S1", reduce_only=True)
    assert not e.check(order(cl="c"), s, NOW).accepted
    assert e.check(order("100", side=Side.SELL, cl="d"), s, NOW).accepted
    assert RiskEngine.unkill(s, "session", "S1")
    assert e.check(order(cl="e", price="191"), s, NOW).accepted


def test_market_order_booked_at_reference():
    e, s = engine(DEMO), RiskState()
    s.set_quote("AAPL", D("189"), D("191"))
    mkt = order(price=None, ord_type=OrdType.MARKET)
    assert e.check(mkt, s, NOW).accepted
    e.on_accepted(mkt, s, NOW)
    assert s.exposure("ACC1", "AAPL").buy_notional == D(19000)
    nomkt = order(price=None, ord_type=OrdType.MARKET, symbol="IBM", cl="2")
    d = e.check(nomkt, s, NOW)
    assert not d.accepted and "no reference price for IBM" in d.reject.text


def test_check_replace_releases_old_exposure():
    e, s = engine("[accounts.ACC1]\nmax_position = 1000\nduplicate_window_ms = 1000\n"), RiskState()
    e.on_accepted(order("800", cl="a"), s, NOW)
    assert not e.check(order("800", cl="b"), s, NOW).accepted  # 1600 as a new order
    d = e.check_replace(order("1000", cl="b"), "a", s, NOW)  # the old 800 is released
    assert d.accepted
    assert not e.check_replace(order("1001", cl="b"), "a", s, NOW).accepted
    assert ("S1", "a") in s.open_orders  # state unchanged until the replace is confirmed
    before = {k: v for k, v in s.snapshot().items() if k != "msg_times"}
    e.check_replace(order("900", cl="c"), "a", s, NOW)  # checked in place: exposure is put back exactly
    assert {k: v for k, v in s.snapshot().items() if k != "msg_times"} == before
    s.on_replace("S1", "a", order("1000", cl="b"))
    assert s.exposure("ACC1", "AAPL").buy_qty == D(1000)


def test_reload_swaps_rules_and_keeps_state():
    e, s = engine("[limits]\nmax_order_qty = 10\n"), RiskState()
    e.on_accepted(order("5"), s, NOW)
    assert not e.check(order("11", cl="2"), s, NOW).accepted
    old = e.rules
    with pytest.raises(RulesError):
        e.reload(load_rules("[limits]\nmax_order_qty = -1\n"))
    assert e.rules is old  # a refused file leaves the old rules in force
    e.reload(load_rules("[limits]\nmax_order_qty = 20\n"))
    assert e.check(order("11", cl="3"), s, NOW).accepted
    assert ("S1", "1") in s.open_orders


def test_trading_hours_through_engine():
    e = engine('[symbols.AAPL]\ntrading_hours = { start = 09:30:00, end = 16:00:00, timezone = "America/New_York" }\n')
    d = e.check(order(), RiskState(), datetime(2026, 11, 24, 21, 0, tzinfo=timezone.utc))
    assert d.reject.code is RejectCode.EXCHANGE_CLOSED and "(scope symbol AAPL)" in d.reject.text
    assert e.check(order(symbol="MSFT"), RiskState(), datetime(2026, 11, 24, 21, 0, tzinfo=timezone.utc)).accepted


def test_demo_throttle_100_per_second():
    e, s = engine(DEMO), RiskState()
    s.set_last_trade("AAPL", D("190"))
    step = timedelta(milliseconds=5)  # 100 orders in 0.5 s, distinct quantities (no duplicates)
    ds = [e.check(order(str(100 + i), cl=str(i)), s, NOW + i * step) for i in range(101)]
    assert all(d.accepted for d in ds[:100])
    assert ds[100].reject.rule == "throttle" and "101 messages in 1000 ms exceeds throttle_msgs 100" in ds[100].reject.text
    # one second after the first message the window has room again
    assert e.check(order("999", cl="x"), s, NOW + timedelta(seconds=1, milliseconds=5)).accepted
