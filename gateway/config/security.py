"""Who may connect, and how, in gateway.cfg: TLS on client ports and to venues, the logon policy of an acceptor
session (addresses, password), the front door's connection limits on a public FIX port, and how secrets are named.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from gateway.config.strict import StrictModel

# a secret's name (an environment variable or a secrets file entry)
SECRET_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ServerTlsConfig(StrictModel):
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


class ClientTlsConfig(StrictModel):
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


class LogonPolicy(StrictModel):
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


class ConnectionHygiene(StrictModel):
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
