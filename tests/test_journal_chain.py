"""The journal's hash chain: the writer computes it, `fixgw journal verify` checks it.

Tests taking ``database_url`` run on SQLite and on PostgreSQL (marker ``postgres``).
"""
from __future__ import annotations

from collections import namedtuple

import pytest
from click.testing import CliRunner
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, text

from gateway.journal import db
from gateway.cli.journal import journal as journal_cli
from gateway.journal.chain import HashChain
from gateway.journal.queries import iter_messages
from gateway.journal.verify import (
    CHECKPOINT_HASH,
    CHECKPOINT_ID,
    GENESIS,
    HMAC_KEY_ENV,
    ChainKeyError,
    ChainResult,
    chain_hash,
    checkpoint,
    encode_row,
    hasher_factory,
    verify_database,
    verify_rows,
)
from tests.test_journal import exec_report, heartbeat, new_order

SID = "FIX.4.4:FIXGW->CLIENT44"
KEY = "correct horse battery staple"


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv(HMAC_KEY_ENV, raising=False)


def write_journal(make, url, first_seq=1, n=12):
    """n messages (orders in, reports out, heartbeats) through a JournalWriter; stops it."""
    w = make(url, batch_max=5)
    w.start()
    for seq in range(first_seq, first_seq + n):
        if seq % 3 == 0:
            w.record(SID, "I", heartbeat(seq))
        elif seq % 3 == 1:
            w.record(SID, "I", new_order(seq, f"C{seq}"))
        else:
            w.record(SID, "O", exec_report(seq, f"O{seq}", f"C{seq - 1}"))
    assert w.stop(10)
    assert w.healthy, w.last_error


def verify(url, key=None):
    engine = db.make_engine(url)
    try:
        return verify_database(engine, None if key is None else key.encode())
    finally:
        engine.dispose()


def execute(url, sql, **params):
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql), params)
            return result.all() if result.returns_rows else None
    finally:
        engine.dispose()


def rows(url):
    return list(iter_messages(url))


def skip_ids(url, n):
    """Make the database skip n ids, as after a failed, rolled-back commit."""
    engine = db.make_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:  # identity values are consumed even when rolled back
                for _ in range(n):
                    conn.execute(db.journal_messages.insert().values(session_id="x", direction="I", ts_us=0,
                                                                     raw="r"))
                conn.rollback()
        else:  # SQLite rolls sqlite_sequence back with the insert; advance it directly
            with engine.begin() as conn:
                conn.execute(text("UPDATE sqlite_sequence SET seq = seq + :n WHERE name = 'journal_messages'"),
                             {"n": n})
    finally:
        engine.dispose()


def cli_config(tmp_path, url):
    path = tmp_path / "gw.cfg"
    path.write_text(f'[journal]\ndatabase_url = "{url}"\n')
    return str(path)


# ------------------------------------------------------------------ encoding


def test_encoding_is_length_prefixed_and_tells_null_from_empty():
    assert encode_row("S", "I", 12, "D", 1700, "8=FIX.4.4\x01") == b"1:S1:I2:121:D4:170010:8=FIX.4.4\x01"
    assert encode_row("S", "I", None, None, 1, "r") == b"1:S1:I--1:11:r"
    assert encode_row("S", "I", None, "", 1, "r") != encode_row("S", "I", None, None, 1, "r")
    # moving bytes between fields changes the encoding
    assert encode_row("AB", "I", 1, "D", 1, "r") != encode_row("A", "I", 1, "BD", 1, "r")
    assert encode_row("é", "O", 1, "8", 5, "x€") == b"2:\xc3\xa91:O1:11:81:54:x\xe2\x82\xac"  # UTF-8 byte lengths


@settings(max_examples=200, deadline=None)
@given(sid=st.text(max_size=12), seq=st.one_of(st.none(), st.integers(0, 10**18)),
       msg_type=st.one_of(st.none(), st.text(max_size=3)), ts=st.integers(0, 2**62),
       raw=st.text(max_size=40), direction=st.sampled_from("IO"), keyed=st.booleans())
def test_writer_fast_path_hashes_exactly_the_canonical_encoding(sid, seq, msg_type, ts, raw, direction, keyed):
    sid, raw = sid.encode("utf-8", "replace").decode(), raw.encode("utf-8", "replace").decode()
    assume(msg_type is None or msg_type.isascii() or not raw.isascii())  # the writer's MsgType comes from raw
    key = b"k" if keyed else None
    row = (sid, direction, seq, msg_type, None, None, False, ts, raw)
    (out,) = HashChain(key).link([row], GENESIS)
    h = hasher_factory(key)()
    h.update(GENESIS + encode_row(sid, direction, seq, msg_type, ts, raw))
    assert out == row + (h.finalize(), "")  # the hash, then the chain's name


def test_verify_rows_is_pure_over_any_iterable():
    R = namedtuple("R", "id session_id direction seq_num msg_type ts_us raw chain_hash")
    new = hasher_factory(None)
    out, prev = [], GENESIS
    for i in range(1, 4):
        h = new()
        h.update(prev + encode_row("S", "I", i, "0", i, f"raw{i}"))
        prev = h.finalize()
        out.append(R(i, "S", "I", i, "0", i, f"raw{i}", prev))
    assert verify_rows([]).ok and verify_rows([]).checked == 0
    res = verify_rows(iter(out))
    assert res.ok and res.checked == 3 and res.last_id == 3 and res.last_hash == prev
    bad = verify_rows([out[0], out[1]._replace(raw="RAW2"), out[2]])
    assert (bad.problem.id, bad.problem.kind, bad.checked) == (2, "altered", 1)


Row = namedtuple("Row", "id session_id direction seq_num msg_type ts_us raw chain_hash chain")


def chained(names, step=1):
    """One row per name of ``names``, in id order (ids step, 2 step, ...), on the chain of that name: every chain
    hashed on its own, as the writers of a sharded cluster's shards do."""
    new, prev, out = hasher_factory(None), {}, []
    for i, name in enumerate(names, 1):
        h = new()
        h.update(prev.get(name, GENESIS) + encode_row("S", "I", i, "0", i, f"raw{i}"))
        prev[name] = h.finalize()
        out.append(Row(i * step, "S", "I", i, "0", i, f"raw{i}", prev[name], name))
    return out


def test_verify_rows_checks_interleaved_chains_each_on_its_own():
    got = chained(["A", "B", "A", "A", "B", "", "B", "A"])
    res = verify_rows(iter(got))
    assert res.ok and res.checked == 8 and (res.last_id, res.last_hash) == (8, got[7].chain_hash)
    assert res.chains == {"A": ChainResult(4, 8, got[7].chain_hash), "B": ChainResult(3, 7, got[6].chain_hash),
                          "": ChainResult(1, 6, got[5].chain_hash)}
    # the same rows taken for one chain do not verify: each row follows its own chain's previous row
    assert not verify_rows(r._replace(chain="") for r in got).ok
    # rows without a chain attribute (older callers) are chain ''
    one = chained([""] * 3)
    res = verify_rows(Row._make(r[:-1] + ("",)) for r in one)
    assert res.ok and list(res.chains) == [""]


def test_an_altered_row_is_named_with_its_chain():
    got = chained(["A", "B", "A", "A", "A", "B", "A", "B"])
    # B's row 6 follows B's row 2: the ids between are A's, so the broken link is no removal
    res = verify_rows(got[:5] + [got[5]._replace(raw="RAW")] + got[6:])
    p = res.problem
    assert (p.id, p.chain, p.kind) == (6, "B", "altered") and "next row of chain B" in p.what
    assert res.checked == 5 and (res.last_id, res.last_hash) == (5, got[4].chain_hash)
    assert res.chains == {"A": ChainResult(4, 5, got[4].chain_hash), "B": ChainResult(1, 2, got[1].chain_hash)}
    # its stored hash changed instead: still altered, on chain A
    res = verify_rows(got[:6] + [got[6]._replace(chain_hash=bytes(32))] + got[7:])
    assert (res.problem.id, res.problem.chain, res.problem.kind) == (7, "A", "altered")


def test_a_row_deleted_from_one_chain_between_another_chains_rows_is_removed():
    got = chained(["A", "B", "A", "B", "A", "B", "A"])
    p = verify_rows(r for r in got if r.id != 4).problem  # B's second row, between A's rows 3 and 5
    assert (p.id, p.chain, p.kind) == (6, "B", "removed")
    assert "chain B is broken just before this row (1 of the ids 3..5 absent)" in p.what
    p = verify_rows(r for r in got if r.id != 5).problem  # A's third row
    assert (p.id, p.chain, p.kind) == (7, "A", "removed")
    # a chain's first row deleted: its second is the first to break
    p = verify_rows(r for r in got if r.id != 2).problem
    assert (p.id, p.chain, p.kind) == (4, "B", "removed")


def test_a_row_forged_into_one_chain_is_inserted():
    got = chained(["A", "B", "A", "B", "A"], step=10)  # ids 10, 20, ...: room for a forged row
    forged = got[1]._replace(id=25)  # a copy of B's first row, hash included
    p = verify_rows(got[:2] + [forged] + got[2:]).problem
    assert (p.id, p.chain, p.kind) == (25, "B", "inserted")
    assert "chain B continues from the row before it" in p.what


def test_each_chain_continues_from_its_own_checkpoint():
    got = chained(["A", "B", "", "A", "B", "A", "", "B"])
    # pruned up to id 3: A continues from row 1, B from row 2, '' from row 3
    meta = {CHECKPOINT_ID: "3", CHECKPOINT_HASH: got[2].chain_hash.hex(),
            f"{CHECKPOINT_HASH}:A": got[0].chain_hash.hex(), f"{CHECKPOINT_HASH}:B": got[1].chain_hash.hex(),
            "retention_checkpoint_at": "2026-11-24T12:00:00+00:00"}
    assert checkpoint(meta) == (3, {"": got[2].chain_hash, "A": got[0].chain_hash, "B": got[1].chain_hash})
    res = verify_rows(got[3:], checkpoint=checkpoint(meta))
    assert res.ok and res.checked == 5 and res.pruned_upto == 3 and set(res.chains) == {"", "A", "B"}
    # a chain without its key starts from the genesis: B's rows do not follow it
    del meta[f"{CHECKPOINT_HASH}:B"]
    p = verify_rows(got[3:], checkpoint=checkpoint(meta)).problem
    assert (p.id, p.chain) == (5, "B")
    # before revision 0012: only CHECKPOINT_HASH, chain ''s; a bare hash in verify_rows' checkpoint likewise
    assert checkpoint({CHECKPOINT_ID: "7", CHECKPOINT_HASH: ""}) == (7, {"": GENESIS})
    assert verify_rows(got[3:], checkpoint=(3, got[2].chain_hash)).problem.chain == "A"


# ------------------------------------------------------------------ schema


def test_schema_0002_matches_gateway_db_and_downgrades_cleanly(database_url):
    assert db.current_revision(database_url) == db.head_revision() == "0012"
    engine = db.make_engine(database_url)
    try:
        from alembic.autogenerate import compare_metadata
        from alembic.runtime.migration import MigrationContext

        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                    db.metadata) == []
        db.downgrade(engine, "0001")
        insp = inspect(engine)
        assert "journal_meta" not in insp.get_table_names()
        assert "chain_hash" not in {c["name"] for c in insp.get_columns("journal_messages")}
        # 0001's partial indexes survive the downgrade
        assert {i["name"] for i in insp.get_indexes("journal_messages")} == {
            "ix_journal_messages_session_id_id", "ix_journal_messages_ts_us",
            "ix_journal_messages_cl_ord_id", "ix_journal_messages_order_id"}
        db.upgrade(engine)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                    db.metadata) == []
    finally:
        engine.dispose()


# ------------------------------------------------------------------ verify


def test_a_journal_written_by_the_writer_verifies(database_url, writer_factory, no_key):
    write_journal(writer_factory, database_url, n=12)
    res = verify(database_url)
    assert res.ok and res.checked == 12 and res.legacy == 0
    got = rows(database_url)
    assert all(len(r.chain_hash) == 32 for r in got)
    assert res.last_id == got[-1].id and res.last_hash == bytes(got[-1].chain_hash)


def test_one_altered_byte_of_raw_is_named(database_url, writer_factory, no_key):
    write_journal(writer_factory, database_url)
    victim = rows(database_url)[6]
    k = victim.raw.index("\x0149=") + 4
    altered = victim.raw[:k] + chr(ord(victim.raw[k]) ^ 1) + victim.raw[k + 1:]
    execute(database_url, "UPDATE journal_messages SET raw = :raw WHERE id = :id", raw=altered, id=victim.id)
    res = verify(database_url)
    assert not res.ok
    p = res.problem
    assert (p.id, p.session_id, p.seq_num, p.kind) == (victim.id, SID, victim.seq_num, "altered")
    assert res.checked == 6


def test_an_altered_indexed_column_is_named(database_url, writer_factory, no_key):
    write_journal(writer_factory, database_url)
    victim = rows(database_url)[3]
    execute(database_url, "UPDATE journal_messages SET seq_num = seq_num + 1 WHERE id = :id", id=victim.id)
    assert verify(database_url).problem.id == victim.id


def test_a_deleted_row_is_named_by_the_row_after_the_gap(database_url, writer_factory, no_key):
    write_journal(writer_factory, database_url)
    before = rows(database_url)
    execute(database_url, "DELETE FROM journal_messages WHERE id = :id", id=before[4].id)
    p = verify(database_url).problem
    assert (p.id, p.seq_num, p.kind) == (before[5].id, before[5].seq_num, "removed")
    assert f"id {before[4].id} absent" in p.what


def test_deleting_the_first_chained_row_is_detected(database_url, writer_factory, no_key):
    write_journal(writer_factory, database_url)
    before = rows(database_url)
    execute(database_url, "DELETE FROM journal_messages WHERE id = :id", id=before[0].id)
    assert verify(database_url).problem.id == before[1].id


def test_an_id_gap_from_a_rolled_back_commit_is_not_tampering_but_a_forged_row_in_it_is(
        database_url, writer_factory, no_key):
    write_journal(writer_factory, database_url, first_seq=1, n=5)
    skip_ids(database_url, 3)
    write_journal(writer_factory, database_url, first_seq=6, n=5)
    got = rows(database_url)
    assert got[5].id == got[4].id + 4  # a real gap in the ids
    res = verify(database_url)
    assert res.ok and res.checked == 10

    # a forged row in the gap: a copy of row 3's values, hash included, under a new id
    src = got[2]
    forged_id = got[4].id + 2
    execute(database_url, "INSERT INTO journal_messages (id, session_id, direction, seq_num, msg_type, cl_ord_id, "
            "order_id, poss_dup, ts_us, raw, chain_hash) SELECT :new, session_id, direction, seq_num, msg_type, "
            "cl_ord_id, order_id, poss_dup, ts_us, raw, chain_hash FROM journal_messages WHERE id = :src",
            new=forged_id, src=src.id)
    p = verify(database_url).problem
    assert (p.id, p.seq_num, p.kind) == (forged_id, src.seq_num, "inserted")


def test_a_row_added_without_a_hash_is_named(database_url, writer_factory, no_key):
    write_journal(writer_factory, database_url, n=4)
    execute(database_url, "INSERT INTO journal_messages (session_id, direction, seq_num, ts_us, raw) "
            "VALUES ('FIX.4.4:X->Y', 'I', 99, 1, 'raw')")
    p = verify(database_url).problem
    assert (p.session_id, p.seq_num, p.kind) == ("FIX.4.4:X->Y", 99, "unhashed")


def test_the_chain_resumes_across_writer_restarts(database_url, writer_factory, no_key):
    for start in (1, 8, 15):
        write_journal(writer_factory, database_url, first_seq=start, n=7)
    res = verify(database_url)
    assert res.ok and res.checked == 21
    # and the restarts really linked up: cutting the link at a restart is detected
    got = rows(database_url)
    execute(database_url, "DELETE FROM journal_messages WHERE id = :id", id=got[6].id)
    assert verify(database_url).problem.id == got[7].id


def test_keyed_journal_needs_its_key(database_url, writer_factory, monkeypatch, tmp_path):
    monkeypatch.setenv(HMAC_KEY_ENV, KEY)
    write_journal(writer_factory, database_url, n=6)
    meta = dict(execute(database_url, "SELECT name, value FROM journal_meta"))
    assert meta["chain_mode"] == "hmac-sha256" and KEY not in str(meta)
    with pytest.raises(ChainKeyError, match=f"keyed.*set {HMAC_KEY_ENV}"):
        verify(database_url)
    with pytest.raises(ChainKeyError, match="not the key"):
        verify(database_url, "wrong key")
    res = verify(database_url, KEY)
    assert res.ok and res.checked == 6 and res.mode == "hmac-sha256"
    # an unkeyed recomputation of the chain does not pass for the keyed one
    got = rows(database_url)
    new, prev = hasher_factory(None), GENESIS
    for r in got:
        h = new()
        h.update(prev + encode_row(r.session_id, r.direction, r.seq_num, r.msg_type, r.ts_us, r.raw))
        prev = h.finalize()
        assert prev != bytes(r.chain_hash)

    runner = CliRunner()
    cfg = cli_config(tmp_path, database_url)
    monkeypatch.delenv(HMAC_KEY_ENV)
    res = runner.invoke(journal_cli, ["verify", "-c", cfg])
    assert res.exit_code == 2 and f"set {HMAC_KEY_ENV}" in res.output, res.output
    res = runner.invoke(journal_cli, ["verify", "-c", cfg], env={HMAC_KEY_ENV: KEY})
    assert res.exit_code == 0 and "OK: 6 rows" in res.output and "keyed" in res.output, res.output


def test_a_writer_without_the_key_refuses_to_extend_a_keyed_chain(sqlite_url, writer_factory, monkeypatch):
    db.upgrade(sqlite_url)
    monkeypatch.setenv(HMAC_KEY_ENV, KEY)
    write_journal(writer_factory, sqlite_url, n=3)
    monkeypatch.delenv(HMAC_KEY_ENV)
    w = writer_factory(sqlite_url)
    w.start()
    w.record(SID, "I", heartbeat(4))
    assert w.flush(0.5) is False  # kept, not written with the wrong chain
    assert not w.healthy and HMAC_KEY_ENV in w.last_error
    assert w.stop(timeout=0.2) is False  # the row stays unwritten rather than break the chain
    assert verify(sqlite_url, KEY).checked == 3


def test_rows_from_before_0002_are_reported_as_not_covered(database_url, writer_factory, no_key):
    db.downgrade(database_url, "0001")
    for seq in (1, 2, 3):
        execute(database_url, "INSERT INTO journal_messages (session_id, direction, seq_num, msg_type, ts_us, raw) "
                "VALUES (:s, 'I', :q, '0', 1, :raw)", s=SID, q=seq, raw=heartbeat(seq))
    db.upgrade(database_url)
    meta = dict(execute(database_url, "SELECT name, value FROM journal_meta"))
    legacy_max = max(r.id for r in rows(database_url))
    assert meta == {"chain_start_id": str(legacy_max), "chain_head:": ""}  # (0012: the head is the genesis)
    write_journal(writer_factory, database_url, first_seq=4, n=5)
    res = verify(database_url)
    assert res.ok and res.legacy == 3 and res.checked == 5
    got = rows(database_url)
    assert [r.chain_hash for r in got[:3]] == [None] * 3 and all(r.chain_hash for r in got[3:])
    # legacy rows are not covered (documented); chained rows still are
    execute(database_url, "UPDATE journal_messages SET raw = 'x' WHERE id = :id", id=got[0].id)
    assert verify(database_url).ok
    execute(database_url, "UPDATE journal_messages SET raw = 'x' WHERE id = :id", id=got[4].id)
    assert verify(database_url).problem.id == got[4].id


def test_newest_rows_cut_off_are_reported_truncated_because_the_head_is_recorded(database_url, writer_factory,
                                                                                 no_key):
    write_journal(writer_factory, database_url, n=8)
    got = rows(database_url)
    assert verify(database_url).ok
    execute(database_url, "DELETE FROM journal_messages WHERE id >= :id", id=got[-2].id)
    res = verify(database_url)
    assert res.problem.kind == "truncated" and res.problem.id == got[-3].id, res.problem
    assert "the chain's newest rows are gone" in res.problem.what and f"last row is id {got[-3].id}" in res.problem.what
    execute(database_url, "DELETE FROM journal_messages")
    assert "it has no row left" in verify(database_url).problem.what


def test_a_writer_continues_from_the_recorded_head_so_a_cut_tail_stays_visible(database_url, writer_factory, no_key):
    """Before revision 0012 a writer continued from the newest row left, so rows cut off while it was stopped were
    hidden by the next ones; it continues from the recorded head, and the gap shows as a removal."""
    write_journal(writer_factory, database_url, n=6)
    last = rows(database_url)[-1]
    execute(database_url, "DELETE FROM journal_messages WHERE id = :id", id=last.id)
    write_journal(writer_factory, database_url, first_seq=7, n=3)
    res = verify(database_url)
    assert res.problem.kind == "removed" and res.problem.id > last.id, res.problem


def test_verify_rows_reports_a_chain_that_no_longer_reaches_its_head():
    Row = namedtuple("Row", "id session_id direction seq_num msg_type ts_us raw chain_hash chain")
    new = hasher_factory(None)
    prev, made = {"a": GENESIS, "b": GENESIS}, []
    for i, name in enumerate("abab", start=1):
        r = Row(i, SID, "I", i, "0", i, heartbeat(i), None, name)
        prev[name] = chain_hash(new, prev[name], r)
        made.append(r._replace(chain_hash=prev[name]))
    assert verify_rows(made, heads=dict(prev)).ok
    res = verify_rows(made[:3], heads=dict(prev))  # b's newest row gone
    assert res.problem.kind == "truncated" and res.problem.chain == "b" and res.problem.id == 2
    assert verify_rows(made[:3], heads={"a": prev["a"]}).ok  # chain a is whole


# ------------------------------------------------------------------ CLI


def test_cli_verify_exit_codes_and_report(database_url, writer_factory, tmp_path, no_key):
    write_journal(writer_factory, database_url, n=5)
    cfg = cli_config(tmp_path, database_url)
    runner = CliRunner()
    res = runner.invoke(journal_cli, ["verify", "-c", cfg])
    assert res.exit_code == 0, res.output
    assert "OK: 5 rows, hash chain intact (unkeyed, SHA-256)" in res.output

    victim = rows(database_url)[2]
    execute(database_url, "UPDATE journal_messages SET raw = raw || 'x' WHERE id = :id", id=victim.id)
    res = runner.invoke(journal_cli, ["verify", "-c", cfg])
    assert res.exit_code == 1, res.output
    assert f"TAMPERED: record id {victim.id} (session {SID}, seq {victim.seq_num}): altered" in res.output


def test_cli_verify_errors_exit_2_in_one_line(tmp_path):
    runner = CliRunner()
    res = runner.invoke(journal_cli, ["verify", "-c", str(tmp_path / "missing.cfg")])
    assert res.exit_code == 2 and "cannot read config" in res.output and "missing.cfg" in res.output
    assert "Traceback" not in res.output

    cfg = cli_config(tmp_path, "sqlite:///j.db")
    url = "postgresql+psycopg://fixgw:s3cret@127.0.0.1:1/journal"  # nothing listens on port 1
    res = runner.invoke(journal_cli, ["verify", "-c", cfg], env={"FIXGW_DATABASE_URL": url})
    assert res.exit_code == 2, res.output
    assert "postgresql+psycopg://fixgw:***@127.0.0.1:1/journal" in res.output
    assert "s3cret" not in res.output and "Traceback" not in res.output

    res = runner.invoke(journal_cli, ["verify", "-c", cfg])  # a database without the schema
    assert res.exit_code == 2 and "fixgw db upgrade" in res.output, res.output


# ------------------------------------------------------------------ a sharded cluster's chains


def order(seq: int) -> tuple:
    """A BatchInserter row (gateway/journal/rows.py MESSAGE_COLUMNS)."""
    return (SID, "I", seq, "D", f"C{seq}", None, False, 1_000 + seq, new_order(seq, f"C{seq}"), False)


def test_two_shards_writing_side_by_side_on_postgresql_verify_together(postgres_url, tmp_path, no_key):
    import json
    import threading

    from gateway.journal.inserts import BatchInserter

    db.upgrade(postgres_url)
    engine = db.make_engine(postgres_url)
    try:
        east = BatchInserter(engine, HashChain(None, shared=True, chain="main/east"))
        west = BatchInserter(engine, HashChain(None, shared=True, chain="main/west"))
        for n in range(4):  # batches taking turns
            east.write([order(1000 + 10 * n + i) for i in range(3)], [])
            west.write([order(2000 + 10 * n + i) for i in range(3)], [])

        def shard(ins: BatchInserter, first: int) -> None:  # and side by side: their ids interleave
            for n in range(20):
                ins.write([order(first + 10 * n + i) for i in range(5)], [])

        threads = [threading.Thread(target=shard, args=(east, 5000)), threading.Thread(target=shard, args=(west, 7000))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        east.close(invalidate=False)
        west.close(invalidate=False)
        res = verify_database(engine)
    finally:
        engine.dispose()
    assert res.ok, res.problem
    assert res.checked == 224 and set(res.chains) == {"main/east", "main/west"}
    lasts = dict(execute(postgres_url, "SELECT chain, max(id) FROM journal_messages GROUP BY chain"))
    for name, c in res.chains.items():
        (h,) = execute(postgres_url, "SELECT chain_hash FROM journal_messages WHERE id = :id", id=lasts[name])[0]
        assert (c.checked, c.last_id, c.last_hash) == (112, lasts[name], bytes(h))
    assert res.last_id == max(lasts.values())

    runner = CliRunner()
    cfg = cli_config(tmp_path, postgres_url)
    out = runner.invoke(journal_cli, ["verify", "-c", cfg])
    assert out.exit_code == 0, out.output
    assert "OK: 224 rows, 2 hash chains intact (unkeyed, SHA-256)" in out.output
    for name, c in res.chains.items():
        assert f"chain {name}: 112 rows; last row: id {c.last_id}, chain hash {c.last_hash.hex()}" in out.output
    out = runner.invoke(journal_cli, ["verify", "-c", cfg, "--json"])
    data = json.loads(out.output)
    assert data["intact"] and data["chains"]["main/west"] == {
        "checked": 112, "last_id": lasts["main/west"], "last_hash": res.chains["main/west"].last_hash.hex()}

    victim = execute(postgres_url, "SELECT id, seq_num FROM journal_messages WHERE chain = 'main/west' "
                                   "ORDER BY id LIMIT 1 OFFSET 50")[0]
    execute(postgres_url, "UPDATE journal_messages SET raw = raw || 'x' WHERE id = :id", id=victim.id)
    out = runner.invoke(journal_cli, ["verify", "-c", cfg])
    assert out.exit_code == 1, out.output
    assert (f"TAMPERED: record id {victim.id} (chain main/west, session {SID}, seq {victim.seq_num}): altered"
            in out.output)
    assert "chain main/west: 50 rows; last intact row: id" in out.output
    out = runner.invoke(journal_cli, ["verify", "-c", cfg, "--json"])
    problem = json.loads(out.output)["problem"]
    assert (out.exit_code, problem["chain"], problem["kind"], problem["id"]) == (1, "main/west", "altered", victim.id)
