"""The venue simulator's matching engine. Pure Python: no quickfix, no I/O, no threads.

``Matcher`` owns the books (``venuesim.book``), the venue's order ids and every
order's state (``venuesim.order_state``). Each request returns the reports to send,
in order, as ``orders.model.ClientExecReport`` / ``ClientCancelReject`` whose
``session`` is the owner of the order (``venuesim.reports``): a fill against a
resting order produces a report for the aggressor and one for the resting order's
owner, which may be another session. ``sessions.codec.encode`` encodes them per FIX
version.

Prices and quantities are Decimal throughout; AvgPx is the exact traded notional
divided by the cumulative quantity.
"""
from __future__ import annotations

import itertools
from decimal import Decimal

from orders.actions import ClientCancelReject, ClientExecReport
from orders.commands import NewOrder
from orders.model import CxlRejCode, CxlRejResponseTo, ExecKind, OrdStatus, OrdType, RejectCode, Side, TimeInForce
from orders.validation import order_shape_problem
from venuesim.book import Book, Level, TopOfBook, crosses
from venuesim.config import SimulatorConfig
from venuesim.order_state import ZERO, OrderIndex, SimOrder
from venuesim.reports import Report, Reporter

RESTING_TIF = frozenset({TimeInForce.DAY, TimeInForce.GTC})


class Matcher:
    """Every book of one venue, the venue's ids, and every order's state.

    ``id_prefix`` makes OrderIDs (``{prefix}-{n}``) and, through ``reporter``, ExecIDs
    (``{prefix}-E{n}``); ``last_mkt`` is put on every fill (LastMkt, 30). Finished orders
    are remembered (for late cancels and status requests) up to ``done_retention`` orders.
    """

    def __init__(self, cfg: SimulatorConfig, *, id_prefix: str = "SIM", last_mkt: str | None = None,
                 done_retention: int = 100_000):
        self.cfg = cfg
        self.id_prefix = id_prefix
        self.last_mkt = last_mkt
        self.books: dict[str, Book] = {sym: Book(sym, px, cfg) for sym, px in cfg.prices.items()}
        self._orders = OrderIndex(done_retention)
        self.reporter = Reporter(id_prefix, last_mkt)
        self._order_seq = itertools.count(1)
        self._time = itertools.count(1)

    # ---------------------------------------------------------------- queries
    def order(self, owner: str, cl_ord_id: str) -> SimOrder | None:
        return self._orders.get(owner, cl_ord_id)

    def top_of_book(self, symbol: str) -> TopOfBook:
        return self.books[symbol].top()

    def all_orders(self) -> list[SimOrder]:
        """Every order the venue remembers (open, and finished within the retention), each once."""
        return self._orders.all()

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
                self._orders.register(order, new.cl_ord_id)
                self._orders.finish(order)
            return [self.reporter.exec_report(order, ExecKind.REJECTED, reject_code=code, text=text,
                                              recv_ns=new.recv_ns)]

        self._orders.register(order, new.cl_ord_id)
        book = self.books[new.symbol]
        reports = [self.reporter.exec_report(order, ExecKind.NEW, recv_ns=new.recv_ns)]
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
        order = self._orders.get(owner, orig_cl_ord_id)
        refusal = self._check_amendable(order, owner, orig_cl_ord_id, cl_ord_id, CxlRejResponseTo.CANCEL)
        if refusal is not None:
            return [refusal]
        assert order is not None
        book = self.books[order.symbol]
        book.remove(order)
        previous = order.cl_ord_id
        self._orders.register(order, cl_ord_id)
        order.status = OrdStatus.CANCELED
        self._orders.finish(order)
        book.replenish()
        return [self.reporter.exec_report(order, ExecKind.CANCELED, orig_cl_ord_id=previous,
                                          text="canceled on request", recv_ns=recv_ns)]

    def replace(self, owner: str, orig_cl_ord_id: str, cl_ord_id: str, qty: Decimal, price: Decimal | None = None,
                recv_ns: int = 0) -> list[Report]:
        """An OrderCancelReplaceRequest: Replaced (then fills if now marketable), or an OrderCancelReject.

        The new quantity must exceed what has already filled. A pure quantity
        reduction keeps the order's time priority; a price change or a quantity
        increase loses it (and the order is matched again as if it had just arrived).
        ``price`` None keeps the current price.
        """
        order = self._orders.get(owner, orig_cl_ord_id)
        refusal = self._check_amendable(order, owner, orig_cl_ord_id, cl_ord_id, CxlRejResponseTo.REPLACE)
        if refusal is not None:
            return [refusal]
        assert order is not None
        if qty <= order.cum_qty:
            return [self.reporter.cancel_reject(owner, cl_ord_id, orig_cl_ord_id, order, CxlRejResponseTo.REPLACE,
                                                CxlRejCode.OTHER,
                                                f"new quantity {qty} must exceed the filled quantity {order.cum_qty}")]
        if price is not None and price <= 0:
            return [self.reporter.cancel_reject(owner, cl_ord_id, orig_cl_ord_id, order, CxlRejResponseTo.REPLACE,
                                                CxlRejCode.OTHER, f"price must be positive, got {price}")]
        new_price = order.price if price is None else price
        keeps_priority = new_price == order.price and qty <= order.qty
        book = self.books[order.symbol]
        if not keeps_priority:
            book.remove(order)
        previous = order.cl_ord_id
        self._orders.register(order, cl_ord_id)
        order.qty = qty
        order.price = new_price
        order.status = OrdStatus.NEW if order.cum_qty == 0 else OrdStatus.PARTIALLY_FILLED
        reports: list[Report] = [self.reporter.exec_report(order, ExecKind.REPLACED, orig_cl_ord_id=previous,
                                                           recv_ns=recv_ns)]
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
                self._orders.finish(order)
                reports.append(self.reporter.exec_report(order, ExecKind.CANCELED, text=text))
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
            self._orders.forget(order)
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
            if d["symbol"] not in self.books or any(self._orders.knows(d["owner"], cl) for cl in d["cl_ord_ids"]):
                continue
            order = SimOrder(d["order_id"], d["owner"], d["cl_ord_ids"][0], d["symbol"], Side[d["side"]],
                             Decimal(d["qty"]), OrdType[d["ord_type"]],
                             None if d["price"] is None else Decimal(d["price"]), TimeInForce[d["tif"]],
                             d["account"], next(self._time))
            order.cum_qty, order.notional = Decimal(d["cum_qty"]), Decimal(d["notional"])
            order.status = OrdStatus[d["status"]]
            for cl in d["cl_ord_ids"]:
                self._orders.register(order, cl)
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
        return self.reporter.exec_report(order, ExecKind.ORDER_STATUS)

    def status(self, owner: str, cl_ord_id: str, symbol: str = "", side: Side = Side.BUY) -> ClientExecReport:
        """An OrderStatusRequest: the order's current state, or a Rejected status for an unknown order."""
        order = self._orders.get(owner, cl_ord_id)
        if order is None:
            unknown = SimOrder("NONE", owner, cl_ord_id, symbol, side, ZERO, OrdType.LIMIT, None, TimeInForce.DAY,
                               None, 0)
            unknown.status = OrdStatus.REJECTED
            return self.reporter.exec_report(unknown, ExecKind.ORDER_STATUS, reject_code=RejectCode.UNKNOWN_ORDER,
                                             text="unknown order")
        return self.reporter.exec_report(order, ExecKind.ORDER_STATUS)

    # ---------------------------------------------------------------- internals
    def _validate(self, new: NewOrder) -> tuple[RejectCode, str] | None:
        if new.symbol not in self.books:
            return RejectCode.UNKNOWN_SYMBOL, f"Unknown symbol {new.symbol}"
        if new.symbol in self.cfg.reject_symbols:
            return RejectCode.VENUE, f"symbol {new.symbol} is rejected by this venue (simulator reject_symbols)"
        if self._orders.knows(new.session, new.cl_ord_id):
            return RejectCode.DUPLICATE_ORDER, f"duplicate ClOrdID {new.cl_ord_id}"
        return order_shape_problem(new.qty, new.ord_type, new.price)

    def _check_amendable(self, order: SimOrder | None, owner: str, orig: str, new_id: str,
                         response_to: CxlRejResponseTo) -> ClientCancelReject | None:
        if order is None:
            return self.reporter.cancel_reject(owner, new_id, orig, None, response_to, CxlRejCode.UNKNOWN_ORDER,
                                               f"unknown order {orig}")
        if order.done:
            return self.reporter.cancel_reject(owner, new_id, orig, order, response_to, CxlRejCode.TOO_LATE,
                                               f"too late: order is {order.status.name.lower()}")
        if self._orders.knows(owner, new_id):
            return self.reporter.cancel_reject(owner, new_id, orig, order, response_to,
                                               CxlRejCode.DUPLICATE_CLORDID, f"duplicate ClOrdID {new_id}")
        return None

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
            self._orders.finish(order)
        else:
            order.status = OrdStatus.PARTIALLY_FILLED
        reports.append(self.reporter.exec_report(order, ExecKind.TRADE, last_qty=qty, last_px=px, recv_ns=recv_ns))

    def _cancel_remainder(self, order: SimOrder, reports: list[Report], text: str, recv_ns: int) -> None:
        order.status = OrdStatus.CANCELED
        self._orders.finish(order)
        reports.append(self.reporter.exec_report(order, ExecKind.CANCELED, text=text, recv_ns=recv_ns))

    def _next_order_id(self) -> str:
        return f"{self.id_prefix}-{next(self._order_seq)}"
