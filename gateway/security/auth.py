"""Who may log on to a client session: source address, TLS, username and password, with a throttle.

``LogonGuard.check`` runs on the session thread of the connection logging on, from
``fromAdmin`` (sessions/gateway_app.py), before quickfix accepts the Logon; a
reason it returns is raised as ``RejectLogon``, so quickfix answers with a Logout
carrying the reason and disconnects. In order, cheapest first:

1. Where the logon comes from. quickfix 1.16 tells the session's Log, on the
   connection's own thread, ``Allows connections to the acceptor from <IPv4>``
   just before it hands that connection's first message (the Logon) to the
   session (ThreadedSocketConnection::setSession); ``PeerBook`` keeps that per
   thread. Every client and drop-copy connection comes from the gateway's front
   door (gateway/security/frontdoor.py; TLS ones after its handshake), which connects to
   quickfix from a loopback address of its own per connection (127.x.y.z) and
   registers the client's real address (and TLS details) for it, so address
   checks apply to the client, not to the front door. With ``front_door_only``
   a logon that did not come through it is refused, and a TLS session only
   accepts logons that came over TLS.
2. The session's ``allowed_addresses`` (addresses and CIDR ranges).
3. The throttle: after ``free_failures`` failed logons from one source address,
   or for one session, further attempts are refused for a back-off window that
   doubles with each failure (up to ``max_backoff_s``) *without* hashing, so an
   attacker cannot make the gateway burn CPU.
4. Username (553) and Password (554), for sessions with ``password_required``:
   one scrypt verification (gateway/security/credentials.py, about 130 ms, GIL released),
   at most ``hash_slots`` at a time across all sessions.

Every refusal, and every logon accepted for a session with security settings, is
audited through the ``audit`` callback (the gateway journals it as a session
event and logs it with the source address). The reason sent to the client never
says whether the username or the password was wrong.

Drop-copy sessions (issue 6, on another branch) are acceptor sessions too: give
their configuration the same keys (``allowed_addresses``, ``password_required``,
``username``, ``tls``), build a ``SessionPolicy`` for each with ``policy_for`` and
pass their logons through the same ``LogonGuard``.
"""
from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from gateway.security.credentials import CredentialsError, CredentialStore

CONNECT_EVENT = "Allows connections to the acceptor from "
DENY_EVENT = "Deny connections to the acceptor from "
UNKNOWN_SESSION_EVENT = "Session not found for incoming message: "

WRONG_CREDENTIALS = "wrong username or password"


@dataclass(frozen=True, slots=True)
class TlsPeer:
    """A client connected through the TLS terminator or the front door (``version`` None: plain TCP)."""

    client_ip: str
    client_port: int
    port: int  # the public TLS port it connected to
    subject: str | None  # its certificate's subject, when it presented one
    version: str | None  # TLS version; None: a plaintext connection through the front door


class PeerBook:
    """The source of each connection quickfix hands a Logon to. Thread-safe."""

    def __init__(self, max_entries: int = 10_000):
        self._lock = threading.Lock()
        self._by_thread: dict[int, tuple[str, str]] = {}  # thread id -> (session key, address)
        self._tls: dict[str, TlsPeer] = {}  # terminator loopback address -> client
        self._max = max_entries

    # quickfix's events, on the connection's thread (sessions.journal_log)
    def connection_event(self, session_key: str, text: str) -> None:
        if text.startswith(CONNECT_EVENT):
            with self._lock:
                if len(self._by_thread) >= self._max:
                    self._by_thread.clear()
                self._by_thread[threading.get_ident()] = (session_key, text[len(CONNECT_EVENT):].strip())

    def peer(self, session_key: str) -> str | None:
        """The address quickfix saw for the Logon being processed on this thread for ``session_key``."""
        with self._lock:
            entry = self._by_thread.get(threading.get_ident())
        return entry[1] if entry is not None and entry[0] == session_key else None

    # the TLS terminator's registrations
    def add_tls(self, loopback: str, peer: TlsPeer) -> None:
        with self._lock:
            self._tls[loopback] = peer

    def remove_tls(self, loopback: str) -> None:
        with self._lock:
            self._tls.pop(loopback, None)

    def tls_peer(self, loopback: str | None) -> TlsPeer | None:
        if loopback is None:
            return None
        with self._lock:
            return self._tls.get(loopback)


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    password_required: bool = False
    username: str = ""
    networks: tuple = ()
    tls: bool = False

    @property
    def restricted(self) -> bool:
        return self.password_required or bool(self.networks) or self.tls


def policy_for(name: str, c) -> SessionPolicy:
    """The policy of a client (or drop-copy) session's configuration."""
    return SessionPolicy(password_required=c.password_required, username=c.expected_username(name),
                         networks=c.networks, tls=c.tls is not None)


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    until: float = 0.0


class FailureThrottle:
    """Back-off per key: after ``free_failures`` failures, ``base_s``, then 2*base_s, 4*base_s, ... up to ``max_s``
    (a failure older than ``forget_s`` starts the count again)."""

    def __init__(self, free_failures: int = 3, base_s: float = 1.0, max_s: float = 300.0, forget_s: float = 900.0,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.free, self.base, self.max, self.forget, self.max_keys = free_failures, base_s, max_s, forget_s, max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], _Failures] = {}

    def blocked_for(self, key: tuple[str, str]) -> float:
        """Seconds left in ``key``'s back-off window (0: not blocked)."""
        now = self._clock()
        with self._lock:
            f = self._keys.get(key)
            return max(0.0, f.until - now) if f is not None else 0.0

    def failure(self, key: tuple[str, str]) -> None:
        now = self._clock()
        with self._lock:
            f = self._keys.get(key)
            if f is None or now - f.last > self.forget:
                if len(self._keys) >= self.max_keys:  # bounded: forget the stalest half
                    for k, _ in sorted(self._keys.items(), key=lambda kv: kv[1].last)[: self.max_keys // 2]:
                        del self._keys[k]
                f = self._keys[key] = _Failures()
            f.count += 1
            f.last = now
            if f.count >= self.free:
                f.until = now + min(self.base * 2 ** (f.count - self.free), self.max)

    def success(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._keys.pop(key, None)


Audit = Callable[[str, str, str, bool], None]  # (session name, session key, text, refused)


@dataclass
class LogonGuard:
    store: CredentialStore
    peers: PeerBook
    audit: Audit
    policies: dict[str, SessionPolicy] = field(default_factory=dict)  # replaced whole on a reload
    throttle: FailureThrottle = field(default_factory=FailureThrottle)
    hash_slots: int = 2
    # the gateway's front door (gateway/security/frontdoor.py) owns the public ports: a logon that did not come through
    # it (a connection straight to quickfix's internal port) is refused, for every session
    front_door_only: bool = False

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.hash_slots)

    def check(self, name: str, session_key: str, username: str | None, password: str | None) -> str | None:
        """Why this Logon must be refused, or None. Audits the outcome of restricted sessions."""
        policy = self.policies.get(name)
        if (policy is None or not policy.restricted) and not self.front_door_only:
            return None
        seen = self.peers.peer(session_key)
        proxied = self.peers.tls_peer(seen)  # registered by the TLS terminator or the front door
        tls = proxied if proxied is not None and proxied.version is not None else None
        if policy is not None and policy.tls and tls is None:
            return self._refuse(name, session_key, seen, "this session accepts logons over TLS "
                                                         "only, through the gateway's TLS port")
        if self.front_door_only and proxied is None:
            return self._refuse(name, session_key, seen, "logons are accepted only through the gateway's FIX "
                                                         "port (this connection went straight to an internal port)")
        if policy is None or not policy.restricted:
            return None
        source = proxied.client_ip if proxied is not None else seen
        where = f"from {source or 'an unknown address'}" + (
            f" over {tls.version}" + (f", certificate {tls.subject}" if tls.subject else "") if tls else "")
        if policy.networks and not _allowed(source, policy.networks):
            return self._refuse(name, session_key, source, f"source address {source or 'unknown'} "
                                                           "is not allowed for this session", where)
        keys = (("source", source or "unknown"), ("session", name))
        if policy.password_required:
            wait = max(self.throttle.blocked_for(k) for k in keys)
            if wait > 0:
                return self._refuse(name, session_key, source, f"too many failed logons; try again "
                                                               f"in {wait:.0f} s", where)
            if not username or not password:
                for k in keys:
                    self.throttle.failure(k)
                return self._refuse(name, session_key, source, "this session needs Username (553) "
                                                               "and Password (554)", where)
            if not self._slots.acquire(blocking=False):
                return self._refuse(name, session_key, source, "the gateway is busy checking other "
                                                               "logons; try again", where)
            try:
                ok = self.store.verify(name, password)
            except CredentialsError as exc:
                return self._refuse(name, session_key, source, "the gateway cannot check passwords "
                                                               "now", where, detail=str(exc))
            finally:
                self._slots.release()
            if ok is None:
                return self._refuse(name, session_key, source, "no password is set for this "
                                                               "session", where,
                                    detail=f"set one with: fixgw credentials set {name}")
            if not (ok and hmac.compare_digest(username.encode(), policy.username.encode())):
                for k in keys:
                    self.throttle.failure(k)
                return self._refuse(name, session_key, source, WRONG_CREDENTIALS, where)
            for k in keys:
                self.throttle.success(k)
        self.audit(name, session_key, f"logon accepted {where}" +
                   (" (username and password verified)" if policy.password_required else ""), False)
        return None

    def _refuse(self, name: str, session_key: str, source: str | None, reason: str, where: str | None = None,
                detail: str | None = None) -> str:
        text = f"logon refused: {reason} ({where or 'from ' + (source or 'an unknown address')})"
        if detail:
            text += f"; {detail}"
        self.audit(name, session_key, text, True)
        return reason


def _allowed(source: str | None, networks: tuple) -> bool:
    if source is None:
        return False
    try:
        addr = ipaddress.ip_address(source)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == n.version and addr in n for n in networks)
