"""Fenced writes (gateway/cluster/fence.py) and their races with a takeover, on PostgreSQL: a write under a stale
token is refused and leaves nothing; a write in flight when the standby acquires commits before the acquire or
not at all; a holder paused inside a fenced transaction cannot block the takeover past the idle timeout; the
holder's renewals and its own writes never wait for each other."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.cluster.fence import StaleLeadership, check_fence, fenced
from gateway.cluster.lease import Lease
from gateway.journal.db import make_engine
from tests.cluster_fixtures import TTL, count_writes, wait_for, write

INSERT = text("INSERT INTO fenced_writes (writer, token, n) VALUES (:w, :t, :n)")


def expire_and_take(lease, instance: str = "b") -> int:
    time.sleep(TTL + 0.15)
    token = lease.try_acquire(instance, TTL)
    assert token is not None
    return token


def test_fenced_write_commits_under_the_current_token(lease, lease_engine):
    token = lease.try_acquire("a", TTL)
    write(lease_engine, lease.cluster, "a", token)
    assert count_writes(lease_engine, "a") == 1


def test_after_a_takeover_every_write_under_the_old_token_is_refused(lease, lease_engine):
    """The paused holder's case: its lease expired and was taken while it was away; whatever it then tries
    to write is refused, and leaves nothing behind."""
    token_a = lease.try_acquire("a", TTL)
    write(lease_engine, lease.cluster, "a", token_a, 1)
    token_b = expire_and_take(lease)
    for n in range(2, 7):
        with pytest.raises(StaleLeadership, match=f"fencing token {token_a} is no longer current"):
            write(lease_engine, lease.cluster, "a", token_a, n)
    write(lease_engine, lease.cluster, "b", token_b)
    assert count_writes(lease_engine, "a") == 1 and count_writes(lease_engine, "b") == 1


def test_after_a_release_writes_under_the_released_token_are_refused(lease, lease_engine):
    token = lease.try_acquire("a", TTL)
    assert lease.release("a", token)
    with pytest.raises(StaleLeadership):
        write(lease_engine, lease.cluster, "a", token)
    assert count_writes(lease_engine, "a") == 0


def test_a_refused_fence_inside_the_callers_transaction_leaves_nothing(lease, lease_engine):
    token_a = lease.try_acquire("a", TTL)
    expire_and_take(lease)
    with lease_engine.connect() as conn:
        conn.execute(INSERT, {"w": "a", "t": token_a, "n": 1})  # the caller's transaction began before the fence
        with pytest.raises(StaleLeadership):
            check_fence(conn, lease.cluster, token_a)
        conn.rollback()
    assert count_writes(lease_engine, "a") == 0


def test_a_write_in_flight_at_the_takeover_commits_before_the_acquire(lease, lease_url, lease_engine):
    """The holder is past its fence, mid-transaction, when its lease expires: the standby's acquire waits for
    that transaction, so the write is in the database before the new token exists."""
    token_a = lease.try_acquire("a", TTL)
    other = make_engine(lease_url)
    acquired: list = []
    try:
        with lease_engine.connect() as conn, fenced(conn, lease.cluster, token_a, idle_timeout=10):
            conn.execute(INSERT, {"w": "a", "t": token_a, "n": 1})
            time.sleep(TTL + 0.15)  # the lease expires while the transaction is open
            standby = threading.Thread(target=lambda: acquired.append(Lease(other, lease.cluster)
                                                                      .try_acquire("b", TTL, wait=10)))
            standby.start()
            time.sleep(0.5)
            assert standby.is_alive() and acquired == []  # the acquire waits for the write in flight
            conn.execute(INSERT, {"w": "a", "t": token_a, "n": 2})
        standby.join(10)
        assert acquired == [token_a + 1]
        assert count_writes(lease_engine, "a") == 2
        with pytest.raises(StaleLeadership):
            write(lease_engine, lease.cluster, "a", token_a, 3)
    finally:
        other.dispose()


def test_a_fence_waiting_on_an_acquire_in_progress_is_refused_when_it_commits(lease, lease_url, lease_engine):
    """The acquire holds the row FOR UPDATE; a fence that arrives then waits, and sees the new token."""
    token_a = lease.try_acquire("a", TTL)
    time.sleep(TTL + 0.15)
    acquirer = make_engine(lease_url)
    outcome: list = []

    def old_holder_writes() -> None:
        try:
            write(lease_engine, lease.cluster, "a", token_a)
            outcome.append("written")
        except StaleLeadership:
            outcome.append("refused")

    try:
        with acquirer.begin() as conn:  # the acquire's steps, held open in the middle
            conn.execute(text("SELECT 1 FROM cluster_lease WHERE name = :n FOR UPDATE"), {"n": lease.cluster})
            writer = threading.Thread(target=old_holder_writes)
            writer.start()
            time.sleep(0.4)
            assert writer.is_alive() and outcome == []
            conn.execute(text("UPDATE cluster_lease SET holder = 'b', token = token + 1, "
                              "expires_at = now() + interval '1 second' WHERE name = :n"), {"n": lease.cluster})
        writer.join(10)
        assert outcome == ["refused"] and count_writes(lease_engine, "a") == 0
    finally:
        acquirer.dispose()


def test_writes_racing_a_takeover_commit_before_it_or_are_refused(lease, lease_url, lease_engine):
    """Three writer threads of the old holder write as fast as they can while the standby takes over: every
    write either committed before the acquire returned (the count then does not move) or was refused."""
    token_a = lease.try_acquire("a", TTL)
    time.sleep(TTL + 0.15)
    stop = threading.Event()
    outcomes: list[tuple[float, str]] = []
    engines = [make_engine(lease_url) for _ in range(4)]

    def writer(engine, k: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                write(engine, lease.cluster, "a", token_a, k * 100000 + n)
                outcomes.append((started, "written"))
            except StaleLeadership:
                outcomes.append((started, "refused"))

    try:
        threads = [threading.Thread(target=writer, args=(engines[k], k)) for k in range(3)]
        for t in threads:
            t.start()
        assert wait_for(lambda: len(outcomes) >= 30, 10)
        token_b = None
        while token_b is None:  # writers under the old token may hold it up; the acquire retries, as a standby does
            token_b = Lease(engines[3], lease.cluster).try_acquire("b", TTL, wait=0.5)
        acquired = time.monotonic()
        at_acquire = count_writes(engines[3], "a")
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(10)
        assert count_writes(engines[3], "a") == at_acquire  # nothing of the old holder's committed after
        after = [o for started, o in outcomes if started > acquired]
        assert after and set(after) == {"refused"}
        assert "written" in {o for _, o in outcomes}
    finally:
        stop.set()
        for e in engines:
            e.dispose()


def test_a_holder_paused_inside_a_fenced_transaction_cannot_block_the_takeover(lease, lease_url, lease_engine):
    """The old active stops (SIGSTOP, a frozen VM) between its fence and its COMMIT: the server ends the idle
    transaction after the fence's idle timeout, the standby's acquire goes through, and the paused holder's
    COMMIT fails when it resumes: the write never happened."""
    token_a = lease.try_acquire("a", TTL)
    conn = lease_engine.connect()
    conn.begin()
    check_fence(conn, lease.cluster, token_a, idle_timeout=0.5)
    conn.execute(INSERT, {"w": "a", "t": token_a, "n": 1})
    # ... and here the holder is paused
    time.sleep(TTL + 0.15)
    other = make_engine(lease_url)
    try:
        started = time.monotonic()
        assert Lease(other, lease.cluster).try_acquire("b", TTL, wait=5) == token_a + 1
        assert time.monotonic() - started < 2
        with pytest.raises(DBAPIError):  # the holder resumes: its session is gone
            conn.commit()
        conn.close()
        assert count_writes(other, "a") == 0
    finally:
        other.dispose()


def test_an_acquire_blocked_by_writes_gives_up_after_wait(lease, lease_engine, lease_url):
    token_a = lease.try_acquire("a", TTL)
    time.sleep(TTL + 0.15)
    other = make_engine(lease_url)
    try:
        with lease_engine.connect() as conn, fenced(conn, lease.cluster, token_a, idle_timeout=10):
            started = time.monotonic()
            assert Lease(other, lease.cluster).try_acquire("b", TTL, wait=0.3) is None
            assert time.monotonic() - started < 2
            assert lease.read().holder == "a"
    finally:
        other.dispose()


def test_renewal_does_not_wait_for_the_holders_writes_in_flight(lease, lease_engine, lease_url):
    token = lease.try_acquire("a", TTL)
    other = make_engine(lease_url)
    try:
        with lease_engine.connect() as conn, fenced(conn, lease.cluster, token, idle_timeout=10):
            conn.execute(INSERT, {"w": "a", "t": token, "n": 1})
            started = time.monotonic()
            assert Lease(other, lease.cluster).renew("a", token, TTL, timeout=0.5) is True
            assert time.monotonic() - started < 0.5
            # and a write after the renewal, in the same transaction, still holds: the lock survived the update
            conn.execute(INSERT, {"w": "a", "t": token, "n": 2})
        assert count_writes(lease_engine, "a") == 2
    finally:
        other.dispose()
