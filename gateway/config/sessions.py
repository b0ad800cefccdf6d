"""The FIX sessions of gateway.cfg: client sessions and the acceptor port, venues (their market data, fees,
failover and status timeouts), drop-copy receivers and their port; when each may be logged on (schedules) and
whether it resets its sequence numbers."""
from __future__ import annotations

from datetime import time as dt_time
from decimal import Decimal
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from gateway.config.security import SECRET_NAME, ClientTlsConfig, ConnectionHygiene, LogonPolicy, ServerTlsConfig
from gateway.config.strict import StrictModel
from gateway.config.trading import StrategyChoice
from venuesim.config import SimulatorConfig

FixVersion = Literal["FIX.4.2", "FIX.4.4", "FIX.5.0"]

WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
Weekday = Literal["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


class ScheduleConfig(StrictModel):
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


class MarketDataConfig(StrictModel):
    """The venue's bids and offers, subscribed to when its session logs on (MarketDataRequest V)."""

    enabled: bool = True
    depth: int = Field(5, ge=0, le=100, description="price levels per side to ask for (MarketDepth); 0: all")
    updates: Literal["incremental", "snapshot"] = Field(
        "incremental", description="incremental refreshes (X) or full snapshots (W) on every change")


class FeesConfig(StrictModel):
    """What the venue charges per share, in the price's currency; a negative fee is a rebate."""

    take: Decimal = Field(Decimal(0), ge=-1, le=1, description="an order that removes liquidity (trades on arrival)")
    make: Decimal = Field(Decimal(0), ge=-1, le=1, description="an order that rests and is hit")


class _SequenceResets(StrictModel):
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
        None, pattern=SECRET_NAME,
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


class ClientConfig(StrategyChoice, LogonPolicy, _SequenceResets):
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
        None, pattern=SECRET_NAME,
        description="fixgw demo only: set this session's password (stored hashed) from this environment "
                    "variable at start-up; without it the session stays disabled")

    @model_validator(mode="after")
    def _demo_password_needs_password(self) -> "ClientConfig":
        if self.demo_password_env is not None and not self.password_required:
            raise ValueError("demo_password_env is only used with password_required = true")
        return self


class AcceptorConfig(ConnectionHygiene):
    # quickfix 1.16 binds its acceptor to every interface; there is no bind-address
    # setting. The gateway's front door owns this port and relays vetted connections
    # to quickfix's internal loopback port. Restrict sources per session with
    # clients.NAME.allowed_addresses (checked by the gateway at logon).
    port: int = Field(9876, gt=0, lt=65536)


class DropCopySessionConfig(LogonPolicy, _SequenceResets):
    """One drop-copy receiver (a broker or clearing firm): the table name is its CompID."""

    fix_version: FixVersion
    reports: Literal["client", "venue", "both"] = Field(
        "client", description="client-side reports (sent to clients), venue-side (received from venues) or both")
    clients: tuple[str, ...] = Field((), description="only these client sessions' orders (empty: all)")
    accounts: tuple[str, ...] = Field((), description="only these accounts (Account, 1) (empty: all)")
    venues: tuple[str, ...] = Field((), description="only orders routed to these venues (empty: all)")
    tls: ClassVar[None] = None  # drop-copy receivers connect over plain FIX (the gateway's TLS is for clients)


class DropCopyConfig(ConnectionHygiene):
    # A second ThreadedSocketAcceptor, behind the front door on its own port (the same connection
    # limits, set here for this port); restrict sources per session with allowed_addresses.
    port: int = Field(9877, gt=0, lt=65536)
    sessions: dict[str, DropCopySessionConfig] = Field(default_factory=dict)
