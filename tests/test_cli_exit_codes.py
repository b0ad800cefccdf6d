"""Exit codes and failures the operator commands must tell apart, against a stand-in admin API.

The stand-in answers each admin path with canned JSON, or resets the connection,
so the CLI's side can be checked without a gateway.
"""
from __future__ import annotations

import json
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from gateway.cli import main

STATUS = {"comp_id": "FIXGW", "healthy": True, "problems": [], "pid": 1, "uptime_seconds": 5.0,
          "sessions_up": 1, "sessions_total": 1, "sessions": {"VENUE1": True}, "schedules": {},
          "journal": {"lag_seconds": 0, "queue_depth": 0, "healthy": True},
          "risk": {"enabled": False, "kill_switches": {}, "disabled_sessions": []}, "scheduled": []}
RESET = object()


class FakeAdmin:
    def __init__(self):
        self.answers: dict[str, object] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                answer = fake.answers.get(self.path.split("?")[0], (404, {"error": f"no admin call {self.path}"}))
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
