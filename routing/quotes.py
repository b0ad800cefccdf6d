"""The consolidated book: each venue's bids and offers per symbol, with when they were received.

Pure Python, owned by the core thread. A venue's full refresh (W) replaces its
book for the symbol; an incremental refresh (X) adds, changes or deletes one
price level at a time (MDUpdateAction 0/1/2, the level named by its price).
Every update stamps the (venue, symbol) book with the core's clock, so a quote's
age is the time since the venue last told us anything about that book.

A quote older than the configured maximum age is not trusted: ``fresh()``
leaves it out, and the router treats the venue as if it had no quote. A venue
whose session drops loses its books at once (``drop_venue``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from orders.commands import MarketData
from orders.model import MDUpdateAction, Side

ZERO = Decimal(0)
Level = tuple[Decimal, Decimal]  # (price, size)


@dataclass(frozen=True, slots=True)
class Quote:
    """One venue's view of one symbol: its levels best first, the top of book, and when it was received."""

    venue: str
    symbol: str
    bids: tuple[Level, ...]  # best (highest) first
    asks: tuple[Level, ...]  # best (lowest) first
    received: datetime

    @property
    def bid(self) -> Decimal | None:
        return self.bids[0][0] if self.bids else None

    @property
    def bid_size(self) -> Decimal:
        return self.bids[0][1] if self.bids else ZERO

    @property
    def ask(self) -> Decimal | None:
        return self.asks[0][0] if self.asks else None

    @property
    def ask_size(self) -> Decimal:
        return self.asks[0][1] if self.asks else ZERO

    def age(self, now: datetime) -> timedelta:
        return now - self.received

    def levels_against(self, side: Side) -> tuple[Level, ...]:
        """The levels an order on ``side`` would trade against: the offers for a buy, the bids for a sell."""
        return self.asks if side is Side.BUY else self.bids


class _Book:
    __slots__ = ("bids", "asks", "received", "_quote")

    def __init__(self, received: datetime):
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.received = received
        self._quote: Quote | None = None  # built on demand, dropped on every change


class Quotes:
    """Every venue's book per symbol. ``apply`` a MarketData command; read ``quote``/``fresh``/``best``."""

    def __init__(self) -> None:
        self._books: dict[tuple[str, str], _Book] = {}

    def apply(self, md: MarketData, now: datetime) -> set[str]:
        """Apply a full or incremental refresh received ``now``; returns the symbols it touched."""
        if md.snapshot:
            book = _Book(now)
            for e in md.entries:
                if e.size > 0:
                    (book.bids if e.side is Side.BUY else book.asks)[e.price] = e.size
            self._books[(md.venue, md.symbol)] = book
            return {md.symbol}
        touched: set[str] = set()
        for e in md.entries:
            symbol = e.symbol or md.symbol
            if not symbol:
                continue
            book = self._books.get((md.venue, symbol))
            if book is None:
                book = self._books[(md.venue, symbol)] = _Book(now)
            levels = book.bids if e.side is Side.BUY else book.asks
            if e.action is MDUpdateAction.DELETE or e.size <= 0:
                levels.pop(e.price, None)
            else:
                levels[e.price] = e.size
            book.received = now
            book._quote = None
            touched.add(symbol)
        return touched

    def drop_venue(self, venue: str) -> None:
        for key in [k for k in self._books if k[0] == venue]:
            del self._books[key]

    def quote(self, venue: str, symbol: str) -> Quote | None:
        """The venue's last quote for the symbol, however old, or None."""
        book = self._books.get((venue, symbol))
        if book is None:
            return None
        if book._quote is None:
            book._quote = Quote(venue, symbol, tuple(sorted(book.bids.items(), reverse=True)),
                                tuple(sorted(book.asks.items())), book.received)
        return book._quote

    def fresh(self, venue: str, symbol: str, now: datetime, max_age: timedelta) -> Quote | None:
        """The venue's quote if it is no older than ``max_age``; a stale quote is not trusted."""
        q = self.quote(venue, symbol)
        return q if q is not None and now - q.received <= max_age else None

    def top(self, venue: str, symbol: str) -> tuple[Decimal | None, Decimal | None]:
        """(best bid, best ask) of one venue's book, without building a Quote."""
        book = self._books.get((venue, symbol))
        if book is None:
            return None, None
        return (max(book.bids) if book.bids else None), (min(book.asks) if book.asks else None)

    def best(self, symbol: str, venues, now: datetime, max_age: timedelta) -> tuple[Decimal | None, Decimal | None]:
        """The consolidated best bid and best ask across ``venues``' fresh quotes."""
        bid = ask = None
        for venue in venues:
            book = self._books.get((venue, symbol))
            if book is None or now - book.received > max_age:
                continue
            if book.bids:
                b = max(book.bids)
                bid = b if bid is None or b > bid else bid
            if book.asks:
                a = min(book.asks)
                ask = a if ask is None or a < ask else ask
        return bid, ask

    def all(self) -> list[Quote]:
        return [self.quote(v, s) for v, s in sorted(self._books)]
