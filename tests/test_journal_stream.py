"""The journal's merged stream (gateway/journal/stream.py): shards that commit side by side, each on its own chain,
and a drop-copy reader that tails them all without ever passing a row that commits a moment later."""
from __future__ import annotations

import threading
import time

import psycopg
import pytest

from dropcopy.filters import NoDirectory
from gateway.dropcopy.sources import Sources
from gateway.journal import stream
from gateway.journal.chain import CHAIN_LOCK, HashChain, chain_lock
from gateway.journal.db import make_engine, upgrade
from gateway.journal.inserts import BatchInserter
from gateway.journal.rows import table_rows
from gateway.journal.verify import verify_database

EAST, WEST = "FIX.4.4:FIXGW->EAST", "FIX.4.4:FIXGW->WEST"


def message_row(sid: str, direction: str, raw: str, n: int) -> tuple:
    """A journal row as the writer makes it (gateway/journal/rows.py)."""
    return table_rows([((n + 1) * 1000, sid, direction, raw, None)], True, {})[0][0]


def report(exec_id: str) -> str:
    return f"8=FIX.4.4\x019=10\x0135=8\x0134=1\x0117={exec_id}\x0110=000\x01"


def pg(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def url(postgres_url):
    upgrade(postgres_url)
    return postgres_url


def sources(engine) -> Sources:
    return Sources(engine, {EAST: "EAST", WEST: "WEST"}, {}, NoDirectory(), {"client"})


def exec_ids(rows) -> list[str]:
    return [r.raw.split("\x0117=")[1].split("\x01")[0] for r in rows]


def test_positions_read_and_print_as_journal_id_and_transaction():
    assert stream.text((0, 17)) == "17" and stream.text((5021, 17)) == "17@5021"
    assert stream.parse("17@5021") == (5021, 17) and stream.parse("17") == (0, 17)
    assert stream.just_before((5021, 17)) == (5021, 16) < (5021, 17)
    with pytest.raises(ValueError):
        stream.parse("x")


def test_each_chain_has_a_lock_of_its_own_and_the_single_chain_keeps_the_old_one():
    assert chain_lock("") == CHAIN_LOCK
    assert chain_lock("main/east") != chain_lock("main/west") != CHAIN_LOCK
    assert -(1 << 63) <= chain_lock("main/east") < (1 << 63)


def test_a_row_that_commits_after_a_higher_id_is_never_passed_by_the_reader(url):
    """Shard east takes id N and holds its transaction open; shard west writes N+1 and commits. Tailing by id, a
    reader would copy N+1 and move past N for ever. The stream holds both back until east commits (east's
    transaction is older than west's), then gives east's row first."""
    engine = make_engine(url)
    east = psycopg.connect(pg(url))
    try:
        with east.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (chain_lock("main/east"),))
            cur.execute("INSERT INTO journal_messages (session_id, direction, msg_type, ts_us, raw, chain) "
                        "VALUES (%s, 'O', '8', 1, %s, 'main/east') RETURNING id, xid", (EAST, report("E1")))
            east_id, east_xid = cur.fetchone()
        west = BatchInserter(engine, HashChain(None, shared=True, chain="main/west"))
        west.write([message_row(WEST, "O", report("W1"), 2)], [])
        west.close(invalidate=False)
        reader = sources(engine)
        try:
            assert reader.fetch(stream.ORIGIN) == []  # west's row is committed, but east's older one is not
            east.commit()
            rows = reader.fetch(stream.ORIGIN)
            assert exec_ids(rows) == ["E1", "W1"]
            assert rows[0].id == east_id < rows[1].id and rows[0].position[0] == east_xid < rows[1].position[0]
            assert reader.fetch(rows[-1].position) == []
        finally:
            reader.close()
    finally:
        east.close()
        engine.dispose()


def test_a_transaction_that_rolls_back_leaves_no_hole_the_reader_waits_on(url):
    engine = make_engine(url)
    try:
        doomed = psycopg.connect(pg(url))
        with doomed.cursor() as cur:
            cur.execute("INSERT INTO journal_messages (session_id, direction, msg_type, ts_us, raw, chain) "
                        "VALUES (%s, 'O', '8', 1, %s, 'main/east')", (EAST, report("GONE")))
        west = BatchInserter(engine, HashChain(None, shared=True, chain="main/west"))
        west.write([message_row(WEST, "O", report("W1"), 2)], [])
        west.close(invalidate=False)
        reader = sources(engine)
        try:
            assert reader.fetch(stream.ORIGIN) == []
            doomed.rollback()
            doomed.close()
            assert exec_ids(reader.fetch(stream.ORIGIN)) == ["W1"]
        finally:
            reader.close()
    finally:
        engine.dispose()


def test_two_shards_writing_at_once_give_one_gap_free_stream_and_two_intact_chains(url):
    """Two writers, each on its own chain and lock, commit batches as fast as they can while a reader tails the
    stream by position from the start; it gets every row exactly once, each shard's in its own order."""
    engine = make_engine(url)
    batches, per_batch = 60, 5
    done = threading.Event()
    errors: list[BaseException] = []

    def shard(name: str, sid: str) -> None:
        w = BatchInserter(engine, HashChain(None, shared=True, chain=f"main/{name}"))
        try:
            for b in range(batches):
                w.write([message_row(sid, "O", report(f"{name}-{b}-{i}"), b * per_batch + i)
                         for i in range(per_batch)], [])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            w.close(invalidate=False)

    threads = [threading.Thread(target=shard, args=(n, s)) for n, s in (("east", EAST), ("west", WEST))]
    reader = sources(engine)
    seen: list = []
    try:
        for t in threads:
            t.start()
        position = stream.ORIGIN
        deadline = time.monotonic() + 60
        while len(seen) < 2 * batches * per_batch:
            assert time.monotonic() < deadline, f"only {len(seen)} rows read"
            rows = reader.fetch(position)
            if rows:
                assert rows[0].position > position
                seen += rows
                position = rows[-1].position
            elif not any(t.is_alive() for t in threads):
                rows = reader.fetch(position)
                assert rows, f"the writers are done and {len(seen)} rows were read; {errors}"
            else:
                time.sleep(0.001)
        for t in threads:
            t.join(10)
        assert not errors, errors
        assert reader.fetch(position) == []
    finally:
        done.set()
        reader.close()
    ids = exec_ids(seen)
    assert len(ids) == len(set(ids)) == 2 * batches * per_batch
    for name in ("east", "west"):
        mine = [e for e in ids if e.startswith(name)]
        assert mine == [f"{name}-{b}-{i}" for b in range(batches) for i in range(per_batch)]
    assert [r.position for r in seen] == sorted(r.position for r in seen)
    result = verify_database(engine)
    assert result.ok and result.checked == 2 * batches * per_batch
    engine.dispose()


def test_revision_0012_puts_old_rows_on_chain_blank_before_every_new_row_and_keeps_the_watermarks(postgres_url):
    from sqlalchemy import text

    from gateway.journal.db import downgrade
    upgrade(postgres_url, "0011")
    engine = make_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO journal_messages (session_id, direction, msg_type, ts_us, raw) "
                              "VALUES (:s, 'O', '8', 1, :r)"), {"s": EAST, "r": report("OLD")})
            old = conn.execute(text("SELECT max(id) FROM journal_messages")).scalar_one()
            conn.execute(text("INSERT INTO dropcopy_state (session, sent_id, claimed_id, acked_id, resend_upto, "
                              "updated_us) VALUES ('DC', :i, :i, :i, 0, 0)"), {"i": old})
        upgrade(postgres_url)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT chain, xid FROM journal_messages")).one() == ("", 0)
            r = conn.execute(text("SELECT sent_xid, sent_id, acked_xid, acked_id FROM dropcopy_state")).one()
            assert tuple(r) == (0, old, 0, old)  # the same watermark: every older row has xid 0
            conn.execute(text("INSERT INTO journal_messages (session_id, direction, msg_type, ts_us, raw) "
                              "VALUES (:s, 'O', '8', 2, :r)"), {"s": EAST, "r": report("NEW")})
        reader = sources(engine)
        try:
            rows = reader.fetch((0, old))
            assert exec_ids(rows) == ["NEW"] and rows[0].position[0] > 0  # a new row, after every old one
        finally:
            reader.close()
        downgrade(postgres_url, "0011")
        upgrade(postgres_url)
    finally:
        engine.dispose()


def test_retention_never_puts_its_checkpoint_past_a_lower_id_still_in_flight(url):
    """East holds id N in an open transaction while west commits N+1. Pruning everything then must wait for east:
    a checkpoint at N+1 would make N, committed a moment later, look inserted for ever."""
    from datetime import datetime, timedelta, timezone

    from gateway.journal.chain import SETTLED_IDS_LOCK
    from gateway.journal.retention import prune

    engine = make_engine(url)
    east = psycopg.connect(pg(url))
    try:
        with east.cursor() as cur:  # what east's writer does (gateway/journal/chain.py), its COPY made slow
            cur.execute("SELECT pg_advisory_xact_lock(%s), pg_advisory_xact_lock_shared(%s)",
                        (chain_lock("main/east"), SETTLED_IDS_LOCK))
            rows = HashChain(None, chain="main/east").link([message_row(EAST, "O", report("E1"), 1)], bytes(32))
            cur.execute("INSERT INTO journal_messages (session_id, direction, seq_num, msg_type, cl_ord_id, order_id, "
                        "poss_dup, ts_us, raw, recovered, chain_hash, chain) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows[0])
        west = BatchInserter(engine, HashChain(None, shared=True, chain="main/west"))
        west.write([message_row(WEST, "O", report("W1"), 2)], [])
        west.close(invalidate=False)
        done = []
        later = datetime.now(timezone.utc) + timedelta(days=1)
        pruner = threading.Thread(target=lambda: done.append(prune(engine, timedelta(0), now=later)))
        pruner.start()
        pruner.join(0.5)
        assert pruner.is_alive() and not done  # waiting for east's write to settle
        east.commit()
        pruner.join(10)
        assert done and done[0].pruned == 2, done
    finally:
        east.close()
    result = verify_database(engine)
    assert result.ok, result.problem
    engine.dispose()


def test_how_long_a_transaction_holds_the_stream_back_is_measured(url):
    engine = make_engine(url)
    reader = sources(engine)
    slow = psycopg.connect(pg(url))
    try:
        assert reader.held_seconds() < 5  # nothing long running (the journal writers' transactions last ms)
        with slow.cursor() as cur:
            cur.execute("SELECT pg_current_xact_id()")  # a transaction id: the bound stops here
        time.sleep(0.3)
        assert reader.held_seconds() >= 0.3
        slow.rollback()
        assert reader.held_seconds() < 0.3
    finally:
        slow.close()
        reader.close()
        engine.dispose()
