"""/metrics and /health of a running gateway, scraped over HTTP."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.fix_fixtures import start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http")
    s = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp)
    yield s
    s.stop()


def get(stack, path: str) -> tuple[int, str]:
    host, port = stack.gateway.http.address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric line starting with {line_start!r}")


def test_health_is_ok_while_the_journal_commits_and_every_venue_is_logged_on(stack):
    status, body = get(stack, "/health")
    details = json.loads(body)
    assert status == 200 and details["healthy"] is True and details["venues"] == {"VENUE1": True, "VENUE2": True}


def test_metrics_show_sessions_journal_and_orders(stack):
    c = stack.client("CLIENT44")
    c.wait_exec(c.new_order("AAPL", "1", 100, "190.05"), "2")
    resting = c.new_order("AAPL", "1", 100, "180")
    c.wait_exec(resting, "0")
    stack.gateway.journal.flush()
    status, text = get(stack, "/metrics")
    assert status == 200
    assert metric(text, 'fixgw_session_up{role="client",session="CLIENT44"}') == 1.0
    assert metric(text, 'fixgw_session_up{role="client",session="CLIENT42"}') == 0.0
    assert metric(text, 'fixgw_session_up{role="venue",session="VENUE1"}') == 1.0
    sender = metric(text, 'fixgw_session_next_sender_seqnum{role="client",session="CLIENT44"}')
    assert sender == stack.gateway.session("CLIENT44").getExpectedSenderNum()
    assert metric(text, "fixgw_journal_healthy ") == 1.0
    assert metric(text, "fixgw_journal_committed_rows_total ") >= 8
    assert metric(text, "fixgw_open_orders ") == 1.0
    assert "process_cpu_seconds_total" in text  # prometheus-client's process metrics
    c.wait_exec(c.cancel(resting, "AAPL", "1", 100), "4")


def test_counters_export_no_created_series(stack):
    c = stack.client("CLIENT44")
    c.wait_exec(c.new_order("AAPL", "1", 100, "190.05"), "2")  # fixgw_routed_orders_total has a sample
    _, text = get(stack, "/metrics")
    assert metric(text, 'fixgw_routed_orders_total{venue="VENUE1"}') >= 1
    assert [line for line in text.splitlines() if "_created" in line] == []


def test_message_counters_equal_the_messages_the_client_exchanged(stack):
    c = stack.client("CLIENT42")
    for _ in range(3):
        c.wait_exec(c.new_order("MSFT", "1", 10, "410.05"), "2")
    stack.gateway.journal.flush()
    _, text = get(stack, "/metrics")
    by_type: dict[tuple[str, str], int] = {}
    for direction, raw in list(c.wire.lines):
        msg_type = raw.split("\x0135=", 1)[1].split("\x01", 1)[0]
        key = ("in" if direction == "O" else "out", msg_type)  # what the client wrote, the gateway read
        by_type[key] = by_type.get(key, 0) + 1
    for (direction, msg_type), n in by_type.items():
        line = f'fixgw_messages_total{{direction="{direction}",msg_type="{msg_type}",session="CLIENT42"}}'
        assert metric(text, line) == n, line
    assert by_type[("in", "D")] == 3 and by_type[("out", "8")] == 9  # PendingNew, New, Fill per order


def test_unknown_path_is_a_404_that_says_where_to_look(stack):
    status, body = get(stack, "/nope")
    assert status == 404 and "/metrics" in body


def test_health_is_503_naming_the_venue_that_is_down(stack):
    stack.venues["VENUE2"].stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, body = get(stack, "/health")
        if status == 503:
            break
        time.sleep(0.1)
    assert status == 503 and "venue VENUE2 is not logged on" in json.loads(body)["problems"]
