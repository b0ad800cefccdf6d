"""The failover harness (bench/failover.py) end to end on a small run: two instances, two SIGKILLs of the active
under a steady order flow, and every check of the harness after each: clients logged on to the successor within
5 s, sequence numbers continuous everywhere, orders known in the venue's state, no ClOrdID twice at a venue, the
journal gapless with its chain verified, every drop copy once and in order. Figures are not asserted, only checks.
The lease ttl is 1.5 s here (2 s in the full run) so the 5 s logon target has room on a loaded CI machine.

One known bug is told apart (docs/failover.md, "What is left": the spool's committed position is one row for the
whole cluster): a killed instance restarted as a standby does not import what it spooled and never committed, so
the journal lacks a few messages it had sent or received. When that is the only problem, the test is an expected
failure (xfail) naming it; any other problem fails it. The full run is `bench/failover.py --sigstop --db-cut`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOT_IMPORTED = "its spool was not imported"


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
    for check in ("logon", "seq", "orders", "clordid", "dropcopy"):
        assert totals[check] == {"passed": 2, "of": 2}, f"{check}: {totals[check]}\n{report}"
    journal = [e["checks"]["journal"] for e in result["events"]]
    if totals["journal"] != {"passed": 2, "of": 2}:
        known = all(c["ok"] or (c["problem_count"] == len(c["problems"]) and all(NOT_IMPORTED in p
                                                                                 for p in c["problems"]))
                    for c in journal)
        assert known, f"journal: {totals['journal']}\n{report}"
        pytest.xfail("known bug: a killed instance restarted as a standby did not import its spool "
                     f"({sum(e['spool_not_imported'] for e in result['events'])} message(s) missing from the journal)")
    assert proc.returncode == 0, report
