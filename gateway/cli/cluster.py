"""`fixgw cluster ...`: an active/standby cluster, read from its database (docs/failover.md).

    fixgw cluster status -c gateway.cfg [--json]   # who leads, the lease, each instance's role and heartbeat
    fixgw cluster handover -c gateway.cfg [--to NAME] [--shard NAME] [--timeout S] [--json]   # a planned switch
    fixgw cluster controls -c gateway.cfg [--last N] [--json]   # a sharded cluster's commands for every shard

All ask the database, not a gateway: they work with every gateway of the cluster down.
Exit codes: 0 an instance leads (status; every shard's, in a sharded cluster), the handover is
done (handover), every shard applied every control shown (controls); 1 no instance leads, the
handover was refused or not done in time, a shard refused or has not applied a control; 2 cannot
ask (no configuration, no [cluster] section, the database unreachable).
"""
from __future__ import annotations

import sys

import click

from gateway.cli.common import CONFIG_OPTION, JSON, CommandError, db_reason, emit, load


@click.group()
def cluster() -> None:
    """An active/standby cluster: who leads, and each instance's role."""


@cluster.command()
@CONFIG_OPTION
@JSON
def status(config_path: str, as_json: bool) -> None:
    """The cluster's lease (holder, fencing token, age, time left) and each instance's role and heartbeat; in a
    sharded cluster, the same for every shard, and each shard's part of each shared risk limit.

    Exit code 0: an instance leads; 1: NO LEADER; 2: could not ask.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.cluster.status import cluster_status, describe_sharded, describe_status, sharded_status
    from gateway.journal.db import make_engine, safe_url

    cfg = load(config_path)
    if cfg.cluster is None:
        raise CommandError(f"{config_path} has no [cluster] section: this gateway runs alone")
    url = cfg.journal.database_url
    engine = make_engine(url)
    try:
        if cfg.shard:
            data = sharded_status(engine, cfg.cluster.name, cfg.cluster.lease_ttl_s, shard_instances(cfg))
        else:
            data = cluster_status(engine, cfg.cluster.name, cfg.cluster.lease_ttl_s, sorted(cfg.instance))
    except SQLAlchemyError as exc:
        raise CommandError(f"cannot read cluster {cfg.cluster.name} from {safe_url(url)}: {db_reason(exc)}") from None
    finally:
        engine.dispose()
    if cfg.shard:
        emit(data, as_json, describe_sharded)
        if data["leaderless"]:
            sys.exit(1)
        return
    emit(data, as_json, describe_status)
    if data["leader"] is None:
        sys.exit(1)


@cluster.command()
@CONFIG_OPTION
@click.option("--last", default=20, show_default=True, type=click.IntRange(min=1, max=10_000),
              help="how many of the newest controls")
@JSON
def controls(config_path: str, last: int, as_json: bool) -> None:
    """A sharded cluster's control plane: the newest commands for every shard (kill switches, cancels, risk
    reloads), who asked, and how each shard's active instance answered and how soon (gateway/cluster/controls.py).

    Exit code 0: every shard applied every one shown; 1: a shard refused or has not applied one yet; 2: could not ask.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.cluster.controls import ControlBoard
    from gateway.config.cluster import shard_lease_name
    from gateway.journal.db import make_engine, safe_url

    cfg = load(config_path)
    if cfg.cluster is None or not cfg.shard:
        raise CommandError(f"{config_path} has no [shard.NAME] sections: the control plane is a sharded cluster's")
    url = cfg.journal.database_url
    engine = make_engine(url)
    try:
        shown = ControlBoard(engine, cfg.cluster.name).recent(last)
    except SQLAlchemyError as exc:
        raise CommandError(f"cannot read cluster {cfg.cluster.name} from {safe_url(url)}: {db_reason(exc)}") from None
    finally:
        engine.dispose()
    leases = [shard_lease_name(cfg.cluster.name, s) for s in sorted(cfg.shard)]
    unsettled = False
    for c in shown:
        c["pending"] = [lease for lease in leases if lease not in c["shards"]]
        unsettled |= bool(c["pending"]) or not all(s["ok"] for s in c["shards"].values())
    emit(shown, as_json, lambda rows: "\n".join(_describe_control(c) for c in rows) or "no cluster controls yet")
    if unsettled:
        sys.exit(1)


def _describe_control(c: dict) -> str:
    args = " ".join(f"{k}={v}" for k, v in sorted(c["body"].items()) if v not in (None, "", False))
    lines = [f"{c['control']:>6} {c['issued_at']} {c['kind']} {args} by {c['operator']} via {c['issued_by']}"]
    for lease, s in sorted(c["shards"].items()):
        said = "ok" if s["ok"] else f"REFUSED: {s['result'].get('error', '?')}"
        lines.append(f"         {lease:<20} {s['instance']:<12} after {s['after_s']:.3f} s  {said}")
    lines += [f"         {lease:<20} NOT YET" for lease in c["pending"]]
    return "\n".join(lines)


def _handover_scope(cfg, config_path: str, shard: str | None, to: str | None) -> tuple[str, list[str]]:
    """(the lease to hand over, its configured instances): the cluster's, or in a sharded cluster the shard's
    that ``--shard`` names (or that ``--to``'s instance serves)."""
    from gateway.config.cluster import shard_lease_name

    if not cfg.shard:
        if shard is not None:
            raise CommandError(f"--shard {shard}: {config_path} has no [shard.NAME] sections")
        return cfg.cluster.name, sorted(cfg.instance)
    if shard is None and to is not None and to in cfg.instance:
        shard = cfg.instance[to].shard
    if shard is None:
        raise CommandError(f"cluster {cfg.cluster.name} has shards ({', '.join(sorted(cfg.shard))}): name the one "
                           "to hand over with --shard")
    if shard not in cfg.shard:
        raise CommandError(f"no shard {shard!r} in {config_path}; its shards: {', '.join(sorted(cfg.shard))}")
    instances = shard_instances(cfg)[shard]
    if to is not None and to not in instances:
        raise CommandError(f"--to {to}: not an instance of shard {shard} (its instances: {', '.join(instances)})")
    return shard_lease_name(cfg.cluster.name, shard), instances


def shard_instances(cfg) -> dict[str, list[str]]:
    """shard -> its configured instances, by name."""
    return {shard: sorted(n for n, inst in cfg.instance.items() if inst.shard == shard) for shard in cfg.shard}


@cluster.command()
@CONFIG_OPTION
@click.option("--to", "to", default=None, metavar="NAME", help="the standby to hand over to (default: whichever "
              "running standby takes the lease first)")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(min=1),
              help="seconds to wait for the new active instance")
@click.option("--shard", default=None, metavar="NAME", help="in a sharded cluster, the shard to hand over")
@JSON
def handover(config_path: str, to: str | None, timeout: float, shard: str | None, as_json: bool) -> None:
    """Hand the cluster over to a standby: the active stops cleanly and hands over the lease.

    Nothing is lost and no sequence number jumps: the active finishes what it was doing, journals everything and
    closes its order state; the successor continues every session's numbers exactly. Clients and venues see a
    Logout, then a logon to the new active. The old active's process exits with code 0 (a supervisor restarts it
    as a standby). Refused, with nothing asked, if it would leave the cluster with no active instance.

    Exit code 0: handed over; 1: refused, or not done within --timeout; 2: could not ask.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.cluster.handover import HandoverRefused, ask_handover, describe_handover, follow_handover
    from gateway.journal.db import make_engine, safe_url

    cfg = load(config_path)
    if cfg.cluster is None:
        raise CommandError(f"{config_path} has no [cluster] section: this gateway runs alone")
    lease, instances = _handover_scope(cfg, config_path, shard, to)
    url = cfg.journal.database_url
    engine = make_engine(url)
    args = (engine, lease, cfg.cluster.lease_ttl_s, instances)
    try:
        try:
            asked = ask_handover(*args, to)
        except HandoverRefused as exc:
            click.echo(f"handover refused: {exc}", err=True)
            sys.exit(1)
        if not as_json:
            click.echo(f"handover asked of {asked['from']} (token {asked['token']}); waiting for the new active "
                       "instance...")
        result = follow_handover(*args, asked, timeout)
    except SQLAlchemyError as exc:
        raise CommandError(f"cannot reach cluster {cfg.cluster.name} at {safe_url(url)}: {db_reason(exc)}") from None
    finally:
        engine.dispose()
    emit(result, as_json, describe_handover)
    if not result["done"]:
        sys.exit(1)
