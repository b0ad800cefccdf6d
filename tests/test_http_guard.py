"""The HTTP port's connection hygiene, over raw sockets on 127.0.0.1: silent, slow, oversized, malformed, vanishing.

The stack's [http] limits are small (a 1 s request timeout, 1 KiB headers and
body, 3 connections per address) so each case is reached quickly. After every
case the server still answers the next request.
"""
from __future__ import annotations

import json
import logging
import select
import socket
import struct
import time

import pytest
from prometheus_client import REGISTRY

from gateway.admin.api import admin_token
from gateway.journal.queries import iter_events
from gateway.observability.logs import LogfmtFormatter
from tests.fix_fixtures import start_stack

TIMEOUT_S = 1.0
MAX_CONNECTIONS = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http_guard")
    rules = tmp / "rules.toml"
    rules.write_text("version = 1\n[limits]\nmax_order_qty = 100000\n")
    s = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp, extra_toml=f'[risk]\nrules_file = "{rules}"\n',
                    http_options=f"request_timeout_s = {TIMEOUT_S}\nmax_header_bytes = 1024\n"
                                 f"max_body_bytes = 1024\nmax_connections_per_address = {MAX_CONNECTIONS}\n")
    yield s
    s.stop()


@pytest.fixture
def token(stack) -> str:
    return admin_token(stack.cfg.data_dir)


def closed(reason: str) -> float:
    return REGISTRY.get_sample_value("fixgw_http_connections_closed_total", {"reason": reason}) or 0.0


def connect(stack) -> socket.socket:
    return socket.create_connection(stack.gateway.http.address, timeout=10)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (the socket's 10 s timeout bounds each read)."""
    data = b""
    for _ in range(1000):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    sock.close()
    return data


def answer(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body.startswith(b"{") else {"raw": body.decode(errors="replace")}


def exchange(stack, request: bytes) -> tuple[int, dict]:
    sock = connect(stack)
    sock.sendall(request)
    return answer(read_until_closed(sock))


def admin_post(path: str, body: bytes, token: str, operator: str = "alice", length: str | None = None) -> bytes:
    length = str(len(body)) if length is None else length
    return (f"POST {path} HTTP/1.0\r\nAuthorization: Bearer {token}\r\nX-Fixgw-Operator: {operator}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode() + body


def operator_actions(stack) -> list[str]:
    stack.gateway.journal.flush()
    return [e.text for e in iter_events(stack.cfg.journal.database_url, "operator")]


def wait_for_action(stack, fragment: str) -> str:
    """The journaled operator action containing ``fragment`` (the server journals it after the client has gone)."""
    for _ in range(50):
        found = [a for a in operator_actions(stack) if fragment in a]
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no operator action with {fragment!r} in {operator_actions(stack)[-5:]}")


def kill_switches(stack) -> dict:
    return stack.gateway.engine.call(lambda core: core.risk_summary())["kill_switches"]


def wait_idle(stack) -> None:
    """Until the server has let go of every connection from 127.0.0.1 (each handler thread ends by itself)."""
    server = stack.gateway.http._server
    for _ in range(100):
        if server.open_connections("127.0.0.1") == 0:
            return
        time.sleep(0.05)
    raise AssertionError("connections from 127.0.0.1 still open")


def assert_still_serving(stack) -> None:
    status, details = exchange(stack, b"GET /health HTTP/1.0\r\n\r\n")
    assert status == 200 and details["healthy"] is True


def test_a_silent_connection_is_answered_408_and_closed_at_the_request_timeout(stack, caplog):
    wait_idle(stack)
    before = closed("request_timeout")
    sock = connect(stack)
    with caplog.at_level(logging.INFO, logger="fixgw.http"):
        status, body = answer(read_until_closed(sock))  # we send nothing at all
    assert status == 408 and "not fully received within 1 s" in body["error"]
    assert closed("request_timeout") == before + 1
    lines = [LogfmtFormatter().format(r) for r in caplog.records if getattr(r, "reason", "") == "request_timeout"]
    assert lines and "\n" not in lines[0] and "reason=request_timeout" in lines[0] and "peer=127.0.0.1" in lines[0]
    assert_still_serving(stack)


def test_a_request_sent_a_byte_at_a_time_is_cut_off_at_the_deadline_not_kept_alive_by_each_byte(stack):
    wait_idle(stack)
    before = closed("request_timeout")
    sock = connect(stack)
    request = b"GET /health HTTP/1.0\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
    sent = 0
    for byte in request:  # 0.05 s a byte: the whole request would take 11 s; each gap is far below the timeout
        ready, _, _ = select.select([sock], [], [], 0.05)
        if ready:
            break  # the server has answered (or closed)
        try:
            sock.send(bytes([byte]))
        except OSError:
            break
        sent += 1
    status, body = answer(read_until_closed(sock))
    assert status == 408 and sent < len(request)
    assert closed("request_timeout") == before + 1
    assert_still_serving(stack)


def test_a_client_that_goes_away_mid_body_is_never_served(stack, token):
    """A complete JSON object, but fewer bytes than its Content-Length: the old server engaged the kill switch."""
    wait_idle(stack)
    before = closed("client_gone")
    body = b'{"scope": "global"}'
    sock = connect(stack)
    sock.sendall(admin_post("/admin/risk/kill", body, token, length=str(len(body) + 20)))
    sock.shutdown(socket.SHUT_WR)  # gone: nothing more will come
    assert read_until_closed(sock) == b""  # no answer: nothing was served
    action = wait_for_action(stack, f"went away after {len(body)} of its {len(body) + 20} body bytes")
    assert action.startswith("alice from 127.0.0.1: POST /admin/risk/kill -> closed")
    assert kill_switches(stack) == {}
    assert closed("client_gone") == before + 1
    assert_still_serving(stack)


def test_a_client_that_goes_away_mid_headers_is_never_served(stack, token):
    """Headers cut short parse as complete in http.server: a POST without its Content-Length line is not served."""
    wait_idle(stack)
    sock = connect(stack)
    sock.sendall(f"POST /admin/risk/kill HTTP/1.0\r\nAuthorization: Bearer {token}\r\n"
                 "X-Fixgw-Operator: bob\r\n".encode())
    sock.shutdown(socket.SHUT_WR)
    assert read_until_closed(sock) == b""
    action = wait_for_action(stack, "bob from 127.0.0.1: POST /admin/risk/kill -> closed")
    assert "before the end of the headers" in action
    assert kill_switches(stack) == {}
    assert_still_serving(stack)


def test_a_content_length_larger_than_the_body_is_closed_at_the_timeout_and_journaled(stack, token):
    wait_idle(stack)
    sock = connect(stack)
    sock.sendall(admin_post("/admin/risk/kill", b'{"scope": "global"}', token, operator="carol", length="100"))
    status, body = answer(read_until_closed(sock))  # we keep the connection open, sending nothing more
    assert status == 408 and "request_timeout_s" in body["error"]
    action = wait_for_action(stack, "carol from 127.0.0.1: POST /admin/risk/kill -> 408")
    assert "not fully received within 1 s" in action
    assert kill_switches(stack) == {}
    assert_still_serving(stack)


@pytest.mark.parametrize("length", ["-1", "abc", "1_0", "+5", "0x10", "1e3"])
def test_a_content_length_that_is_not_a_plain_number_is_a_400_naming_it(stack, token, length):
    wait_idle(stack)
    before = closed("bad_request")
    status, body = exchange(stack, admin_post("/admin/risk/kill", b'{"scope": "global"}', token,
                                              operator="dave", length=length))
    assert status == 400 and body["error"] == f"Content-Length must be a whole number of bytes, got {length!r}"
    action = wait_for_action(stack, "dave from 127.0.0.1: POST /admin/risk/kill -> 400 (Content-Length must")
    assert repr(length) in action
    assert kill_switches(stack) == {} and closed("bad_request") == before + 1
    assert_still_serving(stack)


def test_conflicting_content_lengths_and_transfer_encoding_are_refused(stack, token):
    wait_idle(stack)
    twice = (f"POST /admin/risk/kill HTTP/1.0\r\nAuthorization: Bearer {token}\r\nContent-Length: 19\r\n"
             "Content-Length: 5\r\n\r\n").encode() + b'{"scope": "global"}'
    status, body = exchange(stack, twice)
    assert status == 400 and "conflicting Content-Length headers (19, 5)" in body["error"]
    chunked = (f"POST /admin/risk/kill HTTP/1.0\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n"
               "\r\n13\r\n").encode() + b'{"scope": "global"}\r\n0\r\n\r\n'
    status, body = exchange(stack, chunked)
    assert status == 400 and "Transfer-Encoding is not accepted" in body["error"]
    assert kill_switches(stack) == {}
    assert "unknown from 127.0.0.1: POST /admin/risk/kill -> 400 (Transfer-Encoding" in "\n".join(
        operator_actions(stack))
    assert_still_serving(stack)


def test_a_body_over_the_limit_is_a_413_and_is_not_read(stack, token):
    wait_idle(stack)
    before = closed("too_large")
    body = b'{"scope": "global", "pad": "' + b"x" * 4000 + b'"}'
    status, answer_ = exchange(stack, admin_post("/admin/risk/kill", body, token, operator="erin"))
    assert status == 413 and answer_["error"] == (f"the request body of {len(body)} bytes is larger than the "
                                                  "limit of 1024 ([http] max_body_bytes)")
    assert "erin from 127.0.0.1: POST /admin/risk/kill -> 413" in wait_for_action(stack, "erin from")
    assert closed("too_large") == before + 1
    assert_still_serving(stack)


def test_headers_over_the_limit_are_a_431(stack):
    wait_idle(stack)
    status, body = exchange(stack, b"GET /metrics HTTP/1.0\r\nX-Padding: " + b"a" * 2000 + b"\r\n\r\n")
    assert status == 431 and "max_header_bytes" in body["error"]
    assert_still_serving(stack)


def test_an_admin_call_refused_at_the_http_layer_says_when_it_carried_no_valid_token(stack):
    wait_idle(stack)
    status, _ = exchange(stack, admin_post("/admin/risk/kill", b"{}", "wrong-token", operator="mallory",
                                           length="-1"))
    assert status == 400
    assert wait_for_action(stack, "mallory (no valid token) from 127.0.0.1: POST /admin/risk/kill -> 400")


def test_an_unsupported_method_is_a_405_and_journaled_when_it_is_an_admin_call(stack, token):
    wait_idle(stack)
    status, body = exchange(stack, f"DELETE /admin/risk HTTP/1.0\r\nAuthorization: Bearer {token}\r\n"
                                   "X-Fixgw-Operator: frank\r\n\r\n".encode())
    assert status == 405 and "method DELETE is not supported" in body["error"]
    assert wait_for_action(stack, "frank from 127.0.0.1: DELETE /admin/risk -> 405")
    assert_still_serving(stack)


def test_connections_over_the_per_address_limit_are_closed_unread_until_one_frees_up(stack):
    wait_idle(stack)
    before = closed("too_many_connections")
    server = stack.gateway.http._server
    silent = [connect(stack) for _ in range(MAX_CONNECTIONS)]
    for _ in range(100):
        if server.open_connections("127.0.0.1") == MAX_CONNECTIONS:
            break
        time.sleep(0.02)
    assert server.open_connections("127.0.0.1") == MAX_CONNECTIONS
    extra = connect(stack)
    extra.sendall(b"GET /health HTTP/1.0\r\n\r\n")
    assert read_until_closed(extra) == b""  # closed at once, nothing read, nothing answered
    assert closed("too_many_connections") == before + 1
    for sock in silent:
        sock.close()
    wait_idle(stack)
    assert_still_serving(stack)


def test_a_client_gone_before_its_answer_is_one_log_line_never_a_traceback_on_stderr(stack, capfd):
    """A reset right after the request: the server's read or its write fails. Either is counted and logged
    in the gateway's format; socketserver's traceback (BrokenPipeError, ConnectionResetError) never shows."""
    wait_idle(stack)
    reasons = ("client_gone", "write_failed", "no_request")
    before = sum(closed(r) for r in reasons)
    for _ in range(20):
        sock = connect(stack)
        sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # an RST, not a FIN
        wait_idle(stack)
        if sum(closed(r) for r in reasons) > before:
            break
    assert sum(closed(r) for r in reasons) > before
    assert "Traceback" not in capfd.readouterr().err
    assert_still_serving(stack)
