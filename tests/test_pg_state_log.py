"""The order-state log in PostgreSQL (gateway/state/pglog.py), against the real server.

The scenarios of the file state log that are about the log itself (tests/test_recovery.py) run on both logs and
must give the same State. Then what only the database log does: group commit, nothing reported durable before its
transaction committed, a refusing fence or a database down past the grace stops it for good, a killed connection,
a standby following the active across a compaction, and a writer killed with SIGKILL mid-stream.

One fresh database for the module (on the server of FIXGW_TEST_PG_URL, as tests/db_fixtures.py), a stream of its
own per test, deleted after it. (Torn or bit-flipped records have no counterpart here: a transaction is whole or
absent.)
"""
from __future__ import annotations

import os
import pickle
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.exc import OperationalError

from gateway.journal import db
from gateway.state import recovery
from gateway.state.log import StateLog
from gateway.state.pglog import PgStateLog
from gateway.state.records import SEND_BACKLOG_MAX, State, StateLogError
from orders.actions import VenueNewOrder
from orders.commands import NewOrder
from orders.model import ExecKind, OrdType, Side
from sessions.codec import encode
from tests.db_fixtures import _admin_engine, _fail_or_skip
from tests.test_recovery import make_core, run_flow, too_big, venue_report

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parent.parent
RECORDS, SNAPSHOTS = db.state_log_records, db.state_log_snapshots


@pytest.fixture(scope="module")
def pg_url():
    admin, u = _admin_engine()
    name = f"fixgw_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        _fail_or_skip(str(exc).splitlines()[0])
    url = u.set(database=name).render_as_string(hide_password=False)
    try:
        db.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def engine(pg_url):
    eng = db.make_engine(pg_url)
    yield eng
    eng.dispose()


@pytest.fixture
def stream(engine):
    name = f"test-{secrets.token_hex(5)}"
    yield name
    with engine.begin() as conn:
        conn.execute(RECORDS.delete().where(RECORDS.c.stream == name))
        conn.execute(SNAPSHOTS.delete().where(SNAPSHOTS.c.stream == name))


@pytest.fixture
def pglog(engine, stream):
    """Make PgStateLogs on the test's stream; any still committing at the end are stopped (a crash leaves them)."""
    made: list[PgStateLog] = []

    def make(**kw) -> PgStateLog:
        made.append(PgStateLog(engine, stream, **kw))
        return made[-1]

    yield make
    for lg in made:
        if lg.committer is not None:
            lg.committer.stop(timeout=10)


@pytest.fixture(params=["file", "pg"])
def make_log(request, tmp_path):
    """The same scenario on the file state log and on the database one: a factory of logs over one store."""
    if request.param == "file":
        return lambda **kw: StateLog(tmp_path, **kw)
    return request.getfixturevalue("pglog")


def settled(lg) -> None:
    """Every record appended so far is durable (what a crash may rely on)."""
    assert lg.wait_durable(lg.written, timeout=15)


def soon(predicate, timeout: float = 5.0) -> bool:
    """``predicate()`` became true within ``timeout`` (on_fatal runs just after waiters are released)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def same_state(a: State, b: State) -> None:
    for name in ("orders", "open_risk", "watermarks", "controls", "last_trades", "risk_day", "rejected"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.pending == b.pending


# --------------------------------------------------------------------------- the file log's scenarios, on both
def test_the_log_folds_into_the_last_state_of_each_order_with_watermarks_and_switches(make_log):
    core, lg = make_core(), make_log()
    lg.open(State())
    run_flow(core, lg)
    settled(lg)
    state = make_log().recover()
    assert not state.clean and state.records == 4 and not state.torn
    a1 = next(o for o in state.orders.values() if o.cl_ord_id == "A1")
    assert a1.cum_qty == D(40) and state.open_risk[a1.order_id].cum == D(40)
    assert {k: v[0] for k, v in state.watermarks.items()} == {"client:C1": 3, "venue:V1": 7}
    assert state.controls[0] == ((("symbol", "IBM"), "halt"),)
    assert state.last_trades == {"AAPL": D("190.5")}


def recording(lg):
    core = make_core()
    lg.open(State())
    new = NewOrder(session="C1", cl_ord_id="A1", symbol="AAPL", side=Side.BUY, qty=D(100), ord_type=OrdType.LIMIT,
                   price=D("190.50"), seq=2)
    return core, recovery.Recorder(lg, core, State()), new


def test_orders_decisions_and_open_orders_come_back_exact_each_decision_logged_once(make_log):
    lg = make_log()
    core, rec, new = recording(lg)
    rec.record(new, core.handle(new))
    first = lg.bytes_written
    a1 = core.order_for_client("C1", "A1")
    for kind in (ExecKind.NEW, ExecKind.TRADE):
        ev = venue_report(a1, kind, last_qty=D(100) if kind is ExecKind.TRADE else D(0), last_px=D(190))
        rec.record(ev, core.handle(ev))
    assert (lg.bytes_written - first) / 2 < first  # the later records do not carry the decision again
    settled(lg)
    state = make_log().recover()
    back = state.orders[a1.order_id]
    assert back == a1 and str(back.price) == "190.50" and back.routes == a1.routes and len(a1.routes) == 1
    assert state.open_risk.get(a1.order_id) == core.risk_state.open_orders.get(("C1", a1.risk_key))


def test_a_record_holds_the_text_of_each_message_and_the_last_ones_are_pending(make_log):
    lg = make_log()
    core, rec, new = recording(lg)
    out = core.handle(new)
    sends = [("venue", a.venue, encode.encode_venue_new_order.text("FIX.4.4", a)) for a in out.actions
             if isinstance(a, VenueNewOrder)]
    rec.record(new, out, sends)
    settled(lg)
    assert [m for _, m in make_log().recover().pending] == sends


def test_the_messages_that_may_be_unsent_are_the_last_records_and_as_many_before_as_the_sender_may_lag(make_log):
    lg = make_log()
    lg.open(State())
    n = SEND_BACKLOG_MAX + 100
    for i in range(n):
        lg.append(None, 0, [], [("client", "C1", f"35=8\x0117=E{i}\x01")], None, [], None)
    last = [("venue", "V1", f"35=F\x0111=X{i}\x01") for i in range(3)]
    assert lg.append(None, 0, [], last, None, [], None) == n + 1  # tickets count the records
    settled(lg)
    state = make_log().recover()
    expected = [("client", "C1", f"35=8\x0117=E{i}\x01") for i in range(n - SEND_BACKLOG_MAX, n)] + last
    assert [m for _, m in state.pending] == expected
    assert all(type(ts) is float and ts > 0 for ts, _ in state.pending)


def test_a_clean_close_leaves_a_snapshot_marked_clean_and_no_records(make_log):
    core, lg = make_core(), make_log()
    lg.open(State())
    run_flow(core, lg)
    lg.close(recovery.Recorder(lg, core, State()).capture())
    state = make_log().recover()
    assert state.clean and state.records == 0
    assert set(state.orders) == set(core.orders)


def test_refusals_survive_a_crash_and_a_clean_stop_and_are_capped_at_recovery(make_log):
    lg = make_log()
    core, rec, _ = recording(lg)
    for i in range(3):
        cmd = too_big(f"B{i}", seq=i + 2)
        rec.record(cmd, core.handle(cmd))
    settled(lg)
    assert list(make_log().recover().rejected.values()) == list(core.rejected.values())  # after a crash
    lg.close(rec.capture())
    state = make_log().recover()
    assert state.clean and list(state.rejected.values()) == list(core.rejected.values())
    assert list(make_log(rejected_kept=2).recover().rejected) == list(core.rejected)[1:]  # the newest two


def test_a_watermark_dropped_after_a_sequence_reset_stays_dropped_after_a_crash(make_log):
    epochs = {"client:C1": 990.0}
    lg = make_log()
    state = State(watermarks={"client:C1": (500, 1000.5)})
    lg.open(state)  # the snapshot has the watermark
    rec = recovery.Recorder(lg, make_core(), state, store_epoch=lambda origin: epochs[origin])
    epochs["client:C1"] = 1000.2
    rec.session_up("client", "C1")
    assert "client:C1" not in rec.watermarks
    settled(lg)
    assert "client:C1" not in make_log().recover().watermarks


def test_compaction_at_open_folds_the_records_into_the_snapshot(make_log):
    core, lg = make_core(), make_log()
    lg.open(State())
    run_flow(core, lg)
    settled(lg)
    crashed = make_log().recover()
    again = make_log()
    again.open(crashed)  # the restart: compaction
    state = make_log().recover()
    assert state.records == 0 and not state.clean
    assert state.orders == crashed.orders and state.watermarks == crashed.watermarks


# --------------------------------------------------------------------------- the database log only
def test_sqlite_is_refused_with_a_reason():
    with pytest.raises(StateLogError, match="is for failover and needs PostgreSQL"):
        PgStateLog(create_engine("sqlite://"), "s")


def test_a_state_log_row_that_names_foreign_code_is_refused_not_executed(pglog, engine, stream, tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    lg = pglog()
    lg.open(State())
    lg.close(State())
    with engine.begin() as conn:
        conn.execute(SNAPSHOTS.update().where(SNAPSHOTS.c.stream == stream).values(
            body=pickle.dumps({"version": 1, "orders": Evil()})))
    with pytest.raises(StateLogError, match="may not refer to"):
        pglog().recover()
    with engine.begin() as conn:
        conn.execute(SNAPSHOTS.delete().where(SNAPSHOTS.c.stream == stream))
        conn.execute(RECORDS.insert().values(stream=stream, ticket=1, token=0, written_us=0,
                                             body=pickle.dumps((0.0, Evil()))))
    with pytest.raises(StateLogError, match="record .* cannot be read.*may not refer to"):
        pglog().recover()
    assert not (tmp_path / "pwned").exists()


def test_appends_are_committed_in_groups_and_every_ticket_becomes_durable_in_order(pglog, engine, stream):
    release = threading.Event()
    seen: list[int] = []

    def fence(conn):
        release.wait(10)  # the first transaction waits: everything appended meanwhile is one group

    lg = pglog(fence=fence, on_durable=seen.append)
    release.set()
    lg.open(State())  # (its snapshot is fenced too)
    release.clear()
    tickets = [lg.append(f"client:C{i % 3}", i + 1, [], [], None, [], None) for i in range(1000)]
    assert tickets == list(range(1, 1001))
    time.sleep(0.2)
    assert lg.durable == 0
    release.set()
    assert lg.wait_durable(1000, timeout=15) and lg.durable == 1000
    c = lg.committer
    assert c.committed == 1000 and c.transactions <= 3 and c.largest_group >= 1000 // c.transactions
    assert seen == sorted(seen) and seen[-1] == 1000  # the watermark only moves forward
    # and without a held transaction: far fewer transactions than records, all in order
    for i in range(1000, 4000):
        last = lg.append("client:C1", i + 1, [], [], None, [], None)
    assert lg.wait_durable(last, timeout=30)
    assert c.transactions < 1 + 3000 // 5
    with engine.connect() as conn:
        tickets = conn.execute(select(RECORDS.c.ticket).where(RECORDS.c.stream == stream)
                               .order_by(RECORDS.c.id)).scalars().all()
    assert tickets == list(range(1, 4001))


def test_a_ticket_is_not_durable_before_its_transaction_committed(pglog, engine, stream):
    at_commit: list = []
    go = threading.Event()
    lg = pglog()

    def before_commit(conn):
        if threading.current_thread().name == "fixgw-statelog":
            at_commit.append((lg.durable, lg.wait_durable(2, timeout=0.05)))
            go.wait(10)

    lg.open(State())
    assert lg.wait_durable(lg.append("client:C1", 1, [], [], None, [], None), timeout=10)  # (connected)
    event.listen(engine, "commit", before_commit)
    try:
        ticket = lg.append("client:C1", 2, [], [("client", "C1", "35=8\x01")], None, [], None)
        assert ticket == 2
        time.sleep(0.3)
        assert not lg.wait_durable(ticket, timeout=0.1) and lg.durable == 1
        with engine.connect() as conn:  # the row is written, not committed: nobody else sees it
            assert conn.execute(select(func.count()).where(RECORDS.c.stream == stream)).scalar() == 1
        go.set()
        assert lg.wait_durable(ticket, timeout=10)
    finally:
        event.remove(engine, "commit", before_commit)
    assert at_commit == [(1, False)]
    lg.close(State())


class LeaseLost(Exception):
    pass


def test_a_fence_that_refuses_stops_the_log_for_good_and_nothing_after_it_is_durable(pglog, stream):
    stale = threading.Event()
    fatal: list[str] = []

    def fence(conn):
        conn.execute(text("SELECT 1"))
        if stale.is_set():
            raise LeaseLost("token 7 is stale: the lease is at 8")

    lg = pglog(fence=fence, on_fatal=fatal.append)
    lg.open(State(), token=7)
    for i in range(10):
        t = lg.append("client:C1", i + 1, [], [], None, [], None)
    assert lg.wait_durable(t, timeout=10)
    stale.set()
    late = [lg.append("client:C1", i + 1, [], [], None, [], None) for i in range(10, 20)]
    assert not lg.wait_durable(late[-1], timeout=10)
    assert lg.durable == 10 and not any(lg.wait_durable(t, timeout=0) for t in late)
    assert soon(lambda: fatal) and len(fatal) == 1 and lg.fatal == fatal[0]
    assert "LeaseLost" in fatal[0] and "stale" in fatal[0]
    with pytest.raises(StateLogError, match="stopped"):
        lg.append("client:C1", 99, [], [], None, [], None)
    lg.close(State())  # no clean snapshot: this instance may no longer write
    assert len(fatal) == 1
    state = pglog().recover()
    assert state.records == 10 and state.watermarks["client:C1"][0] == 10 and not state.clean


def test_a_fence_that_refuses_at_open_writes_nothing(pglog, engine, stream):
    def fence(conn):
        raise LeaseLost("not the leader")

    with pytest.raises(StateLogError, match="LeaseLost: not the leader"):
        pglog(fence=fence).open(State(watermarks={"client:C1": (5, 1.0)}))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(SNAPSHOTS.c.stream == stream)).scalar() == 0


def test_a_database_that_does_not_answer_is_given_the_grace_then_the_log_stops(pglog):
    hang = threading.Event()
    fatal: list[str] = []

    def fence(conn):
        if hang.is_set():
            time.sleep(4)  # a commit that neither succeeds nor fails (a peer gone without a reset)

    lg = pglog(grace_s=0.5, fence=fence, on_fatal=fatal.append)
    lg.open(State())
    hang.set()
    t0 = time.monotonic()
    ticket = lg.append("client:C1", 1, [], [], None, [], None)
    assert not lg.wait_durable(ticket, timeout=10)
    assert 1.4 < time.monotonic() - t0 < 3.5  # the grace and the margin for a stall (1 s), not the whole hang
    assert soon(lambda: fatal) and "has not committed" in fatal[0]
    lg.committer.stop(timeout=10)  # the hung commit went through in the end: still not reported durable
    assert lg.durable == 0 and len(fatal) == 1


def kill_committer(engine, stream) -> int:
    """pg_terminate_backend on the committer's connection (found by its application_name)."""
    with engine.begin() as conn:
        return conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                 "WHERE application_name = :n"), {"n": f"fixgw-statelog:{stream}"}).scalar()


def test_a_killed_connection_is_replaced_within_the_grace_and_no_record_is_lost_or_doubled(pglog, stream):
    fatal: list[str] = []
    lg = pglog(grace_s=10, on_fatal=fatal.append)
    lg.open(State())
    for i in range(50):
        t = lg.append("client:C1", i + 1, [], [], None, [], None)
    assert lg.wait_durable(t, timeout=10)
    assert kill_committer(lg.engine, stream) == 1
    for i in range(50, 400):
        t = lg.append("client:C1", i + 1, [], [], None, [], None)
        if i % 50 == 0:
            time.sleep(0.01)
    assert lg.wait_durable(t, timeout=20), lg.fatal
    assert fatal == [] and lg.committer.retries >= 1
    for _ in range(3):  # killed again while big groups are being written (COPY)
        for i in range(t, t + 2000):
            t = lg.append("client:C1", i + 1, [], [("client", "C1", "35=8\x01" + "x" * 500)], None, [], None)
        time.sleep(0.02)
        kill_committer(lg.engine, stream)
    assert lg.wait_durable(t, timeout=30), lg.fatal
    assert fatal == [] and t == 6400
    with lg.engine.connect() as conn:
        tickets = conn.execute(select(RECORDS.c.ticket).where(RECORDS.c.stream == stream)
                               .order_by(RECORDS.c.id)).scalars().all()
    assert tickets == list(range(1, t + 1))  # nothing lost, nothing twice, in order
    state = pglog().recover()
    assert state.records == t and state.watermarks["client:C1"][0] == t


def test_a_connection_killed_with_no_grace_goes_fatal_once(pglog, stream):
    fatal: list[str] = []
    lg = pglog(grace_s=0, on_fatal=fatal.append)
    lg.open(State())
    t = lg.append("client:C1", 1, [], [], None, [], None)
    assert lg.wait_durable(t, timeout=10)
    assert kill_committer(lg.engine, stream) == 1
    late = lg.append("client:C1", 2, [], [], None, [], None)
    assert not lg.wait_durable(late, timeout=10)
    assert soon(lambda: fatal) and len(fatal) == 1 and "the database failed" in fatal[0] and lg.durable == 1
    assert pglog().recover().records == 1


def test_database_failures_are_retried_and_a_refusal_is_not():
    import psycopg

    from gateway.state.committer import transient

    assert transient(OperationalError("SELECT", None, ConnectionError("gone"), connection_invalidated=True))
    assert transient(psycopg.OperationalError("consuming input failed"), psycopg)  # raised inside a COPY
    assert not transient(psycopg.errors.UniqueViolation("duplicate"), psycopg)
    assert not transient(LeaseLost("stale token"), psycopg)


def test_a_commit_whose_answer_was_lost_is_not_written_twice_on_retry(pglog, monkeypatch, stream):
    lg = pglog(grace_s=10)
    real = lg._write_group
    lost = []

    def write_then_lose_the_answer(conn, group):
        real(conn, group)
        if not lost:  # committed, then the connection "dies" before the answer
            lost.append(len(group))
            conn.commit()
            raise OperationalError("COMMIT", None, ConnectionError("server closed the connection"),
                                   connection_invalidated=True)

    monkeypatch.setattr(lg, "_write_group", write_then_lose_the_answer)
    lg.open(State())
    for i in range(20):
        t = lg.append("client:C1", i + 1, [], [], None, [], None)
    assert lg.wait_durable(t, timeout=10) and lost and lg.committer.retries == 1
    state = pglog().recover()
    assert state.records == 20 and state.watermarks["client:C1"][0] == 20


def test_a_standby_follows_the_active_across_compactions(pglog):
    core, active = make_core(), pglog()
    active.open(State())
    run_flow(core, active)
    settled(active)
    standby = pglog()
    mine = State()
    at = standby.follow(mine, 0)
    same_state(mine, pglog().recover())
    # the active goes on; the standby sees how far behind it is, then catches up
    rec = recovery.Recorder(active, core, State())
    for i in range(3):
        cmd = too_big(f"B{i}", seq=10 + i)
        rec.record(cmd, core.handle(cmd))
    settled(active)
    lag = standby.lag(at)
    assert lag.records == 3 and lag.seconds >= 0 and not lag.snapshot_moved
    at = standby.follow(mine, at)
    same_state(mine, pglog().recover())
    assert standby.lag(at).records == 0
    # more records, then the active crashes and its successor compacts past where the standby is
    cmd = too_big("B9", seq=20)
    rec.record(cmd, core.handle(cmd))
    settled(active)
    active.committer.stop()
    successor = pglog()
    successor.open(successor.recover())
    successor.append("client:C2", 5, [], [], None, [], None)
    settled(successor)
    assert standby.lag(at).snapshot_moved
    at = standby.follow(mine, at)
    fresh = pglog().recover()
    same_state(mine, fresh)
    assert mine.watermarks["client:C1"][0] == 20 and mine.watermarks["client:C2"][0] == 5
    # a clean stop and a start with no record in between: same id covered, a new snapshot (pruned): reloaded
    successor.close(fresh)
    pruned = pglog().recover()
    pruned.orders.clear()
    third = pglog()
    third.open(pruned)
    assert standby.follow(mine, at) == at and mine.orders == {}
    third.close(pruned)


CHILD = textwrap.dedent("""
    import sys
    from gateway.journal.db import make_engine
    from gateway.state.pglog import PgStateLog
    from gateway.state.records import State

    url, stream = sys.argv[1], sys.argv[2]
    lg = PgStateLog(make_engine(url), stream, on_durable=lambda t: print("D", t, flush=True))
    lg.open(State())
    i = 0
    while True:
        i += 1
        lg.append("client:C1", i, [], [("client", "C1", "35=8\\x0117=E%d\\x01" % i)], None, [], None)
        if i % 200 == 0:
            lg.wait_durable(i - 1000, timeout=10)  # keep the queue from running away from the database
""")


@pytest.mark.timeout(90)
def test_a_writer_killed_with_sigkill_loses_only_records_never_reported_durable(pg_url, engine, stream, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, str(script), pg_url, stream], stdout=subprocess.PIPE, env=env,
                            text=True)
    reported = 0
    try:
        deadline = time.monotonic() + 60
        while reported < 3000:
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, "the writer stopped reporting"
            reported = int(line.split()[1])
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()  # what it printed before it died
    finally:
        proc.kill()
        proc.wait(10)
    for line in rest.splitlines():
        reported = max(reported, int(line.split()[1]))
    with engine.connect() as conn:
        tickets = conn.execute(select(RECORDS.c.ticket).where(RECORDS.c.stream == stream)
                               .order_by(RECORDS.c.id)).scalars().all()
    assert tickets == list(range(1, len(tickets) + 1))  # a prefix, in order, nothing twice
    assert len(tickets) >= reported  # every record reported durable is there
    state = PgStateLog(engine, stream).recover()
    assert state.records == len(tickets) and state.watermarks["client:C1"][0] == len(tickets)
    assert state.pending[-1][1] == ("client", "C1", f"35=8\x0117=E{len(tickets)}\x01")


def test_the_file_log_reports_every_ticket_durable_at_once(tmp_path):
    lg = StateLog(tmp_path)
    lg.open(State())
    tickets = [lg.append(None, 0, [], [], None, [], None) for _ in range(3)]
    assert tickets == [1, 2, 3] and lg.durable == 3 and lg.wait_durable(3, timeout=0)
    lg.close(State())


@pytest.mark.timeout(120)
def test_the_benchmark_runs_on_a_tiny_load():
    """bench/pg_state_log.py end to end (its figures are not checked: never timed here)."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "pg_state_log.py"), "--orders", "20", "--single",
                           "5", "--rounds", "1", "--rate", "300", "--duration", "0.2"],
                          capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| file, durable when append returns |" in proc.stdout and "append to durable p50" in proc.stdout


def test_a_warm_standby_folds_while_standing_by_reports_its_lag_and_takes_the_same_state(pglog):
    from gateway.state.warm import WarmState

    core, active = make_core(), pglog()
    active.open(State())
    run_flow(core, active)
    settled(active)
    warm = WarmState(pglog(), every=0.05).start()
    assert soon(lambda: warm.follows >= 2) and warm.lag() == (0, 0.0)
    rec = recovery.Recorder(active, core, State())
    for i in range(3):
        cmd = too_big(f"W{i}", seq=30 + i)
        rec.record(cmd, core.handle(cmd))
    settled(active)
    seen = warm.follows
    assert soon(lambda: warm.follows > seen + 1)
    assert warm.lag() == (0, 0.0)  # caught up by itself
    cmd = too_big("W9", seq=40)  # written after its last look: the takeover's read folds it
    rec.record(cmd, core.handle(cmd))
    settled(active)
    active.committer.stop()
    taken = warm.take()
    fresh = pglog().recover()
    same_state(taken, fresh)
    assert not taken.clean and taken.records == fresh.records
    assert taken.watermarks["client:C1"][0] == 40


def test_a_warm_standby_that_never_looked_reads_the_whole_log_at_the_takeover(pglog):
    from gateway.state.warm import WarmState

    core, active = make_core(), pglog()
    active.open(State())
    run_flow(core, active)
    settled(active)
    active.committer.stop()
    warm = WarmState(pglog(), every=60)  # never started
    assert warm.lag() is None
    same_state(warm.take(), pglog().recover())
