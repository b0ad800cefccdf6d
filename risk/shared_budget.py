"""The account and firm limits a sharded cluster holds across its shards (docs/scale-out.md): for each limit and scope (an
account, an account and symbol, an account and trading day), each shard may use only the part of the limit it
was granted, and the grants of all shards together never exceed the limit.

Shared: an account's daily notional (``max_daily_notional``), gross and net exposure (``max_gross_exposure``,
``max_net_exposure``) and those of each of its symbols (``max_symbol_gross_exposure``,
``max_symbol_net_exposure``), the position in each symbol (``max_position``), and the firm's gross exposure and
daily notional over all accounts (``[firm]``, check ``firm_limits``). Not shared, as no two shards
see the same one: ``max_open_orders`` (per client session, and a session is served by one shard), the throttle,
the order's own limits.

Each shard's usage is what its own orders and fills make it (``RiskState``). The cluster's is at most the sum of
the shards' (a position or a net exposure of opposite signs on two shards partly cancels out; a gross one adds
up), so shards whose usages stay within their grants hold the cluster within the limit. On the safe side: two
shards trading one account in opposite directions may be refused before the account as a whole is at its limit.

The grants live in the database (gateway/cluster/budgets.py: ``BudgetPool``); this module is the checks' view of
them, with no I/O of its own. After the chain accepted an order against the whole limit, its usage on this shard
after the order is checked against the shard's grant; an order that does not fit asks for more (``top_up``: one
transaction, once per chunk of the limit, on the core thread) and is rejected only if the other shards hold the
rest. An idle shard gives back what it holds beyond its usage (``usage``) and a chunk, so a busy one can take it.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Protocol

from orders.commands import NewOrder
from orders.model import RejectCode, Side
from risk.checks import Reject, _reject, order_price
from risk.rules import EffectiveLimits, Resolved
from risk.state import ZERO, Exposure, RiskState

Scope = tuple[str, ...]  # ("2026-12-07", account), (account,), (account, symbol); the firm's: () or ("2026-12-07",)


class BudgetUnavailable(Exception):
    """The grants could not be read or changed (the database is unreachable or the shard's term is over): the
    order cannot be checked against the cluster's limit, so it is refused."""


class SharedBudget(Protocol):
    """A shard's grants of the cluster's shared limits (gateway/cluster/budgets.py)."""

    def granted(self, limit: str, scope: Scope) -> Decimal:
        """What this shard holds of limit ``limit`` for ``scope`` (zero if nothing)."""
        ...

    def top_up(self, limit: str, scope: Scope, need: Decimal, value: Decimal) -> Decimal:
        """Ask for a grant of at least ``need`` (and a chunk more, if the limit ``value`` has it); the grant now
        held. Raises BudgetUnavailable when it cannot ask."""
        ...

    def held(self) -> dict[tuple[str, Scope], Decimal]:
        """Every grant this shard holds: (limit, scope) -> granted."""
        ...


# --------------------------------------------------------------------------- usage, now and after an order
def _net_after(ex: Exposure | None, buy: bool, added: Decimal) -> Decimal:
    pos_n = ex.pos_notional if ex else ZERO
    if buy:
        return abs(pos_n + (ex.buy_notional if ex else ZERO) + added)
    return abs(pos_n - (ex.sell_notional if ex else ZERO) - added)


def _position_after(ex: Exposure, buy: bool, qty: Decimal) -> Decimal:
    return abs(ex.pos_qty + ex.buy_qty + qty) if buy else abs(ex.pos_qty - ex.sell_qty - qty)


@dataclass(frozen=True, slots=True)
class SharedLimit:
    """One limit the shards share: the chain's check that applies it, this shard's usage of a scope now (what a
    give-back keeps) and how a reject names the scope. What an order adds is ``_afters``'."""

    limit: str
    check: str
    daily: bool  # a scope of one trading day (its grants end with the day)
    usage: Callable[[RiskState, Scope], Decimal]
    label: Callable[[Scope], str]


SHARED_LIMITS: tuple[SharedLimit, ...] = (
    SharedLimit("max_daily_notional", "daily_notional", True, lambda s, sc: s.usage.used.get(sc[1], ZERO),
                lambda sc: f"daily notional of account {sc[1] or '-'}"),
    SharedLimit("max_gross_exposure", "max_gross_exposure", False, lambda s, sc: s.account_gross.get(sc[0], ZERO),
                lambda sc: f"gross exposure of account {sc[0] or '-'}"),
    SharedLimit("max_symbol_gross_exposure", "max_gross_exposure", False,
                lambda s, sc: s.exposure(sc[0], sc[1]).gross, lambda sc: f"gross exposure {sc[0] or '-'}/{sc[1]}"),
    SharedLimit("max_net_exposure", "max_net_exposure", False,
                lambda s, sc: ex.net if (ex := s.account_totals.get(sc[0])) else ZERO,
                lambda sc: f"net exposure of account {sc[0] or '-'}"),
    SharedLimit("max_symbol_net_exposure", "max_net_exposure", False,
                lambda s, sc: ex.net if (ex := s.exposures.get((sc[0], sc[1]))) else ZERO,
                lambda sc: f"net exposure {sc[0] or '-'}/{sc[1]}"),
    SharedLimit("max_position", "max_position", False, lambda s, sc: s.exposure(sc[0], sc[1]).worst_position,
                lambda sc: f"position {sc[0] or '-'}/{sc[1]}"),
    SharedLimit("firm_max_gross_exposure", "firm_limits", False, lambda s, sc: s.firm_gross(),
                lambda sc: "the firm's gross exposure"),
    SharedLimit("firm_max_daily_notional", "firm_limits", True, lambda s, sc: s.usage.firm_used(),
                lambda sc: "the firm's daily notional"),
)
BY_LIMIT = {sl.limit: sl for sl in SHARED_LIMITS}


def shard_usage(state: RiskState, limit: str, scope: Scope) -> Decimal:
    """This shard's usage of ``limit`` for ``scope`` now (what a give-back keeps)."""
    return BY_LIMIT[limit].usage(state, scope)


def shared_limits_table(budget: SharedBudget, state: RiskState) -> list[dict]:
    """What this shard holds of each shared limit and uses of it, for operators (`fixgw risk show`)."""
    return [{"limit": limit, "scope": list(scope), "granted": str(granted),
             "used": str(shard_usage(state, limit, scope)) if limit in BY_LIMIT else None}
            for (limit, scope), granted in sorted(budget.held().items())]


# --------------------------------------------------------------------------- the check
def _afters(order: NewOrder, state: RiskState, px: Decimal | None, names) -> list[tuple[str, Scope, Decimal]]:
    """(limit, scope, this shard's usage after ``order``) of each shared limit in ``names`` (in SHARED_LIMITS'
    order); notional ones only when the order has a price ``px``. Written out, not through the table's lambdas:
    it runs for every order (bench/risk_chain.py measures it)."""
    acct = order.account or ""
    sym = order.symbol
    buy = order.side is Side.BUY
    day = state.usage.day.isoformat() if state.usage.day is not None else None
    out = []
    if px is not None:
        added = order.qty * px
        if "max_daily_notional" in names and day is not None:
            out.append(("max_daily_notional", (day, acct), state.usage.used.get(acct, ZERO) + added))
        if "max_gross_exposure" in names:
            out.append(("max_gross_exposure", (acct,), state.account_gross.get(acct, ZERO) + added))
        ex = state.exposures.get((acct, sym))
        if "max_symbol_gross_exposure" in names:
            out.append(("max_symbol_gross_exposure", (acct, sym), (ex.gross if ex else ZERO) + added))
        if "max_net_exposure" in names:
            out.append(("max_net_exposure", (acct,), _net_after(state.account_totals.get(acct), buy, added)))
        if "max_symbol_net_exposure" in names:
            out.append(("max_symbol_net_exposure", (acct, sym), _net_after(ex, buy, added)))
        if "firm_max_gross_exposure" in names:
            out.append(("firm_max_gross_exposure", (), state.firm_gross() + added))
        if "firm_max_daily_notional" in names and day is not None:
            out.append(("firm_max_daily_notional", (day,), state.usage.firm_used() + added))
    if "max_position" in names:
        out.append(("max_position", (acct, sym), _position_after(state.exposure(acct, sym), buy, order.qty)))
    return out


def _candidates(limits: EffectiveLimits) -> dict[str, Resolved]:
    """The shared limits ``limits`` set, not in shadow mode: limit name -> its value (worked out once per
    EffectiveLimits, which the engine keeps per session, account and symbol until a reload)."""
    found = limits.derived.get("shared")
    if found is None:
        found = limits.derived["shared"] = {sl.limit: lim for sl in SHARED_LIMITS
                                            if (lim := limits.get(sl.limit)) is not None and not lim.shadow}
    return found


def check_shared_limits(order: NewOrder, limits: EffectiveLimits, state: RiskState, budget: SharedBudget,
                        passed: Callable[[str], bool]) -> Reject | None:
    """After the chain accepted ``order``: does each shared limit the chain checked and passed (``passed(check)``)
    fit in this shard's grant (asking for more if not)? A shadow or absent limit is not shared. A daily limit
    before the first trading day is known, or a notional one of an order without a price, is left to the chain's
    own check."""
    candidates = _candidates(limits)
    if not candidates:
        return None
    names = {name: lim for name, lim in candidates.items() if passed(BY_LIMIT[name].check)}
    px = order_price(order, limits, state) if len(names) > 1 or "max_position" not in names else None
    for limit, scope, after in _afters(order, state, px, names):
        grant = budget.granted(limit, scope)
        if after <= grant:
            continue
        lim = names[limit]
        sl = BY_LIMIT[limit]
        what = sl.label(scope)
        try:
            grant = budget.top_up(limit, scope, after, lim.value)
        except BudgetUnavailable as exc:
            return _reject(sl.check, RejectCode.EXCEEDS_LIMIT, lim,
                           f"{what} {after} is over this shard's part of the cluster's {limit} {lim.value} "
                           f"({grant}) and more could not be asked for ({exc}): refused, as the limit cannot be "
                           f"checked", after=after, granted=grant, limit=lim.value)
        if after > grant:
            return _reject(sl.check, RejectCode.EXCEEDS_LIMIT, lim,
                           f"{what} {after} exceeds this shard's part of the cluster's {limit} {lim.value}: "
                           f"{grant}; the other shards hold the rest", after=after, granted=grant, limit=lim.value)
    return None
