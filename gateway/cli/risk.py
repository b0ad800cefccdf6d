"""`fixgw risk`: the running gateway's pre-trade risk chain shown, its rules reloaded, kill switches engaged
and released; and `risk what-if`, candidate rules run offline over the journaled orders of a period."""
from __future__ import annotations

import json

import click

from gateway.cli.admin import AdminClient, by_shard, every_shard, table
from gateway.cli.shards import ANYWHERE, Route
from gateway.cli.common import CONFIG_OPTION as CONFIG
from gateway.cli.common import JSON, emit, progress
from gateway.config import ConfigError, load_config


@click.group()
def risk() -> None:
    """The pre-trade risk chain of the running gateway."""


@risk.command("show")
@CONFIG
@JSON
def risk_show(config_path: str, as_json: bool) -> None:
    """Rules file, kill switches, disabled sessions, open orders counted (in a sharded cluster: each shard's;
    exit 1 if a shard did not answer)."""
    def human(d):
        return "\n".join(f"{k}: {v}" for k, v in d.items())
    every = every_shard(config_path, "GET", "/admin/risk")
    if every is None:
        emit(AdminClient(config_path).call("GET", "/admin/risk"), as_json, human)
        return
    emit(every, as_json, lambda d: by_shard(d, human))
    if every["errors"] or every["unled"]:
        raise SystemExit(1)


@risk.command("reload")
@CONFIG
@JSON
def risk_reload(config_path: str, as_json: bool) -> None:
    """Re-read the rules file; a bad file is refused and the current rules stay."""
    data = AdminClient(config_path, ANYWHERE).call("POST", "/admin/risk/reload", {})  # (every shard reloads)
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
    route = Route(session=key) if scope == "session" else ANYWHERE  # (but a session's: every shard engages it)
    data = AdminClient(config_path, route).call("POST", "/admin/risk/kill", {
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
    data = AdminClient(config_path, Route(session=key) if scope == "session" else ANYWHERE).call(
        "POST", "/admin/risk/unkill", {"scope": scope, "key": key})
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
