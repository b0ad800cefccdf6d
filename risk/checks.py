"""Pre-trade checks: each a small pure function ``(order, limits, state, now) -> Reject | None``.

A check reads the order, the limits resolved for it (``risk.rules.EffectiveLimits``),
the risk state and the time it is given; it never reads a clock, never mutates
state and does no I/O. A check whose limit is not set passes. Every amount is a
``Decimal``.

``CHECKS`` maps each check name of ``risk.rules.CHECK_NAMES`` to its function and
to the limit names that drive it (used to tell whether a check is in shadow mode).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Callable

from orders.commands import NewOrder
from orders.model import OrdType, RejectCode, Side
from risk.rules import CHECK_NAMES, EffectiveLimits, Resolved
from risk.state import ZERO, RiskState

DEFAULT_REFERENCE_SOURCES = ("last", "mid", "file")
DEFAULT_THROTTLE_WINDOW = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Reject:
    """Why a check refused an order (or would have, in shadow mode)."""

    rule: str
    code: RejectCode
    text: str  # names the rule and the limit
    values: dict[str, Any] = field(default_factory=dict)  # the compared values
    scope: str | None = None
    shadow: bool = False
    logout: bool = False  # throttle: above the second threshold, log the session out


def _reject(rule: str, code: RejectCode, lim: Resolved | None, text: str, shadow_checks=frozenset(), **values) -> Reject:
    scope = lim.scope if lim is not None else None
    if scope is not None:
        text = f"{rule}: {text} (scope {scope})"
    else:
        text = f"{rule}: {text}"
    shadow = (lim is not None and lim.shadow) or rule in shadow_checks
    return Reject(rule, code, text, values, scope, shadow)


def is_buy(order: NewOrder) -> bool:
    return order.side is Side.BUY


def reference_price(order: NewOrder, limits: EffectiveLimits, state: RiskState) -> tuple[Decimal, str] | None:
    sources = limits.value("reference_sources", DEFAULT_REFERENCE_SOURCES)
    return state.reference(order.symbol, sources)


def order_price(order: NewOrder, limits: EffectiveLimits, state: RiskState) -> Decimal | None:
    """The price the order's notional is counted at: its limit price, else the reference price."""
    if order.price is not None and order.ord_type is not OrdType.MARKET:
        return order.price
    ref = reference_price(order, limits, state)
    return None if ref is None else ref[0]


def _no_price(rule: str, order: NewOrder, lim: Resolved, limits: EffectiveLimits) -> Reject:
    return _reject(rule, RejectCode.OTHER, lim,
                   f"no price to value the {order.ord_type.name.lower()} order: no reference price for {order.symbol}",
                   limits.shadow_checks, symbol=order.symbol)


# --------------------------------------------------------------------------- the checks
def check_kill_switch(order: NewOrder, limits: EffectiveLimits, state: RiskState, now: datetime) -> Reject | None:
    found = state.kill_switches.matching(order)
    if found is None:
        return None
    mode, scope, key = found
    where = "global" if scope == "global" else f"{scope} {key}"
    if mode == "reduce_only":
        ex = state.exposure(order.account, order.symbol)
        if is_buy(order):
            ok = ex.pos_qty < 0 and ex.pos_qty + ex.buy_qty + order.qty <= 0
        else:
            ok = ex.pos_qty > 0 and ex.pos_qty - ex.sell_qty - order.qty >= 0
        if ok:
            return None
        return Reject("kill_switch", RejectCode.OTHER,
                      f"kill_switch: reduce-only ({where}): {order.side.name} {order.qty} {order.symbol} does not "
                      f"reduce position {ex.pos_qty} (open buys {ex.buy_qty}, open sells {ex.sell_qty})",
                      {"mode": mode, "position": ex.pos_qty, "qty": order.qty}, where)
    return Reject("kill_switch", RejectCode.OTHER, f"kill_switch: trading halted ({where})", {"mode": mode}, where)


def check_throttle(order: NewOrder, limits: EffectiveLimits, state: RiskState, now: datetime) -> Reject | None:
    """Counts the messages the state has seen in the window (the engine counts this order first)."""
    return throttle_reject(order.session, order.account, limits, state, now)


def check_session_disabled(order: NewOrder, limits: EffectiveLimits, state: RiskState,
                           now: datetime) -> Reject | None:
    """The throttle for a message of a type it does not count (``throttle_msg_types``): only a session the
    throttle disabled is refused."""
    if order.session in state.throttle.disabled:
        return _disabled(order.session, state)
    return None


def _disabled(session: str, state: RiskState) -> Reject:
    n = state.throttle.breaches.get(session, 0)
    return Reject("throttle", RejectCode.OTHER,
                  f"throttle: session {session} disabled after repeated throttle breaches ({n} today); "
                  f"an operator must re-enable it", {"breaches": n}, f"session {session}")


def throttle_window(limits: EffectiveLimits) -> timedelta:
    window_ms = limits.value("throttle_window_ms")
    return timedelta(milliseconds=window_ms) if window_ms else DEFAULT_THROTTLE_WINDOW


def throttle_reject(session: str, account: str | None, limits: EffectiveLimits, state: RiskState,
                    now: datetime) -> Reject | None:
    """The throttle's verdict on a message of ``session`` (and ``account``) already counted: the session is
    disabled, or its count or the account's is above a limit."""
    if session in state.throttle.disabled:
        return _disabled(session, state)
    lim = limits.get("throttle_msgs")
    hard = limits.get("throttle_logout_msgs")
    acct = limits.get("account_throttle_msgs") if account is not None else None
    if lim is None and hard is None and acct is None:
        return None
    window = throttle_window(limits)
    wms = int(window / timedelta(milliseconds=1))
    if lim is not None or hard is not None:
        count = state.throttle.session_count(session, now, window)
        if hard is not None and count > hard.value:
            r = _reject("throttle", RejectCode.EXCEEDS_LIMIT, hard,
                        f"{count} messages in {wms} ms exceeds throttle_logout_msgs {hard.value}: log the session out",
                        limits.shadow_checks, count=count, limit=hard.value, window_ms=wms)
            return Reject(r.rule, r.code, r.text, r.values, r.scope, r.shadow, logout=True)
        if lim is not None and count > lim.value:
            return _reject("throttle", RejectCode.EXCEEDS_LIMIT, lim,
                           f"{count} messages in {wms} ms exceeds throttle_msgs {lim.value}",
                           limits.shadow_checks, count=count, limit=lim.value, window_ms=wms)
    if acct is not None:
        count = state.throttle.account_count(account, now, window)
        if count > acct.value:
            return _reject("throttle", RejectCode.EXCEEDS_LIMIT, acct,
                           f"{count} messages for account {account or '-'} in {wms} ms exceeds "
                           f"account_throttle_msgs {acct.value}", limits.shadow_checks, count=count,
                           limit=acct.value, window_ms=wms, account=account)
    return None


def check_restricted_symbols(order: NewOrder, limits: EffectiveLimits, state: RiskState, now: datetime) -> Reject | None:
    lim = limits.get("restricted_symbols")
    if lim is None or order.symbol not in lim.value:
        return None
    return _reject("restricted_symbols", RejectCode.OTHER, lim, f"symbol {order.symbol} is restricted",
                   limits.shadow_checks, symbol=order.symbol)


def check_market_orders(order: NewOrder, limits: EffectiveLimits, state: RiskState, now: datetime) -> Reject | None:
    lim = limits.get("allow_market_orders")
    if lim is None or lim.value or order.ord_type is not OrdType.MARKET:
        return None
    return _reject("market_orders", RejectCode.UNSUPPORTED_ORDER_CHARACTERISTIC, lim,
                   "market orders are not allowed (allow_market_orders = false)", limits.shadow_checks,
                   ord_type=order.ord_type.name)


def check_trading_hours(order: NewOrder, limits: EffectiveLimits, state: RiskState, now: datetime) -> Reject | None:
    lim = limits.get("trading_hours")
    if lim is None:
        return None
    hours = lim.value
    local = now.astimezone(hours.zone)
    t = local.time().replace(tzinfo=None)
    if hours.start < hours.end:
        open_now = hours.start <= t < hours.end
        day = local.weekday()
    else:  # spans midnight: the part after midnight belongs to the previous day's session
        after_start = t >= hours.start
        open_now = after_start or t < hours.end
        day = local.weekday() if after_start else (local.weekday() - 1) % 7
    if open_now and day in hours.weekdays:
        return None
    return _reject("trading_hours", RejectCode.EXCHANGE_CLOSED, lim,
                   f"{order.symbol} is closed at {local:%a %H:%M:%S} {hours.timezone} "
                   f"(hours {hours.start:%H:%M:%S}-{hours.end:%H:%M:%S})",
                   limits.shadow_checks, local_time=local.isoformat(), start=hours.start.isoformat(),
                   end=hours.end.isoformat())


def check_max_order_qty(order: NewOrder, limits: EffectiveLimits, state: RiskState, now: datetime) -> Reject | None:
    lim = limits.get("max_order_qty")
    if lim is None or order.qty <= lim.value:
        return None
    return _reject("max_order_qty", RejectCode.EXCEEDS_LIMIT, lim, f"OrderQty {order.qty} exceeds {lim.value}",
                   limits.shadow_checks, qty=order.qty, limit=lim.value)


def check_max_order_notional(order: NewOrder, limits: EffectiveLimits, state: RiskState, now: datetime) -> Reject | None:
    lim = limits.get("max_order_notional")
    if lim is None:
        return None
    px = order_price(order, limits, state)
    if px is None:
        return _no_price("max_order_notional", order, lim, limits)
    notional = order.qty * px
    if notional <= lim.value:
        return None
    return _reject("max_order_notional", RejectCode.EXCEEDS_LIMIT, lim,
                   f"notional {notional} ({order.qty} x {px}) exceeds {lim.value}", limits.shadow_checks,
                   notional=notional, qty=order.qty, price=px, limit=lim.value)


def check_price_band(order: NewOrder, limits: EffectiveLimits, state: RiskState, now: datetime) -> Reject | None:
    pct = limits.get("price_band_pct")
    ticks = limits.get("price_band_ticks")
    if (pct is None and ticks is None) or order.ord_type is OrdType.MARKET or order.price is None:
        return None
    ref = reference_price(order, limits, state)
    if ref is None:
        policy = limits.get("no_reference")
        if policy is not None and policy.value == "allow":
            return None
        return _reject("price_band", RejectCode.OTHER, policy or pct or ticks,
                       f"no reference price for {order.symbol} (no_reference = reject)", limits.shadow_checks,
                       symbol=order.symbol)
    ref_px, source = ref
    if ticks is not None:
        tick = limits.get("tick_size")
        if tick is None:
            return _reject("price_band", RejectCode.OTHER, ticks, "price_band_ticks set without tick_size",
                           limits.shadow_checks)
        lim, width = ticks, ticks.value * tick.value
        desc = f"{ticks.value} ticks of {tick.value}"
    else:
        lim, width = pct, ref_px * pct.value / 100
        desc = f"{pct.value}%"
    low, high = ref_px - width, ref_px + width
    if low <= order.price <= high:
        return None
    return _reject("price_band", RejectCode.OTHER, lim,
                   f"Price {order.price} outside {desc} of reference {ref_px} ({source}): allowed {low} to {high}",
                   limits.shadow_checks, price=order.price, reference=ref_px, source=source, low=low, high=high)


def check_duplicate_order(order: NewOrder, limits: EffectiveLimits, state: RiskState, now: datetime) -> Reject | None:
    lim = limits.get("duplicate_window_ms")
    if lim is None:
        return None
    seen = state.duplicates.last_accepted(order)
    if seen is None or now - seen >= timedelta(milliseconds=lim.value):
        return None
    ms = (now - seen) / timedelta(milliseconds=1)
    return _reject("duplicate_order", RejectCode.DUPLICATE_ORDER, lim,
                   f"same session, side, symbol, quantity {order.qty} and price {order.price} as an order "
                   f"{ms:g} ms ago, within duplicate_window_ms {lim.value}", limits.shadow_checks,
                   previous_at=seen.isoformat(), window_ms=lim.value)


def check_max_open_orders(order: NewOrder, limits: EffectiveLimits, state: RiskState, now: datetime) -> Reject | None:
    lim = limits.get("max_open_orders")
    if lim is None:
        return None
    n = state.open_count.get(order.session, 0) + 1
    if n <= lim.value:
        return None
    return _reject("max_open_orders", RejectCode.EXCEEDS_LIMIT, lim,
                   f"{n} open orders for session {order.session} would exceed {lim.value}", limits.shadow_checks,
                   open_orders=n, limit=lim.value)


def check_max_position(order: NewOrder, limits: EffectiveLimits, state: RiskState, now: datetime) -> Reject | None:
    lim = limits.get("max_position")
    if lim is None:
        return None
    ex = state.exposure(order.account, order.symbol)
    if is_buy(order):
        worst = abs(ex.pos_qty + ex.buy_qty + order.qty)
    else:
        worst = abs(ex.pos_qty - ex.sell_qty - order.qty)
    if worst <= lim.value:
        return None
    return _reject("max_position", RejectCode.EXCEEDS_LIMIT, lim,
                   f"position {order.account or '-'}/{order.symbol} could reach {worst} (position {ex.pos_qty}, "
                   f"open buys {ex.buy_qty}, open sells {ex.sell_qty}, order {order.side.name} {order.qty}), "
                   f"exceeds {lim.value}", limits.shadow_checks, worst=worst, position=ex.pos_qty, limit=lim.value)


def check_max_gross_exposure(order: NewOrder, limits: EffectiveLimits, state: RiskState, now: datetime) -> Reject | None:
    acct_lim = limits.get("max_gross_exposure")
    sym_lim = limits.get("max_symbol_gross_exposure")
    if acct_lim is None and sym_lim is None:
        return None
    px = order_price(order, limits, state)
    if px is None:
        return _no_price("max_gross_exposure", order, acct_lim or sym_lim, limits)
    added = order.qty * px
    if sym_lim is not None:
        ex = state.exposure(order.account, order.symbol)
        after = ex.gross + added
        if after > sym_lim.value:
            return _reject("max_gross_exposure", RejectCode.EXCEEDS_LIMIT, sym_lim,
                           f"gross exposure {order.account or '-'}/{order.symbol} {after} exceeds "
                           f"max_symbol_gross_exposure {sym_lim.value}", limits.shadow_checks,
                           exposure=after, limit=sym_lim.value)
    if acct_lim is not None:
        gross, _ = state.account_exposure(order.account)
        after = gross + added
        if after > acct_lim.value:
            return _reject("max_gross_exposure", RejectCode.EXCEEDS_LIMIT, acct_lim,
                           f"gross exposure of account {order.account or '-'} {after} exceeds {acct_lim.value}",
                           limits.shadow_checks, exposure=after, limit=acct_lim.value)
    return None


def check_max_net_exposure(order: NewOrder, limits: EffectiveLimits, state: RiskState, now: datetime) -> Reject | None:
    acct_lim = limits.get("max_net_exposure")
    sym_lim = limits.get("max_symbol_net_exposure")
    if acct_lim is None and sym_lim is None:
        return None
    px = order_price(order, limits, state)
    if px is None:
        return _no_price("max_net_exposure", order, acct_lim or sym_lim, limits)
    added = order.qty * px
    for lim, ex, label in (
        (sym_lim, state.exposures.get((order.account or "", order.symbol)), f"{order.account or '-'}/{order.symbol}"),
        (acct_lim, state.account_totals.get(order.account or ""), f"account {order.account or '-'}"),
    ):
        if lim is None:
            continue
        pos_n = ex.pos_notional if ex else ZERO
        buy_n = ex.buy_notional if ex else ZERO
        sell_n = ex.sell_notional if ex else ZERO
        if is_buy(order):
            after = abs(pos_n + buy_n + added)
        else:
            after = abs(pos_n - sell_n - added)
        if after > lim.value:
            return _reject("max_net_exposure", RejectCode.EXCEEDS_LIMIT, lim,
                           f"net exposure {label} could reach {after}, exceeds {lim.value}", limits.shadow_checks,
                           exposure=after, limit=lim.value)
    return None


def check_daily_notional(order: NewOrder, limits: EffectiveLimits, state: RiskState, now: datetime) -> Reject | None:
    lim = limits.get("max_daily_notional")
    if lim is None:
        return None
    px = order_price(order, limits, state)
    if px is None:
        return _no_price("daily_notional", order, lim, limits)
    used = state.usage.used.get(order.account or "", ZERO)
    after = used + order.qty * px
    if after <= lim.value:
        return None
    return _reject("daily_notional", RejectCode.EXCEEDS_LIMIT, lim,
                   f"daily notional of account {order.account or '-'} {after} (used {used}) exceeds {lim.value}",
                   limits.shadow_checks, used=used, after=after, limit=lim.value)


def check_firm_limits(order: NewOrder, limits: EffectiveLimits, state: RiskState, now: datetime) -> Reject | None:
    """``[firm]``: every account's gross exposure and daily notional together, with this order."""
    gross_lim = limits.get("firm_max_gross_exposure")
    daily_lim = limits.get("firm_max_daily_notional")
    if gross_lim is None and daily_lim is None:
        return None
    px = order_price(order, limits, state)
    if px is None:
        return _no_price("firm_limits", order, gross_lim or daily_lim, limits)
    added = order.qty * px
    if gross_lim is not None:
        after = state.firm_gross() + added
        if after > gross_lim.value:
            return _reject("firm_limits", RejectCode.EXCEEDS_LIMIT, gross_lim,
                           f"the firm's gross exposure {after} exceeds {gross_lim.value}", limits.shadow_checks,
                           exposure=after, limit=gross_lim.value)
    if daily_lim is not None:
        used = state.usage.firm_used()
        after = used + added
        if after > daily_lim.value:
            return _reject("firm_limits", RejectCode.EXCEEDS_LIMIT, daily_lim,
                           f"the firm's daily notional {after} (used {used}) exceeds {daily_lim.value}",
                           limits.shadow_checks, used=used, after=after, limit=daily_lim.value)
    return None


CheckFn = Callable[[NewOrder, EffectiveLimits, RiskState, datetime], "Reject | None"]

# name -> (function, limit names whose shadow flag makes the check shadow)
CHECKS: dict[str, tuple[CheckFn, tuple[str, ...]]] = {
    "kill_switch": (check_kill_switch, ()),
    "throttle": (check_throttle, ("throttle_msgs", "throttle_logout_msgs", "account_throttle_msgs")),
    "restricted_symbols": (check_restricted_symbols, ("restricted_symbols",)),
    "market_orders": (check_market_orders, ("allow_market_orders",)),
    "trading_hours": (check_trading_hours, ("trading_hours",)),
    "max_order_qty": (check_max_order_qty, ("max_order_qty",)),
    "max_order_notional": (check_max_order_notional, ("max_order_notional",)),
    "price_band": (check_price_band, ("price_band_pct", "price_band_ticks")),
    "duplicate_order": (check_duplicate_order, ("duplicate_window_ms",)),
    "max_open_orders": (check_max_open_orders, ("max_open_orders",)),
    "max_position": (check_max_position, ("max_position",)),
    "max_gross_exposure": (check_max_gross_exposure, ("max_gross_exposure", "max_symbol_gross_exposure")),
    "max_net_exposure": (check_max_net_exposure, ("max_net_exposure", "max_symbol_net_exposure")),
    "daily_notional": (check_daily_notional, ("max_daily_notional",)),
    "firm_limits": (check_firm_limits, ("firm_max_gross_exposure", "firm_max_daily_notional")),
}
assert tuple(CHECKS) == CHECK_NAMES, "risk.checks.CHECKS and risk.rules.CHECK_NAMES disagree"
# The chain for a message the throttle does not count (``throttle_msg_types``): its rate is not limited either.
CHECKS_UNCOUNTED: dict[str, tuple[CheckFn, tuple[str, ...]]] = {
    **CHECKS, "throttle": (check_session_disabled, CHECKS["throttle"][1])}
