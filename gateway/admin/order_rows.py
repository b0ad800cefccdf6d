"""Orders as the admin API shows them: a book order's or an intake refusal's row, its children and routing
decisions, and the part of it reconciliation can change."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from orders.model import OrdStatus
from orders.states import Event
from sessions.codec.encode import ord_rej_reason
from sessions.codec.tagvalue import fmt

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


def _time(dt: datetime | None) -> str | None:
    """A time as operators read it: ISO 8601, UTC, milliseconds."""
    if dt is None:
        return None
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def epoch_us(dt: datetime) -> int:
    return (dt - EPOCH) // _US


def order_row(o) -> dict:
    row = {
        "order_id": o.order_id, "session": o.session, "cl_ord_id": o.cl_ord_id, "account": o.account,
        "symbol": o.symbol, "side": o.side.name.lower(), "qty": str(o.qty), "price": str(o.price) if o.price else None,
        "ord_type": o.ord_type.name.lower(), "tif": o.tif.name.lower(), "status": o.status.name.lower(),
        "cum_qty": str(o.cum_qty), "leaves_qty": str(o.leaves_qty), "avg_px": fmt(o.avg_px),
        "venue": ",".join(o.venues) or None, "venue_cl_ord_id": o.venue_cl_ord_id,
        "venue_order_id": o.venue_order_id, "strategy": o.strategy, "in_doubt": o.in_doubt,
        "time": _time(o.accepted_at),
    }
    released = o.released
    if o.status is OrdStatus.REJECTED and released is not None and released[0] is Event.VENUE_REJECT:
        # every child was rejected at its venue: the Text the client got (desk.core, ``_finish``)
        row |= {"refused_by": f"venue {released[1]}",
                "reason": f"rejected by {released[1]}: {released[2] or 'no reason given'}"}
    return row


def rejected_row(r, fix_version: str | None) -> dict:
    """An order refused at intake (``orders.model.RejectedOrder``), with the fields of a book order's row."""
    return {
        "order_id": r.order_id, "session": r.session, "cl_ord_id": r.cl_ord_id, "account": r.account,
        "symbol": r.symbol, "side": r.side.name.lower(), "qty": str(r.qty), "price": str(r.price) if r.price else None,
        "ord_type": r.ord_type.name.lower(), "tif": r.tif.name.lower(), "status": "rejected",
        "cum_qty": "0", "leaves_qty": "0", "avg_px": "0", "venue": None, "venue_cl_ord_id": None,
        "venue_order_id": None, "strategy": None, "in_doubt": None, "time": _time(r.received_at),
        "refused_by": r.refused_by, "reject_code": r.reject_code.value,
        "ord_rej_reason": ord_rej_reason(fix_version, r.reject_code) if fix_version else None,
        "reason": r.text, "refused_at_intake": True,
    }


def px(v) -> str | None:
    return None if v is None else fmt(v)


def route_row(d) -> dict:
    """A RouteDecision as JSON: what the router saw, what it chose and why."""
    return {
        "at": d.at.isoformat(timespec="milliseconds"), "reason": d.reason, "strategy": d.strategy,
        "side": d.side.name.lower(), "qty": fmt(d.qty), "limit": px(d.limit),
        "split": [{"venue": v, "qty": fmt(q), "child": child} for v, q, child in d.split],
        "unrouted": fmt(d.unrouted), "note": d.note,
        "quotes": [{"venue": q.venue, "up": q.up, "trades": q.trades, "bid": px(q.bid), "bid_size": fmt(q.bid_size),
                    "ask": px(q.ask), "ask_size": fmt(q.ask_size), "age_ms": q.age_ms, "trusted": q.trusted,
                    "take_fee": fmt(q.take_fee), "make_fee": fmt(q.make_fee), "priority": q.priority}
                   for q in d.quotes],
    }


def child_row(c) -> dict:
    return {"venue": c.venue, "child": c.child_id, "cl_ord_id": c.cl_ord_id, "qty": fmt(c.qty),
            "price": px(c.price), "status": c.status.name.lower(), "cum_qty": fmt(c.cum_qty),
            "avg_px": fmt(c.avg_px), "venue_order_id": c.venue_order_id, "awaiting": c.awaiting,
            "status_asks": c.status_asks, "in_doubt": c.in_doubt}


def order_detail(o) -> dict:
    """One order for `fixgw orders show`: its row, its children, and every routing decision taken for it."""
    return order_row(o) | {"children": [child_row(c) for c in o.children],
                           "routes": [route_row(d) for d in o.routes]}


def brief(d: dict | None) -> dict | None:
    """What reconciliation can change in an order, for before/after."""
    if d is None:
        return None
    return {"status": d["status"], "cum_qty": d["cum_qty"], "avg_px": d["avg_px"], "in_doubt": d["in_doubt"],
            "children": [{k: c[k] for k in ("venue", "child", "status", "cum_qty", "in_doubt")}
                         for c in d["children"]]}
