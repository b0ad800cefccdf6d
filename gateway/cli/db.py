"""`fixgw db ...`: the journal database's schema.

    fixgw db upgrade -c gateway.cfg   # migrate to the newest revision
    fixgw db current -c gateway.cfg   # show the revision; exit 1 if not up to date

The database URL is ``[journal] database_url`` of the configuration, or the
FIXGW_DATABASE_URL environment variable when set. Passwords are never printed.
Exit codes: 0 done / up to date; 1 not up to date (``current``); 2 a usage,
configuration or database error.
"""
from __future__ import annotations

import json
from contextlib import contextmanager

import click

from gateway.cli.common import CONFIG_OPTION, JSON, CommandError, db_reason, emit, load, progress



def _database_url(config_path: str) -> str:
    return load(config_path).journal.database_url


def _connect(url: str) -> None:
    """Open and close one connection, so connection problems get their own clear message."""
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    from gateway.journal.db import make_engine, safe_url

    try:
        engine = make_engine(url)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise CommandError(f"invalid journal database URL {safe_url(url)}: {db_reason(exc)}") from None
    except ValueError as exc:  # make_engine's own message names the URL
        raise CommandError(str(exc)) from None
    except OSError as exc:  # the SQLite file's directory could not be created
        raise CommandError(f"cannot connect to the journal database {safe_url(url)}: "
                                   f"cannot create {exc.filename}: {exc.strerror}") from None
    try:
        with engine.connect():
            pass
    except (DBAPIError, OSError) as exc:
        raise CommandError(f"cannot connect to the journal database {safe_url(url)}: {db_reason(exc)}") from None
    finally:
        engine.dispose()


@contextmanager
def _database_errors(url: str, doing: str):
    """Anything else that goes wrong with the database, as a one-line error (exit code 2)."""
    from alembic.util import CommandError as AlembicError
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.journal.db import safe_url

    try:
        yield
    except BrokenPipeError:  # our stdout closed (`| head`): not the database's failure
        raise
    except (SQLAlchemyError, AlembicError, OSError) as exc:
        raise CommandError(
            f"{doing} the journal database {safe_url(url)} failed: {exc.__class__.__name__}: {db_reason(exc)}"
        ) from None


@click.group()
def db() -> None:
    """The journal database: schema migrations."""


@db.command()
@CONFIG_OPTION
@JSON
def upgrade(config_path: str, as_json: bool) -> None:
    """Migrate the journal database to the newest schema revision."""
    from gateway.journal import db as gdb
    url = _database_url(config_path)
    say = (lambda text: None) if as_json else click.echo
    say(f"journal database: {gdb.safe_url(url)}")
    _connect(url)
    with _database_errors(url, "migrating"):
        before = gdb.current_revision(url)
        say(f"revision before: {before or 'none (empty database)'}")
        steps = gdb.pending_revisions(before)
        with progress("migrating", len(steps)) as report:  # one revision at a time, on a terminal only
            for done, revision in enumerate(steps, 1):
                gdb.upgrade(url, revision)
                if report:
                    report(done)
        after = gdb.current_revision(url)
    emit({"database": gdb.safe_url(url), "before": before, "after": after}, as_json,
         lambda _: f"revision after:  {after}" + (" (already up to date)" if before == after else ""))


@db.command()
@CONFIG_OPTION
@JSON
def current(config_path: str, as_json: bool) -> None:
    """Show the journal database's schema revision; exit code 1 unless it is up to date."""
    from gateway.journal import db as gdb
    url = _database_url(config_path)
    _connect(url)
    with _database_errors(url, "reading"):
        cur = gdb.current_revision(url)
    head = gdb.head_revision()
    if as_json:
        click.echo(json.dumps({"database": gdb.safe_url(url), "current": cur, "head": head,
                               "up_to_date": cur == head}, indent=2))
        if cur != head:
            click.get_current_context().exit(1)
        return
    click.echo(f"journal database: {gdb.safe_url(url)}")
    click.echo(f"current revision: {cur or 'none (empty database)'}")
    click.echo(f"head revision:    {head}")
    if cur == head:
        click.echo("up to date")
        return
    click.echo(f"NOT up to date: run `fixgw db upgrade -c {config_path}`")
    click.get_current_context().exit(1)
