"""Operator commands against a running gateway's admin API: status, sessions, orders, risk.

Human-readable tables by default, ``--json`` for scripts. Errors say what went
wrong in one line: the gateway is not running, the token was refused, the
session or order does not exist, or why a request was refused.
"""
from __future__ import annotations

import getpass
import http.client
import json
import sys
import urllib.error
import urllib.request
from urllib.parse import quote, urlencode

import click

from gateway.admin.api import TOKEN_ENV, TOKEN_FILE, admin_token
from gateway.cli.common import CONFIG_OPTION as CONFIG
from gateway.cli.common import JSON, CommandError, emit, load, progress
from gateway.config import ConfigError, load_config


class AdminClient:
    def __init__(self, config_path: str):
        cfg = load(config_path)
        if not cfg.http.enabled:
            raise click.ClickException(f"{config_path}: [http] is disabled, so the gateway has no admin API")
        self.base = f"http://{cfg.http.host}:{cfg.http.port}"
        self.token = admin_token(cfg.data_dir)
        if self.token is None:
            raise click.ClickException(
                f"no admin token: set {TOKEN_ENV}, or run as a user who can read {cfg.data_dir / TOKEN_FILE} "
                "(the gateway writes it when it starts)")

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 10) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "X-Fixgw-Operator": getpass.getuser(),
            "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read()).get("error", e.reason)
            except ValueError:
                message = e.reason
            raise click.ClickException(message) from None
        except http.client.RemoteDisconnected:  # accepted, then closed unanswered: see the gateway's log
            raise click.ClickException(
                f"the gateway's admin API at {self.base} closed the connection without answering (too many "
                "connections from this address? its log says why: logger=fixgw.http)") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
                # reached, then cut: not "is it running?" (a reset after the request: it may have been acted on)
                raise click.ClickException(
                    f"the connection to the gateway's admin API at {self.base} was cut before it answered "
                    f"({reason.strerror or reason.__class__.__name__}); whether the request was carried out is "
                    "unknown: check with a read command (its log says why: logger=fixgw.http)") from None
            raise click.ClickException(f"cannot reach the gateway's admin API at {self.base}: {reason}; "
                                       "is the gateway running with this configuration?") from None


def table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[("-" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- status
@click.command()
@CONFIG
@JSON
def status(config_path: str, as_json: bool) -> None:
    """Process, uptime, sessions up/down, journal lag, risk state.

    Exit code 0: healthy; 1: UNHEALTHY (the problems are printed; with --json the
    JSON is printed too); 2: could not ask (no configuration or token, the admin API
    not reachable or refusing), so a probe can tell "unhealthy" from "unknown".
    """
    try:
        data = AdminClient(config_path).call("GET", "/admin/status")
    except click.ClickException as exc:
        raise CommandError(exc.message) from None

    def session_line(name: str, up: bool, schedules: dict) -> str:
        line = f"\n  {name}: {'up' if up else 'DOWN'}"
        s = schedules.get(name)
        if s:
            line += f"; window {s['schedule']}"
            if s.get("in_session_window") is False:
                line += " (outside it now)"
            if s.get("end_of_day"):
                line += f"; end of day {s['end_of_day']}"
        return line

    def human(d):
        lines = [f"{d['comp_id']}: {'healthy' if d['healthy'] else 'UNHEALTHY'}, pid {d['pid']}, "
                 f"up {d['uptime_seconds']:.0f} s",
                 f"sessions: {d['sessions_up']}/{d['sessions_total']} logged on"
                 + "".join(session_line(n, up, d.get("schedules", {})) for n, up in d["sessions"].items()),
                 f"journal: {d['journal']['commit_lag_seconds']:.3f} s behind (age of the oldest row not yet "
                 f"committed), {d['journal']['queue_depth']} rows queued, "
                 f"{'committing' if d['journal']['healthy'] else 'FAILING'}",
                 f"risk: {'on' if d['risk']['enabled'] else 'off'}, kill switches "
                 f"{', '.join(f'{k}={v}' for k, v in d['risk']['kill_switches'].items()) or 'none'}, "
                 f"disabled sessions {', '.join(d['risk']['disabled_sessions']) or 'none'}"]
        lines += [f"scheduled: {j['job']} at {j['next_run']}" for j in d["scheduled"]]
        lines += [f"problem: {p}" for p in d["problems"]]
        return "\n".join(lines)
    emit(data, as_json, human)
    if not data["healthy"]:
        sys.exit(1)


# ---------------------------------------------------------------------------- sessions
@click.group()
def sessions() -> None:
    """FIX sessions of the running gateway."""


SESSION_COLUMNS = ["name", "role", "fix_version", "logged_on", "next_sender_seqnum", "next_target_seqnum",
                   "messages_in", "messages_out"]


@sessions.command("list")
@CONFIG
@JSON
def sessions_list(config_path: str, as_json: bool) -> None:
    """Every session: state, next sequence numbers, messages in and out."""
    data = AdminClient(config_path).call("GET", "/admin/sessions")
    emit(data, as_json, lambda d: table(d["sessions"], SESSION_COLUMNS))


@sessions.command("show")
@click.argument("session")
@CONFIG
@JSON
def sessions_show(session: str, config_path: str, as_json: bool) -> None:
    """One session in detail."""
    data = AdminClient(config_path).call("GET", f"/admin/sessions/{quote(session, safe='')}")
    emit(data, as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))


# ---------------------------------------------------------------------------- orders
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
    data = AdminClient(config_path).call("GET", "/admin/orders" + (f"?{urlencode(query, doseq=True)}"
                                                                    if query else ""))

    wanted = {p.strip().lower() for s in states for p in s.split(",") if p.strip()}

    def human(d):
        rows = d["orders"]
        if wanted == {"rejected"}:
            columns = REJECTED_COLUMNS
        else:
            columns = ORDER_COLUMNS + (["in_doubt"] if in_doubt else []) \
                + (["refused_by", "reason"] if any(r.get("reason") for r in rows) else [])
        text = table(rows, columns)
        if d.get("rejected_dropped") and not (open_only or in_doubt) and (not wanted or "rejected" in wanted):
            text += (f"\n({d['rejected_dropped']} older refused order(s) no longer kept: the gateway keeps the "
                     f"last {d['rejected_kept']}, [limits] rejected_orders_kept; "
                     "`fixgw journal replay --msg-type 8` has every reject)")
        return text
    emit(data, as_json, human)


@orders.command("show")
@click.argument("order_id")
@click.option("--session", help="ORDER_ID may also be a ClOrdID of this client session")
@CONFIG
@JSON
def orders_show(order_id: str, session, config_path: str, as_json: bool) -> None:
    """One order's current state, or an order refused at intake with its reason (its full message history:
    `fixgw journal replay --order-id`)."""
    from urllib.parse import quote

    path = f"/admin/orders/{quote(order_id, safe='')}" + (f"?{urlencode({'session': session})}" if session else "")
    data = AdminClient(config_path).call("GET", path)
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


@click.command()
@CONFIG
@JSON
def quotes(config_path: str, as_json: bool) -> None:
    """Each venue's top of book per symbol as the router sees it, with the quote's age."""
    data = AdminClient(config_path).call("GET", "/admin/quotes")
    emit(data, as_json, lambda d: table([r | {"fresh": "yes" if r["fresh"] else "STALE"} for r in d["quotes"]],
                                        ["venue", "symbol", "bid", "bid_size", "ask", "ask_size", "age_ms",
                                         "fresh"]) + f"\n(quotes older than {d['max_quote_age_s']} s are not trusted)")


# ---------------------------------------------------------------------------- risk
@click.group()
def risk() -> None:
    """The pre-trade risk chain of the running gateway."""


@risk.command("show")
@CONFIG
@JSON
def risk_show(config_path: str, as_json: bool) -> None:
    """Rules file, kill switches, disabled sessions, open orders counted."""
    data = AdminClient(config_path).call("GET", "/admin/risk")
    emit(data, as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))


@risk.command("reload")
@CONFIG
@JSON
def risk_reload(config_path: str, as_json: bool) -> None:
    """Re-read the rules file; a bad file is refused and the current rules stay."""
    data = AdminClient(config_path).call("POST", "/admin/risk/reload", {})
    emit(data, as_json, lambda d: f"risk rules reloaded from {d['source']}")


SCOPES = click.Choice(["global", "session", "account", "symbol"])


@risk.command("kill")
@click.argument("scope", type=SCOPES)
@click.argument("key", required=False, default="")
@click.option("--reduce-only", is_flag=True, help="let through only orders that reduce a position")
@click.option("--cancel-open", is_flag=True, help="also cancel the open orders it covers, at their venues")
@CONFIG
@JSON
def risk_kill(scope: str, key: str, reduce_only: bool, cancel_open: bool, config_path: str, as_json: bool) -> None:
    """Engage a kill switch: new orders in SCOPE (KEY: the session, account or symbol) are rejected.

    KEY must exist (a client session by name or SessionID, an account, a symbol): an unknown one is refused
    with the known ones listed."""
    data = AdminClient(config_path).call("POST", "/admin/risk/kill", {
        "scope": scope, "key": key, "reduce_only": reduce_only, "cancel_open": cancel_open})
    emit(data, as_json, lambda d: f"kill switch {scope} {key} engaged".replace("  ", " ")
         + (f"; {d.get('canceled', 0)} open order(s) being canceled" if cancel_open else ""))


@risk.command("unkill")
@click.argument("scope", type=SCOPES)
@click.argument("key", required=False, default="")
@CONFIG
@JSON
def risk_unkill(scope: str, key: str, config_path: str, as_json: bool) -> None:
    """Release a kill switch."""
    data = AdminClient(config_path).call("POST", "/admin/risk/unkill", {"scope": scope, "key": key})
    emit(data, as_json, lambda d: f"kill switch {scope} {key} released".replace("  ", " ") if d.get("released")
         else f"no kill switch {scope} {key} was engaged".replace("  ", " "))


@risk.command("what-if")
@click.argument("rules_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--since", help="from this time (ISO 8601, UTC if no zone), inclusive")
@click.option("--until", help="to this time, exclusive")
@click.option("--session", "sessions_", multiple=True, help="only these client sessions (repeatable)")
@click.option("--all", "show_all", is_flag=True, help="list every order, not only those the rules would reject")
@CONFIG
@JSON
def risk_what_if(rules_file: str, since, until, sessions_, show_all: bool, config_path: str, as_json: bool) -> None:
    """Run the journaled orders of a period through RULES_FILE, offline: which would it have rejected, and why?"""
    from pathlib import Path

    from gateway.admin.names import UnknownName, configured_sessions, session_name
    from gateway.journal.replay import Filters, id_range, iter_replay, parse_time
    from gateway.journal.progress import with_progress
    from gateway.admin.whatif import replay
    from risk.rules import RulesError, load_rules

    try:
        cfg = load_config(config_path)
        rules = load_rules(Path(rules_file).read_text(), rules_file)
        filters = Filters(since_us=parse_time(since) if since else None,
                          until_us=parse_time(until) if until else None, msg_types=("D", "8"))
    except (ConfigError, RulesError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    try:  # names as `fixgw sessions list` shows them, or full SessionIDs
        names = {session_name(cfg, n, ("client",)) for n in sessions_} or set(cfg.clients)
    except UnknownName as exc:
        raise click.ClickException(str(exc)) from None
    clients = {sid: n for n, sid in configured_sessions(cfg, ("client",)).items() if n in names}
    rows = iter_replay(cfg.journal.database_url, filters)
    with progress("replaying the journal") as report:
        if report:
            rows = with_progress(rows, *id_range(cfg.journal.database_url), report)
        results = list(replay(rules, rows, clients, cfg.risk.reference_prices))
    rejected = [r for r in results if r.candidate == "reject"]
    if as_json:
        for r in results if show_all else rejected:
            click.echo(json.dumps(r.as_dict()))
        return
    shown = results if show_all else rejected
    click.echo(table([r.as_dict() for r in shown],
                     ["ts", "session", "cl_ord_id", "symbol", "side", "qty", "price", "candidate", "rule", "actual"]))
    newly = sum(1 for r in rejected if r.actual == "accepted")
    click.echo(f"\n{len(results)} orders; the candidate rules would reject {len(rejected)} "
               f"({newly} of them were accepted by the rules in force)")


# ---------------------------------------------------------------------------- controls
def _session_control(action: str, help_text: str):
    @sessions.command(action, help=help_text)
    @click.argument("session")
    @CONFIG
    @JSON
    def command(session: str, config_path: str, as_json: bool) -> None:
        data = AdminClient(config_path).call("POST", f"/admin/sessions/{quote(session, safe='')}/{action}", {})
        extra = "" if data.get("was_logged_on", True) else " (it was not logged on)"
        emit(data, as_json, lambda d: f"{d.get('session', session)}: {action} done{extra}")
    return command


_session_control("logout", "Log SESSION out now; it stays down until `fixgw sessions logon SESSION`.")
_session_control("logon", "Let SESSION log on (or, for a venue, reconnect) again after a logout.")
_session_control("disable", "Log a client SESSION out and refuse its logons until enabled.")
_session_control("enable", "Accept a disabled client SESSION again (also after throttle breaches).")


@sessions.command("reload")
@click.option("--dry-run", is_flag=True, help="only say what would change")
@CONFIG
@JSON
def sessions_reload(dry_run: bool, config_path: str, as_json: bool) -> None:
    """Apply sessions added to, removed from or changed in the gateway's configuration file, without a restart.

    The gateway re-reads the file it was started with. A file that does not load
    or validate is refused and nothing changes. Each session's change is applied
    where quickfix allows it, or refused with the reason (e.g. it needs a
    restart, or the session still has open orders); exit code 1 if any was
    refused or failed.
    """
    data = AdminClient(config_path).call("POST", "/admin/sessions/reload", {"dry_run": dry_run}, timeout=120)

    def human(d):
        head = f"{'would apply (dry run)' if d['dry_run'] else 'reloaded'} {d['config']}: {d['summary']}"
        lines = [head, table(d["changes"], ["session", "role", "action", "detail"]) if d["changes"] else ""]
        lines += [f"not applied: {n}" for n in d["not_applied"]]
        return "\n".join(line for line in lines if line)
    emit(data, as_json, human)
    if any(c["action"] in ("refused", "failed") for c in data["changes"]):
        raise SystemExit(1)


@sessions.command("set-seqnum")
@click.argument("session")
@click.option("--sender", type=click.IntRange(min=1), help="the next MsgSeqNum we will send")
@click.option("--target", type=click.IntRange(min=1), help="the next MsgSeqNum we expect to receive")
@CONFIG
@JSON
def sessions_set_seqnum(session: str, sender, target, config_path: str, as_json: bool) -> None:
    """Set a logged-out SESSION's next sequence numbers (agree them with the counterparty first)."""
    if sender is None and target is None:
        raise click.UsageError("give --sender N, --target N or both")
    data = AdminClient(config_path).call("POST", f"/admin/sessions/{quote(session, safe='')}/set-seqnum",
                                         {"sender": sender, "target": target})
    emit(data, as_json, lambda d: f"{d.get('session', session)}: next sender seqnum {d['next_sender_seqnum']}, "
                                  f"next target seqnum {d['next_target_seqnum']}")


@sessions.command("reset")
@click.argument("session")
@CONFIG
@JSON
def sessions_reset(session: str, config_path: str, as_json: bool) -> None:
    """Reset a logged-out SESSION's sequence numbers to 1 and drop its stored messages."""
    data = AdminClient(config_path).call("POST", f"/admin/sessions/{quote(session, safe='')}/reset", {})
    emit(data, as_json, lambda d: f"{d.get('session', session)}: reset; next sender seqnum "
                                  f"{d['next_sender_seqnum']}, next target seqnum {d['next_target_seqnum']}")


@orders.command("cancel")
@click.argument("order_id")
@CONFIG
@JSON
def orders_cancel(order_id: str, config_path: str, as_json: bool) -> None:
    """Cancel one order at its venue; the client is told when the venue confirms."""
    data = AdminClient(config_path).call("POST", f"/admin/orders/{order_id}/cancel", {})
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
    data = AdminClient(config_path).call("POST", path, {"wait_s": wait_s}, timeout=wait_s + 10)

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
        return "\n".join(lines)
    emit(data, as_json, human)
    if data["in_doubt"] or data["unanswered"] or data["skipped"]:
        sys.exit(1)


@orders.command("close")
@click.argument("order_id")
@click.option("--reason", required=True, help="why (journaled, and in the client's ExecutionReport Text)")
@CONFIG
@JSON
def orders_close(order_id: str, reason: str, config_path: str, as_json: bool) -> None:
    """Force ORDER_ID to Canceled and tell the client with an unsolicited ExecutionReport: for an order in
    doubt that has been settled with the venue by other means. A child still open at a connected venue is
    sent a cancel first. Journaled as an operator action."""
    data = AdminClient(config_path).call("POST", f"/admin/orders/{order_id}/close", {"reason": reason})
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
    data = AdminClient(config_path).call("POST", "/admin/orders/cancel-all",
                                         {"session": session, "account": account, "symbol": symbol})
    emit(data, as_json, lambda d: f"{d.get('canceled', 0)} open order(s) being canceled at their venues")
