"""The gateway's configuration: one TOML file, validated by pydantic.

Every model is frozen and rejects unknown keys, so a typo in gateway.cfg stops
start-up with the key's name instead of being silently ignored. Prices are read
as Decimal (TOML floats are parsed straight to Decimal, never through float).
"""
from __future__ import annotations

import ipaddress
import os
import tomllib
from datetime import time as dt_time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from venuesim.config import SimulatorConfig

FixVersion = Literal["FIX.4.2", "FIX.4.4", "FIX.5.0"]
StrategyName = Literal["best-price", "preferred", "sweep"]
DATABASE_URL_ENV = "FIXGW_DATABASE_URL"
DATABASE_PASSWORD_ENV = "FIXGW_DATABASE_PASSWORD"
SECRETS_FILE_ENV = "FIXGW_SECRETS_FILE"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class ServerTlsConfig(_Strict):
    """TLS on a client session's port: the gateway's terminator (gateway/security/tls.py) serves it."""

    cert: Path = Field(description="the gateway's certificate chain (PEM) presented to clients")
    key: Path = Field(description="its private key (PEM, unencrypted, readable by the gateway's user only)")
    client_ca: Path | None = Field(None, description="CA certificates (PEM) that client certificates must chain to")
    verify_client: bool = Field(False, description="require a client certificate signed by client_ca")

    @model_validator(mode="after")
    def _ca_for_verification(self) -> "ServerTlsConfig":
        if self.verify_client and self.client_ca is None:
            raise ValueError("verify_client = true needs client_ca (the CA that signs the client certificates)")
        return self


class ClientTlsConfig(_Strict):
    """TLS to a venue: the gateway's initiator connects through the terminator (gateway/security/tls.py)."""

    ca: Path | None = Field(None, description="CA certificates (PEM) the venue's certificate must chain to; "
                                              "unset: the system's trusted CAs")
    cert: Path | None = Field(None, description="our client certificate (PEM), if the venue asks for one")
    key: Path | None = Field(None, description="its private key (PEM, unencrypted, owner-only permissions)")
    server_name: str | None = Field(None, description="name to verify the venue's certificate against "
                                                      "(default: host)")

    @model_validator(mode="after")
    def _cert_and_key(self) -> "ClientTlsConfig":
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both cert and key (a client certificate) or neither")
        return self


_SECRET_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


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


class _SequenceResets(_Strict):
    """quickfix's ResetOnLogon / ResetOnLogout / ResetOnDisconnect for one session (docs/operations.md,
    "Sequence number resets"). A reset sets both sequence numbers back to 1 and drops quickfix's stored
    sent messages, so nothing sent before it can be re-sent on the counterparty's request."""

    reset_on_logon: bool = Field(False, description="ResetOnLogon: reset the sequence numbers at every logon "
                                 "(an initiator sends ResetSeqNumFlag 141=Y; an acceptor resets whatever the "
                                 "counterparty sends, so it must log on with MsgSeqNum 1 too)")
    reset_on_logout: bool = Field(False, description="ResetOnLogout: reset them after a Logout exchange")
    reset_on_disconnect: bool = Field(False, description="ResetOnDisconnect: reset them whenever the connection "
                                      "ends (logout or not)")

    @property
    def resets(self) -> bool:
        """Whether any ResetOn* setting is on: quickfix keeps nothing sent while logged out for a resend."""
        return self.reset_on_logon or self.reset_on_logout or self.reset_on_disconnect

    def reset_settings(self) -> dict[str, str]:
        """The quickfix settings (only the ones switched on; quickfix's defaults are N)."""
        names = (("ResetOnLogon", self.reset_on_logon), ("ResetOnLogout", self.reset_on_logout),
                 ("ResetOnDisconnect", self.reset_on_disconnect))
        return {key: "Y" for key, on in names if on}


class VenueConfig(_SequenceResets):
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
    ack_timeout_s: float = Field(5, gt=0, le=3600, description="seconds to wait for the venue's answer to an order, "
                                 "cancel or replace before asking its state (OrderStatusRequest)")
    status_timeout_s: float = Field(5, gt=0, le=3600, description="seconds to wait for the status reply before the "
                                    "order is in doubt (alerted, `fixgw orders list --in-doubt`)")
    status_retry_s: float = Field(30, gt=0, le=86400, description="how often an order in doubt is asked again")
    reconcile_on_logon: bool = Field(True, description="when the venue's session logs on (after a disconnect or a "
                                     "restart), ask the state of every open order there and reconcile")
    mass_status: bool = Field(False, description="ask with one OrderMassStatusRequest (AF, FIX 4.4 and 5.0) "
                              "instead of one OrderStatusRequest per order; for venues that support it")
    simulator: SimulatorConfig | None = None
    tls: ClientTlsConfig | None = None
    username: str | None = Field(None, min_length=1, description="Username (553) in our Logon to the venue")
    password_secret: str | None = Field(
        None, pattern=_SECRET_NAME,
        description="name of the secret (environment variable or secrets file entry) holding the Password (554) "
                    "of our Logon to the venue")

    @model_validator(mode="after")
    def _sim_covers_symbols(self) -> "VenueConfig":
        if self.mass_status and self.fix_version == "FIX.4.2":
            raise ValueError("mass_status needs FIX 4.4 or 5.0: FIX 4.2 has no OrderMassStatusRequest (AF)")
        if self.simulator is not None:
            missing = [s for s in self.symbols if s not in self.simulator.prices]
            if missing:
                raise ValueError(f"simulator.prices has no reference price for {', '.join(missing)}")
        return self


class _LogonPolicy(_Strict):
    """Who may log on to an acceptor session (client or drop-copy): checked by gateway/security/auth.py at logon."""

    allowed_addresses: tuple[str, ...] = Field(
        (), description="source IP addresses or CIDR ranges (10.1.2.0/24) this session may log on from "
                        "(empty: any); checked by the gateway at logon")
    password_required: bool = Field(False, description="refuse logons without the right Username (553) and "
                                                       "Password (554); passwords: `fixgw credentials set`")
    username: str | None = Field(None, min_length=1, max_length=64,
                                 description="the Username (553) expected (default: the session's name)")

    @field_validator("allowed_addresses")
    @classmethod
    def _networks(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for v in values:
            try:
                ipaddress.ip_network(v, strict=True)
            except ValueError as exc:
                raise ValueError(f"{v!r} is not an IP address or CIDR range ({exc})") from None
        return values

    @field_validator("username")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("username must be printable text")
        return value

    @model_validator(mode="after")
    def _username_needs_password(self):
        if self.username is not None and not self.password_required:
            raise ValueError("username is only used with password_required = true")
        return self

    @property
    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(v) for v in self.allowed_addresses)

    def expected_username(self, name: str) -> str:
        return self.username or name


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


class ClientConfig(_Strategy, _LogonPolicy, _SequenceResets):
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
    port: int | None = Field(None, gt=0, lt=65536,
                             description="port this client connects to, if not [acceptor] port")
    schedule: ScheduleConfig | None = None
    accounts: tuple[str, ...] | None = Field(
        None, description="the Accounts (1) this session may use; unset: any. With a list, an order, cancel or "
                          "replace with another Account, or a new order without one, is rejected")
    tls: ServerTlsConfig | None = None
    demo_password_env: str | None = Field(
        None, pattern=_SECRET_NAME,
        description="fixgw demo only: set this session's password (stored hashed) from this environment "
                    "variable at start-up; without it the session stays disabled")

    @model_validator(mode="after")
    def _demo_password_needs_password(self) -> "ClientConfig":
        if self.demo_password_env is not None and not self.password_required:
            raise ValueError("demo_password_env is only used with password_required = true")
        return self


class _ConnectionHygiene(_Strict):
    """What the front door (gateway/security/frontdoor.py) allows a connection on a public FIX port.

    Defaults: a FIX client sends its Logon as soon as it connects (10 s also covers a TLS
    handshake and a slow link); 64 KiB is hundreds of times an order or a Logon, and keeps
    what one connection may make the gateway buffer small; 20 connections per address
    leave room for a host's sessions and their reconnects while one address cannot hold
    hundreds of connections (and buffers) open.
    """

    prelogon_timeout_s: float = Field(10, gt=0, le=300, description="a connection whose Logon is not complete "
                                      "this many seconds after it connected is closed")
    max_message_bytes: int = Field(65536, ge=1024, le=16 * 1024 * 1024, description="a message (from its 8= "
                                   "to its CheckSum) over this size, or a BodyLength announcing one, closes the "
                                   "connection, before or after the logon")
    max_connections_per_address: int = Field(20, ge=1, le=10000, description="open connections per source "
                                             "address on these ports (vetted or logged on); more are closed at once")

    @property
    def limits(self):
        from gateway.security.frontdoor import Limits

        return Limits(float(self.prelogon_timeout_s), self.max_message_bytes, self.max_connections_per_address)


class AcceptorConfig(_ConnectionHygiene):
    # quickfix 1.16 binds its acceptor to every interface; there is no bind-address
    # setting. The gateway's front door owns this port and relays vetted connections
    # to quickfix's internal loopback port. Restrict sources per session with
    # clients.NAME.allowed_addresses (checked by the gateway at logon).
    port: int = Field(9876, gt=0, lt=65536)


class HttpConfig(_Strict):
    enabled: bool = True
    host: str = Field("127.0.0.1", description="address for /metrics and /health; keep it local unless needed")
    port: int = Field(9878, gt=0, lt=65536)
    # Connection hygiene (gateway/admin/http_guard.py): a silent, slow or oversized client cannot hold the port.
    request_timeout_s: float = Field(
        10.0, gt=0, le=300,
        description="a request (line, headers and body) not fully received this many seconds after the "
                    "connection opened is answered 408 and closed; also bounds writing the answer")
    max_header_bytes: int = Field(16384, ge=1024, le=65536,
                                  description="request line and headers larger than this are refused (431)")
    max_body_bytes: int = Field(65536, ge=1024, le=16 * 1024 * 1024,
                                description="a request body (Content-Length) larger than this is refused (413)")
    max_connections_per_address: int = Field(
        16, ge=1, le=1024,
        description="open connections from one source address; more are closed at once, unread")


class DropCopySessionConfig(_LogonPolicy, _SequenceResets):
    """One drop-copy receiver (a broker or clearing firm): the table name is its CompID."""

    fix_version: FixVersion
    reports: Literal["client", "venue", "both"] = Field(
        "client", description="client-side reports (sent to clients), venue-side (received from venues) or both")
    clients: tuple[str, ...] = Field((), description="only these client sessions' orders (empty: all)")
    accounts: tuple[str, ...] = Field((), description="only these accounts (Account, 1) (empty: all)")
    venues: tuple[str, ...] = Field((), description="only orders routed to these venues (empty: all)")
    tls: ClassVar[None] = None  # drop-copy receivers connect over plain FIX (the gateway's TLS is for clients)


class DropCopyConfig(_ConnectionHygiene):
    # A second ThreadedSocketAcceptor, behind the front door on its own port (the same connection
    # limits, set here for this port); restrict sources per session with allowed_addresses.
    port: int = Field(9877, gt=0, lt=65536)
    sessions: dict[str, DropCopySessionConfig] = Field(default_factory=dict)


class JournalConfig(_Strict):
    database_url: str = "sqlite:///var/journal.db"
    batch_max: int = Field(2000, ge=1, description="most rows in one commit")
    flush_interval_ms: int = Field(5, ge=1, description="longest a row waits before its batch commits")
    writer: Literal["process", "thread"] = Field(
        "process", description="process: the rows are committed by a child process that reads the spool "
        "(gateway/journal/process.py), off the gateway's GIL; thread: by a thread of the gateway process")
    retention_days: float | None = Field(None, gt=0, description="every day, prune journal rows older than this "
                                         "(unset: keep everything); `fixgw journal verify` keeps working")
    retention_time: dt_time = Field(dt_time(2, 0), description="when the daily retention job runs (UTC)")
    archive_dir: Path | None = Field(None, description="retention writes the rows it prunes here first "
                                     "(gzip'd JSON lines); unset: pruned rows are gone")


class RiskConfig(_Strict):
    rules_file: Path | None = Field(None, description="pre-trade risk rules (TOML); unset: no risk checks")
    reference_prices: dict[str, Decimal] = Field(
        default_factory=dict, description="reference price per symbol until the first trade is seen")
    # Per-day usage (risk/days.py): an account's daily notional rolls here; a client session's throttle breach
    # count rolls at its own [clients.NAME.schedule] start (00:00:00 UTC without a schedule).
    trading_day_start: dt_time = Field(
        dt_time(0), description="UTC time (HH:MM:SS) the trading day begins for per-account daily usage "
                                "(max_daily_notional): it starts again from the open orders then")

    @field_validator("trading_day_start")
    @classmethod
    def _whole_seconds_utc(cls, t: dt_time) -> dt_time:
        if t.tzinfo is not None or t.microsecond:
            raise ValueError("trading_day_start is whole seconds, HH:MM:SS, UTC, without a zone")
        return t


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


class LimitsConfig(_Strict):
    """What a client's order may carry at all (sessions/codec.py, "Intake rule"): beyond these the message
    gets a session Reject naming the tag (373=5) and no order is created. Not risk limits ([risk] is for
    those): these are the sizes the gateway can carry through and write back exactly, so the ceilings keep
    every accepted value within what the codec formats without rounding (10**15, 10 decimal places)."""

    max_qty: Decimal = Field(Decimal(10) ** 12, gt=0, le=Decimal(10) ** 15,
                             description="largest OrderQty (38) accepted, in units")
    max_price: Decimal = Field(Decimal(10) ** 12, gt=0, le=Decimal(10) ** 15,
                               description="largest Price (44) or StopPx (99) accepted, in absolute value")
    max_decimals: int = Field(8, ge=0, le=10, description="most decimal places of a quantity or price "
                                                          "(trailing zeros not counted)")
    rejected_orders_kept: int = Field(10_000, ge=0, le=1_000_000,
                                      description="new orders refused at intake kept for `fixgw orders list "
                                                  "--state rejected` (the oldest dropped past it); 0: none")


class GatewayConfig(_Strict):
    comp_id: str = "FIXGW"
    data_dir: Path = Path("var")
    secrets_file: Path | None = Field(
        None, description="TOML file of secrets (NAME = \"value\"), mode 0600; the environment overrides it")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="stderr lines as logfmt (text) or JSON")
    acceptor: AcceptorConfig = AcceptorConfig()
    http: HttpConfig = HttpConfig()
    journal: JournalConfig = JournalConfig()
    risk: RiskConfig = RiskConfig()
    recovery: RecoveryConfig = RecoveryConfig()
    routing: RoutingConfig = RoutingConfig()
    limits: LimitsConfig = LimitsConfig()
    clients: dict[str, ClientConfig] = Field(default_factory=dict)
    venues: dict[str, VenueConfig] = Field(default_factory=dict)
    dropcopy: DropCopyConfig = DropCopyConfig()

    @model_validator(mode="after")
    def _names_unique(self) -> "GatewayConfig":
        both = set(self.clients) & set(self.venues)
        if both:
            raise ValueError(f"names used for both a client and a venue: {', '.join(sorted(both))}")
        dc = set(self.dropcopy.sessions)
        taken = dc & (set(self.clients) | set(self.venues))
        if taken:
            raise ValueError(f"drop-copy session names also used for a client or venue: {', '.join(sorted(taken))}")
        if self.comp_id in self.clients or self.comp_id in self.venues or self.comp_id in dc:
            raise ValueError(f"comp_id {self.comp_id} is also a session name")
        if self.http.enabled and self.http.port in self.client_ports():
            raise ValueError(f"port {self.http.port} is both the [http] port and a client acceptor port")
        by_port: dict[int, list[str]] = {}
        for name in self.clients:
            by_port.setdefault(self.client_port(name), []).append(name)
        for port, names in by_port.items():
            if len({self.clients[n].tls for n in names}) > 1:
                raise ValueError(f"clients on port {port} ({', '.join(names)}) must all have the same tls "
                                 "settings (a port is TLS or plaintext); give a TLS session a port of its own")
        if make_url_password(self.journal.database_url):
            raise ValueError("journal.database_url holds a password: keep it out of the configuration file; set "
                             f"{DATABASE_PASSWORD_ENV} (environment or secrets file) or {DATABASE_URL_ENV}")
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

    @model_validator(mode="after")
    def _dropcopy_refers_to_known_sessions(self) -> "GatewayConfig":
        problems = []
        for name, s in self.dropcopy.sessions.items():
            unknown = [c for c in s.clients if c not in self.clients]
            if unknown:
                problems.append(f"dropcopy.sessions.{name}.clients: unknown client session(s) {', '.join(unknown)}")
            unknown = [v for v in s.venues if v not in self.venues]
            if unknown:
                problems.append(f"dropcopy.sessions.{name}.venues: unknown venue(s) {', '.join(unknown)}")
        if self.dropcopy.sessions:
            if self.dropcopy.port == self.acceptor.port:
                problems.append(f"dropcopy.port {self.dropcopy.port} is also the client acceptor's port")
            if self.http.enabled and self.dropcopy.port == self.http.port:
                problems.append(f"dropcopy.port {self.dropcopy.port} is also the HTTP port")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def sequence_reset_warnings(cfg: GatewayConfig) -> list[str]:
    """What the sessions' ResetOn* settings cost, said once at start-up (nothing is refused: each is a
    counterparty agreement). quickfix keeps no message sent while such a session is logged out for a
    resend after the reset: it drops it at once (``sendToTarget`` gives False when the store is already
    reset) or discards it with the store at the next reset. Drop-copy sessions lose nothing: the
    gateway holds their copies until the receiver is logged on (gateway/dropcopy/service.py)."""
    out = []
    for name, c in cfg.clients.items():
        if c.resets:
            out.append(f"clients.{name} resets its sequence numbers ({_reset_names(c)}): ExecutionReports made "
                       "while it is logged out are not re-sent after its next logon; it learns of them with an "
                       "OrderStatusRequest (H)" + ("" if c.cancel_on_disconnect else
                                                   ", and its resting orders may fill meanwhile") +
                       " (the journal and drop copies have them)")
    for name, v in cfg.venues.items():
        if v.resets and v.on_disconnect == "hold" and not v.reconcile_on_logon:
            out.append(f"venues.{name} resets its sequence numbers ({_reset_names(v)}) with on_disconnect = "
                       "\"hold\" and reconcile_on_logon = false: what the venue reported while the session was "
                       "down is not re-sent after the reset, so an order it filled or canceled meanwhile stays "
                       "open here until the venue reports on it again (keep reconcile_on_logon, or use cancel or "
                       "reroute for a venue that cancels on disconnect)")
    return out


def _reset_names(s: _SequenceResets) -> str:
    return ", ".join(k for k in ("reset_on_logon", "reset_on_logout", "reset_on_disconnect") if getattr(s, k))


def make_url_password(url: str) -> str | None:
    """The password in a SQLAlchemy URL, or None (also for a URL that does not parse)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid; the message says where."""


def _under(base: Path, p: Path | None) -> Path | None:
    return None if p is None else (p if p.is_absolute() else (base / p).resolve())


def _resolve_tls(base: Path, tls):
    if tls is None:
        return None
    keys = [k for k in ("cert", "key", "client_ca", "ca") if k in type(tls).model_fields]
    return tls.model_copy(update={k: _under(base, getattr(tls, k)) for k in keys})


def _resolve(base: Path, cfg: GatewayConfig, env: dict[str, str]) -> GatewayConfig:
    data_dir = cfg.data_dir if cfg.data_dir.is_absolute() else (base / cfg.data_dir)
    url = env.get(DATABASE_URL_ENV) or cfg.journal.database_url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://" and ":memory:" not in url:
        url = prefix + str((base / url[len(prefix):]).resolve())
    password = env.get(DATABASE_PASSWORD_ENV)
    if password and not url.startswith("sqlite") and make_url_password(url) is None:
        from sqlalchemy.engine import make_url

        url = make_url(url).set(password=password).render_as_string(hide_password=False)
    journal = cfg.journal.model_copy(update={"database_url": url})
    if journal.archive_dir is not None and not journal.archive_dir.is_absolute():
        journal = journal.model_copy(update={"archive_dir": (base / journal.archive_dir).resolve()})
    risk = cfg.risk
    if risk.rules_file is not None and not risk.rules_file.is_absolute():
        risk = risk.model_copy(update={"rules_file": (base / risk.rules_file).resolve()})
    clients = {n: c.model_copy(update={"tls": _resolve_tls(base, c.tls)}) for n, c in cfg.clients.items()}
    venues = {n: v.model_copy(update={"tls": _resolve_tls(base, v.tls)}) for n, v in cfg.venues.items()}
    return cfg.model_copy(update={"data_dir": data_dir.resolve(), "journal": journal, "risk": risk,
                                  "secrets_file": _under(base, cfg.secrets_file), "clients": clients,
                                  "venues": venues})


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
    if env is None:
        from gateway.security import secretstore
        # secrets: the environment first, then the secrets file (its permissions checked)
        path = os.environ.get(SECRETS_FILE_ENV) or _under(base, cfg.secrets_file)
        try:
            secretstore.use_file(Path(path) if path else None)
        except secretstore.SecretsError as exc:
            raise ConfigError(str(exc)) from None
        env = secretstore.merged_env()
    return _resolve(base, cfg, env)


def load_config(path: str | Path, env: dict[str, str] | None = None) -> GatewayConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    return parse_config(text, p.resolve().parent, env, source=str(p))
