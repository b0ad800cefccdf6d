"""Shards of one cluster, all active at once (docs/scale-out.md), each instance its own `fixgw run --instance`
process on one PostgreSQL database, all logged on to the same two venue simulators with a SenderCompID of their
own. Two shards: instance A serves shard east (CLIENT44, CLIENT50), instance B shard west (CLIENT42); each serves
its own clients only; orders from both fill; their OrderIDs never meet; each shard extends a hash chain of its own
in the one journal, and both verify together; drop copies get both shards' reports in the journal's merged order;
a kill switch asked of one shard stops both; `fixgw cluster status` and the operator commands see every shard.
Three shards (A, B and C, a client each): one account's daily notional limit and another's position limit, hit
from all three at once, are never exceeded.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from decimal import Decimal

import pytest
from sqlalchemy import select

from gateway.config import parse_config
from gateway.journal.db import journal_messages, make_engine, upgrade
from gateway.journal.verify import verify_database
from sessions.client import FixClient
from sessions.simulator.venue import VenueSimulator
from tests.cluster_instances import ROOT, Instance, cluster_status, wait_leader, wait_until
from tests.fix_fixtures import free_port, stack_config_text
from tests.test_frontdoor import connect, fields_of, logon, wait_closed

pytestmark = pytest.mark.timeout(240)

SHARDS = {"east": ("CLIENT44", "CLIENT50"), "west": ("CLIENT42",)}
COMP_IDS = {"east": "FIXGW-E", "west": "FIXGW-W", "north": "FIXGW-N"}
OWNER = {"A": "east", "B": "west"}
# the same cluster cut in three: one instance and one client each
SHARDS3 = {"east": ("CLIENT44",), "west": ("CLIENT42",), "north": ("CLIENT50",)}
OWNER3 = {"A": "east", "B": "west", "C": "north"}
SHARED_LIMIT = 300_000  # account SHARED's daily notional, for the whole cluster
POSITION_LIMIT = 2_000  # account POSN's position in a symbol (shares), for the whole cluster


def _sharded_toml(ports: dict[str, dict], tmp, shards: dict, owner: dict) -> str:
    (tmp / "rules.toml").write_text('chain = ["kill_switch", "max_position", "daily_notional"]\n[accounts.SHARED]\n'
                                    f'max_daily_notional = {SHARED_LIMIT}\n'
                                    f'[accounts.POSN]\nmax_position = {POSITION_LIMIT}\n')
    out = [f'[risk]\nrules_file = "{tmp / "rules.toml"}"\n[recovery]\nstate_log = "database"\n'
           '[cluster]\nname = "main"\nlease_ttl_s = 2\n']
    # both receivers log on to shard east; DCWESTV covers only a client of shard west
    out.append('[dropcopy]\nport = 9877\n[dropcopy.sessions.DC44]\nfix_version = "FIX.4.4"\nreports = "both"\n'
               '[dropcopy.sessions.DCWESTV]\nfix_version = "FIX.4.4"\nreports = "venue"\nclients = ["CLIENT42"]\n')
    for shard, clients in shards.items():
        dropcopy = '["DC44", "DCWESTV"]' if shard == "east" else "[]"
        out.append(f'[shard.{shard}]\nclients = {json.dumps(list(clients))}\nvenue_comp_id = "{COMP_IDS[shard]}"\n'
                   f'dropcopy = {dropcopy}\n')
    for name, p in ports.items():
        out.append(f'[instance.{name}]\nshard = "{owner[name]}"\ndata_dir = "{tmp / name}"\n'
                   + "".join(f"{k} = {v}\n" for k, v in p.items()))
    return "\n".join(out)


@pytest.fixture
def sharded(postgres_url, tmp_path, request):
    """The cluster, its instances not started: two shards (east: CLIENT44 and CLIENT50, west: CLIENT42), or with
    ``indirect`` parameter 3 three (east, west, north: a client each)."""
    shards, owner = (SHARDS3, OWNER3) if getattr(request, "param", 2) == 3 else (SHARDS, OWNER)
    upgrade(postgres_url)
    v1, v2 = free_port(), free_port()
    ports = {n: {"acceptor_port": free_port(), "http_port": free_port(), "dropcopy_port": free_port()} for n in owner}
    text = stack_config_text(postgres_url, tmp_path / "base", ports["A"]["acceptor_port"], v1, v2,
                             extra_toml=_sharded_toml(ports, tmp_path, shards, owner))
    cfg_path = tmp_path / "gateway.cfg"
    cfg_path.write_text(text)
    cfg = parse_config(text, tmp_path, env={})
    venues = {}
    for name, v in cfg.venues.items():
        venues[name] = VenueSimulator(comp_id=name, port=v.port, sim=v.simulator,
                                      store_dir=tmp_path / "venues" / name,
                                      counterparties=tuple(COMP_IDS[s] for s in shards)).start()
    instances = {n: Instance(n, cfg_path, p["http_port"], tmp_path / f"{n}.log") for n, p in ports.items()}
    peers: list[FixClient] = []
    yield {"url": postgres_url, "cfg": cfg, "cfg_path": cfg_path, "ports": ports, "tmp": tmp_path,
           "venues": venues, "instances": instances, "peers": peers, "owner": owner}
    for p in peers:
        p.stop()
    for inst in instances.values():
        inst.stop_all()
    for sim in venues.values():
        sim.stop()


def _client(sharded, name: str, instance: str, timeout: float = 30, port: str = "acceptor_port") -> FixClient:
    version = {"CLIENT42": "FIX.4.2", "CLIENT50": "FIX.5.0"}.get(name, "FIX.4.4")
    peer = FixClient(version=version, sender=name, target="FIXGW",
                     port=sharded["ports"][instance][port], store_dir=sharded["tmp"] / "peers" / name)
    sharded["peers"].append(peer)
    return peer.start(timeout=timeout)


def _fixgw(cfg_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args, "-c", str(cfg_path)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def test_two_shards_trade_at_once_each_serving_its_own_clients(sharded):
    url, inst = sharded["url"], sharded["instances"]
    for i in inst.values():
        i.start()
    for i in inst.values():
        i.wait_serving()
    wait_leader(url, "main/east", "A", 30)
    wait_leader(url, "main/west", "B", 30)

    # Each venue sees both shards log on, each as its own counterparty.
    def both_logged_on(sim: VenueSimulator) -> bool:
        return {key.rpartition("->")[2] for key in sim.logged_on} == {COMP_IDS[s] for s in SHARDS}
    for name, sim in sharded["venues"].items():
        wait_until(lambda sim=sim: both_logged_on(sim), 30, f"both shards to log on to {name}")

    east, west = _client(sharded, "CLIENT44", "A"), _client(sharded, "CLIENT42", "B")
    everything = _client(sharded, "DC44", "A", port="dropcopy_port")
    west_venue = _client(sharded, "DCWESTV", "A", port="dropcopy_port")
    fills = {east: east.new_order("AAPL", "1", 100, "190.10"), west: west.new_order("AAPL", "2", 100, "189.90")}
    reports = {peer: peer.wait_exec(cl, "2", timeout=20) for peer, cl in fills.items()}
    order_ids = {peer: r[37] for peer, r in reports.items()}
    # OrderIDs (and the child ClOrdIDs and ExecIDs made from them) carry the instance that made them.
    assert order_ids[east].split("-")[0].endswith("_A") and order_ids[west].split("-")[0].endswith("_B"), order_ids

    # One stream for brokers: receivers of shard east get the reports of both shards, in the journal's merged order
    # (by writing transaction, then id: gateway/journal/stream.py); one
    # that covers only shard west's client gets the venues' reports of its orders (found in the shared journal),
    # and none of shard east's.
    wait_until(lambda: {fills[east], fills[west]} <= {m.get(11) for m in everything.app_messages("8")}, 20,
               "both shards' fills in the drop copies")
    sources = ("FIX.4.4:FIXGW->CLIENT44", "FIX.4.2:FIXGW->CLIENT42", *(f"{v}:{c}->{n}" for c in COMP_IDS.values()
               for n, v in (("VENUE1", "FIX.4.4"), ("VENUE2", "FIX.4.2"))))

    def journal_order() -> list[str]:  # the ExecIDs of every source report, in the merged stream's order
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                t = journal_messages.c
                rows = conn.execute(select(t.raw).where(t.msg_type == "8", t.session_id.in_(sources), (
                    (t.direction == "O") & t.session_id.like("%->CLIENT%")) | ((t.direction == "I") & t.session_id.like(
                        "%->VENUE%"))).order_by(t.xid, t.id)).scalars()
                return [dict(f.split("=", 1) for f in raw.split("\x01") if "=" in f)["17"] for raw in rows]
        finally:
            engine.dispose()
    wait_until(lambda: [m[17] for m in everything.app_messages("8")] == journal_order(), 20,
               "the drop copies in the journal's order, every one")
    wait_until(lambda: any(m.get(11) == order_ids[west] for m in west_venue.app_messages("8")), 20,
               "the venue's reports of shard west's order")
    assert not [m for m in west_venue.app_messages("8") if m.get(11, "").startswith(order_ids[east])]
    assert all(m.get(797) == "Y" for m in west_venue.app_messages("8"))

    # A client of one shard is not served by the other shard's instance: its Logon is answered with a Logout.
    with connect(sharded["ports"]["A"]["acceptor_port"]) as s:
        s.sendall(logon("CLIENT42", begin="FIX.4.2"))
        closed, got = wait_closed(s, 5)
    assert closed and fields_of(got)[35] == "5" and "no session FIX.4.2:CLIENT42->FIXGW" in fields_of(got)[58]

    # The journal holds both shards' sessions (the venues' each under the shard's SenderCompID), each shard's on a
    # hash chain of its own (its lease name), and both chains verify together.
    wanted = {"FIX.4.4:FIXGW->CLIENT44", "FIX.4.2:FIXGW->CLIENT42", "FIX.4.4:FIXGW-E->VENUE1",
              "FIX.4.4:FIXGW-W->VENUE1"}
    engine = make_engine(url)
    try:
        def journaled() -> set[str]:
            with engine.connect() as conn:
                return set(conn.execute(select(journal_messages.c.session_id).distinct()).scalars())
        wait_until(lambda: wanted <= journaled(), 20, "both shards' sessions in the journal")
        with engine.connect() as conn:
            chains = set(conn.execute(select(journal_messages.c.session_id, journal_messages.c.chain)
                                      .where(journal_messages.c.session_id.in_(wanted)).distinct()).all())
        assert chains == {("FIX.4.4:FIXGW->CLIENT44", "main/east"), ("FIX.4.4:FIXGW-E->VENUE1", "main/east"),
                          ("FIX.4.2:FIXGW->CLIENT42", "main/west"), ("FIX.4.4:FIXGW-W->VENUE1", "main/west")}, chains
        result = verify_database(engine)
        assert result.ok and result.checked > 0, result
    finally:
        engine.dispose()

    # `fixgw cluster status` shows every shard and its leader.
    code, status = cluster_status(sharded["cfg_path"])
    assert code == 0 and status["leaderless"] == [], status
    assert {s: part["leader"] for s, part in status["shards"].items()} == {"east": "A", "west": "B"}
    assert [i["instance"] for i in status["shards"]["west"]["instances"]] == ["B"]
    human = _fixgw(sharded["cfg_path"], "cluster", "status")
    assert human.returncode == 0 and "cluster main: 2 shard(s), every one led" in human.stdout, human.stdout
    assert "cluster main/east: led by A" in human.stdout and "cluster main/west: led by B" in human.stdout

    # The operator commands find the shard themselves: a list asks every shard and merges, an order or a session
    # is asked of the shard that holds it; FIXGW_SHARD narrows to one; a command about no shard in particular
    # says who leads each.
    listed = _fixgw(sharded["cfg_path"], "orders", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["order_id"]: r["shard"] for r in json.loads(listed.stdout)["orders"]}
    assert rows[order_ids[east]] == "east" and rows[order_ids[west]] == "west", rows
    table = _fixgw(sharded["cfg_path"], "orders", "list")
    assert table.stdout.splitlines()[0].startswith("SHARD"), table.stdout
    narrowed = _fixgw(sharded["cfg_path"], "orders", "list", "--json", FIXGW_SHARD="west")
    assert narrowed.returncode == 0, narrowed.stderr
    assert order_ids[west] in narrowed.stdout and order_ids[east] not in narrowed.stdout
    shown = _fixgw(sharded["cfg_path"], "orders", "show", order_ids[west], "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["order_id"] == order_ids[west], shown.stderr
    session = _fixgw(sharded["cfg_path"], "sessions", "show", "CLIENT42", "--json")
    assert session.returncode == 0 and json.loads(session.stdout)["logged_on"] is True, session.stderr
    sessions = json.loads(_fixgw(sharded["cfg_path"], "sessions", "list", "--json").stdout)["sessions"]
    assert {(r["shard"], r["name"]) for r in sessions} >= {("east", "CLIENT44"), ("west", "CLIENT42"),
                                                          ("east", "VENUE1"), ("west", "VENUE1")}
    healthy = _fixgw(sharded["cfg_path"], "status", "--json")
    assert healthy.returncode == 0 and set(json.loads(healthy.stdout)["shards"]) == {"east", "west"}, healthy.stdout
    # A command about no shard in particular asks each shard for itself: `risk show`, `orders reconcile --all`,
    # `sessions reload`.
    risk = _fixgw(sharded["cfg_path"], "risk", "show", "--json")
    assert risk.returncode == 0, risk.stderr
    assert set(json.loads(risk.stdout)["shards"]) == {"east", "west"}, risk.stdout
    assert all("shared_limits" in d for d in json.loads(risk.stdout)["shards"].values()), risk.stdout
    human = _fixgw(sharded["cfg_path"], "risk", "show")
    assert "shard east:\n  enabled: True" in human.stdout and "shard west:\n" in human.stdout, human.stdout
    reconciled = _fixgw(sharded["cfg_path"], "orders", "reconcile", "--all", "--wait", "1", "--json")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert json.loads(reconciled.stdout) | {"asked": []} == {"asked": [], "skipped": [], "changed": [],
                                                              "unanswered": [], "in_doubt": [], "errors": {},
                                                              "unled": []}, reconciled.stdout
    reload = _fixgw(sharded["cfg_path"], "sessions", "reload", "--dry-run", "--json")
    assert reload.returncode == 0, reload.stdout + reload.stderr
    shards_said = json.loads(reload.stdout)["shards"]
    assert set(shards_said) == {"east", "west"} and all(d["dry_run"] for d in shards_said.values()), shards_said

    # One control plane: a kill switch asked of shard east's instance stops new orders on every shard, each shard
    # applying it within a second; released the same way.
    killed = _fixgw(sharded["cfg_path"], "risk", "kill", "global", "--json", FIXGW_SHARD="east")
    assert killed.returncode == 0, killed.stderr
    answer = json.loads(killed.stdout)
    assert answer["pending"] == [] and set(answer["shards"]) == {"main/east", "main/west"}, answer
    assert {s["instance"] for s in answer["shards"].values()} == {"A", "B"}
    assert all(s["ok"] and s["after_s"] < 1.0 for s in answer["shards"].values()), answer
    for peer in (east, west):
        refused = peer.new_order("MSFT", "1", 10, "410.10")
        assert "trading halted (global)" in peer.wait_exec(refused, "8", timeout=10).get(58, "")
    human = _fixgw(sharded["cfg_path"], "risk", "unkill", "global", FIXGW_SHARD="west")
    assert human.returncode == 0, human.stderr
    assert "kill switch global released" in human.stdout and "main/east" in human.stdout, human.stdout
    for peer in (east, west):
        peer.wait_exec(peer.new_order("MSFT", "1", 10, "410.10"), "2", timeout=20)
    listed = _fixgw(sharded["cfg_path"], "cluster", "controls")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert " kill scope=global by " in listed.stdout and " unkill scope=global by " in listed.stdout, listed.stdout

    # One shard stopping leaves the other trading: A goes, B's client still fills.
    inst["A"].proc.terminate()
    inst["A"].proc.wait(30)
    again = west.new_order("MSFT", "1", 100, "410.10")
    west.wait_exec(again, "2", timeout=20)
    code, status = cluster_status(sharded["cfg_path"])
    assert code == 1 and status["leaderless"] == ["east"], status
    partial = _fixgw(sharded["cfg_path"], "orders", "list", "--json")
    assert partial.returncode == 0 and "shard east: no instance leads it" in partial.stderr
    assert json.loads(partial.stdout)["unled"] == ["east"]
    assert _fixgw(sharded["cfg_path"], "status").returncode == 1
    risk = _fixgw(sharded["cfg_path"], "risk", "show")
    assert risk.returncode == 1 and "shard east: NO INSTANCE LEADS IT" in risk.stdout, risk.stdout
    assert "shard west:\n" in risk.stdout


@pytest.mark.parametrize("sharded", [3], indirect=True)
def test_an_accounts_limits_hit_from_three_shards_at_once_are_never_exceeded(sharded):
    """Orders of two accounts from a client of each of three shards, all at once, resting at the venues: between
    them the shards accept no more than account SHARED's daily notional limit and account POSN's position limit,
    and come within a chunk of each."""
    url, inst = sharded["url"], sharded["instances"]
    for i in inst.values():
        i.start()
    for i in inst.values():
        i.wait_serving()
    for name, shard in sharded["owner"].items():
        wait_leader(url, f"main/{shard}", name, 30)
    clients = {"A": "CLIENT44", "B": "CLIENT42", "C": "CLIENT50"}
    peers = [_client(sharded, clients[name], name) for name in sharded["owner"]]
    qty, per_client = 100, 30  # 15,000 an order (resting: far below the offer); 30 x 3 x 100 shares per account
    sent: dict[FixClient, list[tuple[str, str]]] = {peer: [] for peer in peers}

    def send(peer: FixClient) -> None:
        for _ in range(per_client):
            for account in ("SHARED", "POSN"):
                sent[peer].append((account, peer.new_order("AAPL", "1", qty, "150", account=account)))
    threads = [threading.Thread(target=send, args=(peer,)) for peer in sent]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    answers: dict[str, dict[int, str]] = {}

    def answered() -> bool:
        for peer, ids in sent.items():
            mine = {cl for _, cl in ids}
            for m in peer.app_messages("8"):
                if m.get(11) in mine and m.get(39) in ("0", "8"):
                    answers.setdefault(m[11], m)
        return len(answers) == len(peers) * per_client * 2
    wait_until(answered, 60, "an answer to every order")
    for account, limit, per_order, rule in (("SHARED", SHARED_LIMIT, qty * 150, "daily_notional"),
                                            ("POSN", POSITION_LIMIT, qty, "max_position")):
        accepted = {peer: [cl for a, cl in ids if a == account and answers[cl][39] == "0"]
                    for peer, ids in sent.items()}
        total = sum(len(v) for v in accepted.values()) * per_order
        assert total <= limit, (account, total, [len(v) for v in accepted.values()])
        assert total >= limit - 2 * (limit // 10), (account, total)  # shared, not fragmented away
        assert all(accepted.values()), f"every shard took part of {account}'s limit"
        refused = [answers[cl].get(58, "") for ids in sent.values() for a, cl in ids
                   if a == account and answers[cl][39] == "8"]
        assert refused and all(rule in text for text in refused), refused[:3]
        assert any("the other shards hold the rest" in text for text in refused), refused[:3]
    # `fixgw cluster status` shows what each shard holds of both limits: parts that never sum past the limit
    _, status = cluster_status(sharded["cfg_path"])
    held = {g["limit"]: g for g in status["shared_limits"] if {"SHARED", "POSN"} & set(g["scope"])}
    for limit_name, limit in (("max_daily_notional", SHARED_LIMIT), ("max_position", POSITION_LIMIT)):
        assert sum(Decimal(v) for v in held[limit_name]["shards"].values()) == Decimal(held[limit_name]["total"])
        assert Decimal(held[limit_name]["total"]) <= limit, held[limit_name]
        assert set(held[limit_name]["shards"]) == set(sharded["owner"].values()), held[limit_name]
