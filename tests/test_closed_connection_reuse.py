"""A client's connection closing does not take the next connection's bytes (sessions/closing.py).

quickfix 1.16's acceptor thread for a closed connection goes on reading the descriptor number it has just closed
until a read fails; the gateway's ``onLogout`` runs in between (waiting for the GIL under load). Here that
callback is made slow on purpose, so the window is wide: session RAW44 logs out, and while its thread sits in
``onLogout``, session RAW42 logs on through the front door and talks. The front door opens no socket until quickfix
has let go of RAW44's, so RAW42's messages are all answered and nothing RAW42 sent or was sent is journaled
under RAW44.
"""
from __future__ import annotations

import time

import pytest

from gateway.journal.queries import iter_messages
from tests.raw_fix import RawSession, start_raw_stack

RAW = {"RAW42": "FIX.4.2", "RAW44": "FIX.4.4"}
SLOW_LOGOUT_S = 0.4


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = start_raw_stack(tmp_path_factory.mktemp("reuse"), RAW)
    yield s
    s.stop()


def journal_rows(stack, session: str) -> list[tuple[str, str]]:
    """(direction, raw) of every message journaled under ``session``'s SessionID."""
    stack.gateway.journal.flush()
    return [(r.direction, r.raw) for r in iter_messages(stack.cfg.journal.database_url,
                                                       stack.gateway.client_sids[session].toString())]


def test_a_connection_opened_while_another_closes_keeps_all_its_messages(stack, monkeypatch):
    port = stack.cfg.acceptor.port
    app = stack.gateway.client_app
    original = app.onLogout
    slowed = []

    def slow_logout(sid):
        if sid.getTargetCompID().getValue() == "RAW44":
            slowed.append(time.monotonic())
            time.sleep(SLOW_LOGOUT_S)  # quickfix has closed the socket already; its thread reads on after this
        return original(sid)
    monkeypatch.setattr(app, "onLogout", slow_logout)

    leaving = RawSession(port, "FIX.4.4", "RAW44")
    leaving.logon()
    arriving = RawSession(port, "FIX.4.2", "RAW42")  # connected (its descriptor taken) before RAW44 leaves
    try:
        leaving.send("5", [])
        leaving.wait_for(lambda m: m.get(35) == "5", "Logout")
        leaving.sock.close()
        arriving.logon(timeout=10)
        time.sleep(SLOW_LOGOUT_S + 0.2)  # RAW44's thread is back from onLogout: it would be reading now
        for i in range(10):
            arriving.send("1", [(112, f"T{i}")])
        for i in range(10):
            arriving.wait_for(lambda m, i=i: m.get(35) == "0" and m.get(112) == f"T{i}", f"Heartbeat T{i}")
    finally:
        arriving.close()
    assert slowed, "RAW44's onLogout ran"
    stray = [raw for direction, raw in journal_rows(stack, "RAW44")
             if direction == "I" and "\x0149=RAW44\x01" not in raw]
    assert stray == [], f"messages journaled as received on RAW44 that RAW44 did not send: {stray}"
