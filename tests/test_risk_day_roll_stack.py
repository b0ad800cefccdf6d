"""Over real sessions: the throttle counts status requests and cancels; daily notional rolls at the trading-day
boundary (the core's clock moved by the test) and a restart after the roll does not bring yesterday's back.

Its own module: it needs its own stack (its own rules), and two stacks with the same SessionIDs must never be
alive in one process.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from gateway.journal.queries import iter_events
from gateway.process.server import Gateway
from tests.fix_fixtures import start_stack

RULES = """
chain = ["kill_switch", "throttle", "daily_notional"]
[sessions.CLIENT42]
throttle_msgs = 40
throttle_window_ms = 600000   # ten minutes: the count cannot run out while the test sends
[accounts.DAY1]
max_daily_notional = 30000
"""


class Clock:
    """The core's clock, moved by the test (read on the core thread only)."""

    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dayroll")
    rules = tmp / "rules.toml"
    rules.write_text(RULES)
    s = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp, extra_toml=f"""
[risk]
rules_file = "{rules}"
reference_prices = {{ AAPL = 190.00 }}
""")
    yield s
    s.stop()


def risk_events(stack) -> list[str]:
    stack.gateway.journal.flush()
    return [e.text for e in iter_events(stack.cfg.journal.database_url, "risk")]


def test_status_requests_and_cancels_are_counted_by_the_throttle_and_a_cancel_is_never_refused(stack):
    c = stack.client("CLIENT42")
    for i in range(45):
        c.status(f"NOSUCH{i}", "AAPL", "1")
    last = c.wait_for(lambda m: m.get(35) == "8" and m.get(11) == "NOSUCH44", what="the 45th status answer")
    answers = {m[11]: m for m in c.app_messages("8") if m.get(11, "").startswith("NOSUCH")}
    assert all("throttle" not in answers[f"NOSUCH{i}"][58] for i in range(40))
    assert "unknown order" in last[58] and "exceeds throttle_msgs 40" in last[58]
    cxl = c.cancel("NOSUCH0", "AAPL", "1", 100)
    rej = c.wait_for(lambda m: m.get(35) == "9" and m.get(11) == cxl, what="the cancel's answer")
    assert rej[58].startswith("unknown order")  # answered as usual: the throttle lets a cancel through
    refused = c.wait_exec(c.new_order("AAPL", "1", 100, "190.10"), "8")
    assert "throttle" in refused[58] and "47 messages" in refused[58]
    texts = risk_events(stack)
    assert any(f"CLIENT42 {cxl} accepted" in t and "let through" in t for t in texts)


def test_daily_notional_rolls_at_the_boundary_and_a_restart_after_the_roll_keeps_only_todays(stack):
    clock = Clock(datetime(2099, 1, 5, 15, 0, tzinfo=timezone.utc))  # ahead of the real clock
    stack.gateway.engine.call(lambda core: setattr(core, "clock", clock))
    c = stack.client("CLIENT44")
    first = c.wait_exec(c.new_order("AAPL", "1", 100, "190.10", account="DAY1"), "2")
    yesterday = Decimal(first[32]) * Decimal(first[31])
    refused = c.wait_exec(c.new_order("AAPL", "1", 100, "190.10", account="DAY1"), "8")
    assert "daily_notional" in refused[58]

    clock.t = datetime(2099, 1, 6, 0, 0, 5, tzinfo=timezone.utc)  # the next trading day
    second = c.wait_exec(c.new_order("AAPL", "1", 100, "190.10", account="DAY1"), "2")
    today = Decimal(second[32]) * Decimal(second[31])
    assert any("trading day 2099-01-06 began" in t and f"DAY1 {yesterday}" in t for t in risk_events(stack))

    c.stop()
    stack.gateway.stop()
    stack.gateway = Gateway(stack.cfg).start()
    assert stack.gateway.wait_venues_up(20)
    clock.t += timedelta(minutes=5)
    stack.gateway.engine.call(lambda core: setattr(core, "clock", clock))
    used = stack.gateway.engine.call(lambda core: dict(core.risk_state.usage.used))
    assert used["DAY1"] == today  # not yesterday's fill as well: both orders are still in the state log
    c = stack.client("CLIENT44")
    again = c.wait_exec(c.new_order("AAPL", "1", 100, "190.10", account="DAY1"), "8")  # today's 19000 is kept
    assert "daily_notional" in again[58] and str(today) in again[58]
