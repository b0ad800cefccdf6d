"""The venue simulator over loopback: real quickfix sessions in FIX 4.2, 4.4 and 5.0."""
from __future__ import annotations

import itertools
import logging
import select
import signal
import subprocess
import sys
import time
from decimal import Decimal as D
from types import SimpleNamespace

import pytest
import quickfix as fix
from click.testing import CliRunner

from gateway.cli.venue_sim import run_simulators_for, venue_sim
from gateway.config import ConfigError, parse_config
from venuesim.config import MisbehaviourConfig, SimulatorConfig, SymbolMisbehaviour
from sessions.client import FixClient
from sessions.codec.tagvalue import parse_fields, parse_pairs, utc_timestamp
from sessions.simulator.venue import VenueSimulator
from tests.fix_fixtures import free_port

VERSIONS = ("FIX.4.2", "FIX.4.4", "FIX.5.0")
# Every symbol: asks 190.01 x500, 190.02 x1000, ...; bids 189.99 x500, 189.98 x1000, ...
# Each test trades its own symbol, so tests sharing the simulator cannot see each other's orders.
SYMBOLS = tuple(f"S{n:02d}" for n in range(1, 80))
CFG = SimulatorConfig(prices={**{s: D("190.00") for s in SYMBOLS}, "HALTED": D("10")}, tick=D("0.01"), depth=5,
                      level_size=D(500), reject_symbols=("HALTED",))
TRADE_EXEC_TYPES = {"FIX.4.2": ["1", "2"], "FIX.4.4": ["F", "F"], "FIX.5.0": ["F", "F"]}
_names = itertools.count(1)
_symbols = iter(SYMBOLS)


@pytest.fixture(scope="module")
def venue(tmp_path_factory):
    """One simulator for the module, with one logged-on client per (sender, version), made on first use.

    Stopping a quickfix initiator costs about a second (its thread polls in whole
    seconds), so sessions are shared rather than made per test.
    """
    base = tmp_path_factory.mktemp("venue-sim")
    comp_id = f"VSIM{next(_names)}"
    port = free_port()
    sim = VenueSimulator(comp_id, port, CFG, base / "venue", counterparties=("FIXGW", "OTHER")).start()
    clients: dict[tuple[str, str], FixClient] = {}

    def connect(version: str, sender: str = "FIXGW") -> FixClient:
        if (sender, version) not in clients:
            client = FixClient(version=version, sender=sender, target=comp_id, port=port,
                               store_dir=base / f"client-{sender}-{version}")
            clients[(sender, version)] = client
            client.start(timeout=5)
        return clients[(sender, version)]

    yield SimpleNamespace(sim=sim, connect=connect, comp_id=comp_id, port=port)
    # The acceptor first: it logs the clients out, which makes their stop() quicker.
    sim.stop()
    for client in clients.values():
        client.stop()


@pytest.fixture
def sym() -> str:
    return next(_symbols)


def new_messages(client: FixClient):
    """A predicate filter: true only for messages received after this call."""
    seen = {id(m) for m in list(client.messages)}  # the dicts stay in client.messages, so ids stay unique
    return lambda m: id(m) not in seen


def send_replace(client: FixClient, orig: str, symbol: str, side: str, qty, price, ord_type: str = "2") -> str:
    cl = client.next_id("R")
    msg = fix.Message()
    msg.getHeader().setField(35, "G")
    msg.setField(41, orig)
    msg.setField(11, cl)
    if client.version != "FIX.5.0":
        msg.setField(21, "1")
    msg.setField(55, symbol)
    msg.setField(54, side)
    msg.setField(60, utc_timestamp())
    msg.setField(38, str(qty))
    msg.setField(40, ord_type)
    msg.setField(44, str(price))
    client.send(msg)
    return cl


def send_status_request(client: FixClient, cl_ord_id: str, symbol: str, side: str) -> None:
    msg = fix.Message()
    msg.getHeader().setField(35, "H")
    msg.setField(11, cl_ord_id)
    msg.setField(55, symbol)
    msg.setField(54, side)
    client.send(msg)


@pytest.mark.parametrize("version", VERSIONS)
def test_marketable_order_is_acknowledged_then_filled_to_its_quantity(venue, version, sym):
    c = venue.connect(version)
    received = venue.sim.orders_received
    cl = c.new_order(sym, "1", 1000, "190.02")
    last = c.wait_exec(cl, "2")
    new, *fills = c.exec_reports(cl)
    assert (new[150], new[39], new[151]) == ("0", "0", "1000")
    assert [f[150] for f in fills] == TRADE_EXEC_TYPES[version]
    assert [(f[32], f[31]) for f in fills] == [("500", "190.01"), ("500", "190.02")]
    assert sum(D(f[32]) for f in fills) == D(last[38]) == D(1000)
    assert fills[-1] is last and (last[39], last[14], last[151], last[6]) == ("2", "1000", "0", "190.015")
    assert fills[0][39] == "1"
    assert all(f[30] == venue.comp_id for f in fills)
    ers = [new, *fills]
    assert len({m[17] for m in ers}) == len(ers)
    assert len({m[37] for m in ers}) == 1 and new[37].startswith(venue.comp_id + "-")
    assert all(m[55] == sym and m[54] == "1" and m[40] == "2" and m[44] == "190.02" and 60 in m for m in ers)
    assert all((m.get(20) == "0") == (version == "FIX.4.2") for m in ers)
    assert venue.sim.orders_received == received + 1


@pytest.mark.parametrize("version", VERSIONS)
def test_resting_limit_stays_new_and_can_be_canceled(venue, version, sym):
    c = venue.connect(version)
    cl = c.new_order(sym, "1", 100, "189.50")
    new = c.wait_exec(cl, "0")
    assert new[151] == "100"
    assert [o.cl_ord_id for o in venue.sim.matcher.resting_orders(sym)] == [cl]
    x = c.cancel(cl, sym, "1", 100)
    canceled = c.wait_exec(x, "4")
    assert (canceled[150], canceled[41], canceled[151], canceled[14], canceled[37]) == ("4", cl, "0", "0", new[37])
    assert venue.sim.matcher.resting_orders(sym) == []
    assert [m[39] for m in c.exec_reports(cl)] == ["0"]  # no fill ever arrived for the resting order


@pytest.mark.parametrize("version", VERSIONS)
def test_cancel_of_unknown_order_gets_cancel_reject_unknown_order(venue, version, sym):
    c = venue.connect(version)
    x = c.cancel("NO-SUCH-ORDER", sym, "1", 100)
    rej = c.wait_for(lambda m: m.get(35) == "9" and m.get(11) == x, what="OrderCancelReject")
    assert (rej[102], rej[434], rej[39], rej[37], rej[41]) == ("1", "1", "8", "NONE", "NO-SUCH-ORDER")


@pytest.mark.parametrize("version", VERSIONS)
def test_cancel_of_filled_order_is_too_late(venue, version, sym):
    c = venue.connect(version)
    cl = c.new_order(sym, "2", 100)
    c.wait_exec(cl, "2")
    x = c.cancel(cl, sym, "2", 100)
    rej = c.wait_for(lambda m: m.get(35) == "9" and m.get(11) == x, what="OrderCancelReject")
    assert (rej[102], rej[434], rej[39]) == ("0", "1", "2")


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_symbol_is_rejected_with_reason_unknown_symbol(venue, version):
    c = venue.connect(version)
    cl = c.new_order("ZZZZ", "1", 100, "10")
    rej = c.wait_exec(cl, "8")
    assert (rej[150], rej[103], rej[151], rej[14]) == ("8", "1", "0", "0")
    assert "Unknown symbol" in rej[58]


@pytest.mark.parametrize("version", VERSIONS)
def test_reject_symbol_is_rejected_with_text(venue, version):
    c = venue.connect(version)
    cl = c.new_order("HALTED", "1", 100, "10")
    rej = c.wait_exec(cl, "8")
    assert (rej[150], rej[103]) == ("8", "0")
    assert "rejected by this venue" in rej[58]


@pytest.mark.parametrize("version", VERSIONS)
def test_market_order_beyond_depth_fills_what_is_there_and_cancels_the_rest(venue, version, sym):
    c = venue.connect(version)
    cl = c.new_order(sym, "2", 8000)
    canceled = c.wait_exec(cl, "4")
    assert (canceled[150], canceled[14], canceled[151]) == ("4", "7500", "0")
    fills = [m for m in c.exec_reports(cl) if m.get(32)]
    assert sum(D(f[32]) for f in fills) == D(7500)


@pytest.mark.parametrize("version", VERSIONS)
def test_replace_to_a_marketable_price_reports_replaced_then_fills_and_status(venue, version, sym):
    c = venue.connect(version)
    cl = c.new_order(sym, "1", 100, "189.50")
    c.wait_exec(cl, "0")
    r = send_replace(c, cl, sym, "1", 200, "190.01")
    filled = c.wait_exec(r, "2")
    replaced = c.wait_for(lambda m: m.get(35) == "8" and m.get(11) == r and m.get(150) == "5", what="Replaced")
    assert (replaced[39], replaced[41], replaced[38], replaced[44]) == ("0", cl, "200", "190.01")
    assert (filled[32], filled[31], filled[14]) == ("200", "190.01", "200")
    fresh = new_messages(c)
    send_status_request(c, r, sym, "1")
    status = c.wait_for(lambda m: fresh(m) and m.get(35) == "8" and m.get(11) == r, what="status report")
    assert status[150] == ("2" if version == "FIX.4.2" else "I")
    assert (status[39], status[14], status[151], status[37]) == ("2", "200", "0", filled[37])


@pytest.mark.parametrize("version", VERSIONS)
def test_replace_of_unknown_order_gets_cancel_reject_for_replace(venue, version, sym):
    c = venue.connect(version)
    r = send_replace(c, "NOPE", sym, "1", 200, "190")
    rej = c.wait_for(lambda m: m.get(35) == "9" and m.get(11) == r, what="OrderCancelReject")
    assert (rej[434], rej[102]) == ("2", "1")


@pytest.mark.parametrize("version", VERSIONS)
def test_unsupported_message_type_gets_business_message_reject(venue, version):
    c = venue.connect(version)
    fresh = new_messages(c)
    news = fix.Message()
    news.getHeader().setField(35, "B")
    news.setField(148, "hello")
    line = fix.Group(33, 58)
    line.setField(58, "text")
    news.addGroup(line)
    c.send(news)
    rej = c.wait_for(lambda m: fresh(m) and m.get(35) == "j", what="BusinessMessageReject")
    assert (rej[372], rej[380]) == ("B", "3")


def test_internal_error_is_answered_with_business_reject_and_the_venue_keeps_working(venue, sym, monkeypatch,
                                                                                     caplog):
    c = venue.connect("FIX.4.4")
    fresh = new_messages(c)

    def broken(order):
        raise RuntimeError("boom")

    with monkeypatch.context() as mp:
        mp.setattr(venue.sim.matcher, "submit", broken)
        c.new_order(sym, "1", 100, "190.01")
        rej = c.wait_for(lambda m: fresh(m) and m.get(35) == "j", what="BusinessMessageReject")
    assert (rej[372], rej[380]) == ("D", "0")
    assert int(rej[45]) > 1 and "RuntimeError" in rej[58]
    assert any(r.name == "fixgw.venuesim" and r.exc_info for r in caplog.records)
    cl = c.new_order(sym, "1", 100, "190.01")
    c.wait_exec(cl, "2")


def test_resting_order_hit_by_another_sessions_order_gets_its_own_fill(venue, sym):
    resting = venue.connect("FIX.4.2", sender="OTHER")
    taker = venue.connect("FIX.4.4", sender="FIXGW")
    rest_cl = resting.new_order(sym, "1", 300, "190.00")
    resting.wait_exec(rest_cl, "0")
    take_cl = taker.new_order(sym, "2", 500)
    taker_last = taker.wait_exec(take_cl, "2")
    passive = resting.wait_exec(rest_cl, "2")
    assert (passive[150], passive[32], passive[31], passive[14], passive[151], passive[30]) == \
        ("2", "300", "190", "300", "0", venue.comp_id)
    fills = [(m[32], m[31]) for m in taker.exec_reports(take_cl) if m[150] == "F"]
    assert fills == [("300", "190"), ("200", "189.99")]
    assert D(taker_last[6]) == (300 * D("190") + 200 * D("189.99")) / 500


def test_simulator_restarts_in_the_same_process_with_the_same_sessions(tmp_path):
    # quickfix keeps one process-wide registry of sessions: stop() must release them,
    # or the second simulator's sessions would be shadowed by the first one's.
    comp_id, port = f"VSIM{next(_names)}", free_port()
    first = VenueSimulator(comp_id, port, CFG, tmp_path / "venue").start()
    first.stop()
    assert not first.running
    second = VenueSimulator(comp_id, port, CFG, tmp_path / "venue").start()
    c = FixClient(version="FIX.4.2", sender="FIXGW", target=comp_id, port=port, store_dir=tmp_path / "client")
    try:
        c.start(timeout=5)
        cl = c.new_order("S01", "1", 10)
        c.wait_exec(cl, "2")
        assert second.logged_on == {f"FIX.4.2:{comp_id}->FIXGW"}
        assert second.orders_received == 1 and first.orders_received == 0
    finally:
        second.stop()
        c.stop()


def test_stop_without_sessions_is_quick_and_idempotent(tmp_path):
    sim = VenueSimulator(f"VSIM{next(_names)}", free_port(), CFG, tmp_path / "v").start()
    t0 = time.monotonic()
    sim.stop()
    sim.stop()
    assert time.monotonic() - t0 < 2


def test_start_on_a_port_in_use_fails_cleanly(tmp_path):
    port = free_port()
    first = VenueSimulator(f"VSIM{next(_names)}", port, CFG, tmp_path / "a").start()
    try:
        second = VenueSimulator(f"VSIM{next(_names)}", port, CFG, tmp_path / "b")
        with pytest.raises(fix.RuntimeError):
            second.start()
        assert not second.running
    finally:
        first.stop()


# --------------------------------------------------------------------------- the `venue-sim` command
CONFIG = """
comp_id = "FIXGW"
data_dir = "var"

[venues.{sim_name}]
fix_version = "FIX.4.4"
port = {port}
symbols = ["AAPL"]

[venues.{sim_name}.simulator]
prices = {{ AAPL = 190.00 }}

[venues.EXTERNAL]
fix_version = "FIX.4.2"
port = {port2}
symbols = ["IBM"]
"""


def write_config(tmp_path, sim_name: str, port: int) -> str:
    path = tmp_path / "gateway.cfg"
    path.write_text(CONFIG.format(sim_name=sim_name, port=port, port2=free_port()))
    return str(path)


@pytest.fixture(autouse=True)
def _keep_logging():
    """The command configures the root logger (stderr handler); put it back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run_cli(*args: str):
    return CliRunner().invoke(venue_sim, list(args), catch_exceptions=False)


def test_cli_unknown_venue_is_an_error_listing_the_known_venues(tmp_path):
    result = run_cli("-c", write_config(tmp_path, "VENUE1", free_port()), "--venue", "NOPE")
    assert result.exit_code == 1
    assert "unknown venue 'NOPE'" in result.output and "VENUE1, EXTERNAL" in result.output


def test_cli_venue_without_simulator_section_is_an_error(tmp_path):
    result = run_cli("-c", write_config(tmp_path, "VENUE1", free_port()), "--venue", "EXTERNAL")
    assert result.exit_code == 1
    assert "EXTERNAL has no [venues.EXTERNAL.simulator] section" in result.output
    assert "venues with one: VENUE1" in result.output


def test_cli_config_errors_become_click_errors(tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text("comp_id = 5\n")
    result = run_cli("-c", str(bad), "--venue", "VENUE1")
    assert result.exit_code == 1 and "invalid configuration" in result.output


def test_cli_standalone_needs_comp_id_port_and_a_price():
    result = run_cli("--comp-id", "VENUE9")
    assert result.exit_code == 2 and "--port, --price" in result.output
    result = run_cli("--comp-id", "VENUE9", "--port", "9890", "--price", "AAPL")
    assert result.exit_code == 2 and "SYMBOL=PRICE" in result.output


def test_cli_standalone_runs_and_prints_where_it_listens(tmp_path):
    port = free_port()
    comp_id = f"VSIM{next(_names)}"
    result = run_cli("--comp-id", comp_id, "--port", str(port), "--price", "AAPL=190.00", "--price", "MSFT=410.00",
                     "--store-dir", str(tmp_path / "store"), "--duration", "0.2")
    assert result.exit_code == 0, result.output
    assert f"listening on port {port}" in result.output
    assert f"FIX.4.2:{comp_id}->FIXGW, FIX.4.4:{comp_id}->FIXGW, FIXT.1.1:{comp_id}->FIXGW" in result.output


def test_cli_serves_a_configured_venue_until_sigterm_and_exits_0(tmp_path):
    port = free_port()
    cfg_path = write_config(tmp_path, "VENUECLI", port)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from gateway.cli.venue_sim import venue_sim; venue_sim()",
         "-c", cfg_path, "--venue", "VENUECLI"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "venue-sim printed nothing within 15 s"
        line = proc.stdout.readline()
        assert f"VENUECLI listening on port {port}" in line and "FIX.4.4:VENUECLI->FIXGW" in line
        client = FixClient(version="FIX.4.4", sender="FIXGW", target="VENUECLI", port=port,
                           store_dir=tmp_path / "client").start(timeout=5)
        cl = client.new_order("AAPL", "1", 100, "190.01")
        assert client.wait_exec(cl, "2")[31] == "190.01"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert (tmp_path / "var" / "venue-sim" / "VENUECLI").is_dir()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
        if client is not None:
            client.stop()


def test_run_simulators_for_starts_one_per_venue_with_a_simulator_section(tmp_path):
    name = f"VSIM{next(_names)}"
    port = free_port()
    cfg = parse_config(CONFIG.format(sim_name=name, port=port, port2=free_port()), tmp_path, env={})
    sims = run_simulators_for(cfg)
    try:
        assert [(s.comp_id, s.port, s.counterparties, s.running) for s in sims] == [(name, port, ("FIXGW",), True)]
        assert sims[0].store_dir == tmp_path / "var" / "venue-sim" / name
    finally:
        for s in sims:
            s.stop()


# --------------------------------------------------------------------------- misbehaviour, status, forgetting
# Each symbol of this venue misbehaves in its own way (misbehave.symbols); NORMAL* and MASS* behave.
BAD = SimulatorConfig(
    prices={s: D("190.00") for s in ("SREJ", "BREJ", "QUIET", "NOCXL", "NOCXLQ", "NOSTAT", "FORGET", "MASS",
                                      "EMPTY", "NORMAL")},
    misbehave=MisbehaviourConfig(symbols={
        "SREJ": SymbolMisbehaviour(new_order="session_reject", replace="session_reject"),
        "BREJ": SymbolMisbehaviour(new_order="business_reject"),
        "QUIET": SymbolMisbehaviour(new_order="silent"),
        "NOCXL": SymbolMisbehaviour(cancel="business_reject"),
        "NOCXLQ": SymbolMisbehaviour(cancel="silent"),
        "NOSTAT": SymbolMisbehaviour(status="business_reject"),
    }))
HEADER_AND_TRAILER = {8, 9, 10, 34, 35, 43, 49, 52, 56, 97, 122, 1128}


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """A misbehaving simulator with one logged-on client per (sender, version), made on first use."""
    base = tmp_path_factory.mktemp("venue-bad")
    comp_id = f"VBAD{next(_names)}"
    port = free_port()
    sim = VenueSimulator(comp_id, port, BAD, base / "venue", counterparties=("FIXGW", "OTHER")).start()
    clients: dict[tuple[str, str], FixClient] = {}

    def connect(version: str, sender: str = "FIXGW") -> FixClient:
        if (sender, version) not in clients:
            clients[(sender, version)] = FixClient(version=version, sender=sender, target=comp_id, port=port,
                                                   store_dir=base / f"client-{sender}-{version}").start(timeout=5)
        return clients[(sender, version)]

    yield SimpleNamespace(sim=sim, connect=connect, comp_id=comp_id)
    sim.stop()
    for client in clients.values():
        client.stop()


def venue_key(client: FixClient, comp_id: str) -> str:
    """The venue's name (session key) for the client's session, e.g. FIX.4.4:VBAD1->FIXGW."""
    return f"{client.sid.getBeginString().getValue()}:{comp_id}->{client.sid.getSenderCompID().getValue()}"


def sent_seq(client: FixClient, msg_type: str, cl_ord_id: str) -> str:
    """The MsgSeqNum the client sent its ``msg_type`` with ClOrdID ``cl_ord_id`` under."""
    for direction, raw in client.wire.lines:
        f = parse_fields(raw)
        if direction == "O" and f.get(35) == msg_type and f.get(11) == cl_ord_id:
            return f[34]
    raise AssertionError(f"{client.sid.toString()} sent no {msg_type} 11={cl_ord_id}")


def answer_to(client: FixClient, msg_type: str, seq: str, timeout: float = 5.0) -> list[tuple[int, str]]:
    """The body (tag, value pairs in wire order) of the ``msg_type`` message whose RefSeqNum (45) is ``seq``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for raw in client.raw_messages(msg_type):
            if parse_fields(raw).get(45) == seq:
                return [(t, v) for t, v in parse_pairs(raw) if t not in HEADER_AND_TRAILER]
        time.sleep(0.02)
    raise AssertionError(f"no {msg_type} with 45={seq} within {timeout}s")


def answered_after(client: FixClient, symbol: str = "NORMAL") -> None:
    """Send a marketable order for a well-behaved symbol and wait for its fill: every message sent before it
    has been processed by then (one session's messages are handled, and answered, in order)."""
    cl = client.new_order(symbol, "1", 1, "190.01")
    client.wait_exec(cl, "2")


@pytest.mark.parametrize("version", VERSIONS)
def test_a_new_order_can_be_answered_with_the_quickfix_executors_session_reject(bad, version):
    c = bad.connect(version)
    before = bad.sim.orders_received
    cl = c.new_order("SREJ", "1", 100)
    seq = sent_seq(c, "D", cl)
    assert answer_to(c, "3", seq) == [(45, seq), (58, "Value is incorrect (out of range) for this tag"),
                                      (371, "40"), (372, "D"), (373, "5")]
    answered_after(c)
    assert c.exec_reports(cl) == [] and bad.sim.matcher.order(venue_key(c, bad.comp_id), cl) is None
    assert bad.sim.orders_received == before + 1  # only the NORMAL order reached the book
    assert bad.sim.misbehaved[("new_order", "session_reject")] >= 1


def test_a_replace_can_be_answered_with_a_session_reject(bad):
    c = bad.connect("FIX.4.4")
    r = c.replace("ANY", "SREJ", "1", 100, "189")
    seq = sent_seq(c, "G", r)
    assert answer_to(c, "3", seq) == [(45, seq), (58, "Value is incorrect (out of range) for this tag"),
                                      (371, "40"), (372, "G"), (373, "5")]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_new_order_can_be_answered_with_a_business_message_reject(bad, version):
    c = bad.connect(version)
    cl = c.new_order("BREJ", "2", 100, "190.50")
    seq = sent_seq(c, "D", cl)
    assert answer_to(c, "j", seq) == [(45, seq), (58, "Unsupported Message Type (venue simulator misbehaviour)"),
                                      (372, "D"), (379, cl), (380, "3")]
    answered_after(c)
    assert c.exec_reports(cl) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_a_cancel_can_be_answered_with_a_business_message_reject_and_the_order_keeps_working(bad, version):
    c = bad.connect(version)
    cl = c.new_order("NOCXL", "1", 100, "189.50")
    c.wait_exec(cl, "0")
    x = c.cancel(cl, "NOCXL", "1", 100)
    seq = sent_seq(c, "F", x)
    assert answer_to(c, "j", seq) == [(45, seq), (58, "Unsupported Message Type (venue simulator misbehaviour)"),
                                      (372, "F"), (379, x), (380, "3")]
    assert cl in [o.cl_ord_id for o in bad.sim.matcher.resting_orders("NOCXL")]
    assert not [m for m in c.messages if m.get(35) == "9" and m.get(11) == x]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_silent_venue_accepts_a_new_order_and_never_answers_it(bad, version):
    c = bad.connect(version)
    cl = c.new_order("QUIET", "1", 100, "190.01")
    answered_after(c)  # the silent order was processed before this one
    assert not [m for m in c.messages if m.get(11) == cl or (m.get(35) in ("3", "j") and
                                                                m.get(45) == sent_seq(c, "D", cl))]
    assert bad.sim.matcher.order(venue_key(c, bad.comp_id), cl) is None
    assert c.session.isLoggedOn()


def test_a_silent_cancel_is_never_answered_and_the_order_stays_new(bad):
    c = bad.connect("FIX.4.4")
    cl = c.new_order("NOCXLQ", "2", 100, "190.50")
    c.wait_exec(cl, "0")
    x = c.cancel(cl, "NOCXLQ", "2", 100)
    fresh = new_messages(c)
    c.status(cl, "NOCXLQ", "2")
    status = c.wait_for(lambda m: fresh(m) and m.get(35) == "8" and m.get(11) == cl, what="status report")
    assert (status[150], status[39], status[151]) == ("I", "0", "100")
    assert not [m for m in c.messages if m.get(11) == x or m.get(41) == cl]


def test_a_status_request_can_be_answered_with_a_business_message_reject(bad):
    c = bad.connect("FIX.5.0")
    c.status("WHATEVER", "NOSTAT", "1")
    seq = next(parse_fields(raw)[34] for d, raw in reversed(c.wire.lines) if d == "O" and "\x0135=H\x01" in raw)
    body = answer_to(c, "j", seq)
    assert body == [(45, seq), (58, "Unsupported Message Type (venue simulator misbehaviour)"), (372, "H"),
                    (379, "WHATEVER"), (380, "3")]  # 1137 is not in the body: the simulator strips it by default


@pytest.mark.parametrize("version", VERSIONS)
def test_a_status_request_for_a_working_order_reports_its_real_state_and_echoes_ord_status_req_id(bad, version):
    c = bad.connect(version)
    cl = c.new_order("NORMAL", "1", 700, "190.01")  # 500 fill at 190.01, 200 rest
    c.wait_exec(cl, "1")
    fresh = new_messages(c)
    msg = fix.Message()
    msg.getHeader().setField(35, "H")
    for tag, value in ((11, cl), (55, "NORMAL"), (54, "1")) + (((790, "Q1"),) if version != "FIX.4.2" else ()):
        msg.setField(tag, value)
    c.send(msg)
    st = c.wait_for(lambda m: fresh(m) and m.get(35) == "8" and m.get(11) == cl, what="status report")
    assert (st[150], st[39], st[14], st[151], st[6]) == ("1" if version == "FIX.4.2" else "I", "1", "500", "200",
                                                         "190.01")
    assert st.get(790) == (None if version == "FIX.4.2" else "Q1")
    x = c.cancel(cl, "NORMAL", "1", 700)  # the rest would keep the next test's order from filling
    c.wait_exec(x, "4")


@pytest.mark.parametrize("version", VERSIONS)
def test_a_venue_that_forgot_its_orders_answers_status_unknown_order_and_cancel_unknown(bad, version):
    c = bad.connect(version, sender="OTHER")
    cl = c.new_order("FORGET", "1", 100, "189.00")
    c.wait_exec(cl, "0")
    assert bad.sim.forget_orders(venue_key(c, bad.comp_id)) >= 1
    assert cl not in [o.cl_ord_id for o in bad.sim.matcher.resting_orders("FORGET")]
    fresh = new_messages(c)
    c.status(cl, "FORGET", "1")
    st = c.wait_for(lambda m: fresh(m) and m.get(35) == "8" and m.get(11) == cl, what="status report")
    assert (st[150], st[39], st[103], st[58], st[37]) == ("8" if version == "FIX.4.2" else "I", "8", "5",
                                                          "unknown order", "NONE")
    x = c.cancel(cl, "FORGET", "1", 100)
    rej = c.wait_for(lambda m: m.get(35) == "9" and m.get(11) == x, what="OrderCancelReject")
    assert (rej[102], rej[39]) == ("1", "8")


def send_mass_status(client: FixClient, req_id: str, req_type: str, symbol: str | None = None) -> None:
    msg = fix.Message()
    msg.getHeader().setField(35, "AF")
    msg.setField(584, req_id)
    msg.setField(585, req_type)
    if symbol:
        msg.setField(55, symbol)
    client.send(msg)


@pytest.mark.parametrize("version", ("FIX.4.4", "FIX.5.0"))
def test_a_mass_status_request_reports_each_working_order_and_flags_the_last(bad, version):
    c = bad.connect(version)
    working = [c.new_order("MASS", "1", 100, "189.50"), c.new_order("MASS", "2", 60, "190.40")]
    done = c.new_order("MASS", "1", 10)
    c.wait_exec(done, "2")
    for cl in working:
        c.wait_exec(cl, "0")
    send_mass_status(c, f"M-{version}", "1", "MASS")
    got = lambda: [m for m in c.messages if m.get(35) == "8" and m.get(584) == f"M-{version}"]  # noqa: E731
    c.wait_for(lambda m: m.get(584) == f"M-{version}" and m.get(912) == "Y", what="last mass status report")
    assert [(m[11], m[150], m[39], m[151], m[911], m[912]) for m in got()] == [
        (working[0], "I", "0", "100", "2", "N"), (working[1], "I", "0", "60", "2", "Y")]


def test_a_mass_status_request_that_matches_nothing_is_answered_once_with_tot_num_reports_0(bad):
    c = bad.connect("FIX.4.4")
    send_mass_status(c, "M-EMPTY", "1", "EMPTY")
    m = c.wait_for(lambda m: m.get(584) == "M-EMPTY", what="mass status report")
    assert (m[35], m[37], m[150], m[39], m[911], m[912], m[55]) == ("8", "NONE", "I", "8", "0", "Y", "EMPTY")
    assert 11 not in m


def test_a_mass_status_request_of_an_unsupported_type_gets_a_session_reject_naming_585(bad):
    c = bad.connect("FIX.4.4")
    fresh = new_messages(c)
    send_mass_status(c, "M-BAD", "3")
    rej = c.wait_for(lambda m: fresh(m) and m.get(35) == "3", what="Reject")
    assert (rej[371], rej[372], rej[373]) == ("585", "AF", "5")


def test_a_fix50_venue_can_send_a_business_reject_with_appl_ver_id_in_its_body(tmp_path):
    cfg = SimulatorConfig(prices={"AAPL": D("190")}, misbehave=MisbehaviourConfig(
        new_order="business_reject", business_reject_reason=0, appl_ver_id_in_reject=True))
    comp_id, port = f"VSIM{next(_names)}", free_port()
    sim = VenueSimulator(comp_id, port, cfg, tmp_path / "venue", versions=("FIX.5.0",)).start()
    c = FixClient(version="FIX.5.0", sender="FIXGW", target=comp_id, port=port, store_dir=tmp_path / "client")
    try:
        c.start(timeout=5)
        cl = c.new_order("AAPL", "1", 100)
        seq = sent_seq(c, "D", cl)
        assert answer_to(c, "j", seq) == [(45, seq), (58, "Other (venue simulator misbehaviour)"), (372, "D"),
                                          (379, cl), (380, "0"), (1137, "7")]
        # our FIX50 dictionary takes it (fixspecs/FIX50.xml allows 1137 there, as quickfix 1.16 sends it): it
        # reaches the application (fromApp sees only messages that passed validation) and is not answered
        # with a session Reject (a stock FIX 5.0 dictionary answers 371=1137 373=2)
        c.wait_for(lambda m: m.get(35) == "j" and m.get(379) == cl, what="the BusinessMessageReject, validated")
        assert [raw for d, raw in list(c.wire.lines) if d == "O" and "\x0135=3\x01" in raw] == []
    finally:
        sim.stop()
        c.stop()


def test_a_venue_set_to_forget_orders_on_logon_answers_unknown_order_after_a_reconnect(tmp_path):
    cfg = SimulatorConfig(prices={"AAPL": D("190")}, misbehave=MisbehaviourConfig(forget_orders_on_logon=True))
    comp_id, port = f"VSIM{next(_names)}", free_port()
    sim = VenueSimulator(comp_id, port, cfg, tmp_path / "venue", versions=("FIX.4.4",)).start()
    clients = []
    try:
        first = FixClient(version="FIX.4.4", sender="FIXGW", target=comp_id, port=port,
                          store_dir=tmp_path / "client")
        clients.append(first)
        first.start(timeout=5)
        cl = first.new_order("AAPL", "1", 100, "189.00")
        first.wait_exec(cl, "0")
        first.stop()
        again = FixClient(version="FIX.4.4", sender="FIXGW", target=comp_id, port=port,
                          store_dir=tmp_path / "client")
        clients.append(again)
        again.start(timeout=5)
        # the venue forgets in its onLogon, which quickfix calls after sending its Logon answer: wait for it
        deadline = time.monotonic() + 5
        while sim.matcher.resting_orders("AAPL") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sim.matcher.resting_orders("AAPL") == []
        again.status(cl, "AAPL", "1")
        st = again.wait_for(lambda m: m.get(35) == "8" and m.get(11) == cl and m.get(150) == "I",
                            what="status report")
        assert (st[39], st[58]) == ("8", "unknown order")
    finally:
        sim.stop()
        for c in clients:
            c.stop()


def test_misbehaviour_per_symbol_falls_back_to_the_venue_wide_setting():
    cfg = MisbehaviourConfig(new_order="silent", cancel="business_reject",
                             symbols={"IBM": SymbolMisbehaviour(new_order="session_reject")})
    assert cfg.mode("new_order", "IBM") == "session_reject"
    assert cfg.mode("cancel", "IBM") == "business_reject"
    assert cfg.mode("new_order", "AAPL") == cfg.mode("new_order", None) == "silent"
    assert cfg.active and not MisbehaviourConfig().active


def test_misbehaviour_config_rejects_unknown_modes_and_symbols_without_a_price(tmp_path):
    text = CONFIG.format(sim_name="V1", port=free_port(), port2=free_port())
    with pytest.raises(ConfigError, match="misbehave.new_order"):
        parse_config(text.replace("prices = { AAPL = 190.00 }", 'prices = { AAPL = 190.00 }\n'
                                  'misbehave = { new_order = "explode" }'), tmp_path, env={})
    with pytest.raises(ConfigError, match="misbehave.symbols names MSFT"):
        parse_config(text.replace("prices = { AAPL = 190.00 }", 'prices = { AAPL = 190.00 }\n'
                                  'misbehave = { symbols = { MSFT = { cancel = "silent" } } }'), tmp_path, env={})
    cfg = parse_config(text.replace("prices = { AAPL = 190.00 }", 'prices = { AAPL = 190.00 }\n[venues.V1.simulator.'
                                    'misbehave]\ncancel = "silent"\nsymbols = { AAPL = { new_order = "silent" } }'),
                       tmp_path, env={})
    assert cfg.venues["V1"].simulator.misbehave.mode("new_order", "AAPL") == "silent"


def test_cli_sigusr1_makes_the_venue_forget_its_orders(tmp_path):
    port = free_port()
    cfg_path = write_config(tmp_path, "VENUEUSR", port)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from gateway.cli.venue_sim import venue_sim; venue_sim()",
         "-c", cfg_path, "--venue", "VENUEUSR"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready and "SIGUSR1" in proc.stdout.readline()
        client = FixClient(version="FIX.4.4", sender="FIXGW", target="VENUEUSR", port=port,
                           store_dir=tmp_path / "client").start(timeout=5)
        cl = client.new_order("AAPL", "1", 100, "189.00")
        client.wait_exec(cl, "0")
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the log line says the book is gone
            ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
            if ready and "forgot 1 order(s)" in proc.stderr.readline():
                break
        else:
            raise AssertionError("venue-sim did not log that it forgot the order")
        fresh = new_messages(client)
        client.status(cl, "AAPL", "1")
        st = client.wait_for(lambda m: fresh(m) and m.get(35) == "8" and m.get(11) == cl, what="status report")
        assert (st[39], st[58]) == ("8", "unknown order")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
        if client is not None:
            client.stop()
