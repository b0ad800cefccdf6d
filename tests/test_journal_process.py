"""The journal's database writer in its own process, fed by the spool: everything committed exactly once."""
from __future__ import annotations

import os
import signal
import time

from sqlalchemy import func, select

import pytest

from gateway.journal.db import journal_messages, make_engine, session_events, upgrade
from gateway.journal.writer import JournalWriter
from gateway.journal.process import ProcessJournalWriter


def msg(seq: int, cl: str = "A") -> str:
    return f"8=FIX.4.4\x019=10\x0135=D\x0134={seq}\x0149=C1\x0156=GW\x0111={cl}{seq}\x0110=000\x01"


@pytest.fixture
def sqlite_db(sqlite_url) -> str:
    upgrade(sqlite_url)
    return sqlite_url


def rows(url: str) -> tuple[list[int], int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            seqs = [r[0] for r in conn.execute(select(journal_messages.c.seq_num).order_by(journal_messages.c.id))]
            events = conn.execute(select(func.count()).select_from(session_events)).scalar()
        return seqs, events
    finally:
        engine.dispose()


def started(url: str, tmp_path, n: int) -> ProcessJournalWriter:
    """A started process writer that has committed messages 1..n."""
    j = ProcessJournalWriter(url, spool_dir=tmp_path / "spool")
    j.start()
    for i in range(1, n + 1):
        j.record("S1", "I", msg(i))
    assert j.flush(10)
    return j


def test_messages_and_events_reach_the_database_through_the_writer_process(database_url, tmp_path):
    j = ProcessJournalWriter(database_url, spool_dir=tmp_path / "spool")
    j.start()
    commits = []
    j.add_commit_listener(lambda: commits.append(1))
    for i in range(1, 501):
        j.record("S1", "I" if i % 2 else "O", msg(i))
    j.event("S1", "an event")
    assert j.flush(10)
    seqs, events = rows(database_url)
    assert seqs == list(range(1, 501)) and events >= 1
    assert j.queue_depth() == 0 and j.healthy and commits
    assert j.message_counts[("S1", "I", "D")] == 250
    assert j.stop()
    assert not list((tmp_path / "spool").glob("spool-*.bin"))  # all committed: nothing to import next time


def test_a_commit_is_reported_when_it_returns_not_one_poll_later(sqlite_db, tmp_path):
    # The child polls the spool every flush interval (3 s here). A poll's rows are committed at once, and
    # the commit is reported to the gateway when it returns: a row is heard committed within one poll. Before,
    # the writer waited a further interval for more rows and the report waited for the poll after the
    # commit, so a row took at least two intervals.
    j = ProcessJournalWriter(sqlite_db, flush_interval_ms=3000, spool_dir=tmp_path / "spool")
    j.start()
    try:
        j.record("S1", "I", msg(1))
        assert j.flush(30)  # the child is up and has just polled
        j.record("S1", "I", msg(2))
        assert j.flush(5.0), "the commit of a polled row was not heard within 5 s with a 3 s poll"
        assert rows(sqlite_db)[0] == [1, 2]
        # the writer was idle after that commit: the message counts (the metrics) came with it, not a poll later
        assert j.message_counts[("S1", "I", "D")] == 2
    finally:
        assert j.stop()


def test_a_writer_process_that_dies_is_restarted_and_writes_nothing_twice(sqlite_db, tmp_path):
    j = started(sqlite_db, tmp_path, 200)
    first = j._child
    os.kill(first.pid, signal.SIGKILL)
    for i in range(201, 401):
        j.record("S1", "I", msg(i))
    deadline = time.monotonic() + 20
    while j._child is first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert j.flush(20)
    assert rows(sqlite_db)[0] == list(range(1, 401))
    assert j.stop()


def test_what_a_killed_gateway_spooled_is_imported_once_at_the_next_start(sqlite_db, tmp_path):
    spool = tmp_path / "spool"
    j = started(sqlite_db, tmp_path, 100)
    j._child.stdin.close()  # the gateway "dies": its child sees EOF and exits at once
    j._child_stopping = True
    j._child.wait(10)
    for i in range(101, 151):
        j.record("S1", "I", msg(i))  # spooled, never committed
    again = JournalWriter(sqlite_db, spool_dir=spool)  # the next start, in whichever mode: imports the rest
    again.start()
    assert again.spool_recovered == 50
    assert again.flush(10)
    assert rows(sqlite_db)[0] == list(range(1, 151))
    assert again.stop()


def test_ctrl_c_in_the_terminal_does_not_stop_the_writer_process_before_the_gateway_says_so(sqlite_db, tmp_path):
    j = ProcessJournalWriter(sqlite_db, spool_dir=tmp_path / "spool")
    j.start()
    os.kill(j._child.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
    os.kill(j._child.pid, signal.SIGTERM)  # so does a service manager's stop
    for i in range(1, 51):
        j.record("S1", "I", msg(i))
    assert j.flush(10)
    assert j.stop()  # the clean stop is what ends it, with everything committed
    assert rows(sqlite_db)[0] == list(range(1, 51))


def test_a_writer_process_started_behind_the_journal_skips_what_is_already_committed(sqlite_db, tmp_path):
    """A child that died after a commit it had not reported yet: its successor is told an older position."""
    j = started(sqlite_db, tmp_path, 100)
    j._child_stopping = True  # no automatic restart: this test starts the successor itself
    j._child.kill()
    j._child.wait(10)
    j._reader.join(10)
    j._child_stopping = False
    j._committed_before = j.committed - 100  # as if the gateway had never heard of those 100 commits
    j._child_pos = 0
    j._spawn(0)
    for i in range(101, 121):
        j.record("S1", "I", msg(i))
    assert j.flush(10)
    assert rows(sqlite_db)[0] == list(range(1, 121))
    assert j.queue_depth() == 0  # the skipped records count as committed
    assert j.stop()


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_the_commit_lag_is_the_age_of_the_oldest_uncommitted_row_and_zero_once_all_are_committed(
        sqlite_db, tmp_path, writer):
    make = ProcessJournalWriter if writer == "process" else JournalWriter
    j = make(sqlite_db, spool_dir=tmp_path / "spool")
    j.start()
    admin = make_engine(sqlite_db)
    try:
        for i in range(1, 11):
            j.record("S1", "I", msg(i))
        assert j.flush(10)
        assert j.commit_lag_seconds() == 0  # all committed: nothing is behind (it read the last batch's age before)
        with admin.begin() as conn:  # the database refuses the next commits
            conn.exec_driver_sql("ALTER TABLE journal_messages RENAME TO journal_messages_away")
        t0 = time.time_ns()
        j.record("S1", "I", msg(11))  # the oldest row not committed from here on
        t1 = time.time_ns()
        for i in range(12, 21):
            j.record("S1", "I", msg(i))
        deadline = time.monotonic() + 10
        while j.healthy and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not j.healthy and j.queue_depth() == 10
        before = time.time_ns()
        lag = j.commit_lag_seconds()
        after = time.time_ns()
        assert (before - t1) / 1e9 <= lag <= (after - t0) / 1e9  # measured from row 11's capture
        with admin.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE journal_messages_away RENAME TO journal_messages")
        assert j.flush(20)
        assert j.queue_depth() == 0 and j.commit_lag_seconds() == 0
    finally:
        admin.dispose()
        assert j.stop()
    assert rows(sqlite_db)[0] == list(range(1, 21))


def _all_rows(url: str) -> tuple[list, list, str | None]:
    """Every message row but its id (chain hash included), every event row but its id, the spool position."""
    from sqlalchemy import text
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            msgs = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in conn.execute(text(
                "SELECT session_id, direction, seq_num, msg_type, cl_ord_id, order_id, poss_dup, ts_us, raw, "
                "recovered, chain_hash FROM journal_messages ORDER BY id"))]
            events = [tuple(r) for r in conn.execute(text("SELECT session_id, ts_us, text FROM session_events "
                                                          "ORDER BY id"))]
            pos = conn.execute(text("SELECT value FROM journal_meta WHERE name = 'spool_position'")).scalar()
        return msgs, events, pos
    finally:
        engine.dispose()


def test_the_writer_process_writes_the_rows_the_in_process_writer_writes(database_url, tmp_path):
    """The child (reading the spool, batches of at most batch_max, INSERT OR FAIL, the GC frozen) writes the
    same rows, chain hashes included, as the in-process writer makes of the same records; the chain verifies,
    and the committed position is the spool's end."""
    import json
    import subprocess
    import sys

    from gateway.journal.process import CONFIG_ENV
    from gateway.journal.spool import Spool
    from gateway.journal.verify import verify_database

    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    entries = []
    spool = Spool.create(spool_dir, entries.append)
    t0 = 1_795_000_000_000_000_000
    for i in range(1, 301):
        spool.append(t0 + 1000 * i, f"S{i % 3}", "I" if i % 2 else "O", msg(i) + ("\x0143=Y\x01" if i % 7 == 0 else ""))
        if i % 25 == 0:
            spool.append(t0 + 1000 * i + 1, "S1", "E", f"event {i} ünïcode")
    spool.append(t0 + 999_999, "S2", "O", "8=FIX.4.4\x0135=0\x0134=x1\x01")  # no usable seq, no ids
    end = spool.position()[0]

    config = {"database_url": database_url, "batch_max": 7, "flush_interval_ms": 5, "spool_dir": str(spool_dir),
              "spool": spool.path.name, "start": 0, "instance": None, "term": None}
    child = subprocess.Popen([sys.executable, "-m", "gateway.journal.process"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env={**os.environ, CONFIG_ENV: json.dumps(config)})
    out, _ = child.communicate(b"stop\n", timeout=60)
    assert child.returncode == 0, out
    by_child = _all_rows(database_url)
    assert by_child[2] == f"{spool.path.name}:{end}"
    assert f"c {len(entries)} 0 {end} ".encode() in out  # the last commit line: every record, the spool's end
    spool.close(remove=False)
    engine = make_engine(database_url)
    try:
        result = verify_database(engine)
        assert result.problem is None and result.checked == 301
        with engine.begin() as conn:
            for table in ("journal_messages", "session_events"):
                conn.exec_driver_sql(f"DELETE FROM {table}")
            # a fresh journal: no spool position, and no chain head (gateway/journal/chain.py) to continue from
            conn.exec_driver_sql("DELETE FROM journal_meta WHERE name = 'spool_position' "
                                 "OR substr(name, 1, 11) = 'chain_head:'")
    finally:
        engine.dispose()

    j = JournalWriter(database_url, batch_max=7)  # the in-process writer, fed the same records
    j.start()
    for entry in entries:
        j._put(entry)
    assert j.flush(30)
    assert j.stop()
    assert _all_rows(database_url) == by_child


def test_a_writer_process_whose_gateway_has_gone_exits_quietly_when_it_next_reports(sqlite_db, tmp_path):
    """The gateway died (its end of the child's stdout is closed) while its stdin is still open: the child's next
    commit report finds the pipe broken and the child exits 0 with no traceback, as when stdin closes; the
    gateway's next start imports what it had not committed."""
    import json
    import subprocess
    import sys

    from gateway.journal.process import CONFIG_ENV
    from gateway.journal.spool import Spool

    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    spool = Spool.create(spool_dir, lambda entry: None)
    for i in range(1, 21):
        spool.append(1_795_000_000_000_000_000 + i, "S1", "I", msg(i))
    config = {"database_url": sqlite_db, "batch_max": 5, "flush_interval_ms": 5, "spool_dir": str(spool_dir),
              "spool": spool.path.name, "start": 0, "instance": None, "term": None}
    child = subprocess.Popen([sys.executable, "-m", "gateway.journal.process"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, CONFIG_ENV: json.dumps(config)})
    child.stdout.close()  # the gateway is gone; its stdin pipe is not closed yet
    try:
        assert child.wait(timeout=30) == 0
        assert b"Traceback" not in child.stderr.read()
    finally:
        child.kill()
        child.stdin.close()
        child.stderr.close()
        spool.close(remove=False)
