"""The `fixgw` command. One small module per command group; this file wires them."""
from __future__ import annotations

import logging
import time

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from gateway.cli.client import client
from gateway.cli.cluster import cluster
from gateway.cli.common import CONFIG_OPTION, CommandError, FixgwGroup, load
from gateway.cli.credentials import credentials
from gateway.cli.db import db
from gateway.cli.journal import journal
from gateway.cli.orders import orders
from gateway.cli.risk import risk
from gateway.cli.sessions import sessions
from gateway.cli.status import quotes, status
from gateway.cli.venue_sim import run_simulators_for, venue_sim
from gateway.config import ConfigError, GatewayConfig
from gateway.process.lifecycle import wait_for_stop
from gateway.observability.logs import setup_logging

log = logging.getLogger("fixgw.db")

DURATION_OPTION = click.option("--duration", type=float, default=None,
                               help="stop by itself after this many seconds (default: run until Ctrl-C / SIGTERM)")


@click.group(cls=FixgwGroup)
@click.version_option(package_name="fixgw")
def main() -> None:
    """fixgw: a FIX OMS/EMS gateway."""


main.add_command(db)
main.add_command(journal)
main.add_command(credentials)
for command in (status, sessions, orders, quotes, risk):
    main.add_command(command)
main.add_command(venue_sim)
main.add_command(client)
main.add_command(cluster)


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def build(gateway_class, cfg: GatewayConfig, config_path: str):
    """Construct the gateway; configuration problems found then (e.g. bad risk rules) exit cleanly."""
    try:
        return gateway_class(cfg, config_path=config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _check_schema(cfg: GatewayConfig, config_path: str, wait: bool = False) -> None:
    """The journal database is at the head revision, or the command ends saying why. ``wait``: a cluster's instance
    waits for a database it cannot reach (restarted while the database is down, it comes back when it is up, as a
    standby waits it out), saying so at once and every WAIT_REPORT_S."""
    from gateway.journal.db import SchemaOutOfDate, check_schema

    waiting_since = None
    while True:
        try:
            revision = check_schema(cfg.journal.database_url, config_path)
            log.info("journal schema at revision %s (head)", revision)
            return
        except SchemaOutOfDate as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            why = (f"cannot open the journal database {safe_url(cfg.journal.database_url)}: "
                   f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}")
            if not wait or not isinstance(exc, OperationalError):
                raise click.ClickException(why) from None
            now = time.monotonic()
            if waiting_since is None or now - waiting_since >= WAIT_REPORT_S:
                log.warning("%s; waiting for it (a cluster's instance starts once its database answers)", why)
                waiting_since = now
            time.sleep(1.0)


WAIT_REPORT_S = 30.0


def _upgrade(cfg: GatewayConfig) -> None:
    from gateway.journal.db import upgrade

    try:
        before, after = upgrade(cfg.journal.database_url)
    except SQLAlchemyError as exc:
        raise click.ClickException(
            f"cannot prepare the journal database {safe_url(cfg.journal.database_url)}: {str(exc).splitlines()[0]}"
        ) from None
    if before == after:
        log.info("journal schema at revision %s (head)", after)
    else:
        log.info("upgraded journal schema from %s to %s (head)", before or "none (empty database)", after)


def _cluster_instance(cfg: GatewayConfig, instance: str | None) -> None:
    """A configuration with a [cluster] runs as one of its instances (load() refused an unknown one)."""
    if cfg.cluster is not None and instance is None:
        raise CommandError(f"the configuration defines cluster {cfg.cluster.name}: run one of its instances with "
                           f"--instance NAME ({', '.join(sorted(cfg.instance)) or 'none defined'})")


@main.command()
@CONFIG_OPTION
@DURATION_OPTION
@click.option("--instance", default=None, metavar="NAME",
              help="run as this instance of the configuration's [cluster] ([instance.NAME] section): it stands by "
                   "until it holds the cluster's lease (docs/failover.md)")
def run(config_path: str, duration: float | None, instance: str | None) -> None:
    """Run the gateway: client acceptor, venue sessions, core and journal."""
    from gateway.process.server import Gateway

    cfg = load(config_path, instance)
    _cluster_instance(cfg, instance)
    setup_logging(cfg.log_level, cfg.log_format)
    _check_schema(cfg, config_path, wait=cfg.cluster is not None)
    gateway = build(Gateway, cfg, config_path).start()
    dropcopy = f", drop-copy receivers to port {cfg.dropcopy.port}" if cfg.dropcopy.sessions else ""
    click.echo(f"fixgw running as {cfg.comp_id}: clients connect to port {cfg.acceptor.port}{dropcopy}; "
               f"journal {safe_url(cfg.journal.database_url)}. Ctrl-C stops.")
    try:
        wait_for_stop(duration, gateway.stop_requested)
    finally:
        gateway.stop()
    halted(gateway)
    if gateway.handover is not None:
        to = "any standby" if gateway.handover == "*" else gateway.handover
        click.echo(f"fixgw instance {instance} handed the cluster over to {to} and stopped (a supervisor restarts it "
                   "as a standby)")


def halted(gateway) -> None:
    """A gateway that stopped on its own (its state log failed for good) makes the process exit non-zero."""
    if gateway.halted is not None:
        raise click.ClickException(f"the gateway stopped on its own: the order-state log failed ({gateway.halted})")


@main.command()
@CONFIG_OPTION
@DURATION_OPTION
def demo(config_path: str, duration: float | None) -> None:
    """Run everything on this machine: the gateway and a simulator for each venue with a simulator section."""
    from gateway.process.server import Gateway

    cfg = load(config_path)
    if cfg.cluster is not None:
        raise CommandError(f"fixgw demo runs a single gateway; the configuration defines cluster {cfg.cluster.name}: "
                           "use fixgw run --instance NAME")
    setup_logging(cfg.log_level, cfg.log_format)
    _upgrade(cfg)
    simulators = run_simulators_for(cfg)
    gateway = None
    try:
        gateway = build(Gateway, cfg, config_path)
        notes = demo_passwords(cfg, gateway)
        gateway.start()
        up = gateway.wait_venues_up(15)
        click.echo(banner(cfg, gateway, up, notes))
        wait_for_stop(duration, gateway.stop_requested)
    finally:
        if gateway is not None:
            gateway.stop()
        for sim in simulators:
            sim.stop()
    halted(gateway)


def demo_passwords(cfg: GatewayConfig, gateway) -> dict[str, str]:
    """Sessions with ``demo_password_env``: store the variable's password as a hash, or disable the session.

    Returns a note per such session for the banner (never the password).
    """
    from gateway.security import secretstore
    from gateway.security.credentials import CredentialsError, password_problem

    notes = {}
    for name, c in cfg.clients.items():
        if c.demo_password_env is None:
            continue
        password = secretstore.get(c.demo_password_env)
        problem = password_problem(password) if password is not None else None
        if password is None or problem is not None:
            why = (f"{c.demo_password_env} is not set" if password is None
                   else f"{c.demo_password_env} is unusable: {problem}")
            gateway.set_startup_disabled(name, f"session disabled: the demo was started without its password ({why})")
            notes[name] = f"DISABLED: {why}; export {c.demo_password_env}=... and restart the demo to use it"
            continue
        try:
            gateway.credentials.set(name, password)
        except CredentialsError as exc:
            raise click.ClickException(f"cannot store the password of {name}: {exc}") from None
        notes[name] = (f"password from {c.demo_password_env} (stored only as a hash); "
                       f"Username (553)={c.expected_username(name)}")
    return notes


def banner(cfg: GatewayConfig, gateway, venues_up: bool, notes: dict[str, str] | None = None) -> str:
    notes = notes or {}
    lines = [
        "",
        f"fixgw demo is running. Connect a FIX initiator to 127.0.0.1:{cfg.acceptor.port}, TargetCompID={cfg.comp_id}:",
    ]
    for name, c in cfg.clients.items():
        begin = "FIXT.1.1 (DefaultApplVerID=FIX.5.0)" if c.fix_version == "FIX.5.0" else c.fix_version
        where = f" port {cfg.client_port(name)}" if cfg.client_port(name) != cfg.acceptor.port else ""
        extra = f"  {notes[name]}" if name in notes else ("  password required" if c.password_required else "")
        lines.append(f"  SenderCompID={name:<10} BeginString={begin}{where}{extra}")
    lines.append("Venues:")
    for name, v in cfg.venues.items():
        state = "logged on" if gateway.is_logged_on(name) else "NOT logged on"
        sim = "simulator" if v.simulator else "external"
        lines.append(f"  {name:<8} {v.fix_version} {v.host}:{v.port} ({sim}, {state}) symbols {', '.join(v.symbols)}")
    if not venues_up:
        lines.append("  warning: not every venue logged on within 15 s; orders for their symbols are rejected")
    if cfg.dropcopy.sessions:
        from dropcopy.filters import Scope

        lines.append(f"Drop copies: connect a FIX initiator to 127.0.0.1:{cfg.dropcopy.port}, "
                     f"TargetCompID={cfg.comp_id}:")
        for name, d in cfg.dropcopy.sessions.items():
            begin = "FIXT.1.1 (DefaultApplVerID=FIX.5.0)" if d.fix_version == "FIX.5.0" else d.fix_version
            scope = Scope(d.reports, frozenset(d.clients), frozenset(d.accounts), frozenset(d.venues))
            lines.append(f"  SenderCompID={name:<10} BeginString={begin}: {scope.describe()} (read-only)")
    lines.append(f"Journal: {safe_url(cfg.journal.database_url)}")
    lines.append("Ctrl-C stops the gateway and the simulators.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
