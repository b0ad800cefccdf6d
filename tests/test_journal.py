"""The message journal: schema migrations, the writer thread, reading helpers, `fixgw db`.

Tests taking ``database_url`` run on SQLite and on PostgreSQL (marker ``postgres``).
"""
from __future__ import annotations

import threading
import time

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, text

from gateway.journal import db
from gateway.cli.db import db as db_cli
from gateway.journal.queries import count_messages, iter_events, iter_messages
from gateway.journal.rows import parse_message
from gateway.journal.writer import JournalWriter

SOH = "\x01"


def fix(msg_type: str, seq: int, *body: tuple[int, str], sender="CLIENT44", target="FIXGW", poss_dup=False,
        begin="FIX.4.4") -> str:
    """A well-formed raw FIX message (BodyLength and CheckSum correct)."""
    header = [(35, msg_type), (34, str(seq)), (49, sender), (52, "20261124-06:31:02.123"), (56, target)]
    if poss_dup:
        header += [(43, "Y"), (122, "20261124-06:30:00.000")]
    rest = "".join(f"{t}={v}{SOH}" for t, v in header + list(body))
    head = f"8={begin}{SOH}9={len(rest)}{SOH}"
    checksum = sum((head + rest).encode("utf-8", "surrogateescape")) % 256
    return f"{head}{rest}10={checksum:03d}{SOH}"


def new_order(seq, cl_ord_id, **kw):
    # 111 = MaxFloor: must not be taken for ClOrdID (11)
    return fix("D", seq, (11, cl_ord_id), (1, "ACC1"), (111, "100"), (55, "AAPL"), (54, "1"),
               (60, "20261124-06:31:02.123"), (38, "500"), (40, "2"), (44, "187.25"), **kw)


def exec_report(seq, order_id, cl_ord_id, **kw):
    # 211 = PegOffsetValue: must not be taken for ClOrdID (11) either
    return fix("8", seq, (37, order_id), (11, cl_ord_id), (17, f"E-{seq}"), (150, "0"), (39, "0"),
               (211, "0.5"), (55, "AAPL"), (54, "1"), (38, "500"), (151, "500"), (14, "0"), (6, "0"),
               sender="FIXGW", target="CLIENT44", **kw)


def heartbeat(seq, **kw):
    return fix("0", seq, **kw)


def wait_until(cond, timeout=5.0, step=0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request) -> str:
    """A database without any schema, on each backend."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


# ------------------------------------------------------------------ parsing


def test_parse_message_fields():
    assert parse_message(new_order(7, "ORD-1")) == (7, "D", "ORD-1", None, False)
    assert parse_message(exec_report(9, "O-77", "ORD-1", poss_dup=True)) == (9, "8", "ORD-1", "O-77", True)
    assert parse_message(heartbeat(3)) == (3, "0", None, None, False)
    # 111 and 211 present, 11 absent
    raw = fix("8", 4, (37, "O-1"), (111, "100"), (211, "0.5"), (39, "2"))
    assert parse_message(raw) == (4, "8", None, "O-1", False)
    # 43=N is not a possible duplicate; 1043=Y (not 43) neither
    assert parse_message(fix("0", 5, (43, "N")))[4] is False
    assert parse_message(fix("0", 5, (1043, "Y")))[4] is False
    # the first ClOrdID wins (NewOrderList repeats 11 in its group)
    assert parse_message(fix("E", 6, (66, "L1"), (73, "2"), (11, "A"), (67, "1"), (11, "B"), (67, "2")))[2] == "A"
    # garbage sequence numbers are not numbers
    for bad in ("", "x1", " 1", "+1", "1_0", "1" * 19, "١"):
        assert parse_message(f"8=FIX.4.4{SOH}35=0{SOH}34={bad}{SOH}10=000{SOH}")[0] is None
    # no trailing SOH, no fields at all
    assert parse_message(f"8=FIX.4.4{SOH}35=A{SOH}34=12") == (12, "A", None, None, False)
    assert parse_message("garbage") == (None, None, None, None, False)


_TAGS = st.sampled_from([1, 11, 111, 211, 1011, 34, 134, 35, 37, 137, 43, 143, 55])
_VALUES = st.text(alphabet=st.characters(blacklist_characters=SOH, blacklist_categories=("Cs",)),
                  min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_TAGS, _VALUES, max_size=8))
def test_parse_message_finds_exactly_its_tags(fields):
    raw = f"8=FIX.4.4{SOH}9=0{SOH}" + "".join(f"{t}={v}{SOH}" for t, v in fields.items()) + f"10=000{SOH}"
    seq = fields.get(34)
    want_seq = int(seq) if seq is not None and seq.isascii() and seq.isdigit() and len(seq) < 19 else None
    assert parse_message(raw) == (want_seq, fields.get(35), fields.get(11), fields.get(37), fields.get(43) == "Y")


# ------------------------------------------------------------------ schema


def test_upgrade_creates_schema(database_url):
    assert db.current_revision(database_url) == db.head_revision() == "0012"
    db.check_schema(database_url)  # does not raise
    engine = db.make_engine(database_url)
    try:
        insp = inspect(engine)
        assert {"journal_messages", "journal_meta", "session_events", "dropcopy_state", "cluster_lease", "state_log_records",
                "state_log_snapshots", "alembic_version"} <= set(insp.get_table_names())
        cols = {c["name"] for c in insp.get_columns("journal_messages")}
        assert cols == {"id", "session_id", "direction", "seq_num", "msg_type", "cl_ord_id", "order_id",
                        "poss_dup", "ts_us", "raw", "chain_hash", "recovered", "chain", "xid"}
        indexes = {i["name"]: i["column_names"] for i in insp.get_indexes("journal_messages")}
        assert indexes == {
            "ix_journal_messages_session_id_id": ["session_id", "id"],
            "ix_journal_messages_session_id_ts_us": ["session_id", "ts_us"],
            "ix_journal_messages_ts_us": ["ts_us"],
            "ix_journal_messages_cl_ord_id": ["cl_ord_id"],
            "ix_journal_messages_order_id": ["order_id"],
            "ix_journal_messages_xid_id": ["xid", "id"],
        }
        ev_indexes = {i["name"]: i["column_names"] for i in insp.get_indexes("session_events")}
        assert ev_indexes == {"ix_session_events_session_id_id": ["session_id", "id"],
                              "ix_session_events_ts_us": ["ts_us"]}
        # gateway/journal/db.py's tables match what the migrations built
        from alembic.autogenerate import compare_metadata
        from alembic.runtime.migration import MigrationContext

        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
        assert diff == []
        # the direction check constraint is there
        with pytest.raises(Exception), engine.begin() as conn:
            conn.execute(db.journal_messages.insert().values(session_id="s", direction="X", ts_us=0, raw="r"))
    finally:
        engine.dispose()


def test_check_schema_on_empty_database(empty_url):
    assert db.current_revision(empty_url) is None
    with pytest.raises(db.SchemaOutOfDate) as info:
        db.check_schema(empty_url, "etc/gw.cfg")
    msg = str(info.value)
    assert "run `fixgw db upgrade -c etc/gw.cfg`" in msg
    assert "needs 0012" in msg and "none" in msg
    assert info.value.current is None and info.value.head == "0012"
    with pytest.raises(db.SchemaOutOfDate, match=r"fixgw db upgrade -c <config>"):
        db.check_schema(empty_url)


def test_downgrade_then_check_schema_then_upgrade_again(database_url):
    db.downgrade(database_url, "base")
    assert db.current_revision(database_url) is None
    engine = db.make_engine(database_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    with pytest.raises(db.SchemaOutOfDate, match=r"run `fixgw db upgrade -c gateway.cfg`"):
        db.check_schema(database_url, "gateway.cfg")
    db.upgrade(database_url)
    db.check_schema(database_url, "gateway.cfg")


def test_check_schema_rejects_unknown_revision(sqlite_url):
    db.upgrade(sqlite_url)
    engine = db.make_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(db.SchemaOutOfDate, match="newer fixgw"):
        db.check_schema(sqlite_url)


def test_make_engine_sqlite_settings(tmp_path):
    url = f"sqlite:///{tmp_path / 'new' / 'dir' / 'j.db'}"
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    finally:
        engine.dispose()
    assert (tmp_path / "new" / "dir" / "j.db").exists()
    with pytest.raises(ValueError, match="unsupported backend"):
        db.make_engine("mysql://u:pw@h/x")


# ------------------------------------------------------------------ writer


def test_writer_stores_rows_from_many_threads(database_url, writer_factory):
    w = writer_factory(database_url, batch_max=64)
    w.start()
    sessions = [f"FIX.4.4:FIXGW->CLIENT{k}" for k in range(4)]
    per_session = 150
    expected: dict[str, list[tuple]] = {}

    def produce(sid: str, k: int):
        rows = []
        for seq in range(1, per_session + 1):
            kind = seq % 3
            if kind == 0:
                raw, want = heartbeat(seq), ("I", seq, "0", None, None, False)
                w.record(sid, "I", raw)
            elif kind == 1:
                cl = f"C{k}-{seq}"
                raw, want = new_order(seq, cl), ("I", seq, "D", cl, None, False)
                w.record(sid, "I", raw)
            else:
                cl, oid = f"C{k}-{seq - 1}", f"O{k}-{seq}"
                dup = seq % 10 == 2
                raw = exec_report(seq, oid, cl, poss_dup=dup)
                want = ("O", seq, "8", cl, oid, dup)
                w.record(sid, "O", raw)
            rows.append((*want, raw))
        expected[sid] = rows

    threads = [threading.Thread(target=produce, args=(sid, k)) for k, sid in enumerate(sessions)]
    t_before = time.time_ns() // 1000
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert w.flush(10)
    t_after = time.time_ns() // 1000
    total = per_session * len(sessions)
    assert w.submitted == w.committed == total
    assert w.queue_depth() == 0 and w.commit_lag_seconds() == 0
    assert w.healthy and w.last_error is None
    assert w.batches >= total // 64 and 1 <= w.last_batch_size <= 64

    for sid in sessions:
        got = [(r.direction, r.seq_num, r.msg_type, r.cl_ord_id, r.order_id, bool(r.poss_dup), r.raw)
               for r in iter_messages(database_url, session_id=sid, batch=50)]
        assert got == expected[sid]  # all fields, in the order recorded
    rows = list(iter_messages(database_url))
    assert len(rows) == total
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert all(t_before <= r.ts_us <= t_after for r in rows)
    assert count_messages(database_url) == total
    assert count_messages(database_url, session_id=sessions[0], direction="O") == per_session // 3


def test_flush_makes_rows_visible_to_another_connection(database_url, writer_factory):
    w = writer_factory(database_url, flush_interval_ms=2000)  # a long batching window: flush must cut it short
    w.start()
    reader = db.make_engine(database_url)
    try:
        for n in (1, 10, 100):
            for seq in range(n):
                w.record("FIX.4.4:FIXGW->CLIENT44", "I", heartbeat(seq + 1))
            t0 = time.monotonic()
            assert w.flush(5)
            assert time.monotonic() - t0 < 1.0
            with reader.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM journal_messages")).scalar() == w.committed
        assert w.committed == 111
    finally:
        reader.dispose()


def test_stop_drains_everything(database_url, writer_factory):
    w = writer_factory(database_url, batch_max=100, flush_interval_ms=1000)
    w.start()
    n = 2500
    for seq in range(1, n + 1):
        w.record("FIX.4.4:FIXGW->VENUE1", "O", new_order(seq, f"C{seq}", sender="FIXGW", target="VENUE1"))
    w.event("FIX.4.4:FIXGW->VENUE1", "Initiated logon request")
    assert w.stop(10) is True
    assert w.stop() is True  # idempotent
    assert count_messages(database_url) == n
    assert [e.text for e in iter_events(database_url)] == ["Initiated logon request"]
    with pytest.raises(RuntimeError):
        w.start()


def test_stop_without_start_writes_what_was_recorded(database_url, writer_factory):
    w = writer_factory(database_url)
    w.record("FIX.4.4:FIXGW->CLIENT44", "I", heartbeat(1))
    assert w.flush(0.1) is False  # nothing writes before start()
    assert w.stop() is True
    assert count_messages(database_url) == 1


def test_events_and_app_only_counts(database_url, writer_factory):
    w = writer_factory(database_url)
    w.start()
    sid = "FIX.4.4:FIXGW->CLIENT44"
    w.event(sid, "Received logon request")
    w.record(sid, "I", fix("A", 1, (98, "0"), (108, "30")))
    w.record(sid, "O", fix("A", 1, (98, "0"), (108, "30"), sender="FIXGW", target="CLIENT44"))
    w.event(sid, "Responding to logon request")
    w.record(sid, "I", new_order(2, "ORD-1"))
    w.record(sid, "O", exec_report(2, "O-1", "ORD-1"))
    w.record(sid, "I", fix("2", 3, (7, "1"), (16, "0")))  # ResendRequest
    w.record(sid, "O", fix("4", 3, (123, "Y"), (36, "4"), sender="FIXGW", target="CLIENT44"))
    w.record(sid, "I", heartbeat(4))
    w.record(sid, "I", fix("5", 5))  # Logout
    w.record(sid, "I", fix("3", 6, (45, "2"), (58, "bad")))  # Reject
    w.record(sid, "I", fix("1", 7, (112, "T")))  # TestRequest
    w.record(sid, "I", fix("F", 8, (41, "ORD-1"), (11, "ORD-2")))  # cancel: application
    w.record(sid, "I", f"8=FIX.4.4{SOH}9=5{SOH}58=x{SOH}10=000{SOH}")  # garbage: no MsgType
    w.event("*", "Created session")
    assert w.flush(5)
    assert count_messages(database_url) == 12
    assert count_messages(database_url, app_only=True) == 3
    assert count_messages(database_url, session_id=sid, direction="I", app_only=True) == 2
    events = list(iter_events(database_url))
    assert [(e.session_id, e.text) for e in events] == [
        (sid, "Received logon request"), (sid, "Responding to logon request"), ("*", "Created session")]
    assert all(e.ts_us > 1_700_000_000_000_000 for e in events)
    assert [e.text for e in iter_events(database_url, session_id="*")] == ["Created session"]


def test_unstorable_text_is_escaped_not_fatal(database_url, writer_factory):
    w = writer_factory(database_url)
    w.start()
    # binary RawData (96) with a NUL, and an undecodable byte surfacing as a lone surrogate
    w.record("FIX.4.4:FIXGW->CLIENT44", "I", fix("B", 1, (148, "hi"), (95, "3"), (96, "a\x00b")))
    w.record("FIX.4.4:FIXGW->CLIENT44", "I", fix("B", 2, (148, "caf\udce9")))
    w.record("FIX.4.4:FIXGW->CLIENT44", "I", fix("B", 3, (148, "café")))
    assert w.flush(5) and w.healthy
    rows = list(iter_messages(database_url))
    assert [r.seq_num for r in rows] == [1, 2, 3]
    assert "\\udce9" in rows[1].raw
    assert "café" in rows[2].raw


def test_record_rejects_bad_direction(sqlite_url):
    w = JournalWriter(sqlite_url)
    with pytest.raises(ValueError):
        w.record("s", "X", heartbeat(1))
    assert w.stop()


def test_commit_failure_keeps_rows_until_recovery_sqlite(sqlite_url, writer_factory, caplog):
    db.upgrade(sqlite_url)
    w = writer_factory(sqlite_url)
    w.start()
    sid = "FIX.4.4:FIXGW->CLIENT44"
    for seq in range(1, 6):
        w.record(sid, "I", new_order(seq, f"C{seq}"))
    assert w.flush(5)

    admin = db.make_engine(sqlite_url)
    try:
        with admin.begin() as conn:  # the table goes away under the writer
            conn.exec_driver_sql("ALTER TABLE journal_messages RENAME TO journal_messages_away")
        with caplog.at_level("WARNING", logger="fixgw.journal"):
            for seq in range(6, 11):
                w.record(sid, "I", new_order(seq, f"C{seq}"))
            assert wait_until(lambda: not w.healthy)
            assert "no such table" in (w.last_error or "")
            assert w.flush(0.2) is False
            assert w.queue_depth() == 5
            assert w.commit_lag_seconds() > 0
            for seq in range(11, 16):  # more arrive while failing
                w.record(sid, "I", new_order(seq, f"C{seq}"))
            with admin.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE journal_messages_away RENAME TO journal_messages")
            assert w.flush(10)
        assert w.healthy
        assert w.queue_depth() == 0 and w.committed == 15
        assert any("failed, will retry" in r.getMessage() for r in caplog.records)
        assert any("recovered" in r.getMessage() for r in caplog.records)
    finally:
        admin.dispose()
    assert [r.seq_num for r in iter_messages(sqlite_url, session_id=sid)] == list(range(1, 16))


def test_stop_gives_up_when_the_database_stays_down_sqlite(sqlite_url, caplog):
    db.upgrade(sqlite_url)
    admin = db.make_engine(sqlite_url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql("DROP TABLE journal_messages")
    finally:
        admin.dispose()
    w = JournalWriter(sqlite_url)
    w.start()
    w.record("FIX.4.4:FIXGW->CLIENT44", "I", heartbeat(1))
    assert wait_until(lambda: not w.healthy)
    t0 = time.monotonic()
    with caplog.at_level("ERROR", logger="fixgw.journal"):
        assert w.stop(timeout=0.3) is False
    assert time.monotonic() - t0 < 3
    assert any("1 rows not committed" in r.getMessage() for r in caplog.records)
    assert not any(t.name == "fixgw-journal" and t.is_alive() for t in threading.enumerate())


@pytest.mark.postgres
def test_writer_reconnects_after_its_connection_is_killed_postgres(postgres_url, writer_factory):
    db.upgrade(postgres_url)
    w = writer_factory(postgres_url)
    w.start()
    sid = "FIX.4.4:FIXGW->CLIENT44"
    w.record(sid, "I", heartbeat(1))
    assert w.flush(5)
    admin = db.make_engine(postgres_url)
    try:
        with admin.begin() as conn:  # what a server restart or a network cut does to the writer's session
            killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
        assert killed >= 1
        for seq in range(2, 12):
            w.record(sid, "I", heartbeat(seq))
        assert w.flush(10)
        assert w.healthy and w.committed == 11
        assert w.last_error is not None  # it did fail once, and recovered
    finally:
        admin.dispose()
    assert [r.seq_num for r in iter_messages(postgres_url, session_id=sid)] == list(range(1, 12))


def test_odd_arguments_cannot_block_the_journal(database_url, writer_factory):
    w = writer_factory(database_url)
    w.start()
    w.record(b"FIX.4.4:FIXGW->CLIENT44", "I", heartbeat(1).encode())  # type: ignore[arg-type]
    w.record(None, "O", heartbeat(2))  # type: ignore[arg-type]
    w.event(None, 42)  # type: ignore[arg-type]
    assert w.flush(5) and w.healthy
    rows = list(iter_messages(database_url))
    assert [(r.session_id, r.seq_num, r.msg_type) for r in rows] == [
        ("FIX.4.4:FIXGW->CLIENT44", 1, "0"), ("", 2, "0")]
    assert [(e.session_id, e.text) for e in iter_events(database_url)] == [("", "42")]


# ------------------------------------------------------------------ fixgw db


def _config(tmp_path, url: str):
    path = tmp_path / "gw.cfg"
    path.write_text(f'[journal]\ndatabase_url = "{url}"\n')
    return str(path)


def test_cli_current_and_upgrade(database_url, tmp_path):
    db.downgrade(database_url, "base")
    cfg = _config(tmp_path, database_url)
    runner = CliRunner()
    res = runner.invoke(db_cli, ["current", "-c", cfg])
    assert res.exit_code == 1, res.output
    assert "current revision: none" in res.output and "head revision:    0012" in res.output
    assert f"fixgw db upgrade -c {cfg}" in res.output

    res = runner.invoke(db_cli, ["upgrade", "--config", cfg])
    assert res.exit_code == 0, res.output
    assert "revision before: none" in res.output and "revision after:  0012" in res.output

    res = runner.invoke(db_cli, ["current", "-c", cfg])
    assert res.exit_code == 0, res.output
    assert "up to date" in res.output
    db.check_schema(database_url)


def test_cli_errors_are_one_line_and_hide_passwords(tmp_path):
    runner = CliRunner()
    res = runner.invoke(db_cli, ["current", "-c", str(tmp_path / "missing.cfg")])
    assert res.exit_code == 2 and "cannot read config" in res.output  # 1 is kept for "not up to date"
    assert "Traceback" not in res.output

    cfg = _config(tmp_path, "sqlite:///j.db")
    url = "postgresql+psycopg://fixgw:s3cret@127.0.0.1:1/journal"  # nothing listens on port 1
    for cmd in ("current", "upgrade"):
        res = runner.invoke(db_cli, [cmd, "-c", cfg], env={"FIXGW_DATABASE_URL": url})
        assert res.exit_code == 2, res.output
        assert "cannot connect to the journal database postgresql+psycopg://fixgw:***@127.0.0.1:1/journal" \
            in res.output
        assert "s3cret" not in res.output and "Traceback" not in res.output


# ------------------------------------------------------------------ the spool: nothing lost to kill -9
_KILLED_WRITER = """
import os, signal, sys
from gateway.journal.writer import JournalWriter
url, spool = sys.argv[1], sys.argv[2]
w = JournalWriter(url, flush_interval_ms=60_000, spool_dir=spool)
w.start()
for i in range(1, 301):
    w.record("FIX.4.4:GW->C", "I", f"8=FIX.4.4\\x019=5\\x0135=D\\x0134={i}\\x0111=C{i}\\x0110=000\\x01")
    if i == 100:
        assert w.flush(10)
w.event("FIX.4.4:GW->C", "an event, spooled like a message")
os.kill(os.getpid(), signal.SIGKILL)  # 200 rows and an event spooled, never committed
"""


def test_rows_spooled_but_not_committed_when_the_process_is_killed_are_imported_at_the_next_start(
        database_url, tmp_path):
    import subprocess
    import sys

    from gateway.journal.db import make_engine
    from gateway.journal.verify import verify_database

    spool = tmp_path / "spool"
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, database_url, str(spool)], timeout=60)
    assert done.returncode == -9
    assert count_messages(database_url) == 100

    w = JournalWriter(database_url, spool_dir=spool)
    w.start()
    assert w.spool_recovered == 201  # the 200 messages and the event
    w.record("FIX.4.4:GW->C", "I", "8=FIX.4.4\x019=5\x0135=0\x0134=301\x0110=000\x01")
    assert w.stop()
    seqs = [row.seq_num for row in iter_messages(database_url)]
    assert seqs == list(range(1, 302))  # once each, in order
    assert list(spool.glob("*.bin")) == []  # a clean stop leaves nothing to import
    engine = make_engine(database_url)
    try:
        assert verify_database(engine).ok
    finally:
        engine.dispose()
    assert any("recovered from its spool" in e.text for e in iter_events(database_url))
    assert [e.text for e in iter_events(database_url)].count("an event, spooled like a message") == 1

    again = JournalWriter(database_url, spool_dir=spool)
    again.start()
    assert again.spool_recovered == 0
    again.stop()
    assert count_messages(database_url) == 301


def test_a_row_the_database_refuses_mid_batch_commits_none_of_the_batch(sqlite_url):
    """The SQLite INSERTs are OR FAIL (no statement journal; inserts.py): a row refused mid-statement must still
    leave nothing of its batch, since the whole transaction is rolled back; the next batch commits as usual."""
    from gateway.journal.chain import HashChain
    from gateway.journal.inserts import BatchInserter
    from gateway.journal.verify import verify_database

    db.upgrade(sqlite_url)
    engine = db.make_engine(sqlite_url)
    try:
        inserter = BatchInserter(engine, HashChain(None))

        def row(seq: int, direction: str = "I") -> tuple:
            return ("S1", direction, seq, "D", f"C{seq}", None, False, 1_000 + seq, f"8=FIX.4.4\x0134={seq}\x01", False)

        inserter.write([row(1), row(2)], [("S1", 1_000, "ok")], ("spool-1.bin", 100))
        with pytest.raises(Exception):
            inserter.write([row(3), row(4, direction="X"), row(5)], [("S1", 1_004, "lost")], ("spool-1.bin", 300))
        inserter.close(invalidate=True)
        inserter.write([row(3), row(4), row(5)], [], ("spool-1.bin", 300))
        inserter.close(invalidate=False)
        with engine.connect() as conn:
            seqs = [r[0] for r in conn.execute(text("SELECT seq_num FROM journal_messages ORDER BY id"))]
            assert seqs == [1, 2, 3, 4, 5]
            assert [r[0] for r in conn.execute(text("SELECT text FROM session_events"))] == ["ok"]
        result = verify_database(engine)
        assert result.problem is None and result.checked == 5
    finally:
        engine.dispose()
