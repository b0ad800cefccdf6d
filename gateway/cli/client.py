"""`fixgw client`: a FIX client in the box, for sending orders by hand or from a script.

    fixgw client CLIENT44 buy 100 AAPL --limit 190      one command, then log out
    fixgw client CLIENT44                               a prompt (stdin is a terminal)
    fixgw client CLIENT44 --file cmds.txt               a file of commands (or piped on stdin)

It logs on as one of the gateway's client sessions, with the CompIDs, FIX version and port the gateway's
configuration gives it, through the gateway's own session code (``sessions.client.FixClient``, quickfix),
so it is also the reference for how a client connects. This module is the command: its options, the
password, the commands read and checked before anything is sent. The rest, one job each:

- gateway/cli/client_session.py: the session (logon, TLS, the thread showing every message as it arrives);
- gateway/cli/client_conversation.py: one command at a time sent, and its answer waited for (``--timeout``);
- gateway/cli/client_watch.py: a drop-copy session watched (``--count``, ``--for``);
- the pure language: the grammar (client_script.py), what answers a request (client_answers.py) and how
  reports read (client_reports.py).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from gateway.cli import client_script as cs
from gateway.cli.client_conversation import OrderConversation
from gateway.cli.client_session import ClientSession, TlsOptions
from gateway.cli.client_watch import DropCopyWatch
from gateway.cli.common import CONFIG_OPTION as CONFIG
from gateway.cli.common import JSON
from gateway.config import ConfigError, GatewayConfig, load_config

PASSWORD_ENV = "FIXGW_CLIENT_PASSWORD"


class CommandFileError(click.ClickException):
    exit_code = cs.EXIT_USAGE


@click.command("client", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("action", nargs=-1, type=click.UNPROCESSED)
@CONFIG
@click.option("-f", "--file", "command_file", type=click.File("r"), default=None,
              help="run the commands in this file, one per line ('-': stdin)")
@click.option("--host", default="127.0.0.1", show_default=True, help="the gateway's host")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="the gateway's port (default: the session's port in the configuration)")
@click.option("--account", default=None,
              help="Account (1) for orders that name none (default: the session's first allowed account, if "
                   "it has a list)")
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
              help="seconds to wait for the logon and for each answer")
@click.option("--linger", type=click.FloatRange(0, 3600), default=0.5, show_default=True,
              help="after the last command, keep showing reports this long while an order of the run is open")
@click.option("--tls-ca", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TLS sessions: CA certificates (PEM) the gateway's certificate must chain to (default: the "
                   "system's)")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TLS sessions: our client certificate (PEM), for a port that asks for one")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TLS sessions: its private key (PEM, unencrypted, readable by you only)")
@click.option("--tls-server-name", default=None, help="TLS sessions: the name the gateway's certificate must "
                                                      "carry (default: --host)")
@click.option("--password-stdin", is_flag=True,
              help=f"read the session's password from the first line of stdin (or set {PASSWORD_ENV})")
@click.option("--count", type=click.IntRange(1), default=None,
              help="drop-copy sessions: log out after this many ExecutionReports of events since the start (the "
                   "history re-sent at logon is shown, not counted)")
@click.option("--for", "watch_s", type=click.FloatRange(0.1, 86400), default=None,
              help="drop-copy sessions: log out after this many seconds (default: Ctrl-C, or --count)")
@JSON
def client(name: str, action: tuple[str, ...], config_path: str, command_file, host: str, port: int | None,
           account: str | None, timeout: float, linger: float, tls_ca: Path | None, tls_cert: Path | None,
           tls_key: Path | None, tls_server_name: str | None, password_stdin: bool, count: int | None,
           watch_s: float | None, as_json: bool) -> None:
    """Log on as client session NAME and send orders: one ACTION, a prompt, or a file of commands.

    NAME may also be a drop-copy session: the client then only watches, showing every copy as it arrives."""
    cfg = _load(config_path)
    session = cfg.clients.get(name)
    if session is None and name in cfg.dropcopy.sessions:
        if action or command_file is not None:
            raise click.UsageError(f"{name} is a drop-copy session: it only receives copies (no ACTION, no --file)")
        _watch(cfg, name, host, port, timeout, count, watch_s, password_stdin, as_json)
    if count is not None or watch_s is not None:
        raise click.UsageError("--count and --for are for watching a drop-copy session")
    if session is None:
        known = ", ".join(cfg.clients) or "none"
        dropcopy = ", ".join(cfg.dropcopy.sessions) or "none"
        raise click.ClickException(f"{name} is not a client or drop-copy session in {config_path} (client "
                                   f"sessions: {known}; drop-copy sessions: {dropcopy})")
    tls = None
    if session.tls is not None:
        tls = TlsOptions(ca=tls_ca, cert=tls_cert, key=tls_key, server_name=tls_server_name or host)
    elif tls_ca or tls_cert or tls_key or tls_server_name:
        raise click.UsageError(f"{name} is a plaintext session (no tls in {config_path}): drop the --tls-* options")
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if action and command_file is not None:
        raise click.UsageError("give either an ACTION or --file, not both")

    password = _password(name, session, password_stdin)
    interactive = False
    if action:
        intents = [(None, _one_shot(action, session.fix_version))]
    elif command_file is not None:
        intents = _read_commands(command_file, getattr(command_file, "name", "file"), session.fix_version)
    elif sys.stdin.isatty():
        intents, interactive = None, True
    else:
        intents = _read_commands(sys.stdin, "stdin", session.fix_version)

    logon_fields = {}
    if password is not None:
        logon_fields = {553: session.expected_username(name), 554: password}
    default_account = account or (session.accounts[0] if session.accounts else None)
    fix = ClientSession(cfg, name, host, port or cfg.client_port(name), logon_fields, timeout, as_json, tls)
    conversation = OrderConversation(fix, default_account, timeout, linger)
    code = fix.run(lambda: conversation.run(intents, interactive))
    sys.exit(code)


client.help = (
    f"{client.help}\n\nWithout ACTION or --file: a prompt when stdin is a terminal, else commands from stdin."
    "\n\n\b\nACTION, or one line of a file or the prompt (# starts a comment):\n"
    + "\n".join(cs.HELP.splitlines()[1:])
    + "\n\nExit status: 0 answered and accepted; 1 no logon (refused: the Logout's text is shown) or bad "
    "configuration; 2 a command that does not parse; 3 refused (Rejected, OrderCancelReject, Reject, "
    "BusinessMessageReject, unknown order); 4 no answer within --timeout; 5 the session ended early. With "
    "several commands: the highest of theirs.")


def _watch(cfg: GatewayConfig, name: str, host: str, port: int | None, timeout: float, count: int | None,
           watch_s: float | None, password_stdin: bool, as_json: bool) -> None:
    """Log on as drop-copy session NAME and show the copies as they arrive, as a broker's receiver would.

    Its Logon resets the sequence numbers (141=Y), so the gateway first re-sends from its journal what the
    session has not acknowledged (PossResend, 97=Y): shown, and counted only if its event happened after
    the watch started (TransactTime, 60), as copies held for the reset did. Exit 0 after --count such reports,
    or at --for or Ctrl-C; 4 when --for ends before --count was reached."""
    session = cfg.dropcopy.sessions[name]
    password = _password(name, session, password_stdin)
    logon_fields = {553: session.expected_username(name), 554: password} if password is not None else {}
    fix = ClientSession(cfg, name, host, port or cfg.dropcopy.port, logon_fields, timeout, as_json,
                        version=session.fix_version)
    watch = DropCopyWatch(fix)
    sys.exit(fix.run(lambda: watch.run(count, watch_s)))


def _load(config_path: str) -> GatewayConfig:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _one_shot(action: tuple[str, ...], version: str) -> cs.Intent:
    try:
        intent = cs.check_version(cs.parse_words(action), version)
    except cs.CommandError as exc:
        raise click.UsageError(str(exc)) from None
    if isinstance(intent, (cs.Cancel, cs.Replace, cs.Status)) and (intent.symbol is None or intent.side is None):
        what = {cs.Cancel: "cancel", cs.Replace: "replace", cs.Status: "status"}[type(intent)]
        raise click.UsageError(f"{what} of an order sent by an earlier run needs --symbol and --side (FIX "
                               "requires them); in a file or at the prompt, orders sent earlier in the run "
                               "need nothing more")
    if isinstance(intent, cs.Replace) and intent.qty is None:
        raise click.UsageError("replace of an order sent by an earlier run needs --qty (FIX requires OrderQty)")
    if isinstance(intent, (cs.Wait, cs.Sleep, cs.Help, cs.Quit)):
        raise click.UsageError(f"{action[0]} is for a file of commands or the prompt")
    return intent


def _read_commands(stream, source: str, version: str) -> list[tuple[int, cs.Intent]]:
    """Every command of a file, checked before anything is sent: a line that does not parse stops the run."""
    intents = []
    for number, line in enumerate(stream, 1):
        try:
            intent = cs.check_version(cs.parse_line(line), version)
        except cs.CommandError as exc:
            raise CommandFileError(f"{source}:{number}: {exc}") from None
        if intent is not None:
            intents.append((number, intent))
    return intents


def _password(name: str, session, password_stdin: bool) -> str | None:
    """The session's password (never from the command line): --password-stdin, FIXGW_CLIENT_PASSWORD, the
    demo's own variable (demo_password_env), else asked for on a terminal."""
    if not session.password_required:
        if password_stdin:
            raise click.UsageError(f"{name} does not take a password (password_required is not set)")
        return None
    if password_stdin:
        if sys.stdin.isatty():
            return click.prompt(f"password for {name}", hide_input=True)
        line = sys.stdin.readline()
        if not line.strip():
            raise click.ClickException("--password-stdin: the first line of stdin is empty")
        return line.rstrip("\r\n")
    for var in (PASSWORD_ENV, getattr(session, "demo_password_env", None)):
        if var and os.environ.get(var):
            return os.environ[var]
    if sys.stdin.isatty():
        return click.prompt(f"password for {name}", hide_input=True)
    raise click.ClickException(f"{name} needs a password: --password-stdin, or set {PASSWORD_ENV}")
