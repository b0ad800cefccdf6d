"""Journal retention: old rows archived and pruned, `verify` still proves the rest, drop copies hold it back."""
from __future__ import annotations

import gzip
import json
from collections import namedtuple
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from gateway.journal import db
from gateway.journal import writer as journal_mod
from gateway.journal.queries import count_messages
from gateway.journal.verify import verify_database, verify_rows
from gateway.journal.retention import prune

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    db.upgrade(url)
    return url


def fill(url: str, writer_factory, monkeypatch, old: int = 100, young: int = 50, now: datetime = NOW) -> None:
    """``old`` messages ten days before ``now``, then ``young`` one day before."""
    clock = {"ns": int((now - timedelta(days=10)).timestamp() * 1e9)}
    monkeypatch.setattr(journal_mod, "_time_ns", lambda: clock["ns"])
    w = writer_factory(url)
    w.start()
    for i in range(1, old + young + 1):
        if i == old + 1:
            assert w.flush(10)
            clock["ns"] = int((now - timedelta(days=1)).timestamp() * 1e9)
        w.record("FIX.4.4:GW->C", "I", f"8=FIX.4.4\x019=5\x0135=D\x0134={i}\x0111=C{i}\x0110=000\x01")
    assert w.flush(10)


def verify(url: str):
    engine = db.make_engine(url)
    try:
        return verify_database(engine)
    finally:
        engine.dispose()


def test_old_rows_are_archived_and_pruned_and_verify_still_proves_the_rest(database_url, writer_factory,
                                                                           monkeypatch, tmp_path):
    fill(database_url, writer_factory, monkeypatch)
    result = prune(database_url, timedelta(days=5), archive_dir=tmp_path / "archive", now=NOW, chunk=30)
    assert result.pruned == 100 and result.held_back_by is None
    assert count_messages(database_url) == 50
    checked = verify(database_url)
    assert checked.ok and checked.checked == 50 and checked.pruned_upto == result.upto_id

    # the archive holds every pruned row, and its own chain verifies from the genesis
    with gzip.open(result.archive, "rt") as f:
        rows = [json.loads(line) for line in f]
    assert [int(r["raw"].split("\x0134=")[1].split("\x01")[0]) for r in rows] == list(range(1, 101))
    Row = namedtuple("Row", "id session_id direction seq_num msg_type ts_us raw chain_hash")
    archived = [Row(r["id"], r["session_id"], r["direction"], r["seq_num"], r["msg_type"], r["ts_us"], r["raw"],
                    bytes.fromhex(r["chain_hash"])) for r in rows]
    assert verify_rows(archived).ok

    again = prune(database_url, timedelta(days=5), now=NOW)  # nothing left that is old enough
    assert again.pruned == 0 and again.upto_id == result.upto_id


@pytest.mark.parametrize("tamper, kind", [
    ("DELETE FROM journal_messages WHERE id = (SELECT min(id) FROM journal_messages)", "removed"),
    ("UPDATE journal_messages SET raw = raw || 'x' WHERE id = (SELECT max(id) FROM journal_messages)", "altered"),
])
def test_tampering_after_pruning_is_still_found(sqlite_url, writer_factory, monkeypatch, tamper, kind):
    db.upgrade(sqlite_url)
    fill(sqlite_url, writer_factory, monkeypatch)
    prune(sqlite_url, timedelta(days=5), now=NOW)
    engine = db.make_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(tamper))
    finally:
        engine.dispose()
    result = verify(sqlite_url)
    assert not result.ok and result.problem.kind == kind


def test_a_row_put_back_below_the_checkpoint_is_reported_inserted(sqlite_url, writer_factory, monkeypatch,
                                                                 tmp_path):
    db.upgrade(sqlite_url)
    fill(sqlite_url, writer_factory, monkeypatch)
    result = prune(sqlite_url, timedelta(days=5), archive_dir=tmp_path, now=NOW)
    with gzip.open(result.archive, "rt") as f:
        first = json.loads(f.readline())
    engine = db.make_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            conn.execute(db.journal_messages.insert().values(
                id=first["id"], session_id=first["session_id"], direction=first["direction"],
                seq_num=first["seq_num"], msg_type=first["msg_type"], ts_us=first["ts_us"], raw=first["raw"],
                chain_hash=bytes.fromhex(first["chain_hash"])))
    finally:
        engine.dispose()
    checked = verify(sqlite_url)
    assert not checked.ok and checked.problem.kind == "inserted" and checked.problem.id == first["id"]


def test_a_drop_copy_receiver_that_has_not_acknowledged_holds_retention_back(sqlite_url, writer_factory,
                                                                             monkeypatch):
    db.upgrade(sqlite_url)
    fill(sqlite_url, writer_factory, monkeypatch)
    engine = db.make_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            first = conn.execute(text("SELECT min(id) FROM journal_messages")).scalar_one()
            conn.execute(db.dropcopy_state.insert().values(session="DC44", sent_id=first + 40, claimed_id=first + 40,
                                                           acked_id=first + 39, updated_us=0))
    finally:
        engine.dispose()
    result = prune(sqlite_url, timedelta(days=5), now=NOW)
    assert result.pruned == 40 and "DC44" in result.held_back_by
    assert count_messages(sqlite_url) == 110 and verify(sqlite_url).ok


def test_the_prune_command_says_what_it_would_do_then_does_it(sqlite_url, writer_factory, monkeypatch, tmp_path):
    from gateway.cli.main import main

    db.upgrade(sqlite_url)
    # the command prunes against the real clock, so the rows are dated from it
    fill(sqlite_url, writer_factory, monkeypatch, old=20, young=5, now=datetime.now(timezone.utc))
    cfg = tmp_path / "gw.cfg"
    cfg.write_text(f'data_dir = "{tmp_path / "var"}"\n[journal]\ndatabase_url = "{sqlite_url}"\n'
                   f'retention_days = 5\narchive_dir = "{tmp_path / "archive"}"\n')
    runner = CliRunner()
    dry = runner.invoke(main, ["journal", "prune", "--dry-run", "-c", str(cfg)])
    assert dry.exit_code == 0, dry.output
    assert "would have pruned 20 message row(s)" in dry.output and count_messages(sqlite_url) == 25
    done = runner.invoke(main, ["journal", "prune", "-c", str(cfg)])
    assert done.exit_code == 0 and "pruned 20 message row(s)" in done.output and "archived to" in done.output
    assert list(Path(tmp_path / "archive").glob("*.jsonl.gz"))
    verified = runner.invoke(main, ["journal", "verify", "-c", str(cfg)])
    assert verified.exit_code == 0 and "pruned by retention" in verified.output and "OK: 5 rows" in verified.output
    none = runner.invoke(main, ["journal", "prune", "-c", str(tmp_path / "gw.cfg"), "--older-than-days", "30"])
    assert "nothing older than" in none.output


def test_the_gateway_schedules_retention_daily_when_configured(tmp_path):
    from gateway.config import parse_config
    from gateway.scheduling.schedule import build_scheduler, describe

    cfg = parse_config('[journal]\nretention_days = 30\nretention_time = 03:15:00\n', tmp_path, env={})
    scheduler = build_scheduler(cfg, lambda cmd: None)
    scheduler.start(paused=True)
    try:
        (name, _), = [j for j in describe(scheduler) if "retention" in j[0]]
        job = scheduler.get_job("journal-retention")
        assert "older than 30 days" in name and "hour='3'" in str(job.trigger) and "minute='15'" in str(job.trigger)
    finally:
        scheduler.shutdown(wait=False)


def test_one_sessions_time_range_is_read_through_its_index(sqlite_url):
    db.upgrade(sqlite_url)
    engine = db.make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            plan = " ".join(str(r) for r in conn.execute(text(
                "EXPLAIN QUERY PLAN SELECT raw FROM journal_messages WHERE session_id = 'S' "
                "AND ts_us >= 1 AND ts_us < 2 ORDER BY id")))
    finally:
        engine.dispose()
    assert "ix_journal_messages_session_id_ts_us" in plan


@pytest.mark.postgres
def test_a_second_gateway_pruning_the_same_journal_at_once_prunes_nothing_and_says_so(postgres_url, writer_factory,
                                                                                       monkeypatch):
    """The active instances of a sharded cluster share one journal and each runs the daily job: one run at a time."""
    from gateway.journal.retention import BUSY, PRUNE_LOCK

    db.upgrade(postgres_url)
    fill(postgres_url, writer_factory, monkeypatch)
    engine = db.make_engine(postgres_url)
    try:
        with engine.connect() as other:  # another gateway's run, under way
            assert other.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": PRUNE_LOCK}).scalar()
            busy = prune(engine, timedelta(days=5), now=NOW)
            assert busy.pruned == 0 and busy.held_back_by == BUSY and "another gateway is pruning" in busy.describe()
            assert count_messages(postgres_url) == 150
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PRUNE_LOCK})
        done = prune(engine, timedelta(days=5), now=NOW)
        assert done.pruned == 100 and count_messages(postgres_url) == 50
        # the run let go of the lock: the next one (from any connection of the pool) may take it
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": PRUNE_LOCK}).scalar()
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PRUNE_LOCK})
    finally:
        engine.dispose()
