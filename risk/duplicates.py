"""Duplicate-order memory: when each order key (session, side, symbol, quantity, price) was last accepted.

The duplicate-order check refuses a new order whose key was accepted within its window; the memory is kept
oldest first, so forgetting what is older than the window stops at the first recent one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from orders.commands import NewOrder


def duplicate_key(order: NewOrder) -> tuple:
    return (order.session, order.side.value, order.symbol, order.qty, order.price)


@dataclass(slots=True)
class RecentOrders:
    accepted: dict[tuple, datetime] = field(default_factory=dict)  # duplicate key -> last accepted at

    def last_accepted(self, order: NewOrder) -> datetime | None:
        return self.accepted.get(duplicate_key(order))

    def remember(self, order: NewOrder, now: datetime, window: timedelta | None = None) -> None:
        """The order was accepted at ``now``; with a ``window``, forget what is older than it."""
        key = duplicate_key(order)
        self.accepted.pop(key, None)  # re-insert at the end: ``accepted`` stays oldest first
        self.accepted[key] = now
        if window is not None:
            self.prune(now, window)

    def prune(self, now: datetime, window: timedelta) -> None:
        """Forget orders older than ``window``."""
        cutoff = now - window
        accepted = self.accepted
        expired = []
        for k, t in accepted.items():
            if t > cutoff:
                break
            expired.append(k)
        for k in expired:
            del accepted[k]

    # ------------------------------------------------------------------ RiskState.snapshot's part
    def snapshot(self) -> dict:
        return {"recent": [[list(_jsonable_key(k)), t.isoformat()] for k, t in self.accepted.items()]}

    @classmethod
    def from_snapshot(cls, data: dict) -> "RecentOrders":
        return cls({_key_from_json(k): datetime.fromisoformat(t) for k, t in data.get("recent", [])})


def _jsonable_key(k: tuple) -> tuple:
    session, side, symbol, qty, price = k
    return (session, side, symbol, str(qty), None if price is None else str(price))


def _key_from_json(k: list) -> tuple:
    session, side, symbol, qty, price = k
    return (session, side, symbol, Decimal(qty), None if price is None else Decimal(price))
