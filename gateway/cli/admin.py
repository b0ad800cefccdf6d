"""The operator commands' client of a running gateway's admin API: the token, one call, and what went wrong
in one line (the gateway is not running, the token was refused, the session or order does not exist, or why
a request was refused); plus the table the commands print. In a cluster they ask the instance that leads (its
``[instance.NAME]`` HTTP port and data directory), or the one ``FIXGW_INSTANCE`` names.

The commands themselves, human-readable by default and ``--json`` for scripts: gateway/cli/status.py
(`fixgw status`, `fixgw quotes`), sessions.py, orders.py and risk.py.
"""
from __future__ import annotations

import getpass
import http.client
import json
import os
import urllib.error
import urllib.request

import click

from gateway.admin.api import TOKEN_ENV, TOKEN_FILE, admin_token
from gateway.cli.common import db_reason, load


INSTANCE_ENV = "FIXGW_INSTANCE"
SHARD_ENV = "FIXGW_SHARD"


def _instance_config(config_path: str):
    """The configuration as the instance to ask runs it: a single gateway's as it is; in a cluster, the instance
    ``FIXGW_INSTANCE`` names, else the one that leads now (asked of the database, as `fixgw cluster status`)."""
    cfg = load(config_path)
    if cfg.cluster is None:
        return cfg
    name = os.environ.get(INSTANCE_ENV)
    if not name:
        from sqlalchemy.exc import SQLAlchemyError

        from gateway.cluster.lease import Lease
        from gateway.journal.db import make_engine, safe_url

        engine = make_engine(cfg.journal.database_url)
        try:
            if cfg.shard:
                return load(config_path, _shard_leader(cfg, engine))
            lease = Lease(engine, cfg.cluster.name).read()
        except SQLAlchemyError as exc:
            raise click.ClickException(f"cluster {cfg.cluster.name}: cannot ask {safe_url(cfg.journal.database_url)} "
                                       f"which instance leads ({db_reason(exc)}); name one with {INSTANCE_ENV}") from None
        finally:
            engine.dispose()
        if lease is None or not lease.held:
            raise click.ClickException(f"cluster {cfg.cluster.name}: no instance leads (see `fixgw cluster status`); "
                                       f"name the one to ask with {INSTANCE_ENV}")
        name = lease.holder
    return load(config_path, name)


def _shard_leader(cfg, engine) -> str:
    """In a sharded cluster: the instance leading the shard ``FIXGW_SHARD`` names; without it, a refusal that says
    who leads each shard (the commands act on one instance until the cluster has one control plane)."""
    from gateway.cluster.lease import Lease
    from gateway.config.cluster import shard_lease_name

    shard = os.environ.get(SHARD_ENV)
    if shard is not None and shard not in cfg.shard:
        raise click.ClickException(f"{SHARD_ENV}={shard}: no such shard; the shards: {', '.join(sorted(cfg.shard))}")
    leaders = {}
    for name in ([shard] if shard else sorted(cfg.shard)):
        lease = Lease(engine, shard_lease_name(cfg.cluster.name, name)).read()
        leaders[name] = lease.holder if lease is not None and lease.held else None
    if shard:
        if leaders[shard] is None:
            raise click.ClickException(f"cluster {cfg.cluster.name}: no instance leads shard {shard} (see `fixgw "
                                       f"cluster status`); name the one to ask with {INSTANCE_ENV}")
        return leaders[shard]
    said = ", ".join(f"{name} led by {who or 'nobody'}" for name, who in leaders.items())
    raise click.ClickException(f"cluster {cfg.cluster.name} has shards ({said}): name the shard to ask with "
                               f"{SHARD_ENV} or the instance with {INSTANCE_ENV}")


class AdminClient:
    def __init__(self, config_path: str):
        cfg = _instance_config(config_path)
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
