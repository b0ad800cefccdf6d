"""The reports the simulated venue sends, as domain objects: execution reports with the venue's ExecIDs, and
order cancel rejects. Each one's ``session`` is the owner of the order it is about; ``sessions.codec.encode``
writes them per FIX version."""
from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Union

from orders.actions import ClientCancelReject, ClientExecReport
from orders.model import CxlRejCode, CxlRejResponseTo, ExecKind, OrdStatus, RejectCode
from venuesim.order_state import ZERO, SimOrder

Report = Union[ClientExecReport, ClientCancelReject]


class Reporter:
    """Writes the venue's reports: ExecIDs ``{id_prefix}-E{n}``, LastMkt (30) ``last_mkt`` on every fill."""

    def __init__(self, id_prefix: str, last_mkt: str | None):
        self.id_prefix = id_prefix
        self.last_mkt = last_mkt
        self._exec_seq = itertools.count(1)

    def next_exec_id(self) -> str:
        """A fresh ExecID, also for a report about no order (an empty mass status answer)."""
        return f"{self.id_prefix}-E{next(self._exec_seq)}"

    def exec_report(self, order: SimOrder, kind: ExecKind, *, last_qty: Decimal = ZERO, last_px: Decimal = ZERO,
                    orig_cl_ord_id: str | None = None, reject_code: RejectCode | None = None,
                    text: str | None = None, recv_ns: int = 0) -> ClientExecReport:
        """An execution report of ``order`` as it is now, to its owner."""
        return ClientExecReport(
            session=order.owner, order_id=order.order_id, cl_ord_id=order.cl_ord_id, orig_cl_ord_id=orig_cl_ord_id,
            exec_id=f"{self.id_prefix}-E{next(self._exec_seq)}", kind=kind, ord_status=order.status,
            symbol=order.symbol, side=order.side, order_qty=order.qty, ord_type=order.ord_type, price=order.price,
            tif=order.tif, account=order.account, last_qty=last_qty, last_px=last_px, cum_qty=order.cum_qty,
            leaves_qty=order.leaves_qty, avg_px=order.avg_px,
            last_mkt=self.last_mkt if kind is ExecKind.TRADE else None,
            reject_code=reject_code, text=text, recv_ns=recv_ns)

    @staticmethod
    def cancel_reject(owner: str, cl_ord_id: str, orig: str, order: SimOrder | None, response_to: CxlRejResponseTo,
                      reason: CxlRejCode, text: str) -> ClientCancelReject:
        """An OrderCancelReject to ``owner`` (``order`` None: an order the venue does not know)."""
        return ClientCancelReject(
            session=owner, cl_ord_id=cl_ord_id, orig_cl_ord_id=orig,
            order_id=order.order_id if order is not None else "NONE",
            ord_status=order.status if order is not None else OrdStatus.REJECTED,
            response_to=response_to, reason=reason, text=text,
            account=order.account if order is not None else None)
