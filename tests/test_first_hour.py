"""The first hour, with the CLI only: what the README tells a newcomer to do, as a newcomer does it.

The shipped gateway.cfg (only its ports moved to free ones, so the test can run beside others) in an empty
directory, `fixgw demo` in the background, then only `fixgw` commands: status, orders with `fixgw client` in
each FIX version, a drop copy watched, a filled, a canceled and a rejected order found, the journal verified
and replayed by session name, status unhealthy and healthy again, and a clean stop.
"""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fix_fixtures import free_port

ROOT = Path(__file__).resolve().parent.parent
FIXGW = shutil.which("fixgw", path=str(Path(sys.executable).parent)) or "fixgw"

pytestmark = pytest.mark.timeout(240)


class Newcomer:
    """Runs `fixgw ...` in the demo's directory, as a user at a shell would."""

    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(cwd)}

    def run(self, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([FIXGW, *args], cwd=self.cwd, capture_output=True, text=True, timeout=timeout,
                              input=input, env=self.env)

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        result = self.run(*args, **kw)
        assert result.returncode == 0, f"fixgw {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def json(self, *args: str) -> dict:
        return json.loads(self.ok(*args, "--json").stdout)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([FIXGW, *args], cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env)


def shipped_config_on_free_ports(tmp: Path) -> dict[str, int]:
    """gateway.cfg and its demo rules, as in the checkout, with every port moved to a free one."""
    text = (ROOT / "gateway.cfg").read_text()
    ports: dict[str, int] = {}

    def move(m: re.Match) -> str:
        ports[m.group(1)] = free_port()
        return f"port = {ports[m.group(1)]}"
    text = re.sub(r"(?m)^port = (\d+)$", move, text)
    assert set(ports) == {"9876", "9877", "9878", "9881", "9882"}, ports  # acceptor, drop copy, http, venues
    (tmp / "gateway.cfg").write_text(text)
    (tmp / "risk").mkdir()
    shutil.copy(ROOT / "risk" / "demo_rules.toml", tmp / "risk" / "demo_rules.toml")
    return {"acceptor": ports["9876"], "dropcopy": ports["9877"]}


def wait_for_banner(demo: subprocess.Popen, timeout: float = 60) -> str:
    lines = []
    deadline = time.monotonic() + timeout
    for line in demo.stdout:
        lines.append(line)
        if "Ctrl-C" in line or time.monotonic() > deadline:
            break
    return "".join(lines)


def sent_id(output: str) -> str:
    """The ClOrdID `fixgw client` printed on its `sent NewOrderSingle` line."""
    return next(line.split()[3] for line in output.splitlines() if " sent NewOrderSingle " in line)


def test_the_first_hour_with_the_cli_only(tmp_path):
    ports = shipped_config_on_free_ports(tmp_path)
    me = Newcomer(tmp_path)
    demo = me.popen("demo")
    watcher = None
    try:
        banner = wait_for_banner(demo)
        assert f"127.0.0.1:{ports['acceptor']}" in banner and "logged on" in banner, banner

        # healthy: exit 0
        status = me.ok("status")
        assert "healthy" in status.stdout and "UNHEALTHY" not in status.stdout

        # a broker's receiver watches the drop copies while the orders go in
        watcher = me.popen("client", "DC44", "--count", "8", "--for", "60")  # 3 orders: 8 reports
        deadline = time.monotonic() + 30  # it counts what happens once it runs: wait until it is logged on
        while not me.json("sessions", "show", "DC44")["logged_on"] and time.monotonic() < deadline:
            time.sleep(0.2)

        # one order in each FIX version
        filled = me.ok("client", "CLIENT42", "buy", "100", "AAPL", "--limit", "190.05")
        filled_id = sent_id(filled.stdout)
        assert f"ExecutionReport Filled {filled_id} buy 100 AAPL" in filled.stdout, filled.stdout

        resting = me.ok("client", "CLIENT44", "--file", "-",
                        input="buy 100 MSFT --limit 400\ncancel last\n")
        canceled_id = sent_id(resting.stdout)
        assert "ExecutionReport New " + canceled_id in resting.stdout, resting.stdout
        assert "ExecutionReport Canceled" in resting.stdout, resting.stdout

        rejected = me.run("client", "CLIENT50", "sell", "100", "XXXX", "--limit", "10")
        assert rejected.returncode == 3, rejected.stdout + rejected.stderr  # refused, and the exit says so
        rejected_id = sent_id(rejected.stdout)
        assert f"ExecutionReport Rejected {rejected_id}" in rejected.stdout, rejected.stdout
        assert "restricted" in rejected.stdout.lower(), rejected.stdout

        # the drop copy of the fill (and the rest) arrived as it happened
        out, err = watcher.communicate(timeout=60)
        assert watcher.returncode == 0, out + err
        assert f"ExecutionReport Filled {filled_id}" in out, out

        # find the filled, the canceled and the rejected order
        orders = {o["cl_ord_id"]: o for o in me.json("orders", "list")["orders"]}
        assert orders[filled_id]["status"] == "filled" and orders[filled_id]["session"] == "CLIENT42"
        canceled = [o for o in orders.values() if o["session"] == "CLIENT44" and o["status"] == "canceled"]
        assert canceled, orders
        found = me.json("orders", "list", "--state", "rejected", "--session", "CLIENT50")["orders"]
        assert [o["cl_ord_id"] for o in found] == [rejected_id], found
        assert "restricted" in found[0]["reason"].lower(), found
        shown = me.ok("orders", "show", found[0]["order_id"])
        assert "restricted" in shown.stdout.lower(), shown.stdout
        assert "AAPL" in me.ok("orders", "show", orders[filled_id]["order_id"]).stdout

        # the journal: verified, and replayed by the session's name
        verify = me.json("journal", "verify")
        assert verify["intact"] is True and verify["checked"] > 0, verify
        replay = me.ok("journal", "replay", "--session", "CLIENT44", "--format", "text")
        assert canceled_id in replay.stdout, replay.stdout[-2000:]
        unknown = me.run("journal", "replay", "--session", "CLIENT99")
        assert unknown.returncode != 0 and "CLIENT44" in unknown.stderr, unknown.stderr

        # unhealthy when a venue is down (exit 1), healthy again when it is back
        me.ok("sessions", "logout", "VENUE1")
        deadline = time.monotonic() + 20
        while (status := me.run("status")).returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status.returncode == 1 and "UNHEALTHY" in status.stdout and "VENUE1" in status.stdout, status
        me.ok("sessions", "logon", "VENUE1")
        deadline = time.monotonic() + 30
        while (status := me.run("status")).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status.returncode == 0, status.stdout + status.stderr
    finally:
        if watcher is not None and watcher.poll() is None:
            watcher.kill()
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            out, err = demo.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
            pytest.fail("fixgw demo did not stop within 30 s of Ctrl-C")
    assert demo.returncode == 0, err[-3000:]
    assert "gateway FIXGW stopped" in err
