"""Exit codes and failures the operator commands must tell apart, against a stand-in admin API.

The stand-in answers each admin path with canned JSON, or resets the connection,
so the CLI's side can be checked without a gateway.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest
from click.testing import CliRunner

from gateway.cli.main import main
from gateway.cli.common import SIGPIPE_EXIT

STATUS = {"comp_id": "FIXGW", "healthy": True, "problems": [], "pid": 1, "uptime_seconds": 5.0,
          "sessions_up": 1, "sessions_total": 1, "sessions": {"VENUE1": True}, "schedules": {},
          "journal": {"commit_lag_seconds": 0, "queue_depth": 0, "healthy": True},
          "risk": {"enabled": False, "kill_switches": {}, "disabled_sessions": []}, "scheduled": []}
RESET = object()


class FakeAdmin:
    def __init__(self):
        self.answers: dict[str, object] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                path = unquote(self.path.split("?")[0])
                answer = fake.answers.get(path, (404, {"error": f"no admin call {path}"}))
                if answer is RESET:  # close with RST, unanswered
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                status, body = answer
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._answer()

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def admin(tmp_path):
    fake = FakeAdmin()
    cfg = tmp_path / "cli.cfg"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[http]\nport = {fake.port}\n')
    yield fake, str(cfg)
    fake.stop()


def run(cfg: str, *args: str):
    return CliRunner().invoke(main, [*args, "-c", cfg], env={"FIXGW_ADMIN_TOKEN": "t"})


def test_status_exits_0_when_healthy_and_1_when_unhealthy_also_with_json(admin):
    fake, cfg = admin
    fake.answers["/admin/status"] = (200, STATUS)
    res = run(cfg, "status")
    assert res.exit_code == 0 and "FIXGW: healthy" in res.stdout
    fake.answers["/admin/status"] = (200, STATUS | {"healthy": False, "problems": ["venue VENUE1 is not logged on"]})
    res = run(cfg, "status")
    assert res.exit_code == 1 and "UNHEALTHY" in res.stdout and "problem: venue VENUE1" in res.stdout
    res = run(cfg, "status", "--json")
    assert res.exit_code == 1 and json.loads(res.stdout)["healthy"] is False


def test_status_exits_2_when_it_cannot_ask(admin, tmp_path):
    fake, cfg = admin
    fake.answers["/admin/status"] = (401, {"error": "permission denied: missing or wrong admin token"})
    res = run(cfg, "status")
    assert res.exit_code == 2 and "permission denied" in res.stderr and res.stdout == ""
    fake.stop()
    res = run(cfg, "status")
    assert res.exit_code == 2 and "cannot reach the gateway's admin API" in res.stderr
    res = CliRunner().invoke(main, ["status", "-c", str(tmp_path / "missing.cfg")])
    assert res.exit_code == 2 and "cannot read config" in res.stderr


def test_a_reset_admin_connection_names_the_admin_api_not_the_gateway_being_down(admin):
    fake, cfg = admin
    fake.answers["/admin/orders/cancel-all"] = RESET
    res = run(cfg, "orders", "cancel-all", "--everything")
    assert res.exit_code == 1 and "the connection to the gateway's admin API at http://127.0.0.1:" in res.stderr
    assert "was cut before it answered" in res.stderr and "database" not in res.stderr


# ---------------------------------------------------------------- a reader that goes away: `| head -1`
def fixgw_piped(*args: str) -> tuple[int, str]:
    """Run fixgw with stdout to a pipe whose reader has gone away (as `| head -1` does after its line)."""
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=os.environ | {"FIXGW_ADMIN_TOKEN": "t"})
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=60), err


@pytest.fixture
def big_journal(tmp_path):
    """A journal of some size."""
    from gateway.journal import db
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    db.upgrade(url)
    with sqlite3.connect(tmp_path / "journal.db") as conn:
        conn.executemany("INSERT INTO journal_messages (session_id, direction, seq_num, msg_type, poss_dup, ts_us, "
                         "raw) VALUES (?, 'I', ?, 'D', 0, ?, ?)",
                         [("FIX.4.4:FIXGW->CLIENT44", i, 1_700_000_000_000_000 + i,
                           f"8=FIX.4.4\x019=5\x0135=D\x0111=ORDER{i:06d}\x0155=AAPL\x0110=000\x01")
                          for i in range(5000)])
    cfg = tmp_path / "gw.cfg"
    cfg.write_text(f'[journal]\ndatabase_url = "{url}"\n')
    return str(cfg)


@pytest.mark.parametrize("fmt", ["raw", "json"])
def test_journal_replay_into_a_closed_pipe_ends_quietly(big_journal, fmt):
    code, err = fixgw_piped("journal", "replay", "--format", fmt, "-c", big_journal)
    assert code == SIGPIPE_EXIT
    assert err == ""  # not "reading the journal database failed: BrokenPipeError"


def test_orders_list_into_a_closed_pipe_ends_quietly(admin):
    fake, cfg = admin
    row = {"order_id": "O", "session": "CLIENT44", "cl_ord_id": "C", "account": "A", "symbol": "AAPL", "side": "buy",
           "qty": "1", "price": "1", "status": "new", "cum_qty": "0", "avg_px": "0", "venue": "VENUE1"}
    fake.answers["/admin/orders"] = (200, {"orders": [row | {"order_id": f"O{i}"} for i in range(3000)]})
    code, err = fixgw_piped("orders", "list", "-c", cfg)
    assert code == SIGPIPE_EXIT and err == ""
    code, err = fixgw_piped("orders", "list", "--json", "-c", cfg)
    assert code == SIGPIPE_EXIT and err == ""


def test_admin_actions_print_the_gateways_answer_as_json(admin):
    fake, cfg = admin
    fake.answers["/admin/risk/kill"] = (200, {"ok": True, "canceled": 3})
    res = run(cfg, "risk", "kill", "session", "CLIENT44", "--cancel-open", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout) == {"ok": True, "canceled": 3}
    res = run(cfg, "risk", "kill", "session", "CLIENT44", "--cancel-open")
    assert res.stdout == "kill switch session CLIENT44 engaged; 3 open order(s) being canceled\n"
    fake.answers["/admin/sessions/FIX.4.4:FIXGW->CLIENT44/logout"] = (200, {"ok": True, "session": "CLIENT44",
                                                                           "was_logged_on": True})
    res = run(cfg, "sessions", "logout", "FIX.4.4:FIXGW->CLIENT44")  # the path segment is quoted, then unquoted
    assert res.exit_code == 0 and res.stdout == "CLIENT44: logout done\n"
