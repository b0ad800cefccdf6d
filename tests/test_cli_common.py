"""What every `fixgw` command shares: which configuration file it uses, and saying so."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import common as cli_common
from gateway.cli.main import main
from gateway.cli.common import ConfigNotFound, find_config


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """An empty working directory, an empty home, no FIXGW_CONFIG and no system file."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(cli_common, "SYSTEM_CONFIG", tmp_path / "etc" / "fixgw" / "gateway.cfg")
    return {"HOME": str(home)}


def write(path: Path, db: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[journal]\ndatabase_url = "sqlite:///{db}"\n')
    return path


def test_dash_c_wins_over_the_environment_and_the_search_path(nowhere, tmp_path):
    write(Path("gateway.cfg"), tmp_path / "j.db")
    env = nowhere | {"FIXGW_CONFIG": "/elsewhere.cfg"}
    assert find_config("mine.cfg", env).path == "mine.cfg"
    assert find_config(None, env).path == "/elsewhere.cfg"


def test_search_path_order_is_cwd_then_user_then_system(nowhere, tmp_path):
    system = write(cli_common.SYSTEM_CONFIG, tmp_path / "j.db")
    assert find_config(None, nowhere).path == str(system)
    user = write(Path(nowhere["HOME"]) / ".config" / "fixgw" / "gateway.cfg", tmp_path / "j.db")
    assert find_config(None, nowhere).path == str(user)
    xdg = write(tmp_path / "xdg" / "fixgw" / "gateway.cfg", tmp_path / "j.db")
    assert find_config(None, nowhere | {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}).path == str(xdg)
    write(Path("gateway.cfg"), tmp_path / "j.db")
    assert find_config(None, nowhere).path == "gateway.cfg"


def test_no_configuration_anywhere_names_every_place_looked(nowhere):
    with pytest.raises(ConfigNotFound) as err:
        find_config(None, nowhere)
    message = err.value.message
    assert "FIXGW_CONFIG not set" in message and str(Path.cwd() / "gateway.cfg") in message
    assert f"{nowhere['HOME']}/.config/fixgw/gateway.cfg" in message and str(cli_common.SYSTEM_CONFIG) in message
    assert err.value.exit_code == 2


def test_a_command_says_on_stderr_which_file_it_used_and_keeps_stdout_clean(nowhere, tmp_path):
    cfg = write(tmp_path / "conf" / "gw.cfg", tmp_path / "j.db")
    runner = CliRunner()
    res = runner.invoke(main, ["db", "current"], env=nowhere | {"FIXGW_CONFIG": str(cfg)})
    assert f"fixgw: using config {cfg} (from FIXGW_CONFIG)" in res.stderr
    assert "using config" not in res.stdout and "current revision: none" in res.stdout
    res = runner.invoke(main, ["db", "current", "-c", str(cfg)], env=nowhere)
    assert res.stderr == "" and "current revision: none" in res.stdout  # named with -c: nothing to announce
    res = runner.invoke(main, ["db", "current"], env=nowhere)
    assert res.exit_code == 2 and "no configuration file" in res.stderr and res.stdout == ""


def test_every_command_taking_a_configuration_uses_the_one_search(nowhere):
    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield path, command
    for path, command in walk(main, []):
        options = [p for p in command.params if "--config" in getattr(p, "opts", ())]
        for p in options:
            assert p.help == cli_common.CONFIG_HELP, " ".join(path)


# Commands whose output is not data: services that run until stopped, and password changes (their answer is the
# exit code; `credentials list --json` says what is set).
NO_JSON = {"run", "demo", "venue-sim", "credentials set", "credentials check", "credentials delete"}


def test_every_command_that_prints_data_takes_json():
    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path), command
    missing = [path for path, command in walk(main, [])
               if path not in NO_JSON and not any("--json" in getattr(p, "opts", ()) for p in command.params)]
    assert missing == []


def test_offline_commands_print_json_and_keep_their_exit_codes(tmp_path):
    import json

    cfg = write(tmp_path / "gw.cfg", tmp_path / "j.db")
    runner = CliRunner()
    res = runner.invoke(main, ["db", "current", "--json", "-c", str(cfg)])
    assert res.exit_code == 1 and json.loads(res.stdout)["up_to_date"] is False
    res = runner.invoke(main, ["db", "upgrade", "--json", "-c", str(cfg)])
    data = json.loads(res.stdout)
    assert res.exit_code == 0 and data["before"] is None and data["after"] and res.stderr == ""
    res = runner.invoke(main, ["db", "current", "--json", "-c", str(cfg)])
    assert res.exit_code == 0 and json.loads(res.stdout)["up_to_date"] is True
    res = runner.invoke(main, ["journal", "verify", "--json", "-c", str(cfg)])
    data = json.loads(res.stdout)
    assert res.exit_code == 0 and data["intact"] is True and data["checked"] == 0 and data["problem"] is None
    res = runner.invoke(main, ["journal", "prune", "--json", "--older-than-days", "1", "--dry-run", "-c", str(cfg)])
    assert res.exit_code == 0 and json.loads(res.stdout)["pruned"] == 0


def test_credentials_list_json_says_what_is_set_never_the_hash(tmp_path):
    import json

    cfg = tmp_path / "gw.cfg"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[clients.CLIENT44]\nfix_version = "FIX.4.4"\npassword_required = true\n'
                   '[clients.OPEN42]\nfix_version = "FIX.4.2"\n')
    runner = CliRunner()
    assert runner.invoke(main, ["credentials", "set", "CLIENT44", "--password-stdin", "-c", str(cfg)],
                         input="a-long-enough-password\n").exit_code == 0
    res = runner.invoke(main, ["credentials", "list", "--json", "-c", str(cfg)])
    rows = {r["session"]: r for r in json.loads(res.stdout)["sessions"]}
    assert res.exit_code == 0 and rows["CLIENT44"]["password_set"] is True and rows["CLIENT44"]["password_required"]
    assert rows["OPEN42"]["password_set"] is False and "hash" not in res.stdout and "scrypt" not in res.stdout


# ---------------------------------------------------------------- progress: on a terminal only, on stderr
def journal_of(path: Path, n: int) -> str:
    """A journal of ``n`` messages, hash chain and all."""
    from gateway.journal import db
    from gateway.journal.writer import JournalWriter

    url = f"sqlite:///{path}"
    db.upgrade(url)
    w = JournalWriter(url)
    w.start()
    try:
        for i in range(n):
            w.record("FIX.4.4:FIXGW->CLIENT44", "I", f"8=FIX.4.4\x019=9\x0135=D\x0134={i + 1}\x0111=C{i}\x0110=000\x01")
        assert w.flush(30)
    finally:
        w.stop()
    return url


def test_long_commands_report_progress_on_stderr_only_when_it_is_a_terminal(tmp_path, monkeypatch):
    cfg = write(tmp_path / "gw.cfg", tmp_path / "j.db")
    journal_of(tmp_path / "j.db", 2500)
    runner = CliRunner()
    res = runner.invoke(main, ["journal", "replay", "-c", str(cfg)])
    assert res.exit_code == 0 and res.stderr == ""  # not a terminal: quiet
    monkeypatch.setattr(cli_common, "progress_wanted", lambda also_stdout_redirected=False: True)
    res = runner.invoke(main, ["journal", "replay", "-c", str(cfg)])
    assert "replaying" in res.stderr and "replaying" not in res.stdout and len(res.stdout.splitlines()) == 2500
    res = runner.invoke(main, ["journal", "verify", "-c", str(cfg)])
    assert res.exit_code == 0 and "verifying" in res.stderr and "verifying" not in res.stdout
    assert "OK: 2500 rows" in res.stdout


def test_replay_shows_no_progress_when_its_messages_go_to_the_same_terminal(monkeypatch):
    class Tty:
        def isatty(self):
            return True
    monkeypatch.setattr(cli_common.sys, "stderr", Tty())
    monkeypatch.setattr(cli_common.sys, "stdout", Tty())
    assert cli_common.progress_wanted() is True
    assert cli_common.progress_wanted(also_stdout_redirected=True) is False


def test_pure_modules_report_progress_through_a_callback(tmp_path):
    from datetime import datetime, timedelta, timezone

    from gateway.journal import db
    from gateway.journal.verify import verify_database
    from gateway.journal.retention import prune

    engine = db.make_engine(journal_of(tmp_path / "j.db", 2500))
    try:
        seen = []
        verify_database(engine, progress=lambda done, total: seen.append((done, total)))
        assert seen[0] == (1000, 2500) and seen[-1] == (2500, 2500)
        seen.clear()
        prune(engine, timedelta(days=1), now=datetime.now(timezone.utc) + timedelta(days=2), chunk=1000,
              progress=lambda done, total: seen.append((done, total)))
        assert seen == [(1000, 2500), (2000, 2500), (2500, 2500)]
    finally:
        engine.dispose()
