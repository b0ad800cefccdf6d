"""The venue simulator's order book of one symbol. Pure Python: no quickfix, no I/O, no threads.

One ``Book`` per symbol holds two kinds of liquidity:

- **Synthetic levels** around the symbol's reference price: the best bid sits
  ``half_spread_ticks`` ticks below the reference, the best ask as many ticks
  above, with ``depth`` levels per side one tick apart; level n (1-based) holds
  ``n * level_size``. After every request that reaches the book (new order,
  cancel, replace) each level is topped up to its configured size again, so
  every order meets the same book (deterministic for tests). A synthetic level
  that would lock or cross a resting client order on the other side is not
  replenished (it stays empty) so the book never crosses.
- **Client orders**: limit DAY/GTC orders that did not fill completely rest and
  take part in matching with price-time priority. At the same price the
  synthetic level has time priority (it has been there since the start), so a
  resting client order is hit first only when it is priced better than the
  synthetic level, or once that level is used up.

The book says what liquidity an order meets; trading it is the ``venuesim.matcher.Matcher``'s.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from orders.model import Side
from venuesim.config import SimulatorConfig
from venuesim.order_state import ZERO, SimOrder


def book_side(side: Side) -> Side:
    """The side of the book an order sits on (a short sale is a sell)."""
    return Side.BUY if side is Side.BUY else Side.SELL


def _opposite(side: Side) -> Side:
    return Side.SELL if book_side(side) is Side.BUY else Side.BUY


def _better_or_equal(side: Side, a: Decimal, b: Decimal) -> bool:
    """Is price ``a`` at least as good as ``b`` for a resting order on ``side``?"""
    return a >= b if side is Side.BUY else a <= b


@dataclass(slots=True)
class Level:
    """One synthetic price level."""

    price: Decimal
    size: Decimal  # configured size
    available: Decimal


class TopOfBook(NamedTuple):
    bid: Decimal | None
    bid_size: Decimal
    ask: Decimal | None
    ask_size: Decimal


class Book:
    """Synthetic levels plus resting client orders for one symbol."""

    def __init__(self, symbol: str, ref_price: Decimal, cfg: SimulatorConfig):
        self.symbol = symbol
        self.ref_price = ref_price
        self.levels: dict[Side, list[Level]] = {Side.BUY: [], Side.SELL: []}  # best first
        for n in range(1, cfg.depth + 1):
            offset = (cfg.half_spread_ticks + n - 1) * cfg.tick
            size = n * cfg.level_size
            bid = ref_price - offset
            if bid > 0:
                self.levels[Side.BUY].append(Level(bid, size, size))
            ask = ref_price + offset
            self.levels[Side.SELL].append(Level(ask, size, size))
        self.resting: dict[Side, list[SimOrder]] = {Side.BUY: [], Side.SELL: []}  # best first, then by time

    # ---------------------------------------------------------------- client orders
    @staticmethod
    def _key(order: SimOrder) -> tuple[Decimal, int]:
        return (-order.price if book_side(order.side) is Side.BUY else order.price, order.seq)

    def add(self, order: SimOrder) -> None:
        bisect.insort(self.resting[book_side(order.side)], order, key=self._key)

    def remove(self, order: SimOrder) -> None:
        side = self.resting[book_side(order.side)]
        if order in side:
            side.remove(order)

    # ---------------------------------------------------------------- matching helpers
    def best_against(self, side: Side) -> Level | SimOrder | None:
        """The liquidity an incoming order on ``side`` meets first (synthetic wins ties on price)."""
        opp = _opposite(side)
        level = next((lv for lv in self.levels[opp] if lv.available > 0), None)
        client = self.resting[opp][0] if self.resting[opp] else None
        if client is None:
            return level
        if level is None:
            return client
        return level if _better_or_equal(opp, level.price, client.price) else client

    def available_against(self, side: Side, limit: Decimal | None) -> Decimal:
        """Quantity an incoming order on ``side`` with ``limit`` (None: market) could trade right now."""
        opp = _opposite(side)
        total = ZERO
        for lv in self.levels[opp]:
            if crosses(side, limit, lv.price):
                total += lv.available
        for o in self.resting[opp]:
            if crosses(side, limit, o.price):
                total += o.leaves_qty
        return total

    def replenish(self) -> None:
        """Top every synthetic level up to its configured size, unless it would lock or cross a client order."""
        best_bid = self.resting[Side.BUY][0].price if self.resting[Side.BUY] else None
        best_ask = self.resting[Side.SELL][0].price if self.resting[Side.SELL] else None
        for lv in self.levels[Side.SELL]:
            lv.available = ZERO if best_bid is not None and lv.price <= best_bid else lv.size
        for lv in self.levels[Side.BUY]:
            lv.available = ZERO if best_ask is not None and lv.price >= best_ask else lv.size

    # ---------------------------------------------------------------- views (market data)
    def depth(self, side: Side) -> list[tuple[Decimal, Decimal]]:
        """Aggregated (price, size) per price on one side, best first: synthetic plus client orders."""
        sizes: dict[Decimal, Decimal] = {}
        for lv in self.levels[side]:
            if lv.available > 0:
                sizes[lv.price] = sizes.get(lv.price, ZERO) + lv.available
        for o in self.resting[side]:
            sizes[o.price] = sizes.get(o.price, ZERO) + o.leaves_qty
        return sorted(sizes.items(), key=lambda kv: -kv[0] if side is Side.BUY else kv[0])

    def top(self) -> TopOfBook:
        bids = self.depth(Side.BUY)
        asks = self.depth(Side.SELL)
        bid, bid_size = bids[0] if bids else (None, ZERO)
        ask, ask_size = asks[0] if asks else (None, ZERO)
        return TopOfBook(bid, bid_size, ask, ask_size)


def crosses(side: Side, limit: Decimal | None, price: Decimal) -> bool:
    """Would an incoming order on ``side`` with ``limit`` (None: market) trade at ``price``?"""
    if limit is None:
        return True
    return price <= limit if book_side(side) is Side.BUY else price >= limit

