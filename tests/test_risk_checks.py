"""Each pre-trade check at its edges: exactly at the limit passes, one unit above rejects."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from risk import checks as C
from risk.rules import load_rules, resolve_limits
from risk.state import RiskState
from orders.commands import NewOrder
from orders.model import OrdType, RejectCode, Side

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)  # Tuesday 10:00 New York


def order(qty="100", price="100", side=Side.BUY, ord_type=OrdType.LIMIT, symbol="AAPL", account="ACC1",
          session="S1", cl="1"):
    return NewOrder(session, cl, symbol, side, D(qty), ord_type, None if price is None else D(price),
                    account=account)


def lims(toml, o=None):
    o = o or order()
    return resolve_limits(load_rules(toml), o.session, o.account, o.symbol)


def run(fn, toml, o, state=None, now=NOW):
    return fn(o, lims(toml, o), state or RiskState(), now)


def test_max_order_qty_edges():
    t = "[accounts.ACC1]\nmax_order_qty = 100000\n"
    assert run(C.check_max_order_qty, t, order("100000")) is None
    r = run(C.check_max_order_qty, t, order("100001"))
    assert r.code is RejectCode.EXCEEDS_LIMIT
    assert r.text == "max_order_qty: OrderQty 100001 exceeds 100000 (scope account ACC1)"
    assert r.values == {"qty": D(100001), "limit": D(100000)}
    assert run(C.check_max_order_qty, "", order("10000000")) is None  # unset: off


def test_max_order_notional_edges():
    t = "[limits]\nmax_order_notional = 5000000\n"
    assert run(C.check_max_order_notional, t, order("50000", "100")) is None
    r = run(C.check_max_order_notional, t, order("50000", "100.01"))
    assert r.code is RejectCode.EXCEEDS_LIMIT and r.values["notional"] == D("5000500.00")
    assert run(C.check_max_order_notional, t, order("50001", "100")) is not None


def test_max_order_notional_market_uses_reference_or_rejects():
    t = "[limits]\nmax_order_notional = 1000\n"
    st = RiskState()
    mkt = order("10", None, ord_type=OrdType.MARKET)
    r = run(C.check_max_order_notional, t, mkt, st)
    assert r is not None and r.code is RejectCode.OTHER and "no reference price for AAPL" in r.text
    st.set_last_trade("AAPL", D("100"))
    assert run(C.check_max_order_notional, t, mkt, st) is None
    st.set_last_trade("AAPL", D("100.01"))
    assert run(C.check_max_order_notional, t, mkt, st).code is RejectCode.EXCEEDS_LIMIT


def test_price_band_pct_edges():
    t = "[limits]\nprice_band_pct = 10\n"
    st = RiskState()
    st.set_last_trade("AAPL", D("190"))
    assert run(C.check_price_band, t, order(price="209"), st) is None
    assert run(C.check_price_band, t, order(price="171"), st) is None
    r = run(C.check_price_band, t, order(price="209.01"), st)
    assert r is not None and r.values["high"] == D("209") and r.values["source"] == "last"
    assert run(C.check_price_band, t, order(price="170.99"), st) is not None


def test_price_band_ticks():
    t = "[limits]\nprice_band_ticks = 5\ntick_size = 0.01\n"
    st = RiskState()
    st.set_reference_price("AAPL", D("100"))
    assert run(C.check_price_band, t, order(price="100.05"), st) is None
    assert run(C.check_price_band, t, order(price="100.06"), st) is not None
    assert run(C.check_price_band, t, order(price="99.94"), st) is not None


def test_price_band_reference_sources_and_mid():
    t = '[limits]\nprice_band_pct = 1\nreference_sources = ["mid", "last"]\n'
    st = RiskState()
    st.set_last_trade("AAPL", D("50"))
    st.set_quote("AAPL", D("99"), D("101"))
    assert run(C.check_price_band, t, order(price="101"), st) is None  # mid 100, band 99..101
    r = run(C.check_price_band, t, order(price="101.01"), st)
    assert r.values["source"] == "mid"


def test_price_band_no_reference_policy():
    o = order(price="100")
    assert run(C.check_price_band, "[limits]\nprice_band_pct = 10\n", o) is not None  # default: reject
    r = run(C.check_price_band, '[limits]\nprice_band_pct = 10\nno_reference = "reject"\n', o)
    assert "no reference price" in r.text
    assert run(C.check_price_band, '[limits]\nprice_band_pct = 10\nno_reference = "allow"\n', o) is None
    # market orders have no price to band
    assert run(C.check_price_band, "[limits]\nprice_band_pct = 10\n", order(price=None, ord_type=OrdType.MARKET)) is None


def test_max_open_orders_edges():
    t = "[sessions.S1]\nmax_open_orders = 2\n"
    st = RiskState()
    st.on_accepted(order(cl="a"))
    assert run(C.check_max_open_orders, t, order(cl="b"), st) is None
    st.on_accepted(order(cl="b"))
    r = run(C.check_max_open_orders, t, order(cl="c"), st)
    assert r.code is RejectCode.EXCEEDS_LIMIT and r.scope == "session S1"
    st.on_done("S1", "a")
    assert run(C.check_max_open_orders, t, order(cl="c"), st) is None


def test_max_position_counts_fills_and_open_orders():
    t = "[account_symbols.ACC1.AAPL]\nmax_position = 1000\n"
    st = RiskState()
    st.on_accepted(order("600", cl="a"))
    st.on_fill("S1", "a", D("400"), D("100"))  # position 400, open buy 200
    assert run(C.check_max_position, t, order("400"), st) is None  # 400 + 200 + 400 = 1000
    r = run(C.check_max_position, t, order("401"), st)
    assert r.code is RejectCode.EXCEEDS_LIMIT and r.values["worst"] == D(1001)
    # a sell of 1400 takes the position to -1000: allowed; 1401 not
    assert run(C.check_max_position, t, order("1400", side=Side.SELL), st) is None
    assert run(C.check_max_position, t, order("1401", side=Side.SELL), st) is not None
    # another account is not affected
    assert run(C.check_max_position, "[limits]\nmax_position = 1000\n", order("1000", account="ACC2"), st) is None


def test_max_gross_exposure_account_and_symbol():
    st = RiskState()
    st.on_accepted(order("10", "100", cl="a"))  # open buy 1000
    st.on_accepted(order("5", "100", side=Side.SELL, symbol="MSFT", cl="b"))  # open sell 500
    t = "[accounts.ACC1]\nmax_gross_exposure = 2000\n"
    assert run(C.check_max_gross_exposure, t, order("5", "100"), st) is None  # 1000 + 500 + 500
    assert run(C.check_max_gross_exposure, t, order("5", "100.01"), st) is not None
    t = "[account_symbols.ACC1.AAPL]\nmax_symbol_gross_exposure = 1500\n"
    assert run(C.check_max_gross_exposure, t, order("5", "100", side=Side.SELL), st) is None
    r = run(C.check_max_gross_exposure, t, order("6", "100", side=Side.SELL), st)
    assert "max_symbol_gross_exposure 1500" in r.text


def test_max_net_exposure_buy_and_sell_sides():
    st = RiskState()
    st.on_accepted(order("10", "100", cl="a"))
    st.on_fill("S1", "a", D("10"), D("100"))  # long 1000 notional
    t = "[accounts.ACC1]\nmax_net_exposure = 1500\n"
    assert run(C.check_max_net_exposure, t, order("5", "100"), st) is None  # 1500
    assert run(C.check_max_net_exposure, t, order("6", "100"), st) is not None
    assert run(C.check_max_net_exposure, t, order("25", "100", side=Side.SELL), st) is None  # 1000 - 2500 = -1500
    assert run(C.check_max_net_exposure, t, order("26", "100", side=Side.SELL), st) is not None
    t = "[limits]\nmax_symbol_net_exposure = 1000\n"
    assert run(C.check_max_net_exposure, t, order("1", "100"), st) is not None


def test_daily_notional_counts_fills_and_open():
    t = "[accounts.ACC1]\nmax_daily_notional = 10000\n"
    st = RiskState()
    st.on_accepted(order("50", "100", cl="a"))
    st.on_fill("S1", "a", D("50"), D("100"))
    st.on_accepted(order("30", "100", side=Side.SELL, cl="b"))
    assert st.usage.used["ACC1"] == D(8000)
    assert run(C.check_daily_notional, t, order("20", "100"), st) is None
    assert run(C.check_daily_notional, t, order("20", "100.01"), st).code is RejectCode.EXCEEDS_LIMIT
    st.on_done("S1", "b")  # cancel releases the open part
    assert run(C.check_daily_notional, t, order("50", "100"), st) is None
    st.new_day()
    assert st.usage.used == {}


def test_restricted_symbols():
    t = '[limits]\nrestricted_symbols = ["XXXX"]\n'
    assert run(C.check_restricted_symbols, t, order(symbol="XXXX")).text.startswith("restricted_symbols: symbol XXXX")
    assert run(C.check_restricted_symbols, t, order(symbol="AAPL")) is None


def test_market_orders_allowed_or_not():
    mkt = order(price=None, ord_type=OrdType.MARKET)
    r = run(C.check_market_orders, "[limits]\nallow_market_orders = false\n", mkt)
    assert r.code is RejectCode.UNSUPPORTED_ORDER_CHARACTERISTIC
    assert run(C.check_market_orders, "[limits]\nallow_market_orders = false\n", order()) is None
    assert run(C.check_market_orders, "[limits]\nallow_market_orders = true\n", mkt) is None


def test_duplicate_order_window():
    t = "[limits]\nduplicate_window_ms = 1000\n"
    st = RiskState()
    st.on_accepted(order(cl="a"), now=NOW)
    r = run(C.check_duplicate_order, t, order(cl="b"), st, NOW + timedelta(milliseconds=999))
    assert r.code is RejectCode.DUPLICATE_ORDER
    assert run(C.check_duplicate_order, t, order(cl="b"), st, NOW + timedelta(milliseconds=1000)) is None
    assert run(C.check_duplicate_order, t, order(cl="b", price="100.01"), st, NOW) is None
    assert run(C.check_duplicate_order, t, order(cl="b", side=Side.SELL), st, NOW) is None
    assert run(C.check_duplicate_order, t, order(cl="b", session="S2"), st, NOW) is None


def test_throttle_two_thresholds():
    t = "[sessions.S1]\nthrottle_msgs = 3\nthrottle_logout_msgs = 5\nthrottle_window_ms = 1000\n"
    st = RiskState()
    w = timedelta(seconds=1)
    for i in range(3):
        st.throttle.count("S1", NOW + timedelta(milliseconds=i), w)
    assert run(C.check_throttle, t, order(), st) is None  # exactly 3
    st.throttle.count("S1", NOW + timedelta(milliseconds=3), w)
    r = run(C.check_throttle, t, order(), st)
    assert r.code is RejectCode.EXCEEDS_LIMIT and not r.logout and r.values["count"] == 4
    st.throttle.count("S1", NOW + timedelta(milliseconds=4), w)
    assert not run(C.check_throttle, t, order(), st).logout  # 5: still only a reject
    st.throttle.count("S1", NOW + timedelta(milliseconds=5), w)
    assert run(C.check_throttle, t, order(), st).logout  # 6
    # the window slides: a second later the old messages no longer count
    later = NOW + timedelta(milliseconds=1003)
    assert run(C.check_throttle, t, order(), st, later) is None


def test_throttle_disabled_session():
    st = RiskState()
    st.throttle.disabled.add("S1")
    r = run(C.check_throttle, "", order(), st)
    assert "disabled" in r.text and "re-enable" in r.text


NY_HOURS = '[symbols.AAPL]\ntrading_hours = { start = 09:30:00, end = 16:00:00, timezone = "America/New_York" }\n'


@pytest.mark.parametrize("utc, open_", [
    (datetime(2026, 11, 24, 14, 29, 59), False),  # 09:29:59 EST
    (datetime(2026, 11, 24, 14, 30, 0), True),  # 09:30 EST
    (datetime(2026, 11, 24, 20, 59, 59), True),
    (datetime(2026, 11, 24, 21, 0, 0), False),  # 16:00 EST: closed
    (datetime(2026, 7, 14, 13, 30, 0), True),  # 09:30 EDT (summer time, UTC-4)
    (datetime(2026, 7, 14, 20, 0, 0), False),  # 16:00 EDT
    (datetime(2026, 11, 28, 15, 0, 0), False),  # Saturday
    (datetime(2026, 11, 25, 2, 0, 0), False),  # Tuesday 21:00 New York although Wednesday in UTC
])
def test_trading_hours_across_timezone(utc, open_):
    r = run(C.check_trading_hours, NY_HOURS, order(), now=utc.replace(tzinfo=timezone.utc))
    assert (r is None) == open_
    if r is not None:
        assert r.code is RejectCode.EXCHANGE_CLOSED and "America/New_York" in r.text


def test_trading_hours_over_midnight():
    t = '[limits]\ntrading_hours = { start = 22:00:00, end = 06:00:00, timezone = "Asia/Tokyo", weekdays = [0] }\n'
    tokyo = timezone(timedelta(hours=9))
    assert run(C.check_trading_hours, t, order(), now=datetime(2026, 11, 23, 23, 0, tzinfo=tokyo)) is None  # Mon 23:00
    assert run(C.check_trading_hours, t, order(), now=datetime(2026, 11, 24, 5, 59, tzinfo=tokyo)) is None  # Mon's session
    assert run(C.check_trading_hours, t, order(), now=datetime(2026, 11, 24, 6, 0, tzinfo=tokyo)) is not None
    assert run(C.check_trading_hours, t, order(), now=datetime(2026, 11, 24, 23, 0, tzinfo=tokyo)) is not None  # Tue


def test_kill_switch_halt_scopes():
    st = RiskState()
    assert run(C.check_kill_switch, "", order(), st) is None
    for scope, key in (("global", ""), ("session", "S1"), ("account", "ACC1"), ("symbol", "AAPL")):
        st = RiskState()
        st.kill_switches.engage(scope, key)
        r = run(C.check_kill_switch, "", order(), st)
        assert r is not None and "halted" in r.text, scope
    st = RiskState()
    st.kill_switches.engage("symbol", "MSFT")
    assert run(C.check_kill_switch, "", order(), st) is None


def test_kill_switch_reduce_only():
    st = RiskState()
    st.on_accepted(order("100", cl="a"))
    st.on_fill("S1", "a", D("100"), D("100"))  # long 100
    st.kill_switches.engage("account", "ACC1", "reduce_only")
    assert run(C.check_kill_switch, "", order("100", side=Side.SELL), st) is None
    assert run(C.check_kill_switch, "", order("101", side=Side.SELL), st) is not None  # would flip short
    assert run(C.check_kill_switch, "", order("1"), st) is not None  # buy adds
    st.on_accepted(order("60", side=Side.SELL, cl="b"))  # open sell counts as already reducing
    assert run(C.check_kill_switch, "", order("40", side=Side.SELL), st) is None
    assert run(C.check_kill_switch, "", order("41", side=Side.SELL), st) is not None
    # flat: nothing reduces
    st2 = RiskState()
    st2.kill_switches.engage("global", "", "reduce_only")
    assert run(C.check_kill_switch, "", order("1", side=Side.SELL), st2) is not None
    # halt beats reduce-only
    st.kill_switches.engage("symbol", "AAPL", "halt")
    assert "halted" in run(C.check_kill_switch, "", order("1", side=Side.SELL), st).text


def test_kill_switch_rejects_bad_scope():
    with pytest.raises(ValueError):
        RiskState().kill_switches.engage("desk", "X")


FIRM = 'chain = ["firm_limits"]\n[firm]\nmax_gross_exposure = 20000\nmax_daily_notional = 15000\n'


def test_firm_limits_add_up_every_accounts_orders_and_fills():
    st = RiskState()
    st.on_accepted(order("50", "100", account="ACC1", cl="a"))  # 5,000 open
    st.on_fill("S1", "a", D("50"), D("100"))  # filled: gross 5,000, daily 5,000
    st.on_accepted(order("40", "100", account="ACC2", side=Side.SELL, cl="b", symbol="MSFT"))  # 4,000 open
    st.on_accepted(order("10", "100", account=None, cl="c"))  # 1,000 open, no account
    assert st.firm_gross() == D(10000) and st.usage.firm_used() == D(10000)
    assert run(C.check_firm_limits, FIRM, order("50", "100", account="ACC3"), st) is None  # daily exactly 15,000
    r = run(C.check_firm_limits, FIRM, order("50", "100.02", account="ACC3"), st)
    assert r.code is RejectCode.EXCEEDS_LIMIT and r.rule == "firm_limits"
    assert r.text == "firm_limits: the firm's daily notional 15001.00 (used 10000) exceeds 15000 (scope firm)"
    st.on_done("S1", "b")  # a cancel releases its open part of both
    assert st.firm_gross() == D(6000) and st.usage.firm_used() == D(6000)
    gross_only = 'chain = ["firm_limits"]\n[firm]\nmax_gross_exposure = 20000\n'
    r = run(C.check_firm_limits, gross_only, order("141", "100"), st)
    assert r.text == "firm_limits: the firm's gross exposure 20100 exceeds 20000 (scope firm)"
    assert run(C.check_firm_limits, gross_only, order("140", "100"), st) is None


def test_firm_limits_apply_to_every_scope_and_no_section_overrides_them():
    toml = FIRM + "[accounts.ACC1]\nmax_order_qty = 5\n[limits]\nmax_order_qty = 9\n"
    for account in ("ACC1", "ACC9", None):
        got = lims(toml, order(account=account)).values
        assert got["firm_max_gross_exposure"].value == D(20000) and got["firm_max_gross_exposure"].scope == "firm"
    assert run(C.check_firm_limits, "", order("10000000")) is None  # unset: off


def test_a_market_order_without_a_reference_price_is_refused_by_the_firm_limits():
    r = run(C.check_firm_limits, FIRM, order("10", None, ord_type=OrdType.MARKET))
    assert r.code is RejectCode.OTHER and "no reference price for AAPL" in r.text
