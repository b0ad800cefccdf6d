"""What quickfix 1.16's Python binding allows for sessions at run time (docs/quickfix-binding.md).

Experiments with bare quickfix engines, so each fact stands on its own: the
gateway's `fixgw sessions reload` (gateway/scheduling/reload.py) is built on them.
"""
from __future__ import annotations

import quickfix as fix
import pytest

from sessions.client import FixClient, WireLog
from sessions.fixsettings import build_settings, graceful_stop, session_id, start_engine
from sessions.journal_log import JournalLogFactory
from tests.fix_fixtures import free_port

GW = "QFGW"  # CompIDs no other test module uses: quickfix's session registry is process-wide


class _Acceptor(fix.Application):
    def onCreate(self, sid):
        pass

    def onLogon(self, sid):
        pass

    def onLogout(self, sid):
        pass

    def toAdmin(self, msg, sid):
        pass

    def fromAdmin(self, msg, sid):
        pass

    def toApp(self, msg, sid):
        pass

    def fromApp(self, msg, sid):
        pass


_APP = _Acceptor()  # outlives every engine that calls it


@pytest.fixture
def engines():
    """Acceptors started by a test, as (engine, sids); stopped and dropped at the end."""
    started: list = []
    yield started
    while started:
        engine, sids = started.pop()
        graceful_stop(engine, sids)
        del engine


def acceptor(tmp_path, engines, port: int, *clients: str):
    sids = [session_id("FIX.4.4", GW, c) for c in clients]
    settings = build_settings("acceptor", tmp_path / "acceptor", [(sid, "FIX.4.4", {}) for sid in sids],
                              {"SocketAcceptPort": str(port)})
    engine = start_engine("acceptor", _APP, settings, JournalLogFactory(WireLog()))
    engines.append((engine, sids))
    return engine


def client(tmp_path, name: str, port: int) -> FixClient:
    c = FixClient(version="FIX.4.4", sender=name, target=GW, port=port, store_dir=tmp_path / "clients")
    c._engine.start()
    return c


def test_acceptors_and_initiators_have_no_call_that_adds_a_session():
    for engine_class in (fix.ThreadedSocketAcceptor, fix.SocketInitiator):
        calls = {name.lower() for name in dir(engine_class)}
        assert not any(("add" in c or "create" in c or "register" in c) and "session" in c for c in calls)
        assert "getsessions" in calls  # it lists the sessions it was created with, nothing more


def test_a_running_acceptor_never_accepts_a_session_it_was_not_created_with(tmp_path, engines):
    port = free_port()
    acceptor(tmp_path, engines, port, "QFA")
    known = client(tmp_path, "QFA", port)
    stranger = client(tmp_path, "QFB", port)
    try:
        assert known.wait_logged_on(10)
        assert not stranger.wait_logged_on(3)
    finally:
        stranger.stop()
        known.stop()


def test_a_port_can_be_served_by_one_acceptor_only(tmp_path, engines):
    port = free_port()
    acceptor(tmp_path, engines, port, "QFC")
    with pytest.raises(fix.RuntimeError, match="Unable to create, bind, or listen to port"):
        acceptor(tmp_path, engines, port, "QFD")
    # start_engine dropped the failed engine at once, so its session can be created again elsewhere
    assert fix.Session.lookupSession(session_id("FIX.4.4", GW, "QFD")) is None


def test_a_second_acceptor_on_another_port_serves_new_sessions_while_the_first_keeps_its_own(tmp_path, engines):
    first_port, second_port = free_port(), free_port()
    acceptor(tmp_path, engines, first_port, "QFE")
    first = client(tmp_path, "QFE", first_port)
    try:
        assert first.wait_logged_on(10)
        acceptor(tmp_path, engines, second_port, "QFF")
        second = client(tmp_path, "QFF", second_port)
        try:
            assert second.wait_logged_on(10)
            assert first.session.isLoggedOn()
        finally:
            second.stop()
        engine, sids = engines.pop()  # stop the second acceptor alone
        graceful_stop(engine, sids)
        del engine
        assert first.session.isLoggedOn()
    finally:
        first.stop()


def test_a_sessions_allowed_remote_addresses_cannot_be_changed_from_python(tmp_path, engines):
    port = free_port()
    acceptor(tmp_path, engines, port, "QFG")
    session = fix.Session.lookupSession(session_id("FIX.4.4", GW, "QFG"))
    with pytest.raises(TypeError, match="std::set"):  # the binding has no std::set<std::string> conversion
        session.setAllowedRemoteAddresses({"127.0.0.1"})
