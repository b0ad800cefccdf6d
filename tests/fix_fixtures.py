"""Fixtures for tests that run real quickfix sessions over loopback.

``stack`` starts two venue simulators, the gateway (in this process, journal on
the database the test asks for) and one test client per FIX version, each on a
free 127.0.0.1 port, and tears everything down in the right order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.ports import free_port  # below the ephemeral range (bench/ports.py says why)
from gateway.config import GatewayConfig, parse_config
from gateway.journal.db import upgrade
from gateway.process.server import Gateway
from sessions.client import FixClient
from sessions.simulator.venue import VenueSimulator

CLIENTS = {"CLIENT42": "FIX.4.2", "CLIENT44": "FIX.4.4", "CLIENT50": "FIX.5.0"}


@pytest.fixture
def port_factory():
    return free_port


def stack_config(database_url: str, data_dir: Path, gw_port: int, v1_port: int, v2_port: int,
                 venue_versions=("FIX.4.4", "FIX.4.2"), pending_new: bool = True,
                 client_options: dict[str, str] | None = None, extra_toml: str = "",
                 venue_options: dict[str, str] | None = None, http_options: str = "") -> GatewayConfig:
    """``client_options`` adds TOML lines to a client's table, e.g. {"CLIENT42": "cancel_on_disconnect = true"};
    ``venue_options`` to a venue's (e.g. {"VENUE2": "ack_timeout_s = 1"}); ``http_options`` to the [http] table,
    e.g. "request_timeout_s = 1.0"."""
    text = stack_config_text(database_url, data_dir, gw_port, v1_port, v2_port, venue_versions, pending_new,
                             client_options, extra_toml, venue_options, http_options)
    return parse_config(text, data_dir, env={})


def stack_config_text(database_url: str, data_dir: Path, gw_port: int, v1_port: int, v2_port: int,
                      venue_versions=("FIX.4.4", "FIX.4.2"), pending_new: bool = True,
                      client_options: dict[str, str] | None = None, extra_toml: str = "",
                      venue_options: dict[str, str] | None = None, http_options: str = "",
                      acceptor_toml: str = "") -> str:
    """The TOML of ``stack_config`` (absolute paths): for `fixgw run`, or to edit and re-read
    (``fixgw sessions reload``). ``acceptor_toml``: more lines for the [acceptor] table."""
    client_options = client_options or {}
    venue_options = venue_options or {}
    http_port = free_port()
    clients = "\n".join(
        f'[clients.{name}]\nfix_version = "{version}"\npending_new = {str(pending_new).lower()}\n'
        f'{client_options.get(name, "")}\n'
        for name, version in CLIENTS.items())
    return f"""
comp_id = "FIXGW"
data_dir = "{data_dir}"
log_level = "DEBUG"
[acceptor]
port = {gw_port}
{acceptor_toml}
[http]
port = {http_port}
{http_options}
[journal]
database_url = "{database_url}"
flush_interval_ms = 2
{clients}
[venues.VENUE1]
fix_version = "{venue_versions[0]}"
port = {v1_port}
symbols = ["AAPL", "MSFT", "IBM"]
reconnect_s = 1
{venue_options.get("VENUE1", "")}
[venues.VENUE1.simulator]
prices = {{ AAPL = 190.00, MSFT = 410.00, IBM = 230.00 }}
level_size = 500
reject_symbols = ["IBM"]
[venues.VENUE2]
fix_version = "{venue_versions[1]}"
port = {v2_port}
symbols = ["AAPL", "MSFT", "ORCL", "XXXX"]
reconnect_s = 1
{venue_options.get("VENUE2", "")}
[venues.VENUE2.simulator]
prices = {{ AAPL = 190.02, MSFT = 409.97, ORCL = 120.00, XXXX = 10.00 }}
half_spread_ticks = 2
level_size = 300
""" + extra_toml  # tables only: it follows the last table


@dataclass
class Stack:
    cfg: GatewayConfig
    gateway: Gateway
    venues: dict[str, VenueSimulator]
    clients: dict[str, FixClient] = field(default_factory=dict)
    tmp: Path = Path(".")
    config_path: Path = Path("gateway.cfg")
    stopped: bool = False

    def client(self, name: str) -> FixClient:
        if name not in self.clients or self.clients[name].stopped:
            self.clients[name] = FixClient(version=CLIENTS[name], sender=name, target="FIXGW",
                                           port=self.cfg.acceptor.port, store_dir=self.tmp / "clients").start()
        return self.clients[name]

    def stop(self) -> None:
        """Clients log out, then the gateway (journal drained), then the venues."""
        if self.stopped:
            return
        self.stopped = True
        for c in self.clients.values():
            c.stop()
        self.gateway.stop()
        for v in self.venues.values():
            v.stop()


def start_stack(database_url: str, tmp: Path, *, keep_venue_orders: bool = False, **kw) -> Stack:
    """``keep_venue_orders``: the simulators keep their working orders across a stop in good order, as
    `fixgw demo`'s do (``start_venues``)."""
    upgrade(database_url)
    ports = [free_port() for _ in range(3)]
    text = stack_config_text(database_url, tmp / "gw", *ports, **kw)
    cfg = parse_config(text, tmp / "gw", env={})
    config_path = cfg.data_dir / "gateway.cfg"  # what the gateway re-reads on `fixgw sessions reload`
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(text)
    venues = start_venues(cfg, tmp, keep_orders=keep_venue_orders)
    try:
        gateway = Gateway(cfg, config_path=config_path).start()
    except BaseException:
        for sim in venues.values():  # (their quickfix sessions would outlive the failed fixture in this process)
            sim.stop()
        raise
    stack = Stack(cfg=cfg, gateway=gateway, venues=venues, tmp=tmp, config_path=config_path)
    if not gateway.wait_venues_up(20):
        down = {name: {"gateway_logged_on": gateway.is_logged_on(name), "simulator_logged_on": sorted(v.logged_on),
                       "port": v.port} for name, v in venues.items()}
        stack.stop()
        raise AssertionError(f"venues did not log on to the gateway within 20 s: {down}")
    return stack


def start_venues(cfg: GatewayConfig, tmp: Path, keep_orders: bool = False) -> dict[str, VenueSimulator]:
    venues = {}
    for name, v in cfg.venues.items():
        store = tmp / "venues" / name
        sim = VenueSimulator(comp_id=name, port=v.port, sim=v.simulator, store_dir=store,
                             counterparties=(cfg.comp_id,), book_file=store / "book.json" if keep_orders else None)
        sim.start()
        venues[name] = sim
    return venues


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One running gateway stack shared by a test module (quickfix shutdown costs ~1 s per engine).

    Tests sharing it use fresh ClOrdIDs and leave no resting orders behind.
    """
    tmp = tmp_path_factory.mktemp("stack")
    s = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp)
    yield s
    s.stop()
