"""Client → gateway → venue simulator → client, over real quickfix sessions on loopback.

Each test reads as the FIX conversation a client would have with the gateway.
"""
from __future__ import annotations

import time
from decimal import Decimal as D

import pytest
import quickfix as fix

from tests.fix_fixtures import CLIENTS

VERSIONS = list(CLIENTS)  # CLIENT42, CLIENT44, CLIENT50


def total_filled(reports) -> D:
    return sum((D(r[32]) for r in reports if r.get(150) in ("1", "2", "F")), D(0))


@pytest.mark.parametrize("name", VERSIONS)
def test_marketable_order_is_acknowledged_routed_and_filled_in_the_clients_version(stack, name):
    client = stack.client(name)
    cl = client.new_order("AAPL", "1", 200, "190.05")  # VENUE1 asks 190.01 x 500

    pending = client.wait_exec(cl, "A")
    new = client.wait_exec(cl, "0")
    filled = client.wait_exec(cl, "2")

    assert pending[37] == new[37] == filled[37] and filled[37].count("-") == 1  # the gateway's OrderID
    assert (filled[14], filled[151], filled[6], filled[30]) == ("200", "0", "190.01", "VENUE1")
    assert total_filled(client.exec_reports(cl)) == D(200)
    assert filled[150] == ("2" if name == "CLIENT42" else "F")
    assert filled.get(8) == ("FIXT.1.1" if name == "CLIENT50" else CLIENTS[name])
    gw = stack.gateway  # the reports came from the core thread, whose own sends skip toApp's checks
    assert gw.client_app.own_sender == gw.venue_app.own_sender == gw.engine.sender_thread_id is not None


@pytest.mark.parametrize("name", VERSIONS)
def test_order_larger_than_the_best_level_fills_across_levels_with_exact_average_price(stack, name):
    client = stack.client(name)
    cl = client.new_order("MSFT", "2", 1000, "409.00")  # VENUE1 bids 409.99 x500, 409.98 x1000
    done = client.wait_exec(cl, "2")
    fills = [r for r in client.exec_reports(cl) if r.get(150) in ("1", "2", "F")]
    assert [(r[32], r[31]) for r in fills] == [("500", "409.99"), ("500", "409.98")]
    assert fills[0][39] == "1" and done[14] == "1000"
    assert D(done[6]) == (D(500) * D("409.99") + D(500) * D("409.98")) / D(1000)


@pytest.mark.parametrize("name", VERSIONS)
def test_non_marketable_limit_order_rests_as_new_and_can_be_canceled(stack, name):
    client = stack.client(name)
    cl = client.new_order("AAPL", "1", 100, "185.00")
    new = client.wait_exec(cl, "0")
    assert (new[14], new[151]) == ("0", "100")
    with pytest.raises(AssertionError):
        client.wait_exec(cl, "2", timeout=0.3)  # still resting, nothing filled
    cx = client.cancel(cl, "AAPL", "1", 100)
    client.wait_exec(cx, "6")
    canceled = client.wait_exec(cx, "4")
    assert (canceled[41], canceled[151], canceled[14]) == (cl, "0", "0")


def test_market_order_fills_at_the_venue(stack):
    client = stack.client("CLIENT44")
    cl = client.new_order("AAPL", "2", 100, ord_type="1")  # VENUE1 bids 189.99 x 500
    done = client.wait_exec(cl, "2")
    assert (done[14], done[31], done[30]) == ("100", "189.99", "VENUE1")


def test_ex_destination_sends_the_order_to_the_named_venue(stack):
    client = stack.client("CLIENT44")
    cl = client.new_order("AAPL", "1", 100, "190.10", extra={100: "VENUE2"})  # VENUE2 asks 190.04
    done = client.wait_exec(cl, "2")
    assert (done[30], done[31]) == ("VENUE2", "190.04")


# ---------------------------------------------------------------------------- bad input
def test_unknown_symbol_is_rejected_with_a_reason(stack):
    client = stack.client("CLIENT44")
    cl = client.new_order("ZZZZ", "1", 100, "10")
    rej = client.wait_exec(cl, "8")
    assert rej[103] == "1" and "unknown symbol ZZZZ" in rej[58] and rej[150] == "8"


@pytest.mark.parametrize("name, reason", [("CLIENT42", "0"), ("CLIENT44", "13"), ("CLIENT50", "13")])
def test_zero_quantity_is_rejected_with_the_versions_reason_code(stack, name, reason):
    client = stack.client(name)
    cl = client.new_order("AAPL", "1", 0, "190")
    rej = client.wait_exec(cl, "8")
    assert rej[103] == reason and "OrderQty must be positive" in rej[58]


def test_cancel_for_an_order_that_never_existed_gets_an_order_cancel_reject(stack):
    client = stack.client("CLIENT42")
    cx = client.cancel("NEVER-SENT", "AAPL", "1", 100)
    rej = client.wait_for(lambda m: m.get(35) == "9" and m.get(11) == cx, what="OrderCancelReject")
    assert (rej[41], rej[102], rej[434], rej[37]) == ("NEVER-SENT", "1", "1", "NONE")
    assert "unknown order" in rej[58]


def test_venue_reject_reaches_the_client_as_a_reject_naming_the_venue(stack):
    client = stack.client("CLIENT44")
    cl = client.new_order("IBM", "1", 100, "231")  # VENUE1 is configured to reject IBM
    rej = client.wait_exec(cl, "8")
    assert "VENUE1" in rej[58]


def test_invalid_field_value_gets_a_session_reject_and_is_journaled(stack):
    client = stack.client("CLIENT44")
    cl = client.new_order("AAPL", "Z", 100, "190")  # Side=Z does not exist
    rej = client.wait_for(lambda m: m.get(35) == "3" and m.get(371) == "54", what="session Reject")
    assert rej[373] == "5" and rej[371] == "54"
    stack.gateway.journal.flush()
    rows = [r for r in journal_rows(stack) if r.cl_ord_id == cl]
    assert [(r.direction, r.msg_type) for r in rows] == [("I", "D")]


@pytest.mark.parametrize("name", VERSIONS)
def test_unsupported_message_type_gets_a_business_reject_the_client_accepts(stack, name):
    client = stack.client(name)
    msg = fix.Message()
    msg.getHeader().setField(35, "c")  # SecurityDefinitionRequest: valid in every version, not taken here
    msg.setField(320, "REQ1")
    msg.setField(321, "0")
    client.send(msg)
    bmr = client.wait_for(lambda m: m.get(35) == "j" and m.get(372) == "c", what="BusinessMessageReject")
    assert bmr[380] == "3" and 1137 not in bmr
    time.sleep(0.3)  # the client's engine would have rejected it by now
    rejects_of_bmr = [raw for d, raw in client.wire.lines
                      if d == "O" and "\x0135=3\x01" in raw and f"\x0145={bmr[34]}\x01" in raw]
    assert rejects_of_bmr == []


def test_venue_fill_for_an_unknown_order_is_answered_with_dont_know_trade(stack):
    er = fix.Message()
    er.getHeader().setField(35, "8")
    for tag, value in {37: "V-GHOST", 11: "NOT-OURS", 17: "E-GHOST", 150: "F", 39: "2", 55: "AAPL", 54: "1",
                       38: "10", 32: "10", 31: "190", 14: "10", 151: "0", 6: "190"}.items():
        er.setField(tag, value)
    assert fix.Session.sendToTarget(er, fix.SessionID("FIX.4.4", "VENUE1", "FIXGW"))
    dk = wait_rows(stack, lambda r: r.msg_type == "Q" and r.direction == "O")[0]
    assert dk.session_id == "FIX.4.4:FIXGW->VENUE1" and "17=E-GHOST" in dk.raw and "127=D" in dk.raw
    # the gateway keeps serving
    client = stack.client("CLIENT44")
    client.wait_exec(client.new_order("AAPL", "1", 10, "190.05"), "2")


def test_a_bug_in_the_core_is_answered_and_does_not_stop_the_gateway(stack, monkeypatch):
    core = stack.gateway.core
    real = core.handle

    def broken(cmd):
        if getattr(cmd, "cl_ord_id", None) == "BOOM":
            raise RuntimeError("simulated bug")
        return real(cmd)

    monkeypatch.setattr(core, "handle", broken)
    errors_before = stack.gateway.engine.errors
    client = stack.client("CLIENT44")
    client.new_order("AAPL", "1", 100, "190.05", cl_ord_id="BOOM")
    bmr = client.wait_for(lambda m: m.get(35) == "j" and m.get(379) == "BOOM", what="BusinessMessageReject")
    assert bmr[372] == "D" and "internal error" in bmr[58]
    client.wait_exec(client.new_order("AAPL", "1", 100, "190.05"), "2")  # still serving
    assert stack.gateway.engine.errors == errors_before + 1


def test_a_bug_on_the_session_thread_is_answered_and_does_not_kill_the_process(stack, monkeypatch):
    from sessions.codec import decode, tagvalue

    real = decode.decode_new_order

    def broken(msg, session, recv_ns=0, **kw):
        if tagvalue.fields(msg)[11] == "BOOM2":
            raise KeyError("simulated bug")
        return real(msg, session, recv_ns, **kw)

    monkeypatch.setattr(decode, "decode_new_order", broken)
    client = stack.client("CLIENT42")
    client.new_order("AAPL", "1", 100, "190.05", cl_ord_id="BOOM2")
    bmr = client.wait_for(lambda m: m.get(35) == "j" and "KeyError" in m.get(58, ""), what="BusinessMessageReject")
    assert bmr[372] == "D" and "internal error (KeyError)" in bmr[58] and int(bmr[45]) > 0  # RefSeqNum
    client.wait_exec(client.new_order("AAPL", "1", 100, "190.05"), "2")


# ---------------------------------------------------------------------------- helpers
def journal_rows(stack):
    from gateway.journal.queries import iter_messages
    return list(iter_messages(stack.cfg.journal.database_url))


def wait_rows(stack, predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        stack.gateway.journal.flush()
        rows = [r for r in journal_rows(stack) if predicate(r)]
        if rows or time.monotonic() > deadline:
            assert rows, "no matching journal row"
            return rows
        time.sleep(0.05)
