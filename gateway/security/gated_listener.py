"""A listening socket on an asyncio loop that accepts only while a gate is open.

``loop.create_server`` accepts as soon as a connection is waiting. The front door must not accept (a socket is
a descriptor number) while quickfix may still read a number it has just closed (sessions/closing.py),
so it listens with this instead: when the listening socket is readable and ``wait()`` is true, it stops watching
it and looks again ``RETRY_S`` later; the waiting connections stay in the kernel's backlog meanwhile.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Callable

log = logging.getLogger("fixgw.frontdoor")

RETRY_S = 0.002
OUT_OF_DESCRIPTORS_RETRY_S = 1.0


class GatedListener:
    """Serves ``protocol_factory`` on ``host:port`` (like ``asyncio.Server``: ``sockets``, ``close()``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int, protocol_factory,
                 wait: Callable[[], bool], backlog: int = 128):
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._loop, self._sock, self._factory, self._wait = loop, sock, protocol_factory, wait
        self._backlog = backlog
        self._closed = False
        self._watching = False
        self._attaching: set[asyncio.Task] = set()  # the loop keeps only weak references to its tasks
        self._watch()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._closed else (self._sock,)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._unwatch()
        self._sock.close()

    # ------------------------------------------------------------------ on the loop
    def _watch(self) -> None:
        if not self._closed and not self._watching:
            self._loop.add_reader(self._sock.fileno(), self._ready)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            self._loop.remove_reader(self._sock.fileno())
            self._watching = False

    def _later(self, delay: float) -> None:
        self._unwatch()
        self._loop.call_later(delay, self._watch)

    def _ready(self) -> None:
        if self._wait():
            self._later(RETRY_S)
            return
        for _ in range(self._backlog):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("front door: cannot accept a connection: %s; trying again in %g s", exc,
                              OUT_OF_DESCRIPTORS_RETRY_S)
                    self._later(OUT_OF_DESCRIPTORS_RETRY_S)
                    return
                raise
            conn.setblocking(False)
            task = self._loop.create_task(self._attach(conn))
            self._attaching.add(task)
            task.add_done_callback(self._attaching.discard)

    async def _attach(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError as exc:  # the client went before its transport was made
            log.info("front door: a connection closed as it was accepted: %s", exc)
            conn.close()
