"""An active/standby cluster in gateway.cfg: the ``[cluster]`` section (its name, the lease, what a takeover
adds to each session's sequence numbers), the ``[instance.NAME]`` sections, each overriding what must differ
between the instances of one cluster (data directory, ports), one of which `fixgw run --instance NAME` picks, and
the ``[shard.NAME]`` sections, which split the client sessions between several active instances.

Instances share the rest of the file: sessions, venues, risk, the journal. They share nothing else but the
PostgreSQL database the journal is in (docs/failover.md).

**Shards** (docs/scale-out.md). With ``[shard.NAME]`` sections, each shard is an active/standby cluster of its
own: its own lease and order state (``ClusterConfig.lease_name``: ``CLUSTER/SHARD``), its instances (each names
its ``shard``), the client sessions it serves (``clients``, each client in exactly one shard), the drop-copy
sessions it serves (``dropcopy``), and its own SenderCompID toward the venues (``venue_comp_id``: a venue logs
each CompID on once, so every shard needs one of its own). An instance runs the file as its shard sees it: the
other shards, their instances, clients and drop-copy sessions are left out (``with_instance``), but their client
sessions and venue CompIDs are kept as its peers' (``peer_clients``, ``peer_venue_comp_ids``): a drop-copy
session is sent the reports of every shard in its scope, from the one journal they share.
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
    budget_chunk_pct: float = Field(
        10, gt=0, le=100, description="a sharded cluster's shards take each shared risk limit (an account's daily "
        "notional, exposure, position) this many percent at a time (and keep this much beyond their usage when they give the rest back)")
    budget_return_s: float = Field(1.0, gt=0, le=3600, description="how often a shard gives back what it holds of "
                                   "the accounts' limits beyond its usage and a chunk")
    instance_name: str | None = Field(None, description="the instance this process runs as (`--instance`)")
    shard: str | None = Field(None, description="the shard that instance serves (its [instance.NAME] shard)")
    shards: tuple[str, ...] = Field((), description="every shard of the cluster, when the instance serves one")
    peer_clients: dict[str, str] = Field(default_factory=dict, description="the other shards' client sessions: "
                                         "name -> fix_version (their reports reach this shard's drop copies)")
    peer_venue_comp_ids: tuple[str, ...] = Field((), description="the other shards' venue_comp_id")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "cluster")

    @property
    def lease_name(self) -> str:
        """The lease's row and the order state's stream this instance shares with its standbys: the cluster's
        name, or ``CLUSTER/SHARD`` for an instance of a shard ('/' is in no cluster's or shard's name)."""
        return self.name if self.shard is None else shard_lease_name(self.name, self.shard)

    @property
    def journal_chain(self) -> str:
        """The journal hash chain this instance's writer extends (gateway/journal/chain.py): its shard's, named as
        the shard's lease, or the cluster's one chain, ``''``."""
        return "" if self.shard is None else self.lease_name


def shard_lease_name(cluster: str, shard: str) -> str:
    return f"{cluster}/{shard}"


class ShardConfig(StrictModel):
    """One shard of a sharded cluster: the sessions its active instance serves, and its identity at the venues."""

    clients: tuple[str, ...] = Field(min_length=1, description="the client sessions this shard serves")
    dropcopy: tuple[str, ...] = Field((), description="the drop-copy sessions this shard serves")
    venue_comp_id: str = Field(
        min_length=1, description="SenderCompID of this shard's sessions to every venue: each shard logs on to a "
        "venue as a counterparty of its own (the venue assigns them)")


class InstanceConfig(StrictModel):
    """What one instance of the cluster changes in the rest of the file; unset keys keep the file's value."""

    data_dir: Path | None = Field(None, description="its own data directory (spool, state, stores, credentials)")
    acceptor_port: int | None = Field(None, gt=0, lt=65536, description="[acceptor] port: clients connect here")
    client_ports: dict[str, int] = Field(default_factory=dict,
                                         description="clients.NAME.port for clients with a port of their own")
    dropcopy_port: int | None = Field(None, gt=0, lt=65536, description="[dropcopy] port")
    http_host: str | None = Field(None, description="[http] host")
    http_port: int | None = Field(None, gt=0, lt=65536, description="[http] port")
    shard: str | None = Field(None, description="the [shard.NAME] it serves, in a sharded cluster")

    @field_validator("client_ports")
    @classmethod
    def _ports(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [f"{n}={p}" for n, p in value.items() if not 0 < p < 65536]
        if bad:
            raise ValueError(f"ports must be from 1 to 65535: {', '.join(bad)}")
        return value


def check_instances(cluster: ClusterConfig | None, instances: dict[str, InstanceConfig], clients: set[str],
                    shards: dict[str, ShardConfig] | None = None, dropcopy: dict[str, tuple[str, ...]] | None = None,
                    names: set[str] | None = None) -> None:
    """The file's instance and shard sections against its cluster, clients and drop-copy sessions (ValueError
    naming the problem). ``dropcopy``: each drop-copy session's ``clients`` scope; ``names``: the session names a
    shard's venue_comp_id must not repeat (it may be the gateway's comp_id, for one shard)."""
    shards = shards or {}
    if instances and cluster is None:
        raise ValueError(f"instance sections ({', '.join(sorted(instances))}) need a [cluster] section")
    for name, inst in instances.items():
        _check_name(name, "instance")
        unknown = sorted(set(inst.client_ports) - clients)
        if unknown:
            raise ValueError(f"instance.{name}.client_ports names {', '.join(unknown)}, not a configured client")
        if inst.shard is not None and inst.shard not in shards:
            known = ", ".join(sorted(shards)) or "none"
            raise ValueError(f"instance.{name}.shard names {inst.shard}, not a [shard.NAME] of this file "
                             f"(its shards: {known})")
        if shards and inst.shard is None:
            raise ValueError(f"instance.{name} needs a shard: the file splits its clients into shards "
                             f"({', '.join(sorted(shards))})")
        if inst.shard is not None:
            foreign = sorted(set(inst.client_ports) - set(shards[inst.shard].clients))
            if foreign:
                raise ValueError(f"instance.{name}.client_ports names {', '.join(foreign)}, not a client of its "
                                 f"shard {inst.shard}")
    if shards:
        _check_shards(cluster, instances, clients, shards, dropcopy or {}, names or set())


def _check_shards(cluster: ClusterConfig | None, instances: dict[str, InstanceConfig], clients: set[str],
                  shards: dict[str, ShardConfig], dropcopy: dict[str, tuple[str, ...]], names: set[str]) -> None:
    if cluster is None:
        raise ValueError(f"shard sections ({', '.join(sorted(shards))}) need a [cluster] section")
    served: dict[str, str] = {}  # client -> its shard
    dc_served: dict[str, str] = {}
    comp_ids: dict[str, str] = {}
    for name, shard in shards.items():
        _check_name(name, "shard")
        for client in shard.clients:
            if client not in clients:
                raise ValueError(f"shard.{name}.clients names {client}, not a configured client")
            if client in served:
                raise ValueError(f"client {client} is in two shards, {served[client]} and {name}: a client "
                                 "session is served by one shard")
            served[client] = name
        for session in shard.dropcopy:
            if session not in dropcopy:
                raise ValueError(f"shard.{name}.dropcopy names {session}, not a configured drop-copy session")
            if session in dc_served:
                raise ValueError(f"drop-copy session {session} is in two shards, {dc_served[session]} and {name}")
            dc_served[session] = name
        if shard.venue_comp_id in comp_ids:
            raise ValueError(f"shards {comp_ids[shard.venue_comp_id]} and {name} have the same venue_comp_id "
                             f"{shard.venue_comp_id}: a venue logs a CompID on once, so each shard needs its own")
        if shard.venue_comp_id in names:
            raise ValueError(f"shard.{name}.venue_comp_id {shard.venue_comp_id} is also a session name")
        comp_ids[shard.venue_comp_id] = name
        if not any(inst.shard == name for inst in instances.values()):
            raise ValueError(f"shard {name} has no instance: give one [instance.NAME] shard = \"{name}\"")
    unserved = sorted(clients - set(served))
    if unserved:
        raise ValueError(f"client(s) {', '.join(unserved)} in no shard: list each in one [shard.NAME] clients")
    unserved = sorted(set(dropcopy) - set(dc_served))
    if unserved:
        raise ValueError(f"drop-copy session(s) {', '.join(unserved)} in no shard: list each in one "
                         "[shard.NAME] dropcopy")


def with_instance(raw: dict, instances: dict[str, InstanceConfig], cluster: ClusterConfig | None, name: str,
                  shards: dict[str, ShardConfig] | None = None) -> dict:
    """The file's TOML (``raw``) as instance ``name`` runs it: its section's overrides applied, and
    ``[cluster] instance_name`` set; in a shard, only the shard's clients and drop-copy sessions kept, its
    ``venue_comp_id`` the SenderCompID toward venues and ``[cluster] shard`` set. ValueError for a file without a
    cluster or an unknown name."""
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
    if inst.shard is not None:
        _shard_view(out, inst.shard, (shards or {})[inst.shard])
    return out


def _shard_view(out: dict, name: str, shard: ShardConfig) -> None:
    """Narrow the file's TOML to what one shard serves (in place)."""
    keep = set(shard.clients)
    every_client = out.get("clients", {})
    out["clients"] = {c: v for c, v in every_client.items() if c in keep}
    dc = out.get("dropcopy")
    if isinstance(dc, dict) and isinstance(dc.get("sessions"), dict):
        dc["sessions"] = {s: v for s, v in dc["sessions"].items() if s in shard.dropcopy}
    out["venue_comp_id"] = shard.venue_comp_id
    out["cluster"]["shard"] = name
    out["cluster"]["shards"] = sorted(out["shard"])
    # what the drop copies of this shard read of the others' (every shard's reports are in the one journal)
    out["cluster"]["peer_clients"] = {c: str(v.get("fix_version", "")) for c, v in every_client.items()
                                      if c not in keep}
    out["cluster"]["peer_venue_comp_ids"] = sorted(s["venue_comp_id"] for n, s in out["shard"].items() if n != name)
    # the other shards, and their instances, are not this instance's business (the whole file was checked first)
    out["shard"] = {name: out["shard"][name]}
    out["instance"] = {n: v for n, v in out.get("instance", {}).items() if v.get("shard") == name}
