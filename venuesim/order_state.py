"""The venue's state of each order (``SimOrder``) and the index it finds them by: owner and any ClOrdID of
the cancel/replace chain, finished orders kept up to a retention. Pure Python, mutated only by the Matcher."""
from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal

from orders.model import OrdStatus, OrdType, Side, TimeInForce

ZERO = Decimal(0)
DONE = frozenset({OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED})


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


class OrderIndex:
    """Every order the venue remembers, by (owner, any ClOrdID of its chain). Finished orders are remembered
    (for late cancels and status requests) up to ``done_retention`` orders, the oldest forgotten first."""

    def __init__(self, done_retention: int):
        self._orders: dict[tuple[str, str], SimOrder] = {}  # (owner, any ClOrdID of the chain) -> order
        self._done: OrderedDict[str, SimOrder] = OrderedDict()
        self._done_retention = done_retention

    def get(self, owner: str, cl_ord_id: str) -> SimOrder | None:
        return self._orders.get((owner, cl_ord_id))

    def knows(self, owner: str, cl_ord_id: str) -> bool:
        """Is ``cl_ord_id`` of ``owner`` taken (by an open order, or a finished one still remembered)?"""
        return (owner, cl_ord_id) in self._orders

    def all(self) -> list[SimOrder]:
        """Every order remembered (open, and finished within the retention), each once."""
        return list({id(o): o for o in self._orders.values()}.values())

    def register(self, order: SimOrder, cl_ord_id: str) -> None:
        """``cl_ord_id`` becomes the order's current ClOrdID, by which it is found from now on too."""
        if cl_ord_id != order.cl_ord_ids[-1]:
            order.cl_ord_ids.append(cl_ord_id)
        order.cl_ord_id = cl_ord_id
        self._orders[(order.owner, cl_ord_id)] = order

    def finish(self, order: SimOrder) -> None:
        """Remember a finished order; forget the oldest finished ones beyond the retention."""
        self._done[order.order_id] = order
        while len(self._done) > self._done_retention:
            _, old = self._done.popitem(last=False)
            self._unregister(old)

    def forget(self, order: SimOrder) -> None:
        """Lose ``order`` altogether: none of its ClOrdIDs finds it any more."""
        self._unregister(order)
        self._done.pop(order.order_id, None)

    def _unregister(self, order: SimOrder) -> None:
        for cl in order.cl_ord_ids:
            if self._orders.get((order.owner, cl)) is order:
                del self._orders[(order.owner, cl)]
