"""The order-state log in PostgreSQL, wired in ([recovery] state_log = "database"): a message leaves only once the
record that explains it is committed, and when the log stops for good the gateway sends nothing more, says so
(CRITICAL, a metric, /health) and the process exits non-zero. The configuration refuses the database state log
without a PostgreSQL journal.

Against the real PostgreSQL (tests/db_fixtures.py). The crash-recovery and restart scenarios on this log are
tests/test_crash_recovery.py and tests/test_restart.py, parametrized over both kinds.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import select, text

from desk.core import Core
from desk.options import ClientOptions
from gateway.admin.http import health
from gateway.config import ConfigError, parse_config
from gateway.journal import db
from gateway.process.engine import Engine
from gateway.process.sender import SendingStopped
from gateway.state.log import StateLog
from gateway.state.pglog import PgStateLog
from gateway.state.records import State, load_record
from gateway.state.recovery import Recorder
from orders.commands import NewOrder, SessionStatus
from orders.model import OrdType, Side
from routing.router import Venue
from sessions.client import FixClient
from tests.db_fixtures import new_postgres_database
from tests.fix_fixtures import free_port, stack_config_text, start_stack
from tests.test_engine_sender import RecordingOutbound
from tests.test_observability import scrape

pytestmark = pytest.mark.postgres
FIXGW = shutil.which("fixgw", path=str(Path(sys.executable).parent)) or "fixgw"
RECORDS = db.state_log_records


@pytest.fixture(scope="module")
def pg_url():
    with new_postgres_database() as url:
        db.upgrade(url)
        yield url


@pytest.fixture(scope="module")
def pg_engine(pg_url):
    eng = db.make_engine(pg_url)
    yield eng
    eng.dispose()


def committed_sends(engine, stream: str) -> set:
    """Every message named by a committed record of ``stream``."""
    with engine.connect() as conn:
        bodies = conn.execute(select(RECORDS.c.body).where(RECORDS.c.stream == stream)).scalars().all()
    return {m for body in bodies for m in load_record(body).sends}


class CheckingOutbound(RecordingOutbound):
    """Sends nothing really; checks, at each send, that the message's record is committed in the database."""

    def __init__(self, engine, stream: str):
        super().__init__([])
        self._engine, self._stream = engine, stream
        self.sent_uncommitted: list = []

    def send(self, message) -> bool:
        if message not in committed_sends(self._engine, self._stream):
            self.sent_uncommitted.append(message)
        self.sent.append(message)
        return True


def new_order(i: int) -> NewOrder:
    return NewOrder(session="C1", cl_ord_id=f"A{i}", symbol="AAPL", side=Side.BUY, qty=D(10), ord_type=OrdType.LIMIT,
                    price=D(190))


def engine_on(pg_engine, fence) -> tuple[Engine, CheckingOutbound, PgStateLog]:
    """An engine recording to a PgStateLog of a stream of its own, whose transactions all run ``fence`` first."""
    stream = f"test-{secrets.token_hex(5)}"
    holder: dict = {}
    statelog = PgStateLog(pg_engine, stream, fence=fence, grace_s=2.0,
                          on_fatal=lambda reason: holder["engine"].halt(reason))
    statelog.open(State())
    core = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions()}, "T")
    outbound = CheckingOutbound(pg_engine, stream)
    engine = holder["engine"] = Engine(core, outbound, recorder=Recorder(statelog, core, State()))
    engine.start()
    engine.request(SessionStatus("V1", "venue", True))
    return engine, outbound, statelog


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def test_no_message_leaves_before_its_record_is_committed(pg_engine):
    holding, release = threading.Event(), threading.Event()

    def fence(conn):  # holds the committer inside its transaction, before it writes, while ``holding``
        if holding.is_set():
            release.wait(30)

    engine, outbound, statelog = engine_on(pg_engine, fence)
    try:
        engine.request(new_order(0))
        sent_before = len(outbound.sent)
        assert sent_before == 2  # the PendingNew and the child order: its record committed
        holding.set()
        for i in range(1, 21):
            engine.submit(new_order(i))
        wait_until(lambda: engine.handled >= 22 and statelog.pending >= 1, 10, "the orders to be decided")
        time.sleep(0.3)  # the sender has had every chance to send
        assert len(outbound.sent) == sent_before, "a message left while its record was not committed"
        assert engine.send_queue_depth() >= 2 and statelog.pending >= 1
        release.set()
        engine.request(new_order(21))  # answered once its messages, and so all before them, are sent
        assert len([m for m in outbound.sent if m[0] == "venue"]) == 22
        assert outbound.sent_uncommitted == []
        assert statelog.pending == 0
    finally:
        release.set()
        engine.stop()
        statelog.close(State())


def test_once_the_log_stops_for_good_nothing_more_is_sent(pg_engine):
    refuse = threading.Event()

    def fence(conn):  # as a lease whose token is no longer current
        if refuse.is_set():
            raise RuntimeError("fenced: another instance holds the lease")

    engine, outbound, statelog = engine_on(pg_engine, fence)
    try:
        engine.request(new_order(0))
        sent_before = list(outbound.sent)
        refuse.set()
        engine.submit(new_order(1))
        wait_until(lambda: engine.halted is not None, 10, "the engine to halt")
        assert "fenced" in engine.halted and "fenced" in statelog.fatal
        with pytest.raises(SendingStopped):
            engine.request(new_order(2), timeout=5)
        time.sleep(0.3)
        assert outbound.sent == sent_before  # not order 1's messages (never committed), nor anything after
        assert outbound.sent_uncommitted == []
        assert engine.sender.halted is not None
    finally:
        engine.stop()
        statelog.close(State())


def test_the_file_log_s_tickets_are_durable_at_once(tmp_path):
    statelog = StateLog(tmp_path)
    statelog.open(State())
    ticket = statelog.append(None, 0, [], [], None, [], None)
    assert statelog.durable_on_append and statelog.durable == ticket and statelog.pending == 0
    core = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions()}, "T")
    engine = Engine(core, RecordingOutbound([]), recorder=Recorder(statelog, core, State()))
    engine.start()
    try:
        assert engine.sender._statelog is None  # nothing to wait for: one comparison per item
    finally:
        engine.stop()
        statelog.close(State())


# ---------------------------------------------------------------------------------------------- configuration
def config_text(url: str, recovery: str) -> str:
    return f'comp_id = "GWX"\n[journal]\ndatabase_url = "{url}"\n[recovery]\n{recovery}\n'


def test_the_database_state_log_needs_a_postgresql_journal(tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_config(config_text("sqlite:///var/j.db", 'state_log = "database"'), tmp_path, env={})
    assert 'state_log = "database"' in str(err.value) and "PostgreSQL" in str(err.value)
    # the environment's URL is the one judged
    cfg = parse_config(config_text("sqlite:///var/j.db", 'state_log = "database"'), tmp_path,
                       env={"FIXGW_DATABASE_URL": "postgresql+psycopg://fixgw@db.example/fixgw"})
    assert cfg.recovery.state_log == "database" and cfg.recovery.state_log_stream is None
    with pytest.raises(ConfigError):
        parse_config(config_text("postgresql+psycopg://fixgw@db/fixgw", 'state_log = "database"'), tmp_path,
                     env={"FIXGW_DATABASE_URL": f"sqlite:///{tmp_path / 'j.db'}"})
    assert parse_config(config_text("sqlite:///var/j.db", ""), tmp_path, env={}).recovery.state_log == "file"
    with pytest.raises(ConfigError, match="state_log"):
        parse_config(config_text("sqlite:///var/j.db", 'state_log = "disk"'), tmp_path, env={})


# ---------------------------------------------------------------------------------------------- the gateway
def test_a_gateway_whose_state_log_fails_stops_sending_and_says_so(tmp_path):
    with new_postgres_database() as url:
        stack = start_stack(url, tmp_path, extra_toml='[recovery]\nstate_log = "database"\nstate_log_grace_s = 1\n')
        try:
            gw = stack.gateway
            assert gw.statelog.kind == "database" and gw.statelog.stream == "FIXGW"  # the comp_id by default
            c = stack.client("CLIENT44")
            c.wait_exec(c.new_order("AAPL", "1", 100, "190.10"), "2")
            ok, details = health(gw)
            assert details["state_log"] == {"kind": "database", "stream": "FIXGW", "pending_records": 0,
                                            "failed": None}
            venue_orders = sum(v.orders_received for v in stack.venues.values())
            with gw.statelog.engine.begin() as conn:  # every later write is refused
                conn.execute(text("ALTER TABLE state_log_records RENAME TO state_log_records_gone"))
            cl = c.new_order("AAPL", "1", 100, "190.10")
            assert gw.stop_requested.wait(10), "the gateway did not ask to stop"
            assert "state_log_records" in gw.halted
            time.sleep(0.5)
            assert not [m for m in c.app_messages("8") if m.get(11) == cl]  # no answer left
            assert sum(v.orders_received for v in stack.venues.values()) == venue_orders  # no order left
            assert scrape(stack)[("fixgw_state_log_halts_total", ())] == 1
            ok, details = health(gw)
            assert not ok and any("order-state log stopped" in p for p in details["problems"])
            assert details["state_log"]["failed"] and details["state_log"]["pending_records"] >= 1
        finally:
            stack.stop()


def refuse_writes(url: str, stream: str, refuse: bool = True) -> None:
    """Make the database refuse (an error that is no connection failure) every record written to ``stream``, or
    stop refusing. A trigger: it fires for INSERTs and for the group commit's COPY alike."""
    name = "refuse_" + stream.replace("-", "_")
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            if refuse:
                conn.execute(text(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                                  "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"))
                conn.execute(text(f"CREATE TRIGGER {name} BEFORE INSERT ON state_log_records FOR EACH ROW "
                                  f"WHEN (NEW.stream = '{stream}') EXECUTE FUNCTION {name}()"))
            else:
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON state_log_records"))
                conn.execute(text(f"DROP FUNCTION IF EXISTS {name}()"))
    finally:
        engine.dispose()


def test_fixgw_run_exits_non_zero_when_its_state_log_fails(tmp_path, pg_url):
    stream = f"cli-{secrets.token_hex(4)}"
    gw_port = free_port()
    cfg_text = stack_config_text(pg_url, tmp_path / "gw", gw_port, free_port(), free_port(), extra_toml=(
        f'[recovery]\nstate_log = "database"\nstate_log_stream = "{stream}"\nstate_log_grace_s = 1\n'))
    cfg_path = tmp_path / "gateway.cfg"
    cfg_path.write_text(cfg_text)
    cfg = parse_config(cfg_text, tmp_path, env={})
    log_path = tmp_path / "gateway.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([FIXGW, "run", "-c", str(cfg_path)], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    client = FixClient(version="FIX.4.4", sender="CLIENT44", target=cfg.comp_id, port=cfg.acceptor.port,
                       store_dir=tmp_path / "client")
    try:
        client.start(timeout=30)
        refuse_writes(pg_url, stream)  # the order is rejected (the venues are down): its record is refused
        cl = client.new_order("AAPL", "1", 100, "190.10")
        assert proc.wait(30) != 0
        log_text = log_path.read_text()
        assert "level=critical" in log_text and "the order-state log failed" in log_text, log_text[-3000:]
        assert not [m for m in client.app_messages("8") if m.get(11) == cl]
    finally:
        client.stop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        refuse_writes(pg_url, stream, refuse=False)
