"""The journal of a cluster (PostgreSQL): each instance resumes its own spool, the instances' writers take turns
on the one hash chain, and a deposed instance's writer commits nothing (its rows wait in its spool for its next
start). Drop copy's ledgers are fenced the same way."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from gateway.cluster.fence import check_fence
from gateway.journal.db import dropcopy_state, journal_messages
from gateway.journal.fencing import StaleLeadership, Term
from gateway.journal.process import ProcessJournalWriter
from gateway.journal.verify import HMAC_KEY_ENV, verify_database
from gateway.journal.writer import JournalWriter

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    monkeypatch.delenv(HMAC_KEY_ENV, raising=False)


def msg(seq: int, who: str) -> str:
    return f"8=FIX.4.4\x019=10\x0135=D\x0134={seq}\x0149={who}\x0156=GW\x0111={who}{seq}\x0110=000\x01"


def journaled(engine, who: str) -> list[int]:
    """The MsgSeqNums journaled for session ``who``, in journal order."""
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(journal_messages.c.seq_num)
                                           .where(journal_messages.c.session_id == who)
                                           .order_by(journal_messages.c.id))]


def killed(j: ProcessJournalWriter) -> None:
    """The gateway 'dies': its writer process sees EOF on stdin and exits at once, committing nothing more."""
    j._child_stopping = True
    j._child.stdin.close()
    j._child.wait(10)


def test_each_instance_resumes_its_own_spool_whatever_the_other_instances_committed(lease_url, lease_engine,
                                                                                     tmp_path):
    a = ProcessJournalWriter(lease_url, spool_dir=tmp_path / "a", instance="a")
    a.start()
    for i in range(1, 51):
        a.record("A", "I", msg(i, "A"))
    assert a.flush(10)
    killed(a)
    for i in range(51, 81):
        a.record("A", "I", msg(i, "A"))  # spooled by the killed instance, never committed
    b = JournalWriter(lease_url, spool_dir=tmp_path / "b", instance="b")  # the successor journals on
    b.start()
    for i in range(1, 101):
        b.record("B", "I", msg(i, "B"))
    assert b.flush(10) and b.stop()

    again = JournalWriter(lease_url, spool_dir=tmp_path / "a", instance="a")  # a restarts (as a standby)
    again.start()
    assert again.spool_recovered == 30  # exactly its own uncommitted tail: not none, not all of it
    assert again.flush(10) and again.stop()
    assert journaled(lease_engine, "A") == list(range(1, 81))
    assert journaled(lease_engine, "B") == list(range(1, 101))
    assert verify_database(lease_engine).ok


def test_the_instances_writers_take_turns_on_the_hash_chain(lease_url, lease_engine):
    writers = [JournalWriter(lease_url, batch_max=7, flush_interval_ms=0, instance=name) for name in "abc"]
    for w in writers:
        w.start()

    def write(w: JournalWriter) -> None:
        for i in range(1, 301):
            w.record(w.instance, "I", msg(i, w.instance))

    threads = [threading.Thread(target=write, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in writers:
        assert w.flush(20) and w.stop()
    ids = {name: journaled(lease_engine, name) for name in "abc"}
    assert ids == {name: list(range(1, 301)) for name in "abc"}
    with lease_engine.connect() as conn:
        sessions = [r[0] for r in conn.execute(select(journal_messages.c.session_id).order_by(journal_messages.c.id))]
    assert len({tuple(sessions[i:i + 7]) for i in range(0, len(sessions), 7)}) > 3  # the writers did interleave
    result = verify_database(lease_engine)
    assert result.ok, result.problems[:3]


def test_a_deposed_instances_journal_commits_nothing_and_its_next_start_journals_what_it_spooled(
        lease, lease_url, lease_engine, tmp_path):
    token = lease.try_acquire("a", 30)
    a = ProcessJournalWriter(lease_url, spool_dir=tmp_path / "a", instance="a")
    a.start()
    a.set_term(Term(lease.cluster, token))
    for i in range(1, 21):
        a.record("A", "I", msg(i, "A"))
    assert a.flush(10) and a.healthy

    assert lease.release("a", token) and lease.try_acquire("b", 30) == token + 1  # b leads now
    for i in range(21, 31):
        a.record("A", "O", msg(i, "A"))  # what a paused, deposed active captured as it resumed
    assert not a.flush(1.5)
    assert journaled(lease_engine, "A") == list(range(1, 21))
    assert not a.healthy and "no longer current" in a.last_error
    killed(a)  # the lease keeper ends the deposed process

    again = JournalWriter(lease_url, spool_dir=tmp_path / "a", instance="a")  # a restarts as a standby
    again.start()
    assert again.spool_recovered == 10
    assert again.flush(10) and again.stop()
    assert journaled(lease_engine, "A") == list(range(1, 31))
    assert verify_database(lease_engine).ok


def test_a_writer_process_restarted_mid_term_keeps_fencing(lease, lease_url, lease_engine, tmp_path):
    token = lease.try_acquire("a", 30)
    a = ProcessJournalWriter(lease_url, spool_dir=tmp_path / "a", instance="a")
    a.start()
    a.set_term(Term(lease.cluster, token))
    first = a._child
    first.kill()  # restarted by the gateway, with the term in its configuration
    a._reader.join(10)
    assert a._child is not first
    assert lease.release("a", token) and lease.try_acquire("b", 30)
    a.record("A", "I", msg(1, "A"))
    assert not a.flush(1.5)
    assert journaled(lease_engine, "A") == []
    killed(a)


def test_a_deposed_instance_claims_no_more_drop_copies(lease, lease_url, lease_engine):
    from dropcopy.ledger import Ledger
    from gateway.dropcopy.watermarks import Watermarks

    token = lease.try_acquire("a", 30)
    marks = Watermarks(lease_engine, fence=lambda conn: check_fence(conn, lease.cluster, token))
    ledger = Ledger.fresh("DC1", (0, 0), "s1")
    marks.persist([ledger])
    ledger.claim((0, 100))
    marks.persist([ledger])
    assert lease.release("a", token) and lease.try_acquire("b", 30)
    ledger.claim((0, 200))
    with pytest.raises(StaleLeadership):
        marks.persist([ledger])
    with lease_engine.connect() as conn:
        assert conn.execute(select(dropcopy_state.c.claimed_id)).scalar_one() == 100


def test_a_term_crosses_the_pipe_to_the_writer_process_intact():
    term = Term("desk one", 42)
    assert Term.parse(term.text()) == term
