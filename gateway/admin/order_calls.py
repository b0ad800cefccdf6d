"""The admin API's order calls: `fixgw orders list|show|cancel|cancel-all|close|reconcile`, each read or change
run on the engine's core thread."""
from __future__ import annotations

import time
from datetime import datetime

from gateway.admin.names import Names
from gateway.admin.order_rows import EPOCH, brief, epoch_us, order_detail, order_row, rejected_row
from gateway.admin.request import AdminError, cluster_request, engine_request, only, opt_str
from orders.commands import OperatorCancel, OperatorClose, OperatorReconcile
from orders.model import OrdStatus

ORDER_STATES = tuple(s.name.lower() for s in OrdStatus)  # what `orders list --state` takes


def _states(values: list[str]) -> set[OrdStatus] | None:
    """``state`` filters (repeated, or comma-separated) as OrdStatus; None: any."""
    wanted = set()
    for value in values:
        for part in value.split(","):
            name = part.strip().lower().replace("-", "_")
            if not name:
                continue
            if name not in ORDER_STATES:
                raise AdminError(400, f"unknown order state {part.strip()!r} (valid: {', '.join(ORDER_STATES)})")
            wanted.add(OrdStatus[name.upper()])
    if values and not wanted:
        raise AdminError(400, f"state is empty (valid: {', '.join(ORDER_STATES)})")
    return wanted or None


def _time_filter(query: dict, key: str) -> int | None:
    """``since`` / ``until``: ISO 8601, parsed as `fixgw journal replay --since` parses it; microseconds."""
    from gateway.journal.replay import parse_time

    if key not in query:
        return None
    try:
        return parse_time(query[key][-1])
    except ValueError as exc:
        raise AdminError(400, f"{key}: {exc}") from None


class OrderCalls:
    """Lists, shows, cancels, closes and reconciles the gateway's orders for the admin API."""

    ORDER_FILTERS = ("session", "account", "symbol", "state", "since", "until", "open", "in_doubt")

    def __init__(self, gateway, known: Names):
        self._gw = gateway
        self._known = known

    def cancel_all(self, payload: dict, operator: str) -> dict:
        payload = only(payload, "session", "account", "symbol")
        controls = self._gw.controls
        if controls is not None and opt_str(payload, "session") is None:  # a sharded cluster: every shard cancels
            body = {k: opt_str(payload, k) for k in ("account", "symbol")}
            if body["symbol"] is not None:  # (every shard trades the file's symbols; an account may be another's)
                self._known.check("symbol", body["symbol"])
            return cluster_request(controls, "cancel", body, operator)
        filters = self._filters(payload)
        return engine_request(self._gw, OperatorCancel(**filters, operator=operator))

    def cancel(self, order_id: str, payload: dict, operator: str) -> dict:
        only(payload)
        return engine_request(self._gw, OperatorCancel(order_id=order_id, operator=operator))

    def close(self, order_id: str, payload: dict, operator: str) -> dict:
        reason = only(payload, "reason").get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise AdminError(400, "closing an order needs a reason (a non-empty string)")
        return engine_request(self._gw, OperatorClose(order_id=order_id, reason=reason.strip()[:500],
                                                      operator=operator))

    def list_orders(self, query: dict) -> dict:
        """`fixgw orders list`: the book and the orders refused at intake, filtered, oldest first."""
        unknown = sorted(set(query) - set(self.ORDER_FILTERS))
        if unknown:
            raise AdminError(400, f"unknown query parameter(s) {', '.join(unknown)} "
                                  f"(it takes {', '.join(self.ORDER_FILTERS)})")
        states = _states(query.get("state", []))
        since, until = _time_filter(query, "since"), _time_filter(query, "until")
        given = {k: query[k][-1] for k in ("session", "account", "symbol") if k in query}
        seen = None
        if given:  # names that only refused orders carry (an unknown symbol, say) are names too
            seen = self._gw.engine.call(lambda core: {k: {getattr(r, k) for r in core.rejected.values()} - {None}
                                                      for k in given})
        names = {k: v for k, v in self._filters(given, also=seen).items() if v is not None}
        open_only = query.get("open", ["0"])[-1] in ("1", "true", "yes")
        in_doubt = query.get("in_doubt", ["0"])[-1] in ("1", "true", "yes")
        versions = {name: c.fix_version for name, c in self._gw.cfg.clients.items()}

        def wanted(o, at: datetime | None) -> bool:
            if states is not None and o.status not in states:
                return False
            if any(getattr(o, k) != v for k, v in names.items()):
                return False
            if since is not None or until is not None:
                if at is None:
                    return False
                t = epoch_us(at)
                return (since is None or t >= since) and (until is None or t < until)
            return True

        def rows(core):
            book = core.in_doubt_orders() if in_doubt else core.orders.values()
            found = [order_row(o) for o in book if (not open_only or o.is_open) and wanted(o, o.accepted_at)]
            if not (open_only or in_doubt):  # refused orders are never open nor in doubt
                found += [rejected_row(r, versions.get(r.session)) for r in core.rejected.values()
                          if wanted(r, r.received_at)]
            found.sort(key=lambda row: row["time"] or "")
            return {"orders": found, "rejected_kept": core.rejected_kept, "rejected_dropped": core.rejected_dropped}
        return self._gw.engine.call(rows)

    def show(self, ident: str, query: dict) -> dict:
        """`fixgw orders show ID`: a book order or an order refused at intake by OrderID; with ``session``
        also by ClOrdID (the latest order with it; the others are listed under ``also``)."""
        unknown = sorted(set(query) - {"session"})
        if unknown:
            raise AdminError(400, f"unknown query parameter(s) {', '.join(unknown)} (it takes session)")
        session = query["session"][-1] if "session" in query else None
        versions = {name: c.fix_version for name, c in self._gw.cfg.clients.items()}

        def find(core):
            found = []
            o, r = core.orders.get(ident), core.rejected.get(ident)
            if o is not None and session in (None, o.session):
                found.append((o.accepted_at, order_detail(o)))
            elif r is not None and session in (None, r.session):
                found.append((r.received_at, rejected_row(r, versions.get(r.session)) | {"children": [],
                                                                                           "routes": []}))
            elif session is not None:
                o = core.order_for_client(session, ident)
                if o is not None:
                    found.append((o.accepted_at, order_detail(o)))
                found += [(r.received_at, rejected_row(r, versions.get(r.session)) | {"children": [], "routes": []})
                          for r in core.rejected.values() if r.session == session and r.cl_ord_id == ident]
            return [d for _, d in sorted(found, key=lambda f: f[0] or EPOCH, reverse=True)]
        found = self._gw.engine.call(find)
        if not found:
            raise AdminError(404, f"unknown order {ident}" if session is None else
                             f"no order with OrderID or ClOrdID {ident} in session {session}")
        latest = found[0]
        if len(found) > 1:
            latest["also"] = [{k: d[k] for k in ("order_id", "status", "time", "reason") if k in d} for d in found[1:]]
        return latest

    def reconcile(self, order_id: str | None, payload: dict, operator: str) -> dict:
        """Ask the venues for the state of one order's children (or every open order's), wait for the answers
        (``wait_s``, default 5, at most 60), and show what changed."""
        wait_s = only(payload, "wait_s").get("wait_s", 5)
        if isinstance(wait_s, bool) or not isinstance(wait_s, (int, float)) or not 0 <= wait_s <= 60:
            raise AdminError(400, f"wait_s must be a number of seconds from 0 to 60, got {wait_s!r}")
        engine = self._gw.engine

        def snapshot(core, ids):
            return {i: order_detail(core.orders[i]) for i in ids if i in core.orders}

        ids = [order_id] if order_id is not None else engine.call(
            lambda core: [o.order_id for o in core.orders.values() if o.is_open or o.in_doubt])
        before = engine.call(lambda core: snapshot(core, ids))
        result = engine_request(self._gw, OperatorReconcile(order_id=order_id, operator=operator))
        asked = {(a["order_id"], a["child"]) for a in result["asked"]}

        def unanswered(core):
            left = []
            for oid, child_id in asked:
                order = core.orders.get(oid)
                child = next((c for c in order.children if c.child_id == child_id), None) if order else None
                if child is not None and child.status_asks and not child.in_doubt:
                    left.append({"order_id": oid, "child": child_id, "venue": child.venue})
            return left

        deadline = time.monotonic() + float(wait_s)
        left = engine.call(unanswered)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = engine.call(unanswered)
        after = engine.call(lambda core: snapshot(core, ids))
        changed = []
        for oid, now in after.items():
            was = before.get(oid)
            if was != now:
                changed.append({"order_id": oid, "before": brief(was), "after": brief(now)})
        return {"ok": True, "asked": result["asked"], "skipped": result["skipped"], "unanswered": left,
                "changed": changed,
                "in_doubt": [{"order_id": oid, "in_doubt": d["in_doubt"]} for oid, d in after.items() if d["in_doubt"]]}

    def _filters(self, given: dict, also: dict[str, set] | None = None) -> dict:
        """session / account / symbol filters (orders list, cancel-all): strings naming what exists, or None.
        A session may be given by its full SessionID; ``also``: more known names per kind."""
        filters = {key: opt_str(given, key) for key in ("session", "account", "symbol")}
        if filters["session"] is not None:
            filters["session"] = self._known.session_name(filters["session"])
        for kind, name in filters.items():
            if name is not None:
                self._known.check(kind, name, also=(also or {}).get(kind, ()))
        return filters
