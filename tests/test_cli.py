"""The `fixgw` command, run as a subprocess the way an operator runs it."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sessions.client import FixClient
from tests.fix_fixtures import free_port

FIXGW = shutil.which("fixgw", path=str(Path(sys.executable).parent)) or "fixgw"


def fixgw(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([FIXGW, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"})


def write_config(tmp: Path, gw_port: int, v1: int, v2: int, extra: str = "", tables: str = "") -> Path:
    cfg = tmp / "gateway.cfg"
    cfg.write_text(f"""
comp_id = "FIXGW"
data_dir = "var"
{extra}
[acceptor]
port = {gw_port}
[http]
port = {free_port()}
[journal]
database_url = "sqlite:///var/journal.db"
[clients.CLIENT44]
fix_version = "FIX.4.4"
allowed_addresses = ["127.0.0.1"]
[venues.VENUE1]
fix_version = "FIX.4.4"
port = {v1}
symbols = ["AAPL"]
reconnect_s = 1
[venues.VENUE1.simulator]
prices = {{ AAPL = 190.00 }}
[venues.VENUE2]
fix_version = "FIX.4.2"
port = {v2}
symbols = ["AAPL"]
reconnect_s = 1
[venues.VENUE2.simulator]
prices = {{ AAPL = 190.02 }}
{tables}
""")
    return cfg


def test_run_refuses_an_out_of_date_journal_schema_and_names_the_fix(tmp_path):
    write_config(tmp_path, free_port(), free_port(), free_port())
    result = fixgw("run", "-c", "gateway.cfg", "--duration", "1", cwd=tmp_path)
    assert result.returncode != 0
    assert "fixgw db upgrade" in result.stderr and "gateway.cfg" in result.stderr


def test_db_upgrade_then_current_reports_up_to_date(tmp_path):
    write_config(tmp_path, free_port(), free_port(), free_port())
    assert fixgw("db", "upgrade", "-c", "gateway.cfg", cwd=tmp_path).returncode == 0
    current = fixgw("db", "current", "-c", "gateway.cfg", cwd=tmp_path)
    assert current.returncode == 0, current.stderr
    assert (tmp_path / "var" / "journal.db").exists()


def test_start_up_says_the_journal_schema_revision_once_and_none_of_alembics_or_apschedulers_own_lines(tmp_path):
    from gateway.journal.db import head_revision

    write_config(tmp_path, free_port(), free_port(), free_port())
    here = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[1])}

    def start(command: str) -> list[str]:
        result = subprocess.run([sys.executable, "-m", "gateway.cli", command, "-c", "gateway.cfg", "--duration", "0"],
                                cwd=tmp_path, capture_output=True, text=True, timeout=60, env=here)
        assert result.returncode == 0, result.stderr[-2000:]
        lines = result.stderr.splitlines()
        assert [line for line in lines if "logger=alembic" in line or "logger=apscheduler" in line] == []
        return [line for line in lines if "journal schema" in line]

    head = head_revision()
    assert [line.split("msg=", 1)[1] for line in start("demo")] == [
        f'"upgraded journal schema from none (empty database) to {head} (head)"']  # a new database
    assert [line.split("msg=", 1)[1] for line in start("run")] == [f'"journal schema at revision {head} (head)"']


def test_a_misspelt_config_key_stops_start_up_with_its_name(tmp_path):
    write_config(tmp_path, free_port(), free_port(), free_port(), extra='log_levl = "INFO"')
    result = fixgw("run", "-c", "gateway.cfg", cwd=tmp_path)
    assert result.returncode != 0 and "log_levl" in result.stderr


def test_missing_config_file_is_reported_clearly(tmp_path):
    result = fixgw("run", "-c", "nope.cfg", cwd=tmp_path)
    assert result.returncode != 0 and "nope.cfg" in result.stderr


def test_demo_serves_a_client_end_to_end_and_a_drop_copy_receiver_then_stops_by_itself(tmp_path):
    gw_port, dc_port = free_port(), free_port()
    write_config(tmp_path, gw_port, free_port(), free_port(),
                 tables=f'[dropcopy]\nport = {dc_port}\n[dropcopy.sessions.DC44]\nfix_version = "FIX.4.4"\n')
    proc = subprocess.Popen([FIXGW, "demo", "-c", "gateway.cfg", "--duration", "20"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = receiver = None
    try:
        banner = []
        deadline = time.monotonic() + 30
        for line in proc.stdout:
            banner.append(line)
            if "Ctrl-C" in line or time.monotonic() > deadline:
                break
        text = "".join(banner)
        assert f"127.0.0.1:{gw_port}" in text and "CLIENT44" in text and "logged on" in text, text
        assert f"Drop copies: connect a FIX initiator to 127.0.0.1:{dc_port}" in text, text
        assert "SenderCompID=DC44" in text and "client-side reports" in text, text
        receiver = FixClient(version="FIX.4.4", sender="DC44", target="FIXGW", port=dc_port,
                             store_dir=tmp_path / "receiver").start()
        client = FixClient(version="FIX.4.4", sender="CLIENT44", target="FIXGW", port=gw_port,
                           store_dir=tmp_path / "client").start()
        cl = client.new_order("AAPL", "1", 100, "190.05")
        filled = client.wait_exec(cl, "2", timeout=10)
        assert filled[30] == "VENUE1" and filled[14] == "100"
        copy = receiver.wait_exec(cl, "2", timeout=10)
        assert (copy[17], copy[37], copy[797]) == (filled[17], filled[37], "Y")
    finally:
        for fc in (client, receiver):
            if fc is not None:
                fc.stop()
        proc.terminate()  # SIGTERM: a clean stop, as an operator's service manager would do
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("fixgw demo did not stop within 30 s of SIGTERM")
    assert proc.returncode == 0, err[-2000:]
