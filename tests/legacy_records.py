"""State log records as the gateway wrote them before they were packed (layout 1, gateway/state/records.py):
pickled, orders, open orders, routing decisions and refusals as their plain forms. The gateway still reads such
logs (``load_record``); the tests write them with this, to show it does."""
from __future__ import annotations

import io
import pickle
import time

from orders.records import (
    RejectedOrder, RouteDecision, rejected_from_state_log, rejected_state_log_form, route_from_state_log,
    route_state_log_form,
)
from orders.states import Order, order_from_state_log, order_state_log_form
from risk.state import OpenOrder, open_order_from_state_log, open_order_state_log_form


def _slim_order(order: Order):
    """An order in a record: plain values, without its routing decisions, which each record carries once
    (``routes``)."""
    return order_from_state_log, (order_state_log_form(order),)


class RecordPickler:
    """Pickled records: orders slimmed, and orders, open orders and routing decisions as plain values
    (``orders.model.PlainForm``); one pickler reused (cleared per record)."""

    def __init__(self):
        self._buf = io.BytesIO()
        self._pickler = pickle.Pickler(self._buf, protocol=5)
        self._pickler.dispatch_table = {
            Order: _slim_order,
            RouteDecision: lambda d: (route_from_state_log, (route_state_log_form(d),)),
            OpenOrder: lambda o: (open_order_from_state_log, (open_order_state_log_form(o),)),
            RejectedOrder: lambda r: (rejected_from_state_log, (rejected_state_log_form(r),)),
        }

    def dumps(self, obj) -> bytes:
        buf = self._buf
        buf.seek(0)
        buf.truncate()
        self._pickler.clear_memo()
        self._pickler.dump(obj)
        return buf.getvalue()

    def record(self, origin: str | None, seq: int, orders: list, sends: list, controls: tuple | None,
               routes: list, trades: dict | None, risk_day: tuple | None = None, rejected=()) -> bytes:
        """A record's body as earlier versions wrote it (``RecordEncoder.record``'s arguments)."""
        return self.dumps((time.time(), origin, seq, orders, sends, controls, routes, trades, risk_day,
                           list(rejected) if rejected else None))
