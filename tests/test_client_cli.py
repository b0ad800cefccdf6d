"""`fixgw client` against a running gateway with simulated venues (real quickfix sessions over loopback).

The command runs in this process through click's CliRunner (stdin is then never a terminal: a command file or
piped commands). CLIENT50 needs a password here, so the FIX 5.0 order also covers a password logon; CLIENT42
connects with TLS on a port of its own, so the FIX 4.2 order also covers TLS.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from gateway.cli import client_script as cs
from gateway.cli.main import main
from tests.fix_fixtures import free_port, start_stack
from tests.tls_certs import make_pki

PASSWORD = "client-test-password-1"
NO_PASSWORD_ENV = {"FIXGW_CLIENT_PASSWORD": None}

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("client_cli")
    pki = make_pki(tmp / "pki")
    s = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp, client_options={
        "CLIENT50": "password_required = true",
        "CLIENT42": f'port = {free_port()}\ntls = {{ cert = "{pki.server.cert}", key = "{pki.server.key}" }}'},
        extra_toml=f'[dropcopy]\nport = {free_port()}\n[dropcopy.sessions.DC44]\nfix_version = "FIX.4.4"\n')
    s.gateway.credentials.set("CLIENT50", PASSWORD)
    s.pki = pki
    yield s
    s.stop()


def fixgw_client(stack, name: str, *args: str, input: str | None = None, env: dict | None = None,
                 tls_ca: bool = True):
    runner = CliRunner(env={**NO_PASSWORD_ENV, **(env or {})})
    tls = ["--tls-ca", str(stack.pki.ca)] if name == "CLIENT42" and tls_ca else []
    return runner.invoke(main, ["client", "-c", str(stack.config_path), "--timeout", "10", *tls, name, *args],
                         input=input)


@pytest.mark.parametrize("name", ["CLIENT42", "CLIENT44", "CLIENT50"])
def test_one_order_in_each_fix_version_is_answered_and_shown(stack, name):
    result = fixgw_client(stack, name, "buy", "100", "AAPL", "--limit", "191",
                          env={"FIXGW_CLIENT_PASSWORD": PASSWORD})
    assert result.exit_code == cs.EXIT_OK, result.output
    assert f"logged on to 127.0.0.1:{stack.cfg.client_port(name)} as {name} -> FIXGW" in result.output
    assert (", TLS" in result.output) == (name == "CLIENT42")
    sent = [line for line in result.output.splitlines() if " sent NewOrderSingle " in line]
    assert len(sent) == 1 and sent[0].endswith("buy 100 AAPL @191")
    cl_ord_id = sent[0].split()[3]
    assert any(f"ExecutionReport {state} {cl_ord_id} buy 100 AAPL @191" in result.output for state in ("New", "Filled"))


def test_a_command_file_rests_replaces_asks_and_cancels_an_order(stack, tmp_path):
    cmds = tmp_path / "cmds.txt"
    cmds.write_text("# an order far from the market, changed, asked about and cancelled\n"
                    "buy 100 MSFT --limit 300 --id FILE-1\n"
                    "replace FILE-1 --qty 150 --id FILE-2\n"
                    "status FILE-1\n"
                    "cancel FILE-1 --id FILE-3\n"
                    "wait\n")
    result = fixgw_client(stack, "CLIENT44", "--file", str(cmds))
    assert result.exit_code == cs.EXIT_OK, result.output
    out = result.output
    assert "ExecutionReport New FILE-1 buy 100 MSFT @300" in out
    assert "ExecutionReport Replaced (New) FILE-2 (was FILE-1) buy 150 MSFT @300" in out
    assert "ExecutionReport Status New FILE-2 buy 150 MSFT" in out
    assert "sent OrderCancelRequest FILE-3 for FILE-2 buy 150 MSFT" in out  # the order's live ClOrdID
    assert "ExecutionReport Canceled FILE-3 (was FILE-2)" in out
    order = stack.gateway.core.orders[_order_id(out, "FILE-1")]
    assert not order.is_open


def _order_id(output: str, cl_ord_id: str) -> str:
    line = next(line for line in output.splitlines() if f"ExecutionReport New {cl_ord_id} " in line)
    return next(w for w in line.split() if w.startswith("OrderID=")).split("=", 1)[1]


def test_a_rejected_order_is_shown_with_its_reason_and_exits_3(stack):
    result = fixgw_client(stack, "CLIENT42", "sell", "10", "ZZZZ", "--limit", "5")
    assert result.exit_code == cs.EXIT_REFUSED, result.output
    assert 'ExecutionReport Rejected' in result.output
    assert 'reason 1 (unknown symbol) "unknown symbol ZZZZ' in result.output


def test_a_session_reject_answers_the_order_it_names_by_sequence_number(stack):
    # OrderQty beyond [limits] max_qty: the gateway refuses it at session level (35=3 naming tag 38)
    result = fixgw_client(stack, "CLIENT44", "--json", "--file", "-", input="buy 10000000000000 AAPL --id BIG-1\n")
    assert result.exit_code == cs.EXIT_REFUSED, result.output
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    sent = next(o for o in objects if o["event"] == "sent")
    reject = next(o for o in objects if o.get("name") == "Reject")
    assert reject["ref_seq_num"] == sent["msg_seq_num"] and reject["ref_tag_id"] == "38"
    assert {"event": "result", "msg_type": "D", "cl_ord_id": "BIG-1", "outcome": "refused", "exit": 3} in objects


def test_json_output_is_one_object_per_line_with_the_clordid_and_the_outcome(stack):
    result = fixgw_client(stack, "CLIENT44", "--json", "buy", "10", "MSFT", "--limit", "300", "--id", "JSON-1")
    assert result.exit_code == cs.EXIT_OK, result.output
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert objects[0]["event"] == "logon" and objects[0]["fix_version"] == "FIX.4.4"
    sent = [o for o in objects if o["event"] == "sent"]
    assert [(o["name"], o["cl_ord_id"], o["symbol"], o["price"]) for o in sent] == [
        ("NewOrderSingle", "JSON-1", "MSFT", "300")]
    reports = [o for o in objects if o.get("name") == "ExecutionReport"]
    assert {o["ord_status_name"] for o in reports} >= {"PendingNew", "New"}
    assert all(o["fields"]["11"] == "JSON-1" for o in reports)
    assert {"event": "result", "msg_type": "D", "cl_ord_id": "JSON-1", "outcome": "ok", "exit": 0} in objects
    cancel = fixgw_client(stack, "CLIENT44", "--json", "cancel", "JSON-1", "--symbol", "MSFT", "--side", "buy")
    assert cancel.exit_code == cs.EXIT_OK, cancel.output  # an order of an earlier run, named with --symbol/--side
    assert any(json.loads(line).get("ord_status_name") == "Canceled" for line in cancel.stdout.splitlines())


def test_a_refused_logon_shows_the_gateways_reason_and_exits_1(stack):
    result = fixgw_client(stack, "CLIENT50", "--password-stdin", "buy", "1", "AAPL", input="not-the-password\n")
    assert result.exit_code == 1
    assert "refused the logon of CLIENT50" in result.output and "wrong username or password" in result.output


def test_no_gateway_on_the_port_is_a_clear_error(stack):
    port = free_port()
    result = fixgw_client(stack, "CLIENT44", "--port", str(port), "buy", "1", "AAPL")
    assert result.exit_code == 1
    assert f"could not log on to 127.0.0.1:{port} as CLIENT44" in result.output


def test_a_tls_session_with_an_untrusted_gateway_certificate_says_so(stack):
    result = fixgw_client(stack, "CLIENT42", "buy", "1", "AAPL", tls_ca=False)  # the system's CAs: not ours
    assert result.exit_code == 1
    assert "could not log on to 127.0.0.1" in result.output and "certificate verification failed" in result.output


def test_a_drop_copy_session_is_watched_and_shows_each_copy_as_it_arrives(stack):
    watcher = subprocess.Popen([sys.executable, "-m", "gateway.cli", "client", "-c", str(stack.config_path), "DC44",
                                "--count", "2", "--for", "30", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not stack.gateway.is_logged_on("DC44") and time.monotonic() < deadline:
            time.sleep(0.05)
        result = fixgw_client(stack, "CLIENT44", "buy", "100", "AAPL", "--limit", "191")
        assert result.exit_code == cs.EXIT_OK, result.output
        out, err = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == cs.EXIT_OK, err
    cl_ord_id = next(line.split()[3] for line in result.output.splitlines() if " sent NewOrderSingle " in line)
    copies = [m for m in map(json.loads, out.splitlines()) if m.get("msg_type") == "8"
              and m["fields"]["11"] == cl_ord_id]
    assert [c["fields"]["39"] for c in copies] == ["A", "0", "2"] and all(c["fields"]["797"] == "Y" for c in copies)


def test_a_drop_copy_session_takes_no_orders(stack):
    result = fixgw_client(stack, "DC44", "buy", "100", "AAPL")
    assert result.exit_code == cs.EXIT_USAGE and "drop-copy session" in result.output
