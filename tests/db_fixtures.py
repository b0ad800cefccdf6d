"""Database fixtures (a pytest plugin, loaded from tests/conftest.py).

- ``sqlite_url``: a SQLite file under tmp_path (no schema).
- ``postgres_url``: a fresh, empty PostgreSQL database ``fixgw_test_<hex>`` on the
  server of FIXGW_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres),
  dropped after the test. An unreachable server FAILS the test, so a CI box
  without PostgreSQL cannot pass silently; set FIXGW_TEST_SKIP_POSTGRES=1 to skip
  those tests instead.
- ``database_url``: parametrized over sqlite and postgres, schema upgraded to head.
- ``new_postgres_database()``: the same fresh database as a context manager, for fixtures of a wider scope
  (a module's running gateway).

Tests that use ``postgres_url`` (directly or through ``database_url[postgres]``)
get the ``postgres`` marker automatically, so ``-m "not postgres"`` deselects them.
"""
from __future__ import annotations

import contextlib
import os
import secrets

import pytest

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_URL_ENV = "FIXGW_TEST_PG_URL"
SKIP_PG_ENV = "FIXGW_TEST_SKIP_POSTGRES"


def pg_base_url() -> str:
    return os.environ.get(PG_URL_ENV) or DEFAULT_PG_URL


def _admin_engine():
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    u = make_url(pg_base_url())
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    return create_engine(u, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}), u


_unreachable: dict[str, str] = {}  # base URL -> reason, so a dead server costs one timeout per run


def _fail_or_skip(reason: str):
    from gateway.journal.db import safe_url

    msg = (f"cannot create a test database on PostgreSQL at {safe_url(pg_base_url())}: {reason}. "
           f"Start it, point {PG_URL_ENV} at a server where this role may CREATE DATABASE, "
           f"or set {SKIP_PG_ENV}=1 to skip the PostgreSQL tests.")
    if os.environ.get(SKIP_PG_ENV) == "1":
        pytest.skip(msg)
    pytest.fail(msg, pytrace=False)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'journal' / 'journal.db'}"


@pytest.fixture
def postgres_url():
    with new_postgres_database() as url:
        yield url


@contextlib.contextmanager
def new_postgres_database():
    """A fresh, empty database ``fixgw_test_<hex>`` (see ``postgres_url``), dropped on leaving."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    base = pg_base_url()
    if base in _unreachable:
        _fail_or_skip(_unreachable[base])
    admin, u = _admin_engine()
    name = f"fixgw_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except DBAPIError as exc:
        admin.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        if exc.connection_invalidated or "connect" in reason.lower():
            _unreachable[base] = reason
        _fail_or_skip(reason)
    try:
        yield u.set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            with admin.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        finally:
            admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str:
    from gateway.journal.db import upgrade

    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    upgrade(url)
    return url


def pytest_collection_modifyitems(config, items):  # noqa: ARG001
    for item in items:
        if "postgres_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture
def writer_factory():
    """Make JournalWriters that are stopped at the end of the test."""
    from gateway.journal.writer import JournalWriter

    made: list = []

    def make(url, **kw):
        w = JournalWriter(url, **kw)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop(timeout=5)
