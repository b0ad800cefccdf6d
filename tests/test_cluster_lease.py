"""The leadership lease on PostgreSQL (gateway/cluster/lease.py): acquire, renew, expiry, takeover, release,
the token strictly increasing, exactly one winner among concurrent acquirers, and SQLite refused clearly.

Lease ttl 1 s (tests/cluster_fixtures.py TTL); each test has its own database (postgres_url)."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from gateway.cluster.fence import StaleLeadership, fenced
from gateway.cluster.lease import FailoverNeedsPostgres, Lease
from gateway.journal.db import make_engine, upgrade
from tests.cluster_fixtures import TTL


def test_sqlite_refuses_with_a_message_that_failover_needs_postgres(sqlite_url):
    upgrade(sqlite_url)  # the table exists on SQLite too; the lease still refuses
    engine = make_engine(sqlite_url)
    try:
        with pytest.raises(FailoverNeedsPostgres, match=r"failover needs PostgreSQL.*sqlite.*postgresql\+psycopg"):
            Lease(engine, "main")
        with engine.connect() as conn, pytest.raises(FailoverNeedsPostgres, match="failover needs PostgreSQL"):
            with fenced(conn, "main", 1):
                pass
    finally:
        engine.dispose()


def test_acquire_read_renew_release(lease):
    assert lease.read() is None  # never acquired
    token = lease.try_acquire("a", TTL)
    assert token == 1
    status = lease.read()
    assert (status.cluster, status.holder, status.token) == (lease.cluster, "a", 1)
    assert status.held and not status.expired
    assert 0 < status.remaining <= TTL and 0 <= status.age < 0.5 and 0 <= status.held_for < 0.5
    assert status.expires_at > status.renewed_at >= status.acquired_at

    time.sleep(0.3)
    before = lease.read()
    assert before.age >= 0.3 and before.remaining <= TTL - 0.3
    assert lease.renew("a", token, TTL) is True
    after = lease.read()
    assert after.renewed_at > before.renewed_at and after.expires_at > before.expires_at
    assert after.acquired_at == before.acquired_at and after.token == token  # a renewal is not a new term
    assert after.age < 0.2 and after.held_for >= 0.3

    assert lease.renew("b", token, TTL) is False  # not b's
    assert lease.renew("a", token + 1, TTL) is False  # not a token ever handed out
    assert lease.release("a", token) is True
    released = lease.read()
    assert released.holder is None and released.token == token and not released.held
    assert lease.release("a", token) is False and lease.renew("a", token, TTL) is False


def test_held_lease_is_not_taken_until_it_expires(lease):
    assert lease.try_acquire("a", TTL) == 1
    assert lease.try_acquire("b", TTL) is None
    time.sleep(TTL / 2)
    assert lease.try_acquire("b", TTL) is None  # still held
    time.sleep(TTL / 2 + 0.15)
    assert lease.read().expired
    assert lease.try_acquire("b", TTL) == 2  # expired: taken, with a new token
    status = lease.read()
    assert status.holder == "b" and status.held
    assert lease.try_acquire("a", TTL) is None


def test_renew_after_expiry_fails_once_another_took_it(lease):
    token_a = lease.try_acquire("a", TTL)
    time.sleep(TTL + 0.15)
    assert lease.renew("a", token_a, TTL) is True  # expired but nobody took it: still a's term
    time.sleep(TTL + 0.15)
    token_b = lease.try_acquire("b", TTL)
    assert token_b == token_a + 1
    assert lease.renew("a", token_a, TTL) is False
    assert lease.read().holder == "b"
    assert lease.renew("b", token_b, TTL) is True


def test_acquire_of_our_own_lease_is_a_new_term_that_fences_the_old_one(lease, lease_engine):
    """An instance restarted under the same name takes its lease back at once, and the previous incarnation
    (which may only have been paused) is fenced: its token is no longer current."""
    old = lease.try_acquire("a", TTL)
    new = lease.try_acquire("a", TTL)
    assert new == old + 1
    assert lease.renew("a", old, TTL) is False and lease.renew("a", new, TTL) is True
    with lease_engine.connect() as conn, pytest.raises(StaleLeadership):
        with fenced(conn, lease.cluster, old):
            pass


def test_release_lets_another_acquire_at_once(lease):
    token_a = lease.try_acquire("a", 30)  # long ttl: only the release can free it in time
    assert lease.try_acquire("b", TTL) is None
    assert lease.release("a", token_a)
    assert lease.try_acquire("b", TTL) == token_a + 1


def test_token_strictly_increases_across_every_change_of_holder(lease):
    tokens = []
    for instance in ["a", "b", "a", "a", "c", "b"]:
        token = lease.try_acquire(instance, TTL)
        assert token is not None
        tokens.append(token)
        assert lease.release(instance, token)
    assert tokens == sorted(set(tokens)) and tokens[0] == 1
    assert lease.read().token == tokens[-1]


def test_clusters_are_independent(lease_engine):
    one, two = Lease(lease_engine, "one"), Lease(lease_engine, "two")
    assert one.try_acquire("a", TTL) == 1
    assert two.try_acquire("b", TTL) == 1
    assert one.read().holder == "a" and two.read().holder == "b"


def test_ttl_must_be_positive(lease):
    for ttl in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            lease.try_acquire("a", ttl)
    with pytest.raises(ValueError, match="cluster name"):
        Lease(lease.engine, "")


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_acquire_exactly_one_wins(lease_url, round_):
    """Eight instances, each on its own engine, race for a free lease (first round: the row does not exist yet,
    so they also race to insert it; later rounds: it expired): exactly one gets a token."""
    cluster = "race"
    engines = [make_engine(lease_url) for _ in range(8)]
    try:
        leases = [Lease(e, cluster) for e in engines]
        for e in engines:  # connections open before the start line, so the race is on the lease, not on connect
            with e.connect() as conn:
                conn.execute(text("SELECT 1"))
        for past in range(round_):  # earlier rounds left an expired lease behind
            assert leases[past].try_acquire(f"earlier-{past}", 0.05) is not None
            time.sleep(0.1)
        start = threading.Barrier(len(leases))
        results: dict[str, int | None] = {}

        def run(i: int) -> None:
            start.wait()
            results[f"i{i}"] = leases[i].try_acquire(f"i{i}", TTL)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(leases))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        winners = {k: v for k, v in results.items() if v is not None}
        assert len(results) == 8 and len(winners) == 1, results
        (winner, token), = winners.items()
        status = leases[0].read()
        assert (status.holder, status.token) == (winner, token) and token == round_ + 1
    finally:
        for e in engines:
            e.dispose()


# ---------------------------------------------------------------------------- planned handover (revision 0009)
def test_a_handover_asked_reaches_the_holder_at_its_next_renewal_and_not_before_it_is_asked(lease):
    token = lease.try_acquire("a", 30)
    assert lease.renew_term("a", token, 30).handover_to is None
    assert lease.ask_handover("b") == ("a", token)
    assert lease.renew_term("a", token, 30).handover_to == "b"
    assert lease.renew_term("a", token - 1, 30) is None  # a stale term hears nothing


def test_a_handover_cannot_be_asked_of_a_lease_no_one_holds(lease):
    assert lease.ask_handover(None) is None
    token = lease.try_acquire("a", 30)
    lease.release("a", token)
    assert lease.ask_handover(None) is None


def test_the_lease_handed_to_an_instance_is_its_own_to_take_and_fences_the_old_term(lease, lease_engine):
    token = lease.try_acquire("a", 30)
    lease.ask_handover("b")
    assert lease.hand_over("a", token, "b", 30, clean=True)
    with lease_engine.connect() as conn, pytest.raises(StaleLeadership):
        with fenced(conn, lease.cluster, token):
            pass
    assert lease.try_acquire("c", 30) is None  # reserved for b until it expires
    taken = lease.take("b", 30)
    assert taken.token == token + 2 and taken.previous_holder == "b" and taken.previous_clean
    assert lease.renew_term("b", taken.token, 30).handover_to is None  # the request was used up


def test_an_acquire_says_whether_the_last_term_ended_with_a_clean_stop(lease):
    t1 = lease.try_acquire("a", 30)
    lease.release("a", t1, clean=True)
    taken = lease.take("b", TTL)
    assert taken.previous_clean and taken.previous_holder is None
    time.sleep(TTL + 0.2)  # b dies: its lease expires, never released
    again = lease.take("c", TTL)
    assert again.token == taken.token + 1 and not again.previous_clean and again.previous_holder == "b"
    lease.release("c", again.token)  # released, not clean (say, its journal could not commit everything)
    assert not lease.take("a", TTL).previous_clean
