"""The whole of gateway.cfg: its top-level keys and sections, the operator HTTP port, the checks that span
sections (a name or port used twice, references to sessions and venues that do not exist), and what the sessions'
sequence resets cost, said at start-up."""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from gateway.config.cluster import ClusterConfig, InstanceConfig, ShardConfig, check_instances
from gateway.config.security import ServerTlsConfig
from gateway.config.sessions import AcceptorConfig, ClientConfig, DropCopyConfig, VenueConfig
from gateway.config.storage import (DATABASE_PASSWORD_ENV, DATABASE_URL_ENV, JournalConfig, RecoveryConfig,
                                    make_url_password)
from gateway.config.strict import StrictModel
from gateway.config.trading import LimitsConfig, RiskConfig, RoutingConfig


class HttpConfig(StrictModel):
    enabled: bool = True
    host: str = Field("127.0.0.1", description="address for /metrics, /health and the admin API; beyond loopback "
                      "only with [http.tls]")
    port: int = Field(9878, gt=0, lt=65536)
    tls: ServerTlsConfig | None = Field(
        None, description="HTTPS: the admin API's certificate (one for every instance of a cluster, naming each "
        "instance's http_host, or each from one CA: tls_ca); required when host is beyond loopback")
    tls_ca: Path | None = Field(
        None, description="what the fixgw commands trust for the admin API's certificate: CA certificates (PEM); "
        "unset: the certificate in [http.tls] cert itself")
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

    @model_validator(mode="after")
    def _tls_beyond_loopback(self) -> "HttpConfig":
        if self.enabled and self.tls is None and not is_loopback(self.host):
            raise ValueError(f"[http] host {self.host!r} is beyond loopback: the admin API and its bearer token "
                             "would cross the network in clear; set [http.tls] cert and key (HTTPS), or listen on "
                             "127.0.0.1 and reach it through a tunnel")
        return self


def is_loopback(host: str) -> bool:
    """``host`` names this machine only: localhost, or an address in 127.0.0.0/8 or ::1."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class GatewayConfig(StrictModel):
    comp_id: str = Field("FIXGW", min_length=1, description="our CompID: SenderCompID on every session we own, "
                         "TargetCompID of our clients' and drop-copy receivers' sessions")
    venue_comp_id: str | None = Field(
        None, min_length=1, description="SenderCompID of our sessions to the venues, where it is not comp_id (a "
        "shard's venue_comp_id in a sharded cluster)")
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
    cluster: ClusterConfig | None = Field(None, description="an active/standby cluster (docs/failover.md)")
    instance: dict[str, InstanceConfig] = Field(default_factory=dict,
                                                description="the cluster's instances, by name: what each overrides")
    shard: dict[str, ShardConfig] = Field(default_factory=dict, description="a sharded cluster's shards, by name: "
                                          "the sessions each serves (docs/scale-out.md)")

    @model_validator(mode="after")
    def _instances_of_the_cluster(self) -> "GatewayConfig":
        names = set(self.clients) | set(self.venues) | set(self.dropcopy.sessions)
        dropcopy = {name: tuple(s.clients) for name, s in self.dropcopy.sessions.items()}
        check_instances(self.cluster, self.instance, set(self.clients), self.shard, dropcopy, names)
        return self

    @property
    def venue_sender(self) -> str:
        """SenderCompID of our sessions to the venues: ``venue_comp_id``, else ``comp_id``."""
        return self.venue_comp_id or self.comp_id

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
        if self.venue_comp_id is not None and self.venue_comp_id in set(self.clients) | set(self.venues) | dc:
            raise ValueError(f"venue_comp_id {self.venue_comp_id} is also a session name")
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
        peers = self.cluster.peer_clients if self.cluster is not None else {}  # (a shard's: the other shards')
        for name, s in self.dropcopy.sessions.items():
            unknown = [c for c in s.clients if c not in self.clients and c not in peers]
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


def _reset_names(s: ClientConfig | VenueConfig) -> str:
    return ", ".join(k for k in ("reset_on_logon", "reset_on_logout", "reset_on_disconnect") if getattr(s, k))
