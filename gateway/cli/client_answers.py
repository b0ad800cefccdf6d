"""Which request of a `fixgw client` run a received message answers, and the state of each order the run
knows (what a cancel, replace or status request must repeat). Pure: it is fed the messages in order."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from gateway.cli.client_reports import status_is_reply
from gateway.cli.client_script import NewOrder

PENDING = frozenset({"A", "6", "E"})  # PendingNew, PendingCancel, PendingReplace
DONE = frozenset({"2", "3", "4", "8", "C"})  # Filled, DoneForDay, Canceled, Rejected, Expired


@dataclass
class OrderRecord:
    """An order this run sent (or was told about): what a cancel, replace or status request must repeat."""

    cl_ord_id: str  # the live ClOrdID: the latest replace's once the gateway confirmed it
    symbol: str
    side: str
    qty: Decimal | None
    limit: Decimal | None = None
    account: str | None = None
    ord_status: str | None = None
    names: set[str] = field(default_factory=set)  # every ClOrdID of the chain


@dataclass
class Request:
    """One message sent, waiting for its answer."""

    kind: str  # MsgType sent: D, F, G, H, q
    cl_ord_id: str
    seq: str | None = None  # its MsgSeqNum, to match a session Reject (which names only that)
    outcome: str | None = None  # None while waiting; "ok", "refused"
    answer: dict[int, str] | None = None


class Tracker:
    """Which request each received message answers, and the state of each order this run knows.

    ``feed`` every received message in order; a request is answered when:
    - NewOrderSingle: an ExecutionReport for its ClOrdID that is not PendingNew (New, a fill, Rejected, ...);
    - cancel / replace: an ExecutionReport for its ClOrdID that is not PendingCancel/PendingReplace, or an
      OrderCancelReject for it;
    - status: the ExecutionReport answering it (ExecType I, or ExecTransType 3 in 4.2);
    - mass cancel: the OrderMassCancelReport;
    - any: a BusinessMessageReject naming its ClOrdID or MsgSeqNum, or a session Reject naming its MsgSeqNum.
    Refused: Rejected (39=8), OrderCancelReject, the two rejects, an unknown order's status, a refused mass cancel.
    """

    def __init__(self) -> None:
        self.orders: dict[str, OrderRecord] = {}
        self.pending: list[Request] = []
        self.last_order: str | None = None

    # -- what we sent
    def sent_order(self, o: NewOrder, cl_ord_id: str) -> None:
        rec = OrderRecord(cl_ord_id=cl_ord_id, symbol=o.symbol, side=o.side, qty=o.qty, limit=o.limit,
                          account=o.account, names={cl_ord_id})
        self.orders[cl_ord_id] = rec
        self.last_order = cl_ord_id

    def order(self, cl_ord_id: str) -> OrderRecord | None:
        return self.orders.get(cl_ord_id)

    def adopt(self, cl_ord_id: str, symbol: str, side: str, qty: Decimal | None) -> OrderRecord:
        """An order of an earlier run, described by the command (--symbol, --side)."""
        rec = OrderRecord(cl_ord_id=cl_ord_id, symbol=symbol, side=side, qty=qty, names={cl_ord_id})
        self.orders[cl_ord_id] = rec
        return rec

    def expect(self, kind: str, cl_ord_id: str, seq: str | None) -> Request:
        req = Request(kind=kind, cl_ord_id=cl_ord_id, seq=seq)
        self.pending.append(req)
        return req

    def link(self, new_cl_ord_id: str, rec: OrderRecord) -> None:
        """A cancel's or replace's ClOrdID refers to the same order (reports may carry either)."""
        rec.names.add(new_cl_ord_id)
        self.orders[new_cl_ord_id] = rec

    # -- what we received
    def feed(self, m: dict[int, str]) -> list[Request]:
        """Note one received message; returns the requests it answered."""
        t = m.get(35)
        cl = m.get(11)
        if t == "8" and cl in self.orders:
            rec = self.orders[cl]
            if not status_is_reply(m) or m.get(103) != "5":
                rec.ord_status = m.get(39, rec.ord_status)
            if m.get(150) == "5":  # Replaced: the chain goes on under the new ClOrdID
                rec.cl_ord_id = cl
                if 38 in m:
                    rec.qty = Decimal(m[38])
                if 44 in m:
                    rec.limit = Decimal(m[44])
        answered = []
        for req in self.pending:
            outcome = self._answers(req, m)
            if outcome is not None:
                req.outcome, req.answer = outcome, m
                answered.append(req)
        if answered:
            self.pending = [r for r in self.pending if r.outcome is None]
        return answered

    @staticmethod
    def _answers(req: Request, m: dict[int, str]) -> str | None:
        t = m.get(35)
        if t == "3":
            return "refused" if req.seq is not None and m.get(45) == req.seq else None
        if t == "j":
            mine = m.get(379) == req.cl_ord_id or (req.seq is not None and m.get(45) == req.seq)
            return "refused" if mine else None
        if m.get(11) != req.cl_ord_id:
            return None
        if t == "8":
            status = m.get(39)
            if req.kind == "H":
                if not status_is_reply(m):
                    return None
                return "refused" if m.get(103) == "5" else "ok"
            if status_is_reply(m) or status in PENDING:
                return None
            return "refused" if status == "8" else "ok"
        if t == "9" and req.kind in ("F", "G"):
            return "refused"
        if t == "r" and req.kind == "q":
            return "refused" if m.get(531) == "0" else "ok"
        return None

    def done(self, cl_ord_id: str) -> bool:
        """Whether the order is over: Filled, Canceled, Rejected, Expired or DoneForDay."""
        rec = self.orders.get(cl_ord_id)
        return rec is not None and rec.ord_status in DONE
