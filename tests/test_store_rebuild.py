"""A session's quickfix FileStore rebuilt from the journal (issue 20: a successor continues every session
without a reset): real quickfix sessions over loopback, journaled by the gateway's own Log
(sessions/journal_log.py) and journal writer, on SQLite and PostgreSQL.

Session A (an acceptor, "the gateway") and B (an initiator, "the counterparty") exchange application
messages; A stops, its store is deleted and written again from the journal alone
(gateway.journal.session_tail.read_session_tail, sessions.filestore.write_store); A starts again and B
logs on with no reset, both sides' numbers continue, and B's ResendRequest gets A's original messages back
with PossDupFlag. The files written are byte for byte what quickfix wrote itself.
"""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
import quickfix as fix
from sqlalchemy import select

from gateway.journal.db import journal_messages, make_engine
from gateway.journal.session_tail import read_session_tail
from sessions.client import FixClient, parse
from sessions.filestore import StoreExists, read_info, sent_messages, write_store
from sessions.fixsettings import build_settings, graceful_stop, session_id, start_engine
from sessions.journal_log import JournalLogFactory
from tests.fix_fixtures import free_port

EXTS = (".body", ".header", ".seqnums", ".session")


class _App(fix.Application):
    """Session A's application: keeps the raw text of every application message it receives."""

    def __init__(self):
        super().__init__()
        self.received: list[str] = []
        self.cond = threading.Condition()

    def onCreate(self, sid):
        pass

    def onLogon(self, sid):
        pass

    def onLogout(self, sid):
        pass

    def toAdmin(self, msg, sid):
        pass

    def fromAdmin(self, msg, sid):
        pass

    def toApp(self, msg, sid):
        pass

    def fromApp(self, msg, sid):
        try:
            with self.cond:
                self.received.append(msg.toString())
                self.cond.notify_all()
        except Exception:  # noqa: BLE001 - nothing may reach quickfix
            pass

    def wait_received(self, n: int, timeout: float = 10.0) -> list[dict[int, str]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.received) >= n, timeout), self.received
            return [parse(raw) for raw in self.received]


_APP = _App()  # outlives every engine that calls it


class SessionA:
    """The acceptor whose store is rebuilt, journaled through the gateway's Log into ``writer``."""

    def __init__(self, sid: fix.SessionID, store: Path, port: int, writer):
        self.sid, self.store, self.port, self.writer = sid, store, port, writer
        self.engine = None

    def start(self) -> "SessionA":
        settings = build_settings("acceptor", self.store, [(self.sid, "FIX.4.4", {})],
                                  {"SocketAcceptPort": str(self.port)})
        self.engine = start_engine("acceptor", _APP, settings, JournalLogFactory(self.writer))
        return self

    def stop(self) -> None:
        if self.engine is not None:
            graceful_stop(self.engine, [self.sid])
            self.engine = None  # destroyed now: quickfix's session registry is process-wide

    def wait_logged_on(self) -> None:
        """Until A itself is logged on: B's onLogon can come first (A sends its Logon, then marks it sent), and a
        message A sends in between is only stored (docs/quickfix-binding.md, "Stores, sequence numbers ...")."""
        wait_until(lambda: (s := fix.Session.lookupSession(self.sid)) is not None and s.isLoggedOn())

    def note(self, text: str) -> None:
        """An application message from A to B (a BusinessMessageReject is the smallest there is)."""
        msg = fix.Message()
        msg.getHeader().setField(35, "j")
        msg.setField(372, "D")
        msg.setField(380, "0")
        msg.setField(58, text)
        assert fix.Session.sendToTarget(msg, self.sid)


@pytest.fixture
def run(tmp_path, database_url, writer_factory):
    """(A, B, journal URL): A journaling into a writer on the database under test, B logged on to it."""
    writer = writer_factory(database_url, flush_interval_ms=2)
    writer.start()
    made = []

    def start(a_name: str, b_name: str):
        port = free_port()
        a = SessionA(session_id("FIX.4.4", a_name, b_name), tmp_path / "a", port, writer).start()
        b = FixClient(version="FIX.4.4", sender=b_name, target=a_name, port=port, store_dir=tmp_path / "b")
        made.extend((b, a))
        return a, b.start()

    yield start, writer
    for peer in made:
        peer.stop()


def exchange(a: SessionA, b: FixClient, tag: str, n_orders: int = 3, n_notes: int = 4) -> None:
    """Orders from B to A and notes from A to B, interleaved; returns when each side has them all."""
    a.wait_logged_on()
    before = len(_APP.received)
    for i in range(max(n_orders, n_notes)):
        if i < n_orders:
            b.new_order("AAPL", "1", 100, "190.10", cl_ord_id=f"{tag}-order-{i}")
        if i < n_notes:
            a.note(f"{tag}-note-{i}")
    _APP.wait_received(before + n_orders)
    for i in range(n_notes):
        b.wait_for(lambda m, i=i: m.get(35) == "j" and m.get(58) == f"{tag}-note-{i}", 10)


def store_files(store: Path, sid: fix.SessionID) -> dict[str, bytes]:
    prefix = "-".join((sid.getBeginString().getString(), sid.getSenderCompID().getString(),
                       sid.getTargetCompID().getString()))
    return {ext: (store / (prefix + ext)).read_bytes() for ext in EXTS}


def journal_sent(url: str, sid: fix.SessionID, since_us: int = 0) -> list[tuple[int, str]]:
    """(MsgSeqNum, raw) of every message the journal has A sending for the first time, admin ones included."""
    t = journal_messages.c
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [(r.seq_num, r.raw) for r in conn.execute(
                select(t.seq_num, t.raw).where(t.session_id == sid.toString(), t.direction == "O",
                                               t.poss_dup.is_(False), t.seq_num.is_not(None),
                                               t.ts_us >= since_us).order_by(t.id))]
    finally:
        engine.dispose()


def wait_until(found, timeout: float = 10.0):
    """``found()``'s first truthy answer, asked every 20 ms."""
    deadline = time.monotonic() + timeout
    while not (answer := found()):
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.02)
    return answer


def wire(b: FixClient, direction: str, since: int = 0) -> list[dict[int, str]]:
    with b.wire._lock:
        return [parse(raw) for d, raw in b.wire.lines[since:] if d == direction]


def test_a_store_rebuilt_from_the_journal_continues_the_session_and_answers_resends(run, tmp_path):
    start, writer = run
    a, b = start("SBA", "SBB")
    exchange(a, b, "before")
    a.stop()  # A logs out (and B answers): the store is final
    assert writer.flush()
    info = read_info(a.store, a.sid)
    quickfix_wrote = store_files(a.store, a.sid)
    stored = sent_messages(a.store, a.sid)
    app_stored = [(seq, raw) for seq, raw in stored if parse(raw)[35] not in "0 1 2 3 4 5 A".split()]
    assert len(app_stored) == 4 and info.next_sender == len(stored) + 1 and info.next_target > 4

    # Byte for byte: the journal's sent messages written by write_store are the store quickfix wrote.
    url = writer.database_url
    write_store(tmp_path / "compat", a.sid, info.next_sender, info.next_target, journal_sent(url, a.sid),
                info.created)
    assert store_files(tmp_path / "compat", a.sid) == quickfix_wrote

    # A's store is lost; the journal alone rebuilds it.
    shutil.rmtree(a.store)
    tail = read_session_tail(url, a.sid.toString())
    assert (tail.next_sender, tail.next_target, tail.epoch_known) == (info.next_sender, info.next_target, True)
    assert list(tail.messages) == app_stored and tail.unresendable == ()
    assert abs(tail.epoch_us / 1e6 - info.created) < 5  # the first row, moments after quickfix made the store
    write_store(a.store, a.sid, tail.next_sender, tail.next_target, tail.messages, tail.epoch_us / 1e6)
    with pytest.raises(StoreExists):  # written once; never over a store without being told
        write_store(a.store, a.sid, tail.next_sender, tail.next_target, tail.messages, tail.epoch_us / 1e6)
    rebuilt = read_info(a.store, a.sid)
    assert (rebuilt.next_sender, rebuilt.next_target) == (info.next_sender, info.next_target)
    assert rebuilt.created == pytest.approx(tail.epoch_us / 1e6)

    # A starts again on the rebuilt store; B, which kept its own, logs on again with no reset.
    mark = len(b.wire.lines)
    a.start()
    assert b.wait_logged_on(15)
    (their_logon,) = [m for m in wire(b, "I", mark) if m[35] == "A"]
    (our_logon,) = [m for m in wire(b, "O", mark) if m[35] == "A"]
    assert int(their_logon[34]) == info.next_sender and 141 not in their_logon
    assert int(our_logon[34]) >= info.next_target and 141 not in our_logon
    a_sent = 1  # its Logon
    if int(our_logon[34]) > info.next_target:
        # B's initiator numbered a Logon it never sent while A was away (docs/quickfix-binding.md): A asks for
        # exactly what it expected, and B gap-fills it, as with the store quickfix kept
        asked = wait_until(lambda: [m for m in wire(b, "I", mark) if m[35] == "2"])
        assert int(asked[0][7]) == info.next_target
        a_sent += 1
        wait_until(lambda: [m for m in wire(b, "O", mark) if m[35] == "4" and m.get(123) == "Y"])
    a.wait_logged_on()
    a.note("after-note")
    after = b.wait_for(lambda m: m.get(58) == "after-note", 10)
    assert int(after[34]) == info.next_sender + a_sent
    had = len(_APP.received)
    b.new_order("AAPL", "1", 100, "190.10", cl_ord_id="after-order")
    assert int(_APP.wait_received(had + 1)[-1][34]) == int(our_logon[34]) + 1
    assert not [m for m in wire(b, "I", mark) + wire(b, "O", mark) if m[35] == "5" or 141 in m]  # no reset

    # B asks for everything from A's Logon to its last note: the notes come back as first sent, with PossDupFlag.
    last = app_stored[-1][0]
    mark = len(b.wire.lines)
    request = fix.Message()
    request.getHeader().setField(35, "2")
    request.setField(7, "1")
    request.setField(16, str(last))
    assert fix.Session.sendToTarget(request, b.sid)
    resent = wait_until(lambda: (got := {int(m[34]): m for m in wire(b, "I", mark) if m.get(43) == "Y"})
                        and all(seq in got for seq, _ in app_stored) and got)
    for seq, raw in app_stored:
        first = parse(raw)
        assert resent[seq][35] == "j" and resent[seq][58] == first[58] and resent[seq][122] == first[52]
    gap_fills = [m for m in resent.values() if m[35] == "4"]
    assert gap_fills and all(m.get(123) == "Y" for m in gap_fills)  # A's admin messages: gap-filled
    assert b.session.isLoggedOn()


def test_after_a_reset_the_journal_gives_the_store_quickfix_has(run, tmp_path):
    """B logs on again with ResetSeqNumFlag: the journal's current epoch is what quickfix kept after its reset."""
    start, writer = run
    a, b = start("SBC", "SBD")
    exchange(a, b, "old", n_orders=2, n_notes=5)
    b.session.logout("back with a reset")
    assert b.wait_logged_on(10, up=False)
    b.reset_seqnum_flag = True
    b.session.logon()
    assert b.wait_logged_on(15)
    b.reset_seqnum_flag = False
    exchange(a, b, "new", n_orders=3, n_notes=2)
    a.stop()
    assert writer.flush()
    info = read_info(a.store, a.sid)
    stored = sent_messages(a.store, a.sid)
    assert stored[0][0] == 1 and "141=Y" in stored[0][1]  # quickfix reset: the store begins at our 141=Y Logon

    tail = read_session_tail(writer.database_url, a.sid.toString())
    assert (tail.next_sender, tail.next_target) == (info.next_sender, info.next_target)
    assert list(tail.messages) == [(seq, raw) for seq, raw in stored if parse(raw)[35] == "j"]
    assert all("new-note" in raw for _, raw in tail.messages)

    # The epoch's sent rows, from its first journal row on, are the reset store byte for byte.
    write_store(tmp_path / "compat", a.sid, tail.next_sender, tail.next_target,
                journal_sent(writer.database_url, a.sid, since_us=tail.epoch_us), info.created)
    assert store_files(tmp_path / "compat", a.sid) == store_files(a.store, a.sid)


def test_the_gateways_client_store_rebuilt_from_its_journal_resends_what_waited_for_the_client(tmp_path):
    """The gateway's own journal (the messages it stored for a client that was away are journaled when they
    are stored: sessions/outbound.py) rebuilds its client stores; the client logs on again with no reset and
    gets what it missed, as from the store quickfix kept."""
    from gateway.process.server import Gateway
    from orders.commands import OperatorCancel
    from tests.fix_fixtures import start_stack

    stack = start_stack(f"sqlite:///{tmp_path / 'journal.db'}", tmp_path)
    try:
        c = stack.client("CLIENT44")
        c.wait_exec(c.new_order("AAPL", "1", 100, "190.10"), "2")
        resting = c.new_order("ORCL", "1", 100, "119.00")  # rests at VENUE2
        order_id = c.wait_exec(resting, "0")[37]
        c.stop()  # the client is away
        gw = stack.gateway
        assert gw.engine.request(OperatorCancel(order_id=order_id, operator="test")).result["canceled"] == 1
        store, sid = stack.cfg.data_dir / "store" / "clients", gw.client_sids["CLIENT44"]
        wait_until(lambda: [raw for _, raw in sent_messages(store, sid)
                            if f"\x0111={resting}\x01" in raw and "\x0139=4\x01" in raw])  # stored, not sent
        gw.stop()  # journal drained
        info = read_info(store, sid)
        app_stored = [(seq, raw) for seq, raw in sent_messages(store, sid) if parse(raw)[35] == "8"]

        shutil.rmtree(store)
        for name, client_sid in gw.client_sids.items():
            tail = read_session_tail(stack.cfg.journal.database_url, client_sid.toString())
            if tail is None:
                continue  # never logged on: quickfix starts it at 1/1, as it was
            write_store(store, client_sid, tail.next_sender, tail.next_target, tail.messages, tail.epoch_us / 1e6)
            if name == "CLIENT44":
                assert (tail.next_sender, tail.next_target) == (info.next_sender, info.next_target)
                assert list(tail.messages) == app_stored

        stack.gateway = Gateway(stack.cfg).start()
        assert stack.gateway.wait_venues_up(20)
        c = stack.client("CLIENT44")  # logs on again with its own store: no reset
        resent = c.wait_exec(resting, "4")
        assert resent.get(43) == "Y"
        assert not [m for m in c.messages if m.get(35) == "5"]
    finally:
        stack.stop()


def test_no_message_store_can_be_written_in_python():
    """Why the store is rebuilt as files: the binding's store classes are abstract, without a director."""
    for abstract in (fix.MessageStoreFactory, fix.MessageStore):
        with pytest.raises(AttributeError, match="abstract"):
            abstract()


def test_write_store_checks_what_it_is_given_and_replaces_a_store_only_when_told(tmp_path):
    from tests.test_session_tail import fix_text

    sid = session_id("FIX.4.4", "SBE", "SBF")
    two, three = fix_text("j", 2, "58=two"), fix_text("j", 3, "58=three")
    with pytest.raises(ValueError, match="MsgSeqNum"):
        write_store(tmp_path, sid, 4, 1, [(2, three)], 0.0)  # its text says 3
    with pytest.raises(ValueError, match="next_sender"):
        write_store(tmp_path, sid, 3, 1, [(3, three)], 0.0)  # numbered at or past the next one to send
    with pytest.raises(ValueError, match="next_target"):
        write_store(tmp_path, sid, 3, 0, [], 0.0)
    assert not list(tmp_path.iterdir())  # nothing written for a refused call
    write_store(tmp_path, sid, 4, 7, [(2, two), (3, three)], 1_767_268_800.25)
    files = store_files(tmp_path, sid)
    assert files[".seqnums"] == b"00000000000000000004 : 00000000000000000007"
    assert files[".session"] == b"20260101-12:00:00"
    assert files[".header"] == f"2,0,{len(two)} 3,{len(two)},{len(three)} ".encode()
    assert files[".body"] == (two + three).encode()
    assert read_info(tmp_path, sid).created == pytest.approx(1_767_268_800.25, abs=1e-6)  # from the mtime
    with pytest.raises(StoreExists):
        write_store(tmp_path, sid, 2, 1, [], 0.0)
    write_store(tmp_path, sid, 3, 1, [(2, two)], 1_767_268_800.0, overwrite=True)
    assert sent_messages(tmp_path, sid) == [(2, two)] and read_info(tmp_path, sid).next_sender == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"FIX.4.4-SBE-SBF{ext}" for ext in EXTS)
