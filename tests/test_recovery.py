"""Crash recovery without sockets: the state log, restoring the core, planning each session's repair."""
from __future__ import annotations

import collections
import copy
import dataclasses
import itertools
import json
import os
import pickle
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.state import recovery
from gateway.state.log import StateLog
from gateway.state.records import SEND_BACKLOG_MAX, State, StateLogError
from risk.engine import RiskEngine
from risk.rules import load_rules
from desk.core import Core
from desk.options import ClientOptions
from orders.actions import ClientExecReport, VenueCancel, VenueNewOrder, VenueReplace
from orders.commands import (
    CancelRequest, KillSwitch, MarketData, MDEntry, NewOrder, ReplaceRequest, SessionStatus, VenueCancelReject,
    VenueExecution,
)
from orders.model import CxlRejCode, CxlRejResponseTo, ExecKind, OrdStatus, OrdType, Side, TimeInForce
from routing.router import BEST_PRICE, SWEEP, RoutingPolicy, StrategySpec, Venue
from sessions.codec import encode
from tests.legacy_records import RecordPickler

RULES = """
chain = ["kill_switch", "max_order_qty", "max_open_orders", "max_position", "daily_notional"]
[limits]
max_order_qty = 5000
max_open_orders = 6
max_position = 20000
max_daily_notional = 100000000
"""


class Clock:
    def __init__(self, step_ms: int = 250):
        self.t = datetime(2026, 11, 24, 14, 0, tzinfo=timezone.utc)
        self.step = timedelta(milliseconds=step_ms)

    def __call__(self):
        self.t += self.step
        return self.t


def make_core(prefix="T", smart=False) -> Core:
    """Two venues routed to as before the router; ``smart``: three venues, orders swept across them by
    default (best price for C2), re-routed after rejects, each venue with its own on_disconnect."""
    if not smart:
        venues = [Venue("V1", frozenset({"AAPL", "MSFT"})), Venue("V2", frozenset({"AAPL", "IBM"}))]
        core = Core(venues, {"C1": ClientOptions(), "C2": ClientOptions()}, prefix,
                    risk=RiskEngine(load_rules(RULES, "test")), clock=Clock())
    else:
        venues = [Venue("V1", frozenset({"AAPL", "MSFT"}), on_disconnect="reroute", take_fee=D("0.003")),
                  Venue("V2", frozenset({"AAPL", "IBM"}), on_disconnect="cancel", priority=1),
                  Venue("V3", frozenset({"AAPL", "MSFT", "IBM"}))]
        core = Core(venues, {"C1": ClientOptions(), "C2": ClientOptions(strategy=StrategySpec(BEST_PRICE))}, prefix,
                    risk=RiskEngine(load_rules(RULES, "test")), clock=Clock(step_ms=20),
                    policy=RoutingPolicy(default=StrategySpec(SWEEP), max_reroutes=2,
                                         max_quote_age=timedelta(seconds=2)))
    for v in venues:
        core.handle(SessionStatus(v.name, "venue", True))
    return core


def frozen(core: Core) -> dict:
    return {oid: copy.deepcopy(o) for oid, o in core.orders.items()}  # (routing decisions included)


def risk_view(core: Core) -> dict:
    rs = core.risk_state
    return {"exposures": rs.exposures, "totals": {a: t for a, t in rs.account_totals.items() if not t.is_zero()},
            "gross": {a: v for a, v in rs.account_gross.items() if v},
            "daily": {a: v for a, v in rs.usage.used.items() if v}, "open": rs.open_orders,
            "count": rs.open_count, "kill": rs.kill_switches.engaged}


# --------------------------------------------------------------------------- a random order flow
_exec_ids = itertools.count(1)


def venue_report(order, kind, child=None, last_qty=D(0), last_px=D(0), orig=None, venue=None):
    return VenueExecution(venue=venue or order.venue, cl_ord_id=child or order.venue_cl_ord_id, orig_cl_ord_id=orig,
                          venue_order_id="VO-" + order.order_id, exec_id=f"X{next(_exec_ids)}", kind=kind,
                          ord_status=OrdStatus.NEW, symbol=order.symbol, side=order.side, last_qty=last_qty,
                          last_px=last_px, cum_qty=D(0), leaves_qty=D(0))


def draw_books(data, core: Core) -> list[MarketData]:
    """Snapshots of a symbol at every venue trading it (so that sweeps find several), or of one venue's."""
    symbol = data.draw(st.sampled_from(["AAPL", "MSFT", "IBM"]))
    venues = [v for v in sorted(core.venues) if symbol in core.venues[v].symbols]
    if data.draw(st.booleans()):
        venues = [data.draw(st.sampled_from(venues))]
    return [draw_book(data, venue, symbol) for venue in venues]


def draw_book(data, venue: str, symbol: str) -> MarketData:
    """A venue's snapshot: a few levels each side around 200."""
    bids = data.draw(st.lists(st.tuples(st.integers(190, 199), st.integers(1, 3000)), min_size=1, max_size=3))
    asks = data.draw(st.lists(st.tuples(st.integers(200, 210), st.integers(1, 3000)), min_size=1, max_size=3))
    entries = tuple(MDEntry(Side.BUY, D(px), D(size)) for px, size in bids) + tuple(
        MDEntry(Side.SELL, D(px), D(size)) for px, size in asks)
    return MarketData(venue=venue, req_id="R", symbol=symbol, entries=entries, snapshot=True)


def draw_command(data, core: Core, cl_ids):
    orders = list(core.orders.values())
    kinds = ["new", "new", "cancel", "replace", "ack", "fill", "partial", "venue_cancel", "reject", "replaced",
             "cxl_reject", "kill", "venue_down", "venue_up"]
    if len(core.venues) > 2:
        kinds += ["book", "book", "book", "new", "new"]
    kind = data.draw(st.sampled_from(kinds if orders else ["new", "book"] if len(core.venues) > 2 else ["new"]))
    if kind == "book":
        return draw_books(data, core)
    if kind == "new":
        smart = len(core.venues) > 2
        return NewOrder(session=data.draw(st.sampled_from(["C1", "C2"])), cl_ord_id=f"N{next(cl_ids)}",
                        symbol=data.draw(st.sampled_from(["AAPL", "MSFT", "IBM"] + ["AAPL"] * 3 * smart)),
                        side=data.draw(st.sampled_from([Side.BUY, Side.SELL])),
                        qty=D(data.draw(st.integers(1, 6000))), ord_type=OrdType.LIMIT,
                        price=D(data.draw(st.integers(185, 215) if smart else st.integers(100, 300))),
                        account=data.draw(st.sampled_from(["A", None])),
                        tif=data.draw(st.sampled_from([TimeInForce.DAY, TimeInForce.IOC])) if smart
                        else TimeInForce.DAY,
                        strategy=data.draw(st.sampled_from([None, None, "best-price", "preferred:V2,V3"]))
                        if smart else None)
    if kind in ("venue_down", "venue_up"):
        return SessionStatus(data.draw(st.sampled_from(sorted(core.venues))), "venue", kind == "venue_up")
    if kind == "kill":
        return KillSwitch("symbol", data.draw(st.sampled_from(["AAPL", "MSFT"])), engage=data.draw(st.booleans()),
                          cancel_open=True)
    o = data.draw(st.sampled_from(orders))
    if kind == "cancel":
        return CancelRequest(session=o.session, cl_ord_id=f"K{next(cl_ids)}", orig_cl_ord_id=o.cl_ord_id,
                             symbol=o.symbol, side=o.side)
    if kind == "replace":
        return ReplaceRequest(session=o.session, cl_ord_id=f"R{next(cl_ids)}", orig_cl_ord_id=o.cl_ord_id,
                              symbol=o.symbol, side=o.side, qty=o.qty + data.draw(st.integers(-50, 50)),
                              ord_type=OrdType.LIMIT, price=D(data.draw(st.integers(100, 300))))
    c = data.draw(st.sampled_from(o.children)) if o.children else None
    if c is None:
        return venue_report(o, ExecKind.NEW, venue="V1", child="nothing")
    at = dict(venue=c.venue)
    if kind == "ack":
        return venue_report(o, ExecKind.NEW, child=c.cl_ord_id, **at)
    if kind in ("fill", "partial"):
        room = c.qty - c.cum_qty
        qty = room if kind == "fill" else D(data.draw(st.integers(1, 200)))
        return venue_report(o, ExecKind.TRADE, child=c.cl_ord_id, last_qty=max(qty, D(1)),
                            last_px=D(data.draw(st.integers(100, 300))), **at)
    if kind == "venue_cancel":
        return venue_report(o, ExecKind.CANCELED, child=c.pending_cancel or c.cl_ord_id, orig=c.cl_ord_id, **at)
    if kind == "reject":
        return venue_report(o, ExecKind.REJECTED, child=c.cl_ord_id, **at)
    if kind == "replaced":
        child = c.pending_replace.cl_ord_id if c.pending_replace else c.cl_ord_id
        return venue_report(o, ExecKind.REPLACED, child=child, orig=c.cl_ord_id, **at)
    replace = c.pending_replace is not None
    return VenueCancelReject(venue=c.venue, cl_ord_id=(c.pending_replace.cl_ord_id if replace else
                                                       c.pending_cancel or c.cl_ord_ids[-1]),
                             orig_cl_ord_id=c.cl_ord_id, venue_order_id=None, reason=CxlRejCode.TOO_LATE,
                             response_to=CxlRejResponseTo.REPLACE if replace else CxlRejResponseTo.CANCEL)


def check_invariants(core: Core, cmd) -> None:
    """No overfill, fills add up, no order left open with nothing working for it."""
    for o in core.orders.values():
        limit = max(o.qty, o.pending_replace.qty if o.pending_replace else D(0))
        assert o.committed <= limit, (cmd, o)
        assert o.cum_qty == sum((c.cum_qty for c in o.children), D(0)), (cmd, o)
        assert o.cum_qty <= o.qty or o.status is OrdStatus.FILLED, (cmd, o)
        assert not o.is_open or o.live_children, ("an open order with no child working", cmd, o)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_changed_order_is_recorded_and_a_restored_core_equals_the_original(data):
    check_recorded_and_restored(data, smart=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_with_children_across_venues_every_change_is_recorded_restored_and_never_overfills(data):
    check_recorded_and_restored(data, smart=True)


def check_recorded_and_restored(data, smart: bool) -> None:
    core = make_core(smart=smart)
    cl_ids = itertools.count(1)
    state = State()
    commands = []
    for _ in range(data.draw(st.integers(1, 30 if not smart else 40))):
        if not commands:
            drawn = draw_command(data, core, cl_ids)
            commands = drawn if isinstance(drawn, list) else [drawn]
        cmd = commands.pop(0)
        before = frozen(core)
        outcome = core.handle(cmd)
        touched = {o.order_id for o in core.touched(cmd, outcome)}
        after = frozen(core)
        changed = {oid for oid, blob in after.items() if before.get(oid) != blob}
        assert changed <= touched, (cmd, changed - touched)
        check_invariants(core, cmd)
        # what the engine writes: the touched orders as they are now, with their open risk
        open_orders = core.risk_state.open_orders
        state.apply(recovery_record(core, cmd, outcome, open_orders))

    restored = make_core(prefix="U", smart=smart)
    state = pickle.loads(pickle.dumps(state))  # as read back from disk
    recovery.restore_core(restored, state)
    assert frozen(restored) == frozen(core)
    assert set(restored.by_client) == set(core.by_client)
    assert set(restored.by_child) == set(core.by_child)
    assert risk_view(restored) == risk_view(core)
    assert restored.rejected == core.rejected  # orders refused at intake (risk, kill switch) come back too


def recovery_record(core, cmd, outcome, open_orders):
    """The record the engine writes, as read back from the log (orders packed without their decisions)."""
    from gateway.state.records import RecordEncoder, load_record
    touched = core.touched(cmd, outcome)
    return load_record(RecordEncoder().record(
        recovery.origin_of(cmd), 0, [(o, open_orders.get((o.session, o.risk_key))) for o in touched], [],
        recovery.controls_of(core), outcome.routes, None, None, outcome.rejected or ()))


# --------------------------------------------------------------------------- the state log on disk
def run_flow(core: Core, log: StateLog) -> None:
    rec = recovery.Recorder(log, core, State())
    cmds = [
        NewOrder(session="C1", cl_ord_id="A1", symbol="AAPL", side=Side.BUY, qty=D(100), ord_type=OrdType.LIMIT,
                 price=D(190), seq=2),
        NewOrder(session="C1", cl_ord_id="A2", symbol="MSFT", side=Side.SELL, qty=D(50), ord_type=OrdType.LIMIT,
                 price=D(400), seq=3),
    ]
    for cmd in cmds:
        rec.record(cmd, core.handle(cmd))
    a1 = core.order_for_client("C1", "A1")
    fill = venue_report(a1, ExecKind.TRADE, last_qty=D(40), last_px=D("190.5"))
    fill = dataclasses.replace(fill, seq=7)
    rec.record(fill, core.handle(fill))
    kill = KillSwitch("symbol", "IBM")
    rec.record(kill, core.handle(kill))


def test_the_log_folds_into_the_last_state_of_each_order_with_watermarks_and_switches(tmp_path):
    core = make_core()
    log = StateLog(tmp_path)
    log.open(State())
    run_flow(core, log)
    state = StateLog(tmp_path).recover()
    assert not state.clean and state.records == 4 and not state.torn
    a1 = next(o for o in state.orders.values() if o.cl_ord_id == "A1")
    assert a1.cum_qty == D(40) and a1.status is OrdStatus.PARTIALLY_FILLED
    assert state.open_risk[a1.order_id].cum == D(40)
    assert {k: v[0] for k, v in state.watermarks.items()} == {"client:C1": 3, "venue:V1": 7}
    assert state.controls[0] == ((("symbol", "IBM"), "halt"),)
    assert state.last_trades == {"AAPL": D("190.5")}


def recording(tmp_path):
    """A core whose commands are recorded to a fresh state log, and a first order for it."""
    core = make_core()
    log = StateLog(tmp_path)
    log.open(State())
    new = NewOrder(session="C1", cl_ord_id="A1", symbol="AAPL", side=Side.BUY, qty=D(100), ord_type=OrdType.LIMIT,
                   price=D(190), seq=2)
    return core, log, recovery.Recorder(log, core, State()), new


def test_each_routing_decision_is_logged_once_and_comes_back_with_its_order(tmp_path):
    core, log, rec, new = recording(tmp_path)
    rec.record(new, core.handle(new))
    first = log.bytes_written
    a1 = core.order_for_client("C1", "A1")
    for kind in (ExecKind.NEW, ExecKind.TRADE):
        ev = venue_report(a1, kind, last_qty=D(100) if kind is ExecKind.TRADE else D(0), last_px=D(190))
        rec.record(ev, core.handle(ev))
    assert (log.bytes_written - first) / 2 < first  # the later records do not carry the decision again
    state = StateLog(tmp_path).recover()
    assert state.orders[a1.order_id].routes == a1.routes and len(a1.routes) == 1


def test_records_hold_plain_values_and_give_back_exact_orders_decisions_and_open_orders(tmp_path):
    core, log, rec, new = recording(tmp_path)
    new = dataclasses.replace(new, price=D("190.50"), qty=D("1E+2"))  # trailing zero and exponent kept
    out = core.handle(new)
    rec.record(new, out)
    a1 = core.order_for_client("C1", "A1")
    body = (tmp_path / "state.log").read_bytes()[8:]
    assert body[:1] == b"\x01"  # packed (layout 1): plain MessagePack, nothing that names code
    plain = msgspec.msgpack.decode(body[1:])
    order_values = plain[3][0][0]
    assert "190.50" in order_values and "1E+2" in order_values  # Decimals as their exact text
    state = StateLog(tmp_path).recover()
    back = state.orders[a1.order_id]
    assert back == a1 and str(back.price) == "190.50" and str(back.qty) == "1E+2"
    assert back.accepted_at == a1.accepted_at and back.accepted_at.tzinfo is timezone.utc
    assert back.routes == a1.routes and back.routes[0].quotes and back.routes[0].side is Side.BUY
    assert state.open_risk[a1.order_id] == core.risk_state.open_orders[("C1", a1.risk_key)]


def test_an_order_in_the_form_of_the_previous_version_still_loads():
    """Until this version the state log wrote enums as codes but Decimals and datetimes as objects."""
    from orders.states import _SLIM, _SLIM_GET, order_from_state_log, order_state_log_form

    core = make_core()
    core.handle(NewOrder(session="C1", cl_ord_id="A1", symbol="AAPL", side=Side.BUY, qty=D(100),
                         ord_type=OrdType.LIMIT, price=D("190.25"), seq=2))
    a1 = core.order_for_client("C1", "A1")
    plain = order_state_log_form(a1)
    older = [getattr(a1, name) if name in ("qty", "price", "cum_qty", "notional", "accepted_at") else value
             for name, value in zip(_SLIM, plain)]
    assert type(older[_SLIM.index("price")]) is D and len(older) == len(_SLIM_GET(a1))
    back = order_from_state_log(older)
    back.routes = a1.routes
    assert back == a1


@pytest.mark.parametrize("old_model", ["routing.model", "orders.model"])
def test_a_log_written_before_the_vocabulary_moved_still_loads(tmp_path, old_model):
    """Issue 19 moved routing.model and routing.orders to orders.model and orders.states, then split orders.model
    into the enumerations (orders.model), commands, actions and records: state files that an older gateway wrote
    name the old modules, and a gateway upgraded with open orders must still read them."""
    import sys
    import types

    from orders import actions, commands, model, records, states as orders_states

    old = types.ModuleType(old_model)  # the old vocabulary module: every name in one place
    for part in (model, commands, actions, records):
        old.__dict__.update({k: v for k, v in vars(part).items() if not k.startswith("__")})
    moved = [(orders_states.order_from_state_log, "routing.orders"),
             (records.route_from_state_log, old_model), (records.rejected_from_state_log, old_model)]
    saved = {name: sys.modules.get(name) for name in ("routing.orders", old_model)}
    sys.modules["routing.orders"], sys.modules[old_model] = orders_states, old
    try:
        for fn, name in moved:
            fn.__module__ = name  # pickled by reference under the old module's name, as the old gateway did
        core, log, rec, new = recording(tmp_path)
        log._encoder = RecordPickler()  # records as the older gateway wrote them: pickled
        rec.record(new, core.handle(new))
    finally:
        for fn, _ in moved:
            fn.__module__ = fn.__globals__["__name__"]
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module
    a1 = core.order_for_client("C1", "A1")
    body = (tmp_path / "state.log").read_bytes()
    assert b"routing.orders" in body and old_model.encode() + b"\x94\x8c\x14route_from_state_log" in body
    assert b"orders.records" not in body
    assert StateLog(tmp_path).recover().orders[a1.order_id] == a1


RISK_BEFORE_SPLIT = Path(__file__).parent / "fixtures" / "risk_state_before_split"


@pytest.mark.parametrize("name", ["crashed", "stopped"])
def test_state_files_written_before_the_risk_state_was_split_restore_the_same_risk_state(name):
    """Issue 19 split risk/state.py into RiskState and the collaborators it owns (kill switches, throttle,
    per-day usage): state files written before (``generate.py`` beside them, run at ff3ece4) name
    ``risk.state``'s open orders and hold the switches and per-day usage as plain values; they must give back
    the risk state that code restored from them, and the engine must go on from it."""
    expected = json.loads((RISK_BEFORE_SPLIT / "expected.json").read_text())[name]
    state = StateLog(RISK_BEFORE_SPLIT / name).recover()  # (reads only)
    assert state.clean is expected["clean"] and state.risk_day == expected["risk_day"]
    core = make_core()
    recovery.restore_core(core, state)
    assert core.risk_state.snapshot() == expected["risk"]
    assert json.loads(json.dumps(recovery.controls_of(core))) == expected["controls"]
    # the restored switches and open exposure act: IBM halted, A1's leaves still open
    out = core.handle(NewOrder(session="C1", cl_ord_id="A9", symbol="IBM", side=Side.BUY, qty=D(1),
                               ord_type=OrdType.LIMIT, price=D(150), seq=9))
    assert out.risk[0][2].reject.rule == "kill_switch"
    assert core.risk_state.exposure(None, "AAPL").buy_qty == D(50)


def test_a_record_holds_the_text_of_each_message_and_finds_the_ones_missing_from_the_store(tmp_path):
    core, log, rec, new = recording(tmp_path)
    out = core.handle(new)
    sends = [("venue", a.venue, encode.encode_venue_new_order.text("FIX.4.4", a)) for a in out.actions
             if isinstance(a, VenueNewOrder)]
    rec.record(new, out, sends)
    state = StateLog(tmp_path).recover()
    assert [m for _, m in state.pending] == sends and sends[0][2].startswith("35=D\x01")
    child = sends[0]
    stored = {"V1": [f"8=FIX.4.4\x019=9\x0135=D\x0134=2\x0111={out.actions[-1].cl_ord_id}\x01"]}
    assert recovery.unsent(sends, lambda name, n: []) == [child]
    assert recovery.unsent(sends, lambda name, n: stored[name][-n:]) == []


def test_the_messages_that_may_be_unsent_are_the_last_records_and_as_many_before_as_the_sender_may_lag(tmp_path):
    log = StateLog(tmp_path)
    log.open(State())
    n = SEND_BACKLOG_MAX + 100
    for i in range(n):  # one message per record, then a record of three
        log.append(None, 0, [], [("client", "C1", f"35=8\x0117=E{i}\x01")], None, [], None)
    last = [("venue", "V1", f"35=F\x0111=X{i}\x01") for i in range(3)]
    log.append(None, 0, [], last, None, [], None)
    state = StateLog(tmp_path).recover()
    expected = [("client", "C1", f"35=8\x0117=E{i}\x01") for i in range(n - SEND_BACKLOG_MAX, n)] + last
    assert [m for _, m in state.pending] == expected
    assert all(type(ts) is float and ts > 0 for ts, _ in state.pending)


def test_a_message_decided_before_its_session_store_was_created_is_never_sent_again():
    # The session was reset (a new FileStore) after the message was decided: it belongs to the old sequence.
    pending = [(100.0, ("venue", "V1", "35=D\x0111=OLD\x01")), (200.0, ("venue", "V1", "35=D\x0111=NEW\x01")),
               (100.0, ("client", "C1", "35=8\x0117=E1\x01"))]
    created = {"venue:V1": 150.0, "client:C1": None}
    assert recovery.decided_in_epoch(pending, created.get) == [pending[1][1], pending[2][1]]


def test_a_log_written_by_the_previous_version_still_loads_decisions_and_actions_included(tmp_path):
    """Before decisions were logged once, records had six fields: orders pickled whole and domain actions."""
    core = make_core()
    new = NewOrder(session="C1", cl_ord_id="A1", symbol="AAPL", side=Side.BUY, qty=D(100), ord_type=OrdType.LIMIT,
                   price=D(190), seq=2)
    out = core.handle(new)
    a1 = core.order_for_client("C1", "A1")
    fill = venue_report(a1, ExecKind.TRADE, last_qty=D(100), last_px=D("190.5"))
    fill_out = core.handle(fill)
    log = StateLog(tmp_path)
    log.open(State())
    for cmd, o in ((new, out), (fill, fill_out)):
        body = pickle.dumps((0.0, recovery.origin_of(cmd), 0, [(a1, None)], o.actions, None), protocol=5)
        os.write(log._fd, statelog_header(body) + body)
    state = StateLog(tmp_path).recover()
    assert state.orders[a1.order_id].routes == a1.routes and len(a1.routes) == 1
    assert state.last_trades == {"AAPL": D("190.5")}
    assert [m for _, m in state.pending] == out.actions + fill_out.actions  # the last records' messages, oldest first


def statelog_header(body: bytes) -> bytes:
    import struct
    import zlib
    return struct.pack("<II", len(body), zlib.crc32(body))


def test_a_clean_close_leaves_a_snapshot_marked_clean_and_an_empty_log(tmp_path):
    core = make_core()
    log = StateLog(tmp_path)
    log.open(State())
    run_flow(core, log)
    rec = recovery.Recorder(log, core, State())
    log.close(rec.capture())
    assert (tmp_path / "state.log").stat().st_size == 0
    state = StateLog(tmp_path).recover()
    assert state.clean and state.records == 0
    assert set(state.orders) == set(core.orders)
    assert oct((tmp_path / "state.snap").stat().st_mode & 0o777) == "0o600"


def test_a_torn_last_record_is_ignored_and_the_earlier_ones_kept(tmp_path):
    core = make_core()
    log = StateLog(tmp_path)
    log.open(State())
    run_flow(core, log)
    size = (tmp_path / "state.log").stat().st_size
    os.truncate(tmp_path / "state.log", size - 5)  # the process died inside the last write()
    state = StateLog(tmp_path).recover()
    assert state.torn and state.records == 3 and state.controls is None


def test_a_record_written_only_in_part_is_taken_back_and_the_records_after_it_are_read(tmp_path, monkeypatch):
    """A full disk takes half of a record: the log is cut back to where it was and the append fails (the engine
    says a crash now would lose that change); the next record follows the last whole one, and a restart reads
    every whole record (a partial one left in the middle would hide all that follow)."""
    import gateway.state.log as state_log

    core, log, rec, new = recording(tmp_path)
    rec.record(new, core.handle(new))
    before = (tmp_path / "state.log").stat().st_size
    real_write = os.write
    monkeypatch.setattr(state_log.os, "write", lambda fd, data: real_write(fd, data[:len(data) // 2]))
    second = dataclasses.replace(new, cl_ord_id="A2", seq=3)
    with pytest.raises(OSError, match="only .* bytes were written; the record was taken back"):
        rec.record(second, core.handle(second))
    assert (tmp_path / "state.log").stat().st_size == before and log.fatal is None
    monkeypatch.setattr(state_log.os, "write", real_write)
    third = dataclasses.replace(new, cl_ord_id="A3", seq=4)
    rec.record(third, core.handle(third))
    state = StateLog(tmp_path).recover()
    assert not state.torn and state.records == 2
    assert {o.cl_ord_id for o in state.orders.values()} == {"A1", "A3"}  # A2's record was never written


def test_a_partial_record_is_taken_back_to_the_log_as_reopened_not_as_it_was_before(tmp_path, monkeypatch):
    """A log closed and opened again starts empty: taking a record back cuts to what was written since."""
    import gateway.state.log as state_log

    core, log, rec, new = recording(tmp_path)
    rec.record(new, core.handle(new))
    log.close(State())
    log.open(State())
    real_write = os.write
    monkeypatch.setattr(state_log.os, "write", lambda fd, data: real_write(fd, data[:len(data) // 2]))
    second = dataclasses.replace(new, cl_ord_id="A2", seq=3)
    with pytest.raises(OSError):
        rec.record(second, core.handle(second))
    assert (tmp_path / "state.log").stat().st_size == 0


def test_a_partial_record_that_cannot_be_taken_back_stops_the_log_for_good(tmp_path, monkeypatch):
    import gateway.state.log as state_log

    core, log, rec, new = recording(tmp_path)
    real_write = os.write
    monkeypatch.setattr(state_log.os, "write", lambda fd, data: real_write(fd, data[:10]))

    def no_truncate(fd, length):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(state_log.os, "ftruncate", no_truncate)
    with pytest.raises(OSError):
        rec.record(new, core.handle(new))
    assert "could not be taken back" in log.fatal and "after byte 0" in log.fatal
    monkeypatch.setattr(state_log.os, "write", real_write)
    second = dataclasses.replace(new, cl_ord_id="A2", seq=3)
    with pytest.raises(StateLogError, match="could not be taken back"):
        rec.record(second, core.handle(second))


def test_a_record_with_a_flipped_bit_fails_its_checksum_and_is_treated_as_torn(tmp_path):
    log = StateLog(tmp_path)
    log.open(State())
    run_flow(make_core(), log)
    data = bytearray((tmp_path / "state.log").read_bytes())
    data[-3] ^= 0x40
    (tmp_path / "state.log").write_bytes(bytes(data))
    assert StateLog(tmp_path).recover().torn


def test_a_state_file_that_names_foreign_code_is_refused_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    (tmp_path / "state.snap").write_bytes(pickle.dumps({"version": 1, "orders": Evil()}))
    with pytest.raises(StateLogError, match="may not refer to"):
        StateLog(tmp_path).recover()
    assert not (tmp_path / "pwned").exists()


def test_finished_orders_from_before_today_are_forgotten_open_ones_kept():
    core = make_core()
    for cl in ("A1", "A2"):
        core.handle(NewOrder(session="C1", cl_ord_id=cl, symbol="AAPL", side=Side.BUY, qty=D(10),
                             ord_type=OrdType.LIMIT, price=D(190)))
    a1, a2 = core.order_for_client("C1", "A1"), core.order_for_client("C1", "A2")
    a1.status = OrdStatus.FILLED
    state = State(orders=dict(core.orders))
    assert state.prune(a1.accepted_at.timestamp() + 1) == 1
    assert list(state.orders) == [a2.order_id]


# --------------------------------------------------------------------------- orders refused at intake
def too_big(cl: str, seq: int) -> NewOrder:
    """An order the risk rules refuse (max_order_qty 5000)."""
    return NewOrder(session="C1", cl_ord_id=cl, symbol="AAPL", side=Side.BUY, qty=D(5001), ord_type=OrdType.LIMIT,
                    price=D(190), account="ACC1", seq=seq)


def test_an_order_refused_at_intake_comes_back_after_a_crash_and_its_clordid_is_still_free(tmp_path):
    core, log, rec, _ = recording(tmp_path)
    cmd = too_big("B1", seq=2)
    out = core.handle(cmd)
    rec.record(cmd, out)
    refused = core.rejected[out.rejected[0].order_id]
    state = StateLog(tmp_path).recover()
    assert list(state.rejected.values()) == [refused] and state.orders == {}
    restored = make_core(prefix="U")
    recovery.restore_core(restored, state)
    assert restored.rejected == core.rejected and restored.orders == {} and restored.open_order_count() == 0
    resend = dataclasses.replace(cmd, qty=D(5000), seq=3)  # corrected, same ClOrdID
    assert [type(a) for a in restored.handle(resend).actions] == [ClientExecReport, VenueNewOrder]


def test_a_refusal_is_one_small_record_whatever_the_book_holds(tmp_path):
    core, log, rec, _ = recording(tmp_path)
    sizes = []
    for n in (1, 6):  # (the rules allow 6 open orders)
        for i in range(len(core.orders), n):
            cmd = NewOrder(session="C2", cl_ord_id=f"W{i}", symbol="MSFT", side=Side.BUY, qty=D(1),
                           ord_type=OrdType.LIMIT, price=D(400))
            rec.record(cmd, core.handle(cmd))
        assert len(core.orders) == n
        before = log.bytes_written
        cmd = too_big(f"B{n}", seq=n)
        rec.record(cmd, core.handle(cmd))
        sizes.append(log.bytes_written - before)
    assert abs(sizes[1] - sizes[0]) <= 2 and max(sizes) < 600  # (IDs grow a digit)


def test_refusals_survive_a_clean_stop_are_capped_at_recovery_and_those_of_earlier_days_are_forgotten(tmp_path):
    core, log, rec, _ = recording(tmp_path)
    for i in range(3):
        cmd = too_big(f"B{i}", seq=i + 2)
        rec.record(cmd, core.handle(cmd))
    log.close(rec.capture())
    state = StateLog(tmp_path).recover()
    assert state.clean and list(state.rejected.values()) == list(core.rejected.values())
    kept = StateLog(tmp_path, rejected_kept=2).recover()
    assert list(kept.rejected) == list(core.rejected)[1:]  # the newest two
    last = list(core.rejected.values())[-1]
    assert kept.prune(last.received_at.timestamp()) == 0 and list(kept.rejected) == [last.order_id]


# --------------------------------------------------------------------------- skipping re-sent messages
def test_a_resend_at_or_below_the_watermark_is_skipped_and_a_new_one_processed(tmp_path):
    core = make_core()
    log = StateLog(tmp_path)
    log.open(State())
    rec = recovery.Recorder(log, core, State(watermarks={"client:C1": (5, 1e12)}))
    base = dict(session="C1", symbol="AAPL", side=Side.BUY, qty=D(1), ord_type=OrdType.LIMIT, price=D(190))
    assert rec.already_processed(NewOrder(cl_ord_id="x", seq=5, poss_dup=True, **base))
    assert not rec.already_processed(NewOrder(cl_ord_id="y", seq=6, poss_dup=True, **base))
    # without PossDupFlag a lower MsgSeqNum means the sequence was reset: process it
    assert not rec.already_processed(NewOrder(cl_ord_id="z", seq=2, **base))


def test_a_watermark_older_than_the_sessions_sequence_reset_is_forgotten_at_logon(tmp_path):
    log = StateLog(tmp_path)
    log.open(State())
    rec = recovery.Recorder(log, make_core(), State(watermarks={"client:C1": (500, 1000.0)}),
                            store_epoch=lambda origin: 2000.0)
    rec.session_up("client", "C1")
    assert "client:C1" not in rec.watermarks


def test_a_reset_while_the_last_message_was_still_being_processed_forgets_the_watermark_and_a_restart_too(tmp_path):
    # The core processed MsgSeqNum 500 at 1000.5, after the store was reset at 1000.2 (it lagged the logout):
    # comparing times cannot tell, but the store changed between two logons, which every reset needs.
    epochs = {"client:C1": 990.0}
    log = StateLog(tmp_path)
    state = State(watermarks={"client:C1": (500, 1000.5)})
    log.open(state)  # the snapshot has the watermark
    rec = recovery.Recorder(log, make_core(), state, store_epoch=lambda origin: epochs[origin])
    rec.session_up("client", "C1")  # the same store as at start-up: kept
    assert rec.watermarks["client:C1"] == (500, 1000.5)
    epochs["client:C1"] = 1000.2
    rec.session_up("client", "C1")
    assert "client:C1" not in rec.watermarks and rec.forgotten == 1
    base = dict(session="C1", symbol="AAPL", side=Side.BUY, qty=D(1), ord_type=OrdType.LIMIT, price=D(190))
    assert not rec.already_processed(NewOrder(cl_ord_id="n1", seq=3, poss_dup=True, **base))
    # a crash now: the state log says the watermark is gone (the snapshot still had it)
    assert "client:C1" not in StateLog(tmp_path).recover().watermarks


def test_a_watermark_of_the_current_sequence_survives_logons(tmp_path):
    log = StateLog(tmp_path)
    log.open(State())
    rec = recovery.Recorder(log, make_core(), State(watermarks={"client:C1": (7, 2000.0)}),
                            store_epoch=lambda origin: 1500.0)
    for _ in range(3):
        rec.session_up("client", "C1")
    assert rec.watermarks["client:C1"] == (7, 2000.0)


def test_the_store_epoch_is_read_to_the_sub_second_from_the_session_files_write_time(tmp_path):
    import quickfix as fix
    from calendar import timegm

    from sessions import filestore

    sid = fix.SessionID("FIX.4.4", "FIXGW", "C1")
    (tmp_path / "FIX.4.4-FIXGW-C1.seqnums").write_text("00000000000000000003 : 00000000000000000007")
    session_file = tmp_path / "FIX.4.4-FIXGW-C1.session"
    session_file.write_text("20260102-10:11:12")
    whole = float(timegm((2026, 1, 2, 10, 11, 12, 0, 0, 0)))
    os.utime(session_file, ns=(int((whole + 0.75) * 1e9),) * 2)
    info = filestore.read_info(tmp_path, sid)
    assert (info.next_sender, info.next_target) == (3, 7)
    assert info.created == pytest.approx(whole + 0.75, abs=1e-6)
    os.utime(session_file, ns=(int((whole + 86400) * 1e9),) * 2)  # copied or restored later: the text wins
    assert filestore.read_info(tmp_path, sid).created == whole


# --------------------------------------------------------------------------- messages received, never processed
Row = collections.namedtuple("Row", "id seq_num msg_type raw")


def test_unprocessed_messages_are_the_application_ones_after_the_watermark_each_once():
    rows = [Row(1, 7, "D", "d7"), Row(2, 8, "0", "hb"), Row(3, 9, "F", "f9"), Row(4, 10, "D", "bad"),
            Row(5, 9, "F", "f9-resent"), Row(6, 11, "G", "g11")]
    assert recovery.unprocessed(rows, rejected={10}) == [(1, 7, "d7"), (3, 9, "f9"), (6, 11, "g11")]


def test_actions_already_in_the_store_are_not_sent_again():
    core = make_core()
    out = core.handle(NewOrder(session="C1", cl_ord_id="A1", symbol="AAPL", side=Side.BUY, qty=D(100),
                               ord_type=OrdType.LIMIT, price=D(190)))
    report = next(a for a in out.actions if isinstance(a, ClientExecReport))
    child = next(a for a in out.actions if isinstance(a, VenueNewOrder))
    stores = {"C1": [f"8=FIX.4.4\x019=9\x0135=8\x0134=3\x0117={report.exec_id}\x0111=A1\x01"], "V1": []}
    assert recovery.unsent(out.actions, lambda name, n: stores[name]) == [child]


def test_orders_awaiting_a_venue_answer_are_the_ones_a_venue_may_ask_for_again():
    core = make_core()
    for cl in ("A1", "A2", "A3"):
        core.handle(NewOrder(session="C1", cl_ord_id=cl, symbol="AAPL", side=Side.BUY, qty=D(100),
                             ord_type=OrdType.LIMIT, price=D(190)))
    a1, a2, a3 = (core.order_for_client("C1", c) for c in ("A1", "A2", "A3"))
    core.handle(venue_report(a2, ExecKind.NEW))
    core.handle(venue_report(a3, ExecKind.NEW))
    out = core.handle(CancelRequest(session="C1", cl_ord_id="K3", orig_cl_ord_id="A3", symbol="AAPL",
                                    side=Side.BUY))
    cancel = next(a for a in out.actions if isinstance(a, VenueCancel))
    assert recovery.awaiting_venue(State(orders=dict(core.orders))) == {a1.order_id, cancel.cl_ord_id}
    assert not [a for a in out.actions if isinstance(a, VenueReplace)]
