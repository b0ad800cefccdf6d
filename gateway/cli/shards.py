"""Which instance of a sharded cluster an operator command asks (docs/scale-out.md, "Operators").

Each command says what it is about (a ``Route``): a session (asked of the shard that serves it), an order (the
shard of the instance its OrderID names: OrderIDs carry the instance that made them, and a standby of the same
shard holds them after a takeover), anything (the first shard with a leader: a command of the control plane,
which every shard applies, or one every shard answers alike), or every shard (a list: each shard's leader asked,
the answers merged by the command). ``FIXGW_INSTANCE`` and ``FIXGW_SHARD`` still win over all of it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    session: str | None = None  # a session's name, or its SessionID text
    order_id: str | None = None
    anywhere: bool = False


ANYWHERE = Route(anywhere=True)


def session_name(value: str) -> str:
    """A session's name from its name or its SessionID text (``FIX.4.4:FIXGW->CLIENT44``)."""
    return value.rpartition("->")[2] if "->" in value else value


def shard_of_session(cfg, value: str) -> str | None:
    """The shard serving client or drop-copy session ``value``; None for a venue (every shard has its own) or a
    name no shard lists."""
    name = session_name(value)
    for shard, s in cfg.shard.items():
        if name in s.clients or name in s.dropcopy:
            return shard
    return None


def instance_of_order(order_id: str) -> str | None:
    """The instance an OrderID names: ``<base 36 start>_<instance>-<counter>`` (desk_settings.order_id_prefix)."""
    prefix, dash, _ = order_id.rpartition("-")
    if not dash or "_" not in prefix:
        return None
    return prefix.partition("_")[2] or None


def shard_for(cfg, route: Route) -> str | None:
    """The shard ``route`` points at, or None (ask any, or refuse: the caller decides)."""
    if route.session is not None:
        return shard_of_session(cfg, route.session)
    if route.order_id is not None:
        inst = cfg.instance.get(instance_of_order(route.order_id) or "")
        return inst.shard if inst is not None else None
    return None
