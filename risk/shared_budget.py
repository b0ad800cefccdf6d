"""An account's daily notional limit held across the shards of a cluster (docs/scale-out.md): each shard may use
only the part of the limit it was granted, and the grants of all shards together never exceed the limit.

The grants live in the database (gateway/cluster/budgets.py: ``BudgetPool``); this module is the checks' view of
them, with no I/O of its own. A shard's local usage (``DailyUsage.used``: its filled plus open notional today) is
checked against its grant after the chain has accepted the order against the whole limit; an order that does not
fit asks for more (``top_up``: one transaction, once per chunk of the limit, on the core thread) and is rejected
only if the other shards hold the rest. An idle shard gives back what it holds beyond its usage and a chunk
(``give_back``), so a busy one can take it.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Protocol

from orders.commands import NewOrder
from orders.model import RejectCode
from risk.checks import Reject, _reject, order_price
from risk.rules import EffectiveLimits
from risk.state import ZERO, RiskState


class BudgetUnavailable(Exception):
    """The grants could not be read or changed (the database is unreachable or the shard's term is over): the
    order cannot be checked against the cluster's limit, so it is refused."""


class SharedBudget(Protocol):
    """A shard's grants of the accounts' daily notional limit (gateway/cluster/budgets.py)."""

    def granted(self, day: date, account: str) -> Decimal:
        """What this shard holds of ``account``'s limit on trading day ``day`` (zero if nothing)."""
        ...

    def top_up(self, day: date, account: str, need: Decimal, limit: Decimal) -> Decimal:
        """Ask for a grant of at least ``need`` (and a chunk more, if the limit has it); the grant now held.
        Raises BudgetUnavailable when it cannot ask."""
        ...


def check_shared_daily_notional(order: NewOrder, limits: EffectiveLimits, state: RiskState,
                                budget: SharedBudget) -> Reject | None:
    """After the chain accepted ``order``: does it fit in this shard's grant of its account's daily notional
    limit (asking for more if not)? A shadow or absent limit is not shared."""
    lim = limits.get("max_daily_notional")
    if lim is None or lim.shadow or state.usage.day is None:
        return None
    px = order_price(order, limits, state)
    if px is None:
        return None  # (the chain's own check refused or let it through already)
    account = order.account or ""
    used = state.usage.used.get(account, ZERO)
    after = used + order.qty * px
    grant = budget.granted(state.usage.day, account)
    if after <= grant:
        return None
    try:
        grant = budget.top_up(state.usage.day, account, after, lim.value)
    except BudgetUnavailable as exc:
        return _reject("daily_notional", RejectCode.EXCEEDS_LIMIT, lim,
                       f"daily notional of account {order.account or '-'} {after} is over this shard's part of the "
                       f"cluster's limit {lim.value} ({grant}) and more could not be asked for ({exc}): refused, as "
                       f"the limit cannot be checked", used=used, after=after, granted=grant, limit=lim.value)
    if after <= grant:
        return None
    return _reject("daily_notional", RejectCode.EXCEEDS_LIMIT, lim,
                   f"daily notional of account {order.account or '-'} {after} (used {used} on this shard) exceeds "
                   f"this shard's part of the cluster's limit {lim.value}: {grant}; the other shards hold the rest",
                   used=used, after=after, granted=grant, limit=lim.value)
