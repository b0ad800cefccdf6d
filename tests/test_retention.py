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
from gateway.journal.chain import HashChain
from gateway.journal.inserts import BatchInserter
from gateway.journal.queries import count_messages
from gateway.journal.verify import CHECKPOINT_HASH, CHECKPOINT_ID, verify_database, verify_rows
from gateway.journal.retention import prune
from tests.test_journal_chain import execute

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    db.upgrade(url)
    return url


def fill(url: str, writer_factory, monkeypatch, old: int = 100, young: int = 50, now: datetime = NOW,
         msg_type: str = "D") -> None:
    """``old`` messages (of ``msg_type``) ten days before ``now``, then ``young`` one day before."""
    clock = {"ns": int((now - timedelta(days=10)).timestamp() * 1e9)}
    monkeypatch.setattr(journal_mod, "_time_ns", lambda: clock["ns"])
    w = writer_factory(url)
    w.start()
    for i in range(1, old + young + 1):
        if i == old + 1:
            assert w.flush(10)
            clock["ns"] = int((now - timedelta(days=1)).timestamp() * 1e9)
        w.record("FIX.4.4:GW->C", "I", f"8=FIX.4.4\x019=5\x0135={msg_type}\x0134={i}\x0111=C{i}\x0110=000\x01")
    assert w.flush(10)


def verify(url: str):
    engine = db.make_engine(url)
    try:
        return verify_database(engine)
    finally:
        engine.dispose()


def write_chains(url: str, plan) -> None:
    """``plan``: (chain, rows, when) batches, written in turn, each chain through a BatchInserter of its own (as
    the shards of a sharded cluster write: their rows interleave in id order)."""
    engine = db.make_engine(url)
    inserters: dict[str, BatchInserter] = {}
    try:
        for n, (name, count, when) in enumerate(plan):
            ins = inserters.setdefault(name, BatchInserter(engine, HashChain(None, chain=name)))
            ts = int(when.timestamp() * 1_000_000)
            ins.write([("FIX.4.4:GW->C", "I", 100 * n + i, "D", f"C{n}-{i}", None, False, ts,
                        f"8=FIX.4.4\x019=5\x0135=D\x0134={100 * n + i}\x0111=C{n}-{i}\x0110=000\x01", False)
                       for i in range(count)], [])
        for ins in inserters.values():
            ins.close(invalidate=False)
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
    fill(sqlite_url, writer_factory, monkeypatch, msg_type="8")  # ExecutionReports: what drop copies copy
    engine = db.make_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            first = conn.execute(text("SELECT min(id) FROM journal_messages")).scalar_one()
            conn.execute(db.dropcopy_state.insert().values(session="DC44", sent_id=first + 40, claimed_id=first + 40,
                                                           acked_id=first + 39, updated_us=0))
    finally:
        engine.dispose()
    result = prune(sqlite_url, timedelta(days=5), now=NOW)
    assert result.pruned == 40 and result.upto_id == first + 39
    assert result.held_back_by == f"drop-copy session DC44 has acknowledged copies only up to journal id {first + 39}"
    assert count_messages(sqlite_url) == 110 and verify(sqlite_url).ok


def test_only_unacknowledged_execution_reports_hold_retention_back(sqlite_url, writer_factory, monkeypatch):
    """Drop copies copy ExecutionReports: other rows after a receiver's position are no copies it waits for."""
    db.upgrade(sqlite_url)
    fill(sqlite_url, writer_factory, monkeypatch)  # orders (35=D) only
    execute(sqlite_url, "INSERT INTO dropcopy_state (session, sent_id, claimed_id, acked_id, updated_us) "
                        "VALUES ('DC44', 0, 0, 0, 0)")
    result = prune(sqlite_url, timedelta(days=5), now=NOW)
    assert result.pruned == 100 and result.held_back_by is None


def test_the_drop_copy_hold_back_follows_positions_in_the_merged_stream(database_url, writer_factory, monkeypatch):
    """A watermark is a position (xid, id) (gateway/journal/stream.py): rows of a transaction with a larger xid
    come later in the stream, whatever their ids."""
    fill(database_url, writer_factory, monkeypatch, msg_type="8")
    ids = [r.id for r in execute(database_url, "SELECT id FROM journal_messages ORDER BY id")]
    # as if two shards had committed side by side: the first 50 rows' transaction has the larger xid
    execute(database_url, "UPDATE journal_messages SET xid = 2000 WHERE id <= :i", i=ids[49])
    execute(database_url, "UPDATE journal_messages SET xid = 1000 WHERE id > :i", i=ids[49])
    execute(database_url, "INSERT INTO dropcopy_state (session, sent_id, claimed_id, acked_id, acked_xid, "
                          "updated_us) VALUES ('DC44', 0, 0, :i, 1000, 0), ('DC45', 0, 0, :j, 2000, 0)",
            i=ids[-1], j=ids[9])
    # DC44 is behind: it acknowledged every row written by 1000, none of those by 2000
    held = prune(database_url, timedelta(days=5), now=NOW, dry_run=True)
    assert held.pruned == 0 and held.held_back_by == (f"drop-copy session DC44 has acknowledged copies only up to "
                                                      f"journal id {ids[-1]}@1000")
    # now at 2000's tenth row: the rows up to it may go
    execute(database_url, "UPDATE dropcopy_state SET acked_id = :j, acked_xid = 2000", j=ids[9])
    result = prune(database_url, timedelta(days=5), now=NOW)
    assert (result.pruned, result.upto_id) == (10, ids[9])
    assert result.held_back_by == f"drop-copy session DC44 has acknowledged copies only up to journal id {ids[9]}@2000"
    assert verify(database_url).ok
    # all acknowledged: the old rows go
    execute(database_url, "UPDATE dropcopy_state SET acked_id = :i, acked_xid = 2000", i=ids[-1])
    result = prune(database_url, timedelta(days=5), now=NOW)
    assert (result.pruned, result.held_back_by) == (90, None)


OLD, YOUNG = NOW - timedelta(days=10), NOW - timedelta(days=1)


@pytest.mark.parametrize("tamper, kind, chain", [
    (None, None, None),
    ("UPDATE journal_messages SET raw = raw || 'x' WHERE id = "
     "(SELECT max(id) FROM journal_messages WHERE chain = 'main/west')", "altered", "main/west"),
    # the first row of main/west after the checkpoint: the rows before it are main/east's
    ("DELETE FROM journal_messages WHERE id = (SELECT min(id) FROM journal_messages WHERE chain = 'main/west')",
     "removed", "main/west"),
    ("UPDATE journal_messages SET chain_hash = NULL WHERE id = "
     "(SELECT min(id) FROM journal_messages WHERE chain = 'main/north')", "unhashed", "main/north"),
])
def test_pruning_several_chains_checkpoints_each_and_verify_still_proves_the_rest(database_url, tmp_path, tamper,
                                                                                  kind, chain):
    # batches of 6 pruned in chunks of 4: some chunks hold one chain's rows, some two; main/north's old rows are
    # all in an early chunk
    write_chains(database_url, [("main/north", 2, OLD)] + [("main/east", 6, OLD), ("main/west", 6, OLD)] * 3
                 + [("main/east", 6, YOUNG), ("main/west", 6, YOUNG), ("main/north", 1, YOUNG)] * 2)
    result = prune(database_url, timedelta(days=5), archive_dir=tmp_path, now=NOW, chunk=4)
    assert result.pruned == 38 and result.held_back_by is None and count_messages(database_url) == 26
    meta = dict(execute(database_url, "SELECT name, value FROM journal_meta"))
    with gzip.open(result.archive, "rt") as f:
        archived = [json.loads(line) for line in f]
    assert meta[CHECKPOINT_ID] == str(result.upto_id) == str(archived[-1]["id"])
    assert {r["chain"] for r in archived} == {"main/north", "main/east", "main/west"}
    pg = database_url.startswith("postgresql")
    assert all((r["xid"] > 0) if pg else (r["xid"] == 0) for r in archived)  # the writing transaction's id
    for name in ("main/north", "main/east", "main/west"):  # each chain's last pruned row
        assert meta[f"{CHECKPOINT_HASH}:{name}"] == [r for r in archived if r["chain"] == name][-1]["chain_hash"]
    assert CHECKPOINT_HASH not in meta  # chain '' had no rows
    # the archive verifies on its own, every chain from the genesis
    Row = namedtuple("Row", "id session_id direction seq_num msg_type ts_us raw chain_hash chain")
    again = verify_rows(Row(r["id"], r["session_id"], r["direction"], r["seq_num"], r["msg_type"], r["ts_us"],
                            r["raw"], bytes.fromhex(r["chain_hash"]), r["chain"]) for r in archived)
    assert again.ok and {n: c.checked for n, c in again.chains.items()} == {
        "main/north": 2, "main/east": 18, "main/west": 18}

    if tamper is None:
        checked = verify(database_url)
        assert checked.ok and checked.checked == 26 and checked.pruned_upto == result.upto_id
        assert {n: c.checked for n, c in checked.chains.items()} == {"main/north": 2, "main/east": 12,
                                                                      "main/west": 12}
        return
    execute(database_url, tamper)
    checked = verify(database_url)
    assert not checked.ok and (checked.problem.kind, checked.problem.chain) == (kind, chain), checked.problem


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
