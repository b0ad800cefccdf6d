"""Venue selection: the smart order router's strategies, as pure functions of what the router sees.

Nothing here has state or does I/O. The core builds one ``Candidate`` per
configured venue for the order's symbol (is its session up, does it trade the
symbol, its priority and fees, its quote if fresh enough to trust) and asks a
strategy for a ``Route``: the legs (venue, quantity) to send, the quantity left
unrouted, and a note saying why, which is journaled with the decision.

Strategies (``StrategySpec.name``):

- ``best-price``: the whole order to the venue with the best fee-adjusted price
  for it: for a buy the lowest offer plus the venue's take fee, for a sell the
  highest bid minus it, among venues whose best price is within the order's
  limit. Equal prices go to the lower ``priority`` number, then to the venue
  listed first in the configuration. An order no venue can fill now (or with no
  fresh quotes) goes where resting costs least (the make fee; a rebate is
  negative), ties again by priority.
- ``preferred``: the first of an ordered venue list (the named venue, then its
  fallbacks) that is up and trades the symbol. With no list: every venue by
  priority, then configuration order (the gateway's behaviour before the router).
- ``sweep``: the displayed levels of every venue within the limit, best
  fee-adjusted price first (ties by priority), taken until the order is
  covered; one leg per venue. What the displayed size does not cover rests at
  the best venue (added to its leg) for a Day or GTC order, or is not routed at
  all for IOC (cancelled). A fill-or-kill order is never split (FOK cannot hold
  across venues): it goes ``best-price``. With no displayed liquidity within the
  limit, sweep falls back to ``best-price``.
- ``direct``: ExDestination (100) names the venue; the router is bypassed.

A quote is a venue's top of book and depth as last received; the core passes
only quotes younger than the configured maximum age, so a stale quote counts as
no quote.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from decimal import Decimal

from orders.model import Side, TimeInForce
from routing.quotes import Quote

ZERO = Decimal(0)
BEST_PRICE, PREFERRED, SWEEP, DIRECT = "best-price", "preferred", "sweep", "direct"
STRATEGIES = (BEST_PRICE, PREFERRED, SWEEP)
STRATEGY_TAG = 9100  # custom tag on a NewOrderSingle choosing the strategy for that order


@dataclass(slots=True)
class Venue:
    name: str
    symbols: frozenset[str]
    up: bool = False
    meta: dict = field(default_factory=dict)
    md_enabled: bool = True  # subscribe to its bids and offers when its session logs on
    md_depth: int = 5  # MarketDepth asked for: levels per side (0 = the whole book)
    md_incremental: bool = True  # ask for incremental refreshes (X) rather than snapshots (W)
    md_req_id: str | None = None  # the live subscription's MDReqID
    priority: int = 0  # lower is preferred when prices tie; equal priorities keep configuration order
    take_fee: Decimal = ZERO  # per share for an order that removes liquidity (negative: a rebate)
    make_fee: Decimal = ZERO  # per share for an order that rests and is hit (negative: a rebate)
    on_disconnect: str = "hold"  # its orders when its session drops: hold, cancel or reroute
    # liveness: seconds to wait for an answer (ack, cancel, replace) before asking OrderStatusRequest, then for
    # the status reply before the child is in doubt; how often an in-doubt child is asked again
    ack_timeout_s: float = 5.0
    status_timeout_s: float = 5.0
    status_retry_s: float = 30.0
    reconcile_on_logon: bool = True  # ask the state of every open child there when its session logs on
    mass_status: bool = False  # ask with one OrderMassStatusRequest (AF) instead of one OrderStatusRequest each


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """A strategy and, for ``preferred``, its ordered venue list."""

    name: str = PREFERRED
    venues: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.name}:{','.join(self.venues)}" if self.venues else self.name


@lru_cache(maxsize=256)
def parse_strategy(text: str) -> StrategySpec:
    """The strategy a client names on an order (tag 9100): ``best-price``, ``sweep``, ``preferred`` or
    ``preferred:VENUE1,VENUE2``. Raises ValueError with the reason."""
    name, _, rest = text.strip().partition(":")
    name = name.strip().lower()
    if name not in STRATEGIES:
        raise ValueError(f"unknown routing strategy {text!r} (tag {STRATEGY_TAG}): use best-price, sweep, "
                         "preferred or preferred:VENUE,VENUE")
    venues = tuple(v.strip() for v in rest.split(",") if v.strip())
    if venues and name != PREFERRED:
        raise ValueError(f"routing strategy {name} takes no venue list (tag {STRATEGY_TAG}: {text!r})")
    return StrategySpec(name, venues)


@dataclass(slots=True)
class RoutingPolicy:
    """How the router decides: gateway-wide settings ([routing] in the configuration)."""

    max_quote_age: timedelta = timedelta(seconds=5)  # an older quote is not trusted
    default: StrategySpec = StrategySpec()
    accounts: dict[str, StrategySpec] = field(default_factory=dict)  # per Account (1), before the session's
    max_reroutes: int = 0  # how often one order's quantity may be sent elsewhere after a venue reject (0: never)


# Not frozen: made for every venue of every order routed, on the core thread, where a frozen dataclass's __init__
# costs a call of object.__setattr__ per field. Nothing hashes it or changes it once made.
@dataclass(slots=True)
class Candidate:
    """One venue as the router sees it for one order."""

    name: str
    up: bool
    trades: bool
    priority: int = 0
    rank: int = 0  # position in the configuration
    take_fee: Decimal = ZERO
    make_fee: Decimal = ZERO
    quote: Quote | None = None  # None: no quote, or one too old to trust

    @property
    def eligible(self) -> bool:
        return self.up and self.trades


@dataclass(frozen=True, slots=True)
class Leg:
    venue: str
    qty: Decimal


@dataclass(frozen=True, slots=True)
class Route:
    strategy: str
    legs: tuple[Leg, ...]
    note: str  # why these legs (or why none)
    unrouted: Decimal = ZERO  # quantity deliberately not sent anywhere (an IOC sweep's rest)

    @property
    def ok(self) -> bool:
        return bool(self.legs)


def crosses(side: Side, limit: Decimal | None, price: Decimal) -> bool:
    """Would an order on ``side`` with ``limit`` (None: market) trade at ``price``?"""
    if limit is None:
        return True
    return price <= limit if side is Side.BUY else price >= limit


def _adjusted(side: Side, price: Decimal, fee: Decimal) -> Decimal:
    """What one share really costs (buy) or brings (sell) after the venue's fee."""
    return price + fee if side is Side.BUY else price - fee


def _better_first(side: Side, adjusted: Decimal) -> Decimal:
    """A sort key putting the better fee-adjusted price first."""
    return adjusted if side is Side.BUY else -adjusted


def _by_priority(c: Candidate) -> tuple[int, int]:
    return c.priority, c.rank


def _nobody(symbol: str, candidates: list[Candidate], strategy: str) -> Route:
    trading = [c for c in sorted(candidates, key=_by_priority) if c.trades]
    if not trading:
        return Route(strategy, (), f"no configured venue trades {symbol}")
    names = ", ".join(c.name for c in trading)
    return Route(strategy, (), f"no venue trading {symbol} is connected ({names} down)")


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")


def best_price(symbol: str, side: Side, qty: Decimal, limit: Decimal | None,
               candidates: list[Candidate], strategy: str = BEST_PRICE) -> Route:
    eligible = [c for c in candidates if c.eligible]
    if not eligible:
        return _nobody(symbol, candidates, strategy)
    what = "offer" if side is Side.BUY else "bid"
    priced, notes = [], []
    for c in eligible:
        levels = c.quote.levels_against(side) if c.quote is not None else ()
        if not levels:
            notes.append(f"{c.name} no fresh {what}")
            continue
        px = levels[0][0]
        adj = _adjusted(side, px, c.take_fee)
        if not crosses(side, limit, px):
            notes.append(f"{c.name} {what} {_fmt(px)} outside the limit")
            continue
        priced.append(((_better_first(side, adj), c.priority, c.rank), c, px, adj))
    if priced:
        priced.sort(key=lambda t: t[0])
        _, best, px, adj = priced[0]
        others = [f"{c.name} {_fmt(a)}" for _, c, _, a in priced[1:]] + notes
        note = (f"{best.name} has the best fee-adjusted {what}: {_fmt(px)} {'+' if side is Side.BUY else '-'} take fee "
                f"{_fmt(best.take_fee)} = {_fmt(adj)}" + (f" (others: {'; '.join(others)})" if others else ""))
        return Route(strategy, (Leg(best.name, qty),), note)
    passive = sorted(eligible, key=lambda c: (c.make_fee, c.priority, c.rank))
    best = passive[0]
    reason = "no venue can fill it now" if any(c.quote is not None for c in eligible) else "no fresh quotes"
    note = (f"{reason} ({'; '.join(notes)}): rests at {best.name}, lowest make fee {_fmt(best.make_fee)}"
            f"{', then priority' if len(passive) > 1 else ''}")
    return Route(strategy, (Leg(best.name, qty),), note)


def preferred(symbol: str, side: Side, qty: Decimal, limit: Decimal | None, candidates: list[Candidate],
              venues: tuple[str, ...] = ()) -> Route:
    by_name = {c.name: c for c in candidates}
    if not venues:
        for c in sorted(candidates, key=_by_priority):
            if c.eligible:
                return Route(PREFERRED, (Leg(c.name, qty),), f"{c.name}: first venue by priority that is up and "
                                                              f"trades {symbol}")
        return _nobody(symbol, candidates, PREFERRED)
    passed = []
    for name in venues:
        c = by_name.get(name)
        if c is not None and c.eligible:
            note = f"{name}: preferred" if not passed else f"{name}: fallback ({'; '.join(passed)})"
            return Route(PREFERRED, (Leg(name, qty),), note)
        passed.append(f"{name} {'is not configured' if c is None else 'down' if c.trades else 'does not trade ' + symbol}")
    return Route(PREFERRED, (), f"none of the preferred venues can take {symbol}: {'; '.join(passed)}")


def sweep(symbol: str, side: Side, qty: Decimal, limit: Decimal | None, tif: TimeInForce,
          candidates: list[Candidate]) -> Route:
    if tif is TimeInForce.FOK:
        route = best_price(symbol, side, qty, limit, candidates, SWEEP)
        return Route(SWEEP, route.legs, f"fill-or-kill is not split; best price: {route.note}")
    eligible = [c for c in candidates if c.eligible and c.quote is not None]
    levels = []
    for c in eligible:
        for px, size in c.quote.levels_against(side):
            if not crosses(side, limit, px):
                break
            if size > 0:
                levels.append(((_better_first(side, _adjusted(side, px, c.take_fee)), c.priority, c.rank, px), c, px,
                               size))
    levels.sort(key=lambda t: t[0])
    alloc: dict[str, Decimal] = {}
    taken: list[str] = []
    remaining = qty
    for _, c, px, size in levels:
        if remaining <= 0:
            break
        take = min(size, remaining)
        alloc[c.name] = alloc.get(c.name, ZERO) + take
        taken.append(f"{_fmt(take)} at {c.name} {_fmt(px)}")
        remaining -= take
    if not alloc:
        route = best_price(symbol, side, qty, limit, candidates, SWEEP)
        return Route(SWEEP, route.legs, f"no displayed liquidity within the limit; best price: {route.note}")
    best = next(iter(alloc))
    note = "takes " + ", ".join(taken)
    unrouted = ZERO
    if remaining > 0:
        if tif is TimeInForce.IOC:
            unrouted = remaining
            note += f"; the other {_fmt(remaining)} is not routed (IOC: nothing more displayed within the limit)"
        else:
            alloc[best] += remaining
            note += f"; the other {_fmt(remaining)} rests at {best} (best price)"
    legs = tuple(Leg(v, q) for v, q in alloc.items())
    return Route(SWEEP, legs, note, unrouted)


def route(spec: StrategySpec, symbol: str, side: Side, qty: Decimal, limit: Decimal | None, tif: TimeInForce,
          candidates: list[Candidate]) -> Route:
    """Run the strategy ``spec`` names."""
    if spec.name == BEST_PRICE:
        return best_price(symbol, side, qty, limit, candidates)
    if spec.name == SWEEP:
        return sweep(symbol, side, qty, limit, tif, candidates)
    return preferred(symbol, side, qty, limit, candidates, spec.venues)


def direct(symbol: str, qty: Decimal, ex_destination: str, candidates: list[Candidate]) -> Route:
    """ExDestination (100) names the venue: it takes the whole order, or nobody does."""
    c = next((c for c in candidates if c.name == ex_destination), None)
    if c is None or not c.trades:
        return Route(DIRECT, (), f"ExDestination {ex_destination} does not trade {symbol}")
    if not c.up:
        return Route(DIRECT, (), f"ExDestination {ex_destination} is not connected")
    return Route(DIRECT, (Leg(c.name, qty),), f"ExDestination {ex_destination}")
