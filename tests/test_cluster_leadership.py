"""Leadership at start-up (gateway/cluster/leadership.py): in this process, a standby that takes a released
lease, a lost lease and a message after the term that end the process (os._exit replaced by a record); then two
`fixgw run --instance` processes on one PostgreSQL database. The second waits as a standby, binding nothing, while
the first leads; it takes over within the lease's ttl (and a margin) of the first being killed with SIGKILL, on
ports of its own or on the same ones; an active paused past its lease (SIGSTOP) ends by itself when it resumes,
before it sends or journals anything; a clean stop releases the lease."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.cluster.leadership import LEASE_LOST_EXIT_CODE
from gateway.journal.db import journal_messages, make_engine, upgrade
from sessions.client import FixClient, parse
from tests.cluster_instances import (
    ROOT,
    Instance,
    cluster_status,
    cluster_toml,
    roles_of,
    serving,
    wait_leader,
    wait_until,
)
from tests.fix_fixtures import free_port

TTL = 1.5
MARGIN = 2.0  # a standby polls every ttl/3 and wakes just after the expiry; the rest is a loaded 2-core machine
CLIENT = "FIX.4.4:FIXGW->CLIENT44"

pytestmark = pytest.mark.timeout(180)


# ---------------------------------------------------------------------------- in this process


class Exited(Exception):
    pass


@pytest.fixture
def member(lease_url):
    """Leaderships of instances of one cluster on the test database, with os._exit replaced by a record."""
    from gateway.cluster.leadership import Leadership
    from gateway.config import ClusterConfig

    made, exits = [], []

    def make(instance: str, ttl: float = 1.0, **kw) -> Leadership:
        cfg = ClusterConfig(name="unit", lease_ttl_s=ttl, instance_name=instance)
        leadership = Leadership(cfg, lease_url, exit=lambda code: exits.append((instance, code)), **kw)
        made.append(leadership)
        return leadership
    make.exits = exits
    yield make
    for leadership in made:
        if leadership.keeper is not None:
            leadership.keeper.stop()
        if leadership._heartbeat is not None:
            leadership._heartbeat.stop()
        leadership.engine.dispose()


def test_a_standby_takes_a_released_lease_at_its_next_poll_and_knows_who_held_it(member, lease_url):
    import threading

    from gateway.cluster.membership import read_members

    a, b = member("A"), member("B")
    assert a.wait_until_leading() == 1 and a.was_last_holder is False and a.previous_holder is None
    got = []
    waiter = threading.Thread(target=lambda: got.append(b.wait_until_leading()), daemon=True)
    waiter.start()
    wait_until(lambda: {m.instance: m.role for m in read_members(b.engine, "unit")}.get("B") == "standby", 10,
               "B's standby heartbeat")
    time.sleep(1.5)  # past a ttl: A renews, B keeps waiting
    assert not got and a.keeper.renewals >= 1
    a.stop()  # a planned stop: released, B need not wait for the expiry
    waiter.join(5)
    assert got == [2] and b.previous_holder == "A" and not b.was_last_holder
    roles = {m.instance: (m.role, m.token) for m in read_members(b.engine, "unit")}
    assert roles == {"A": ("stopped", 1), "B": ("active", 2)}
    assert member.exits == []
    # B stops, A comes back: another instance held it since A's term, so A may not trust its own stores
    b.stop()
    again = member("A")
    assert again.wait_until_leading() == 3 and not again.was_last_holder
    # and after A's own term, the next acquire of A is the next token: its stores are its own
    again.stop()
    third = member("A")
    assert third.wait_until_leading() == 4 and third.was_last_holder


def test_a_lost_lease_ends_the_process(member):
    from gateway.cluster.lease import Lease

    a = member("A")
    token = a.wait_until_leading()
    Lease(a.engine, "unit").release("A", token)  # as if taken from it: its next renewal finds out
    wait_until(lambda: member.exits, 5, "the keeper to report the loss")
    assert member.exits == [("A", LEASE_LOST_EXIT_CODE)]


def test_a_message_after_the_term_ends_the_process_before_it_is_sent(member):
    now = [1000.0]
    a = member("A", ttl=30.0, clock=lambda: now[0])  # the keeper's watchdog waits 30 s: the check comes first
    a.wait_until_leading()
    a.check_sending()  # within the term: nothing happens
    assert member.exits == []
    now[0] += 31  # the process "slept" past its lease: the first message it would send ends it
    a.check_sending()
    assert member.exits == [("A", LEASE_LOST_EXIT_CODE)]


def test_a_guarded_sink_checks_before_every_message_and_event():
    from gateway.cluster.leadership import GuardedSink

    calls = []

    class Sink:
        def record(self, session_id, direction, raw):
            calls.append(("record", direction))

        def event(self, session_id, text):
            calls.append(("event", text))

    sink = GuardedSink(Sink(), lambda: calls.append("check"))
    sink.record("S", "O", "8=FIX")
    sink.record("S", "I", "8=FIX")
    sink.event("S", "Connected")
    assert calls == ["check", ("record", "O"), "check", ("record", "I"), "check", ("event", "Connected")]


# ---------------------------------------------------------------------------- gateway processes


def _config(url: str, tmp: Path, ports: dict[str, dict[str, int]]) -> str:
    instances = {name: {"data_dir": tmp / name, **p} for name, p in ports.items()}
    return f"""
comp_id = "FIXGW"
data_dir = "{tmp / 'base'}"
log_level = "DEBUG"
[journal]
database_url = "{url}"
flush_interval_ms = 2
[clients.CLIENT44]
fix_version = "FIX.4.4"
""" + cluster_toml("pair", TTL, instances)


@pytest.fixture(params=["own ports"])
def pair(postgres_url, tmp_path, request):
    """Instances A and B, each on ports of its own, or (param "same ports") both on the same ones."""
    upgrade(postgres_url)
    shared = {"acceptor_port": free_port(), "http_port": free_port(), "dropcopy_port": free_port()}
    ports = {n: dict(shared) if request.param == "same ports" else
             {"acceptor_port": free_port(), "http_port": free_port(), "dropcopy_port": free_port()}
             for n in ("A", "B")}
    cfg_path = tmp_path / "gateway.cfg"
    cfg_path.write_text(_config(postgres_url, tmp_path, ports))
    made = {n: Instance(n, cfg_path, p["http_port"], tmp_path / f"{n}.log") for n, p in ports.items()}
    clients: list[FixClient] = []
    yield {"url": postgres_url, "cfg": cfg_path, "ports": ports, "tmp": tmp_path, "clients": clients, **made}
    for c in clients:
        c.stop()
    for inst in made.values():
        inst.stop_all()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _client_with_an_answer(pair, port: int) -> FixClient:
    """A client logged on at ``port`` that has had an order answered (no venue: rejected)."""
    client = FixClient(version="FIX.4.4", sender="CLIENT44", target="FIXGW", port=port,
                       store_dir=pair["tmp"] / "client")
    pair["clients"].append(client)
    client.start(timeout=30)
    cl = client.new_order("AAPL", "1", 100, "190.00")
    client.wait_exec(cl, "8", timeout=10)
    return client


def _start_pair(pair) -> tuple[Instance, Instance]:
    a, b = pair["A"], pair["B"]
    a.start().wait_serving()
    assert wait_leader(pair["url"], "pair", "A", 5) < 5
    b.start()
    wait_until(lambda: roles_of(pair["url"], "pair").get("B") == "standby", 60, "B to stand by")
    return a, b


def test_a_standby_waits_while_the_active_leads_and_takes_over_when_it_is_killed(pair):
    url = pair["url"]
    a, b = _start_pair(pair)
    # B waits: it holds no lease and binds none of its ports
    time.sleep(2 * TTL)
    assert b.proc.poll() is None and roles_of(url, "pair") == {"A": "active", "B": "standby"}
    assert not serving(b.http_port) and not _listening(pair["ports"]["B"]["acceptor_port"])
    code, status = cluster_status(pair["cfg"])
    assert code == 0 and status["leader"] == "A" and status["lease"]["token"] == 1
    assert {i["instance"]: (i["role"], i["running"]) for i in status["instances"]} == {
        "A": ("active", True), "B": ("standby", True)}

    a.signal(signal.SIGKILL)
    took = wait_leader(url, "pair", "B", TTL + MARGIN + 5)
    assert took <= TTL + MARGIN, f"B took over {took:.2f} s after A was killed (ttl {TTL} s)"
    b.wait_serving(30)
    code, status = cluster_status(pair["cfg"])
    assert code == 0 and status["leader"] == "B" and status["lease"]["token"] == 2
    assert {i["instance"]: i["role"] for i in status["instances"]} == {"A": "deposed", "B": "active"}
    assert "taking over from A" in b.log()

    # a clean stop releases the lease: no one leads, and the next instance need not wait for an expiry
    b.signal(signal.SIGTERM)
    assert b.proc.wait(30) == 0, b.log()
    code, status = cluster_status(pair["cfg"])
    assert code == 1 and status["leader"] is None and status["lease"]["holder"] is None
    assert {i["instance"]: i["role"] for i in status["instances"]}["B"] == "stopped"
    a.start()
    assert wait_leader(url, "pair", "A", 20) < 20
    assert lease_token(url) == 3


def lease_token(url: str) -> int:
    from tests.cluster_instances import lease_of

    return lease_of(url, "pair").token


def _journaled(url: str, session: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).where(journal_messages.c.session_id == session)).scalar_one()
    finally:
        engine.dispose()


def test_an_active_paused_past_its_lease_ends_by_itself_without_sending(pair):
    url = pair["url"]
    a, b = _start_pair(pair)
    client = _client_with_an_answer(pair, pair["ports"]["A"]["acceptor_port"])

    a.signal(signal.SIGSTOP)
    assert wait_leader(url, "pair", "B", TTL + MARGIN + 5) <= TTL + MARGIN
    b.wait_serving(30)
    # A is stopped: what the client sends now waits in A's sockets, to be answered the moment A runs again
    client.new_order("AAPL", "1", 100, "190.00")
    time.sleep(0.5)
    heard, journaled = client.wire.count("I"), _journaled(url, CLIENT)

    a.signal(signal.SIGCONT)
    assert a.proc.wait(15) == LEASE_LOST_EXIT_CODE, a.log()
    time.sleep(1.0)
    assert client.wire.count("I") == heard, "the paused active sent a message after it resumed"
    assert _journaled(url, CLIENT) == journaled, "the paused active journaled a message after it resumed"
    assert "lease lost: instance A is no longer the active one of cluster pair" in a.log()
    assert b.proc.poll() is None
    code, status = cluster_status(pair["cfg"])
    assert code == 0 and status["leader"] == "B"


@pytest.mark.parametrize("pair", ["same ports"], indirect=True)
def test_on_the_same_ports_the_standby_serves_once_the_old_process_is_gone(pair):
    """The same host and port: the standby binds nothing while it waits, and the old process's ports once it
    leads; a client with one address logs on again, its numbers and ours continuing."""
    url, port = pair["url"], pair["ports"]["A"]["acceptor_port"]
    assert pair["ports"]["B"]["acceptor_port"] == port
    a, b = _start_pair(pair)
    client = _client_with_an_answer(pair, port)
    wait_until(lambda: _last_sent(url) == max(int(parse(r)[34]) for d, r in client.wire.lines if d == "I"), 10,
               "the journal to hold all A sent")
    last_in = max(int(parse(r)[34]) for d, r in client.wire.lines if d == "I")
    mark = len(client.wire.lines)

    a.signal(signal.SIGKILL)
    assert wait_leader(url, "pair", "B", TTL + MARGIN + 5) <= TTL + MARGIN
    b.wait_serving(30)  # on the HTTP port A had
    wait_until(lambda: client.logged_on and any(d == "I" and "\x0135=A\x01" in r
                                                for d, r in client.wire.lines[mark:]),
               30, "the client to log on again on the same port")
    logon = next(parse(r) for d, r in client.wire.lines[mark:] if d == "I" and "\x0135=A\x01" in r)
    assert logon.get(141) != "Y" and int(logon[34]) == last_in + 1 + 1000  # the default seq_gap
    again = client.new_order("AAPL", "1", 100, "190.00")
    assert client.wait_exec(again, "8", timeout=10)[58]


def _last_sent(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            t = journal_messages.c
            return conn.execute(select(func.coalesce(func.max(t.seq_num), 0))
                                .where(t.session_id == CLIENT, t.direction == "O")).scalar_one()
    finally:
        engine.dispose()


def handover_cli(cfg_path: Path, *args: str) -> tuple[int, str, str]:
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "cluster", "handover", "-c", str(cfg_path), *args],
                            capture_output=True, text=True, timeout=90, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("pair", ["same ports"], indirect=True)
def test_a_planned_handover_moves_the_cluster_with_every_number_continuing_exactly(pair):
    """`fixgw cluster handover --to B`: A stops cleanly and hands B the lease; the client logs on to B on the same
    port, and B's first message to it numbers right after A's last (no seq_gap: A's journal is complete)."""
    url, port = pair["url"], pair["ports"]["A"]["acceptor_port"]
    a, b = _start_pair(pair)
    client = _client_with_an_answer(pair, port)
    token = lease_token(url)

    code, out, err = handover_cli(pair["cfg"], "--to", "B", "--json")
    assert code == 0, out + err
    result = json.loads(out)
    assert result["done"] and (result["from"], result["new"]) == ("A", "B") and result["new_token"] > token
    assert a.proc.wait(30) == 0, a.log()
    assert "handed the cluster over to B" in a.log()
    b.wait_serving(30)
    wait_until(lambda: any(d == "I" and "\x0135=5\x01" in r for d, r in client.wire.lines), 10, "A's Logout")
    from_a = max(int(parse(r)[34]) for d, r in client.wire.lines if d == "I")
    mark = len(client.wire.lines)
    wait_until(lambda: client.logged_on and any(d == "I" and "\x0135=A\x01" in r
                                                for d, r in client.wire.lines[mark:]),
               30, "the client to log on to B")
    logon = next(parse(r) for d, r in client.wire.lines[mark:] if d == "I" and "\x0135=A\x01" in r)
    assert int(logon[34]) == from_a + 1 and logon.get(141) != "Y"
    assert not any(d == "I" and "\x0135=4\x01" in r for d, r in client.wire.lines[mark:])  # no gap to fill
    again = client.new_order("AAPL", "1", 100, "190.00")
    assert client.wait_exec(again, "8", timeout=10)[58]
    assert "outgoing numbers 0 past it" in b.log()


def test_a_handover_with_no_standby_running_is_refused_and_asks_nothing(pair):
    url = pair["url"]
    a = pair["A"]
    a.start().wait_serving()
    assert wait_leader(url, "pair", "A", 5) < 5
    code, out, err = handover_cli(pair["cfg"])
    assert code == 1 and "no standby is running" in err
    code, out, err = handover_cli(pair["cfg"], "--to", "B")
    assert code == 1 and "B is not a running standby (never started)" in err
    time.sleep(TTL)  # A renewed: nothing was asked of it
    assert a.proc.poll() is None and lease_token(url) == 1


def test_an_instance_started_while_its_database_is_down_waits_for_it_then_leads(pair):
    """A supervisor restarts an instance while the database is unreachable: it says so and waits, instead of
    exiting, and leads once the database answers."""
    from tests.cluster_fixtures import cut_database, restore_database

    url, a = pair["url"], pair["A"]
    cut_database(url)
    try:
        a.start()
        wait_until(lambda: "waiting for it (a cluster's instance starts once its database answers)" in a.log(), 30,
                   "A to say it waits for its database")
        assert a.proc.poll() is None, a.log()
    finally:
        restore_database(url)
    assert wait_leader(url, "pair", "A", 30) < 30
    a.wait_serving(30)


def test_the_operator_commands_ask_the_instance_that_leads_or_the_one_named(pair):
    a, b = _start_pair(pair)

    def fixgw(*args: str, instance: str | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("FIXGW_INSTANCE", None)
        if instance is not None:
            env["FIXGW_INSTANCE"] = instance
        return subprocess.run([sys.executable, "-m", "gateway.cli", *args, "-c", str(pair["cfg"])],
                              capture_output=True, text=True, timeout=60, env=env)

    led = fixgw("sessions", "list", "--json")
    assert led.returncode == 0, led.stderr
    assert any(s["name"] == "CLIENT44" for s in json.loads(led.stdout)["sessions"])
    standby = fixgw("sessions", "list", "--json", instance="B")  # B stands by: no admin API, no token yet
    assert standby.returncode == 1 and str(pair["tmp"] / "B" / "admin.token") in standby.stderr
    a.signal(signal.SIGKILL)
    assert wait_leader(pair["url"], "pair", "B", TTL + MARGIN + 5)
    b.wait_serving(30)
    now_b = fixgw("sessions", "list", "--json")  # the same command, the new active
    assert now_b.returncode == 0, now_b.stderr
    b.signal(signal.SIGTERM)  # a clean stop releases the lease: no one leads
    assert b.proc.wait(30) == 0
    nobody = fixgw("sessions", "list")
    assert nobody.returncode == 1 and "cluster pair: no instance leads" in nobody.stderr
