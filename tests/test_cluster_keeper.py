"""LeaseKeeper (gateway/cluster/keeper.py) on PostgreSQL: it keeps the lease by renewing every ttl/3, and calls
on_lost exactly once, by its own monotonic clock, when the lease is taken, when the database is cut off or
stalls, and when the process was paused past the expiry (a real SIGSTOP of a child process, which also shows
that the paused active writes nothing once it resumes)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.cluster.keeper import LeaseKeeper
from gateway.cluster.lease import Lease
from gateway.journal.db import make_engine
from tests.cluster_fixtures import TTL, TcpProxy, count_writes, cut_database, restore_database, wait_for

ROOT = Path(__file__).resolve().parent.parent
MARGIN = 0.5  # scheduling slack on a loaded 2-core box


class Losses:
    """An on_lost that records (monotonic time, reason) of each call."""

    def __init__(self):
        self.calls: list[tuple[float, str]] = []

    def __call__(self, reason: str) -> None:
        self.calls.append((time.monotonic(), reason))


def start_keeper(lease: Lease, instance: str = "a", ttl: float = TTL) -> tuple[LeaseKeeper, Losses]:
    losses = Losses()
    sent = time.monotonic()
    token = lease.try_acquire(instance, ttl)
    assert token is not None
    keeper = LeaseKeeper(lease, instance, token, ttl, losses, sent_at=sent)
    keeper.start()
    return keeper, losses


def test_keeper_keeps_the_lease_and_a_stop_is_not_a_loss(lease):
    keeper, losses = start_keeper(lease)
    try:
        time.sleep(2.2 * TTL)
        status = lease.read()
        assert status.holder == "a" and status.held and status.age < TTL / 3 + MARGIN
        assert keeper.renewals >= 4 and not keeper.lost and keeper.remaining() > 0
        assert lease.try_acquire("b", TTL) is None
    finally:
        keeper.stop()
    time.sleep(TTL + 0.2)
    assert losses.calls == [] and not keeper.lost  # stopped: it lapses quietly
    assert lease.read().expired


def test_keeper_tells_of_a_handover_asked_once_at_the_next_renewal_and_keeps_the_lease(lease):
    asked: list[str] = []
    sent = time.monotonic()
    token = lease.try_acquire("a", TTL)
    keeper = LeaseKeeper(lease, "a", token, TTL, Losses(), sent_at=sent, on_handover=asked.append)
    keeper.start()
    try:
        time.sleep(0.1)
        assert lease.ask_handover("b") == ("a", token)
        assert wait_for(lambda: asked, TTL / 3 + MARGIN)
        time.sleep(TTL)  # renewals go on while the gateway stops; the request is told once
        assert asked == ["b"] and keeper.handover_to == "b" and not keeper.lost
        assert lease.read().holder == "a" and lease.read().held
    finally:
        keeper.stop()


def test_keeper_reports_a_takeover_at_the_next_renewal(lease, lease_engine):
    keeper, losses = start_keeper(lease)
    try:
        time.sleep(0.1)
        with lease_engine.begin() as conn:  # someone else holds it now (say, an operator forced a handover)
            conn.execute(text("UPDATE cluster_lease SET holder = 'b', token = token + 1 WHERE name = :n"),
                         {"n": lease.cluster})
        taken = time.monotonic()
        assert wait_for(lambda: losses.calls, TTL / 3 + MARGIN)
        time.sleep(TTL + 0.2)
        assert len(losses.calls) == 1 and "no longer current" in losses.calls[0][1]
        assert losses.calls[0][0] - taken < TTL / 3 + MARGIN
        assert keeper.lost and lease.read().holder == "b"
    finally:
        keeper.stop()


def test_keeper_reports_a_loss_when_the_database_is_cut_off(lease, lease_url):
    """Its backend terminated (pg_terminate_backend) and no new connection accepted: every renewal fails, and
    at the local deadline (last renewal sent + ttl) on_lost is called, once."""
    keeper, losses = start_keeper(lease)
    try:
        assert wait_for(lambda: keeper.renewals >= 1, TTL)
        cut_database(lease_url)
        cut = time.monotonic()
        assert wait_for(lambda: losses.calls, TTL + MARGIN)
        assert losses.calls[0][0] - cut <= TTL + MARGIN and "not renewed within" in losses.calls[0][1]
        time.sleep(TTL)
        assert len(losses.calls) == 1
    finally:
        keeper.stop()
        restore_database(lease_url)


def test_keeper_rides_out_a_terminated_connection_while_the_database_is_up(lease, lease_url):
    """A backend cut alone is not a loss: the next renewal reconnects and the lease stays ours."""
    keeper, losses = start_keeper(lease)
    try:
        for _ in range(3):
            time.sleep(TTL / 2)
            cut_database(lease_url)
            restore_database(lease_url)
        time.sleep(TTL / 2)
        assert losses.calls == [] and lease.read().held and lease.read().holder == "a"
    finally:
        keeper.stop()


def test_keeper_reports_a_loss_while_its_renewal_hangs_on_a_stalled_network(lease_url):
    """Packets dropped, nothing closed: the renewal never returns, and the watchdog still calls on_lost at the
    local deadline."""
    proxy = TcpProxy()
    engine = make_engine(proxy.url(lease_url))
    try:
        keeper, losses = start_keeper(Lease(engine, "stall"))
        assert wait_for(lambda: keeper.renewals >= 1, TTL)
        proxy.stall()
        stalled = time.monotonic()
        assert wait_for(lambda: losses.calls, TTL + MARGIN)
        assert losses.calls[0][0] - stalled <= TTL + MARGIN and "not renewed within" in losses.calls[0][1]
        started = time.monotonic()
        keeper.stop(timeout=0.5)  # the renewer may still hang in the database call; stop does not
        assert time.monotonic() - started < 1.5
        assert len(losses.calls) == 1
    finally:
        proxy.close()
        engine.dispose()


def test_keeper_needs_a_positive_ttl(lease):
    with pytest.raises(ValueError, match="positive"):
        LeaseKeeper(lease, "a", 1, 0, lambda reason: None, sent_at=time.monotonic())


# The old active, in a child process: acquires, keeps the lease, and writes a fenced row every 20 ms, printing
# each attempt with its start time (CLOCK_MONOTONIC, the same clock as the test's). After on_lost it makes
# five more attempts, as a gateway that has not stopped yet would, then exits.
CHILD = r"""
import sys, threading, time
from sqlalchemy import text
from gateway.cluster.fence import StaleLeadership, fenced
from gateway.cluster.keeper import LeaseKeeper
from gateway.cluster.lease import Lease
from gateway.journal.db import make_engine

url, cluster, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
engine = make_engine(url)
lease = Lease(engine, cluster)
lost = threading.Event()
def on_lost(reason):
    print(f"LOST {time.monotonic()} {reason}", flush=True)
    lost.set()
sent = time.monotonic()
token = lease.try_acquire("a", ttl)
LeaseKeeper(lease, "a", token, ttl, on_lost, sent_at=sent).start()
print(f"TOKEN {token}", flush=True)
n, after_lost, end = 0, 0, time.monotonic() + 60
while after_lost < 5 and time.monotonic() < end:
    n += 1
    after_lost += lost.is_set()
    started = time.monotonic()
    try:
        with engine.connect() as conn, fenced(conn, cluster, token):
            conn.execute(text("INSERT INTO fenced_writes (writer, token, n) VALUES ('a', :t, :n)"),
                         {"t": token, "n": n})
        outcome = "WROTE"
    except StaleLeadership:
        outcome = "REFUSED"
    except Exception as exc:
        outcome = "ERROR"
    print(f"{outcome} {n} {started}", flush=True)
    time.sleep(0.02)
"""


def test_an_active_paused_past_its_lease_writes_nothing_once_it_resumes(lease_url, lease_engine):
    cluster = "paused"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, lease_url, cluster, str(TTL)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(child.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        assert wait_for(lambda: sum(line.startswith("WROTE") for line in lines) >= 5, 20), lines
        os.kill(child.pid, signal.SIGSTOP)
        token_a = int(next(line.split()[1] for line in lines if line.startswith("TOKEN")))

        standby = Lease(lease_engine, cluster)
        token_b, give_up = None, time.monotonic() + 10
        while token_b is None and time.monotonic() < give_up:  # after the expiry, and after a write the
            token_b = standby.try_acquire("b", TTL, wait=0.5)   # pause caught in flight was ended by the server
            time.sleep(0.05)
        assert token_b == token_a + 1
        at_takeover = count_writes(lease_engine, "a")

        resumed = time.monotonic()
        os.kill(child.pid, signal.SIGCONT)
        child.wait(30)
        reader.join(5)
        assert child.returncode == 0, child.stderr.read()
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGCONT)
            child.kill()
            child.wait(5)

    lost = [line for line in lines if line.startswith("LOST")]
    assert len(lost) == 1 and "not renewed within" in lost[0] and float(lost[0].split()[1]) >= resumed
    attempts = [(kind, int(n), float(started)) for kind, n, started in
                (line.split() for line in lines if line.split()[0] in ("WROTE", "REFUSED", "ERROR"))]
    after = [kind for kind, _, started in attempts if started >= resumed]
    assert len(after) >= 5 and set(after) == {"REFUSED"}, attempts  # every write after the resume: refused
    with lease_engine.connect() as conn:
        in_db = set(conn.execute(text("SELECT n FROM fenced_writes WHERE writer = 'a'")).scalars())
    assert in_db == {n for kind, n, _ in attempts if kind == "WROTE"}  # no write committed unreported ...
    assert count_writes(lease_engine, "a") == at_takeover  # ... and none after the takeover
    assert standby.read().holder == "b"
