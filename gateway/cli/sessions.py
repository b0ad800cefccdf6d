"""`fixgw sessions`: the running gateway's FIX sessions listed and shown, logged out and on, disabled and
enabled, their sequence numbers set or reset, and the configuration's session changes applied by a reload."""
from __future__ import annotations

from urllib.parse import quote

import click

from gateway.cli.admin import AdminClient, by_shard, each_shard, every_shard, table
from gateway.cli.shards import Route
from gateway.cli.common import CONFIG_OPTION as CONFIG
from gateway.cli.common import JSON, emit


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
    asked, unled = each_shard(config_path)
    if len(asked) == 1 and not asked[0][0]:
        data = asked[0][1].call("GET", "/admin/sessions")
    else:  # a sharded cluster: every shard's sessions (each has its own venue sessions), by shard
        data = {"sessions": [row | {"shard": shard} for shard, client in asked
                             for row in client.call("GET", "/admin/sessions")["sessions"]], "unled": unled}
        for shard in unled:
            click.echo(f"shard {shard}: no instance leads it; its sessions are not listed", err=True)
    emit(data, as_json, lambda d: table(d["sessions"], (["shard"] if "unled" in d else []) + SESSION_COLUMNS))


@sessions.command("show")
@click.argument("session")
@CONFIG
@JSON
def sessions_show(session: str, config_path: str, as_json: bool) -> None:
    """One session in detail."""
    data = AdminClient(config_path, Route(session=session)).call("GET", f"/admin/sessions/{quote(session, safe='')}")
    emit(data, as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))


def _session_control(action: str, help_text: str):
    @sessions.command(action, help=help_text)
    @click.argument("session")
    @CONFIG
    @JSON
    def command(session: str, config_path: str, as_json: bool) -> None:
        data = AdminClient(config_path, Route(session=session)).call(
            "POST", f"/admin/sessions/{quote(session, safe='')}/{action}", {})
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

    The gateway re-reads the file it was started with (in a sharded cluster, every
    shard does, for its own sessions). A file that does not load
    or validate is refused and nothing changes. Each session's change is applied
    where quickfix allows it, or refused with the reason (e.g. it needs a
    restart, or the session still has open orders); exit code 1 if any was
    refused or failed.
    """
    def human(d):
        head = f"{'would apply (dry run)' if d['dry_run'] else 'reloaded'} {d['config']}: {d['summary']}"
        lines = [head, table(d["changes"], ["session", "role", "action", "detail"]) if d["changes"] else ""]
        lines += [f"not applied: {n}" for n in d["not_applied"]]
        return "\n".join(line for line in lines if line)

    def refused(d) -> bool:
        return any(c["action"] in ("refused", "failed") for c in d["changes"])
    # in a sharded cluster every shard re-reads the file and applies what changed for its own sessions
    every = every_shard(config_path, "POST", "/admin/sessions/reload", {"dry_run": dry_run}, timeout=120)
    if every is not None:
        emit(every, as_json, lambda d: by_shard(d, human))
        if every["errors"] or every["unled"] or any(refused(d) for d in every["shards"].values()):
            raise SystemExit(1)
        return
    data = AdminClient(config_path).call("POST", "/admin/sessions/reload", {"dry_run": dry_run}, timeout=120)
    emit(data, as_json, human)
    if refused(data):
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
    data = AdminClient(config_path, Route(session=session)).call(
        "POST", f"/admin/sessions/{quote(session, safe='')}/set-seqnum", {"sender": sender, "target": target})
    emit(data, as_json, lambda d: f"{d.get('session', session)}: next sender seqnum {d['next_sender_seqnum']}, "
                                  f"next target seqnum {d['next_target_seqnum']}")


@sessions.command("reset")
@click.argument("session")
@CONFIG
@JSON
def sessions_reset(session: str, config_path: str, as_json: bool) -> None:
    """Reset a logged-out SESSION's sequence numbers to 1 and drop its stored messages."""
    data = AdminClient(config_path, Route(session=session)).call(
        "POST", f"/admin/sessions/{quote(session, safe='')}/reset", {})
    emit(data, as_json, lambda d: f"{d.get('session', session)}: reset; next sender seqnum "
                                  f"{d['next_sender_seqnum']}, next target seqnum {d['next_target_seqnum']}")
