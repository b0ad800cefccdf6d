"""The failover harness (bench/failover.py) end to end on a small run: two instances, two SIGKILLs of the active
under a steady order flow, and every check of the harness after each: clients logged on to the successor within
5 s, sequence numbers continuous everywhere, orders known in the venue's state, no ClOrdID twice at a venue, the
journal gapless with its chain verified, every drop copy once and in order. Figures are not asserted, only checks.
The lease ttl is 1.5 s here (2 s in the full run) so the 5 s logon target has room on a loaded CI machine.

Hard checks, which the full run passed 22/22 and which must never fail: sequence numbers continuous on every
session, every order known in the venue's state. The other checks find gaps of issue 20 that are open and
written down (docs/failover.md, "What is left"): a killed instance restarted as a standby does not import what it
spooled (the spool's committed position is one row for the whole cluster), so the journal and the drop copies
lack or double a few messages; OrderIDs of instances started in the same second repeat, so a ClOrdID can reach a
venue twice; a client's reconnect can take longer than 5 s. When only those fail, the test is an expected failure
(xfail) naming them, so CI stays a gate for everything else; once they are fixed it passes, and the xfail goes.
The full run is `bench/failover.py --sigstop --db-cut`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.postgres
@pytest.mark.timeout(150)
def test_two_kills_of_the_active_pass_every_check(tmp_path):
    from tests.db_fixtures import pg_base_url

    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "failover.py"), "--kills", "2", "--instances", "2",
                           "--ttl", "1.5", "--min-gap", "1.5", "--max-gap", "3", "--max-seconds", "100",
                           "--pg-url", pg_base_url(), "--out", str(tmp_path), "--name", "smoke"],
                          capture_output=True, text=True, timeout=140, env={**os.environ, "PYTHONPATH": str(ROOT)})
    result = json.loads((tmp_path / "smoke.json").read_text())
    report = (tmp_path / "smoke.md").read_text()
    assert "error" not in result, result["error"] + proc.stderr[-3000:]
    assert [e["kind"] for e in result["events"]] == ["kill", "kill"], report
    assert result["figures"]["orders_sent"] > 0 and result["figures"]["venue_new_orders"] > 0
    for e in result["events"]:
        assert e["new"] != e["old"] and e["standby_again"], e
        assert e["checks"]["orders"]["figures"]["checked"] > 0, e
    totals = result["totals"]
    for check in ("seq", "orders"):  # never failed: a failure here is a regression
        assert totals[check] == {"passed": 2, "of": 2}, f"{check}: {totals[check]}\n{report}"
    open_gaps = [check for check in ("logon", "clordid", "journal", "dropcopy")
                 if totals[check] != {"passed": 2, "of": 2}]
    if open_gaps:
        pytest.xfail(f"open gaps of issue 20 (docs/failover.md, What is left): {', '.join(open_gaps)} "
                     f"({sum(e['spool_not_imported'] for e in result['events'])} message(s) a killed instance "
                     "spooled missing from the journal)")
    assert proc.returncode == 0, report
