"""The session Applications' ``toApp``: checks for quickfix's own and resent messages, skipped for the
gateway's own fresh sends (made on the engine's core thread, the ``own_sender``)."""
from __future__ import annotations

import threading

import pytest
import quickfix as fix

from sessions.gateway_app import ClientApplication, VenueApplication

SID = fix.SessionID("FIX.4.4", "FIXGW", "VENUE1")


def _resent_order() -> fix.Message:
    msg = fix.Message()
    msg.getHeader().setField(35, "D")
    msg.getHeader().setField(43, "Y")
    msg.setField(11, "C1")
    return msg


def _on_thread(fn):
    out = {}

    def run():
        try:
            out["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["exc"] = exc
    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out


def test_a_resent_order_is_gap_filled_when_quickfix_resends_it_on_a_session_thread():
    app = VenueApplication({}, lambda cmd: None)
    app.own_sender = threading.get_ident()  # the test thread plays the core thread
    out = _on_thread(lambda: app.toApp(_resent_order(), SID))
    assert isinstance(out.get("exc"), fix.DoNotSend)


def test_the_core_threads_own_sends_skip_the_resend_and_applverid_checks():
    venue = VenueApplication({}, lambda cmd: None)
    client = ClientApplication({}, lambda cmd: None)
    venue.own_sender = client.own_sender = threading.get_ident()
    venue.toApp(_resent_order(), SID)  # no DoNotSend: never a resend on this thread
    msg = fix.Message()
    msg.getHeader().setField(35, "8")
    msg.setField(1137, "9")
    client.toApp(msg, SID)
    assert msg.isSetField(1137)  # untouched; the codec never writes 1137, so there is nothing to remove
    out = _on_thread(lambda: client.toApp(msg, SID))
    assert "exc" not in out and not msg.isSetField(1137)  # quickfix's own message on a session thread


def test_before_the_core_thread_runs_every_message_is_checked():
    app = VenueApplication({}, lambda cmd: None)
    assert app.own_sender is None
    with pytest.raises(fix.DoNotSend):
        app.toApp(_resent_order(), SID)
