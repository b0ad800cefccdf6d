"""The benchmark harness runs end to end on a tiny configuration (its figures are not checked: never timed here).

``bench/throughput.py --smoke``: modes A, B and C, one cycle, a few dozen orders
of the mix open loop and closed loop. What must hold whatever the machine's
speed: every order reached its final state, no message is missing against
either peer, and the result file has the figures the tables are made from.

``bench/fuzz.py --smoke``: a few hundred damaged messages in FIX 4.2, 4.4 and 5.0
against `fixgw run`: no process dies, the journal's chain verifies, every family of
mutation and connection test ran, and the report has its figures (unanswered,
orders not terminal or known, journal completeness), which are not asserted yet.
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


def _bench_module(name: str):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "bench"))


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git repository")
def test_mode_o_exports_the_gateway_of_another_revision():
    throughput = _bench_module("throughput")
    with throughput.revision_tree("HEAD") as tree:
        assert (tree / "gateway" / "cli" / "main.py").is_file() and (tree / "desk" / "core.py").is_file()
        where = subprocess.run([sys.executable, "-c", "import gateway; print(gateway.__file__)"], cwd=tree.parent,
                               env={"PYTHONPATH": str(tree), "PATH": ""}, capture_output=True, text=True,
                               check=True).stdout.strip()
        assert Path(where).is_relative_to(tree)
    assert not tree.exists()


def test_report_compares_this_tree_with_the_revision_cycle_by_cycle():
    report = _bench_module("report")

    def run(cycle, mode, rate, cpu):
        return {"cycle": cycle, "mode": mode, "phases": {"saturation": {
            "completed_per_s": rate, "latency_us": {"fill": {"p50": 1000.0}},
            "cpu": {"gateway": {"us_per_order": cpu, "cores": 0.8}, "journal": {"us_per_order": 100, "cores": 0.1}}}}}

    summary = {"rev": "main~2", "runs": [run(1, "C", 600, 900), run(1, "O", 500, 1100),
                                         run(2, "C", 660, 900), run(2, "O", 600, 900)]}
    lines = report.compare_revisions(summary, ["saturation"], [])
    assert "`main~2`" in lines[0]
    rate = next(line for line in lines if line.startswith("| saturation orders/s"))
    assert "1.20, 1.10" in rate and "**1.15**" in rate
    cpu = next(line for line in lines if line.startswith("| saturation CPU per order"))
    assert "0.83, 1.00" in cpu  # (900 + 100) / (1100 + 100), then equal


@pytest.mark.timeout(150)
def test_fuzz_smoke_sends_damaged_messages_in_every_version_and_the_gateway_survives(tmp_path):
    out = tmp_path / "fuzz.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "fuzz.py"), "--smoke", "--seed", "3",
                           "--out", str(out)], capture_output=True, text=True, timeout=140)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["crashes"] == 0, report["processes"]
    assert all(p["alive_at_end"] and p["exit_code"] == 0 for p in report["processes"].values()), report["processes"]
    messages = report["messages"]
    assert messages["mutated"] > 100 and messages["controls"] > 0
    assert set(messages["by_version"]) == {"FIX.4.2", "FIX.4.4", "FIX.5.0"}
    assert {"content", "frame", "session", "none", "connection"} <= set(messages["by_family"])
    # every message owed an answer got one, no order is left pending, no session was left stuck after damage,
    # every connection test behaved, and the gateway logged no error (docs/fuzzing.md)
    assert report["unanswered"] == 0, report["unanswered_samples"]
    assert report["not_terminal_or_known"] == 0, report["orders"]
    assert report["stuck_after_frame_damage"] == 0
    assert [t for t in report["connection_tests"] if not t["ok"]] == []
    assert report["log_errors"]["gateway"]["count"] == 0, report["log_errors"]["gateway"]
    assert "journal_complete" in report  # the harness's own frame bookkeeping can miss a swallowed probe
    journal = report["journal"]
    assert journal["verify_exit"] == 0, journal["verify"]
    assert journal["sent_expected"] > messages["mutated"] and journal["received_expected"] > 0
    assert report["outcomes"]["none"].get("answered", 0) > 0  # unmutated controls get their answers
    assert report["outcomes"]["connection"]  # the slow senders' orders
    assert {"partial_frame_then_disconnect", "silent_after_logon", "huge_body_length", "silent_socket",
            "logon_wrong_version", "logon_unknown_comp_id"} <= {t["test"] for t in report["connection_tests"]}


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_scale_out_smoke_runs_one_shard_then_two_and_completes_every_order(tmp_path):
    """``bench/scale_out.py --smoke``: one instance serving both load clients, then two shards with one each, on a
    fresh PostgreSQL database; it fails by itself if an order does not complete. Its figures are not asserted."""
    from tests.db_fixtures import pg_base_url

    out = tmp_path / "scale-out.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "scale_out.py"), "--smoke", "--out", str(out),
                           "--pg-url", pg_base_url()], capture_output=True, text=True, timeout=230)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert [(r["shards"], r["orders"]) for r in summary["runs"]] == [(1, 120), (2, 120)]
    assert all(r["orders_per_s"] > 0 and r["budget_top_ups"] >= 1 for r in summary["runs"])
    assert set(summary["median"]) >= {"throughput", "gateway_cpu_per_order"}
    assert "| 2 shard(s) |" in proc.stdout


@pytest.mark.timeout(120)
def test_quotes_smoke_measures_the_gateways_cost_per_market_data_message(tmp_path):
    """``bench/quotes.py --smoke``: a quiet gateway, then one whose venues send snapshots every 50 ms; the quotes
    arrive and are journaled, and a cost per quote comes out. Its figures are not asserted."""
    out = tmp_path / "quotes.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "quotes.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    quiet, quotes = (next(r for r in summary["runs"] if r["mode"] == m) for m in ("quiet", "quotes"))
    assert quotes["quotes"] > max(quiet["quotes"], 0), summary["runs"]
    assert summary["gateway_cpu_us_per_quote"] is not None and "| quotes |" in proc.stdout
