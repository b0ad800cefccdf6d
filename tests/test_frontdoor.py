"""The front door on the public FIX ports (gateway/security/frontdoor.py), over real sockets on 127.0.0.1.

The gateway runs with a short pre-logon timeout (1 s), a small message limit and
a per-address connection limit on both the client port and the drop-copy port;
raw sockets play the misbehaving peers, quickfix clients the real ones.
"""
from __future__ import annotations

import logging
import select
import socket
import time
from datetime import datetime, timezone

import pytest
from prometheus_client import REGISTRY

from gateway.observability.logs import LogfmtFormatter
from sessions.client import FixClient
from tests.fix_fixtures import Stack, free_port, start_stack

SOH = "\x01"
PRELOGON_S = 2
MAX_BYTES = 4096
PER_ADDRESS = 4


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("frontdoor")
    hygiene = (f"prelogon_timeout_s = {PRELOGON_S}\nmax_message_bytes = {MAX_BYTES}\n"
               f"max_connections_per_address = {PER_ADDRESS}\n")
    s = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp, acceptor_toml=hygiene, extra_toml=f"""
[dropcopy]
port = {free_port()}
{hygiene}
[dropcopy.sessions.DC44]
fix_version = "FIX.4.4"
""")
    yield s
    s.stop()


def fix_message(body: str, begin: str = "FIX.4.4") -> bytes:
    body = body.replace("|", SOH)
    head = f"8={begin}{SOH}9={len(body)}{SOH}{body}"
    return f"{head}10={sum(head.encode()) % 256:03d}{SOH}".encode()


def logon(sender: str, begin: str = "FIX.4.4", reset: bool = True, target: str = "FIXGW") -> bytes:
    now = datetime.now(timezone.utc).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]
    return fix_message(f"35=A|34=1|49={sender}|52={now}|56={target}|98=0|108=30|" + ("141=Y|" if reset else ""),
                       begin)


def fields_of(raw: bytes) -> dict[int, str]:
    return {int(t): v for t, _, v in (p.partition("=") for p in raw.decode("latin-1").split(SOH) if p)}


def closed_count(kind: str, reason: str) -> float:
    return REGISTRY.get_sample_value("fixgw_connections_closed_total", {"port_kind": kind, "reason": reason}) or 0.0


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    s.settimeout(5)
    return s


def wait_closed(s: socket.socket, timeout: float) -> tuple[bool, bytes]:
    """(whether the peer closed within ``timeout``, the bytes it sent before)."""
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([s], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, OSError):
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


def wait_for(pred, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def no_connections_left(stack: Stack) -> None:
    assert wait_for(lambda: not stack.gateway.front_door.open_connections(), PRELOGON_S + 5), \
        stack.gateway.front_door.open_connections()


def closures(caplog, reason: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fixgw.frontdoor" and getattr(r, "reason", None) == reason]


def test_a_silent_socket_is_closed_after_the_prelogon_timeout(stack, caplog):
    caplog.set_level(logging.INFO, logger="fixgw.frontdoor")
    before = closed_count("client", "prelogon_timeout")
    with connect(stack.cfg.acceptor.port) as s:
        start = time.monotonic()
        closed, got = wait_closed(s, PRELOGON_S + 5)
        waited = time.monotonic() - start
    assert closed and got == b""
    assert waited >= PRELOGON_S * 0.8, "closed before its pre-logon time was up"
    assert closed_count("client", "prelogon_timeout") == before + 1
    line = LogfmtFormatter().format(closures(caplog, "prelogon_timeout")[-1])
    assert "reason=prelogon_timeout" in line and "port_kind=client" in line
    assert f"no Logon within {PRELOGON_S} s" in line
    assert "Traceback" not in line


def test_a_byte_at_a_time_sender_is_closed_at_the_prelogon_timeout(stack, caplog):
    caplog.set_level(logging.INFO, logger="fixgw.frontdoor")
    before = closed_count("client", "prelogon_timeout")
    data = logon("CLIENT44")
    sent = 0
    with connect(stack.cfg.acceptor.port) as s:
        closed = False
        deadline = time.monotonic() + PRELOGON_S + 5
        while sent < len(data) and time.monotonic() < deadline:
            try:
                s.sendall(data[sent:sent + 1])
            except OSError:
                closed = True
                break
            sent += 1
            closed, _ = wait_closed(s, 0.1)
            if closed:
                break
    assert closed and sent < len(data), f"sent {sent} of {len(data)} bytes without being closed"
    assert closed_count("client", "prelogon_timeout") == before + 1
    assert "byte(s) received" in closures(caplog, "prelogon_timeout")[-1].getMessage()


@pytest.mark.parametrize("junk", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00\xff" * 40, b"8=FIX.4.4\x0135=A\x01"])
def test_garbage_is_closed_at_once(stack, caplog, junk):
    caplog.set_level(logging.INFO, logger="fixgw.frontdoor")
    before = closed_count("client", "garbage")
    with connect(stack.cfg.acceptor.port) as s:
        s.sendall(junk)
        closed, got = wait_closed(s, PRELOGON_S * 0.8)  # well before the pre-logon timeout
    assert closed and got == b""
    assert closed_count("client", "garbage") == before + 1
    assert "not FIX" in closures(caplog, "garbage")[-1].getMessage()


def test_a_body_length_of_99999999_is_closed_at_once(stack, caplog):
    caplog.set_level(logging.INFO, logger="fixgw.frontdoor")
    before = closed_count("client", "too_large")
    with connect(stack.cfg.acceptor.port) as s:
        s.sendall(b"8=FIX.4.4\x019=99999999\x0135=A\x01")
        closed, got = wait_closed(s, PRELOGON_S * 0.8)
    assert closed and got == b""
    assert closed_count("client", "too_large") == before + 1
    assert "BodyLength 99999999 is over the limit of 4096" in closures(caplog, "too_large")[-1].getMessage()


def test_a_first_message_that_is_not_a_logon_is_closed(stack):
    before = closed_count("client", "not_logon")
    with connect(stack.cfg.acceptor.port) as s:
        s.sendall(fix_message("35=D|34=1|49=CLIENT44|56=FIXGW|11=X|"))
        closed, got = wait_closed(s, PRELOGON_S * 0.8)
    assert closed and got == b"" and closed_count("client", "not_logon") == before + 1


def test_the_per_address_limit_refuses_the_next_connection_at_once(stack, caplog):
    caplog.set_level(logging.INFO, logger="fixgw.frontdoor")
    no_connections_left(stack)
    before = closed_count("client", "too_many_connections")
    port = stack.cfg.acceptor.port
    held = [connect(port) for _ in range(PER_ADDRESS)]
    try:
        assert wait_for(lambda: stack.gateway.front_door.open_connections().get(("client", "127.0.0.1")) == PER_ADDRESS)
        with connect(port) as extra:
            closed, got = wait_closed(extra, PRELOGON_S * 0.8)
        assert closed and got == b""
        assert closed_count("client", "too_many_connections") == before + 1
        assert f"{PER_ADDRESS} connections from this address already" in \
            closures(caplog, "too_many_connections")[-1].getMessage()
        with connect(port, source="127.0.0.2") as other:  # the limit is per address
            assert wait_for(lambda: stack.gateway.front_door.open_connections().get(("client", "127.0.0.2")) == 1)
            assert closed_count("client", "too_many_connections") == before + 1
    finally:
        for s in held:
            s.close()
    no_connections_left(stack)


def test_after_all_that_a_real_client_still_logs_on_and_trades(stack):
    c = stack.client("CLIENT44")
    cl = c.new_order("AAPL", "1", 100, "190.05")
    assert c.wait_exec(cl, "2")[30] == "VENUE1"
    assert stack.gateway.front_door.holder("client", "CLIENT44")["state"] == "relay"


def test_a_message_over_the_limit_after_the_logon_closes_the_connection(stack, caplog):
    import quickfix as fix

    caplog.set_level(logging.INFO, logger="fixgw.frontdoor")
    before = closed_count("client", "too_large")
    c = stack.client("CLIENT50")
    m = fix.Message()
    m.getHeader().setField(35, "B")  # News, with a headline longer than the limit
    m.setField(148, "x" * (MAX_BYTES + 100))
    m.setField(33, "0")
    c.send(m)
    assert c.wait_logged_on(5, up=False), "the connection was not closed"
    assert closed_count("client", "too_large") == before + 1
    assert closures(caplog, "too_large")[-1].session == "CLIENT50"
    c.stop()
    # it may log on again (resetting the sequence numbers: its store would send the big message again)
    again = FixClient(version="FIX.5.0", sender="CLIENT50", target="FIXGW", port=stack.cfg.acceptor.port,
                      store_dir=stack.tmp / "clients50", extra={"ResetOnLogon": "Y"})
    stack.clients["CLIENT50-again"] = again
    again.start()
    again.wait_exec(again.new_order("MSFT", "1", 10, "409"), "0")
    again.stop()


def test_a_second_logon_for_a_live_session_never_disturbs_it(stack, caplog):
    caplog.set_level(logging.INFO, logger="fixgw.frontdoor")
    live = stack.client("CLIENT42")  # no password, no address list: anyone who knows its CompID may try
    held = stack.gateway.front_door.holder("client", "CLIENT42")
    peer_before = stack.gateway.peers.tls_peer(held["alias"])
    seq_before = live.session.getExpectedSenderNum()
    before = closed_count("client", "session_in_use")
    with connect(stack.cfg.acceptor.port) as intruder:
        intruder.sendall(logon("CLIENT42", "FIX.4.2"))  # with ResetSeqNumFlag: it would reset the live session
        closed, got = wait_closed(intruder, 3)
    assert closed and got == b"", f"the second connection got {got!r}"
    assert closed_count("client", "session_in_use") == before + 1
    assert "which is connected from 127.0.0.1" in closures(caplog, "session_in_use")[-1].getMessage()
    # the live session: still logged on, its sequence numbers and its recorded source untouched, still trading
    assert live.session.isLoggedOn() and stack.gateway.is_logged_on("CLIENT42")
    assert live.session.getExpectedSenderNum() == seq_before
    assert stack.gateway.front_door.holder("client", "CLIENT42") == held
    assert stack.gateway.peers.tls_peer(held["alias"]) == peer_before
    cl = live.new_order("MSFT", "1", 100, "410.10")
    assert live.wait_exec(cl, "2")


def test_a_logon_storm_cannot_take_a_session_over_while_its_client_reconnects(stack):
    """quickfix alone keeps a second logon waiting up to 5 s for the session to free up: the moment the real
    client's connection dropped, the waiting intruder got the session. The front door refuses it at once."""
    live = stack.client("CLIENT42")
    intruders = [connect(stack.cfg.acceptor.port) for _ in range(3)]
    try:
        for s in intruders:
            s.sendall(logon("CLIENT42", "FIX.4.2"))
        time.sleep(0.3)
        live.stop()  # the real client reconnects
        answers = [wait_closed(s, 3) for s in intruders]
    finally:
        for s in intruders:
            s.close()
    assert all(closed and got == b"" for closed, got in answers), \
        f"an intruder was answered: {[got for _, got in answers]}"
    again = stack.client("CLIENT42")
    assert again.session.isLoggedOn()
    again.stop()


def test_a_logon_that_bypasses_the_front_door_is_refused(stack):
    if "CLIENT44" in stack.clients:
        stack.clients["CLIENT44"].stop()  # one quickfix session per SessionID in a process
    direct = FixClient(version="FIX.4.4", sender="CLIENT44", target="FIXGW", store_dir=stack.tmp / "direct",
                       port=stack.gateway._internal_ports[stack.cfg.acceptor.port])
    stack.clients["direct"] = direct
    direct._engine.start()
    assert not direct.wait_logged_on(3)
    direct.stop()
    assert any("accepted only through the gateway's FIX port" in t for t in direct.refusals())


def test_a_logon_for_a_session_of_another_port_is_refused_by_the_front_door(stack, caplog):
    caplog.set_level(logging.INFO, logger="fixgw.frontdoor")
    before = closed_count("dropcopy", "unknown_session")
    with connect(stack.cfg.dropcopy.port) as s:
        s.sendall(logon("CLIENT44"))  # a client session, on the drop-copy port
        closed, got = wait_closed(s, 3)
    assert closed and fields_of(got)[35] == "5" and closed_count("dropcopy", "unknown_session") == before + 1
    line = closures(caplog, "unknown_session")[-1].getMessage()
    assert "no session FIX.4.4:CLIENT44->FIXGW on this port" in line
    assert f"CLIENT44 is a client session, served on port {stack.cfg.acceptor.port}" in line


def test_a_logon_with_a_wrong_target_comp_id_is_answered_with_a_logout_and_the_log_names_what_is_wrong(
        stack, caplog):
    from gateway.journal.queries import iter_events

    caplog.set_level(logging.INFO, logger="fixgw.frontdoor")
    before = closed_count("client", "unknown_session")
    with connect(stack.cfg.acceptor.port) as s:
        s.sendall(logon("CLIENT44", target="FIXGX"))  # the right SenderCompID, a wrong TargetCompID
        closed, got = wait_closed(s, 3)
    assert closed and closed_count("client", "unknown_session") == before + 1
    answer = fields_of(got)
    # a Logout from the CompID the client addressed, with a Text that repeats only what the Logon said
    assert (answer[8], answer[35], answer[49], answer[56]) == ("FIX.4.4", "5", "FIXGX", "CLIENT44")
    assert answer[58] == ("no session FIX.4.4:CLIENT44->FIXGX here (BeginString, SenderCompID, TargetCompID of "
                          "your Logon): check them with the gateway's operator")
    line = closures(caplog, "unknown_session")[-1].getMessage()
    assert "no session FIX.4.4:CLIENT44->FIXGX on this port: SenderCompID CLIENT44 is configured with " \
           "TargetCompID FIXGW, the logon said FIXGX" in line
    assert "SenderCompID CLIENT44 is unknown" not in line and line.endswith("answered with a Logout")
    # an unknown SenderCompID gets the same answer, so a stranger learns nothing about which CompIDs exist
    with connect(stack.cfg.acceptor.port) as s:
        s.sendall(logon("CLIENT4X"))
        _, got = wait_closed(s, 3)
    assert fields_of(got)[58] == answer[58].replace("CLIENT44->FIXGX", "CLIENT4X->FIXGW")
    assert "SenderCompID CLIENT4X is not configured for this port (closest: CLIENT44 with TargetCompID FIXGW" in \
        closures(caplog, "unknown_session")[-1].getMessage()
    stack.gateway.journal.flush()
    journaled = [e.text for e in iter_events(stack.cfg.journal.database_url, "*")]
    assert any(t.startswith("front door answered with: 8=FIX.4.4") and "56=CLIENT44" in t and "35=5" in t
               for t in journaled)


def test_the_drop_copy_port_has_the_same_hygiene_and_its_receivers_still_log_on(stack):
    before = {r: closed_count("dropcopy", r) for r in ("garbage", "prelogon_timeout", "too_large")}
    with connect(stack.cfg.dropcopy.port) as silent, connect(stack.cfg.dropcopy.port) as junk, \
            connect(stack.cfg.dropcopy.port) as huge:
        junk.sendall(b"\x16\x03\x01\x00\xa5\x01\x00\x00")
        huge.sendall(b"8=FIX.4.4\x019=99999999\x01")
        results = [wait_closed(s, PRELOGON_S + 5) for s in (junk, huge, silent)]
    assert all(closed and got == b"" for closed, got in results)
    assert {r: closed_count("dropcopy", r) - before[r] for r in before} == \
        {"garbage": 1, "prelogon_timeout": 1, "too_large": 1}
    receiver = FixClient(version="FIX.4.4", sender="DC44", target="FIXGW", port=stack.cfg.dropcopy.port,
                         store_dir=stack.tmp / "receivers")
    stack.clients["DC44"] = receiver
    receiver.start()
    # quickfix's acceptor marks the session logged on as it answers; the receiver may hear the answer first
    assert wait_for(lambda: stack.gateway.is_logged_on("DC44"))
    receiver.stop()


def test_garbage_after_logon_closes_the_connection_but_what_came_before_it_is_processed_and_the_rest_journaled(
        stack, caplog):
    from gateway.journal.queries import iter_events

    caplog.set_level(logging.INFO, logger="fixgw.frontdoor")
    before = closed_count("client", "garbage")
    s = connect(stack.cfg.acceptor.port)
    try:
        s.sendall(logon("CLIENT42", "FIX.4.2"))
        deadline = time.monotonic() + 5
        got = b""
        while b"35=A" not in got and time.monotonic() < deadline:
            got += s.recv(65536)
        assert b"35=A" in got
        now = datetime.now(timezone.utc).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]
        order = fix_message(f"35=D|34=2|49=CLIENT42|56=FIXGW|52={now}|11=GB1|21=1|55=AAPL|54=1|"
                            f"60={now}|38=5|40=2|44=190.05|", "FIX.4.2")
        s.sendall(order + b"\xffNOT FIX AT ALL" + order.replace(b"GB1", b"GB2"))
        closed, rest = wait_closed(s, 5)
        assert closed
    finally:
        s.close()
    assert closed_count("client", "garbage") == before + 1
    # the order before the garbage reached quickfix, was journaled and processed (acknowledged at the venue)
    assert wait_for(lambda: stack.gateway.engine.call(lambda core: core.order_for_client("CLIENT42", "GB1")) is not None)
    assert stack.gateway.engine.call(lambda core: core.order_for_client("CLIENT42", "GB2")) is None
    stack.gateway.journal.flush()
    sid = stack.gateway.client_sids["CLIENT42"].toString()
    events = [e.text for e in iter_events(stack.cfg.journal.database_url, sid) if "front door closed" in e.text]
    assert events and "NOT FIX AT ALL" in events[-1] and "GB2" in events[-1], events


def test_a_client_that_reconnects_at_once_is_logged_on_not_dropped_by_quickfix(stack):
    """quickfix holds a connection for a session still registered to its previous one (just closed) and drops it
    after 5 s without a word; the front door waits until quickfix has let go before it relays the Logon."""
    def logon_answered(s: socket.socket, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        got = b""
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return False
            got += chunk
            if b"\x0135=A\x01" in got:
                return True
        return False

    for _ in range(5):
        s = connect(stack.cfg.acceptor.port)
        s.sendall(logon("CLIENT44"))
        assert logon_answered(s, 5)
        s.close()  # and at once again, while quickfix may still hold the session for this connection
    s = connect(stack.cfg.acceptor.port)
    try:
        s.sendall(logon("CLIENT44"))
        assert logon_answered(s, 4), "the Logon of a client reconnecting at once was not answered"
    finally:
        s.close()


def test_a_port_held_while_its_acceptor_starts_relays_the_waiting_logon_once_released(stack):
    """A cluster's successor listens the moment it holds the lease (SessionEngines.listen_early): a client that
    connects before the acceptor runs is held, not refused, and logged on as soon as it runs."""
    door = stack.gateway.front_door
    door.hold("client")
    try:
        s = connect(stack.cfg.acceptor.port)
        s.sendall(logon("CLIENT44"))
        s.settimeout(1.0)
        with pytest.raises(socket.timeout):
            s.recv(65536)  # held: nothing relayed, nothing answered, the connection open
    finally:
        door.release("client")
    try:
        s.settimeout(5)
        got = b""
        while b"\x0135=A\x01" not in got:
            chunk = s.recv(65536)
            assert chunk, f"closed instead of answered: {got!r}"
            got += chunk
    finally:
        s.close()
