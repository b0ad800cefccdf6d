"""End of day over real sessions, with the apscheduler job firing for real a few seconds after start.

Its own module: it needs its own stack, and two stacks with the same SessionIDs must
never be alive in one process (quickfix keeps one process-wide session map).
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from tests.fix_fixtures import start_stack


def test_end_of_day_expires_day_orders_and_gtc_orders_survive(tmp_path):
    # far enough ahead that a slow start-up (a loaded CI machine) cannot pass it first
    at = (datetime.now(timezone.utc) + timedelta(seconds=10)).strftime("%H:%M:%S")
    s = start_stack(f"sqlite:///{tmp_path / 'journal.db'}", tmp_path,
                    client_options={"CLIENT44": f'end_of_day = "{at}"\ntimezone = "UTC"'})
    try:
        c = s.client("CLIENT44")
        day = c.new_order("AAPL", "1", 100, "181")
        gtc = c.new_order("AAPL", "1", 100, "182", tif="1")
        c.wait_exec(day, "0")
        c.wait_exec(gtc, "0")
        assert s.gateway.scheduled_jobs()[0][1] < (datetime.now(timezone.utc) + timedelta(seconds=10)).isoformat(), \
            "start-up took so long that the end-of-day time had already passed"
        expired = c.wait_exec(day, "C", timeout=20)
        assert expired[150] == "C" and "end of day" in expired[58] and expired[151] == "0"
        time.sleep(0.3)
        assert [m[39] for m in c.exec_reports(gtc)] == ["A", "0"]
    finally:
        s.stop()
