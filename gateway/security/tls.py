"""The gateway's TLS terminator: TLS for FIX sessions in front of (and behind) quickfix's plaintext sockets.

The PyPI quickfix 1.16 build has no TLS transport (its ``SSLSocketAcceptor`` raises
``ConfigError: HAVE_SSL not enabled``; tests/test_security_tls.py proves it), so
the gateway terminates TLS itself, in one supervised thread ("fixgw-tls") running
an asyncio event loop with Python's ``ssl`` (OpenSSL). docs/security.md says why
this and not stunnel or a TLS build of quickfix.

The gateway's client ports are served by the front door (gateway/security/frontdoor.py),
which runs on this loop and uses its aliases, handshake settings and reports
(``call``, ``listen``, ``spawn``, ``report``, ``take_alias``); ``serve`` below
is the plain TLS proxy it grew from (tests use it to put TLS in front of venue
simulators).

Acceptor side (clients): ``serve`` listens on a client port with TLS. For each
connection it completes the handshake (``handshake_timeout_s``; a client
certificate is required and verified when configured), then connects to the
quickfix acceptor's internal plaintext port *from a loopback address of its own*
(127.x.y.z, one per connection), registers the client's real address and
certificate for that loopback address in the ``PeerBook``, and copies bytes both
ways. quickfix only ever sees loopback peers; the logon check (gateway/security/auth.py)
maps them back to the client, and refuses a TLS session's logon that did not
come through the terminator. A plaintext FIX client on a TLS port, an expired,
untrusted or missing client certificate fail the handshake: the connection is
closed, logged and journaled with the reason.

Initiator side (venues): ``connect_out`` listens on 127.0.0.1 on a port of its
own for the venue's quickfix initiator, accepts only connections made by this
process (Linux: the connecting socket's inode must be one of our file
descriptors), and for each one opens a TLS connection to the venue, verifying
its certificate against the configured CA and name (and presenting our client
certificate if configured).

Bounds: at most ``max_connections`` connections per listener (more are closed at
once), handshake and connect timeouts, 64 KiB reads with the writer's flow
control (``drain``), so a slow peer cannot make the terminator buffer without
limit. ``running`` and ``last_error`` say how it is; a dead loop thread makes the
gateway unhealthy (gateway/admin/http.py).
"""
from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import os
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gateway.security.auth import PeerBook, TlsPeer
from sessions.closing import closing_anywhere, settled
from gateway.security.gated_listener import GatedListener
from gateway.security.secretstore import SecretsError, check_private

log = logging.getLogger("fixgw.tls")

READ_SIZE = 65536
_PLAINTEXT_REASONS = ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE",
                      "PACKET_LENGTH_TOO_LONG", "UNEXPECTED_RECORD", "NO_SHARED_CIPHER")


class TlsError(Exception):
    """A TLS setting cannot be used (file missing, unsafe key permissions, bad certificate) or a listener failed."""


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        check_private(key, "TLS private key")
    except SecretsError as exc:
        raise TlsError(str(exc)) from None
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except FileNotFoundError as exc:
        raise TlsError(f"TLS certificate or key not found: {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"cannot load TLS certificate {cert} with key {key}: {exc}") from None


def _load_ca(ctx: ssl.SSLContext, ca: Path) -> None:
    try:
        ctx.load_verify_locations(cafile=str(ca))
    except FileNotFoundError:
        raise TlsError(f"TLS CA file not found: {ca}") from None
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"cannot load TLS CA file {ca}: {exc}") from None


def server_context(cert: Path, key: Path, client_ca: Path | None = None, verify_client: bool = False
                   ) -> ssl.SSLContext:
    """TLS 1.2 or later, OpenSSL's default ciphers; client certificates required when ``verify_client``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_chain(ctx, cert, key)
    if client_ca is not None:
        _load_ca(ctx, client_ca)
    ctx.verify_mode = ssl.CERT_REQUIRED if verify_client else (
        ssl.CERT_OPTIONAL if client_ca is not None else ssl.CERT_NONE)
    return ctx


def client_context(ca: Path | None = None, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """TLS 1.2 or later; the server's certificate and name are always verified."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED are its defaults
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    if ca is not None:
        _load_ca(ctx, ca)
    else:
        ctx.load_default_certs()
    if cert is not None and key is not None:
        _load_chain(ctx, cert, key)
    return ctx


def describe_ssl_error(exc: BaseException) -> str:
    """A handshake failure as an operator reads it."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "no TLS handshake within the time limit"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {exc.verify_message}"
    reason = getattr(exc, "reason", None) or ""
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return "no client certificate (this port requires one)"
    if reason in _PLAINTEXT_REASONS:
        return f"not a TLS client (a plaintext FIX connection on a TLS port?): {reason}"
    if reason:
        return f"TLS handshake failed: {reason}"
    if isinstance(exc, (ConnectionResetError, asyncio.IncompleteReadError, EOFError)):
        return "the peer closed the connection during the TLS handshake"
    return f"TLS handshake failed: {type(exc).__name__}: {exc}"


_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
          "stateOrProvinceName": "ST", "localityName": "L", "emailAddress": "E"}


def _subject(cert: dict | None) -> str | None:
    if not cert:
        return None
    parts = [f"{_SHORT.get(k, k)}={v}" for rdn in cert.get("subject", ()) for k, v in rdn]
    return ",".join(parts) or None


class LoopbackAliases:
    """Distinct loopback source addresses, one per proxied connection: 127.1.0.1, 127.1.0.2, ...

    Linux routes all of 127.0.0.0/8 to the loopback interface, so any of them can be bound.
    """

    def __init__(self) -> None:
        self._next = itertools.count(0)
        self._lock = threading.Lock()

    def take(self) -> str:
        with self._lock:
            n = next(self._next) % (254 * 256 * 254)
        rest, d = divmod(n, 254)
        b, c = divmod(rest, 256)
        return f"127.{b + 1}.{c}.{d + 1}"

    @staticmethod
    def available() -> bool:
        try:
            with socket.socket() as s:
                s.bind(("127.1.0.1", 0))
            return True
        except OSError:
            return False


def _own_socket(peer: tuple, local: tuple) -> bool:
    """Whether the TCP connection from ``peer`` to ``local`` (both on 127.0.0.1) was made by this process (Linux)."""
    def hexaddr(addr: tuple) -> str:
        ip = ipaddress.IPv4Address(addr[0]).packed[::-1].hex().upper()
        return f"{ip}:{addr[1]:04X}"
    want_local, want_remote = hexaddr(peer), hexaddr(local)
    inode = None
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[1] == want_local and cols[2] == want_remote:
                    inode = cols[9]
                    break
        if inode is None:
            return False
        target = f"socket:[{inode}]"
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") == target:
                    return True
            except OSError:
                continue
    except OSError:
        return False
    return False


@dataclass
class Listener:
    name: str
    kind: str  # "server" (TLS clients in), "client" (to a TLS venue), "fix" / "fix-tls" (the front door's ports)
    port: int  # where it listens
    server: asyncio.AbstractServer
    active: int = 0
    accepted: int = 0
    refused: int = 0


Audit = Callable[[str, str, bool], None]  # (where, text, failure)


class TlsTerminator:
    def __init__(self, peers: PeerBook, audit: Audit | None = None, max_connections: int = 64,
                 handshake_timeout_s: float = 10.0, connect_timeout_s: float = 10.0):
        self.peers = peers
        self._audit = audit or (lambda where, text, failure: None)
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout_s
        self.connect_timeout = connect_timeout_s
        self._aliases = LoopbackAliases()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.listeners: dict[str, Listener] = {}
        self._tasks: set[asyncio.Task] = set()
        self.last_error: str | None = None
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "TlsTerminator":
        if self._thread is not None:
            return self
        if not LoopbackAliases.available():
            raise TlsError("TLS needs loopback addresses beyond 127.0.0.1 (127.1.0.1, ...), as Linux provides; "
                           "this system cannot bind them")
        loop = self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            except BaseException as exc:  # noqa: BLE001 - the gateway's health shows it
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.critical("the TLS terminator's thread died: %s; TLS sessions are down", self.last_error,
                             exc_info=True)
            finally:
                if not self._stopping:
                    self.last_error = self.last_error or "the TLS terminator's thread ended"
        self._thread = threading.Thread(target=run, name="fixgw-tls", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def _call(self, coro, timeout: float = 15.0):
        if self._loop is None or not self.running:
            raise TlsError("the TLS terminator is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop is None:
            return
        self._stopping = True
        try:
            self._call(self._close_all(), timeout)
        except Exception as exc:  # noqa: BLE001 - stopping anyway
            log.warning("TLS terminator did not close cleanly: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        self._loop.close()
        self._loop = self._thread = None
        self.listeners = {}

    async def _close_all(self) -> None:
        for listener in list(self.listeners.values()):
            listener.server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)

    def close_listener(self, name: str) -> None:
        """Stop one listener and its connections (a venue removed or reconnected by a reload)."""
        listener = self.listeners.pop(name, None)
        if listener is None or self._loop is None:
            return

        async def close() -> None:
            listener.server.close()
            for task in list(self._tasks):
                if task.get_name().startswith(f"tls:{name}:"):
                    task.cancel()
        try:
            self._call(close())
        except Exception as exc:  # noqa: BLE001
            log.warning("closing TLS listener %s: %s", name, exc)

    # ------------------------------------------------------------------ listeners
    def serve(self, name: str, port: int, context: ssl.SSLContext, upstream_port: int, host: str = "0.0.0.0") -> int:
        """TLS clients on ``host:port``, each proxied to quickfix on 127.0.0.1:``upstream_port``."""
        async def open_listener():
            return await asyncio.start_server(
                lambda r, w: self._spawn(name, self._serve_one(name, port, context, upstream_port, r, w)),
                host, port, reuse_address=True, backlog=128)
        return self._listen(name, "server", open_listener)

    def connect_out(self, name: str, host: str, port: int, context: ssl.SSLContext,
                    server_hostname: str | None = None) -> int:
        """A local port for a quickfix initiator; each connection to it becomes TLS to ``host:port``."""
        async def open_listener():
            loop = asyncio.get_running_loop()

            def connected(r, w):
                self._spawn(name, self._connect_one(name, host, port, context, server_hostname or host, r, w))

            def stream():  # what asyncio.start_server builds per connection
                return asyncio.StreamReaderProtocol(asyncio.StreamReader(loop=loop), connected, loop=loop)
            # accepts only while quickfix is not closing a connection (closing.py), as the front door
            return GatedListener(loop, "127.0.0.1", 0, stream, closing_anywhere, backlog=8)
        return self._listen(name, "client", open_listener)

    # for the front door (gateway/security/frontdoor.py), which runs its connections on this loop
    def call(self, coro, timeout: float = 15.0):
        """Run ``coro`` on the loop thread and wait for its result."""
        return self._call(coro, timeout)

    def listen(self, name: str, kind: str, open_listener) -> int:
        """Open a listener on the loop (``open_listener()`` is a coroutine returning an asyncio Server)."""
        return self._listen(name, kind, open_listener)

    def spawn(self, name: str, coro) -> None:
        """Run ``coro`` as a task of listener ``name`` (on the loop thread); ``stop`` cancels it."""
        self._spawn(name, coro)

    def report(self, where: str, text: str, failure: bool) -> None:
        """Log and audit (journal) ``text`` as the terminator's own reports."""
        self._report(where, text, failure)

    def take_alias(self) -> str:
        return self._aliases.take()

    def _listen(self, name: str, kind: str, open_listener) -> int:
        if name in self.listeners:
            raise TlsError(f"TLS listener {name} exists already")
        try:
            server = self._call(open_listener())
        except OSError as exc:
            raise TlsError(f"TLS listener {name}: cannot listen: {exc.strerror or exc}") from None
        bound = server.sockets[0].getsockname()[1]
        self.listeners[name] = Listener(name, kind, bound, server)
        what = {"fix": "front door (FIX)", "fix-tls": "front door (FIX over TLS)"}.get(kind, "TLS terminator")
        log.info("%s listening on port %d (%s)", what, bound, name, extra={"tls": name})
        return bound

    def _spawn(self, name: str, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"tls:{name}:{id(coro)}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _admit(self, name: str, writer: asyncio.StreamWriter) -> Listener | None:
        listener = self.listeners.get(name)
        if listener is None:
            writer.close()
            return None
        if listener.active >= self.max_connections:
            listener.refused += 1
            peer = writer.get_extra_info("peername") or ("?", 0)
            self._report(name, f"connection from {peer[0]} refused: {listener.active} connections already "
                               f"(max_connections {self.max_connections})", True)
            writer.close()
            return None
        listener.active += 1
        listener.accepted += 1
        return listener

    def _report(self, where: str, text: str, failure: bool) -> None:
        (log.warning if failure else log.info)("TLS %s: %s", where, text, extra={"tls": where})
        try:
            self._audit(where, text, failure)
        except Exception:  # noqa: BLE001 - auditing must not break the terminator
            log.exception("TLS audit callback failed")

    # ------------------------------------------------------------------ connections
    async def _serve_one(self, name: str, port: int, context: ssl.SSLContext, upstream_port: int,
                         reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener = self._admit(name, writer)
        if listener is None:
            return
        peer = writer.get_extra_info("peername") or ("?", 0)
        alias = None
        up_writer = None
        try:
            try:
                await writer.start_tls(context, ssl_handshake_timeout=self.handshake_timeout)
            except (ssl.SSLError, OSError, asyncio.TimeoutError, EOFError, asyncio.IncompleteReadError) as exc:
                self._report(name, f"connection from {peer[0]}:{peer[1]} on port {port} refused: "
                                   f"{describe_ssl_error(exc)}", True)
                return
            ssl_object = writer.get_extra_info("ssl_object")
            subject = _subject(writer.get_extra_info("peercert"))
            version = ssl_object.version() if ssl_object is not None else None
            alias = self._aliases.take()
            self.peers.add_tls(alias, TlsPeer(client_ip=peer[0], client_port=peer[1], port=port, subject=subject,
                                              version=version))
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", upstream_port, local_addr=(alias, 0)), self.connect_timeout)
            except (OSError, asyncio.TimeoutError) as exc:
                self._report(name, f"connection from {peer[0]}:{peer[1]} closed: the gateway's FIX acceptor "
                                   f"(127.0.0.1:{upstream_port}) is not reachable: {exc}", True)
                return
            self._report(name, f"TLS connection from {peer[0]}:{peer[1]} on port {port} ({version}"
                               f"{', certificate ' + subject if subject else ''})", False)
            await self._pipe_both(reader, writer, up_reader, up_writer)
        finally:
            if alias is not None:
                self.peers.remove_tls(alias)
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
            listener.active -= 1

    async def _connect_one(self, name: str, host: str, port: int, context: ssl.SSLContext, server_hostname: str,
                           reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener = self._admit(name, writer)
        if listener is None:
            return
        local_peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        remote_writer = None
        try:
            if not _own_socket(local_peer, local):
                self._report(name, f"local connection from {local_peer[0]}:{local_peer[1]} refused: only this "
                                   "gateway's own quickfix initiator may use the TLS tunnel", True)
                return
            await settled()  # the venue's socket is opened once quickfix may read no number it closed
            try:
                remote_reader, remote_writer = await asyncio.wait_for(asyncio.open_connection(
                    host, port, ssl=context, server_hostname=server_hostname,
                    ssl_handshake_timeout=self.handshake_timeout), self.connect_timeout + self.handshake_timeout)
            except (ssl.SSLError, OSError, asyncio.TimeoutError, EOFError) as exc:
                what = describe_ssl_error(exc) if isinstance(exc, ssl.SSLError) else (
                    "no answer within the time limit" if isinstance(exc, asyncio.TimeoutError)
                    else f"{type(exc).__name__}: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc))
                self._report(name, f"TLS connection to {host}:{port} failed: {what}", True)
                return
            ssl_object = remote_writer.get_extra_info("ssl_object")
            self._report(name, f"TLS connection to {host}:{port} ({ssl_object.version() if ssl_object else '?'}, "
                               f"certificate {_subject(remote_writer.get_extra_info('peercert'))})", False)
            await self._pipe_both(reader, writer, remote_reader, remote_writer)
        finally:
            for w in (writer, remote_writer):
                if w is not None:
                    w.close()
            listener.active -= 1

    async def _pipe_both(self, r1, w1, r2, w2) -> None:
        """Copy both ways until either side closes; then close both."""
        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    data = await reader.read(READ_SIZE)
                    if not data:
                        break
                    writer.write(data)
                    if writer.transport.get_write_buffer_size() > READ_SIZE:
                        await writer.drain()  # flow control: never buffer much for a slow peer
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
                pass
            finally:
                try:
                    if writer.can_write_eof():
                        writer.write_eof()
                except (OSError, RuntimeError):
                    pass
        a = asyncio.ensure_future(pipe(r1, w2))
        b = asyncio.ensure_future(pipe(r2, w1))
        try:
            await asyncio.wait((a, b), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (a, b):
                t.cancel()
            await asyncio.gather(a, b, return_exceptions=True)
