"""Takeover of the FIX sessions (gateway/cluster/takeover.py): an active and a standby (`fixgw run --instance`, each
on its own ports), two venue simulators, a client and a drop-copy receiver whose settings list both instances
(SocketConnectPort, SocketConnectPort1). The active is killed with SIGKILL; the standby takes the lease, rebuilds
every session's store from the journal and logs on to the venues; the client and the drop-copy receiver log on to
it. Nobody's sequence numbers are reset: the client's and the venues' continue, ours continue ``seq_gap`` past the
journal's and the gap is filled; trading goes on; `fixgw cluster status` shows the change.
"""
from __future__ import annotations

import fcntl
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text

from gateway.config import parse_config
from gateway.journal.db import journal_messages, make_engine, upgrade
from gateway.journal.verify import verify_database
from sessions.client import FixClient, parse
from sessions.simulator.venue import VenueSimulator
from venuesim.config import MisbehaviourConfig, SymbolMisbehaviour
from tests.cluster_instances import Instance, cluster_status, cluster_toml, roles_of, wait_leader, wait_until
from tests.fix_fixtures import free_port, stack_config_text

TTL = 2.0
MARGIN = 2.0
SEQ_GAP = 1000
# The order state in the database, as a cluster has it by default; said here to be read plainly.
STATE_LOG_TOML = '[recovery]\nstate_log = "database"\n'

pytestmark = pytest.mark.timeout(240)


def _seq(raw: str) -> int:
    return int(parse(raw)[34])


def _last_sent_journaled(url: str, session: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            t = journal_messages.c
            return conn.execute(select(func.coalesce(func.max(t.seq_num), 0))
                                .where(t.session_id == session, t.direction == "O")).scalar_one()
    finally:
        engine.dispose()


def _logons(lines) -> list[dict[int, str]]:
    return [parse(raw) for raw in lines if "\x0135=A\x01" in raw]


def _no_reset(lines) -> None:
    """No Logon carries ResetSeqNumFlag, and no Logout says a MsgSeqNum was too low."""
    assert not [m for m in _logons(lines) if m.get(141) == "Y"], "a sequence reset"
    low = [parse(raw).get(58) for raw in lines if "\x0135=5\x01" in raw and "too low" in parse(raw).get(58, "")]
    assert not low, low


def _gap_filled(lines, first: int, upto: int) -> bool:
    """A SequenceReset-GapFill covering MsgSeqNum ``first`` up to at least ``upto``."""
    return any(m.get(35) == "4" and m.get(123) == "Y" and int(m[34]) <= first and int(m[36]) > upto
               for m in map(parse, lines))


@pytest.fixture
def stack(postgres_url, tmp_path):
    upgrade(postgres_url)
    v1, v2 = free_port(), free_port()
    ports = {n: {"acceptor_port": free_port(), "http_port": free_port(), "dropcopy_port": free_port()}
             for n in ("A", "B")}
    dropcopy = '[dropcopy]\nport = 9877\n[dropcopy.sessions.DC44]\nfix_version = "FIX.4.4"\n'
    text = stack_config_text(postgres_url, tmp_path / "base", ports["A"]["acceptor_port"], v1, v2,
                             extra_toml=dropcopy + STATE_LOG_TOML + cluster_toml(
                                 "pair", TTL, {n: {"data_dir": tmp_path / n, **p} for n, p in ports.items()},
                                 seq_gap=SEQ_GAP))
    cfg_path = tmp_path / "gateway.cfg"
    cfg_path.write_text(text)
    cfg = parse_config(text, tmp_path, env={})
    venues, wires = {}, {}
    for name, v in cfg.venues.items():
        sim = VenueSimulator(comp_id=name, port=v.port, sim=v.simulator, store_dir=tmp_path / "venues" / name,
                             counterparties=(cfg.comp_id,))
        sim.wire.rows = wires[name] = []
        venues[name] = sim.start()
    instances = {n: Instance(n, cfg_path, p["http_port"], tmp_path / f"{n}.log") for n, p in ports.items()}
    peers: list[FixClient] = []
    yield {"url": postgres_url, "cfg": cfg, "cfg_path": cfg_path, "ports": ports, "tmp": tmp_path,
           "venues": venues, "wires": wires, "peers": peers, **instances}
    for p in peers:
        p.stop()
    for inst in instances.values():
        inst.stop_all()
    for sim in venues.values():
        sim.stop()


def _peer(stack, sender: str, port_key: str) -> FixClient:
    """A FIX initiator that tries instance A's port, then B's (quickfix's failover list)."""
    a, b = stack["ports"]["A"][port_key], stack["ports"]["B"][port_key]
    peer = FixClient(version="FIX.4.4", sender=sender, target="FIXGW", port=a, store_dir=stack["tmp"] / sender,
                     extra={"SocketConnectHost1": "127.0.0.1", "SocketConnectPort1": str(b)})
    stack["peers"].append(peer)
    return peer.start(timeout=30)


def _status_answers(client: FixClient, orders: dict[str, tuple[str, str]]) -> dict[str, str]:
    """ClOrdID -> the OrdStatus (39) the gateway answers an OrderStatusRequest for it with (8 with "unknown
    order": it does not know the order)."""
    for cl, (symbol, side) in orders.items():
        client.status(cl, symbol, side)
    answers: dict[str, str] = {}

    def answered() -> bool:
        for m in client.app_messages("8"):
            if m.get(150) == "I" and m.get(11) in orders:
                answers[m[11]] = m[39]
        return answers.keys() == orders.keys()
    wait_until(answered, 15, "answers to the status requests")
    return answers


def test_the_standby_takes_the_sessions_over_with_no_sequence_reset(stack):
    url, venues, wires = stack["url"], stack["venues"], stack["wires"]
    a, b = stack["A"], stack["B"]
    a.start().wait_serving()
    wait_until(lambda: all(sim.logged_on for sim in venues.values()), 30, "the venues to see A log on")
    b.start()
    wait_until(lambda: roles_of(url, "pair").get("B") == "standby", 60, "B to stand by")
    client = _peer(stack, "CLIENT44", "acceptor_port")
    receiver = _peer(stack, "DC44", "dropcopy_port")

    fill = client.new_order("AAPL", "1", 100, "190.10")  # fills at VENUE1
    rest = client.new_order("ORCL", "1", 100, "119.99")  # rests at VENUE2
    client.wait_exec(fill, "2", timeout=15)
    client.wait_exec(rest, "0", timeout=15)
    acked = {fill: "2", rest: "0"}
    wait_until(lambda: any(m.get(11) == fill for m in receiver.app_messages("8")), 15, "the fill's drop copy")

    # Everything A sent is in the journal before the kill, so the numbers below are exact.
    sessions = {"client": ("FIX.4.4:FIXGW->CLIENT44", client.wire.lines),
                "dropcopy": ("FIX.4.4:FIXGW->DC44", receiver.wire.lines)}
    sessions |= {name: (f"{v.fix_version}:FIXGW->{name}", [(d, r) for _, d, r in wires[name]])
                 for name, v in stack["cfg"].venues.items()}

    def last_in(lines) -> int:
        return max((_seq(r) for d, r in list(lines) if d == "I"), default=0)
    wait_until(lambda: all(_last_sent_journaled(url, sid) == last_in(lines) for sid, lines in sessions.values()),
               15, "the journal to hold all A sent")
    before = {k: last_in(lines) for k, (_, lines) in sessions.items()}
    marks = {"client": len(client.wire.lines), "dropcopy": len(receiver.wire.lines),
             **{name: len(wires[name]) for name in venues}}
    client_next_out = client.session.getExpectedSenderNum()

    a.signal(signal.SIGKILL)
    killed = time.monotonic()
    took = wait_leader(url, "pair", "B", TTL + MARGIN + 5)
    assert took <= TTL + MARGIN, f"B took over {took:.2f} s after the kill (ttl {TTL} s)"

    def logged_on_again(peer: FixClient, mark: int) -> bool:
        return peer.logged_on and any(d == "I" and "\x0135=A\x01" in r for d, r in peer.wire.lines[mark:])
    wait_until(lambda: logged_on_again(client, marks["client"]), 30, "the client to log on to B")
    back_in = time.monotonic() - killed
    wait_until(lambda: logged_on_again(receiver, marks["dropcopy"]), 30, "the drop-copy receiver to log on to B")
    for name, sim in venues.items():
        wait_until(lambda sim=sim, name=name: sim.logged_on and _logons(
            r for _, d, r in wires[name][marks[name]:] if d == "I"), 30, f"B to log on to {name}")

    # Each session continues: our Logon numbers on past the journal's last by seq_gap, theirs continues, and
    # the gap is filled; nothing is reset.
    after = {"client": [r for _, r in client.wire.lines[marks["client"]:]],
             "dropcopy": [r for _, r in receiver.wire.lines[marks["dropcopy"]:]],
             **{name: [r for _, _, r in wires[name][marks[name]:]] for name in venues}}
    for key, lines in after.items():
        _no_reset(lines)
    # B numbers its first message seq_gap past the journal's last (B's drop-copy service may store copies it
    # re-sends, PossResend, before the receiver logs on, so its Logon can come later still); the counterparty
    # asks for the gap and gets it filled, from the journal's next number on.
    for key in ("client", "dropcopy"):
        peer = client if key == "client" else receiver
        ours = _logons(r for d, r in peer.wire.lines[marks[key]:] if d == "I")[0]
        theirs = _logons(r for d, r in peer.wire.lines[marks[key]:] if d == "O")[0]
        assert int(ours[34]) >= before[key] + 1 + SEQ_GAP, (key, ours[34], before[key])
        wait_until(lambda: _gap_filled([r for d, r in peer.wire.lines[marks[key]:] if d == "I"], before[key] + 1,
                                       before[key] + SEQ_GAP), 15, f"the {key}'s gap to be filled")
        wait_until(lambda: peer.session.getExpectedTargetNum() > int(ours[34]), 10,
                   f"the {key} to take the gap fill")  # (the wire log sees a message before quickfix takes it)
        if key == "client":
            assert int(ours[34]) == before[key] + 1 + SEQ_GAP
            assert int(theirs[34]) == client_next_out  # the client's own numbers simply continue
    for name in venues:
        ours = _logons(r for _, d, r in wires[name][marks[name]:] if d == "I")[0]
        assert int(ours[34]) == before[name] + 1 + SEQ_GAP, (name, ours[34], before[name])
        wait_until(lambda name=name: _gap_filled([r for _, d, r in wires[name][marks[name]:] if d == "I"],
                                                 before[name] + 1, before[name] + SEQ_GAP), 15,
                   f"{name}'s gap to be filled")

    # Trading goes on through B: a new order fills, and its drop copy arrives.
    again = client.new_order("AAPL", "1", 100, "190.10")
    client.wait_exec(again, "2", timeout=20)
    wait_until(lambda: any(m.get(11) == again for m in receiver.app_messages("8")), 20, "the new fill's drop copy")
    for sim in venues.values():
        assert all(count == 1 for count in sim.new_order_ids.values()), sim.new_order_ids

    answers = _status_answers(client, {fill: ("AAPL", "1"), rest: ("ORCL", "1")})
    # B knows every order acknowledged before the kill, in the state the client was last told
    assert answers == acked

    code, status = cluster_status(stack["cfg_path"])
    assert code == 0 and status["leader"] == "B"
    assert {i["instance"]: i["role"] for i in status["instances"]} == {"A": "deposed", "B": "active"}
    assert "store rebuilt from the journal" in b.log()
    print(f"B held the lease {took:.2f} s after the kill; the client was logged on to it after {back_in:.2f} s")


# ---------------------------------------------------------------------------- undecided venue messages
# (docs/failover.md, "Undecided venue messages at a takeover"). The old active decided a NewOrderSingle (the
# database state log has it, committed before it was sent) and its journal lost it: simulated deterministically by
# killing A once the journal has committed the order, waiting until A's journal writer process is gone (it holds
# writer.lock in A's spool directory while it runs), then deleting every journal row from the NewOrderSingle's on,
# and only then starting B. That is what a journal that had not committed its last rows looks like (the writer
# commits in order, so a lost message takes every later one with it), and what is left still verifies as a chain.

def _writer_gone(spool: Path) -> bool:
    with open(spool / "writer.lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def _order_row(url: str, session: str, cl_ord_id: str) -> int | None:
    """The journal id of the NewOrderSingle ``cl_ord_id`` we sent on ``session``, if committed."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            t = journal_messages.c
            return conn.execute(select(func.min(t.id)).where(
                t.session_id == session, t.direction == "O", t.msg_type == "D", t.cl_ord_id == cl_ord_id)).scalar()
    finally:
        engine.dispose()


def _lose_journal_tail(url: str, from_id: int) -> int:
    """Lose the journal's rows from ``from_id`` on, as a database that lost its last transactions would: their
    updates of each chain's recorded head (gateway/journal/chain.py) are lost with them."""
    t = journal_messages.c
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            lost = conn.execute(delete(journal_messages).where(t.id >= from_id)).rowcount
            for (chain,) in conn.execute(select(t.chain).distinct()).all():
                head = conn.execute(select(t.chain_hash).where(t.chain == chain).order_by(t.id.desc()).limit(1))
                conn.execute(text("UPDATE journal_meta SET value = :v WHERE name = :n"),
                             {"v": bytes(head.scalar_one()).hex(), "n": f"chain_head:{chain}"})
            return lost
    finally:
        engine.dispose()


def _journal_verifies(url: str) -> bool:
    engine = make_engine(url)
    try:
        return verify_database(engine).ok
    finally:
        engine.dispose()


def _kill_and_lose_the_order(stack, a: Instance, child: str) -> None:
    """SIGKILL A once its journal holds our NewOrderSingle ``child`` to VENUE2; then lose it and every later row."""
    url = stack["url"]
    session = f"{stack['cfg'].venues['VENUE2'].fix_version}:FIXGW->VENUE2"
    row = wait_until(lambda: _order_row(url, session, child), 15, "the journal to hold the order")
    a.signal(signal.SIGKILL)
    wait_until(lambda: a.proc.poll() is not None and _writer_gone(stack["tmp"] / "A" / "spool"), 15,
               "A and its journal writer to be gone")
    assert _lose_journal_tail(url, row) >= 1


def _venue_order(sim: VenueSimulator, child: str):
    """The venue's order that ``child`` (any ClOrdID it had) names."""
    return next((o for o in sim.matcher.all_orders() if o.cl_ord_id == child or child in o.cl_ord_ids), None)


def test_a_takeover_does_not_send_again_an_order_the_journal_lost(stack):
    """The venue had the order (A sent it, the venue acknowledged it, A told the client); the journal lost the
    order and what followed. Today's crash recovery would send it again (it is not in the rebuilt store): the venue
    would refuse the duplicate ClOrdID. B sends nothing for it, sends the client's lost acknowledgement again marked
    PossResend, and the order is the same at the venue and at the client, and B can cancel it."""
    url, venues, wires = stack["url"], stack["venues"], stack["wires"]
    a, b = stack["A"], stack["B"]
    a.start().wait_serving()
    wait_until(lambda: all(sim.logged_on for sim in venues.values()), 30, "the venues to see A log on")
    client = _peer(stack, "CLIENT44", "acceptor_port")
    rest = client.new_order("ORCL", "1", 100, "119.99")  # rests at VENUE2
    client.wait_exec(rest, "0", timeout=15)
    child = next(parse(r)[11] for _, d, r in list(wires["VENUE2"]) if d == "I" and "\x0135=D\x01" in r)
    mark = len(client.wire.lines)

    _kill_and_lose_the_order(stack, a, child)
    b.start()
    wait_leader(url, "pair", "B", TTL + MARGIN + 30)
    wait_until(lambda: client.logged_on and any(d == "I" and "\x0135=A\x01" in r
                                                for d, r in client.wire.lines[mark:]), 30, "the client to log on to B")
    wait_until(lambda: venues["VENUE2"].logged_on, 30, "B to log on to VENUE2")

    # the client's acknowledgement, lost from the journal, comes again marked PossResend (97=Y)
    wait_until(lambda: any(m.get(11) == rest and m.get(39) == "0" and m.get(97) == "Y"
                           for m in client.app_messages("8")), 20, "the acknowledgement again, PossResend")
    assert _status_answers(client, {rest: ("ORCL", "1")}) == {rest: "0"}
    assert _venue_order(venues["VENUE2"], child).status.name == "NEW"
    for sim in venues.values():
        assert all(count == 1 for count in sim.new_order_ids.values()), sim.new_order_ids
    assert "shows the venue had it" in b.log_path.read_text(errors="replace")

    # B acts on the order: the cancel reaches the venue, which cancels the order it has
    cancel = client.cancel(rest, "ORCL", "1", 100)
    client.wait_exec(cancel, "4", timeout=20)
    wait_until(lambda: _venue_order(venues["VENUE2"], child).status.name == "CANCELED", 10, "the venue's cancel")
    assert _journal_verifies(url)


def test_a_takeover_sends_an_order_the_venue_never_got(stack):
    """The venue never had the order: VENUE2 takes the NewOrderSingle at the session level and ignores it (the
    simulator's "silent" misbehaviour, its status requests too, so A hears nothing), as if it had been lost on the
    way. The journal loses it too; the venue is restarted well-behaved. B holds the child in doubt, asks VENUE2,
    hears "unknown order" (OrdRejReason 5) and sends the NewOrderSingle then, once, with the same ClOrdID: the
    venue acknowledges it and the client hears New."""
    url, venues, wires = stack["url"], stack["venues"], stack["wires"]
    a, b = stack["A"], stack["B"]
    cfg = stack["cfg"].venues["VENUE2"]
    quiet = cfg.simulator.model_copy(update={"misbehave": MisbehaviourConfig(
        symbols={"XXXX": SymbolMisbehaviour(new_order="silent", status="silent")})})

    def restart_venue2(sim_cfg) -> VenueSimulator:
        venues["VENUE2"].stop()
        sim = VenueSimulator(comp_id="VENUE2", port=cfg.port, sim=sim_cfg, store_dir=stack["tmp"] / "venues" / "VENUE2",
                             counterparties=("FIXGW",))
        sim.wire.rows = wires["VENUE2"]
        venues["VENUE2"] = sim.start()
        return sim
    silent = restart_venue2(quiet)
    a.start().wait_serving()
    wait_until(lambda: all(sim.logged_on for sim in venues.values()), 30, "the venues to see A log on")
    client = _peer(stack, "CLIENT44", "acceptor_port")
    order = client.new_order("XXXX", "1", 100, "10.00")  # only VENUE2 trades XXXX
    client.wait_exec(order, "A", timeout=15)  # PendingNew: VENUE2 says nothing
    child = wait_until(lambda: next((parse(r)[11] for _, d, r in list(wires["VENUE2"])
                                     if d == "I" and "\x0135=D\x01" in r), None), 10, "the order at VENUE2")
    mark = len(client.wire.lines)

    _kill_and_lose_the_order(stack, a, child)
    assert silent.misbehaved and not silent.new_order_ids  # taken at the session level, never placed
    well = restart_venue2(cfg.simulator)
    b.start()
    wait_leader(url, "pair", "B", TTL + MARGIN + 30)
    wait_until(lambda: client.logged_on and any(d == "I" and "\x0135=A\x01" in r
                                                for d, r in client.wire.lines[mark:]), 30, "the client to log on to B")

    client.wait_exec(order, "0", timeout=30)  # the venue acknowledged the order B sent
    assert [(cl, n) for (_, cl), n in well.new_order_ids.items()] == [(child, 1)], well.new_order_ids
    assert _venue_order(well, child).status.name == "NEW"
    assert _status_answers(client, {order: ("XXXX", "1")}) == {order: "0"}
    log = b.log_path.read_text(errors="replace")
    assert "is asked whether it has it" in log and "sent now with the same ClOrdID" in log
