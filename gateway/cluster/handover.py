"""A planned handover, asked by an operator (`fixgw cluster handover`) through the database: checked, asked, then
followed until another instance leads.

The active instance does the work (leadership.py): its next lease renewal (every ttl/3) finds the request, it
stops cleanly (clients and venues get a Logout, everything it sent is journaled, its order state is closed), and
it hands the lease to the instance asked for, or releases it for any standby. The successor takes over as after a
failure, except that the old term ended cleanly, so every sequence number continues exactly (no ``seq_gap``) and
no order is in doubt. Clients see a Logout and log on again: to the same address when the instances share one,
else to the next address of their failover list.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine

from gateway.cluster.lease import Lease
from gateway.cluster.status import cluster_status


class HandoverRefused(Exception):
    """The handover was not asked: it would leave the cluster without an active instance, or names no standby."""


def ask_handover(engine: Engine, cluster: str, ttl: float, configured: list[str], to: str | None) -> dict:
    """Check that a handover can succeed, then ask the active instance for it: {"from", "token", "to"}.
    HandoverRefused (nothing asked) when no instance leads, ``to`` is not a running standby, or (``to`` None)
    no standby is running."""
    status = cluster_status(engine, cluster, ttl, configured)
    leader = status["leader"]
    if leader is None:
        raise HandoverRefused(f"cluster {cluster}: no instance leads, there is nothing to hand over")
    standbys = [i["instance"] for i in status["instances"] if i["role"] == "standby" and i["running"]]
    if to is not None:
        if to == leader:
            raise HandoverRefused(f"cluster {cluster}: {to} already leads")
        if to not in configured:
            raise HandoverRefused(f"cluster {cluster}: no instance {to} in this configuration "
                                  f"(instances: {', '.join(configured) or 'none'})")
        if to not in standbys:
            role = next((i["role"] for i in status["instances"] if i["instance"] == to), "never started")
            raise HandoverRefused(f"cluster {cluster}: {to} is not a running standby ({role}); the active would stop "
                                  "with no one to take over")
    elif not standbys:
        raise HandoverRefused(f"cluster {cluster}: no standby is running; the active would stop with no one to "
                              "take over")
    asked = Lease(engine, cluster).ask_handover(to)
    if asked is None:
        raise HandoverRefused(f"cluster {cluster}: the lease was lost or released while asking; see `fixgw cluster "
                              "status`")
    holder, token = asked
    return {"from": holder, "token": token, "to": to}


def follow_handover(engine: Engine, cluster: str, ttl: float, configured: list[str], asked: dict, timeout: float, *,
                    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], object] = time.sleep
                    ) -> dict:
    """Wait until an instance other than the old active leads under a later token and says it is active:
    ``asked`` plus {"done": bool, "new", "new_token", "seconds", "status"} (the last status read)."""
    start = clock()
    while True:
        status = cluster_status(engine, cluster, ttl, configured)
        leader, lease = status["leader"], status["lease"]
        roles = {i["instance"]: i["role"] for i in status["instances"]}
        done = (leader is not None and leader != asked["from"] and lease["token"] > asked["token"]
                and roles.get(leader) == "active")
        elapsed = clock() - start
        if done or elapsed >= timeout:
            return {**asked, "done": done, "new": leader if done else None,
                    "new_token": lease["token"] if done else None, "seconds": round(elapsed, 3), "status": status}
        sleep(0.1)


def describe_handover(d: dict) -> str:
    if d["done"]:
        return (f"cluster handed over from {d['from']} (token {d['token']}) to {d['new']} (token {d['new_token']}) "
                f"in {d['seconds']:.1f} s")
    lease = d["status"]["lease"] or {}
    where = (f"the lease is still {d['from']}'s (token {lease.get('token')}): has it seen the request? it acts at "
             "its next renewal" if lease.get("holder") == d["from"] and lease.get("token") == d["token"]
             else f"the lease is {lease.get('holder') or 'released'} (token {lease.get('token')}), no instance "
                  "says it is active yet")
    return f"handover from {d['from']} NOT DONE after {d['seconds']:.1f} s: {where}; see `fixgw cluster status`"
