"""Alembic environment for the journal database.

Our code runs Alembic programmatically (gateway.journal.db.upgrade / downgrade) and hands
over an open Connection in ``config.attributes["connection"]``. A URL works too,
from ``config.attributes["url"]`` or the ``sqlalchemy.url`` option (e.g. when the
alembic CLI is pointed at this directory with an ini file); the engine is then
made with ``gateway.journal.db.make_engine`` so SQLite gets the same connection setup.

On PostgreSQL every migration transaction sets ``lock_timeout`` and
``statement_timeout`` (overridable with FIXGW_MIGRATION_LOCK_TIMEOUT and
FIXGW_MIGRATION_STATEMENT_TIMEOUT, PostgreSQL interval syntax), so a migration
queued behind a running gateway's locks fails fast instead of blocking every
writer behind it. On SQLite, ``render_as_batch`` lets later ALTERs recreate tables.
"""
from __future__ import annotations

import os
from contextlib import nullcontext
from logging.config import fileConfig

from alembic import context

from gateway.journal.db import make_engine, metadata

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata

LOCK_TIMEOUT = os.environ.get("FIXGW_MIGRATION_LOCK_TIMEOUT", "10s")
STATEMENT_TIMEOUT = os.environ.get("FIXGW_MIGRATION_STATEMENT_TIMEOUT", "10min")


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("migrations/env.py: no connection or database URL given "
                           "(config.attributes['connection'] / ['url'] or sqlalchemy.url)")
    return url


def _configure_opts(dialect_name: str) -> dict:
    return {
        "target_metadata": target_metadata,
        "render_as_batch": dialect_name == "sqlite",
        "compare_type": True,
    }


def run_migrations_offline() -> None:
    url = _url()
    from sqlalchemy.engine import make_url

    context.configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"},
                      **_configure_opts(make_url(url).get_backend_name()))
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection) -> None:
    dialect = connection.dialect.name
    outer = nullcontext() if connection.in_transaction() else connection.begin()
    with outer:
        if dialect == "postgresql":
            # is_local = true: the settings end with this transaction.
            connection.exec_driver_sql("SELECT set_config('lock_timeout', %(v)s, true)", {"v": LOCK_TIMEOUT})
            connection.exec_driver_sql("SELECT set_config('statement_timeout', %(v)s, true)",
                                       {"v": STATEMENT_TIMEOUT})
        context.configure(connection=connection, **_configure_opts(dialect))
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _run_on(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
