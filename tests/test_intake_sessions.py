"""Every client message gets exactly one answer, over real sessions: what the intake refuses gets a session
Reject naming the tag, and a message the gateway cannot write back gets a BusinessMessageReject.

Bytes no quickfix client can send (0xFF 0xFE in a ClOrdID) go over a raw socket (tests/raw_fix.py) from
sessions of their own (RAW42, RAW44, RAW50), so the shared quickfix clients keep their sequence numbers.
"""
from __future__ import annotations

import pytest

from gateway.journal.queries import iter_events
from orders.actions import ClientExecReport, VenueNewOrder
from tests.fix_fixtures import CLIENTS
from tests.raw_fix import RawSession, start_raw_stack

RAW = {"RAW42": "FIX.4.2", "RAW44": "FIX.4.4", "RAW50": "FIX.5.0"}
PAIRS = list(zip(CLIENTS, RAW))  # (CLIENT42, RAW42), ...
BAD = b"\xff\xfe"  # not UTF-8: quickfix's binding hands it to Python as the lone surrogates \udcff\udcfe


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = start_raw_stack(tmp_path_factory.mktemp("intake"), RAW)
    yield s
    s.stop()


@pytest.fixture
def raw(stack, request):
    sessions = []

    def open_session(name: str) -> RawSession:
        session = RawSession(stack.cfg.acceptor.port, RAW[name], name)
        sessions.append(session)
        session.logon()
        return session
    yield open_session
    for session in sessions:
        session.close()


def order_fields(version: str, cl_ord_id, symbol="AAPL", qty="100", price="185.00", account=None):
    """A NewOrderSingle's body in ``version`` (values as str or raw bytes)."""
    body = [(11, cl_ord_id)] + ([(21, "1")] if version != "FIX.5.0" else [])
    body += [(55, symbol), (54, "1"), (60, "20260101-00:00:00.000"), (38, qty), (40, "2"), (44, price)]
    if account is not None:
        body.append((1, account))
    return body


def order_count(stack) -> int:
    return stack.gateway.engine.call(lambda core: len(core.orders))


def session_reject(session: RawSession, seq: int) -> dict[int, str]:
    return session.wait_for(lambda m: m.get(35) == "3" and m.get(45) == str(seq), f"Reject of MsgSeqNum {seq}")


@pytest.mark.parametrize("client, name", PAIRS)
@pytest.mark.parametrize("tag", [11, 55, 1])
def test_bytes_that_are_not_utf8_in_an_echoed_field_get_a_session_reject_naming_the_tag_and_no_order(
        stack, raw, client, name, tag):
    session = raw(name)
    before = order_count(stack)
    values = {11: "GOOD1", 55: "AAPL", 1: "ACC1"}
    values[tag] = b"X" + BAD
    seq = session.send("D", order_fields(session.version, values[11], values[55], account=values[1]))
    reject = session_reject(session, seq)
    assert (reject[371], reject[373], reject[372]) == (str(tag), "6", "D")  # 6 = incorrect data format
    assert order_count(stack) == before
    # the session goes on: the next order is answered as usual
    seq = session.send("D", order_fields(session.version, f"OK-{tag}", price="180.00"))
    ack = session.wait_for(lambda m: m.get(35) == "8" and m.get(11) == f"OK-{tag}", "ExecutionReport")
    assert ack[39] in ("A", "0")
    session.send("F", [(41, f"OK-{tag}"), (11, f"X-{tag}"), (55, "AAPL"), (54, "1"),
                       (60, "20260101-00:00:00.000")] + ([(38, "100")] if session.version != "FIX.5.0" else []))
    session.wait_for(lambda m: m.get(35) == "8" and m.get(11) == f"X-{tag}" and m.get(39) == "4", "Canceled")


@pytest.mark.parametrize("client, name", PAIRS)
def test_bytes_that_are_not_utf8_in_orig_cl_ord_id_get_a_session_reject_naming_41(stack, raw, client, name):
    session = raw(name)
    body = [(41, b"O" + BAD), (11, "CXL-BAD"), (55, "AAPL"), (54, "1"), (60, "20260101-00:00:00.000")]
    seq = session.send("F", body + ([(38, "100")] if session.version != "FIX.5.0" else []))
    reject = session_reject(session, seq)
    assert (reject[371], reject[373], reject[372]) == ("41", "6", "F")
    assert not [m for m in session.app_messages() if m.get(35) == "9"]  # no OrderCancelReject besides


@pytest.mark.parametrize("client", CLIENTS)
def test_text_outside_ascii_from_a_quickfix_client_gets_a_session_reject_naming_the_tag(stack, client):
    c = stack.client(client)
    before = order_count(stack)
    c.new_order("AAPL", "1", 100, "185.00", cl_ord_id="caf\u00e9-1")  # valid UTF-8, not the sessions' ASCII
    reject = c.wait_for(lambda m: m.get(35) == "3" and m.get(371) == "11", what="session Reject naming 11")
    assert reject[373] == "6"
    assert order_count(stack) == before


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("tag, qty, price, reason", [
    (38, "1" + "0" * 30, "185.00", "5"),  # 10**30: beyond [limits] max_qty, out of range
    (44, "100", "123456789012345678901234567890", "5"),  # a 30-digit price
    (44, "100", "185.123456789", "5"),  # more decimal places than [limits] max_decimals
])
def test_numbers_beyond_the_limits_get_a_session_reject_naming_the_tag(stack, client, tag, qty, price, reason):
    c = stack.client(client)
    before = order_count(stack)
    c.new_order("AAPL", "1", qty, price)
    reject = c.wait_for(lambda m: m.get(35) == "3" and m.get(371) == str(tag), what=f"session Reject naming {tag}")
    assert (reject[373], reject[372]) == (reason, "D")
    assert order_count(stack) == before
    c.wait_exec(c.new_order("AAPL", "1", 100, "190.05"), "2")  # and the session goes on


@pytest.mark.parametrize("client", CLIENTS)
def test_an_answer_that_cannot_be_encoded_becomes_a_business_reject_and_the_gateway_keeps_working(
        stack, client, monkeypatch):
    """The safety net: an encoder that fails (a bug) for one order's reports."""
    outbound = stack.gateway.engine.outbound
    table, role, text, attr = outbound._encoders[ClientExecReport]

    def broken(version, report):
        if report.cl_ord_id.startswith("BOOM") or report.orig_cl_ord_id == f"BOOM-{client}":
            raise RuntimeError("simulated encoder bug")
        return text(version, report)

    monkeypatch.setitem(outbound._encoders, ClientExecReport, (table, role, broken, attr))
    c = stack.client(client)
    cl = c.new_order("AAPL", "1", 100, "185.00", cl_ord_id=f"BOOM-{client}")
    # the first answer, PendingNew, was the NewOrderSingle's own: the reject names its MsgSeqNum
    bmr = c.wait_for(lambda m: m.get(35) == "j" and m.get(379) == cl, what="BusinessMessageReject")
    assert (bmr[372], bmr[380], bmr.get(45)) == ("D", "0", sent_seq(c, cl))
    assert "internal error (RuntimeError: simulated encoder bug)" in bmr[58]
    assert not c.exec_reports(cl)
    c.wait_exec(c.new_order("AAPL", "1", 100, "190.05"), "2")  # other orders are answered as usual
    cx = c.cancel(cl, "AAPL", "1", 100)  # leave nothing resting; its answers cannot be written either
    bmr = c.wait_for(lambda m: m.get(35) == "j" and m.get(379) == cx, what="BusinessMessageReject for the cancel")
    assert (bmr[372], bmr.get(45)) == ("F", sent_seq(c, cx))
    assert internal_events(stack, f"{client}: could not encode 8 for ClOrdID {cl}, not sent: internal error")


def internal_events(stack, text: str) -> list[str]:
    """The journal's ``internal`` events containing ``text``."""
    stack.gateway.journal.flush()
    return [row.text for row in iter_events(stack.cfg.journal.database_url, "internal") if text in row.text]


def sent_seq(c, cl_ord_id: str) -> str:
    """The MsgSeqNum the client sent its message with ClOrdID ``cl_ord_id`` under."""
    with c.wire._lock:
        raws = [raw for d, raw in c.wire.lines if d == "O" and f"\x0111={cl_ord_id}\x01" in raw]
    return next(part[3:] for part in raws[0].split("\x01") if part.startswith("34="))


@pytest.mark.parametrize("client", CLIENTS)
def test_a_child_order_that_cannot_be_encoded_is_rejected_to_the_client_instead_of_staying_pending(
        stack, client, monkeypatch):
    outbound = stack.gateway.engine.outbound
    table, role, text, attr = outbound._encoders[VenueNewOrder]

    def broken(version, order):
        if order.qty == 777:
            raise RuntimeError("simulated encoder bug")
        return text(version, order)

    monkeypatch.setitem(outbound._encoders, VenueNewOrder, (table, role, broken, attr))
    c = stack.client(client)
    cl = c.new_order("AAPL", "1", 777, "185.00")
    rejected = c.wait_exec(cl, "8")
    assert "not sent to VENUE1" in rejected[58] and "RuntimeError" in rejected[58]
    order = stack.gateway.engine.call(lambda core: core.order_for_client(client, cl))
    assert not order.is_open and all(not child.is_open for child in order.children)
    assert internal_events(stack, f"VENUE1: could not encode D for ClOrdID {order.children[0].child_id}")
