"""`fixgw venue-sim`: run a simulated venue (a FIX acceptor with a small matching book).

Two ways to say which venue:

- from the gateway configuration: ``fixgw venue-sim -c gateway.cfg --venue VENUE1``
  (port from the venue, CompID = the venue's name, counterparty = the gateway's
  comp_id, book = the venue's ``simulator`` section, store in
  ``<data_dir>/venue-sim/VENUE1``);
- standalone: ``fixgw venue-sim --comp-id VENUE9 --port 9890 --price AAPL=190.00
  --price MSFT=410.00 [--counterparty FIXGW]``.

It runs until SIGINT/SIGTERM and exits 0. SIGUSR1 makes it forget every order
it holds (a venue that lost its book: status requests for them are answered
"unknown order"), for testing the gateway's recovery. ``run_simulators_for(cfg)``
starts one simulator per configured venue that has a ``simulator`` section
(``fixgw demo``).
"""
from __future__ import annotations

import signal
import threading
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

import click
from pydantic import ValidationError

from gateway.cli.common import config_option, resolve_config
from gateway.config import ConfigError, GatewayConfig, load_config
from venuesim.config import SimulatorConfig
from gateway.process.lifecycle import wait_for_stop
from gateway.observability.logs import setup_logging

if TYPE_CHECKING:  # quickfix is imported only when a simulator is actually made
    from sessions.simulator.venue import VenueSimulator

FIX_VERSIONS = ("FIX.4.2", "FIX.4.4", "FIX.5.0")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def venue_counterparties(cfg: GatewayConfig) -> tuple[str, ...]:
    """The SenderCompIDs a venue of ``cfg`` sees the gateway log on as: every shard's own, else the one."""
    if cfg.shard:
        return tuple(sorted({s.venue_comp_id for s in cfg.shard.values()}))
    return (cfg.venue_sender,)


def simulator_for_venue(cfg: GatewayConfig, name: str, *, port: int | None = None,
                        counterparties: tuple[str, ...] = (), versions: tuple[str, ...] = (),
                        store_dir: Path | None = None) -> "VenueSimulator":
    """A (not yet started) simulator for venue ``name`` of ``cfg``; ConfigError if it cannot have one."""
    from sessions.simulator.venue import ALL_VERSIONS, VenueSimulator

    if name not in cfg.venues:
        known = ", ".join(cfg.venues) or "none"
        raise ConfigError(f"unknown venue {name!r}; venues in the configuration: {known}")
    venue = cfg.venues[name]
    if venue.simulator is None:
        with_sim = ", ".join(n for n, v in cfg.venues.items() if v.simulator is not None) or "none"
        raise ConfigError(f"venue {name} has no [venues.{name}.simulator] section, so it cannot be simulated; "
                          f"venues with one: {with_sim}")
    store_dir = store_dir or cfg.data_dir / "venue-sim" / name
    return VenueSimulator(
        comp_id=name,
        port=port or venue.port,
        sim=venue.simulator,
        store_dir=store_dir,
        book_file=store_dir / "book.json" if venue.simulator.keep_orders else None,
        counterparties=counterparties or venue_counterparties(cfg),
        versions=versions or ALL_VERSIONS,
    )


def run_simulators_for(cfg: GatewayConfig) -> list["VenueSimulator"]:
    """Start a simulator for every venue in ``cfg`` with a ``simulator`` section; return them started.

    If one fails to start, the ones already started are stopped and the error propagates.
    """
    started: list[VenueSimulator] = []
    try:
        for name, venue in cfg.venues.items():
            if venue.simulator is not None:
                started.append(simulator_for_venue(cfg, name).start())
    except BaseException:
        for sim in started:
            sim.stop()
        raise
    return started


def _parse_prices(values: tuple[str, ...]) -> dict[str, Decimal]:
    prices: dict[str, Decimal] = {}
    for item in values:
        symbol, sep, raw = item.partition("=")
        symbol = symbol.strip()
        try:
            if not sep or not symbol:
                raise InvalidOperation
            price = Decimal(raw.strip())
            if not price.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            raise click.BadParameter(f"{item!r} is not SYMBOL=PRICE (e.g. AAPL=190.00)", param_hint="--price") from None
        prices[symbol] = price
    return prices


@click.command("venue-sim")
@config_option(resolve=False)
@click.option("--venue", help="simulate this venue of the configuration")
@click.option("--comp-id", help="standalone: the venue's CompID")
@click.option("--port", type=click.IntRange(1, 65535),
              help="port to listen on (standalone: required; with --venue: overrides the venue's port)")
@click.option("--counterparty", "counterparties", multiple=True, metavar="COMPID",
              help="CompID that may log on (repeatable) [default: the configuration's comp_id, or FIXGW]")
@click.option("--price", "prices", multiple=True, metavar="SYMBOL=PRICE",
              help="standalone: a symbol and its reference price (repeatable)")
@click.option("--reject-symbol", "reject_symbols", multiple=True, metavar="SYMBOL",
              help="standalone: reject orders for this symbol (repeatable)")
@click.option("--tick", type=str, default=None, help="standalone: price tick [default: 0.01]")
@click.option("--depth", type=click.IntRange(1, 50), default=None, help="standalone: levels per side [default: 5]")
@click.option("--level-size", type=str, default=None, help="standalone: size of the best level [default: 500]")
@click.option("--fix-version", "versions", multiple=True, type=click.Choice(FIX_VERSIONS),
              help="accept only these FIX versions (repeatable) [default: all three]")
@click.option("--store-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="quickfix message store [default: <data_dir>/venue-sim/<venue>, or var/venue-sim/<comp-id>]")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default=None,
              help="[default: the configuration's log_level, or INFO]")
@click.option("--duration", type=float, default=None,
              help="stop by itself after this many seconds (default: run until Ctrl-C / SIGTERM)")
def venue_sim(config_path: str | None, venue: str | None, comp_id: str | None, port: int | None,
              counterparties: tuple[str, ...], prices: tuple[str, ...], reject_symbols: tuple[str, ...],
              tick: str | None, depth: int | None, level_size: str | None, versions: tuple[str, ...],
              store_dir: Path | None, log_level: str | None, duration: float | None) -> None:
    """Run a simulated venue: a FIX 4.2 / 4.4 / 5.0 acceptor with a synthetic book per symbol.

    Marketable orders fill against the synthetic levels (and resting orders),
    other limit orders rest. Either --venue NAME (the configuration file as for
    every command: -c, $FIXGW_CONFIG or the search path) or standalone --comp-id,
    --port and --price.
    """
    if venue is not None or config_path is not None:
        standalone = {"--comp-id": comp_id, "--price": prices, "--reject-symbol": reject_symbols, "--tick": tick,
                      "--depth": depth, "--level-size": level_size}
        given = [flag for flag, value in standalone.items() if value]
        if given:
            raise click.UsageError(f"{', '.join(given)} cannot be combined with -c/--venue: "
                                   "the venue's simulator section sets them")
        try:
            config_path = resolve_config(config_path)
            cfg = load_config(config_path)
            if venue is None:
                with_sim = ", ".join(n for n, v in cfg.venues.items() if v.simulator is not None) or "none"
                raise click.UsageError(f"say which venue to simulate with --venue (venues with a simulator "
                                       f"section: {with_sim})")
            sim = simulator_for_venue(cfg, venue, port=port, counterparties=counterparties, versions=versions,
                                      store_dir=store_dir)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        level = log_level or cfg.log_level
        log_format = cfg.log_format
    else:
        missing = [flag for flag, value in (("--comp-id", comp_id), ("--port", port), ("--price", prices))
                   if not value]
        if missing:
            raise click.UsageError(f"standalone use needs {', '.join(missing)} "
                                   "(or simulate a configured venue with -c gateway.cfg --venue NAME)")
        assert comp_id is not None and port is not None
        knobs: dict[str, object] = {"prices": _parse_prices(prices), "reject_symbols": reject_symbols}
        for key, value in (("tick", tick), ("depth", depth), ("level_size", level_size)):
            if value is not None:
                knobs[key] = value
        try:
            sim_cfg = SimulatorConfig.model_validate(knobs)
        except ValidationError as exc:
            lines = ["invalid simulator settings:"]
            for err in exc.errors():
                lines.append(f"  {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}")
            raise click.ClickException("\n".join(lines)) from None
        from sessions.simulator.venue import ALL_VERSIONS, VenueSimulator

        sim = VenueSimulator(comp_id=comp_id, port=port, sim=sim_cfg,
                             store_dir=store_dir or Path("var") / "venue-sim" / comp_id,
                             counterparties=counterparties or ("FIXGW",), versions=versions or ALL_VERSIONS)
        level = log_level or "INFO"
        log_format = "text"

    setup_logging(level, log_format)
    try:
        sim.start()
    except Exception as exc:  # quickfix's RuntimeError/ConfigError: port in use, bad settings
        raise click.ClickException(f"cannot start the venue simulator {sim.comp_id} on port {sim.port}: {exc}") \
            from None
    click.echo(f"venue-sim {sim.comp_id} listening on port {sim.port} (all interfaces); accepting sessions "
               f"{', '.join(sim.session_names)}; symbols {', '.join(sim.sim.prices)}. Ctrl-C stops; "
               f"SIGUSR1 makes it forget its orders.")

    def forget(*_) -> None:  # the handler runs on the main thread: leave the matcher lock to another one
        threading.Thread(target=sim.forget_orders, name="venuesim-forget", daemon=True).start()

    previous = signal.signal(signal.SIGUSR1, forget)
    try:
        wait_for_stop(duration)
    finally:
        signal.signal(signal.SIGUSR1, previous)
        sim.stop()
