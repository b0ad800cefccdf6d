"""The operator commands' client of a running gateway's admin API: the token, one call, and what went wrong
in one line (the gateway is not running, the token was refused, the session or order does not exist, or why
a request was refused); plus the table the commands print. In a cluster they ask the instance that leads (its
``[instance.NAME]`` HTTP port and data directory), or the one ``FIXGW_INSTANCE`` names; in a sharded cluster,
the leader of the shard the command is about (gateway/cli/shards.py), or of each shard (``each_shard``).

The commands themselves, human-readable by default and ``--json`` for scripts: gateway/cli/status.py
(`fixgw status`, `fixgw quotes`), sessions.py, orders.py and risk.py.
"""
from __future__ import annotations

import getpass
import http.client
import ssl
import json
import os
import urllib.error
import urllib.request

import click

from gateway.admin.api import TOKEN_ENV, TOKEN_FILE, admin_token
from gateway.cli.common import db_reason, load
from gateway.cli.shards import Route, shard_for


INSTANCE_ENV = "FIXGW_INSTANCE"
SHARD_ENV = "FIXGW_SHARD"


def _instance_config(config_path: str, route: Route | None = None):
    """The configuration as the instance to ask runs it: a single gateway's as it is; in a cluster, the instance
    ``FIXGW_INSTANCE`` names, else the one that leads now (asked of the database, as `fixgw cluster status`); in a
    sharded cluster, the leader of the shard ``FIXGW_SHARD`` names, else of the one ``route`` points at
    (gateway/cli/shards.py)."""
    cfg = load(config_path)
    if cfg.cluster is None:
        return cfg
    name = os.environ.get(INSTANCE_ENV)
    if not name:
        name = _leader(cfg, lambda engine: _shard_leader(cfg, engine, route or Route()) if cfg.shard
                       else _cluster_leader(cfg, engine))
    return load(config_path, name)


def _leader(cfg, ask):
    """``ask(engine)`` on the cluster's database, its errors said in one line."""
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.journal.db import make_engine, safe_url

    engine = make_engine(cfg.journal.database_url)
    try:
        return ask(engine)
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cluster {cfg.cluster.name}: cannot ask {safe_url(cfg.journal.database_url)} "
                                   f"which instance leads ({db_reason(exc)}); name one with {INSTANCE_ENV}") from None
    finally:
        engine.dispose()


def _cluster_leader(cfg, engine) -> str:
    from gateway.cluster.lease import Lease

    lease = Lease(engine, cfg.cluster.name).read()
    if lease is None or not lease.held:
        raise click.ClickException(f"cluster {cfg.cluster.name}: no instance leads (see `fixgw cluster status`); "
                                   f"name the one to ask with {INSTANCE_ENV}")
    return lease.holder


def shard_leaders(cfg, engine, shards=None) -> dict[str, str | None]:
    """shard -> the instance leading it now (None: no instance does)."""
    from gateway.cluster.lease import Lease
    from gateway.config.cluster import shard_lease_name

    out = {}
    for name in shards or sorted(cfg.shard):
        lease = Lease(engine, shard_lease_name(cfg.cluster.name, name)).read()
        out[name] = lease.holder if lease is not None and lease.held else None
    return out


def _shard_leader(cfg, engine, route: Route) -> str:
    """The instance to ask in a sharded cluster: the leader of the shard ``FIXGW_SHARD`` names, else of the shard
    ``route`` points at, else (a command any shard answers) of the first shard with one; else a refusal that says
    who leads each shard."""
    shard = os.environ.get(SHARD_ENV) or shard_for(cfg, route)
    if shard is not None and shard not in cfg.shard:
        raise click.ClickException(f"{SHARD_ENV}={shard}: no such shard; the shards: {', '.join(sorted(cfg.shard))}")
    leaders = shard_leaders(cfg, engine, [shard] if shard else None)
    if shard:
        if leaders[shard] is None:
            raise click.ClickException(f"cluster {cfg.cluster.name}: no instance leads shard {shard} (see `fixgw "
                                       f"cluster status`); name the one to ask with {INSTANCE_ENV}")
        return leaders[shard]
    if route.anywhere and any(leaders.values()):
        return next(who for who in leaders.values() if who)
    said = ", ".join(f"{name} led by {who or 'nobody'}" for name, who in leaders.items())
    raise click.ClickException(f"cluster {cfg.cluster.name} has shards ({said}): name the shard to ask with "
                               f"{SHARD_ENV} or the instance with {INSTANCE_ENV}")


def fans_out(config_path: str) -> bool:
    """A sharded cluster's command asks every shard: unless ``FIXGW_INSTANCE`` or ``FIXGW_SHARD`` names one."""
    cfg = load(config_path)
    return bool(cfg.cluster is not None and cfg.shard and not os.environ.get(INSTANCE_ENV)
                and not os.environ.get(SHARD_ENV))


def each_shard(config_path: str) -> tuple[list[tuple[str, "AdminClient"]], list[str]]:
    """For a command every shard answers (a list): (shard, a client of its leader) for each shard led now, and the
    shards no instance leads. A single gateway, a cluster without shards, or ``FIXGW_INSTANCE``/``FIXGW_SHARD``
    set: the one instance those name, as ("", client)."""
    if not fans_out(config_path):
        return [("", AdminClient(config_path))], []
    cfg = load(config_path)
    leaders = _leader(cfg, lambda engine: shard_leaders(cfg, engine))
    if not any(leaders.values()):
        raise click.ClickException(f"cluster {cfg.cluster.name}: no shard has an instance leading it (see `fixgw "
                                   "cluster status`)")
    asked = [(shard, AdminClient(config_path, instance=who)) for shard, who in leaders.items() if who]
    return asked, [shard for shard, who in leaders.items() if who is None]


def every_shard(config_path: str, method: str, path: str, body: dict | None = None,
                timeout: float = 10) -> "dict | None":
    """For a command about no shard in particular that each shard answers for itself (``risk show``, ``orders
    reconcile --all``, ``sessions reload``): ask the leader of every shard; {"shards": {shard: its answer},
    "errors": {shard: why it did not answer}, "unled": [shards no instance leads]}. None for a single gateway, a
    cluster without shards, or with ``FIXGW_INSTANCE``/``FIXGW_SHARD`` set: the caller asks its one instance."""
    if not fans_out(config_path):
        return None
    asked, unled = each_shard(config_path)
    out: dict = {"shards": {}, "errors": {}, "unled": unled}
    for shard, client in asked:
        try:
            out["shards"][shard] = client.call(method, path, body, timeout=timeout)
        except click.ClickException as exc:  # one shard's refusal or silence: said, and the others still asked
            out["errors"][shard] = exc.format_message()
    for shard in unled:
        click.echo(f"shard {shard}: no instance leads it; not asked", err=True)
    for shard, why in out["errors"].items():
        click.echo(f"shard {shard}: {why}", err=True)
    return out


def by_shard(data: dict, human) -> str:
    """An ``every_shard`` answer as text: each shard's answer as ``human`` says it, under the shard's name."""
    parts = [f"shard {shard}:\n" + "\n".join("  " + line for line in human(answer).splitlines())
             for shard, answer in sorted(data["shards"].items())]
    parts += [f"shard {shard}: NOT ANSWERED: {why}" for shard, why in sorted(data["errors"].items())]
    parts += [f"shard {shard}: NO INSTANCE LEADS IT (fixgw cluster status)" for shard in data["unled"]]
    return "\n".join(parts)


def _trust(ca, cert) -> ssl.SSLContext:
    """What the commands trust for the admin API's certificate (its name is checked too): ``[http] tls_ca``, or
    else the certificate ``[http.tls] cert`` itself, as its own anchor (one certificate for every instance)."""
    from gateway.security.tls import TlsError, client_context

    try:
        ctx = client_context(ca if ca is not None else cert)
    except TlsError as exc:
        raise click.ClickException(f"the admin API's TLS: {exc}") from None
    if ca is None:
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a certificate trusted as itself, not via its issuer
    return ctx


class AdminClient:
    def __init__(self, config_path: str, route: Route | None = None, instance: str | None = None):
        cfg = load(config_path, instance) if instance is not None else _instance_config(config_path, route)
        if not cfg.http.enabled:
            raise click.ClickException(f"{config_path}: [http] is disabled, so the gateway has no admin API")
        tls = cfg.http.tls
        self.base = f"{'https' if tls is not None else 'http'}://{cfg.http.host}:{cfg.http.port}"
        self._tls = _trust(cfg.http.tls_ca, tls.cert) if tls is not None else None
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
            with urllib.request.urlopen(req, timeout=timeout, context=self._tls) as r:
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
            if isinstance(reason, ssl.SSLError):
                from gateway.security.tls import describe_ssl_error
                raise click.ClickException(
                    f"the gateway's admin API at {self.base}: {describe_ssl_error(reason)} (the "
                    "commands trust [http] tls_ca, or else the certificate in [http.tls] cert)") from None
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
