"""`fixgw credentials ...`, the secrets-file permission check and a `fixgw run` whose log and journal replay
never show a password: all as subprocesses, as an operator runs them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.journal.db import upgrade
from sessions.client import FixClient
from tests.fix_fixtures import free_port

FIXGW = shutil.which("fixgw", path=str(Path(sys.executable).parent)) or "fixgw"
PASSWORD = "a-long-enough-secret-44"


def fixgw(*args: str, stdin: str | None = None, env: dict | None = None, timeout: float = 60
          ) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FIXGW_")}
    return subprocess.run([FIXGW, *args], input=stdin, capture_output=True, text=True, timeout=timeout,
                          env={**base, **(env or {})})


@pytest.fixture
def cfg(tmp_path) -> Path:
    path = tmp_path / "gateway.cfg"
    path.write_text(f"""
data_dir = "var"
[acceptor]
port = {free_port()}
[http]
port = {free_port()}
[journal]
database_url = "sqlite:///var/journal.db"
flush_interval_ms = 2
[clients.SECURE44]
fix_version = "FIX.4.4"
password_required = true
[clients.OPEN42]
fix_version = "FIX.4.2"
""")
    return path


def test_credentials_set_check_list_and_delete(cfg):
    c = str(cfg)
    out = fixgw("credentials", "set", "SECURE44", "-c", c, "--password-stdin", stdin=PASSWORD + "\n")
    assert out.returncode == 0, out.stderr
    assert "password set for SECURE44" in out.stdout and PASSWORD not in out.stdout + out.stderr
    stored = cfg.parent / "var" / "credentials.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert PASSWORD not in stored.read_text() and '"kdf": "scrypt"' in stored.read_text()

    ok = fixgw("credentials", "check", "SECURE44", "-c", c, "--password-stdin", stdin=PASSWORD + "\n")
    assert ok.returncode == 0 and "OK" in ok.stdout
    wrong = fixgw("credentials", "check", "SECURE44", "-c", c, "--password-stdin", stdin="not-the-password-1\n")
    assert wrong.returncode == 1 and "wrong" in wrong.stderr

    listed = fixgw("credentials", "list", "-c", c)
    assert listed.returncode == 0
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert "scrypt n=65536 r=8 p=1" in lines["SECURE44"] and lines["OPEN42"].split()[1] == "no"
    hash_value = stored.read_text().split('"hash": "')[1].split('"')[0]
    assert hash_value not in listed.stdout  # never the hash

    assert fixgw("credentials", "delete", "SECURE44", "-c", c).returncode == 0
    assert "MISSING" in fixgw("credentials", "list", "-c", c).stdout


def test_credentials_set_prompts_twice_without_echo_and_refuses_a_mismatch(cfg):
    # click reads the prompts from stdin when it is not a terminal; no echo either way
    same = fixgw("credentials", "set", "SECURE44", "-c", str(cfg), stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert same.returncode == 0, same.stderr
    assert PASSWORD not in same.stdout + same.stderr
    differ = fixgw("credentials", "set", "SECURE44", "-c", str(cfg), stdin=f"{PASSWORD}\nsomething-else-44\n")
    assert differ.returncode != 0 and "do not match" in (differ.stdout + differ.stderr)


def test_credentials_commands_give_clear_errors(cfg):
    c = str(cfg)
    unknown = fixgw("credentials", "set", "NOPE", "-c", c, "--password-stdin", stdin=PASSWORD + "\n")
    assert unknown.returncode == 2 and "unknown session NOPE" in unknown.stderr and "SECURE44" in unknown.stderr
    short = fixgw("credentials", "set", "SECURE44", "-c", c, "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 12 characters" in short.stderr
    none = fixgw("credentials", "check", "OPEN42", "-c", c, "--password-stdin", stdin=PASSWORD + "\n")
    assert none.returncode == 1 and "no password is set for OPEN42" in none.stderr
    fixgw("credentials", "set", "SECURE44", "-c", c, "--password-stdin", stdin=PASSWORD + "\n")
    stored = cfg.parent / "var" / "credentials.json"
    stored.chmod(0o644)
    loose = fixgw("credentials", "list", "-c", c)
    assert loose.returncode == 2 and f"chmod 600 {stored}" in loose.stderr


def test_fixgw_refuses_to_start_with_a_group_or_world_readable_secrets_file(cfg, tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('FIXGW_ADMIN_TOKEN = "t0ken-from-the-secrets-file"\n')
    for mode in (0o644, 0o640, 0o604):
        secrets.chmod(mode)
        out = fixgw("run", "-c", str(cfg), "--duration", "1", env={"FIXGW_SECRETS_FILE": str(secrets)})
        assert out.returncode == 2  # could not do it: an unusable configuration (docs/operations.md, "Exit codes")
        assert f"secrets file {secrets} is accessible to its group or others" in out.stderr
        assert f"Fix: chmod 600 {secrets}" in out.stderr
    secrets.chmod(0o600)
    upgrade(f"sqlite:///{cfg.parent / 'var' / 'journal.db'}")
    out = fixgw("run", "-c", str(cfg), "--duration", "1", env={"FIXGW_SECRETS_FILE": str(secrets)})
    assert out.returncode == 0, out.stderr


def test_a_database_password_in_the_config_file_is_refused(tmp_path):
    path = tmp_path / "gateway.cfg"
    path.write_text('[journal]\ndatabase_url = "postgresql+psycopg://fixgw:hunter2-secret@127.0.0.1/fixgw"\n')
    out = fixgw("db", "current", "-c", str(path))
    assert out.returncode != 0 and "holds a password" in out.stderr and "FIXGW_DATABASE_PASSWORD" in out.stderr
    assert "hunter2-secret" not in out.stderr


def test_a_running_gateway_never_prints_or_replays_a_password(cfg):
    c = str(cfg)
    upgrade(f"sqlite:///{cfg.parent / 'var' / 'journal.db'}")
    assert fixgw("credentials", "set", "SECURE44", "-c", c, "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    port = int(cfg.read_text().split("port = ")[1].split()[0])
    proc = subprocess.Popen([FIXGW, "run", "-c", c, "--duration", "12"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items() if not k.startswith("FIXGW_")})
    try:
        wrong = "wrong-password-for-the-log"
        for password, up in ((PASSWORD, True), (wrong, False)):
            client = FixClient(version="FIX.4.4", sender="SECURE44", target="FIXGW", port=port,
                               store_dir=cfg.parent / "client", logon_fields={553: "SECURE44", 554: password})
            client._engine.start()
            assert client.wait_logged_on(10) is up
            if not up:
                time.sleep(1)
            client.stop()
    finally:
        stdout, stderr = proc.communicate(timeout=30)
    assert "logon accepted from 127.0.0.1" in stderr and "wrong username or password" in stderr
    replay = fixgw("journal", "replay", "-c", c, "--msg-type", "A", "--format", "text")
    assert replay.returncode == 0 and "554(Password)=****" in replay.stdout
    for text in (stdout, stderr, replay.stdout, fixgw("journal", "replay", "-c", c, "--format", "json").stdout):
        assert PASSWORD not in text and wrong not in text


def _demo_config(tmp: Path) -> tuple[Path, int]:
    port = free_port()
    path = tmp / "gateway.cfg"
    path.write_text(f"""
data_dir = "var"
[acceptor]
port = {port}
[http]
port = {free_port()}
[journal]
database_url = "sqlite:///var/journal.db"
[clients.SECURE44]
fix_version = "FIX.4.4"
allowed_addresses = ["127.0.0.0/8"]
password_required = true
username = "SECURE44"
accounts = ["SEC1"]
demo_password_env = "FIXGW_DEMO_SECURE_PASSWORD"
[venues.VENUE1]
fix_version = "FIX.4.4"
port = {free_port()}
symbols = ["AAPL"]
reconnect_s = 1
[venues.VENUE1.simulator]
prices = {{ AAPL = 190.00 }}
""")
    return path, port


def _run_demo(cfg: Path, port: int, password: str | None, client_password: str) -> tuple[str, list[str], bool]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIXGW_")}
    if password is not None:
        env["FIXGW_DEMO_SECURE_PASSWORD"] = password
    proc = subprocess.Popen([FIXGW, "demo", "-c", str(cfg), "--duration", "15"], cwd=cfg.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    banner, filled = [], False
    client = None
    try:
        for line in proc.stdout:
            banner.append(line)
            if "Ctrl-C" in line:
                break
        client = FixClient(version="FIX.4.4", sender="SECURE44", target="FIXGW", port=port,
                           store_dir=cfg.parent / "client", logon_fields={553: "SECURE44", 554: client_password})
        client._engine.start()
        if client.wait_logged_on(10):
            cl = client.new_order("AAPL", "1", 100, "190.05", account="SEC1")
            filled = client.wait_exec(cl, "2", timeout=10)[14] == "100"
        refusals = [raw.split("\x0158=", 1)[1].split("\x01")[0] for d, raw in client.wire.lines
                    if d == "I" and "\x0135=5\x01" in raw and "\x0158=" in raw]
    finally:
        if client is not None:
            client.stop()
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert password is None or password not in out + err + "".join(banner)
    return "".join(banner), refusals, filled


def test_demo_secure44_takes_its_password_from_the_environment_and_stores_only_a_hash(tmp_path):
    cfg, port = _demo_config(tmp_path)
    banner, refusals, filled = _run_demo(cfg, port, PASSWORD, PASSWORD)
    assert "SECURE44" in banner and "password from FIXGW_DEMO_SECURE_PASSWORD (stored only as a hash)" in banner
    assert filled and not refusals
    stored = (tmp_path / "var" / "credentials.json").read_text()
    assert PASSWORD not in stored and "SECURE44" in stored


def test_demo_without_the_variable_keeps_secure44_disabled_and_says_so(tmp_path):
    cfg, port = _demo_config(tmp_path)
    banner, refusals, filled = _run_demo(cfg, port, None, PASSWORD)
    assert "DISABLED: FIXGW_DEMO_SECURE_PASSWORD is not set" in banner
    assert not filled and any("the demo was started without its password" in r for r in refusals)


def test_the_shipped_gateway_cfg_has_the_authenticated_demo_session():
    from gateway.config import load_config

    c = load_config(Path(__file__).resolve().parent.parent / "gateway.cfg").clients["SECURE44"]
    assert (c.fix_version, c.password_required, c.expected_username("SECURE44"), c.demo_password_env) == (
        "FIX.4.4", True, "SECURE44", "FIXGW_DEMO_SECURE_PASSWORD")
