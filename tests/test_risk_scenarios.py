"""The shipped demo risk rules over real sessions: each limit rejects with its rule named."""
from __future__ import annotations

from importlib import resources

import pytest

from tests.fix_fixtures import start_stack

DEMO_RULES = resources.files("risk") / "demo_rules.toml"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("risk")
    s = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp, extra_toml=f"""
[risk]
rules_file = "{DEMO_RULES}"
reference_prices = {{ AAPL = 190.00, MSFT = 410.00, IBM = 230.00, XXXX = 10.00 }}
""")
    yield s
    s.stop()


@pytest.mark.parametrize("symbol, qty, price, rule, code", [
    ("AAPL", 100001, "185", "max_order_qty", "3"),
    ("AAPL", 30000, "185", "max_order_notional", "3"),
    ("AAPL", 100, "150", "price_band", None),
    ("XXXX", 100, "10", "restricted_symbols", None),
])
def test_each_demo_limit_rejects_with_the_rule_and_the_limit_named(stack, symbol, qty, price, rule, code):
    c = stack.client("CLIENT44")
    rej = c.wait_exec(c.new_order(symbol, "1", qty, price), "8")
    assert rule in rej[58]
    if code is not None:
        assert rej[103] == code  # OrdRejReason: order exceeds limit


def test_every_decision_is_journaled_with_the_rule_and_the_values_compared(stack):
    from gateway.journal.queries import iter_events

    c = stack.client("CLIENT44")
    ok = c.new_order("AAPL", "1", 100, "190.05")
    bad = c.new_order("AAPL", "1", 100002, "185")
    c.wait_exec(ok, "2")
    c.wait_exec(bad, "8")
    stack.gateway.journal.flush()
    lines = {e.text.split(" ")[1]: e.text for e in iter_events(stack.cfg.journal.database_url, "risk")
             if e.text.startswith("CLIENT44 ")}
    assert lines[ok].startswith(f"CLIENT44 {ok} accepted: 15 checks passed")
    assert "REJECTED: max_order_qty" in lines[bad] and "100002" in lines[bad] and "100000" in lines[bad]


def test_an_order_within_every_limit_trades(stack):
    c = stack.client("CLIENT44")
    done = c.wait_exec(c.new_order("AAPL", "1", 101, "190.05"), "2")
    assert done[30] == "VENUE1"


def test_the_same_order_twice_within_the_window_is_a_duplicate(stack):
    c = stack.client("CLIENT44")
    c.wait_exec(c.new_order("AAPL", "1", 77, "190.05"), "2")
    rej = c.wait_exec(c.new_order("AAPL", "1", 77, "190.05"), "8")
    assert "duplicate_order" in rej[58] and rej[103] == "6"


def test_replace_that_breaks_a_limit_is_refused_and_the_order_keeps_working(stack):
    c = stack.client("CLIENT44")
    cl = c.new_order("MSFT", "1", 100, "400")
    c.wait_exec(cl, "0")
    rp = c.replace(cl, "MSFT", "1", 100001, "400")
    rej = c.wait_for(lambda m: m.get(35) == "9" and m.get(11) == rp, what="OrderCancelReject")
    assert rej[434] == "2" and "max_order_qty" in rej[58] and rej[39] == "0"
    c.wait_exec(c.cancel(cl, "MSFT", "1", 100), "4")


def test_throttle_rejects_above_the_rate_then_logs_the_session_out(stack):
    c = stack.client("CLIENT42")
    for i in range(230):  # demo: over 100 messages/s rejected, over 200/s logged out
        c.new_order("AAPL", "1", 1 + i, "180")  # different quantities: not duplicates
    assert c.wait_logged_on(10, up=False), "the gateway did not log the session out"
    throttled = [m for m in c.app_messages("8") if m.get(39) == "8" and "throttle" in m.get(58, "")]
    assert throttled, "no order was rejected by the throttle"
    logout = [m for m in c.messages if m.get(35) == "5"]
    assert logout and "throttle" in logout[-1].get(58, "")


def test_what_if_replays_a_recorded_session_through_candidate_rules_order_by_order(stack, tmp_path):
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    c = stack.client("CLIENT50")
    small = c.new_order("AAPL", "1", 50, "190.05")
    big = c.new_order("AAPL", "1", 95, "190.05")
    off_band = c.new_order("AAPL", "1", 60, "150")
    resting = c.new_order("MSFT", "1", 10, "400")
    c.wait_exec(small, "2")
    c.wait_exec(big, "2")
    c.wait_exec(off_band, "8")
    c.wait_exec(resting, "0")
    c.wait_exec(c.cancel(resting, "MSFT", "1", 10), "4")
    stack.gateway.journal.flush()

    candidate = tmp_path / "candidate.toml"
    candidate.write_text(DEMO_RULES.read_text().replace("max_order_qty = 100000", "max_order_qty = 90"))
    cfg = tmp_path / "gateway.cfg"
    cfg.write_text(f"""comp_id = "FIXGW"
[journal]
database_url = "{stack.cfg.journal.database_url}"
[clients.CLIENT50]
fix_version = "FIX.5.0"
[risk]
reference_prices = {{ AAPL = 190.00, MSFT = 410.00 }}
""")
    fixgw = shutil.which("fixgw", path=str(Path(sys.executable).parent))
    out = subprocess.run([fixgw, "risk", "what-if", str(candidate), "-c", str(cfg), "--all", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    results = {r["cl_ord_id"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert [results[cl]["candidate"] for cl in (small, big, off_band, resting)] == \
        ["accept", "reject", "reject", "accept"]
    assert results[big]["rule"] == "max_order_qty" and results[big]["actual"] == "accepted"
    assert results[off_band]["rule"] == "price_band" and results[off_band]["actual"].startswith("rejected: price_band")
    assert results[small]["actual"] == results[resting]["actual"] == "accepted"

    summary = subprocess.run([fixgw, "risk", "what-if", str(candidate), "-c", str(cfg)],
                             capture_output=True, text=True, timeout=60)
    assert "would reject 2 (1 of them were accepted by the rules in force)" in summary.stdout
