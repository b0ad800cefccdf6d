"""`fixgw orders`: the running gateway's orders listed and shown (with their routing decisions), canceled,
reconciled with the venues and closed by hand."""
from __future__ import annotations

import sys
from urllib.parse import quote, urlencode

import click

from gateway.cli.admin import AdminClient, each_shard, every_shard, table
from gateway.cli.shards import ANYWHERE, Route
from gateway.cli.common import CONFIG_OPTION as CONFIG
from gateway.cli.common import JSON, emit


@click.group()
def orders() -> None:
    """Orders the running gateway holds."""


ORDER_COLUMNS = ["time", "order_id", "session", "cl_ord_id", "account", "symbol", "side", "qty", "price", "status",
                 "cum_qty", "avg_px", "venue"]
# `orders list --state rejected`: what was refused, by whom, and the Text the client got
REJECTED_COLUMNS = ["time", "order_id", "session", "cl_ord_id", "account", "symbol", "side", "qty", "price",
                    "ord_type", "refused_by", "reason"]


@orders.command("list")
@click.option("--session")
@click.option("--account")
@click.option("--symbol")
@click.option("--state", "states", multiple=True,
              help="only orders in this state: new, partially_filled, filled, canceled, rejected, ... "
                   "(repeatable, or comma-separated)")
@click.option("--since", help="received at or after this time (ISO 8601, UTC if no zone), inclusive")
@click.option("--until", help="received before this time, exclusive")
@click.option("--open", "open_only", is_flag=True, help="only orders not yet in a final state")
@click.option("--in-doubt", "in_doubt", is_flag=True,
              help="only orders whose state at a venue the gateway does not know (see `fixgw orders reconcile`)")
@CONFIG
@JSON
def orders_list(session, account, symbol, states, since, until, open_only, in_doubt, config_path: str,
                as_json: bool) -> None:
    """Orders, oldest first, with those refused at intake (status rejected, with the reason), filtered by
    session, account, symbol, state, time received, open, in doubt."""
    from gateway.journal.replay import parse_time

    for flag, value in (("--since", since), ("--until", until)):
        if value is not None:
            try:
                parse_time(value)  # as `fixgw journal replay` reads it; the gateway parses it the same way
            except ValueError as exc:
                raise click.ClickException(f"{flag}: {exc}") from None
    query = {k: v for k, v in (("session", session), ("account", account), ("symbol", symbol), ("since", since),
                               ("until", until)) if v}
    if states:
        query["state"] = list(states)
    if open_only:
        query["open"] = "1"
    if in_doubt:
        query["in_doubt"] = "1"
    data = merged_orders(config_path, "/admin/orders" + (f"?{urlencode(query, doseq=True)}" if query else ""))

    wanted = {p.strip().lower() for s in states for p in s.split(",") if p.strip()}

    def human(d):
        rows = d["orders"]
        if wanted == {"rejected"}:
            columns = REJECTED_COLUMNS
        else:
            columns = ORDER_COLUMNS + (["in_doubt"] if in_doubt else []) \
                + (["refused_by", "reason"] if any(r.get("reason") for r in rows) else [])
        text = table(rows, (["shard"] if "shards" in d else []) + columns)
        if d.get("rejected_dropped") and not (open_only or in_doubt) and (not wanted or "rejected" in wanted):
            text += (f"\n({d['rejected_dropped']} older refused order(s) no longer kept: the gateway keeps the "
                     f"last {d['rejected_kept']}, [limits] rejected_orders_kept; "
                     "`fixgw journal replay --msg-type 8` has every reject)")
        return text
    emit(data, as_json, human)


def merged_orders(config_path: str, path: str) -> dict:
    """`orders list` of one gateway; of a sharded cluster, every shard's, merged oldest first, each row with its
    shard (shards without a leader are named in ``unled`` and on stderr)."""
    asked, unled = each_shard(config_path)
    if len(asked) == 1 and not asked[0][0]:
        return asked[0][1].call("GET", path)
    out: dict = {"orders": [], "rejected_dropped": 0, "shards": {}, "unled": unled}
    for shard, client in asked:
        part = client.call("GET", path)
        out["orders"] += [row | {"shard": shard} for row in part["orders"]]
        out["rejected_dropped"] += part.get("rejected_dropped", 0)
        out["rejected_kept"] = part.get("rejected_kept")
        out["shards"][shard] = len(part["orders"])
    out["orders"].sort(key=lambda r: r.get("time") or "")
    for shard in unled:
        click.echo(f"shard {shard}: no instance leads it; its orders are not listed", err=True)
    return out


@orders.command("show")
@click.argument("order_id")
@click.option("--session", help="ORDER_ID may also be a ClOrdID of this client session")
@CONFIG
@JSON
def orders_show(order_id: str, session, config_path: str, as_json: bool) -> None:
    """One order's current state, or an order refused at intake with its reason (its full message history:
    `fixgw journal replay --order-id`)."""

    path = f"/admin/orders/{quote(order_id, safe='')}" + (f"?{urlencode({'session': session})}" if session else "")
    data = AdminClient(config_path, Route(session=session) if session else Route(order_id=order_id)).call("GET", path)
    emit(data, as_json, show_order)


def show_order(d: dict) -> str:
    """An order's fields, then its routing decisions: inputs (quotes with their age, fees), split, why."""
    lines = [f"{k}: {v}" for k, v in d.items() if k not in ("routes", "children", "also")]
    for other in d.get("also", []):
        lines.append(f"also with this ClOrdID: {other['order_id']} {other['status']} at {other['time']}"
                     + (f": {other['reason']}" if other.get("reason") else ""))
    if d.get("children"):
        lines.append("children:")
        lines += ["  " + line for line in table(d["children"], CHILD_COLUMNS).splitlines()]
    for r in d.get("routes", []):
        split = ", ".join(f"{s['venue']} {s['qty']} ({s['child']})" for s in r["split"]) or "nowhere"
        lines.append(f"routing {r['at']} {r['reason']}: {r['strategy']} {r['side']} {r['qty']} "
                     f"limit {r['limit'] or 'market'} -> {split}"
                     + (f", {r['unrouted']} not routed" if r["unrouted"] != "0" else ""))
        lines.append(f"  why: {r['note']}")
        rows = [{"venue": q["venue"], "state": ("up" if q["up"] else "down") + ("" if q["trades"] else ", no symbol"),
                 "bid": f"{q['bid']} x {q['bid_size']}" if q["bid"] else None,
                 "ask": f"{q['ask']} x {q['ask_size']}" if q["ask"] else None,
                 "age_ms": q["age_ms"], "trusted": "yes" if q["trusted"] else "no",
                 "take_fee": q["take_fee"], "make_fee": q["make_fee"], "priority": q["priority"]}
                for q in r["quotes"]]
        lines += ["  " + line for line in table(rows, QUOTE_COLUMNS).splitlines()]
    return "\n".join(lines)


CHILD_COLUMNS = ["venue", "child", "qty", "price", "status", "cum_qty", "avg_px", "venue_order_id", "awaiting", "in_doubt"]
QUOTE_COLUMNS = ["venue", "state", "bid", "ask", "age_ms", "trusted", "take_fee", "make_fee", "priority"]


@orders.command("cancel")
@click.argument("order_id")
@CONFIG
@JSON
def orders_cancel(order_id: str, config_path: str, as_json: bool) -> None:
    """Cancel one order at its venue; the client is told when the venue confirms."""
    data = AdminClient(config_path, Route(order_id=order_id)).call("POST", f"/admin/orders/{order_id}/cancel", {})
    emit(data, as_json, lambda _: f"cancel of {order_id} sent to its venue")


@orders.command("reconcile")
@click.argument("order_id", required=False)
@click.option("--all", "everything", is_flag=True, help="every open or in-doubt order")
@click.option("--wait", "wait_s", type=click.FloatRange(0, 60), default=5, show_default=True,
              help="seconds to wait for the venues' answers")
@CONFIG
@JSON
def orders_reconcile(order_id, everything: bool, wait_s: float, config_path: str, as_json: bool) -> None:
    """Ask the venues for the state of ORDER_ID's child orders (or --all open orders'), apply what they report,
    and show what changed. Exits 1 if an order is still in doubt or a venue did not answer."""
    if bool(order_id) == everything:
        raise click.UsageError("give an ORDER_ID or --all")
    path = f"/admin/orders/{order_id}/reconcile" if order_id else "/admin/orders/reconcile"
    every = None if order_id else every_shard(config_path, "POST", path, {"wait_s": wait_s}, timeout=wait_s + 10)
    if every is not None:  # a sharded cluster: each shard reconciles its own orders, the answers merged
        data = merged_reconcile(every)
    else:
        data = AdminClient(config_path, Route(order_id=order_id)).call("POST", path, {"wait_s": wait_s},
                                                                        timeout=wait_s + 10)

    def human(d):
        lines = [f"asked {len(d['asked'])} child order(s)"
                 + (f"; {len(d['skipped'])} not asked (venue down)" if d["skipped"] else "")]
        for s in d["skipped"]:
            lines.append(f"  not asked: {s['order_id']} {s['child']}: {s['why']}")
        for c in d["changed"]:
            b, a = c["before"] or {}, c["after"] or {}
            lines.append(f"changed {c['order_id']}: {b.get('status')} {b.get('cum_qty')} -> "
                         f"{a.get('status')} {a.get('cum_qty')}")
        if not d["changed"]:
            lines.append("no differences: the gateway agrees with the venues")
        for u in d["unanswered"]:
            lines.append(f"no answer yet: {u['order_id']} {u['child']} at {u['venue']}")
        for x in d["in_doubt"]:
            lines.append(f"IN DOUBT {x['order_id']}: {x['in_doubt']}")
        for shard, why in sorted(d.get("errors", {}).items()):
            lines.append(f"NOT RECONCILED: shard {shard}: {why}")
        lines += [f"NOT RECONCILED: shard {shard}: no instance leads it" for shard in d.get("unled", ())]
        return "\n".join(lines)
    emit(data, as_json, human)
    if data["in_doubt"] or data["unanswered"] or data["skipped"] or data.get("errors") or data.get("unled"):
        sys.exit(1)


def merged_reconcile(every: dict) -> dict:
    """Every shard's `orders reconcile --all`, as one answer: each list's rows with their shard, and the shards
    that did not answer (``errors``) or have no leader (``unled``)."""
    out: dict = {k: [] for k in ("asked", "skipped", "changed", "unanswered", "in_doubt")}
    for shard, part in sorted(every["shards"].items()):
        for k in out:
            out[k] += [row | {"shard": shard} if isinstance(row, dict) else row for row in part.get(k, [])]
    return out | {"errors": every["errors"], "unled": every["unled"]}


@orders.command("close")
@click.argument("order_id")
@click.option("--reason", required=True, help="why (journaled, and in the client's ExecutionReport Text)")
@CONFIG
@JSON
def orders_close(order_id: str, reason: str, config_path: str, as_json: bool) -> None:
    """Force ORDER_ID to Canceled and tell the client with an unsolicited ExecutionReport: for an order in
    doubt that has been settled with the venue by other means. A child still open at a connected venue is
    sent a cancel first. Journaled as an operator action."""
    data = AdminClient(config_path, Route(order_id=order_id)).call("POST", f"/admin/orders/{order_id}/close",
                                                                    {"reason": reason})
    emit(data, as_json, lambda d: f"{d['order_id']} closed (was {d['was']}"
                                  + (f"; in doubt: {d['in_doubt']}" if d.get("in_doubt") else "") + ")"
                                  + (f"; cancel sent to {', '.join(d['cancel_sent_to'])}" if d["cancel_sent_to"]
                                     else ""))


@orders.command("cancel-all")
@click.option("--session")
@click.option("--account")
@click.option("--symbol")
@click.option("--everything", is_flag=True, help="no filter: every open order of every session")
@CONFIG
@JSON
def orders_cancel_all(session, account, symbol, everything: bool, config_path: str, as_json: bool) -> None:
    """Cancel every open order matching the filters (at least one, or --everything)."""
    if not (session or account or symbol or everything):
        raise click.UsageError("give --session, --account or --symbol, or --everything to cancel every open order")
    route = Route(session=session) if session else ANYWHERE  # (without a session: every shard cancels, asked of any)
    data = AdminClient(config_path, route).call("POST", "/admin/orders/cancel-all",
                                                {"session": session, "account": account, "symbol": symbol})
    emit(data, as_json, lambda d: f"{d.get('canceled', 0)} open order(s) being canceled at their venues")
