"""What every `fixgw` command shares: which configuration file it uses, and saying so."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway import cli_common
from gateway.cli import main
from gateway.cli_common import ConfigNotFound, find_config


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
