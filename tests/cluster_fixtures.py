"""Fixtures for the cluster lease tests (a pytest plugin, loaded from tests/conftest.py).

- ``lease_url``: a fresh PostgreSQL database (``postgres_url``) upgraded to head, with a table
  ``fenced_writes`` for writes that carry a fencing token.
- ``lease_engine``: an engine on it (``make_engine``), disposed after the test.
- ``lease``: a Lease on that engine, under a cluster name unique to the test.
- ``cut_database(url)``: the database stops accepting connections and every backend on it is terminated
  (the test's own engines included); ``restore_database(url)`` undoes it.
- ``TcpProxy``: a loopback proxy to PostgreSQL that can stall (stop forwarding, sockets left open: a
  network that drops packets) or cut (close everything, refuse new connections).
"""
from __future__ import annotations

import secrets
import socket
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.db_fixtures import _admin_engine

TTL = 1.0


@pytest.fixture
def lease_url(postgres_url) -> str:
    from gateway.journal.db import make_engine, upgrade

    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE fenced_writes (id BIGSERIAL PRIMARY KEY, writer TEXT NOT NULL, "
                              "token BIGINT NOT NULL, n INTEGER NOT NULL)"))
    finally:
        engine.dispose()
    return postgres_url


@pytest.fixture
def lease_engine(lease_url):
    from gateway.journal.db import make_engine

    engine = make_engine(lease_url)
    yield engine
    engine.dispose()


@pytest.fixture
def lease(lease_engine):
    from gateway.cluster.lease import Lease

    return Lease(lease_engine, f"test-{secrets.token_hex(4)}")


def write(engine, cluster: str, writer: str, token: int, n: int = 0) -> None:
    """One fenced insert into fenced_writes; raises StaleLeadership if ``token`` is not current."""
    from gateway.cluster.fence import fenced

    with engine.connect() as conn, fenced(conn, cluster, token):
        conn.execute(text("INSERT INTO fenced_writes (writer, token, n) VALUES (:w, :t, :n)"),
                     {"w": writer, "t": token, "n": n})


def count_writes(engine, writer: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM fenced_writes WHERE writer = :w"), {"w": writer}).scalar_one()


def _set_connections(url: str, allow: bool) -> None:
    admin, _ = _admin_engine()
    name = make_url(url).database
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allow else "false"}'))
            if not allow:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
    finally:
        admin.dispose()


def cut_database(url: str) -> None:
    _set_connections(url, False)


def restore_database(url: str) -> None:
    _set_connections(url, True)


def wait_for(predicate, timeout: float, every: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL; ``stall()`` stops forwarding without closing anything."""

    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5432):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self.closed = threading.Event()
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, name="test-proxy-accept", daemon=True).start()

    def url(self, url: str) -> str:
        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def stall(self) -> None:
        self.stalled.set()

    def close(self) -> None:
        self.closed.set()
        for s in [self.listener, *self.socks]:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.socks += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), name="test-proxy-pipe", daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self.closed.is_set():
                data = src.recv(65536)
                while self.stalled.is_set() and not self.closed.is_set():
                    time.sleep(0.02)  # hold what was read: the other side waits as on a dead network
                if not data or self.closed.is_set():
                    return
                dst.sendall(data)
        except OSError:
            return
