"""What-if: run journaled orders through a candidate risk rule set, offline.

The journal holds every NewOrderSingle a client sent and every ExecutionReport
the gateway sent back, so replaying them rebuilds the risk state as it evolved:
orders are checked by the candidate rules at their original times, fills,
replaces and completions come from the reports. An order the candidate rules
reject is not booked, so its real fills are then ignored; everything else follows
what actually happened. The result says, order by order, what the candidate
rules would have done and what actually happened.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Iterable, Iterator

from risk.engine import RiskEngine
from risk.rules import RulesFile
from risk.state import RiskState
from orders.commands import NewOrder
from orders.model import OrdType, Side
from sessions.codec import decode, tagvalue

FINAL_STATUSES = frozenset("2348C")  # filled, done for day, canceled, rejected, expired


@dataclass(frozen=True)
class WhatIf:
    ts: datetime
    session: str
    cl_ord_id: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal | None
    candidate: str  # "accept" or "reject"
    rule: str | None  # the candidate rule that would have rejected it
    reason: str | None
    shadow: tuple[str, ...]  # candidate shadow rules that would have fired
    actual: str = "unknown"  # "accepted" / "rejected: <text>", from the gateway's first report

    def as_dict(self) -> dict:
        return {"ts": self.ts.isoformat(), "session": self.session, "cl_ord_id": self.cl_ord_id,
                "symbol": self.symbol, "side": self.side, "qty": str(self.qty),
                "price": None if self.price is None else str(self.price), "candidate": self.candidate,
                "rule": self.rule, "reason": self.reason, "shadow": list(self.shadow), "actual": self.actual}


def replay(rules: RulesFile, rows: Iterable, clients: dict[str, str],
           reference_prices: dict[str, Decimal] | None = None) -> Iterator[WhatIf]:
    """``rows``: journal rows (ts_us, session_id, direction, msg_type, raw) in id order;
    ``clients``: journal session id -> client session name. Yields one result per NewOrderSingle."""
    engine = RiskEngine(rules)
    state = RiskState()
    for symbol, px in (reference_prices or {}).items():
        state.set_reference_price(symbol, px)
    pending: dict[tuple[str, str], WhatIf] = {}  # waiting for the gateway's first report
    booked: set[tuple[str, str]] = set()
    for row in rows:
        name = clients.get(row.session_id)
        if name is None or row.msg_type not in ("D", "8"):
            continue
        f = tagvalue.parse_fields(row.raw)
        now = datetime.fromtimestamp(row.ts_us / 1e6, tz=timezone.utc)
        if row.direction == "I" and row.msg_type == "D":
            try:
                order = decode.decode_new_order(f, name)
            except Exception:  # noqa: BLE001 - the gateway session-rejected it: no order to judge
                continue
            decision = engine.check(order, state, now)
            result = WhatIf(
                ts=now, session=name, cl_ord_id=order.cl_ord_id, symbol=order.symbol, side=order.side.name.lower(),
                qty=order.qty, price=order.price, candidate="accept" if decision.accepted else "reject",
                rule=decision.reject.rule if decision.reject else None,
                reason=decision.reject.text if decision.reject else None,
                shadow=tuple(r.rule for r in decision.shadow_rejects))
            if decision.accepted:
                engine.on_accepted(order, state, now)
                booked.add((name, order.cl_ord_id))
            pending[(name, order.cl_ord_id)] = result
        elif row.direction == "O" and row.msg_type == "8":
            _apply_report(f, name, state, booked, pending)
            key = (name, f.get(11, ""))
            if key in pending and f.get(39) != "A":  # PendingNew says nothing yet
                first = pending.pop(key)
                actual = "rejected: " + f.get(58, "") if f.get(39) == "8" else "accepted"
                yield WhatIf(**{**first.__dict__, "actual": actual})
    for result in pending.values():  # no report journaled (e.g. the period ends first)
        yield result


def _apply_report(f: dict, session: str, state: RiskState, booked: set, pending: dict) -> None:
    cl = f.get(11, "")
    exec_type = f.get(150)
    if exec_type in ("1", "2", "F") and f.get(32):
        qty, px = Decimal(f[32]), Decimal(f[31])
        state.set_last_trade(f.get(55, ""), px)
        if (session, cl) in booked:
            state.on_fill(session, cl, qty, px)
    elif exec_type == "5" and (session, f.get(41, "")) in booked:
        new = NewOrder(session=session, cl_ord_id=cl, symbol=f.get(55, ""), side=Side(f[54]), qty=Decimal(f[38]),
                       ord_type=OrdType(f[40]), price=Decimal(f[44]) if 44 in f else None)
        state.on_replace(session, f[41], new)
        booked.discard((session, f[41]))
        booked.add((session, cl))
    if f.get(39) in FINAL_STATUSES and (session, cl) in booked:
        state.on_done(session, cl)
        booked.discard((session, cl))
