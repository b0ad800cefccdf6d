"""`fixgw journal ...`: check and read the message journal.

    fixgw journal verify -c gateway.cfg
    fixgw journal replay -c gateway.cfg [--session S] [--direction I|O] [--since ISO] [--until ISO]
                         [--msg-type 8 ...] [--cl-ord-id X] [--order-id Y] [--format raw|text|json] [--soh]
    fixgw journal replay -c gateway.cfg --to-session DC44 [the same filters]

verify exits 0 when the hash chain is intact, 1 when it found tampering (it names
the first bad record), 2 on a usage, configuration, key or database error. replay
exits 0, or 2 on an error. Errors are one line; passwords are masked. A keyed
journal needs FIXGW_JOURNAL_HMAC_KEY (see gateway/journal/verify.py).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import click

from gateway.cli.common import CONFIG_OPTION, JSON, CommandError, db_reason, emit, load, progress


def _database_url(config_path: str) -> str:
    return load(config_path).journal.database_url


def _journal_session(cfg, engine, value: str) -> str:
    """--session's value (a name or a SessionID) as the journal's session_id; an unknown one is an error."""
    from gateway.admin.names import UnknownName, journal_session_id
    from gateway.journal.replay import has_session, session_ids

    try:
        return journal_session_id(cfg, value, lambda sid: has_session(engine, sid), lambda: session_ids(engine))
    except UnknownName as exc:
        raise CommandError(str(exc)) from None


@contextmanager
def _open(url: str, config_path: str):
    """An engine on the journal at the schema this fixgw needs; every failure as a CommandError."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    from gateway.journal.db import SchemaOutOfDate, check_schema, make_engine, safe_url

    where = safe_url(url)
    try:
        engine = make_engine(url)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise CommandError(f"invalid journal database URL {where}: {db_reason(exc)}") from None
    except (ValueError, OSError) as exc:
        raise CommandError(f"cannot open the journal database {where}: {db_reason(exc)}") from None
    try:
        try:
            check_schema(engine, config_path)
        except SchemaOutOfDate as exc:
            raise CommandError(str(exc)) from None
        except (SQLAlchemyError, OSError) as exc:
            raise CommandError(f"cannot connect to the journal database {where}: {db_reason(exc)}") from None
        try:
            yield engine
        except BrokenPipeError:  # our stdout closed (`| head`): not the database's failure
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise CommandError(
                f"reading the journal database {where} failed: {exc.__class__.__name__}: {db_reason(exc)}") from None
    finally:
        engine.dispose()


@click.group()
def journal() -> None:
    """The message journal: verify its hash chain, replay messages."""


def _echo_chains(chains: dict, last: str) -> None:
    """One line per hash chain of the journal (a sharded cluster's): its rows checked, its last row and hash."""
    for name, c in sorted(chains.items()):
        end = "none" if c.last_id is None else f"id {c.last_id}, chain hash {c.last_hash.hex()}"
        click.echo(f"chain {name or repr('')}: {c.checked} rows; {last}: {end}")


@journal.command()
@CONFIG_OPTION
@JSON
def verify(config_path: str, as_json: bool) -> None:
    """Check the journal's hash chain; name the first altered, removed or inserted record.

    Exit code 0: intact; 1: tampering found; 2: usage, configuration, key or database error.
    """
    from gateway.journal.db import safe_url
    from gateway.journal.verify import ChainKeyError, key_from_env, verify_database

    url = _database_url(config_path)
    if not as_json:
        click.echo(f"journal database: {safe_url(url)}")
    with _open(url, config_path) as engine, progress("verifying") as report:
        try:
            result = verify_database(engine, key_from_env(), progress=report)
        except ChainKeyError as exc:
            raise CommandError(str(exc)) from None
    if as_json:
        p = result.problem
        click.echo(json.dumps({
            "database": safe_url(url), "intact": result.ok, "mode": result.mode, "checked": result.checked,
            "legacy": result.legacy, "pruned_upto": result.pruned_upto, "last_id": result.last_id,
            "last_hash": result.last_hash.hex() if result.last_hash is not None else None,
            "chains": {name: {"checked": c.checked, "last_id": c.last_id,
                              "last_hash": c.last_hash.hex() if c.last_hash is not None else None}
                       for name, c in result.chains.items()},
            "problem": None if p is None else {"id": p.id, "chain": p.chain, "session_id": p.session_id,
                                               "seq_num": p.seq_num, "kind": p.kind, "what": p.what}}, indent=2))
        if p is not None:
            click.get_current_context().exit(1)
        return
    mode = "keyed, HMAC-SHA256" if result.mode == "hmac-sha256" else "unkeyed, SHA-256"
    if result.pruned_upto is not None:
        click.echo(f"rows up to id {result.pruned_upto} were pruned by retention; the chain is checked from "
                   "that checkpoint")
    if result.legacy:
        click.echo(f"{result.legacy} rows written before the hash chain existed (schema 0001): not covered")
    p = result.problem
    several = len(result.chains) > 1
    if p is None:
        chains = f"{len(result.chains)} hash chains" if several else "hash chain"
        click.echo(f"OK: {result.checked} rows, {chains} intact ({mode})")
        if several:
            _echo_chains(result.chains, "last row")
        elif result.last_id is not None:
            click.echo(f"last row: id {result.last_id}, chain hash {result.last_hash.hex()}")
        return
    seq = "-" if p.seq_num is None else p.seq_num
    on = f"chain {p.chain}, " if p.chain else ""
    if p.kind == "truncated":
        click.echo(f"TAMPERED: {on}{p.what}")
    else:
        click.echo(f"TAMPERED: record id {p.id} ({on}session {p.session_id}, seq {seq}): {p.what}")
    click.echo(f"{result.checked} rows before it are intact ({mode})")
    if several:
        _echo_chains(result.chains, "last intact row")
    click.get_current_context().exit(1)


@journal.command()
@CONFIG_OPTION
@click.option("--older-than-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="prune rows older than this many days (default: [journal] retention_days)")
@click.option("--archive-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="write the pruned rows there first, gzip'd JSON lines (default: [journal] archive_dir)")
@click.option("--dry-run", is_flag=True, help="say what would be pruned; change nothing")
@JSON
def prune(config_path: str, older_than_days: float | None, archive_dir: Path | None, dry_run: bool,
          as_json: bool) -> None:
    """Archive (optionally) and delete journal rows older than an age; `verify` keeps working.

    The running gateway does the same every day when [journal] retention_days is set.
    """
    from datetime import timedelta

    from gateway.journal.retention import prune as do_prune

    cfg = load(config_path)
    days = older_than_days if older_than_days is not None else cfg.journal.retention_days
    if not days:
        raise CommandError("give --older-than-days N, or set [journal] retention_days in the configuration")
    archive = archive_dir if archive_dir is not None else cfg.journal.archive_dir
    url = cfg.journal.database_url
    with _open(url, config_path) as engine, progress("pruning") as report:
        result = do_prune(engine, timedelta(days=days), archive_dir=archive, dry_run=dry_run, progress=report)
    emit({"dry_run": dry_run, "pruned": result.pruned, "events_pruned": result.events_pruned,
          "upto_id": result.upto_id, "archive": None if result.archive is None else str(result.archive),
          "held_back_by": result.held_back_by, "cutoff": result.cutoff.isoformat()},
         as_json, lambda _: ("would have " if dry_run else "") + result.describe())


@journal.command()
@CONFIG_OPTION
@click.option("--session", "session_id", default=None,
              help='a session as `fixgw sessions list` names it (CLIENT44), or its quickfix SessionID '
                   '("FIX.4.4:FIXGW->CLIENT44"), also one no longer configured')
@click.option("--direction", type=click.Choice(["I", "O"]), default=None, help="I = received, O = sent")
@click.option("--since", default=None, help="from this ISO 8601 time, inclusive (UTC unless a zone is given)")
@click.option("--until", default=None, help="up to this ISO 8601 time, exclusive")
@click.option("--msg-type", "msg_types", multiple=True, help="MsgType (35); repeat for several")
@click.option("--cl-ord-id", default=None, help="ClOrdID (11)")
@click.option("--order-id", default=None, help="OrderID (37)")
@click.option("--format", "fmt", type=click.Choice(["raw", "text", "json"]), default="raw", show_default=True)
@click.option("--soh", is_flag=True, help="raw format: keep the real SOH separator instead of |")
@click.option("--to-session", "to_session", default=None, metavar="NAME",
              help="instead of printing, send the selected ExecutionReports to drop-copy session NAME of the "
                   "running gateway, marked PossResend (97=Y)")
@click.option("--json", "as_json", is_flag=True,
              help="JSON for scripts: the messages as JSON lines (--format json), or --to-session's counts")
def replay(config_path: str, session_id: str | None, direction: str | None, since: str | None,
           until: str | None, msg_types: tuple[str, ...], cl_ord_id: str | None, order_id: str | None,
           fmt: str, soh: bool, to_session: str | None, as_json: bool) -> None:
    """Print journal messages in id order, filtered, as raw FIX, text or JSON lines.

    With --to-session NAME, the running gateway sends the selected ExecutionReports that are in
    drop-copy session NAME's scope to it again, in its FIX version, with PossResend (97=Y).
    """
    from gateway.journal.replay import Filters, formatter, id_range, iter_replay, parse_time
    from gateway.journal.progress import with_progress

    try:
        since_us = parse_time(since) if since is not None else None
        until_us = parse_time(until) if until is not None else None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if as_json:
        if fmt == "text" or soh:
            raise CommandError("--json prints JSON: it cannot be combined with --format text or --soh")
        fmt = "json" if to_session is None else fmt
    if to_session is not None:
        if fmt != "raw" or soh:
            raise CommandError("--format and --soh choose how messages are printed; --to-session sends "
                                      "them instead: give one or the other")
        _replay_to_session(config_path, to_session, {
            "session": session_id, "direction": direction, "since_us": since_us, "until_us": until_us,
            "msg_types": list(msg_types), "cl_ord_id": cl_ord_id, "order_id": order_id}, as_json)
        return
    out = formatter(fmt, soh)
    cfg = load(config_path)
    with _open(cfg.journal.database_url, config_path) as engine:
        if session_id is not None:
            session_id = _journal_session(cfg, engine, session_id)
        filters = Filters(session_id, direction, since_us, until_us, msg_types, cl_ord_id, order_id)
        rows = iter_replay(engine, filters)
        try:
            # progress only when the messages go elsewhere (a file, a pipe): never mixed with them on a screen
            with progress("replaying", also_stdout_redirected=True) as report:
                for row in (with_progress(rows, *id_range(engine), report) if report else rows):
                    click.echo(out(row))
        finally:
            rows.close()


# A long replay (a day of reports) is one admin request; the gateway streams the journal meanwhile.
REPLAY_TIMEOUT_S = 3600.0


def _replay_to_session(config_path: str, name: str, filters: dict, as_json: bool = False) -> None:
    from urllib.parse import quote

    from gateway.cli.admin import AdminClient
    from gateway.cli.shards import Route

    if any(t != "8" for t in filters["msg_types"]):
        raise CommandError("--to-session sends ExecutionReports only: use --msg-type 8 or leave it out")
    try:
        data = AdminClient(config_path, Route(session=name)).call(
            "POST", f"/admin/dropcopy/{quote(name, safe='')}/replay", filters, timeout=REPLAY_TIMEOUT_S)
    except click.ClickException as exc:
        raise CommandError(exc.message) from None
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    sent, selected = data.get("sent", 0), data.get("selected", 0)
    click.echo(f"sent {sent} ExecutionReport(s) to drop-copy session {name} with PossResend (97=Y) "
               f"({selected} selected)")
    skipped = [(data.get(k, 0), why) for k, why in (
        ("out_of_scope", "outside the session's scope"),
        ("not_a_source", "not sent to a client or received from a venue (e.g. earlier drop copies)"),
        ("untranslatable", "with no valid form in the session's FIX version (see the gateway log)"))]
    for n, why in skipped:
        if n:
            click.echo(f"  {n} not sent: {why}")
