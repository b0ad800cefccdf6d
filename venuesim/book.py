"""The venue simulator's matching engine. Pure Python: no quickfix, no I/O, no threads.

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

``Matcher`` owns the books, the venue's order and execution ids and every order's
state. Each request returns the reports to send, in order, as
``orders.model.ClientExecReport`` / ``ClientCancelReject`` whose ``session`` is
the owner of the order: a fill against a resting order produces a report for the
aggressor and one for the resting order's owner, which may be another session.
``sessions.codec`` encodes them per FIX version.

Prices and quantities are Decimal throughout; AvgPx is the exact traded notional
divided by the cumulative quantity.
"""
from __future__ import annotations

import bisect
import itertools
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple, Union

from venuesim.config import SimulatorConfig
from orders.model import (
    ClientCancelReject,
    ClientExecReport,
    CxlRejCode,
    CxlRejResponseTo,
    ExecKind,
    NewOrder,
    OrdStatus,
    OrdType,
    RejectCode,
    Side,
    TimeInForce,
)
from orders.validation import order_shape_problem

ZERO = Decimal(0)
DONE = frozenset({OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED})
RESTING_TIF = frozenset({TimeInForce.DAY, TimeInForce.GTC})

Report = Union[ClientExecReport, ClientCancelReject]


def book_side(side: Side) -> Side:
    """The side of the book an order sits on (a short sale is a sell)."""
    return Side.BUY if side is Side.BUY else Side.SELL


def _opposite(side: Side) -> Side:
    return Side.SELL if book_side(side) is Side.BUY else Side.BUY


def _better_or_equal(side: Side, a: Decimal, b: Decimal) -> bool:
    """Is price ``a`` at least as good as ``b`` for a resting order on ``side``?"""
    return a >= b if side is Side.BUY else a <= b


# --------------------------------------------------------------------------- state
class SimOrder:
    """The venue's state of one order. Mutated only by the Matcher."""

    __slots__ = ("order_id", "owner", "cl_ord_id", "cl_ord_ids", "symbol", "side", "qty", "ord_type", "price",
                 "tif", "account", "cum_qty", "notional", "status", "seq")

    def __init__(self, order_id: str, owner: str, cl_ord_id: str, symbol: str, side: Side, qty: Decimal,
                 ord_type: OrdType, price: Decimal | None, tif: TimeInForce, account: str | None, seq: int):
        self.order_id = order_id
        self.owner = owner
        self.cl_ord_id = cl_ord_id
        self.cl_ord_ids = [cl_ord_id]  # every ClOrdID of the cancel/replace chain, oldest first
        self.symbol = symbol
        self.side = side
        self.qty = qty
        self.ord_type = ord_type
        self.price = price
        self.tif = tif
        self.account = account
        self.cum_qty = ZERO
        self.notional = ZERO  # sum of last_qty * last_px, exact
        self.status = OrdStatus.NEW
        self.seq = seq  # time priority: lower is earlier

    @property
    def leaves_qty(self) -> Decimal:
        return ZERO if self.status in DONE else self.qty - self.cum_qty

    @property
    def avg_px(self) -> Decimal:
        return self.notional / self.cum_qty if self.cum_qty else ZERO

    @property
    def done(self) -> bool:
        return self.status in DONE

    def __repr__(self) -> str:
        return (f"SimOrder({self.order_id} {self.owner}/{self.cl_ord_id} {self.side.name} {self.qty} {self.symbol} "
                f"@{self.price} cum={self.cum_qty} {self.status.name})")


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


# --------------------------------------------------------------------------- matcher
class Matcher:
    """Every book of one venue, the venue's ids, and every order's state.

    ``id_prefix`` makes OrderIDs (``{prefix}-{n}``) and ExecIDs (``{prefix}-E{n}``);
    ``last_mkt`` is put on every fill (LastMkt, 30). Finished orders are remembered
    (for late cancels and status requests) up to ``done_retention`` orders.
    """

    def __init__(self, cfg: SimulatorConfig, *, id_prefix: str = "SIM", last_mkt: str | None = None,
                 done_retention: int = 100_000):
        self.cfg = cfg
        self.id_prefix = id_prefix
        self.last_mkt = last_mkt
        self.books: dict[str, Book] = {sym: Book(sym, px, cfg) for sym, px in cfg.prices.items()}
        self._orders: dict[tuple[str, str], SimOrder] = {}  # (owner, any ClOrdID of the chain) -> order
        self._done: OrderedDict[str, SimOrder] = OrderedDict()
        self._done_retention = done_retention
        self._order_seq = itertools.count(1)
        self._exec_seq = itertools.count(1)
        self._time = itertools.count(1)

    # ---------------------------------------------------------------- queries
    def order(self, owner: str, cl_ord_id: str) -> SimOrder | None:
        return self._orders.get((owner, cl_ord_id))

    def top_of_book(self, symbol: str) -> TopOfBook:
        return self.books[symbol].top()

    def all_orders(self) -> list[SimOrder]:
        """Every order the venue remembers (open, and finished within the retention), each once."""
        return list({id(o): o for o in self._orders.values()}.values())

    def resting_orders(self, symbol: str) -> list[SimOrder]:
        book = self.books[symbol]
        return [*book.resting[Side.BUY], *book.resting[Side.SELL]]

    # ---------------------------------------------------------------- requests
    def submit(self, new: NewOrder) -> list[Report]:
        """A NewOrderSingle from session ``new.session``: New (or Rejected), fills, and a Canceled remainder."""
        price = new.price if new.ord_type is OrdType.LIMIT else None
        order = SimOrder(self._next_order_id(), new.session, new.cl_ord_id, new.symbol, new.side, new.qty,
                         new.ord_type, price, new.tif, new.account, next(self._time))
        refusal = self._validate(new)
        if refusal is not None:
            code, text = refusal
            order.status = OrdStatus.REJECTED
            if code is not RejectCode.DUPLICATE_ORDER:  # the original keeps its ClOrdID
                self._register(order, new.cl_ord_id)
                self._finish(order)
            return [self._report(order, ExecKind.REJECTED, reject_code=code, text=text, recv_ns=new.recv_ns)]

        self._register(order, new.cl_ord_id)
        book = self.books[new.symbol]
        reports = [self._report(order, ExecKind.NEW, recv_ns=new.recv_ns)]
        if order.tif is TimeInForce.FOK:
            available = book.available_against(order.side, order.price)
            if available < order.qty:
                self._cancel_remainder(order, reports, f"fill or kill: only {available} available",
                                       new.recv_ns)
                book.replenish()
                return reports
        self._match(book, order, reports, new.recv_ns)
        if order.leaves_qty > 0:
            if order.ord_type is OrdType.LIMIT and order.tif in RESTING_TIF:
                book.add(order)
            else:
                why = "market order" if order.ord_type is OrdType.MARKET else f"{order.tif.name} order"
                self._cancel_remainder(order, reports, f"{why}: remainder canceled, no more liquidity",
                                       new.recv_ns)
        book.replenish()
        return reports

    def cancel(self, owner: str, orig_cl_ord_id: str, cl_ord_id: str, recv_ns: int = 0) -> list[Report]:
        """An OrderCancelRequest: Canceled, or an OrderCancelReject."""
        order = self._orders.get((owner, orig_cl_ord_id))
        refusal = self._check_amendable(order, owner, orig_cl_ord_id, cl_ord_id, CxlRejResponseTo.CANCEL)
        if refusal is not None:
            return [refusal]
        assert order is not None
        book = self.books[order.symbol]
        book.remove(order)
        previous = order.cl_ord_id
        self._register(order, cl_ord_id)
        order.status = OrdStatus.CANCELED
        self._finish(order)
        book.replenish()
        return [self._report(order, ExecKind.CANCELED, orig_cl_ord_id=previous, text="canceled on request",
                             recv_ns=recv_ns)]

    def replace(self, owner: str, orig_cl_ord_id: str, cl_ord_id: str, qty: Decimal, price: Decimal | None = None,
                recv_ns: int = 0) -> list[Report]:
        """An OrderCancelReplaceRequest: Replaced (then fills if now marketable), or an OrderCancelReject.

        The new quantity must exceed what has already filled. A pure quantity
        reduction keeps the order's time priority; a price change or a quantity
        increase loses it (and the order is matched again as if it had just arrived).
        ``price`` None keeps the current price.
        """
        order = self._orders.get((owner, orig_cl_ord_id))
        refusal = self._check_amendable(order, owner, orig_cl_ord_id, cl_ord_id, CxlRejResponseTo.REPLACE)
        if refusal is not None:
            return [refusal]
        assert order is not None
        if qty <= order.cum_qty:
            return [self._cancel_reject(owner, cl_ord_id, orig_cl_ord_id, order, CxlRejResponseTo.REPLACE,
                                        CxlRejCode.OTHER,
                                        f"new quantity {qty} must exceed the filled quantity {order.cum_qty}")]
        if price is not None and price <= 0:
            return [self._cancel_reject(owner, cl_ord_id, orig_cl_ord_id, order, CxlRejResponseTo.REPLACE,
                                        CxlRejCode.OTHER, f"price must be positive, got {price}")]
        new_price = order.price if price is None else price
        keeps_priority = new_price == order.price and qty <= order.qty
        book = self.books[order.symbol]
        if not keeps_priority:
            book.remove(order)
        previous = order.cl_ord_id
        self._register(order, cl_ord_id)
        order.qty = qty
        order.price = new_price
        order.status = OrdStatus.NEW if order.cum_qty == 0 else OrdStatus.PARTIALLY_FILLED
        reports: list[Report] = [self._report(order, ExecKind.REPLACED, orig_cl_ord_id=previous, recv_ns=recv_ns)]
        if not keeps_priority:
            order.seq = next(self._time)
            self._match(book, order, reports, recv_ns)
            if order.leaves_qty > 0:
                book.add(order)
        book.replenish()
        return reports

    def cancel_owner(self, owner: str, text: str) -> tuple[list[Report], set[str]]:
        """Cancel every resting order of session ``owner`` (the venue's cancel on disconnect); returns the
        Canceled reports and the symbols whose books changed."""
        reports: list[Report] = []
        symbols: set[str] = set()
        for symbol, book in self.books.items():
            mine = [o for side in (Side.BUY, Side.SELL) for o in book.resting[side] if o.owner == owner]
            for order in mine:
                book.remove(order)
                order.status = OrdStatus.CANCELED
                self._finish(order)
                reports.append(self._report(order, ExecKind.CANCELED, text=text))
            if mine:
                book.replenish()
                symbols.add(symbol)
        return reports, symbols

    def forget(self, owner: str | None = None) -> tuple[int, set[str]]:
        """Lose every order of session ``owner`` (None: of every session), open or finished, as a venue
        restarted without its book would: no report is sent, a status request or cancel for one of them
        is answered as for an order never seen. Returns how many orders and the symbols whose books changed."""
        lost = [o for o in self.all_orders() if owner is None or o.owner == owner]
        symbols: set[str] = set()
        for order in lost:
            if not order.done:
                self.books[order.symbol].remove(order)
                symbols.add(order.symbol)
            for cl in order.cl_ord_ids:
                if self._orders.get((order.owner, cl)) is order:
                    del self._orders[(order.owner, cl)]
            self._done.pop(order.order_id, None)
        for symbol in symbols:
            self.books[symbol].replenish()
        return len(lost), symbols

    def resting_book(self) -> list[dict]:
        """Every order still working, as plain JSON-able data (``restore_book`` takes it back), oldest first.

        What a venue keeps across its own restart: a simulator stopped in good order writes this and the next
        one started on the same store reads it, so its counterparties' resting orders are still there."""
        working = sorted((o for o in self.all_orders() if not o.done), key=lambda o: o.seq)
        return [{"order_id": o.order_id, "owner": o.owner, "cl_ord_ids": list(o.cl_ord_ids), "symbol": o.symbol,
                 "side": o.side.name, "qty": str(o.qty), "ord_type": o.ord_type.name,
                 "price": None if o.price is None else str(o.price), "tif": o.tif.name, "account": o.account,
                 "cum_qty": str(o.cum_qty), "notional": str(o.notional), "status": o.status.name}
                for o in working]

    def restore_book(self, orders: list[dict]) -> int:
        """Put back orders saved by ``resting_book`` (after this matcher's start, before any request).

        An order for a symbol this venue no longer trades, or one already known here, is skipped; returns how
        many were restored. Time priority among them is kept; they rest behind nothing new (none yet)."""
        restored = 0
        for d in orders:
            if d["symbol"] not in self.books or any((d["owner"], cl) in self._orders for cl in d["cl_ord_ids"]):
                continue
            order = SimOrder(d["order_id"], d["owner"], d["cl_ord_ids"][0], d["symbol"], Side[d["side"]],
                             Decimal(d["qty"]), OrdType[d["ord_type"]],
                             None if d["price"] is None else Decimal(d["price"]), TimeInForce[d["tif"]],
                             d["account"], next(self._time))
            order.cum_qty, order.notional = Decimal(d["cum_qty"]), Decimal(d["notional"])
            order.status = OrdStatus[d["status"]]
            for cl in d["cl_ord_ids"]:
                self._register(order, cl)
            if order.price is not None:
                self.books[order.symbol].add(order)
            restored += 1
        for book in self.books.values():
            book.replenish()
        return restored

    def open_orders(self, owner: str, symbol: str | None = None, side: Side | None = None) -> list[SimOrder]:
        """Session ``owner``'s orders that are still working (optionally one symbol's, one side's), oldest first."""
        return sorted((o for o in self.all_orders() if o.owner == owner and not o.done
                       and (symbol is None or o.symbol == symbol) and (side is None or o.side is side)),
                      key=lambda o: o.seq)

    def status_of(self, order: SimOrder) -> ClientExecReport:
        """An order-status report (ExecType I) of one order."""
        return self._report(order, ExecKind.ORDER_STATUS)

    def status(self, owner: str, cl_ord_id: str, symbol: str = "", side: Side = Side.BUY) -> ClientExecReport:
        """An OrderStatusRequest: the order's current state, or a Rejected status for an unknown order."""
        order = self._orders.get((owner, cl_ord_id))
        if order is None:
            unknown = SimOrder("NONE", owner, cl_ord_id, symbol, side, ZERO, OrdType.LIMIT, None, TimeInForce.DAY,
                               None, 0)
            unknown.status = OrdStatus.REJECTED
            return self._report(unknown, ExecKind.ORDER_STATUS, reject_code=RejectCode.UNKNOWN_ORDER,
                                text="unknown order")
        return self._report(order, ExecKind.ORDER_STATUS)

    # ---------------------------------------------------------------- internals
    def _validate(self, new: NewOrder) -> tuple[RejectCode, str] | None:
        if new.symbol not in self.books:
            return RejectCode.UNKNOWN_SYMBOL, f"Unknown symbol {new.symbol}"
        if new.symbol in self.cfg.reject_symbols:
            return RejectCode.VENUE, f"symbol {new.symbol} is rejected by this venue (simulator reject_symbols)"
        if (new.session, new.cl_ord_id) in self._orders:
            return RejectCode.DUPLICATE_ORDER, f"duplicate ClOrdID {new.cl_ord_id}"
        return order_shape_problem(new.qty, new.ord_type, new.price)

    def _check_amendable(self, order: SimOrder | None, owner: str, orig: str, new_id: str,
                         response_to: CxlRejResponseTo) -> ClientCancelReject | None:
        if order is None:
            return self._cancel_reject(owner, new_id, orig, None, response_to, CxlRejCode.UNKNOWN_ORDER,
                                       f"unknown order {orig}")
        if order.done:
            return self._cancel_reject(owner, new_id, orig, order, response_to, CxlRejCode.TOO_LATE,
                                       f"too late: order is {order.status.name.lower()}")
        if (owner, new_id) in self._orders:
            return self._cancel_reject(owner, new_id, orig, order, response_to, CxlRejCode.DUPLICATE_CLORDID,
                                       f"duplicate ClOrdID {new_id}")
        return None

    @staticmethod
    def _cancel_reject(owner: str, cl_ord_id: str, orig: str, order: SimOrder | None, response_to: CxlRejResponseTo,
                       reason: CxlRejCode, text: str) -> ClientCancelReject:
        return ClientCancelReject(
            session=owner, cl_ord_id=cl_ord_id, orig_cl_ord_id=orig,
            order_id=order.order_id if order is not None else "NONE",
            ord_status=order.status if order is not None else OrdStatus.REJECTED,
            response_to=response_to, reason=reason, text=text,
            account=order.account if order is not None else None)

    def _match(self, book: Book, order: SimOrder, reports: list[Report], recv_ns: int) -> None:
        """Trade ``order`` against the other side while it crosses; fills its and the resting owners' reports."""
        while order.leaves_qty > 0:
            source = book.best_against(order.side)
            if source is None or not crosses(order.side, order.price, source.price):
                return
            px = source.price
            if isinstance(source, Level):
                qty = min(order.leaves_qty, source.available)
                source.available -= qty
                self._fill(order, qty, px, reports, recv_ns)
            else:
                qty = min(order.leaves_qty, source.leaves_qty)
                self._fill(order, qty, px, reports, recv_ns)
                self._fill(source, qty, px, reports, recv_ns)
                if source.leaves_qty == 0:
                    book.remove(source)

    def _fill(self, order: SimOrder, qty: Decimal, px: Decimal, reports: list[Report], recv_ns: int) -> None:
        order.cum_qty += qty
        order.notional += qty * px
        if order.cum_qty >= order.qty:
            order.status = OrdStatus.FILLED
            self._finish(order)
        else:
            order.status = OrdStatus.PARTIALLY_FILLED
        reports.append(self._report(order, ExecKind.TRADE, last_qty=qty, last_px=px, recv_ns=recv_ns))

    def _cancel_remainder(self, order: SimOrder, reports: list[Report], text: str, recv_ns: int) -> None:
        order.status = OrdStatus.CANCELED
        self._finish(order)
        reports.append(self._report(order, ExecKind.CANCELED, text=text, recv_ns=recv_ns))

    def _register(self, order: SimOrder, cl_ord_id: str) -> None:
        if cl_ord_id != order.cl_ord_ids[-1]:
            order.cl_ord_ids.append(cl_ord_id)
        order.cl_ord_id = cl_ord_id
        self._orders[(order.owner, cl_ord_id)] = order

    def _finish(self, order: SimOrder) -> None:
        """Remember a finished order; forget the oldest finished ones beyond the retention."""
        self._done[order.order_id] = order
        while len(self._done) > self._done_retention:
            _, old = self._done.popitem(last=False)
            for cl in old.cl_ord_ids:
                if self._orders.get((old.owner, cl)) is old:
                    del self._orders[(old.owner, cl)]

    def next_exec_id(self) -> str:
        """A fresh ExecID, for a report about no order (an empty mass status answer)."""
        return f"{self.id_prefix}-E{next(self._exec_seq)}"

    def _next_order_id(self) -> str:
        return f"{self.id_prefix}-{next(self._order_seq)}"

    def _report(self, order: SimOrder, kind: ExecKind, *, last_qty: Decimal = ZERO, last_px: Decimal = ZERO,
                orig_cl_ord_id: str | None = None, reject_code: RejectCode | None = None, text: str | None = None,
                recv_ns: int = 0) -> ClientExecReport:
        return ClientExecReport(
            session=order.owner, order_id=order.order_id, cl_ord_id=order.cl_ord_id, orig_cl_ord_id=orig_cl_ord_id,
            exec_id=f"{self.id_prefix}-E{next(self._exec_seq)}", kind=kind, ord_status=order.status,
            symbol=order.symbol, side=order.side, order_qty=order.qty, ord_type=order.ord_type, price=order.price,
            tif=order.tif, account=order.account, last_qty=last_qty, last_px=last_px, cum_qty=order.cum_qty,
            leaves_qty=order.leaves_qty, avg_px=order.avg_px,
            last_mkt=self.last_mkt if kind is ExecKind.TRADE else None,
            reject_code=reject_code, text=text, recv_ns=recv_ns)
