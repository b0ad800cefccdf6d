"""The gateway's configuration: one TOML file (gateway.cfg), validated by pydantic.

Every model is frozen and rejects unknown keys, so a typo in gateway.cfg stops
start-up with the key's name instead of being silently ignored. Prices are read
as Decimal (TOML floats are parsed straight to Decimal, never through float).

This package's public surface is what it re-exports here: the rest of the gateway
imports the configuration from ``gateway.config``, not from its modules, which
are split by section of the file:

- ``sessions``: client sessions and the acceptor port, venues, drop-copy receivers,
  their schedules and sequence resets;
- ``security``: TLS, the logon policy of acceptor sessions, the front door's
  connection limits, secret names;
- ``trading``: routing strategies, pre-trade risk, intake limits;
- ``storage``: the journal and the order-state log;
- ``cluster``: an active/standby cluster and what each of its instances overrides;
- ``root``: the whole file (``GatewayConfig``), the operator HTTP port, the
  sequence-reset warnings said at start-up;
- ``loading``: reading and resolving the file (``load_config``, ``parse_config``);
- ``strict``: the base every model shares.
"""
from gateway.config.cluster import ClusterConfig, InstanceConfig
from gateway.config.loading import SECRETS_FILE_ENV, ConfigError, load_config, parse_config
from gateway.config.root import GatewayConfig, HttpConfig, sequence_reset_warnings
from gateway.config.security import ClientTlsConfig, ServerTlsConfig
from gateway.config.sessions import (
    AcceptorConfig, ClientConfig, DropCopyConfig, DropCopySessionConfig, FeesConfig, MarketDataConfig,
    ScheduleConfig, VenueConfig, describe_schedule,
)
from gateway.config.storage import (DATABASE_PASSWORD_ENV, DATABASE_URL_ENV, JournalConfig, RecoveryConfig,
                                    make_url_password)
from gateway.config.trading import AccountRouting, LimitsConfig, RiskConfig, RoutingConfig

__all__ = [
    "DATABASE_PASSWORD_ENV", "DATABASE_URL_ENV", "SECRETS_FILE_ENV", "AcceptorConfig", "AccountRouting",
    "ClientConfig", "ClientTlsConfig", "ClusterConfig", "ConfigError", "DropCopyConfig", "DropCopySessionConfig",
    "FeesConfig", "GatewayConfig", "HttpConfig", "InstanceConfig", "JournalConfig", "LimitsConfig",
    "MarketDataConfig", "RecoveryConfig", "RiskConfig", "RoutingConfig", "ScheduleConfig", "ServerTlsConfig",
    "VenueConfig", "describe_schedule", "load_config", "make_url_password", "parse_config",
    "sequence_reset_warnings",
]
