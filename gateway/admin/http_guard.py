"""Connection hygiene for the gateway's HTTP port (/metrics, /health, the admin API).

http.server on its own lets one client hold a connection, and the thread serving
it, for as long as it likes: a silent socket or one sending a byte at a time is
never closed (a per-read timeout resets with every byte); a Content-Length larger
than the body sent blocks the handler until the client half-closes; a client that
goes away mid-request has its partial request served (headers cut short parse as
complete, a short body is read as the whole body); and a client gone before it
reads the answer puts a raw traceback on stderr. Here:

- The whole request (request line, headers, body) must arrive within
  ``[http] request_timeout_s`` of the connection opening. Every read waits only
  for the time left, so slow drips do not extend it. Late: answered 408, closed.
- A request is served only when complete: the request line and the headers end
  with their line ends and the body has all of its Content-Length bytes.
  Otherwise the client is gone and nothing is served.
- Content-Length must be one plain number of at most ``max_body_bytes`` (400 /
  413); Transfer-Encoding is refused (400: the answer would otherwise be given
  to a body never read); request line and headers are bounded by
  ``max_header_bytes`` (431). One request per connection (HTTP/1.0).
- At most ``max_connections_per_address`` connections per source address are
  open at once; more are closed at once, unread.
- What is closed and why is one log line in the gateway's format (fields
  ``peer``, ``reason``, ``path``) and ``fixgw_http_connections_closed_total{reason}``.
  A connection error is never a traceback on stderr.

The handler's hooks ``on_refused`` (gateway/admin/http.py journals refused admin calls
there) and ``do_GET``/``do_POST`` (which find the body in ``self.body``) are all
a subclass adds.
"""
from __future__ import annotations

import io
import json
import logging
import re
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import Counter

from gateway.config import HttpConfig
from gateway.observability.logs import fields
from gateway.security.tls import describe_ssl_error
from sessions.closing import settle

log = logging.getLogger("fixgw.http")

# reason -> the level its log line has (a bare connect-and-close is what TCP health checks do: debug only)
REASONS = {
    "request_timeout": logging.WARNING,       # not fully received within request_timeout_s: 408
    "client_gone": logging.INFO,              # closed or reset by the client mid-request: not served
    "no_request": logging.DEBUG,              # closed by the client before sending anything
    "too_large": logging.WARNING,             # headers over max_header_bytes (431), body over max_body_bytes (413)
    "bad_request": logging.INFO,              # malformed request line, Content-Length or Transfer-Encoding: 400
    "too_many_connections": logging.WARNING,  # over max_connections_per_address: closed unread
    "write_failed": logging.INFO,             # the client went away before reading the answer
    "tls_handshake": logging.INFO,            # [http.tls]: not TLS (plain HTTP?), an untrusted or missing certificate
    "error": logging.ERROR,                   # anything else the connection machinery raised (with its traceback)
}
CLOSED = Counter(
    "fixgw_http_connections_closed_total",
    "HTTP connections closed without a complete request served normally, by reason: request_timeout, client_gone, "
    "no_request, too_large, bad_request, too_many_connections, write_failed, tls_handshake, error (docs/operations.md)",
    ["reason"],
)
for _reason in REASONS:
    CLOSED.labels(_reason)  # every reason shows from the start, at 0, so alerts on increase() work at once

_CONTENT_LENGTH = re.compile(r"[0-9]{1,15}")
LINGER_S = 1.0  # after refusing a request whose body was not read: how long to drain it so the answer arrives
LINGER_BYTES = 1 << 20


def record(reason: str, message: str, peer: str, path: str | None = None) -> None:
    """Count a closed connection and log why, as one line in the gateway's log format."""
    CLOSED.labels(reason).inc()
    level = REASONS[reason]
    if reason == "error":
        log.error("HTTP connection from %s failed: %s", peer, message, exc_info=True,
                  extra=fields(peer=peer, reason=reason, path=path))
    else:
        log.log(level, "HTTP connection from %s closed: %s", peer, message,
                extra=fields(peer=peer, reason=reason, path=path))


class Closed(Exception):
    """The request cannot be served: answer ``status`` (None: no answer) with ``message``; ``reason`` is counted."""

    def __init__(self, reason: str, message: str, status: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.status = status


def _timeout(seconds: float) -> Closed:
    return Closed("request_timeout", f"the request was not fully received within {seconds:g} s of connecting "
                                     "([http] request_timeout_s)", 408)


class _SocketReader(io.RawIOBase):
    """The connection's bytes, read against the request's deadline and a total byte budget.

    Each read waits only for the time left until the deadline. ``limit`` is the
    number of bytes the request may take in all: ``max_header_bytes`` until the
    headers are in, then that plus the Content-Length (so the buffer above never
    reads past the body).
    """

    def __init__(self, sock: socket.socket, timeout_s: float, limit: int):
        self._sock = sock
        self.timeout_s = timeout_s
        self.deadline: float | None = time.monotonic() + timeout_s  # None once the request is in
        self.limit = limit
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise _timeout(self.timeout_s)
            self._sock.settimeout(left)
        room = self.limit - self.received
        if room <= 0:
            raise Closed("too_large", f"the request line and headers are larger than {self.limit} bytes "
                                      "([http] max_header_bytes)", 431)
        try:
            n = self._sock.recv_into(memoryview(buffer)[:room])
        except TimeoutError:
            raise _timeout(self.timeout_s) from None
        except ssl.SSLError as exc:  # the handshake happens on the first read ([http.tls]): no HTTP answer possible
            raise Closed("tls_handshake", f"the TLS handshake failed: {describe_ssl_error(exc)}") from None
        except OSError as exc:  # reset by the peer, ...
            raise Closed("client_gone", f"the connection failed while the request was being read ({exc})") from None
        self.received += n
        return n


class _RequestReader(io.BufferedReader):
    """A buffered reader that remembers the last line it returned: did the headers end with their blank line?"""

    last_line = b""

    def readline(self, size: int = -1) -> bytes:
        self.last_line = super().readline(size)
        return self.last_line


class GuardedRequestHandler(BaseHTTPRequestHandler):
    """One request per connection, complete and within its limits, or closed with the reason logged and counted."""

    limits = HttpConfig()  # the server's [http] settings, set on the subclass made per server
    server_version = "fixgw"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # StreamRequestHandler's plain reader: replaced by the guarded one below
        self.body = b""
        self.command = self.path = None
        self.requestline, self.request_version = "", "HTTP/1.0"  # what an answer before parse_request needs
        self._complete = False
        self._reader = _SocketReader(self.connection, self.limits.request_timeout_s, self.limits.max_header_bytes)
        self.rfile = _RequestReader(self._reader)

    @property
    def peer(self) -> str:
        return self.client_address[0]

    def handle(self) -> None:
        self.close_connection = True
        try:
            self._handle_request()
        except Closed as exc:
            self._closed(exc)
        except OSError as exc:  # writing the answer: the client went away or stopped reading
            record("write_failed", f"the answer could not be written ({exc.__class__.__name__}: {exc})",
                   self.peer, self.path)

    def _handle_request(self) -> None:
        line = self.rfile.readline(65537)
        if not line:
            raise Closed("no_request", "the client closed the connection without sending a request")
        if not line.endswith(b"\n"):
            raise Closed("client_gone", "the client went away in the middle of the request line")
        self.raw_requestline = line
        if not self.parse_request():
            return  # http.server has answered 400 (counted in send_error)
        if self.rfile.last_line not in (b"\r\n", b"\n"):
            raise Closed("client_gone", "the client went away before the end of the headers")
        self.body = self._read_body()
        self._complete = True
        self._reader.deadline = None
        self.connection.settimeout(self.limits.request_timeout_s)  # a client that does not read its answer
        method = getattr(self, f"do_{self.command}", None)
        if method is None:
            raise Closed("bad_request", f"method {self.command} is not supported here (GET, POST)", 405)
        method()
        self.wfile.flush()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding") is not None:
            raise Closed("bad_request", "Transfer-Encoding is not accepted: send the body with a Content-Length", 400)
        values = [v.strip() for v in self.headers.get_all("Content-Length") or []]
        if not values:
            return b""
        if len(set(values)) > 1:
            raise Closed("bad_request", f"conflicting Content-Length headers ({', '.join(values)})", 400)
        if not _CONTENT_LENGTH.fullmatch(values[0]):
            raise Closed("bad_request", f"Content-Length must be a whole number of bytes, got {values[0][:40]!r}",
                         400)
        length = int(values[0])
        if length > self.limits.max_body_bytes:
            raise Closed("too_large", f"the request body of {length} bytes is larger than the limit of "
                                      f"{self.limits.max_body_bytes} ([http] max_body_bytes)", 413)
        self._reader.limit = self.limits.max_header_bytes + length
        body = self.rfile.read(length)
        if len(body) < length:
            raise Closed("client_gone", f"the client went away after {len(body)} of its {length} body bytes")
        return body

    def _closed(self, exc: Closed) -> None:
        record(exc.reason, str(exc), self.peer, self.path)
        try:
            self.connection.settimeout(self.limits.request_timeout_s)
            self.on_refused(exc.status, str(exc))
            if exc.status is not None and not self._complete and exc.reason != "request_timeout":
                self._linger()
        except OSError:
            pass  # the client is gone: nothing more to tell it

    def on_refused(self, status: int | None, message: str) -> None:
        """A request is refused (``status``, answered with ``message``) or dropped unanswered (``status`` None)."""
        if status is not None:
            self.send_json(status, {"error": message})

    def send_json(self, status: int, answer: dict) -> None:
        self.send_bytes(status, "application/json", json.dumps(answer).encode())

    def send_bytes(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _linger(self) -> None:
        """Half-close, then read and drop what the client still sends (bounded), so it gets the answer.

        Closing a socket with unread bytes resets the connection, and the reset can
        overtake the answer: a client sending an oversized body would see only
        "connection reset" instead of the 413 saying why.
        """
        self.connection.shutdown(socket.SHUT_WR)
        end, left = time.monotonic() + LINGER_S, LINGER_BYTES
        while left > 0:
            wait = end - time.monotonic()
            if wait <= 0:
                return
            self.connection.settimeout(wait)
            chunk = self.connection.recv(min(65536, left))
            if not chunk:
                return
            left -= len(chunk)

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (a malformed request line or header): counted and logged, then sent."""
        record("bad_request", f"{code} {message or ''}".strip(), self.peer, self.path)
        super().send_error(code, message, explain)

    def log_message(self, fmt, *args):  # quiet: Prometheus scrapes every few seconds
        log.debug("%s %s", self.address_string(), fmt % args)


class GuardedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections_per_address`` of them per source address."""

    daemon_threads = True
    REFUSAL_LOG_EVERY_S = 10.0  # a flood of refused connections is one log line per address this often

    def __init__(self, address, handler, limits: HttpConfig, tls: ssl.SSLContext | None = None):
        self.limits = limits
        self.tls = tls  # HTTPS: each accepted connection is wrapped; its handshake runs on its own thread
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}
        self._refusals: dict[str, tuple[float, int]] = {}  # address -> (last logged, refused since)
        super().__init__(address, handler)

    def open_connections(self, host: str) -> int:
        with self._lock:
            return self._open.get(host, 0)

    def get_request(self):
        settle()  # an accepted connection is a socket: not while quickfix may still read a number it closed
        sock, address = super().get_request()
        if self.tls is not None:
            # the handshake happens on the connection's first read, on its own thread and within the request's
            # time limit: a client that never completes it holds neither this thread nor the port
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request(self, request, client_address) -> None:
        host = client_address[0]
        with self._lock:
            n = self._open.get(host, 0)
            if n < self.limits.max_connections_per_address:
                self._open[host] = n + 1
                n = None
        if n is not None:
            self._refuse(host, n)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._release(host)
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(client_address[0])

    def _release(self, host: str) -> None:
        with self._lock:
            n = self._open.get(host, 0) - 1
            if n > 0:
                self._open[host] = n
            else:
                self._open.pop(host, None)

    def _refuse(self, host: str, n: int) -> None:
        CLOSED.labels("too_many_connections").inc()
        now = time.monotonic()
        last, since = self._refusals.get(host, (float("-inf"), 0))
        if now - last < self.REFUSAL_LOG_EVERY_S:
            self._refusals[host] = (last, since + 1)
            return
        self._refusals[host] = (now, 0)
        more = f"; {since} more refused since the last line" if since else ""
        log.warning("HTTP connection from %s closed: %d connections from it are open ([http] "
                    "max_connections_per_address)%s", host, n, more,
                    extra=fields(peer=host, reason="too_many_connections"))

    def handle_error(self, request, client_address) -> None:
        """Whatever escaped a connection's handler: one log line (never socketserver's traceback on stderr)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # BrokenPipeError, ConnectionResetError, ... while closing
            record("write_failed", f"{exc.__class__.__name__}: {exc}", client_address[0])
        else:
            record("error", f"{exc.__class__.__name__}: {exc}", client_address[0])
