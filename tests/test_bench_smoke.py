"""The benchmark harness runs end to end on a tiny configuration (its figures are not checked: never timed here).

``bench/throughput.py --smoke``: modes A, B and C, one cycle, a few dozen orders
of the mix open loop and closed loop. What must hold whatever the machine's
speed: every order reached its final state, no message is missing against
either peer, and the result file has the figures the tables are made from.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_throughput_smoke_runs_a_b_c_and_loses_no_message(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "throughput.py"), "--smoke", "--out", str(tmp_path),
                           "--name", "smoke"], capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "smoke.json").read_text())
    assert (tmp_path / "smoke.md").read_text().count("| A") >= 2

    assert result["modes"] == ["A", "B", "C"]
    assert [r["mode"] for r in result["runs"]] == ["A", "B", "C"]
    for run in result["runs"]:
        assert "error" not in run, run["error"]
        assert list(run["phases"]) == ["warmup", "rate-200", "saturation"]
        for phase in run["phases"].values():
            assert phase["unfinished"] == 0 and phase["errors"] == 0
            assert phase["completed"] == phase["orders"] > 0
            lat = phase["latency_us"]
            for kind in ("ack", "new", "fill", "venue", "reject", "final"):
                assert lat[kind]["count"] > 0 and 0 < lat[kind]["p50"] <= lat[kind]["p99"] <= lat[kind]["max"], kind
        assert run["phases"]["rate-200"]["late_sends"] is not None
        done = run["completeness"]
        assert done["missing"] == 0 and done["checks"], done
        assert all(c["extra"] == 0 for c in done["checks"]), done
        assert run["client"]["error_count"] == 0, run["client"]
    gateway = result["runs"][2]
    assert gateway["completeness"]["journal_rows"] > 0
    stages = gateway["phases"]["rate-200"]["gateway_stages"]
    assert stages["hop client_to_venue D->D"]["count"] > 0 and stages["core_handle"]["count"] > 0
    for mode in ("B", "C"):
        fill = result["aggregate"][mode]["saturation"]["latency_us.fill.p50"]
        assert fill["ratio_to_A"] > 0


@pytest.mark.timeout(120)
def test_journal_bench_smoke_writes_and_replays(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "journal_bench.py"), "--backends", "sqlite",
                           "--rates", "2000", "--duration", "0.5", "--burst", "2000", "--replay", "3500",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(next(tmp_path.glob("journal-*.json")).read_text())
    (sqlite,) = result["backends"]
    loop = sqlite["open_loop"][0]
    assert loop["flushed"] and loop["commit_lag_us"]["count"] == loop["messages"] == 1000
    assert sqlite["burst"]["flushed"]
    replay = sqlite["replay"][0]
    assert replay["full_parse"]["rows"] == 3500
    assert replay["full_parse"]["orders"] == replay["indexed_columns"]["orders"] == 500
    assert replay["full_parse"]["fills"] == replay["indexed_columns"]["fills"] == 500
