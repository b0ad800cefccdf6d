"""Crash recovery without sockets: the state log, restoring the core, planning each session's repair."""
from __future__ import annotations

import collections
import copy
import dataclasses
import itertools
import os
import pickle
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import recovery
from gateway.statelog import State, StateLog, StateLogError
from risk.engine import RiskEngine
from risk.rules import load_rules
from routing.core import ClientOptions, Core
from routing.model import (
    CancelRequest, ClientExecReport, CxlRejCode, CxlRejResponseTo, ExecKind, KillSwitch, NewOrder, OrdStatus,
    OrdType, ReplaceRequest, SessionStatus, Side, VenueCancel, VenueCancelReject, VenueExecution, VenueNewOrder,
    VenueReplace,
)
from routing.router import Venue

RULES = """
chain = ["kill_switch", "max_order_qty", "max_open_orders", "max_position", "daily_notional"]
[limits]
max_order_qty = 5000
max_open_orders = 6
max_position = 20000
max_daily_notional = 100000000
"""


class Clock:
    def __init__(self):
        self.t = datetime(2026, 11, 24, 14, 0, tzinfo=timezone.utc)

    def __call__(self):
        self.t += timedelta(milliseconds=250)
        return self.t


def make_core(prefix="T") -> Core:
    venues = [Venue("V1", frozenset({"AAPL", "MSFT"})), Venue("V2", frozenset({"AAPL", "IBM"}))]
    core = Core(venues, {"C1": ClientOptions(), "C2": ClientOptions()}, prefix,
                risk=RiskEngine(load_rules(RULES, "test")), clock=Clock())
    for name in ("V1", "V2"):
        core.handle(SessionStatus(name, "venue", True))
    return core


def frozen(core: Core) -> dict:
    return {oid: copy.deepcopy(o) for oid, o in core.orders.items()}


def risk_view(core: Core) -> dict:
    rs = core.risk_state
    return {"exposures": rs.exposures, "totals": {a: t for a, t in rs.account_totals.items() if not t.is_zero()},
            "gross": {a: v for a, v in rs.account_gross.items() if v},
            "daily": {a: v for a, v in rs.daily_used.items() if v}, "open": rs.open_orders,
            "count": rs.open_count, "kill": rs.kill}


# --------------------------------------------------------------------------- a random order flow
_exec_ids = itertools.count(1)


def venue_report(order, kind, child=None, last_qty=D(0), last_px=D(0), orig=None):
    return VenueExecution(venue=order.venue, cl_ord_id=child or order.venue_cl_ord_id, orig_cl_ord_id=orig,
                          venue_order_id="VO-" + order.order_id, exec_id=f"X{next(_exec_ids)}", kind=kind,
                          ord_status=OrdStatus.NEW, symbol=order.symbol, side=order.side, last_qty=last_qty,
                          last_px=last_px, cum_qty=D(0), leaves_qty=D(0))


def draw_command(data, core: Core, cl_ids):
    orders = list(core.orders.values())
    kind = data.draw(st.sampled_from(
        ["new", "new", "cancel", "replace", "ack", "fill", "partial", "venue_cancel", "reject", "replaced",
         "cxl_reject", "kill", "venue_down", "venue_up"] if orders else ["new"]))
    if kind == "new":
        return NewOrder(session=data.draw(st.sampled_from(["C1", "C2"])), cl_ord_id=f"N{next(cl_ids)}",
                        symbol=data.draw(st.sampled_from(["AAPL", "MSFT", "IBM"])),
                        side=data.draw(st.sampled_from([Side.BUY, Side.SELL])),
                        qty=D(data.draw(st.integers(1, 6000))), ord_type=OrdType.LIMIT,
                        price=D(data.draw(st.integers(100, 300))), account=data.draw(st.sampled_from(["A", None])))
    if kind in ("venue_down", "venue_up"):
        return SessionStatus(data.draw(st.sampled_from(["V1", "V2"])), "venue", kind == "venue_up")
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
    if kind == "ack":
        return venue_report(o, ExecKind.NEW)
    if kind in ("fill", "partial"):
        room = o.qty - o.cum_qty
        qty = room if kind == "fill" else D(data.draw(st.integers(1, 200)))
        return venue_report(o, ExecKind.TRADE, last_qty=max(qty, D(1)), last_px=D(data.draw(st.integers(100, 300))))
    if kind == "venue_cancel":
        return venue_report(o, ExecKind.CANCELED, child=o.child_ids[-1] if o.child_ids else None)
    if kind == "reject":
        return venue_report(o, ExecKind.REJECTED)
    if kind == "replaced":
        child = o.pending_replace.child_cl_ord_id if o.pending_replace else o.venue_cl_ord_id
        return venue_report(o, ExecKind.REPLACED, child=child, orig=o.venue_cl_ord_id)
    replace = o.pending_replace is not None
    return VenueCancelReject(venue=o.venue, cl_ord_id=o.child_ids[-1] if o.child_ids else o.order_id,
                             orig_cl_ord_id=o.venue_cl_ord_id or o.order_id, venue_order_id=None,
                             reason=CxlRejCode.TOO_LATE,
                             response_to=CxlRejResponseTo.REPLACE if replace else CxlRejResponseTo.CANCEL)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_changed_order_is_recorded_and_a_restored_core_equals_the_original(data):
    core = make_core()
    cl_ids = itertools.count(1)
    state = State()
    for _ in range(data.draw(st.integers(1, 30))):
        before = frozen(core)
        cmd = draw_command(data, core, cl_ids)
        outcome = core.handle(cmd)
        touched = {o.order_id for o in core.touched(cmd, outcome)}
        after = frozen(core)
        changed = {oid for oid, blob in after.items() if before.get(oid) != blob}
        assert changed <= touched, (cmd, changed - touched)
        # what the engine writes: the touched orders as they are now, with their open risk
        open_orders = core.risk_state.open_orders
        state.apply(recovery_record(core, cmd, outcome, open_orders))

    restored = make_core(prefix="U")
    state = pickle.loads(pickle.dumps(state))  # as read back from disk
    recovery.restore_core(restored, state)
    assert frozen(restored) == frozen(core)
    assert set(restored._by_client) == set(core._by_client)
    assert set(restored._by_child) == set(core._by_child)
    assert risk_view(restored) == risk_view(core)


def recovery_record(core, cmd, outcome, open_orders):
    from gateway.statelog import Record
    touched = core.touched(cmd, outcome)
    return Record(ts=0.0, origin=recovery.origin_of(cmd), seq=0,
                  orders=[(o, open_orders.get((o.session, o.risk_key))) for o in touched],
                  actions=outcome.actions, controls=recovery.controls_of(core))


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
    assert recovery.unsent(out.actions, stores.__getitem__) == [child]


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
