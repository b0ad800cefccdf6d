"""The gateway's configuration: one TOML file, validated by pydantic.

Every model is frozen and rejects unknown keys, so a typo in gateway.cfg stops
start-up with the key's name instead of being silently ignored. Prices are read
as Decimal (TOML floats are parsed straight to Decimal, never through float).
"""
from __future__ import annotations

import os
import tomllib
from datetime import time as dt_time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

FixVersion = Literal["FIX.4.2", "FIX.4.4", "FIX.5.0"]
StrategyName = Literal["best-price", "preferred", "sweep"]
DATABASE_URL_ENV = "FIXGW_DATABASE_URL"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulatorConfig(_Strict):
    """A synthetic book per symbol, used by `fixgw venue-sim` and `fixgw demo`."""

    prices: dict[str, Decimal] = Field(description="reference (mid) price per symbol")
    tick: Decimal = Decimal("0.01")
    half_spread_ticks: int = Field(1, ge=1, description="best bid/ask sit this many ticks from the reference")
    depth: int = Field(5, ge=1, le=50, description="price levels per side")
    level_size: Decimal = Field(Decimal(500), gt=0, description="size of the best level; level n holds n * level_size")
    reject_symbols: tuple[str, ...] = Field((), description="symbols this venue rejects (for UAT of reject paths)")
    md_refresh_s: Decimal = Field(Decimal(1), ge=0, le=3600,
                                  description="seconds between full snapshots to market data subscribers "
                                              "(on top of every change); 0: only on changes")
    md_changes: bool = Field(True, description="publish every change of the book; false: only the periodic "
                                               "snapshots (a conflated feed, whose quotes lag the book)")
    cancel_on_disconnect: bool = Field(False, description="cancel a session's resting orders when it logs out "
                                                          "or drops (it hears of them when it logs on again)")

    @field_validator("prices")
    @classmethod
    def _positive(cls, prices: dict[str, Decimal]) -> dict[str, Decimal]:
        bad = [s for s, p in prices.items() if p <= 0]
        if bad:
            raise ValueError(f"reference prices must be positive: {', '.join(bad)}")
        return prices


WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
Weekday = Literal["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


class ScheduleConfig(_Strict):
    """When a FIX session may be logged on: quickfix's StartTime/EndTime (and StartDay/EndDay), in UTC.

    Outside the window quickfix logs the session out and refuses logons; each new
    window is a new FIX session (sequence numbers start again at 1). Without
    days the window repeats daily; with start_day and end_day it is weekly
    (e.g. sun 21:00:00 to fri 21:00:00). quickfix 1.16 has no per-session time
    zone, so times are UTC.
    """

    start: dt_time = Field(description="UTC time the session opens, HH:MM:SS")
    end: dt_time = Field(description="UTC time the session closes, HH:MM:SS")
    start_day: Weekday | None = None
    end_day: Weekday | None = None

    @model_validator(mode="after")
    def _days_together(self) -> "ScheduleConfig":
        if (self.start_day is None) != (self.end_day is None):
            raise ValueError("give both start_day and end_day (a weekly session) or neither (a daily one)")
        for t in (self.start, self.end):
            if t.tzinfo is not None or t.microsecond:
                raise ValueError("schedule times are whole seconds, HH:MM:SS, UTC, without a zone")
        return self

    def quickfix_settings(self) -> dict[str, str]:
        out = {"StartTime": self.start.strftime("%H:%M:%S"), "EndTime": self.end.strftime("%H:%M:%S")}
        if self.start_day is not None:
            out |= {"StartDay": self.start_day, "EndDay": self.end_day}
        return out

    def describe(self) -> str:
        if self.start_day is None:
            return f"{self.start:%H:%M:%S}-{self.end:%H:%M:%S} UTC daily"
        return f"{self.start_day} {self.start:%H:%M:%S} - {self.end_day} {self.end:%H:%M:%S} UTC weekly"


def describe_schedule(schedule: ScheduleConfig | None) -> str:
    """A session's window as operators read it (no schedule: quickfix's 00:00:00-00:00:00, all day)."""
    if schedule is None:
        return "00:00:00-00:00:00 UTC daily (all day)"
    return schedule.describe()


class MarketDataConfig(_Strict):
    """The venue's bids and offers, subscribed to when its session logs on (MarketDataRequest V)."""

    enabled: bool = True
    depth: int = Field(5, ge=0, le=100, description="price levels per side to ask for (MarketDepth); 0: all")
    updates: Literal["incremental", "snapshot"] = Field(
        "incremental", description="incremental refreshes (X) or full snapshots (W) on every change")


class FeesConfig(_Strict):
    """What the venue charges per share, in the price's currency; a negative fee is a rebate."""

    take: Decimal = Field(Decimal(0), ge=-1, le=1, description="an order that removes liquidity (trades on arrival)")
    make: Decimal = Field(Decimal(0), ge=-1, le=1, description="an order that rests and is hit")


class VenueConfig(_Strict):
    fix_version: FixVersion
    host: str = "127.0.0.1"
    port: int = Field(gt=0, lt=65536)
    symbols: tuple[str, ...] = Field(min_length=1)
    heartbeat_s: int = Field(30, gt=0)
    reconnect_s: int = Field(5, gt=0)
    schedule: ScheduleConfig | None = None
    market_data: MarketDataConfig = MarketDataConfig()
    fees: FeesConfig = FeesConfig()
    priority: int = Field(0, ge=0, le=1000, description="lower is preferred when prices tie; equal priorities "
                                                        "keep this file's order")
    on_disconnect: Literal["hold", "cancel", "reroute"] = Field(
        "hold", description="its open orders when its session drops: hold (wait for the venue to report them), "
                            "cancel (the venue cancels on disconnect: treat them as canceled) or reroute (as "
                            "cancel, and route what they held to the other venues)")
    simulator: SimulatorConfig | None = None

    @model_validator(mode="after")
    def _sim_covers_symbols(self) -> "VenueConfig":
        if self.simulator is not None:
            missing = [s for s in self.symbols if s not in self.simulator.prices]
            if missing:
                raise ValueError(f"simulator.prices has no reference price for {', '.join(missing)}")
        return self


class _Strategy(_Strict):
    strategy: StrategyName | None = Field(None, description="best-price, preferred or sweep")
    preferred_venues: tuple[str, ...] = Field((), description="preferred: the named venue, then its fallbacks")

    @model_validator(mode="after")
    def _venues_for_preferred(self):
        if self.preferred_venues and self.strategy != "preferred":
            raise ValueError("preferred_venues needs strategy = \"preferred\"")
        if len(set(self.preferred_venues)) != len(self.preferred_venues):
            raise ValueError("preferred_venues names a venue twice")
        return self


class AccountRouting(_Strategy):
    strategy: StrategyName


class ClientConfig(_Strategy):
    fix_version: FixVersion
    pending_new: bool = Field(True, description="acknowledge with PendingNew before the venue's New")
    cancel_on_disconnect: bool = Field(
        False, description="when the session logs out or drops, cancel its open Day orders at the venues")
    end_of_day: dt_time | None = Field(
        None, description="local time (HH:MM:SS) at which the session's open Day orders expire")
    timezone: str = Field("UTC", description="IANA time zone of end_of_day, e.g. America/New_York")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (use an IANA name such as America/New_York)") from None
        return name
    allowed_addresses: tuple[str, ...] = Field(
        (), description="source IP addresses this session may connect from (empty: any)")
    port: int | None = Field(None, gt=0, lt=65536,
                             description="port this client connects to, if not [acceptor] port")
    schedule: ScheduleConfig | None = None


class AcceptorConfig(_Strict):
    # quickfix 1.16 binds its acceptor to every interface; there is no bind-address
    # setting. Restrict sources per session with clients.NAME.allowed_addresses.
    port: int = Field(9876, gt=0, lt=65536)


class HttpConfig(_Strict):
    enabled: bool = True
    host: str = Field("127.0.0.1", description="address for /metrics and /health; keep it local unless needed")
    port: int = Field(9878, gt=0, lt=65536)


class JournalConfig(_Strict):
    database_url: str = "sqlite:///var/journal.db"
    batch_max: int = Field(2000, ge=1, description="most rows in one commit")
    flush_interval_ms: int = Field(5, ge=1, description="longest a row waits before its batch commits")


class RiskConfig(_Strict):
    rules_file: Path | None = Field(None, description="pre-trade risk rules (TOML); unset: no risk checks")
    reference_prices: dict[str, Decimal] = Field(
        default_factory=dict, description="reference price per symbol until the first trade is seen")


class RecoveryConfig(_Strict):
    fsync: bool = Field(False, description="flush the order-state log to disk after every command: survives a "
                                           "power cut, not only a process crash, at the cost of a disk flush each")
    venue_wait_s: float = Field(10, ge=0, le=300, description="after a crash, how long start-up waits for the "
                                "venues before processing client messages received before the crash")


class RoutingConfig(_Strategy):
    """The smart order router's gateway-wide settings: the default strategy, per-account strategies."""

    strategy: StrategyName = Field("preferred", description="for orders whose account and session name none")
    max_quote_age_s: Decimal = Field(Decimal(5), gt=0, le=3600,
                                     description="a venue's quote older than this is not trusted for routing")
    accounts: dict[str, AccountRouting] = Field(default_factory=dict,
                                                description="strategy per Account (1), before the session's")
    max_reroutes: int = Field(0, ge=0, le=10, description="how often one order's rejected (or, with on_disconnect "
                                                         "= reroute, lost) quantity is routed again; 0: never")


class GatewayConfig(_Strict):
    comp_id: str = "FIXGW"
    data_dir: Path = Path("var")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="stderr lines as logfmt (text) or JSON")
    acceptor: AcceptorConfig = AcceptorConfig()
    http: HttpConfig = HttpConfig()
    journal: JournalConfig = JournalConfig()
    risk: RiskConfig = RiskConfig()
    recovery: RecoveryConfig = RecoveryConfig()
    routing: RoutingConfig = RoutingConfig()
    clients: dict[str, ClientConfig] = Field(default_factory=dict)
    venues: dict[str, VenueConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names_unique(self) -> "GatewayConfig":
        both = set(self.clients) & set(self.venues)
        if both:
            raise ValueError(f"names used for both a client and a venue: {', '.join(sorted(both))}")
        if self.comp_id in self.clients or self.comp_id in self.venues:
            raise ValueError(f"comp_id {self.comp_id} is also a session name")
        if self.http.enabled and self.http.port in self.client_ports():
            raise ValueError(f"port {self.http.port} is both the [http] port and a client acceptor port")
        lists = [("routing", self.routing.preferred_venues)]
        lists += [(f"routing.accounts.{a}", r.preferred_venues) for a, r in self.routing.accounts.items()]
        lists += [(f"clients.{c}", cfg.preferred_venues) for c, cfg in self.clients.items()]
        for where, names in lists:
            unknown = [n for n in names if n not in self.venues]
            if unknown:
                raise ValueError(f"{where}.preferred_venues names {', '.join(unknown)}, not a configured venue")
        return self

    def client_port(self, name: str) -> int:
        """The port a client session is accepted on."""
        return self.clients[name].port or self.acceptor.port

    def client_ports(self) -> set[int]:
        return {self.client_port(name) for name in self.clients}


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid; the message says where."""


def _resolve(base: Path, cfg: GatewayConfig, env: dict[str, str]) -> GatewayConfig:
    data_dir = cfg.data_dir if cfg.data_dir.is_absolute() else (base / cfg.data_dir)
    url = env.get(DATABASE_URL_ENV) or cfg.journal.database_url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://" and ":memory:" not in url:
        url = prefix + str((base / url[len(prefix):]).resolve())
    journal = cfg.journal.model_copy(update={"database_url": url})
    risk = cfg.risk
    if risk.rules_file is not None and not risk.rules_file.is_absolute():
        risk = risk.model_copy(update={"rules_file": (base / risk.rules_file).resolve()})
    return cfg.model_copy(update={"data_dir": data_dir.resolve(), "journal": journal, "risk": risk})


def parse_config(text: str, base: Path, env: dict[str, str] | None = None, source: str = "<config>") -> GatewayConfig:
    try:
        raw = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        cfg = GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{source}: invalid configuration:"]
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {where}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
    return _resolve(base, cfg, dict(os.environ) if env is None else env)


def load_config(path: str | Path, env: dict[str, str] | None = None) -> GatewayConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    return parse_config(text, p.resolve().parent, env, source=str(p))
