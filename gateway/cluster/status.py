"""A cluster's state as the database has it, for `fixgw cluster status`: the lease (holder, token, age, time left)
and each instance's role and heartbeat (membership.py), readable with every gateway down; in a sharded cluster,
each shard's part of each shared risk limit (budgets.py)."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Engine

from gateway.cluster.lease import Lease
from gateway.cluster.membership import read_members


def cluster_status(engine: Engine, cluster: str, ttl: float, configured: list[str]) -> dict:
    """The status as a JSON-able dict; ``leader`` is the instance holding an unexpired lease, or None.

    ``ttl``: the configured lease ttl; a heartbeat older than three of them is taken for an instance that is not
    running. ``configured``: the instances of the configuration, listed even if they never ran."""
    lease = Lease(engine, cluster).read()
    members = {m.instance: m for m in read_members(engine, cluster)}
    leader = lease.holder if lease is not None and lease.held else None
    out = {"cluster": cluster, "leader": leader, "lease": None, "instances": []}
    if lease is not None:
        out["lease"] = {"holder": lease.holder, "token": lease.token, "held_for_s": round(lease.held_for, 3),
                        "age_s": round(lease.age, 3), "remaining_s": round(lease.remaining, 3),
                        "expired": lease.expired}
    for name in sorted(set(members) | set(configured)):
        m = members.get(name)
        if m is None:
            out["instances"].append({"instance": name, "role": "never started", "running": False,
                                     "configured": True})
            continue
        running = m.role != "stopped" and m.heartbeat_age <= 3 * ttl
        role = m.role
        if role == "active" and name != leader:
            role = "deposed"  # said "active" last, but the lease is not (or no longer) its own
        out["instances"].append({
            "instance": name, "role": role, "running": running, "configured": name in configured,
            "host": m.host, "pid": m.pid, "started_at": m.started_at.isoformat(),
            "heartbeat_age_s": round(m.heartbeat_age, 3), "token": m.token,
            "lag": None if m.lag_records is None else {"records": m.lag_records, "seconds": m.lag_s}})
    return out


def sharded_status(engine: Engine, cluster: str, ttl: float, shards: dict[str, list[str]]) -> dict:
    """A sharded cluster's status: each shard's (``cluster_status`` of its lease, ``CLUSTER/SHARD``, and its
    configured instances); ``leaderless`` names the shards no instance leads."""
    from gateway.cluster.budgets import cluster_grants
    from gateway.config.cluster import shard_lease_name

    out = {"cluster": cluster, "shards": {}, "leaderless": [], "shared_limits": []}
    for shard, instances in sorted(shards.items()):
        part = cluster_status(engine, shard_lease_name(cluster, shard), ttl, instances)
        part["shard"] = shard
        out["shards"][shard] = part
        if part["leader"] is None:
            out["leaderless"].append(shard)
    prefix = f"{cluster}/"
    for g in cluster_grants(engine, cluster):
        out["shared_limits"].append({
            "limit": g["limit"], "scope": g["scope"], "total": str(g["total"]),
            "shards": {lease.removeprefix(prefix): str(v) for lease, v in g["shards"].items()}})
    return out


def describe_sharded(d: dict) -> str:
    """A sharded cluster's status for people: a line for the whole, then each shard as ``describe_status``."""
    n = len(d["shards"])
    head = (f"cluster {d['cluster']}: {n} shard(s), every one led" if not d["leaderless"]
            else f"cluster {d['cluster']}: {n} shard(s); NO LEADER in {', '.join(d['leaderless'])}")
    lines = [head] + [describe_status(part) for part in d["shards"].values()]
    shared = d.get("shared_limits") or []
    lines.append("shared limits: what each shard holds of each (fixgw risk show: what it uses)" if shared
                 else "shared limits: no shard holds a part of any yet")
    for g in shared:
        parts = "  ".join(f"{shard} {_amount(v)}" for shard, v in sorted(g["shards"].items()))
        scope = "/".join(g["scope"]) or "firm"
        lines.append(f"  {g['limit']} {scope}: {parts}  (total {_amount(g['total'])})")
    return "\n".join(lines)


def _amount(text: str) -> str:
    """A decimal as people read it: thousands separated, no trailing zeros."""
    return f"{Decimal(text).normalize():,f}"


def describe_status(d: dict) -> str:
    """The status for people, one line for the lease and one per instance."""
    lease = d["lease"]
    if d["leader"] is not None:
        head = (f"cluster {d['cluster']}: led by {d['leader']} (token {lease['token']}) for "
                f"{lease['held_for_s']:.1f} s; renewed {lease['age_s']:.1f} s ago, {lease['remaining_s']:.1f} s left")
    elif lease is None:
        head = f"cluster {d['cluster']}: NO LEADER (no instance has held the lease yet)"
    elif lease["holder"] is None:
        head = f"cluster {d['cluster']}: NO LEADER (the lease was released, token {lease['token']})"
    else:
        head = (f"cluster {d['cluster']}: NO LEADER ({lease['holder']}'s lease, token {lease['token']}, expired "
                f"{-lease['remaining_s']:.1f} s ago)")
    lines = [head]
    for i in d["instances"]:
        if "pid" not in i:
            lines.append(f"  {i['instance']:<12} never started")
            continue
        line = (f"  {i['instance']:<12} {i['role']:<8} pid {i['pid']} on {i['host']}, heartbeat "
                f"{i['heartbeat_age_s']:.1f} s ago" + ("" if i["running"] or i["role"] == "stopped"
                                                       else " (not running?)"))
        if i["role"] == "standby":
            lag = i["lag"]
            line += ("; lag not measured" if lag is None
                     else f"; lag {lag['records']} record(s), {lag['seconds']:.1f} s")
        if not i["configured"]:
            line += " (not in this configuration)"
        lines.append(line)
    return "\n".join(lines)
