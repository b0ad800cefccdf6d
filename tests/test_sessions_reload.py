"""`fixgw sessions reload` and session schedules, driven as subprocesses against a running gateway.

The module has a gateway of its own: its tests edit the configuration file the
gateway was started from, and put it back as they found it.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from venuesim.config import SimulatorConfig
from gateway.journal.queries import iter_events
from sessions.client import FixClient
from sessions.simulator.venue import VenueSimulator
from tests.fix_fixtures import free_port, start_stack
from tests.test_admin_cli import fixgw


def _utc(delta_hours: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(hours=delta_hours)).strftime("%H:%M:%S")


# CLIENT44 is inside its window for the next two hours; CLIENT50's window opens in two hours
WINDOW44 = (_utc(-2), _utc(2))
WINDOW50 = (_utc(2), _utc(3))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reload")
    stack = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp, client_options={
        "CLIENT44": f'end_of_day = "16:00:00"\ntimezone = "America/New_York"\n'
                    f'schedule = {{ start = "{WINDOW44[0]}", end = "{WINDOW44[1]}" }}',
        "CLIENT50": f'schedule = {{ start = "{WINDOW50[0]}", end = "{WINDOW50[1]}" }}',
    })
    cli_cfg = tmp / "cli.cfg"
    cli_cfg.write_text(f'data_dir = "{stack.cfg.data_dir}"\n[http]\nport = {stack.cfg.http.port}\n')
    original = stack.config_path.read_text()
    yield stack, cli_cfg, original
    stack.stop()


@pytest.fixture
def config(env):
    """Edit the running gateway's configuration file; it is restored (and reloaded) afterwards."""
    stack, cli_cfg, original = env
    yield stack.config_path
    if stack.config_path.read_text() != original:
        stack.config_path.write_text(original)
        fixgw(cli_cfg, "sessions", "reload")


def reload(cli_cfg, *args) -> tuple[int, dict]:
    out = fixgw(cli_cfg, "sessions", "reload", "--json", *args)
    assert out.stdout, out.stderr
    return out.returncode, json.loads(out.stdout)


def change(data: dict, session: str) -> dict:
    found = [c for c in data["changes"] if c["session"] == session]
    assert found, data
    return found[0]


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


VENUE3 = """
[venues.VENUE3]
fix_version = "FIX.4.4"
port = {port}
symbols = ["NFLX"]
reconnect_s = 1
"""


def test_a_venue_added_to_the_file_is_connected_and_routed_to_without_disturbing_other_sessions(env, config):
    stack, cli_cfg, _ = env
    client = stack.client("CLIENT42")
    port = free_port()
    sim = VenueSimulator(comp_id="VENUE3", port=port, sim=SimulatorConfig(prices={"NFLX": Decimal("600")}),
                         store_dir=stack.tmp / "venues" / "VENUE3", counterparties=("FIXGW",)).start()
    try:
        config.write_text(config.read_text() + VENUE3.format(port=port))
        code, data = reload(cli_cfg)
        assert code == 0 and change(data, "VENUE3")["action"] == "added", data
        assert wait_until(lambda: stack.gateway.is_logged_on("VENUE3"))
        fill = client.wait_exec(client.new_order("NFLX", "1", 10, "601"), "2")
        assert fill[30] == "VENUE3"
        assert stack.gateway.is_logged_on("VENUE1") and stack.gateway.is_logged_on("VENUE2")
        assert client.session.isLoggedOn()
        listed = json.loads(fixgw(cli_cfg, "sessions", "list", "--json").stdout)["sessions"]
        assert "VENUE3" in [s["name"] for s in listed]

        # and removed again: logged out, its initiator stopped, no longer a destination
        config.write_text(config.read_text().replace(VENUE3.format(port=port), ""))
        table = fixgw(cli_cfg, "sessions", "reload")
        assert table.returncode == 0, table.stderr
        assert "VENUE3" in table.stdout and "removed" in table.stdout and "SESSION" in table.stdout
        assert wait_until(lambda: not sim.logged_on)
        rejected = client.wait_exec(client.new_order("NFLX", "1", 10, "601"), "8")
        assert "no configured venue trades it" in rejected[58]
        assert stack.gateway.session("VENUE3") is None
        assert stack.gateway.is_logged_on("VENUE1")
    finally:
        sim.stop()


def test_a_venue_with_open_orders_is_not_removed(env, config):
    stack, cli_cfg, original = env
    client = stack.client("CLIENT42")
    resting = client.new_order("ORCL", "1", 100, "119")  # only VENUE2 trades ORCL
    client.wait_exec(resting, "0")
    try:
        start = original.index("[venues.VENUE2]")
        config.write_text(original[:start])  # VENUE2 and its simulator section gone
        code, data = reload(cli_cfg)
        assert code == 1
        step = change(data, "VENUE2")
        assert step["action"] == "refused" and "1 open order" in step["detail"]
        assert stack.gateway.is_logged_on("VENUE2")
    finally:
        client.wait_exec(client.cancel(resting, "ORCL", "1", 100), "4")


def test_a_new_client_on_its_own_port_logs_on_and_a_removed_one_is_refused_with_a_reason(env, config):
    stack, cli_cfg, original = env
    other = stack.client("CLIENT42")
    port = free_port()
    new_client = f'\n[clients.CLIENT99]\nfix_version = "FIX.4.4"\nport = {port}\n'
    config.write_text(original + new_client)
    code, data = reload(cli_cfg)
    assert code == 0 and change(data, "CLIENT99")["action"] == "added", data
    c99 = FixClient(version="FIX.4.4", sender="CLIENT99", target="FIXGW", port=port,
                    store_dir=stack.tmp / "clients").start()
    try:
        c99.wait_exec(c99.new_order("AAPL", "1", 10, "190.05"), "2")
        assert other.session.isLoggedOn()

        config.write_text(original)
        code, data = reload(cli_cfg)
        assert code == 0 and change(data, "CLIENT99")["action"] == "removed", data
        assert c99.wait_logged_on(5, up=False)
        # its reconnects are refused with the reason
        assert not c99.wait_logged_on(3)
        logouts = [raw for d, raw in list(c99.wire.lines) if d == "I" and "\x0135=5\x01" in raw]
        assert logouts and "removed from the gateway's configuration" in logouts[-1]
        shown = fixgw(cli_cfg, "sessions", "show", "CLIENT99")
        assert shown.returncode == 1 and "unknown session" in shown.stderr

        # put back: the same quickfix session is accepted again
        config.write_text(original + new_client)
        code, data = reload(cli_cfg)
        assert code == 0 and change(data, "CLIENT99")["action"] == "re-added", data
        assert c99.wait_logged_on(10)
    finally:
        c99.stop()


def test_a_new_client_on_the_shared_port_is_refused_as_needing_a_restart(env, config):
    stack, cli_cfg, original = env
    config.write_text(original + '\n[clients.CLIENT77]\nfix_version = "FIX.4.2"\n')
    code, data = reload(cli_cfg)
    assert code == 1
    step = change(data, "CLIENT77")
    assert step["action"] == "refused" and "restart" in step["detail"] and str(stack.cfg.acceptor.port) in step["detail"]
    assert "CLIENT77" not in stack.gateway.client_sids


def test_a_changed_fix_version_needs_a_restart_while_order_handling_options_apply_live(env, config):
    stack, cli_cfg, original = env
    edited = original.replace('[clients.CLIENT42]\nfix_version = "FIX.4.2"\npending_new = true',
                              '[clients.CLIENT42]\nfix_version = "FIX.4.4"\npending_new = true')
    edited = edited.replace('[clients.CLIENT50]\nfix_version = "FIX.5.0"\npending_new = true',
                            '[clients.CLIENT50]\nfix_version = "FIX.5.0"\npending_new = false')
    assert edited.count("pending_new = false") == 1 and 'CLIENT42]\nfix_version = "FIX.4.4"' in edited
    config.write_text(edited)
    code, data = reload(cli_cfg, "--dry-run")
    assert data["dry_run"] is True and change(data, "CLIENT50")["action"] == "updated"
    assert stack.gateway.cfg.clients["CLIENT50"].pending_new is True  # a dry run changes nothing
    code, data = reload(cli_cfg)
    assert code == 1
    c42 = change(data, "CLIENT42")
    assert c42["action"] == "refused" and "fix_version" in c42["detail"] and "restart" in c42["detail"]
    assert change(data, "CLIENT50")["action"] == "updated"
    assert stack.gateway.engine.call(lambda core: core.clients["CLIENT50"].pending_new) is False
    assert stack.gateway.cfg.clients["CLIENT42"].fix_version == "FIX.4.2"


def test_a_bad_configuration_file_is_refused_and_nothing_changes(env, config):
    stack, cli_cfg, original = env
    before = json.loads(fixgw(cli_cfg, "sessions", "list", "--json").stdout)["sessions"]
    config.write_text(original.replace("[venues.VENUE2]", "[venues.VENUE3]\nfix_versoin = 'FIX.4.4'\n"
                                                          "[venues.VENUE2]"))
    out = fixgw(cli_cfg, "sessions", "reload")
    assert out.returncode == 1 and "fix_versoin" in out.stderr and "nothing was changed" in out.stderr
    after = json.loads(fixgw(cli_cfg, "sessions", "list", "--json").stdout)["sessions"]
    assert [s["name"] for s in after] == [s["name"] for s in before]


def test_a_reload_is_journaled_as_an_operator_action_with_what_it_did(env, config):
    stack, cli_cfg, original = env
    config.write_text(original + '\n[clients.CLIENT78]\nfix_version = "FIX.4.2"\n')
    reload(cli_cfg)
    stack.gateway.journal.flush()
    actions = [e.text for e in iter_events(stack.cfg.journal.database_url, "operator")]
    assert any("POST /admin/sessions/reload" in a and "-> 200" in a for a in actions)
    assert any("sessions reload by" in a and "CLIENT78 refused" in a for a in actions)


def test_status_shows_each_sessions_window_and_end_of_day(env):
    stack, cli_cfg, _ = env
    out = fixgw(cli_cfg, "status")
    assert out.returncode == 0, out.stderr
    line44 = next(line for line in out.stdout.splitlines() if line.strip().startswith("CLIENT44:"))
    assert f"window {WINDOW44[0]}-{WINDOW44[1]} UTC daily" in line44 and "end of day 16:00:00" in line44
    assert "scheduled: end of day for CLIENT44" in out.stdout
    shown = json.loads(fixgw(cli_cfg, "sessions", "show", "CLIENT44", "--json").stdout)
    assert shown["in_session_window"] is True and shown["end_of_day"] == "16:00:00 America/New_York"
    default = json.loads(fixgw(cli_cfg, "sessions", "show", "VENUE1", "--json").stdout)
    assert default["schedule"].startswith("00:00:00-00:00:00 UTC daily")


def test_a_session_outside_its_window_cannot_log_on(env):
    stack, cli_cfg, _ = env
    early = FixClient(version="FIX.5.0", sender="CLIENT50", target="FIXGW", port=stack.cfg.acceptor.port,
                      store_dir=stack.tmp / "clients")
    stack.clients["CLIENT50"] = early  # the stack stops it
    early._engine.start()
    assert not early.wait_logged_on(3)
    shown = json.loads(fixgw(cli_cfg, "sessions", "show", "CLIENT50", "--json").stdout)
    assert shown["in_session_window"] is False and shown["logged_on"] is False
    assert "(outside it now)" in fixgw(cli_cfg, "status").stdout


def test_a_venues_connection_change_reconnects_only_that_venue_and_symbols_apply_live(env, config):
    stack, cli_cfg, original = env
    edited = original.replace('symbols = ["AAPL", "MSFT", "ORCL", "XXXX"]\nreconnect_s = 1',
                              'symbols = ["AAPL", "MSFT", "ORCL", "XXXX"]\nreconnect_s = 2')
    edited = edited.replace('symbols = ["AAPL", "MSFT", "IBM"]', 'symbols = ["AAPL", "MSFT"]')
    assert edited.count("reconnect_s = 2") == 1 and 'symbols = ["AAPL", "MSFT"]\n' in edited
    config.write_text(edited)
    code, data = reload(cli_cfg)
    assert code == 0, data
    assert change(data, "VENUE2")["action"] == "reconnected" and "reconnect_s" in change(data, "VENUE2")["detail"]
    assert change(data, "VENUE1")["action"] == "updated"
    assert stack.gateway.wait_venues_up(15)
    client = stack.client("CLIENT42")
    rejected = client.wait_exec(client.new_order("IBM", "1", 10, "230"), "8")
    assert "no configured venue trades it" in rejected[58]


def test_the_plan_refuses_what_quickfix_cannot_change_live(tmp_path):
    from gateway.config import parse_config
    from gateway.scheduling.reload import plan

    base = '[clients.A]\nfix_version = "FIX.4.4"\n[venues.V]\nfix_version = "FIX.4.4"\nport = 9000\nsymbols = ["X"]\n'
    current = parse_config(base, tmp_path, env={})
    new = parse_config(base.replace('port = 9000\nsymbols = ["X"]', 'port = 9000\nsymbols = ["X"]').replace(
        '[venues.V]\nfix_version = "FIX.4.4"', '[venues.V]\nfix_version = "FIX.4.2"') +
        '[clients.B]\nfix_version = "FIX.4.2"\n[http]\nport = 9999\n', tmp_path, env={})
    steps = {s.session: s for s in plan(current, new, served_ports={9876}, retired={"B": current.clients["A"]},
                                        client_open={}, venue_open={"V": 2}).steps}
    assert steps["V"].action == "refused" and "2 open order" in steps["V"].detail
    assert steps["B"].action == "refused" and "fix_version" in steps["B"].detail  # retired as FIX.4.4
    p = plan(current, new, served_ports={9876}, retired={}, client_open={}, venue_open={})
    assert {s.session: s.action for s in p.steps} == {"V": "replaced", "B": "refused"}
    assert p.not_applied == ["[http] changed: not applied by a sessions reload (needs a restart)"]
