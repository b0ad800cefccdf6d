"""An active/standby cluster in gateway.cfg: the ``[cluster]`` section (its name, the lease, what a takeover
adds to each session's sequence numbers) and the ``[instance.NAME]`` sections, each overriding what must differ
between the instances of one cluster (data directory, ports), one of which `fixgw run --instance NAME` picks.

Instances share the rest of the file: sessions, venues, risk, the journal. They share nothing else but the
PostgreSQL database the journal is in (docs/failover.md).
"""
from __future__ import annotations

import copy
from pathlib import Path

from pydantic import Field, field_validator

from gateway.config.strict import StrictModel

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def _check_name(value: str, what: str) -> str:
    if not value or not set(value) <= _NAME_CHARS or len(value) > 64:
        raise ValueError(f"{what} names are 1 to 64 letters, digits, '_', '-' or '.', got {value!r}")
    return value


class ClusterConfig(StrictModel):
    """The cluster this gateway's instances form: one of them active (holding the lease), the others standing
    by. ``instance_name`` is not a key of the file: `fixgw run --instance NAME` sets it."""

    name: str = Field(description="the cluster's name: the lease's row, and what `fixgw cluster status` reads")
    lease_ttl_s: float = Field(
        3.0, ge=0.2, le=60, description="how long the lease lasts unless renewed (renewed every third of it): the "
        "active is declared lost this long after its last renewal, and a standby takes over soon after")
    seq_gap: int = Field(
        1000, ge=0, le=1_000_000, description="a successor continues each session's outgoing MsgSeqNum this many "
        "numbers past the journal's last, so messages the old active sent and never committed to the journal are "
        "never numbered twice; the counterparty asks for the gap and gets a gap fill (docs/failover.md)")
    instance_name: str | None = Field(None, description="the instance this process runs as (`--instance`)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "cluster")


class InstanceConfig(StrictModel):
    """What one instance of the cluster changes in the rest of the file; unset keys keep the file's value."""

    data_dir: Path | None = Field(None, description="its own data directory (spool, state, stores, credentials)")
    acceptor_port: int | None = Field(None, gt=0, lt=65536, description="[acceptor] port: clients connect here")
    client_ports: dict[str, int] = Field(default_factory=dict,
                                         description="clients.NAME.port for clients with a port of their own")
    dropcopy_port: int | None = Field(None, gt=0, lt=65536, description="[dropcopy] port")
    http_host: str | None = Field(None, description="[http] host")
    http_port: int | None = Field(None, gt=0, lt=65536, description="[http] port")

    @field_validator("client_ports")
    @classmethod
    def _ports(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [f"{n}={p}" for n, p in value.items() if not 0 < p < 65536]
        if bad:
            raise ValueError(f"ports must be from 1 to 65535: {', '.join(bad)}")
        return value


def check_instances(cluster: ClusterConfig | None, instances: dict[str, InstanceConfig], clients: set[str]) -> None:
    """The file's instance sections against its cluster and clients (ValueError naming the problem)."""
    if instances and cluster is None:
        raise ValueError(f"instance sections ({', '.join(sorted(instances))}) need a [cluster] section")
    for name, inst in instances.items():
        _check_name(name, "instance")
        unknown = sorted(set(inst.client_ports) - clients)
        if unknown:
            raise ValueError(f"instance.{name}.client_ports names {', '.join(unknown)}, not a configured client")


def with_instance(raw: dict, instances: dict[str, InstanceConfig], cluster: ClusterConfig | None, name: str) -> dict:
    """The file's TOML (``raw``) as instance ``name`` runs it: its section's overrides applied, and
    ``[cluster] instance_name`` set. ValueError for a file without a cluster or an unknown name."""
    if cluster is None:
        raise ValueError(f"--instance {name}: the configuration has no [cluster] section (a single gateway runs "
                         "without --instance)")
    if name not in instances:
        known = ", ".join(sorted(instances)) or "none"
        raise ValueError(f"no instance {name!r} in the configuration; its instances: {known}")
    inst = instances[name]
    out = copy.deepcopy(raw)
    if inst.data_dir is not None:
        out["data_dir"] = str(inst.data_dir)
    for section, key, value in (("acceptor", "port", inst.acceptor_port), ("dropcopy", "port", inst.dropcopy_port),
                                ("http", "host", inst.http_host), ("http", "port", inst.http_port)):
        if value is not None:
            out.setdefault(section, {})[key] = value
    for client, port in inst.client_ports.items():
        out["clients"][client]["port"] = port
    out["cluster"]["instance_name"] = name
    return out
