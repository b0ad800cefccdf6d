"""kill -9 with orders in flight: after a restart nothing is lost, nothing is sent twice.

The gateway runs as its own process (`fixgw run`) between two venue simulators and
two clients in this process. Orders flow from both clients while the gateway is
killed with SIGKILL and, while it is down, the clients keep sending (their
messages wait in their stores). After the restart:

- every order's final state at the client equals its state at the venue;
- no venue saw any NewOrderSingle twice;
- fills another firm made against our resting orders while the gateway was down
  reach the clients (the venue re-sends them when the gateway logs on again);
- the restarted gateway knew the open orders (the client can cancel them);
- every message on the wire, both ways, on every session, is in the journal, byte for byte.

Each scenario runs with each kind of order-state log: the file (with a SQLite journal) and the database
([recovery] state_log = "database", with the journal on PostgreSQL, where the records live too).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.config import parse_config
from gateway.journal.db import upgrade
from gateway.journal.queries import iter_messages
from sessions.client import FixClient, parse
from sessions.simulator.venue import VenueSimulator
from tests.fix_fixtures import free_port, stack_config_text

FIXGW = shutil.which("fixgw", path=str(Path(sys.executable).parent)) or "fixgw"
OPEN = {"0", "1", "A", "E", "6"}  # New, PartiallyFilled, PendingNew, PendingReplace, PendingCancel
TERMINAL = {"2", "4", "8", "C"}


def start_gateway(cfg_path: Path, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen([FIXGW, "run", "-c", str(cfg_path)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_serving(port: int, timeout: float = 30) -> None:
    """Until the gateway answers on its HTTP port (it has started; clients may connect)."""
    import urllib.error
    import urllib.request

    def up():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
        except urllib.error.HTTPError:
            return True  # 503 while venues connect: it is serving
        except OSError:
            return False
        return True
    wait_until(up, timeout, "the gateway to serve /health")


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def last_reports(client: FixClient) -> dict[str, dict[int, str]]:
    """OrderID -> the last ExecutionReport the client received for it."""
    out = {}
    for m in client.app_messages("8"):
        if m.get(37) and m[37] != "NONE":
            out[m[37]] = m
    return out


@pytest.fixture(params=["file", pytest.param("database", marks=pytest.mark.postgres)])
def crash_env(tmp_path, request):
    if request.param == "database":
        url = request.getfixturevalue("postgres_url")
        extra = '[recovery]\nstate_log = "database"\n'
    else:
        url = f"sqlite:///{tmp_path / 'journal.db'}"
        extra = ""
    upgrade(url)
    gw_port, v1, v2 = free_port(), free_port(), free_port()
    text = stack_config_text(url, tmp_path / "gw", gw_port, v1, v2, extra_toml=extra)
    cfg_path = tmp_path / "gateway.cfg"
    cfg_path.write_text(text)
    cfg = parse_config(text, tmp_path, env={})
    venues, wires = {}, {}
    for name, v in cfg.venues.items():
        sim = VenueSimulator(comp_id=name, port=v.port, sim=v.simulator, store_dir=tmp_path / "venues" / name,
                             counterparties=(cfg.comp_id, "STREET"))  # STREET: another firm at the venue
        sim.wire.rows = wires[name] = []  # every message on the venue's sessions
        venues[name] = sim.start()
    procs: list[subprocess.Popen] = []
    clients: list[FixClient] = []
    env = {"tmp": tmp_path, "url": url, "state_log": request.param, "cfg": cfg, "cfg_path": cfg_path, "venues": venues, "wires": wires,
           "procs": procs, "clients": clients, "log": tmp_path / "gateway.log"}
    yield env
    for c in clients:
        c.stop()
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    for sim in venues.values():
        sim.stop()


@pytest.mark.parametrize("acks_before_kill", [10, 0], ids=["mid-flow", "before-first-answer"])
def test_kill_9_with_orders_in_flight_loses_nothing_and_sends_nothing_twice(crash_env, acks_before_kill):
    env = crash_env
    cfg, venues = env["cfg"], env["venues"]
    gw = start_gateway(env["cfg_path"], env["log"])
    env["procs"].append(gw)
    wait_serving(cfg.http.port)
    clients = {name: FixClient(version=version, sender=name, target=cfg.comp_id, port=cfg.acceptor.port,
                               store_dir=env["tmp"] / "clients") for name, version in
               (("CLIENT44", "FIX.4.4"), ("CLIENT42", "FIX.4.2"))}
    for c in clients.values():
        env["clients"].append(c)
        c.start(timeout=30)
    wait_until(lambda: all(sim.logged_on for sim in venues.values()), 20, "the venues to log on")

    # Orders that fill at VENUE1 (AAPL), rest at VENUE2 (ORCL) or fill in parts (MSFT 700 over 500-lots).
    sent: dict[str, list[str]] = {name: [] for name in clients}

    def send_round(i: int) -> None:
        for name, c in clients.items():
            kind = i % 3
            if kind == 0:
                cl = c.new_order("AAPL", "1", 100, "190.10")
            elif kind == 1:
                cl = c.new_order("ORCL", "1", 100, "119.99")  # rests at VENUE2, the best bid
            else:
                cl = c.new_order("MSFT", "2", 700, "409.90")
            sent[name].append(cl)

    n = 60
    for i in range(n // 2):
        send_round(i)
    # Once the gateway is busy answering, kill it in the middle of a burst: some orders are
    # decided and sent, some decided and not sent, some received and not decided, some
    # answered by venues and not yet processed, and journal rows are still queued.
    wait_until(lambda: len(clients["CLIENT44"].app_messages("8")) >= acks_before_kill, 20,
               "the first acknowledgements")
    for i in range(n // 2, n):
        send_round(i)
        if i == n // 2 + (5 if acks_before_kill else 0):
            gw.send_signal(signal.SIGKILL)
            gw.wait(10)
    time.sleep(0.5)  # the clients keep their last orders in their stores while the gateway is down
    # Meanwhile another firm sells into our resting ORCL bids at VENUE2: the venue owes the
    # gateway those fills and delivers them when it logs on again.
    v2 = cfg.venues["VENUE2"]
    street = FixClient(version=v2.fix_version, sender="STREET", target="VENUE2", port=v2.port,
                       store_dir=env["tmp"] / "street")
    env["clients"].append(street)
    street.start(timeout=10)
    resting_at_kill = sum(1 for o in venues["VENUE2"].matcher.all_orders()
                          if o.symbol == "ORCL" and o.status.value == "0")
    if acks_before_kill:
        assert resting_at_kill >= 2, "the mid-flow kill should leave resting ORCL orders at the venue"
    hit = street.new_order("ORCL", "2", 200, "119.99")
    if resting_at_kill >= 2:
        street.wait_exec(hit, "2", timeout=10)

    gw2 = start_gateway(env["cfg_path"], env["log"])
    env["procs"].append(gw2)
    for c in clients.values():
        assert c.wait_logged_on(30), f"{c.sid.toString()} did not log on again"

    # Every order sent is answered with its OrderID and leaves PendingNew.
    for name, c in clients.items():
        def all_answered(c=c, name=name):
            answered = {m[11] for m in c.app_messages("8") if m.get(39) in (OPEN | TERMINAL) - {"A"}}
            return set(sent[name]) <= answered
        wait_until(all_answered, 60, f"{name}'s {len(sent[name])} orders to be acknowledged")

    # The restarted gateway knows the orders still open: the clients cancel them.
    for name, c in clients.items():
        for oid, m in last_reports(c).items():
            if m[39] in OPEN:
                c.cancel(m[11], m[55], m[54], m[38])
    for name, c in clients.items():
        wait_until(lambda c=c: all(m[39] in TERMINAL for m in last_reports(c).values()), 60,
                   f"{name}'s orders to finish: " + ", ".join(
                       f"{oid}:{m[39]}" for oid, m in last_reports(c).items() if m[39] not in TERMINAL))

    # Client state == venue state, order by order.
    venue_state = {}
    for sim in venues.values():
        for o in sim.matcher.all_orders():
            if "STREET" not in o.owner:
                venue_state[o.cl_ord_ids[0]] = (o.status.value, o.cum_qty)  # our first child ClOrdID = OrderID
    client_state = {}
    for c in clients.values():
        for oid, m in last_reports(c).items():
            client_state[oid] = (m[39], Decimal(m[14]))
    assert len(client_state) == 2 * n
    assert client_state == venue_state
    if resting_at_kill >= 2:  # the fills made while the gateway was down reached the clients
        orcl_filled = [oid for oid, m in client_state.items() if m[0] == "2" and oid in venue_state
                       and any(r[37] == oid and r[55] == "ORCL" for c in clients.values() for r in c.app_messages("8"))]
        assert len(orcl_filled) >= 2

    # No venue saw a NewOrderSingle twice.
    for sim in venues.values():
        assert all(count == 1 for count in sim.new_order_ids.values()), \
            [k for k, count in sim.new_order_ids.items() if count > 1]
    assert sum(sim.orders_received for sim in venues.values()) == 2 * n + 1  # + STREET's

    # Stop cleanly, then: the restart did recover, and the journal holds every message on the wire.
    for c in clients.values():
        c.stop()
    street.stop()
    gw2.send_signal(signal.SIGTERM)
    assert gw2.wait(30) == 0
    log_text = env["log"].read_text()
    assert "the last stop was not clean" in log_text
    assert f"order state from the {env['state_log']} state log" in log_text

    # What the gateway sent must be in the journal byte for byte. What a peer sent may have
    # gone into the socket of the killed process and never reached the gateway: FIX then
    # delivers it again after the restart, re-sent with PossDupFlag=Y under the same
    # MsgSeqNum, or (admin messages) covered by a SequenceReset-GapFill; the journal must
    # hold that delivery.
    journal: dict[tuple[str, str], set[str]] = {}
    delivered: dict[str, set[int]] = {}
    for row in iter_messages(env["url"]):
        journal.setdefault((row.session_id, row.direction), set()).add(row.raw)
        if row.direction == "I":
            f = parse(row.raw)
            seqs = delivered.setdefault(row.session_id, set())
            seqs.add(int(f[34]))
            if f.get(35) == "4" and f.get(123) == "Y":
                seqs.update(range(int(f[34]), int(f[36])))
    peers = [(f"FIX.4.4:{cfg.comp_id}->CLIENT44", clients["CLIENT44"].wire.lines),
             (f"FIX.4.2:{cfg.comp_id}->CLIENT42", clients["CLIENT42"].wire.lines)]
    for name, v in cfg.venues.items():
        peers.append((f"{v.fix_version}:{cfg.comp_id}->{name}", [(d, r) for sid, d, r in env["wires"][name] if sid.endswith(f"->{cfg.comp_id}")]))
    missing = []
    for ours, rows in peers:
        for direction, raw in rows:
            if direction == "I" and raw not in journal.get((ours, "O"), set()):
                missing.append((ours, "sent by us", raw.replace("\x01", "|")[:90]))
            elif direction == "O" and raw not in journal.get((ours, "I"), set()) \
                    and int(parse(raw)[34]) not in delivered.get(ours, set()):
                missing.append((ours, "received by us", raw.replace("\x01", "|")[:90]))
    assert not missing, missing[:10]
