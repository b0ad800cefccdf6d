"""The quickfix engines that carry the gateway's sessions: their settings and TLS contexts, starting and stopping them.

One acceptor serves every client at start-up (a session per client, on its port); a reload adds an acceptor
for clients on a port no acceptor serves yet. Each venue has an initiator of its own, so one venue can be
added, removed or reconnected without touching the others (and each venue's ReconnectInterval is its own:
quickfix keeps one per initiator). Drop-copy receivers have their own acceptor.

Source addresses are checked by the gateway at logon (gateway/security/auth.py), not with quickfix's
AllowedRemoteAddresses: that takes exact addresses only, refuses without a Logout or a reason, and cannot
change on a running session. Every client port's sessions listen on an internal port of their own behind the
front door (TLS ports too: the front door does the handshake), and so do the drop-copy sessions; quickfix's
port still listens on every interface, as quickfix 1.16 has no bind address, but a logon that did not come
through the front door is refused.
"""
from __future__ import annotations

import socket

from gateway.config import ClientConfig, ConfigError, GatewayConfig, VenueConfig
from gateway.security.frontdoor import FrontDoor
from gateway.security.tls import TlsError, TlsTerminator, client_context, server_context
from sessions.fixsettings import (SessionID, build_settings, graceful_stop, graceful_stop_all, session_id,
                                  start_engine, start_now)


class HeldPorts:
    """Loopback ports for quickfix's acceptors, each kept bound (not listening) from the moment it is picked until
    its acceptor is about to bind it. The kernel picks such a port from its ephemeral range, the range it also takes
    the local port of every outgoing connection from (the gateway's PostgreSQL connections, a venue's initiator);
    while a socket holds the port bound, the kernel gives it to no connection. A standby picks its ports when it
    starts and its acceptor binds them when it takes over, maybe hours later (listen_early).

    Held on every interface, as quickfix then binds it (1.16 has no bind address): a port picked on 127.0.0.1 alone
    can be one an established connection from another of the machine's addresses uses, and quickfix's bind then
    fails with "address already in use" (CI saw it twice in one run, both drop-copy acceptors)."""

    def __init__(self, avoid: frozenset[int] = frozenset()):
        self._avoid = avoid  # the gateway's own public ports: free now maybe only because their old owner is gone
        self._held: dict[int, socket.socket] = {}

    def take(self) -> int:
        """A loopback port, held until ``release``; never one of ``avoid``."""
        passed_over = []
        try:
            while True:
                s = socket.socket()
                try:
                    s.bind(("0.0.0.0", 0))
                except OSError:
                    s.close()
                    raise
                port = s.getsockname()[1]
                if port not in self._avoid:
                    self._held[port] = s
                    return port
                passed_over.append(s)  # kept bound until a port is found, so the kernel offers another
        finally:
            for s in passed_over:
                s.close()

    def release(self, ports) -> None:
        """Let these ports go, for their acceptor to bind them now."""
        for port in ports:
            s = self._held.pop(port, None)
            if s is not None:
                s.close()

    def held(self) -> set[int]:
        return set(self._held)


def _venue_context(v: VenueConfig):
    t = v.tls
    return client_context(t.ca, t.cert, t.key)


class SessionEngines:
    """The gateway's quickfix engines, as (engine, SessionIDs, public ports) per acceptor and (engine, SessionID)
    per venue, and what each needs: its settings, the loopback port behind the front door, its TLS context."""

    def __init__(self, cfg: GatewayConfig, client_app, venue_app, log_factory, tls: TlsTerminator,
                 front_door: FrontDoor):
        # only what a sessions reload never changes (clients and venues come as arguments)
        self._comp_id = cfg.comp_id
        self._venue_comp_id = cfg.venue_sender
        self._store = cfg.data_dir / "store"
        self._main_port = cfg.acceptor.port
        # the public ports this gateway binds itself, some after its quickfix engines exist
        self._own_ports = frozenset({cfg.acceptor.port, *cfg.client_ports(), cfg.dropcopy.port, cfg.http.port})
        self._client_limits = cfg.acceptor.limits
        self._dropcopy = cfg.dropcopy
        self._client_app, self._venue_app, self._log_factory = client_app, venue_app, log_factory
        self._tls, self._front_door = tls, front_door
        self.server_tls = {}  # client port -> SSLContext
        self.venue_tls = {}  # venue -> SSLContext
        self.internal_ports: dict[int, int] = {}  # public client port -> quickfix's loopback-only port behind it
        self._loopback = HeldPorts(self._own_ports)
        self._dropcopy_internal_port: int | None = None
        self._acceptors: list[tuple[object, list[SessionID], set[int]]] = []
        self._initiators: dict[str, tuple[object, SessionID]] = {}
        self.dropcopy_acceptor = None

    # ------------------------------------------------------------------ TLS contexts (a bad file raises TlsError)
    def load_client_tls(self, port: int, c: ClientConfig) -> None:
        """The server context of a client port whose sessions use TLS (one per port: the first client's)."""
        if c.tls is not None and port not in self.server_tls:
            t = c.tls
            self.server_tls[port] = server_context(t.cert, t.key, t.client_ca, t.verify_client)

    def load_venue_tls(self, name: str, v: VenueConfig) -> None:
        """The client context for a venue reached over TLS."""
        if v.tls is not None:
            self.venue_tls[name] = _venue_context(v)

    # ------------------------------------------------------------------ clients
    def _client_session(self, name: str, c: ClientConfig) -> tuple:
        port = self._internal_port(c.port or self._main_port)
        extra = {"SocketAcceptPort": str(port)}
        if c.schedule is not None:
            extra.update(c.schedule.quickfix_settings())
        extra.update(c.reset_settings())  # ResetOnLogon/ResetOnLogout/ResetOnDisconnect
        return session_id(c.fix_version, self._comp_id, name), c.fix_version, extra

    def _internal_port(self, public: int) -> int:
        """The loopback port behind public client port ``public`` (picked and held the first time)."""
        if public not in self.internal_ports:
            self.internal_ports[public] = self._loopback.take()
        return self.internal_ports[public]

    def start_acceptor(self, clients: dict[str, ClientConfig], start: bool = True) -> None:
        """An acceptor for these client sessions; unless ``start`` is False, accepting now, behind the front door."""
        sessions = [self._client_session(name, c) for name, c in clients.items()]
        settings = build_settings("acceptor", self._store / "clients", sessions)
        ports = {c.port or self._main_port for c in clients.values()}
        if start:
            self._loopback.release(self.internal_ports[p] for p in ports)
        engine = start_engine("acceptor", self._client_app, settings, self._log_factory, start=start)
        self._acceptors.append((engine, [sid for sid, _, _ in sessions], ports))
        if start:
            self._open_front_doors(ports)

    def listen_early(self, clients: dict[str, ClientConfig]) -> None:
        """The client ports listening now, before their acceptor runs (a cluster's successor, the moment it holds
        the lease): a client connecting during the start-up is held by the front door and relayed once
        ``accept_clients`` has started the acceptor, instead of being refused and waiting for its next reconnect."""
        ports = {c.port or self._main_port for c in clients.values()}
        for port in ports:
            self._internal_port(port)
        self._front_door.hold("client")
        self._open_front_doors(ports)

    def accept_clients(self) -> None:
        """Start the acceptors created with ``start=False`` and open the front door on their ports."""
        self._loopback.release(self.internal_ports[p] for p in self.served_ports())
        for engine, _, _ in self._acceptors:
            start_now(engine)
        self._open_front_doors(self.served_ports())
        self._front_door.release("client")

    def _open_front_doors(self, ports: set[int]) -> None:
        """The front door's listeners for the client ports among ``ports`` (their acceptor is running, or will be
        once the front door releases the connections it holds: ``listen_early``)."""
        for port in sorted(p for p in ports if p in self.internal_ports):
            if f"port:{port}" not in self._tls.listeners:
                try:
                    self._front_door.serve(f"port:{port}", "client", port, self.internal_ports[port],
                                           self._client_limits, context=self.server_tls.get(port))
                except TlsError as exc:
                    raise ConfigError(str(exc)) from None

    def served_ports(self) -> set[int]:
        """The public ports the client acceptors serve."""
        return set().union(*(ports for _, _, ports in self._acceptors))

    # ------------------------------------------------------------------ venues
    def start_initiator(self, name: str, v: VenueConfig, start: bool = True) -> None:
        """The venue's own initiator; unless ``start`` is False, connecting now."""
        sid = session_id(v.fix_version, self._venue_comp_id, name)
        host, port = v.host, v.port
        if v.tls is not None:  # quickfix connects to the terminator, which connects to the venue over TLS
            if not self._tls.running:
                self._tls.start()
            context = self.venue_tls.get(name) or _venue_context(v)
            port = self._tls.connect_out(f"venue:{name}", v.host, v.port, context, v.tls.server_name)
            host = "127.0.0.1"
        extra = {"SocketConnectHost": host, "SocketConnectPort": str(port), "HeartBtInt": str(v.heartbeat_s),
                 "ReconnectInterval": str(v.reconnect_s)}
        if v.schedule is not None:
            extra.update(v.schedule.quickfix_settings())
        extra.update(v.reset_settings())  # with any of them quickfix's Logon carries 141=Y when at 1/1
        settings = build_settings("initiator", self._store / "venues", [(sid, v.fix_version, extra)])
        self._initiators[name] = (start_engine("initiator", self._venue_app, settings, self._log_factory,
                                               start=start), sid)

    def connect_venues(self) -> None:
        """Start the initiators created with ``start=False``."""
        for engine, _ in self._initiators.values():
            start_now(engine)

    def stop_initiator(self, name: str, reason: str) -> None:
        engine, sid = self._initiators.pop(name)
        graceful_stop(engine, [sid], reason=reason)
        del engine  # destroyed now: quickfix's session registry must not outlive it (quickfix-binding.md)
        self._tls.close_listener(f"venue:{name}")

    # ------------------------------------------------------------------ drop copy
    def start_dropcopy(self, app, sids: dict[str, SessionID]) -> None:
        """The drop-copy receivers' acceptor, behind the front door on [dropcopy] port."""
        sessions = []
        for name, d in self._dropcopy.sessions.items():
            # source addresses and passwords are checked at logon, as for clients (gateway/security/auth.py)
            sessions.append((sids[name], d.fix_version, d.reset_settings()))
        if self._dropcopy_internal_port is None:
            self._dropcopy_internal_port = self._loopback.take()
        self._loopback.release([self._dropcopy_internal_port])
        settings = build_settings("acceptor", self._store / "dropcopy", sessions,
                                  {"SocketAcceptPort": str(self._dropcopy_internal_port)})
        self.dropcopy_acceptor = start_engine("acceptor", app, settings, self._log_factory)
        try:
            self._front_door.serve("dropcopy", "dropcopy", self._dropcopy.port, self._dropcopy_internal_port,
                                   self._dropcopy.limits)
        except TlsError as exc:
            raise ConfigError(str(exc)) from None

    # ------------------------------------------------------------------ stop
    def stop_trading(self) -> None:
        """Log out and destroy the venues' initiators, then the clients' acceptors."""
        initiators = [(engine, [sid]) for engine, sid in self._initiators.values()]
        self._initiators = {}
        graceful_stop_all(initiators)
        del initiators  # drop the engines now (see stop_initiator)
        acceptors = [(engine, sids) for engine, sids, _ in self._acceptors]
        self._acceptors = []
        graceful_stop_all(acceptors)
        del acceptors
        self._loopback.release(self._loopback.held())  # ports picked for acceptors that never started

    def stop_dropcopy(self, sids: list[SessionID]) -> None:
        if self.dropcopy_acceptor is not None:
            graceful_stop(self.dropcopy_acceptor, sids)
            self.dropcopy_acceptor = None
