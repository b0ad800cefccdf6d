"""`fixgw credentials ...`: session passwords, stored as scrypt hashes in <data_dir>/credentials.json.

    fixgw credentials set SESSION [--password-stdin]   prompts twice (no echo), stores the hash
    fixgw credentials check SESSION [--password-stdin] prompts once, says OK (exit 0) or wrong (exit 1)
    fixgw credentials list [--json]                     sessions with a password (never a hash)
    fixgw credentials delete SESSION                    removes a session's password

They work on the files directly (a running gateway picks a change up at the
session's next logon). Run them as the gateway's user: the file is mode 0600.
Exit codes: 0 done / OK, 1 wrong password or refused, 2 usage or configuration error.
"""
from __future__ import annotations

import json
import sys

import click

from gateway.cli.common import CONFIG_OPTION, JSON, CommandError, load

STDIN_OPTION = click.option("--password-stdin", is_flag=True,
                            help="read the password from the first line of standard input (for scripts)")


def _setup(config_path: str, session: str | None, stored_ok: bool = False):
    """The configuration, the credential store and SESSION's name (given by name or full SessionID).

    An unknown SESSION is an error listing the client and drop-copy sessions; with ``stored_ok``, one that
    still has a stored password (a session since removed from the configuration) is taken as it is.
    """
    from gateway.admin.names import UnknownName, session_name
    from gateway.security.credentials import CredentialsError, CredentialStore

    cfg = load(config_path)
    store = CredentialStore(cfg.data_dir)
    try:
        store.check()
    except CredentialsError as exc:
        raise CommandError(str(exc)) from None
    if session is not None:
        try:
            session = session_name(cfg, session, ("client", "dropcopy"), kind="session")
        except UnknownName as exc:
            if not (stored_ok and store.has(session)):
                raise CommandError(str(exc).replace(
                    " (known:", f" in {config_path} (client and drop-copy sessions:", 1)) from None
    return cfg, store, session


def _sessions(cfg) -> dict:
    """The sessions a password can be set for: clients and drop-copy receivers."""
    return {**cfg.clients, **cfg.dropcopy.sessions}


def _stdin_password() -> str:
    line = sys.stdin.readline()
    if not line:
        raise CommandError("--password-stdin: standard input is empty")
    return line.rstrip("\r\n")


@click.group()
def credentials() -> None:
    """Session passwords (Username 553 / Password 554 logons), stored only as scrypt hashes."""


@credentials.command("set")
@CONFIG_OPTION
@click.argument("session")
@STDIN_OPTION
def set_password(config_path: str, session: str, password_stdin: bool) -> None:
    """Set SESSION's password: prompted twice without echo (or --password-stdin); only its hash is stored."""
    from gateway.security.credentials import CredentialsError, password_problem

    cfg, store, session = _setup(config_path, session)
    if password_stdin:
        password = _stdin_password()
    else:
        password = click.prompt(f"New password for {session}", hide_input=True,
                                confirmation_prompt="Repeat the password", value_proc=str)
    problem = password_problem(password)
    if problem is not None:
        raise click.ClickException(f"password not set: {problem}")
    try:
        store.set(session, password)
    except CredentialsError as exc:
        raise click.ClickException(f"password not set: {exc}") from None
    click.echo(f"password set for {session} (stored as a scrypt hash in {store.path}); "
               "it applies from the session's next logon")
    c = _sessions(cfg)[session]
    if not c.password_required:
        click.echo(f"note: {session} does not have password_required = true in {config_path}, so its logons are "
                   "not checked against it yet")
    else:
        click.echo(f"{session} logs on with Username (553) = {c.expected_username(session)} and this password "
                   "in Password (554)")


@credentials.command("check")
@CONFIG_OPTION
@click.argument("session")
@STDIN_OPTION
def check_password(config_path: str, session: str, password_stdin: bool) -> None:
    """Say whether a password is SESSION's (exit 0: OK, 1: wrong)."""
    _, store, session = _setup(config_path, session)
    if not store.has(session):
        raise click.ClickException(f"no password is set for {session}; set one with: fixgw credentials set {session}")
    password = _stdin_password() if password_stdin else click.prompt(f"Password for {session}", hide_input=True,
                                                                     value_proc=str)
    if store.verify(session, password):
        click.echo(f"OK: that is {session}'s password")
    else:
        click.echo(f"wrong: that is not {session}'s password", err=True)
        sys.exit(1)


@credentials.command("list")
@CONFIG_OPTION
@JSON
def list_passwords(config_path: str, as_json: bool) -> None:
    """Client and drop-copy sessions: whether they require a password and whether one is set (never the hashes)."""
    cfg, store, _ = _setup(config_path, None)
    stored = {e["session"]: e for e in store.list()}
    if as_json:
        sessions = _sessions(cfg)
        click.echo(json.dumps({"sessions": [
            {"session": name, "configured": name in sessions,
             "password_required": bool(sessions[name].password_required) if name in sessions else None,
             "username": sessions[name].expected_username(name) if name in sessions and
             sessions[name].password_required else None,
             "password_set": name in stored, "set_at": stored[name]["set_at"] if name in stored else None}
            for name in [*sessions, *(n for n in stored if n not in sessions)]]}, indent=2))
        return
    rows = []
    for name, c in _sessions(cfg).items():
        e = stored.pop(name, None)
        rows.append((name, "yes" if c.password_required else "no", c.expected_username(name)
                     if c.password_required else "-", f"set {e['set_at']} (scrypt n={e['n']} r={e['r']} p={e['p']})"
                     if e else ("MISSING: logons refused" if c.password_required else "-")))
    for name, e in stored.items():
        rows.append((name, "-", "-", f"set {e['set_at']} (no such session in {config_path})"))
    header = ("SESSION", "REQUIRED", "USERNAME", "PASSWORD")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for r in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())


@credentials.command("delete")
@CONFIG_OPTION
@click.argument("session")
def delete_password(config_path: str, session: str) -> None:
    """Remove SESSION's password (a session with password_required is then refused until one is set).

    SESSION is a configured client or drop-copy session, or one removed from the configuration that still has
    a password stored (`fixgw credentials list` shows those).
    """
    from gateway.security.credentials import CredentialsError

    _, store, session = _setup(config_path, session, stored_ok=True)
    try:
        found = store.delete(session)
    except CredentialsError as exc:
        raise CommandError(str(exc)) from None
    if not found:
        raise click.ClickException(f"no password is set for {session}")
    click.echo(f"password of {session} deleted")
