"""`fixgw status` and `fixgw quotes`: the running gateway at a glance, and the top of book the router sees."""
from __future__ import annotations

import sys

import click

from gateway.cli.admin import AdminClient, each_shard, table
from gateway.cli.shards import ANYWHERE
from gateway.cli.common import CONFIG_OPTION as CONFIG
from gateway.cli.common import JSON, CommandError, emit


@click.command()
@CONFIG
@JSON
def status(config_path: str, as_json: bool) -> None:
    """Process, uptime, sessions up/down, journal lag, the state log (kind, durable lag), risk state.

    In a sharded cluster, every shard's leader, each under its shard's name (a shard no instance leads is
    unhealthy).

    Exit code 0: healthy; 1: UNHEALTHY (the problems are printed; with --json the
    JSON is printed too); 2: could not ask (no configuration or token, the admin API
    not reachable or refusing), so a probe can tell "unhealthy" from "unknown".
    """
    try:
        asked, unled = each_shard(config_path)
        if len(asked) == 1 and not asked[0][0]:
            data = asked[0][1].call("GET", "/admin/status")
        else:  # a sharded cluster: every shard's leader, each healthy or not; a shard with none is unhealthy
            shards = {shard: client.call("GET", "/admin/status") for shard, client in asked}
            data = {"shards": shards, "unled": unled,
                    "healthy": not unled and all(d["healthy"] for d in shards.values())}
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
                 *state_log_line(d.get("state_log")),
                 f"risk: {'on' if d['risk']['enabled'] else 'off'}, kill switches "
                 f"{', '.join(f'{k}={v}' for k, v in d['risk']['kill_switches'].items()) or 'none'}, "
                 f"disabled sessions {', '.join(d['risk']['disabled_sessions']) or 'none'}"]
        lines += [f"scheduled: {j['job']} at {j['next_run']}" for j in d["scheduled"]]
        lines += [f"problem: {p}" for p in d["problems"]]
        return "\n".join(lines)

    def sharded(d):
        parts = [f"shard {shard}:\n" + "\n".join("  " + line for line in human(part).splitlines())
                 for shard, part in d["shards"].items()]
        parts += [f"shard {shard}: NO INSTANCE LEADS IT (fixgw cluster status)" for shard in d["unled"]]
        return "\n".join(parts)
    emit(data, as_json, sharded if "shards" in data else human)
    if not data["healthy"]:
        sys.exit(1)


def state_log_line(s: dict | None) -> list[str]:
    """The state log's kind and durable lag, as one line (none from a gateway too old to say)."""
    if not s:
        return []
    where = "file" if s["kind"] == "file" else f"database, stream {s.get('stream')}"
    line = f"state log: {where}, {s['pending_records']} record(s) not yet durable"
    return [line + (f", FAILED: {s['failed']}" if s.get("failed") else "")]


@click.command()
@CONFIG
@JSON
def quotes(config_path: str, as_json: bool) -> None:
    """Each venue's top of book per symbol as the router sees it, with the quote's age."""
    data = AdminClient(config_path, ANYWHERE).call("GET", "/admin/quotes")  # (every shard subscribes alike)
    emit(data, as_json, lambda d: table([r | {"fresh": "yes" if r["fresh"] else "STALE"} for r in d["quotes"]],
                                        ["venue", "symbol", "bid", "bid_size", "ask", "ask_size", "age_ms",
                                         "fresh"]) + f"\n(quotes older than {d['max_quote_age_s']} s are not trusted)")
