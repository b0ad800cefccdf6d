"""Loopback ports for the stacks that tests and benchmarks start, chosen below the kernel's ephemeral range.

A port from ``bind(("127.0.0.1", 0))`` comes from the ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``),
the range the kernel also takes the local port of every outgoing connection from: a gateway's PostgreSQL
connections, a venue session's initiator, the test's own clients. Between the picking and the process that is to
listen binding it, an outgoing connection may take that port, and the listener fails with "address already in use"
(CI saw it once: a cluster instance could not open its client port). Below the ephemeral range a port is only ever
taken by a ``bind`` that names it, so a port that binds now stays free for the stack that was handed it.

Ports are drawn at random (two runs on one machine rarely meet), checked by a bind on every interface (the
gateway's front door listens there), and never handed out twice in one process.
"""
from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path

LOWEST = 10_000  # well above the registered ports a machine's services usually hold
_handed_out: set[int] = set()
_draw = random.Random(os.getpid() ^ time.time_ns())


def ephemeral_low(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> int:
    """The lowest port of the kernel's ephemeral range (32768 when it cannot be read: Linux's default)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def bindable(port: int) -> bool:
    """Whether a listener could bind ``port`` on every interface now (no SO_REUSEADDR: a port with a connection
    still in TIME_WAIT is passed over too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port(taken: set[int] | None = None) -> int:
    """A port no one listens on, outside the ephemeral range, never one this process handed out before nor one of
    ``taken`` (which gets it added)."""
    high = ephemeral_low()
    if high - LOWEST < 1_000:  # a machine whose ephemeral range starts low: fall back to the kernel's choice
        low, high = 1_024, 65_536
    else:
        low = LOWEST
    for _ in range(1_000):
        port = _draw.randrange(low, high)
        if port in _handed_out or (taken is not None and port in taken) or not bindable(port):
            continue
        _handed_out.add(port)
        if taken is not None:
            taken.add(port)
        return port
    raise RuntimeError(f"no free port found between {low} and {high}")
