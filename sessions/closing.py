"""Connections quickfix has closed but not yet let go of: while there is one, this process opens no socket.

quickfix 1.16's ``ThreadedSocketAcceptor`` closes a connection's socket in ``ThreadedSocketConnection::disconnect``
(on a Logout, a heartbeat timeout, a refused logon) and its thread then goes on: it returns from the
``onLogout`` callback (which waits for the GIL), goes back to ``poll`` and ``recv`` on the same descriptor
number, and stops only when a read fails. Linux gives the lowest free number to the next socket opened anywhere
in the process, so a socket opened in that window gets that number, and the old thread reads from it: it takes
the bytes meant for the new connection (a client's Logon, the gateway's answer to it) and hands them to the old
session, which journals them as its own. Seen in CI: a client's Logon answered and journaled as sent, never
received, and the same bytes journaled as received from the gateway itself (docs/quickfix-binding.md, "A closed
connection's thread reads on").

A closing of a session's connection goes through ``Session::disconnect``, which reports "Disconnecting" to the
session's Log just before it closes the socket, on the connection's own thread. (quickfix also closes a connection
that never got a session, a Logon it cannot place, without the event; the gateway's front door refuses those
before they reach quickfix.) The owner of the acceptor notes the session then (``ClosingConnections.closing``);
the connection's thread unregisters the session once it has stopped reading (its destructor), so the session
being registered no more means the number is safe. Until then ``pending()`` is true. Each closing is waited for
at most ``max_wait_s``: a thread that has not let go by then is already reading someone else's socket, and waiting
longer would not help; that is logged (and counted, through ``on_unreleased``).

The descriptor numbers are the process's, so whatever opens a socket in the process asks first, through
``settle`` (a thread that may block) or ``settled`` (a coroutine): the gateway's front door (accepting, and
connecting to quickfix), a new PostgreSQL connection, the admin API accepting, the TLS tunnel to a venue, and
quickfix's initiators, which report "Connecting to ..." to their Log just before they open their socket (the
gateway's venue sessions, ``FixClient``; they wait at most ``INITIATOR_WAIT_S``, as the initiator's one thread
serves every session of its engine). The window left: a socket opened by a thread that does not ask (a library's
own connection), and the microseconds between asking and opening.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from typing import Callable, Hashable

log = logging.getLogger("fixgw.sessions")

DISCONNECTING_EVENT = "Disconnecting"  # Session::disconnect's event, just before the socket is closed
CONNECTING_EVENT = "Connecting to "  # SocketInitiator::doConnect's event, just before the socket is opened
MAX_WAIT_S = 3.0
INITIATOR_WAIT_S = 0.5
POLL_S = 0.002
_GATES: "weakref.WeakSet[ClosingConnections]" = weakref.WeakSet()  # every one in this process
_GATES_LOCK = threading.Lock()  # a WeakSet is not safe to copy while another thread adds to it


class ClosingConnections:
    """Sessions whose connection quickfix is closing, until quickfix has let go of it (``registered`` is false)."""

    def __init__(self, registered: Callable[[object], bool], max_wait_s: float = MAX_WAIT_S,
                 clock: Callable[[], float] = time.monotonic, on_unreleased: Callable[[], None] | None = None):
        self._registered = registered
        self._on_unreleased = on_unreleased
        self._max_wait_s = max_wait_s
        self._clock = clock
        self._lock = threading.Lock()
        self._closing: dict[Hashable, tuple[object, float]] = {}  # key -> (session id, when)
        with _GATES_LOCK:
            _GATES.add(self)

    def closing(self, key: Hashable, sid: object) -> None:
        """quickfix is about to close ``sid``'s socket (its "Disconnecting" event, on the connection's thread)."""
        with self._lock:
            self._closing[key] = (sid, self._clock())

    def pending(self) -> bool:
        """Whether a closed connection's thread may still read its old descriptor number."""
        if not self._closing:  # the usual answer, without the lock
            return False
        now = self._clock()
        with self._lock:
            for key, (sid, since) in list(self._closing.items()):
                if not self._registered(sid):
                    del self._closing[key]
                elif now - since >= self._max_wait_s:
                    del self._closing[key]
                    if self._on_unreleased is not None:
                        self._on_unreleased()
                    log.warning("quickfix has not let go of session %s's connection %.1f s after closing it: its "
                                "thread may be reading a socket opened since (docs/quickfix-binding.md)", key,
                                now - since)
            return bool(self._closing)


def closing_anywhere() -> bool:
    """Whether any acceptor in this process has a closed connection quickfix may still read."""
    with _GATES_LOCK:
        gates = list(_GATES)
    return any(gate.pending() for gate in gates)


def settle(limit_s: float | None = None) -> bool:
    """Wait (a thread that may block) until no closed connection may still be read: before opening a socket.
    Each pending closing is waited for at most ``MAX_WAIT_S`` (``pending`` drops it then); ``limit_s`` waits
    less. Whether it settled."""
    deadline = None if limit_s is None else time.monotonic() + limit_s
    while closing_anywhere():
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


async def settled() -> None:
    """``settle`` for a coroutine on an event loop."""
    while closing_anywhere():
        await asyncio.sleep(POLL_S)
