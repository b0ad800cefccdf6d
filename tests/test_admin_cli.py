"""Operator commands (`fixgw status|sessions|orders|risk`), run as subprocesses against a running gateway."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from importlib import resources
from pathlib import Path

import pytest

from gateway.journal.queries import iter_events
from tests.fix_fixtures import free_port, start_stack

FIXGW = shutil.which("fixgw", path=str(Path(sys.executable).parent)) or "fixgw"
DEMO_RULES = (resources.files("risk") / "demo_rules.toml").read_text()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("admin")
    rules = tmp / "rules.toml"
    rules.write_text(DEMO_RULES)
    stack = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp, extra_toml=f"""
[risk]
rules_file = "{rules}"
reference_prices = {{ AAPL = 190.00, MSFT = 410.00, ORCL = 120.00 }}
""")
    cli_cfg = tmp / "cli.cfg"  # what an operator's config gives the CLI: where the gateway is, its data dir
    cli_cfg.write_text(f'data_dir = "{stack.cfg.data_dir}"\n[http]\nport = {stack.cfg.http.port}\n')
    yield stack, cli_cfg, rules
    stack.stop()


def fixgw(cfg: Path, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FIXGW_ADMIN_TOKEN"}
    if token is not None:
        env["FIXGW_ADMIN_TOKEN"] = token
    return subprocess.run([FIXGW, *args, "-c", str(cfg)], capture_output=True, text=True, timeout=30, env=env)


def test_status_shows_health_sessions_journal_and_risk(env):
    stack, cfg, _ = env
    out = fixgw(cfg, "status")
    assert out.returncode == 0, out.stderr
    assert "FIXGW: healthy" in out.stdout and "VENUE1: up" in out.stdout and "risk: on" in out.stdout
    data = json.loads(fixgw(cfg, "status", "--json").stdout)
    assert data["sessions_total"] == 5 and data["journal"]["healthy"] is True


def test_status_shows_the_journal_lag_the_metric_exports_with_its_unit_and_meaning(env, monkeypatch):
    stack, cfg, _ = env
    # one figure, read from the journal by both: held still here so that the two reads can be compared
    monkeypatch.setattr(stack.gateway.journal, "commit_lag_seconds", lambda: 1.234)
    data = json.loads(fixgw(cfg, "status", "--json").stdout)
    assert data["journal"]["commit_lag_seconds"] == 1.234
    out = fixgw(cfg, "status").stdout
    assert "journal: 1.234 s behind (age of the oldest row not yet committed)" in out
    host, port = stack.gateway.http.address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert "fixgw_journal_commit_lag_seconds 1.234" in text.splitlines()
    assert "# HELP fixgw_journal_commit_lag_seconds How far the journal's durable record is behind now" in text


def test_sessions_list_and_show(env):
    stack, cfg, _ = env
    stack.client("CLIENT44")
    listed = fixgw(cfg, "sessions", "list")
    assert listed.returncode == 0 and "CLIENT44" in listed.stdout and "NEXT_SENDER_SEQNUM" in listed.stdout
    shown = json.loads(fixgw(cfg, "sessions", "show", "CLIENT44", "--json").stdout)
    assert shown["logged_on"] is True and shown["fix_version"] == "FIX.4.4" and shown["messages_in"] >= 1


def test_unknown_session_is_named_in_a_clear_error(env):
    _, cfg, _ = env
    out = fixgw(cfg, "sessions", "show", "NOPE")
    assert out.returncode == 1 and "unknown session NOPE" in out.stderr and "CLIENT44" in out.stderr


def test_orders_list_and_show(env):
    stack, cfg, _ = env
    c = stack.client("CLIENT44")
    cl = c.new_order("MSFT", "1", 100, "400", account="ACC9")
    oid = c.wait_exec(cl, "0")[37]
    listed = json.loads(fixgw(cfg, "orders", "list", "--open", "--account", "ACC9", "--json").stdout)["orders"]
    assert [o["cl_ord_id"] for o in listed] == [cl]
    shown = fixgw(cfg, "orders", "show", oid)
    assert shown.returncode == 0 and "status: new" in shown.stdout and "venue: VENUE1" in shown.stdout
    c.wait_exec(c.cancel(cl, "MSFT", "1", 100), "4")
    assert json.loads(fixgw(cfg, "orders", "list", "--open", "--account", "ACC9", "--json").stdout)["orders"] == []


def test_kill_switch_rejects_new_orders_until_released(env):
    stack, cfg, _ = env
    c = stack.client("CLIENT44")
    assert fixgw(cfg, "risk", "kill", "global").returncode == 0
    rej = c.wait_exec(c.new_order("AAPL", "1", 10, "190.05"), "8")
    assert "kill_switch" in rej[58]
    released = fixgw(cfg, "risk", "unkill", "global")
    assert released.returncode == 0 and "released" in released.stdout
    c.wait_exec(c.new_order("AAPL", "1", 11, "190.05"), "2")


def test_symbol_kill_switch_can_cancel_the_open_orders_at_the_venue(env):
    stack, cfg, _ = env
    c = stack.client("CLIENT44")
    cl = c.new_order("ORCL", "1", 100, "119")  # rests at VENUE2
    c.wait_exec(cl, "0")
    out = fixgw(cfg, "risk", "kill", "symbol", "ORCL", "--cancel-open")
    assert out.returncode == 0 and "1 open order(s) being canceled" in out.stdout
    canceled = c.wait_exec(cl, "4")
    assert "kill switch symbol ORCL" in canceled[58]
    rej = c.wait_exec(c.new_order("ORCL", "1", 100, "119"), "8")
    assert "kill_switch" in rej[58]
    assert fixgw(cfg, "risk", "unkill", "symbol", "ORCL").returncode == 0


def test_reload_applies_new_limits_and_refuses_a_bad_file_keeping_the_old_rules(env):
    stack, cfg, rules = env
    c = stack.client("CLIENT44")
    try:
        rules.write_text(DEMO_RULES.replace("max_order_qty = 100000", "max_order_qty = 50"))
        ok = fixgw(cfg, "risk", "reload")
        assert ok.returncode == 0, ok.stderr
        rej = c.wait_exec(c.new_order("AAPL", "1", 60, "190.05"), "8")
        assert "max_order_qty" in rej[58] and "50" in rej[58]

        rules.write_text(DEMO_RULES + "\nmax_order_qtty = 5\n")
        bad = fixgw(cfg, "risk", "reload")
        assert bad.returncode == 1 and "max_order_qtty" in bad.stderr and "current rules stay" in bad.stderr
        rej = c.wait_exec(c.new_order("AAPL", "1", 61, "190.05"), "8")  # still the limit of 50
        assert "50" in rej[58]
    finally:
        rules.write_text(DEMO_RULES)
        assert fixgw(cfg, "risk", "reload").returncode == 0


def test_a_wrong_token_is_refused_and_every_call_is_journaled_as_an_operator_action(env):
    stack, cfg, _ = env
    out = fixgw(cfg, "status", token="not-the-token")
    assert out.returncode == 2 and "permission denied" in out.stderr  # status: 2 = could not ask
    stack.gateway.journal.flush()
    actions = [e.text for e in iter_events(stack.cfg.journal.database_url, "operator")]
    assert any("GET /admin/status -> 401" in a for a in actions)
    assert any("POST /admin/risk/kill" in a and "-> 200" in a for a in actions)


def test_commands_say_clearly_when_the_gateway_is_not_running(tmp_path):
    cfg = tmp_path / "cli.cfg"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[http]\nport = {free_port()}\n')
    out = fixgw(cfg, "status", token="t")
    assert out.returncode == 2 and "cannot reach the gateway" in out.stderr  # not 1: that is "unhealthy"
    out = fixgw(cfg, "sessions", "list", token="t")
    assert out.returncode == 1 and "cannot reach the gateway" in out.stderr


def test_operator_cancels_one_order_and_then_all_of_a_symbol(env):
    stack, cfg, _ = env
    c = stack.client("CLIENT44")
    one = c.new_order("MSFT", "1", 100, "401")
    two = c.new_order("MSFT", "1", 100, "402")
    three = c.new_order("MSFT", "1", 100, "403")
    oid = c.wait_exec(one, "0")[37]
    c.wait_exec(two, "0")
    c.wait_exec(three, "0")
    out = fixgw(cfg, "orders", "cancel", oid)
    assert out.returncode == 0, out.stderr
    assert "operator request" in c.wait_exec(one, "4")[58]
    again = fixgw(cfg, "orders", "cancel", oid)
    assert again.returncode == 1 and "nothing to cancel" in again.stderr
    assert fixgw(cfg, "orders", "cancel-all").returncode == 2  # refuses to cancel everything without saying so
    out = fixgw(cfg, "orders", "cancel-all", "--symbol", "MSFT")
    assert out.returncode == 0 and "2 open order(s)" in out.stdout
    c.wait_exec(two, "4")
    c.wait_exec(three, "4")


def test_a_disabled_session_is_refused_at_logon_until_enabled(env):
    from sessions.client import FixClient

    stack, cfg, _ = env
    first = stack.client("CLIENT50")
    out = fixgw(cfg, "sessions", "disable", "CLIENT50")
    assert out.returncode == 0, out.stderr
    assert first.wait_logged_on(5, up=False)
    first.stop()

    again = FixClient(version="FIX.5.0", sender="CLIENT50", target="FIXGW", port=stack.cfg.acceptor.port,
                      store_dir=stack.tmp / "clients")
    stack.clients["CLIENT50"] = again  # the stack stops it at the end
    again._engine.start()
    assert not again.wait_logged_on(3)
    refused = [raw for d, raw in list(again.wire.lines) if d == "I" and "\x0135=5\x01" in raw]
    assert refused and "disabled by an operator" in refused[-1]

    assert fixgw(cfg, "sessions", "enable", "CLIENT50").returncode == 0
    assert again.wait_logged_on(10), "the session did not log on again after enable"


def test_logout_then_logon_of_a_venue_session(env):
    stack, cfg, _ = env
    import time

    assert fixgw(cfg, "sessions", "logout", "VENUE2").returncode == 0
    deadline = time.monotonic() + 5
    while stack.gateway.is_logged_on("VENUE2") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not stack.gateway.is_logged_on("VENUE2")
    time.sleep(1.5)  # longer than its reconnect interval: it stays down
    assert not stack.gateway.is_logged_on("VENUE2")
    assert fixgw(cfg, "sessions", "logon", "VENUE2").returncode == 0
    assert stack.gateway.wait_venues_up(15)


def test_sequence_numbers_can_be_set_and_reset_on_a_logged_out_session_only(env):
    stack, cfg, _ = env
    busy = fixgw(cfg, "sessions", "set-seqnum", "VENUE1", "--sender", "5")
    assert busy.returncode == 1 and "log it out first" in busy.stderr
    # CLIENT42 never logs on in this module
    out = fixgw(cfg, "sessions", "set-seqnum", "CLIENT42", "--sender", "100", "--target", "50")
    assert out.returncode == 0 and "next sender seqnum 100, next target seqnum 50" in out.stdout
    shown = json.loads(fixgw(cfg, "sessions", "show", "CLIENT42", "--json").stdout)
    assert (shown["next_sender_seqnum"], shown["next_target_seqnum"]) == (100, 50)
    assert fixgw(cfg, "sessions", "set-seqnum", "CLIENT42", "--sender", "0").returncode == 2  # refused by the CLI
    out = fixgw(cfg, "sessions", "reset", "CLIENT42")
    assert out.returncode == 0 and "next sender seqnum 1, next target seqnum 1" in out.stdout


def test_a_kill_switch_for_an_unknown_session_is_refused_and_nothing_is_engaged(env):
    stack, cfg, _ = env
    out = fixgw(cfg, "risk", "kill", "session", "CLIENT4")
    assert out.returncode == 1
    assert "unknown client session CLIENT4 (known: CLIENT42, CLIENT44, CLIENT50)" in out.stderr
    assert "Traceback" not in out.stderr
    assert "session CLIENT4" not in stack.gateway.engine.call(lambda core: core.risk_summary())["kill_switches"]
    stack.gateway.journal.flush()
    actions = [e.text for e in iter_events(stack.cfg.journal.database_url, "operator")]
    assert any("POST /admin/risk/kill" in a and "CLIENT4\"" in a and "-> 400 (unknown client session CLIENT4" in a
               for a in actions)


def test_order_commands_refuse_an_unknown_account_or_symbol_listing_the_known_ones(env):
    _, cfg, _ = env
    out = fixgw(cfg, "orders", "cancel-all", "--account", "NOSUCHACC")
    assert out.returncode == 1 and "unknown account NOSUCHACC (known: " in out.stderr
    out = fixgw(cfg, "orders", "list", "--symbol", "APPL")
    assert out.returncode == 1 and "unknown symbol APPL (known: AAPL" in out.stderr
