"""The engine's two threads: the core thread decides and records, the sender thread sends, in the same order,
never before the record, and never more than SEND_BACKLOG_MAX behind."""
from __future__ import annotations

import threading
import time
from decimal import Decimal as D

import pytest

from gateway.process.engine import Engine
from gateway.state.records import SEND_BACKLOG_MAX
from desk.core import Core
from desk.options import ClientOptions
from orders.actions import ClientExecReport, VenueNewOrder
from orders.commands import NewOrder, SessionStatus
from orders.model import OrdType, Side
from routing.router import Venue


class RecordingOutbound:
    """Stands in for the sessions: encodes each message as a short text, records what is sent and on which
    thread; ``gate`` (an Event), when given, holds every send until it is set."""

    def __init__(self, recorded: list, gate: threading.Event | None = None):
        self.recorded = recorded
        self.gate = gate
        self.sent: list = []
        self.threads: set[int] = set()
        self.not_recorded_first: list = []

    def encode(self, action):
        if type(action) is VenueNewOrder:
            return "venue", action.venue, f"D {action.cl_ord_id}"
        if type(action) is ClientExecReport:
            return "client", action.session, f"8 {action.cl_ord_id} {action.kind.name}"
        return None

    def send(self, message) -> bool:
        if self.gate is not None:
            self.gate.wait(30)
        if message not in self.recorded:
            self.not_recorded_first.append(message)
        self.sent.append(message)
        self.threads.add(threading.get_ident())
        return True

    def perform(self, action) -> bool:
        return True


class RecordingRecorder:
    """Stands in for the state log: keeps the messages of each record."""

    def __init__(self):
        self.recorded: list = []

    def already_processed(self, command) -> bool:
        return False

    def record(self, command, outcome, sends=()) -> None:
        self.recorded.extend(sends)

    def record_controls(self) -> None:
        pass

    def session_up(self, role, name) -> None:
        pass


def engine_with(gate: threading.Event | None = None) -> tuple[Engine, RecordingOutbound]:
    core = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions()}, "T")
    recorder = RecordingRecorder()
    outbound = RecordingOutbound(recorder.recorded, gate)
    return Engine(core, outbound, recorder=recorder), outbound


def new_order(i: int) -> NewOrder:
    return NewOrder(session="C1", cl_ord_id=f"A{i}", symbol="AAPL", side=Side.BUY, qty=D(10), ord_type=OrdType.LIMIT,
                    price=D(190))


def test_messages_go_out_on_the_sender_thread_in_the_order_decided_each_after_its_record():
    engine, outbound = engine_with()
    engine.start()
    try:
        engine.request(SessionStatus("V1", "venue", True))
        for i in range(50):
            engine.submit(new_order(i))
        engine.request(new_order(50))  # answered once its messages, and so all before them, are sent
        expected = []
        for i in range(51):
            child = engine.core.order_for_client("C1", f"A{i}").venue_cl_ord_id
            expected += [("client", "C1", f"8 A{i} PENDING_NEW"), ("venue", "V1", f"D {child}")]
        assert outbound.sent == expected
        assert outbound.threads == {engine.sender_thread_id}
        assert engine.sender_thread_id not in (None, threading.get_ident(), engine._thread.ident)
        assert outbound.not_recorded_first == []
        assert engine.send_queue_depth() == 0
    finally:
        engine.stop()


def test_the_core_waits_when_the_sender_falls_too_far_behind_and_nothing_is_lost():
    gate = threading.Event()  # every send waits for it: the sender is stuck on its first message
    engine, outbound = engine_with(gate)
    engine.start()
    try:
        engine.submit(SessionStatus("V1", "venue", True))
        n = SEND_BACKLOG_MAX  # two messages an order: twice what the sender may lag behind
        for i in range(n):
            engine.submit(new_order(i))
        deadline = time.monotonic() + 30
        while not engine._core_waiting and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine._core_waiting, "the core thread went on handling with the sender stuck"
        handled = engine.handled
        assert handled < n and engine.queue_depth() > 0  # commands wait, unhandled, in the core's queue
        # stopped at the bound (give or take the logon's market data request, which the stuck sender may still
        # perform: it is no message of the state log's)
        assert SEND_BACKLOG_MAX - 2 <= engine.send_queue_depth() <= SEND_BACKLOG_MAX + 2
        gate.set()
        engine.request(new_order(n))
        assert len([m for m in outbound.sent if m[0] == "venue"]) == n + 1
        assert outbound.not_recorded_first == []
    finally:
        gate.set()
        engine.stop()


def test_stop_sends_what_the_core_had_decided():
    engine, outbound = engine_with()
    engine.start()
    engine.submit(SessionStatus("V1", "venue", True))
    for i in range(20):
        engine.submit(new_order(i))
    engine.stop()
    assert len([m for m in outbound.sent if m[0] == "venue"]) == 20


def test_a_call_answers_only_once_the_messages_decided_before_it_are_sent():
    gate = threading.Event()
    engine, outbound = engine_with(gate)
    engine.start()
    try:
        engine.submit(SessionStatus("V1", "venue", True))
        engine.submit(new_order(0))
        with pytest.raises(TimeoutError):  # handled, its messages held at the sender: no answer yet
            engine.call(lambda core: core.order_for_client("C1", "A0") is not None, timeout=0.3)
        gate.set()
        assert engine.call(lambda core: core.order_for_client("C1", "A0") is not None, timeout=10) is True
        assert [m[0] for m in outbound.sent] == ["client", "venue"]
        with pytest.raises(ZeroDivisionError):  # an exception in the call reaches the caller
            engine.call(lambda core: 1 / 0, timeout=10)
    finally:
        gate.set()
        engine.stop()
