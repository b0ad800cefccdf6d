"""The front door: the gateway's public FIX ports, vetting each connection before quickfix sees it.

quickfix 1.16's ``ThreadedSocketAcceptor`` gives every connection a thread and a
buffer and waits for ever: for a Logon that never comes, for the rest of a
message whose BodyLength says 99999999, for a ``8=`` in bytes that are not FIX.
It has no limit on connections per address, and a Logon for a session another
connection holds waits up to 5 s inside quickfix for the session to free up
(``ThreadedSocketConnection::setSession``), so that a storm of such logons
queues there and one of them takes the session the moment its real client's
connection drops.

So quickfix listens on loopback-only ports of its own (``SocketAcceptPort`` is an
internal port; it still binds every interface, quickfix has no bind address,
but a logon that did not come through here is refused, gateway/security/auth.py), and
this front door owns the public ports (clients' and the drop-copy port). Per
connection, until its Logon:

- at most ``max_connections_per_address`` open connections per source address
  and port kind (more are closed at once);
- the Logon must be complete within ``prelogon_timeout_s`` of the connection
  (a silent socket, a byte-at-a-time sender, a TLS client that never finishes
  its handshake are closed then);
- the bytes must be FIX (gateway/security/framing.py) and no message may be over
  ``max_message_bytes`` (a BodyLength over it closes the connection at once,
  before its body arrives);
- the first message must be a Logon, for a session served on this port, that no
  other connection holds: a second logon for a live session is closed at once,
  and the live one is not touched (it keeps its connection, its messages and
  its source address). A Logon for no session on this port is answered with a
  Logout whose Text repeats its BeginString and CompIDs (the same text whatever
  is wrong, so it tells a stranger nothing about which CompIDs exist); the log
  line says what is wrong: which of them differs from the closest configured
  session (``explain``).

Then it connects to quickfix's internal port from a loopback address of its own
(127.x.y.z, as the TLS terminator does), registers the client's real address
(and TLS details) for it in the ``PeerBook`` so the logon check sees the client,
sends the buffered bytes and relays both ways. After the logon the framing and
size check goes on for every byte the client sends (the gateway's own messages
to the client are not checked).

What is closed and why is logged (one line in the log format, logger
``fixgw.frontdoor``, fields ``port_kind``, ``reason``, ``peer``) and counted
(``fixgw_connections_closed_total{port_kind,reason}``). TLS ports are served here
too: the handshake comes first (refusals reported as by the TLS terminator,
under ``tls:port:N``), then the same vetting.

It accepts and connects only while quickfix is not closing a connection (sessions/closing.py: quickfix's
thread for a closed connection reads on from the descriptor number it closed, and would take the next socket's bytes);
its listeners are ``GatedListener`` for that.

Where it runs: the TLS terminator's event loop thread (gateway/security/tls.py), with
``asyncio.Protocol`` callbacks, no streams: a relayed chunk costs one selector
wake-up, one ``recv``, the framing check and one ``send`` under the gateway's
GIL (docs/architecture.md, "The front door", says why this and what it costs).
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Callable

from gateway.observability import metrics
from gateway.security.auth import TlsPeer
from gateway.security.gated_listener import RETRY_S, GatedListener
from gateway.security.framing import FrameChecker, FrameError, logon_fields, logout_message
from gateway.observability.logs import fields
from gateway.security.tls import TlsTerminator, _subject, describe_ssl_error

log = logging.getLogger("fixgw.frontdoor")

# close reasons, the ``reason`` label (with framing's "garbage" and "too_large")
PRELOGON_TIMEOUT = "prelogon_timeout"
NOT_LOGON = "not_logon"
UNKNOWN_SESSION = "unknown_session"
SESSION_IN_USE = "session_in_use"
TOO_MANY = "too_many_connections"
TLS_HANDSHAKE = "tls_handshake"
UNREACHABLE = "gateway_unreachable"

# the Text (58) of the Logout that answers a Logon for no session served on its port
UNKNOWN_SESSION_TEXT = ("no session {begin}:{sender}->{target} here (BeginString, SenderCompID, TargetCompID of "
                        "your Logon): check them with the gateway's operator")


@dataclass(frozen=True, slots=True)
class Limits:
    prelogon_timeout_s: float = 10.0
    max_message_bytes: int = 65536
    max_connections_per_address: int = 20


# (port kind, public port, BeginString, SenderCompID, TargetCompID) -> the session's name if served there
Lookup = Callable[[str, int, str, str, str], "str | None"]
Unknown = Callable[[str, bytes, bytes], None]  # (port kind, the refused Logon, our Logout answer or b""): journal
# (port kind, public port, BeginString, SenderCompID, TargetCompID) -> what is wrong with that Logon, for the log
Explain = Callable[[str, int, str, str, str], str]
Refused = Callable[[str, str, str], None]  # (port kind, session, what was refused and why): journal it
Busy = Callable[[str, str], bool]  # (port kind, session): quickfix still holds the session's previous connection
# () -> whether quickfix may still read a descriptor number it has just closed: no socket is opened meanwhile
# (sessions/closing.py)
Closing = Callable[[], bool]
# How long a Logon waits for quickfix to let go of its session's previous connection (just closed) before it is
# relayed: quickfix 1.16 holds a second connection for a session still registered to another for up to 5 s, then
# drops it without a word (its Logon never reaches the journal). Usually a few milliseconds.
PREVIOUS_CONNECTION_WAIT_S = 3.0
# How long a connection identified while its kind is held (``FrontDoor.hold``: a cluster's successor listens before
# its acceptor runs) waits to be relayed; the client's own LogonTimeout usually ends it first.
HELD_WAIT_S = 30.0


class FrontDoor:
    def __init__(self, net: TlsTerminator, lookup: Lookup, on_unknown: Unknown | None = None,
                 on_refused: Refused | None = None, busy: Busy | None = None, explain: Explain | None = None,
                 closing: Closing | None = None):
        self.net = net  # the event loop thread, loopback aliases, PeerBook, TLS reporting
        self.peers = net.peers
        self.lookup = lookup
        self.on_unknown = on_unknown or (lambda kind, raw, answer: None)
        self.explain = explain or (lambda kind, port, begin, sender, target:
                                   f"SenderCompID {sender} is unknown or not served on port {port}")
        self.on_refused = on_refused or (lambda kind, session, text: None)
        self.busy = busy or (lambda kind, session: False)
        self.closing = closing or (lambda: False)
        self._per_address: dict[tuple[str, str], int] = {}  # (kind, ip) -> open connections
        self._holders: dict[tuple[str, str], _Conn] = {}  # (kind, session) -> the connection relaying it
        self._conns: set[_Conn] = set()
        self._held: set[str] = set()  # kinds whose acceptor is not running yet: identified connections wait

    # ------------------------------------------------------------------ listeners
    def hold(self, kind: str) -> None:
        """Listen before the acceptor behind ``kind``'s ports runs: a connection is accepted and its Logon read
        and checked, then it waits (up to HELD_WAIT_S) until ``release(kind)`` instead of being refused."""
        self._held.add(kind)

    def release(self, kind: str) -> None:
        """The acceptor behind ``kind``'s ports runs: relay the connections waiting, and every later one."""
        self._held.discard(kind)

    def serve(self, name: str, kind: str, port: int, upstream_port: int, limits: Limits,
              context: ssl.SSLContext | None = None, host: str = "0.0.0.0") -> int:
        """FIX clients (TLS with ``context``) on ``host:port``, relayed to quickfix on 127.0.0.1:``upstream_port``."""
        if not self.net.running:
            self.net.start()

        async def open_listener():
            return GatedListener(asyncio.get_running_loop(), host, port,
                                 lambda: _Conn(self, name, kind, port, upstream_port, limits, context), self.closing)
        return self.net.listen(name, "fix-tls" if context is not None else "fix", open_listener)

    def stop(self) -> None:
        """Close every connection (the listeners close with the terminator)."""
        if not self.net.running:
            return

        async def close_all() -> None:
            for conn in list(self._conns):
                conn.abort()
        try:
            self.net.call(close_all(), 5)
        except Exception as exc:  # noqa: BLE001 - stopping anyway
            log.warning("front door connections not closed cleanly: %s", exc)

    # ------------------------------------------------------------------ queries (tests, operators)
    def holder(self, kind: str, session: str) -> dict | None:
        """Who holds ``session`` now: its client's address and port and its loopback alias, or None."""
        async def read():
            conn = self._holders.get((kind, session))
            return None if conn is None else {"peer": conn.peer, "alias": conn.alias, "state": conn.state}
        return self.net.call(read(), 5)

    def open_connections(self) -> dict[tuple[str, str], int]:
        async def read():
            return dict(self._per_address)
        return self.net.call(read(), 5)

    # ------------------------------------------------------------------ bookkeeping (loop thread)
    def _opened(self, conn: "_Conn") -> bool:
        key = (conn.kind, conn.peer[0])
        n = self._per_address.get(key, 0)
        if n >= conn.limits.max_connections_per_address:
            conn.refuse(TOO_MANY, f"{n} connections from this address already (max_connections_per_address "
                                  f"{conn.limits.max_connections_per_address})")
            return False
        self._per_address[key] = n + 1
        self._conns.add(conn)
        return True

    def _closed(self, conn: "_Conn") -> None:
        self._conns.discard(conn)
        key = (conn.kind, conn.peer[0])
        n = self._per_address.get(key, 0) - 1
        if n > 0:
            self._per_address[key] = n
        else:
            self._per_address.pop(key, None)
        if conn.session is not None and self._holders.get((conn.kind, conn.session)) is conn:
            del self._holders[(conn.kind, conn.session)]


class _Upstream(asyncio.Protocol):
    """quickfix's side of a relayed connection: everything it sends goes to the client as is."""

    __slots__ = ("conn", "transport")

    def __init__(self, conn: "_Conn"):
        self.conn = conn
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.conn.state == "relay":
            self.conn.transport.write(data)

    def connection_lost(self, exc) -> None:
        self.conn.upstream_lost()

    def pause_writing(self) -> None:  # quickfix reads slower than the client sends
        self.conn.transport.pause_reading()

    def resume_writing(self) -> None:
        self.conn.transport.resume_reading()


class _Conn(asyncio.Protocol):
    """One client connection: vetted until its Logon, then relayed."""

    def __init__(self, door: FrontDoor, name: str, kind: str, port: int, upstream_port: int, limits: Limits,
                 context: ssl.SSLContext | None):
        self.door, self.name, self.kind, self.port = door, name, kind, port
        self.upstream_port, self.limits, self.context = upstream_port, limits, context
        self.state = "new"  # new, handshake, prelogon, connecting, relay, closed
        self.transport = None
        self.up: _Upstream | None = None
        self.peer: tuple[str, int] = ("?", 0)
        self.alias: str | None = None
        self.session: str | None = None
        self.checker = FrameChecker(limits.max_message_bytes)
        self.buf = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self.tls_version: str | None = None
        self.subject: str | None = None
        self.counted = False
        self.listener = None

    # ------------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1]) if peer else ("?", 0)
        listener = self.door.net.listeners.get(self.name)
        if listener is None:  # closing
            self.state = "closed"
            transport.abort()
            return
        if self.context is not None and listener.active >= self.door.net.max_connections:
            listener.refused += 1
            self.refuse(TOO_MANY, f"{listener.active} connections on this TLS port already (max_connections "
                                  f"{self.door.net.max_connections})")
            return
        if not self.door._opened(self):
            return
        self.counted = True
        self.listener = listener
        listener.active += 1
        listener.accepted += 1
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.limits.prelogon_timeout_s, self._prelogon_timeout)
        if self.context is None:
            self.state = "prelogon"
        else:
            self.state = "handshake"
            transport.pause_reading()
            self.door.net.spawn(self.name, self._handshake())

    def data_received(self, data: bytes) -> None:
        try:
            if self.state == "relay":
                try:
                    self.checker.feed(data)
                except FrameError as exc:
                    self._refuse_in_session(exc, data)
                    return
                self.up.transport.write(data)
                return
            # "handshake": decrypted data the TLS layer hands on as the handshake completes, before _handshake
            # has resumed (a TLS 1.3 client sends its Logon right after its Finished): kept, not dropped
            if self.state not in ("handshake", "prelogon", "connecting"):
                return
            self.buf += data
            self.checker.feed(data)
            if self.state == "prelogon" and self.checker.first_end is not None:
                self._logon(bytes(self.buf[:self.checker.first_end]))
        except FrameError as exc:
            self.refuse(exc.reason, exc.text)
        except Exception as exc:  # noqa: BLE001 - a bug here must not reach asyncio's handler as a traceback
            metrics.INTERNAL_ERRORS.labels("frontdoor").inc()
            log.error("front door: %s: %s", type(exc).__name__, exc, extra=fields(port_kind=self.kind))
            self.abort()

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost follows

    def connection_lost(self, exc) -> None:
        self._finish(flush_upstream=True)

    def pause_writing(self) -> None:  # the client reads slower than quickfix sends
        if self.up is not None and self.up.transport is not None:
            self.up.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.resume_reading()

    # ------------------------------------------------------------------ steps
    async def _handshake(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(self.transport, self, self.context, server_side=True,
                                       ssl_handshake_timeout=self.door.net.handshake_timeout)
        except Exception as exc:  # noqa: BLE001 - SSLError, OSError, TimeoutError, EOFError: all refusals
            if self.state != "closed":
                what = describe_ssl_error(exc)
                self.door.net.report(self.name, f"connection from {self.peer[0]}:{self.peer[1]} on port {self.port} "
                                                f"refused: {what}", True)
                self.refuse(TLS_HANDSHAKE, what, log_it=False)
            return
        if self.state == "closed" or tls is None:  # closed meanwhile (the pre-logon timeout, the client gone)
            if tls is not None:
                tls.abort()
            elif self.state != "closed":
                self.refuse(TLS_HANDSHAKE, "the connection closed during the TLS handshake", log_it=False)
            return
        self.transport = tls
        ssl_object = tls.get_extra_info("ssl_object")
        self.tls_version = ssl_object.version() if ssl_object is not None else None
        self.subject = _subject(tls.get_extra_info("peercert"))
        self.door.net.report(self.name, f"TLS connection from {self.peer[0]}:{self.peer[1]} on port {self.port} "
                                        f"({self.tls_version}"
                                        f"{', certificate ' + self.subject if self.subject else ''})", False)
        self.state = "prelogon"
        if self.checker.first_end is not None:  # the Logon arrived with the end of the handshake
            self._logon(bytes(self.buf[:self.checker.first_end]))

    def _prelogon_timeout(self) -> None:
        self.timer = None
        if self.state in ("handshake", "prelogon"):
            self.refuse(PRELOGON_TIMEOUT, f"no Logon within {self.limits.prelogon_timeout_s:g} s "
                                          f"(prelogon_timeout_s); {len(self.buf)} byte(s) received")

    def _logon(self, first: bytes) -> None:
        f = logon_fields(first)
        if f is None:
            self.refuse(NOT_LOGON, "the first message is not a Logon (35=A)")
            return
        begin, sender, target = f.get(8, "?"), f.get(49, "?"), f.get(56, "?")
        name = self.door.lookup(self.kind, self.port, begin, sender, target)
        if name is None:
            # Good engines answer a Logon they refuse with a Logout saying why, so the counterparty's log
            # names the cause. Its Text repeats only what the Logon said, the same for every unknown session
            # (it must not tell a stranger which CompIDs exist); the log says which part is wrong.
            answer = b""
            if all(tag in f for tag in (8, 49, 56)):
                answer = logout_message(begin, target, sender, UNKNOWN_SESSION_TEXT.format(
                    begin=begin, sender=sender, target=target))
            self.door.on_unknown(self.kind, first, answer)
            try:
                why = self.door.explain(self.kind, self.port, begin, sender, target)
            except Exception as exc:  # noqa: BLE001 - the refusal goes ahead whatever
                why = f"SenderCompID {sender} is unknown or not served on port {self.port} ({exc!r})"
            self.refuse(UNKNOWN_SESSION, f"no session {begin}:{sender}->{target} on this port: {why}"
                                         + ("; answered with a Logout" if answer else ""), answer=answer)
            return
        holder = self.door._holders.get((self.kind, name))
        if holder is not None:
            self.session = None  # not ours
            self.refuse(SESSION_IN_USE, f"a Logon for session {name}, which is connected from "
                                        f"{holder.peer[0]}:{holder.peer[1]}: refused; the live session goes on",
                        session=name)
            return
        self.door._holders[(self.kind, name)] = self
        self.session = name
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.state = "connecting"
        self.transport.pause_reading()
        self.door.net.spawn(self.name, self._connect())

    async def _connect(self) -> None:
        if self.state == "closed":  # the client went before this task ran
            return
        net = self.door.net
        held_until = asyncio.get_running_loop().time() + HELD_WAIT_S
        while self.kind in self.door._held and asyncio.get_running_loop().time() < held_until:
            await asyncio.sleep(0.01)  # a successor still starting (FrontDoor.hold): relayed once it accepts
            if self.state == "closed":
                return
        deadline = asyncio.get_running_loop().time() + PREVIOUS_CONNECTION_WAIT_S
        while self.door.busy(self.kind, self.session) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)  # its previous connection has just closed; quickfix has not let go yet
            if self.state == "closed":
                return
        while self.door.closing():  # bounded by the tracker (sessions/closing.py)
            await asyncio.sleep(RETRY_S)  # quickfix may still read a number it has just closed: no new socket yet
            if self.state == "closed":
                return
        self.alias = net.take_alias()
        self.door.peers.add_tls(self.alias, TlsPeer(client_ip=self.peer[0], client_port=self.peer[1], port=self.port,
                                                    subject=self.subject, version=self.tls_version))
        loop = asyncio.get_running_loop()
        up = _Upstream(self)
        try:
            await asyncio.wait_for(loop.create_connection(lambda: up, "127.0.0.1", self.upstream_port,
                                                          local_addr=(self.alias, 0)), net.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            if self.state != "closed":
                self.refuse(UNREACHABLE, f"the gateway's FIX acceptor (127.0.0.1:{self.upstream_port}) is not "
                                         f"reachable: {exc}", session=self.session)
            return
        if self.state == "closed":
            up.transport.close()
            return
        self.up = up
        up.transport.write(bytes(self.buf))
        self.buf = bytearray()
        self.state = "relay"
        self.transport.resume_reading()
        log.info("connection from %s:%d on %s port %d relayed to the gateway for session %s", self.peer[0],
                 self.peer[1], self.kind, self.port, self.session,
                 extra=fields(port_kind=self.kind, peer=self.peer[0], session=self.session))

    def _refuse_in_session(self, exc: FrameError, data: bytes) -> None:
        """A logged-on client sent something that is not FIX, or a message over the limit: what came before it
        in this chunk (whole messages) still goes to quickfix, which journals and answers it; the rest is
        journaled here under the session (its first 512 bytes), and the connection is closed once quickfix has
        read what was passed on. The client logs on again and its FIX session recovers the gap by resends."""
        good = data[:exc.good]
        if good:
            self.up.transport.write(good)
        refused = data[exc.good:]
        try:
            self.door.on_refused(self.kind, self.session or "?", f"front door closed the connection from "
                                 f"{self.peer[0]}:{self.peer[1]}: {exc.text}; {len(refused)} byte(s) not passed on, "
                                 f"the first {min(len(refused), 512)}: {refused[:512]!r}")
        except Exception:  # noqa: BLE001 - journaling must not keep the connection open
            log.exception("front door: could not journal a refused chunk")
        self.refuse(exc.reason, exc.text, flush_upstream=True)

    # ------------------------------------------------------------------ closing
    def refuse(self, reason: str, text: str, session: str | None = None, log_it: bool = True,
               flush_upstream: bool = False, answer: bytes = b"") -> None:
        """Close the connection at once (nothing more is read; only ``answer`` is sent, then the connection
        closes), log why and count it; with ``flush_upstream``, quickfix still reads what was passed on to
        it before its side closes."""
        if self.state == "closed":
            return
        metrics.CONNECTIONS_CLOSED.labels(self.kind, reason).inc()
        if log_it:
            log.warning("connection from %s:%d on %s port %d closed: %s", self.peer[0], self.peer[1], self.kind,
                        self.port, text, extra=fields(port_kind=self.kind, reason=reason, peer=self.peer[0],
                                                      session=session or self.session))
        if answer and self.transport is not None:
            self.transport.write(answer)
            self.transport.close()  # once the answer is written
            self._finish(flush_upstream)
            return
        self.abort(flush_upstream)

    def abort(self, flush_upstream: bool = False) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._finish(flush_upstream=flush_upstream)

    def upstream_lost(self) -> None:
        """quickfix closed its side (a Logout, a refused logon): the client gets what was sent, then EOF."""
        if self.state != "closed" and self.transport is not None:
            self.transport.close()
        self._finish(flush_upstream=False)

    def _finish(self, flush_upstream: bool) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.up is not None and self.up.transport is not None:
            (self.up.transport.close if flush_upstream else self.up.transport.abort)()
        if self.alias is not None:
            self.door.peers.remove_tls(self.alias)
        if self.counted:
            self.counted = False
            self.door._closed(self)
            if self.listener is not None:
                self.listener.active -= 1
