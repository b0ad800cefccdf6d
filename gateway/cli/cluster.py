"""`fixgw cluster ...`: an active/standby cluster, read from its database (docs/failover.md).

    fixgw cluster status -c gateway.cfg [--json]   # who leads, the lease, each instance's role and heartbeat

Works with every gateway of the cluster down: it asks the database, not a gateway.
Exit codes: 0 an instance leads; 1 no instance leads; 2 cannot ask (no configuration,
no [cluster] section, the database unreachable).
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
    """The cluster's lease (holder, fencing token, age, time left) and each instance's role and heartbeat.

    Exit code 0: an instance leads; 1: NO LEADER; 2: could not ask.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.cluster.status import cluster_status, describe_status
    from gateway.journal.db import make_engine, safe_url

    cfg = load(config_path)
    if cfg.cluster is None:
        raise CommandError(f"{config_path} has no [cluster] section: this gateway runs alone")
    url = cfg.journal.database_url
    engine = make_engine(url)
    try:
        data = cluster_status(engine, cfg.cluster.name, cfg.cluster.lease_ttl_s, sorted(cfg.instance))
    except SQLAlchemyError as exc:
        raise CommandError(f"cannot read cluster {cfg.cluster.name} from {safe_url(url)}: {db_reason(exc)}") from None
    finally:
        engine.dispose()
    emit(data, as_json, describe_status)
    if data["leader"] is None:
        sys.exit(1)
