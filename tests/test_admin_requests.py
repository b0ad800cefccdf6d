"""The admin API refuses malformed requests and unknown names with a 400 that says why, and journals every call."""
from __future__ import annotations

import http.client
import json

import pytest

from gateway.admin.api import admin_token
from gateway.journal.queries import iter_events
from orders.commands import KillSwitch
from tests.fix_fixtures import start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("admin_requests")
    rules = tmp / "rules.toml"
    rules.write_text('version = 1\n[limits]\nmax_order_qty = 100000\n[accounts.RULEACC]\nmax_order_qty = 10\n')
    s = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp, extra_toml=f'[risk]\nrules_file = "{rules}"\n',
                    client_options={"CLIENT50": 'accounts = ["ACC1", "ACC2"]'})
    yield s
    s.stop()


def call(stack, method: str, path: str, body: bytes | None = None, operator: str = "alice") -> tuple[int, dict]:
    host, port = stack.gateway.http.address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={
            "Authorization": f"Bearer {admin_token(stack.cfg.data_dir)}", "X-Fixgw-Operator": operator,
            "Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def post(stack, path: str, payload, operator: str = "alice") -> tuple[int, dict]:
    return call(stack, "POST", path, json.dumps(payload).encode(), operator)


def last_action(stack) -> str:
    stack.gateway.journal.flush()
    return [e.text for e in iter_events(stack.cfg.journal.database_url, "operator")][-1]


def kill_switches(stack) -> dict:
    return stack.gateway.engine.call(lambda core: core.risk_summary())["kill_switches"]


@pytest.mark.parametrize("body, kind", [(b"[]", "a list"), (b'["global"]', "a list"), (b"null", "null"),
                                        (b'"global"', "a string"), (b"42", "a number"), (b"true", "true/false")])
def test_a_body_that_is_not_a_json_object_is_a_400_journaled_with_who_sent_it(stack, body, kind):
    status, answer = call(stack, "POST", "/admin/risk/kill", body, operator="olga")
    assert status == 400 and answer["error"] == f"request body must be a JSON object ({{...}}), got {kind}"
    action = last_action(stack)
    assert action.startswith(f"olga from 127.0.0.1: POST /admin/risk/kill {body.decode()} -> 400 (request body must")
    assert kill_switches(stack) == {}


def test_a_body_that_is_not_json_or_nested_too_deeply_is_a_400(stack):
    status, answer = call(stack, "POST", "/admin/risk/kill", b'{"scope": glob')
    assert status == 400 and answer["error"].startswith("request body is not JSON")
    status, answer = call(stack, "POST", "/admin/risk/kill", b"[" * 30000)  # within max_body_bytes
    assert status == 400 and "nested too deeply" in answer["error"]
    status, answer = call(stack, "POST", "/admin/risk/kill", b"\xff\xfe\x00garbage")
    assert status == 400 and answer["error"].startswith("request body is not JSON")


@pytest.mark.parametrize("payload, error", [
    ({}, "scope must be one of global, session, account, symbol (none given)"),
    ({"scope": "planet"}, "scope must be one of global, session, account, symbol (got 'planet')"),
    ({"scope": 1}, "scope must be a string, got a number"),
    ({"scope": "global", "reduce_only": "yes"}, "reduce_only must be true or false, got a string"),
    ({"scope": "global", "scop": "session"}, "unknown field(s) scop in the request body "
                                             "(it takes scope, key, reduce_only, cancel_open)"),
    ({"scope": "global", "key": "CLIENT44"}, "a global kill switch takes no key (got 'CLIENT44')"),
    ({"scope": "session"}, "a session kill switch needs the session it applies to"),
])
def test_a_malformed_kill_switch_request_is_a_400_naming_the_problem_and_engages_nothing(stack, payload, error):
    status, answer = post(stack, "/admin/risk/kill", payload)
    assert status == 400 and answer["error"].startswith(error)
    assert kill_switches(stack) == {}
    assert last_action(stack).endswith(f"-> 400 ({answer['error']})")


def test_a_kill_switch_for_an_unknown_session_is_refused_listing_the_client_sessions(stack):
    status, answer = post(stack, "/admin/risk/kill", {"scope": "session", "key": "CLIENT4"}, operator="pat")
    assert status == 400
    assert answer["error"] == "unknown client session CLIENT4 (known: CLIENT42, CLIENT44, CLIENT50)"
    assert kill_switches(stack) == {}
    assert last_action(stack).startswith("pat from 127.0.0.1: POST /admin/risk/kill")
    status, answer = post(stack, "/admin/risk/kill", {"scope": "session", "key": "VENUE1"})  # not a client
    assert status == 400 and "unknown client session VENUE1" in answer["error"]


def test_an_account_exists_when_configured_or_on_an_order_the_gateway_holds(stack):
    status, answer = post(stack, "/admin/risk/kill", {"scope": "account", "key": "NOACC"})
    assert status == 400 and answer["error"].startswith("unknown account NOACC (known: ")
    assert all(a in answer["error"] for a in ("ACC1", "ACC2", "RULEACC"))
    assert kill_switches(stack) == {}
    for configured in ("ACC2", "RULEACC"):  # a client session's accounts; the risk rules' accounts
        assert post(stack, "/admin/risk/kill", {"scope": "account", "key": configured})[0] == 200
        assert post(stack, "/admin/risk/unkill", {"scope": "account", "key": configured}) == (200, {
            "ok": True, "released": True})
    c = stack.client("CLIENT44")
    cl = c.new_order("MSFT", "1", 10, "400", account="TRADED9")
    c.wait_exec(cl, "0")
    try:
        assert post(stack, "/admin/risk/kill", {"scope": "account", "key": "TRADED9"})[0] == 200
        assert kill_switches(stack) == {"account TRADED9": "halt"}
        assert post(stack, "/admin/risk/unkill", {"scope": "account", "key": "TRADED9"})[0] == 200
    finally:
        c.wait_exec(c.cancel(cl, "MSFT", "1", 10), "4")


def test_a_symbol_kill_switch_needs_a_symbol_a_venue_trades(stack):
    status, answer = post(stack, "/admin/risk/kill", {"scope": "symbol", "key": "APPL"})
    assert status == 400 and answer["error"] == "unknown symbol APPL (known: AAPL, IBM, MSFT, ORCL, XXXX)"
    assert kill_switches(stack) == {}


def test_a_switch_engaged_on_a_name_that_no_longer_exists_can_still_be_released(stack):
    """E.g. a session removed by a reload after its switch was engaged: unkill takes any engaged key."""
    stack.gateway.engine.request(KillSwitch(scope="session", key="GONE", operator="test"))
    assert kill_switches(stack) == {"session GONE": "halt"}
    assert post(stack, "/admin/risk/unkill", {"scope": "session", "key": "GONE"}) == (200, {
        "ok": True, "released": True})
    status, answer = post(stack, "/admin/risk/unkill", {"scope": "session", "key": "GONE"})
    assert status == 400 and "unknown client session GONE" in answer["error"]


@pytest.mark.parametrize("path, payload, error", [
    ("/admin/sessions/NOPE/logout", {}, "unknown session NOPE (known: CLIENT42, CLIENT44, CLIENT50, VENUE1, VENUE2)"),
    ("/admin/sessions/NOPE/disable", {}, "unknown session NOPE"),
    ("/admin/sessions/NOPE/set-seqnum", {"sender": 5}, "unknown session NOPE"),
    ("/admin/sessions/CLIENT42/set-seqnum", {"sender": True}, "--sender must be a positive whole number"),
    ("/admin/sessions/CLIENT42/logout", {"force": True}, "unknown field(s) force in the request body (it takes none)"),
    ("/admin/sessions/reload", {"dry_run": "no"}, "dry_run must be true or false, got a string"),
    ("/admin/orders/cancel-all", {"session": "NOPE"}, "unknown client session NOPE (known: CLIENT42"),
    ("/admin/orders/cancel-all", {"account": "NOACC"}, "unknown account NOACC (known: "),
    ("/admin/orders/cancel-all", {"symbol": "APPL"}, "unknown symbol APPL (known: AAPL"),
    ("/admin/orders/cancel-all", {"symbol": ["MSFT"]}, "symbol must be a string, got a list"),
    ("/admin/dropcopy/NOPE/replay", {}, "unknown drop-copy session NOPE: this gateway has none"),
])
def test_admin_calls_naming_what_does_not_exist_or_with_bad_fields_are_400s(stack, path, payload, error):
    status, answer = post(stack, path, payload, operator="quinn")
    assert status == 400 and answer["error"].startswith(error), answer
    assert last_action(stack).startswith(f"quinn from 127.0.0.1: POST {path}")
    assert f"-> 400 ({error}" in last_action(stack)


def test_order_filters_and_session_reads_check_the_names_too(stack):
    status, answer = call(stack, "GET", "/admin/orders?account=NOACC")
    assert status == 400 and answer["error"].startswith("unknown account NOACC")
    status, answer = call(stack, "GET", "/admin/orders?acount=ACC1")
    assert status == 400 and "unknown query parameter(s) acount" in answer["error"]
    status, answer = call(stack, "GET", "/admin/sessions/NOPE")
    assert status == 400 and answer["error"].startswith("unknown session NOPE (known: CLIENT42")
    status, answer = call(stack, "GET", "/admin/orders?session=CLIENT44&open=1")
    assert status == 200 and isinstance(answer["orders"], list)


def test_a_well_formed_kill_switch_still_works_and_is_journaled(stack):
    assert post(stack, "/admin/risk/kill", {"scope": "session", "key": "CLIENT42", "reduce_only": True},
                operator="rita") == (200, {"ok": True, "canceled": 0})
    assert kill_switches(stack) == {"session CLIENT42": "reduce_only"}
    assert last_action(stack).startswith('rita from 127.0.0.1: POST /admin/risk/kill {"scope": "session"')
    assert last_action(stack).endswith("-> 200")
    assert post(stack, "/admin/risk/unkill", {"scope": "session", "key": "CLIENT42"})[0] == 200
    assert kill_switches(stack) == {}


def test_a_session_is_taken_by_its_full_session_id_as_well_as_its_name(stack):
    status, shown = call(stack, "GET", "/admin/sessions/FIX.4.4%3AFIXGW-%3ECLIENT44")
    assert status == 200 and shown["name"] == "CLIENT44"
    status, answer = call(stack, "GET", "/admin/orders?session=FIX.4.4%3AFIXGW-%3ECLIENT44")
    assert status == 200 and isinstance(answer["orders"], list)
    status, answer = post(stack, "/admin/risk/kill", {"scope": "session", "key": "FIX.4.4:FIXGW->CLIENT44"})
    assert status == 200 and kill_switches(stack) == {"session CLIENT44": "halt"}  # keyed by the name
    assert post(stack, "/admin/risk/unkill", {"scope": "session", "key": "CLIENT44"})[0] == 200
    status, answer = call(stack, "GET", "/admin/sessions/FIX.4.2%3AFIXGW-%3ECLIENT44")  # wrong version: unknown
    assert status == 400 and answer["error"].startswith("unknown session FIX.4.2:FIXGW->CLIENT44 (known: CLIENT42")
