"""What every `fixgw` command shares: finding the configuration file, --json, progress on a terminal.

Which configuration file (``-c``/``--config``, one option for every command):

1. ``-c FILE`` / ``--config FILE``;
2. else ``$FIXGW_CONFIG``;
3. else the first that exists of ``./gateway.cfg``, ``$XDG_CONFIG_HOME/fixgw/gateway.cfg``
   (``~/.config/fixgw/gateway.cfg``) and ``/etc/fixgw/gateway.cfg``.

A file not named with ``-c`` is announced once on stderr (``fixgw: using config
/path (from FIXGW_CONFIG)``), never on stdout, so output and ``--json`` stay
clean for scripts. When none is found the error names every place looked
(exit code 2).
"""
from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

CONFIG_ENV = "FIXGW_CONFIG"
CONFIG_NAME = "gateway.cfg"
SYSTEM_CONFIG = Path("/etc/fixgw") / CONFIG_NAME


class CommandError(click.ClickException):
    """The command could not do its work (usage, configuration, unreachable service): one line, exit code 2.

    Exit code 1 stays free for a negative answer (unhealthy, tampered, refused).
    """

    exit_code = 2


class ConfigNotFound(CommandError):
    pass


def load(config_path: str, instance: str | None = None):
    """The configuration at ``config_path`` (as ``instance`` of its cluster runs it, if given); a file that does
    not load is a CommandError naming the problem."""
    from gateway.config import ConfigError, load_config

    try:
        return load_config(config_path, instance=instance)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def db_reason(exc: BaseException) -> str:
    """The first line of a database error, the driver's own where SQLAlchemy wrapped it."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def search_path(env: dict[str, str] | None = None) -> list[tuple[Path, str]]:
    """The places looked in when neither -c nor FIXGW_CONFIG names the file, in order, each with its label."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return [(Path(CONFIG_NAME), "the current directory"),
            (Path(xdg) / "fixgw" / CONFIG_NAME, "the user's config directory"),
            (SYSTEM_CONFIG, "the system config directory")]


@dataclass(frozen=True)
class ConfigChoice:
    path: str
    origin: str  # "-c", FIXGW_CONFIG, or the search path entry's label

    def announce(self) -> str:
        how = f"from {self.origin}" if self.origin == CONFIG_ENV else f"found in {self.origin}"
        return f"fixgw: using config {Path(self.path).absolute()} ({how})"


def find_config(given: str | None, env: dict[str, str] | None = None) -> ConfigChoice:
    """The configuration file to use: ``given`` (-c), else $FIXGW_CONFIG, else the search path; ConfigNotFound."""
    env = os.environ if env is None else env
    if given:
        return ConfigChoice(given, "-c")
    if env.get(CONFIG_ENV):
        return ConfigChoice(env[CONFIG_ENV], CONFIG_ENV)
    places = search_path(env)
    for path, label in places:
        if path.is_file():
            return ConfigChoice(str(path), label)
    looked = ", ".join(str(p.absolute()) for p, _ in places)
    raise ConfigNotFound(f"no configuration file: -c/--config not given, {CONFIG_ENV} not set, and none of "
                         f"{looked} exists")


def resolve_config(given: str | None) -> str:
    """:func:`find_config`, announcing on stderr a file not named with -c; the path to load."""
    choice = find_config(given)
    if choice.origin != "-c":
        click.echo(choice.announce(), err=True)
    return choice.path


def _config_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    return resolve_config(value)


CONFIG_HELP = (f"the gateway's configuration file [default: ${CONFIG_ENV}, else the first of ./{CONFIG_NAME}, "
               f"~/.config/fixgw/{CONFIG_NAME}, {SYSTEM_CONFIG}]")


def config_option(resolve: bool = True):
    """-c/--config. ``resolve``: the command gets the path to load; otherwise the raw value (None when not given:
    call :func:`resolve_config` when a configuration is needed)."""
    return click.option("-c", "--config", "config_path", default=None, type=click.Path(dir_okay=False),
                        callback=_config_callback if resolve else None, help=CONFIG_HELP)


CONFIG_OPTION = config_option()
JSON = click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")


def emit(data, as_json: bool, human: Callable) -> None:
    """``data`` as JSON, or as ``human`` says it; an answer of a sharded cluster's control plane (it names the
    shards that applied the command) ends with how each shard took it."""
    click.echo(json.dumps(data, indent=2) if as_json else human(data) + shards_said(data))


def shards_said(data) -> str:
    """For a command every shard of a sharded cluster applies (gateway/cluster/controls.py): who applied it and
    how soon, and which shards had not yet; "" for any other answer."""
    if not isinstance(data, dict) or "shards" not in data or "control" not in data:
        return ""
    lines = [f"\ncluster control {data['control']}, applied by:"]
    for lease, s in sorted(data["shards"].items()):
        said = "ok" if s["ok"] else f"REFUSED: {s['result'].get('error', '?')}"
        lines.append(f"  {lease:<20} {s['instance']:<12} after {s['after_s']:.3f} s  {said}")
    for lease in data.get("pending", []):
        lines.append(f"  {lease:<20} NOT YET: its active instance applies it when it can (or at its takeover)")
    if data.get("note"):
        lines.append(f"note: {data['note']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- a closed stdout
SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for a command whose reader went away


class FixgwGroup(click.Group):
    """The `fixgw` group: a reader that goes away (`fixgw journal replay | head -1`) ends the command quietly,
    exit code 141 as for any Unix command killed by SIGPIPE: no traceback, no error about something else."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            _silence_stdout()
            sys.exit(SIGPIPE_EXIT)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail on the closed pipe again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # not a real file (a test's capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


# ---------------------------------------------------------------------------- progress
def progress_wanted(also_stdout_redirected: bool = False) -> bool:
    """Progress goes to stderr, and only when it is a terminal: never into a pipe or a log.

    ``also_stdout_redirected``: only when stdout is not that terminal too (a command printing as it goes,
    such as `journal replay`, would have its output and the bar mixed on one screen).
    """
    try:
        if not sys.stderr.isatty():
            return False
        return not (also_stdout_redirected and sys.stdout.isatty())
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress(label: str, length: int | None = None, *, also_stdout_redirected: bool = False
             ) -> Iterator[Callable[[int, int | None], None] | None]:
    """A callback ``report(done, total=None)`` drawing a progress bar on stderr when it is a terminal, else
    None (nothing to report to: pure modules then skip the work of reporting). The bar appears at the first
    report (its length: ``total``, else ``length``).

    Pure modules take such a callback; they never see click or the terminal.
    """
    if not progress_wanted(also_stdout_redirected):
        yield None
        return
    state: dict = {"bar": None, "at": 0}

    def report(done: int, total: int | None = None) -> None:
        bar = state["bar"]
        if bar is None:
            size = total if total is not None else length
            bar = state["bar"] = click.progressbar(length=max(size or 1, 1), label=label, file=sys.stderr,
                                                   show_pos=True)
            bar.__enter__()
        if done > state["at"]:
            bar.update(done - state["at"])
            state["at"] = done

    try:
        yield report
    finally:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)
