"""bench/targets.py: issue 21's target ratios (C against B in the same cycles) read right from the runs, and the
command runs end to end on a tiny configuration (its figures are never asserted: nothing is timed in tests)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import targets  # noqa: E402


def _sat(cycle, mode, rate, cpu):
    return {"cycle": cycle, "mode": mode, "completeness": {"missing": 0},
            "phases": {"saturation": {"completed_per_s": rate, "unfinished": 0, "cpu": cpu}}}


def _half(cycle, mode, p99):
    return {"cycle": cycle, "mode": mode, "completeness": {"missing": 0},
            "phases": {"rate-400": {"unfinished": 0, "latency_us": {"ack": {"p99": p99}}}}}


def _us(**kw):
    return {k: {"us_per_order": v} for k, v in kw.items()}


def test_ratios_are_per_cycle_c_over_b_with_the_writer_counted_in_c():
    sat = [_sat(1, "B", 2000, _us(forwarder=300)), _sat(1, "C", 1000, _us(gateway=600, journal=150)),
           _sat(2, "B", 2500, _us(forwarder=250)), _sat(2, "C", 1000, _us(gateway=500, journal=100))]
    half = [_half(1, "B", 1000), _half(1, "C", 1500), _half(2, "B", 1000), _half(2, "C", 2500)]
    figs = targets.figures(sat, half, "C", "B")
    assert figs["cpu_ratio"] == {1: 2.5, 2: 2.4}
    assert figs["saturation_ratio"] == {1: 0.5, 2: 0.4}
    assert figs["journal_share"] == {1: 0.2, 2: 100 / 600}
    assert figs["ack_p99_ratio"] == {1: 1.5, 2: 2.5}


def test_the_table_says_which_targets_hold_and_fails_on_a_lost_message():
    sat = [_sat(1, "B", 1000, _us(forwarder=300)), _sat(1, "C", 700, _us(gateway=600, journal=60))]
    half = [_half(1, "B", 1000), _half(1, "C", 1500)]
    text, ok = targets.table(sat, half, ["B", "C"], check=True)
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()[2:]}
    assert rows["CPU per order at saturation, C / B"].endswith("| yes |")  # 2.2 <= 2.5
    assert rows["saturation rate, C / B"].endswith("| yes |")  # 0.7 >= 0.6
    assert rows["journal writer process, share of C's CPU"].endswith("| yes |")  # 60/660
    assert ok
    sat[1]["completeness"]["missing"] = 3
    text, ok = targets.table(sat, half, ["B", "C"], check=True)
    assert not ok and "missing 3" in text
    sat[1]["completeness"] = {"missing": 0, "checks": [{"what": "journal", "missing": 0, "extra": 2}]}
    text, ok = targets.table(sat, half, ["B", "C"], check=True)
    assert not ok and "duplicated 2" in text


def test_c_against_o_pairs_the_same_cycles():
    us = _us(gateway=500, journal=100)
    sat = [_sat(1, "B", 1000, _us(forwarder=100)), _sat(1, "C", 500, us), _sat(1, "O", 400, us),
           _sat(2, "B", 1000, _us(forwarder=100)), _sat(2, "O", 400, us),  # cycle 2: C failed, no figures
           _sat(3, "B", 1000, _us(forwarder=100)), _sat(3, "C", 600, us), _sat(3, "O", 300, us)]
    text, _ = targets.table(sat, [], ["B", "C", "O"], check=False)
    assert "saturation_ratio 1.62" in text  # median of 500/400 and 600/300, never cycle 2's O against cycle 3's C


def test_a_target_missed_is_a_no():
    sat = [_sat(1, "B", 1000, _us(forwarder=100)), _sat(1, "C", 300, _us(gateway=400, journal=100))]
    text, ok = targets.table(sat, [_half(1, "B", 1000), _half(1, "C", 3000)], ["B", "C"], check=True)
    assert not ok and text.count("| NO |") == 4


@pytest.mark.timeout(150)
def test_targets_smoke_runs_both_steps_and_prints_every_target(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "targets.py"), "--smoke", "--out", str(tmp_path),
                           "--name", "t"], capture_output=True, text=True, timeout=140)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = (tmp_path / "t.md").read_text()
    for what, *_ in targets.TARGETS:
        assert what in text
    assert "none missing, duplicated or unfinished" in text
    assert (tmp_path / "t-saturation.json").exists() and (tmp_path / "t-half.json").exists()
