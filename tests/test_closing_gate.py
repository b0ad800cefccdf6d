"""The gate that keeps the front door from opening a socket while quickfix may still read a number it closed
(sessions/closing.py, gateway/security/gated_listener.py); the whole story over real sessions is in
tests/test_closed_connection_reuse.py."""
from __future__ import annotations

import asyncio
import logging
import socket
import threading

from sessions.closing import ClosingConnections
from gateway.security.gated_listener import GatedListener


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_nothing_closing_means_nothing_to_wait_for():
    assert not ClosingConnections(lambda sid: True).pending()


def test_a_closing_connection_is_waited_for_until_quickfix_unregisters_its_session():
    registered = {"A": True}
    gate = ClosingConnections(lambda sid: registered[sid])
    gate.closing("FIX.4.4:GW->A", "A")
    assert gate.pending()
    assert gate.pending()  # still registered: its thread has not stopped reading
    registered["A"] = False
    assert not gate.pending()
    assert not gate.pending()


def test_the_same_session_closing_twice_is_one_wait():
    registered = {"A": True}
    gate = ClosingConnections(lambda sid: registered[sid])
    gate.closing("k", "A")
    gate.closing("k", "A")
    registered["A"] = False
    assert not gate.pending()


def test_the_wait_is_bounded_and_a_thread_that_never_lets_go_is_logged(caplog):
    clock = Clock()
    unreleased = []
    gate = ClosingConnections(lambda sid: True, max_wait_s=3.0, clock=clock,
                              on_unreleased=lambda: unreleased.append(1))
    gate.closing("FIX.4.2:GW->STUCK", "STUCK")
    clock.now += 2.9
    assert gate.pending()
    clock.now += 0.2
    with caplog.at_level(logging.WARNING, logger="fixgw.sessions"):
        assert not gate.pending()
    assert "FIX.4.2:GW->STUCK" in caplog.text and "3.1 s" in caplog.text
    assert unreleased == [1]  # the gateway counts it: fixgw_quickfix_unreleased_connections_total


def test_one_session_letting_go_does_not_open_the_gate_while_another_is_closing():
    registered = {"A": True, "B": True}
    gate = ClosingConnections(lambda sid: registered[sid])
    gate.closing("a", "A")
    gate.closing("b", "B")
    registered["A"] = False
    assert gate.pending()
    registered["B"] = False
    assert not gate.pending()


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


def _serve(wait):
    """A GatedListener on a loop thread; returns (loop, listener, port, stop)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def make():
        return GatedListener(asyncio.get_running_loop(), "127.0.0.1", 0, Echo, wait)
    listener = asyncio.run_coroutine_threadsafe(make(), loop).result(5)
    port = listener.sockets[0].getsockname()[1]

    def stop():
        loop.call_soon_threadsafe(listener.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    return loop, listener, port, stop


def test_the_listener_accepts_and_serves_while_the_gate_is_open():
    _, _, port, stop = _serve(lambda: False)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"ping")
            assert c.recv(4) == b"ping"
    finally:
        stop()


def test_a_connection_waits_in_the_backlog_while_the_gate_is_shut_then_is_served():
    shut = threading.Event()
    shut.set()
    asked = []

    def wait():
        asked.append(1)
        return shut.is_set()
    _, _, port, stop = _serve(wait)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"ping")
            c.settimeout(0.3)
            try:
                early = c.recv(4)
            except socket.timeout:
                early = None
            assert early is None, "not served while the gate is shut"
            assert len(asked) >= 2, "the gate is asked again, not once and forgotten"
            shut.clear()
            c.settimeout(5)
            assert c.recv(4) == b"ping"
    finally:
        stop()


def test_a_closed_listener_has_no_sockets_and_refuses_connections():
    loop, listener, port, stop = _serve(lambda: False)
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(5)
    loop.call_soon_threadsafe(listener.close)
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(5)
    assert listener.sockets == ()
    try:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        assert refused
    finally:
        stop()


def _wait_in_thread(fn) -> tuple[threading.Thread, list]:
    done: list = []
    thread = threading.Thread(target=lambda: done.append(fn()), daemon=True)
    thread.start()
    return thread, done


def test_settle_waits_for_any_gateways_closing_connection_in_the_process():
    from sessions.closing import closing_anywhere, settle

    registered = {"A": True}
    gate = ClosingConnections(lambda sid: registered[sid])
    gate.closing("a", "A")
    assert closing_anywhere()
    thread, done = _wait_in_thread(settle)
    thread.join(0.2)
    assert not done, "settle waits while quickfix holds the closed connection"
    registered["A"] = False
    thread.join(5)
    assert done and not closing_anywhere()


def test_a_new_postgresql_connection_waits_until_quickfix_has_let_go(postgres_url):
    from gateway.journal.db import make_engine
    from sqlalchemy import text

    engine = make_engine(postgres_url)
    registered = {"A": True}
    gate = ClosingConnections(lambda sid: registered[sid])
    gate.closing("a", "A")

    def query():
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar()
    try:
        thread, done = _wait_in_thread(query)
        thread.join(0.3)
        assert not done, "no socket is opened while the closed connection may still be read"
        registered["A"] = False
        thread.join(10)
        assert done == [1]
    finally:
        engine.dispose()


def test_settle_with_a_limit_gives_up_after_it_and_says_so():
    import time

    from sessions.closing import settle

    registered = {"A": True}
    gate = ClosingConnections(lambda sid: registered[sid])
    gate.closing("a", "A")
    started = time.monotonic()
    assert settle(0.05) is False
    assert time.monotonic() - started < 1
    registered["A"] = False
    assert settle(0.05) is True


def test_a_fix_clients_initiator_opens_its_socket_only_once_quickfix_has_let_go():
    """quickfix's SocketInitiator reports "Connecting to ..." to its Log just before it opens the socket."""
    from sessions.client import WireLog

    registered = {"A": True}
    gate = ClosingConnections(lambda sid: registered[sid])
    gate.closing("a", "A")
    wire = WireLog()
    thread, done = _wait_in_thread(lambda: wire.event("FIX.4.4:C->GW", "Connecting to 127.0.0.1 on port 1 (Source :0)"))
    thread.join(0.1)
    assert not done, "the initiator waits while the closed connection may still be read"
    registered["A"] = False
    thread.join(5)
    assert done and wire.events == ["Connecting to 127.0.0.1 on port 1 (Source :0)"]
    wire.event("FIX.4.4:C->GW", "Logon contains ResetSeqNumFlag=Y")  # other events never wait
    assert len(wire.events) == 2


def test_the_venue_simulator_notes_its_own_closing_connections_for_the_process_gate():
    """In `fixgw demo` and in the tests the simulators' acceptor shares the gateway's process: its closings hold
    the gateway's new sockets too."""
    import quickfix as fix

    from sessions.simulator.venue import WireCounter

    sid = fix.SessionID("FIX.4.4", "VENUE1", "FIXGW")
    wire = WireCounter({"k": sid})
    registered = {sid.toString(): True}
    wire.closing = ClosingConnections(lambda s: registered[s.toString()])
    wire.event("FIX.4.4:OTHER->FIXGW", "Disconnecting")  # not one of its sessions
    assert not wire.closing.pending()
    wire.event(sid.toString(), "Disconnecting")
    assert wire.closing.pending()
    registered[sid.toString()] = False
    assert not wire.closing.pending()
