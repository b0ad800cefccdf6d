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


class _NoCallsSid:
    """A SessionID stand-in that fails the test if the callback asks it for its text."""

    def toString(self):
        raise AssertionError("the session's name should have come from the message's header")


def test_an_inbound_message_is_named_from_its_own_header_without_asking_the_binding():
    submitted = []
    app = ClientApplication({"FIX.4.4:FIXGW->CLIENT44": "CLIENT44"}, submitted.append)
    raw = ("8=FIX.4.4\x019=10\x0135=D\x0134=2\x0149=CLIENT44\x0156=FIXGW\x0152=20261124-15:00:00.000\x01"
           "11=A1\x0155=AAPL\x0154=1\x0138=100\x0140=2\x0144=190\x0160=20261124-15:00:00.000\x0110=000\x01")
    app._dispatch(raw, _NoCallsSid(), 0)
    assert submitted[0].session == "CLIENT44" and submitted[0].cl_ord_id == "A1"


def test_a_header_that_names_no_session_falls_back_to_the_session_id():
    submitted = []
    app = ClientApplication({"FIX.4.4:FIXGW->CLIENT44": "CLIENT44"}, submitted.append)
    raw = ("8=FIX.4.4\x019=10\x0135=D\x0134=2\x0149=OTHER\x0156=FIXGW\x0152=20261124-15:00:00.000\x01"
           "11=A1\x0155=AAPL\x0154=1\x0138=100\x0140=2\x0144=190\x0160=20261124-15:00:00.000\x0110=000\x01")
    app._dispatch(raw, fix.SessionID("FIX.4.4", "FIXGW", "CLIENT44"), 0)
    assert submitted[0].session == "CLIENT44"
