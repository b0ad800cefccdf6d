"""The failover harness (bench/failover.py) end to end on a small run: two instances, two SIGKILLs of the active
under a steady order flow, and every check of the harness after each: clients logged on to the successor within
5 s, sequence numbers continuous everywhere, orders known in the venue's state, no ClOrdID twice at a venue, the
journal gapless with its chain verified, every drop copy once and in order. Figures are not asserted, only checks.
The lease ttl is 1.5 s here (2 s in the full run) so the 5 s logon target has room on a loaded CI machine.

Hard checks, which must never fail: sequence numbers continuous on every session, every order known in the
venue's state, no ClOrdID twice at a venue, the journal gapless with its chain verified, every drop copy once and
in order. The 5 s logon is the one check a loaded machine can miss on its own (the clients' reconnect interval is
1 s per address, quickfix's minimum, and CI runs beside other work): when only it fails, the test is an expected
failure (xfail) saying so, and the full run's figures (docs/failover.md) are the measure.
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
    for check in ("seq", "orders", "clordid", "journal", "dropcopy"):  # a failure here is a regression
        assert totals[check] == {"passed": 2, "of": 2}, f"{check}: {totals[check]}\n{report}"
    assert sum(e["spool_not_imported"] for e in result["events"]) == 0, report
    if totals["logon"] != {"passed": 2, "of": 2}:
        pytest.xfail(f"a client logged on after more than 5 s ({totals['logon']}): the reconnect interval on a loaded "
                     "machine; see the full run's figures in docs/failover.md")
    assert proc.returncode == 0, report
