"""The engine: runs the core on its own thread and performs its actions.

quickfix callbacks and scheduler jobs only ``submit()`` commands; one thread, the
core thread, applies them to the core in arrival order, encodes the resulting
messages and writes the state log. That thread is the single owner of order
state, so the core needs no locks. A second thread, the sender, sends the
messages (``sendToTarget``) in the order the core thread handed them over, so a
message never leaves before the state log record that names it, and never
overtakes one decided before it. No quickfix session lock is ever held while
another session's lock is taken.

Why two threads: a send is mostly waiting, for the session's lock (held while
the session thread runs its callbacks), the socket, quickfix's FileStore, and
the GIL again after each of its two Python callbacks (``toApp`` and the
journal's ``Log.onOutgoing``). With one thread the core's Python work waited
behind every send; with the sender beside it, the next command is handled while
the last one's messages go out.
"""
from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable

from gateway.observability import metrics
from gateway.observability.logs import fields
from gateway.state.records import SEND_BACKLOG_MAX
from risk.engine import describe_decision
from desk.core import Core
from orders.model import (
    CancelRequest,
    ChildNotSent,
    ClientCancelReject,
    ClientExecReport,
    ClientMassCancelReport,
    CxlRejResponseTo,
    ExecKind,
    MassCancelRequest,
    NewOrder,
    ReplaceRequest,
    SessionStatus,
    StatusRequest,
    Tick,
    VenueCancel,
    VenueCancelReject,
    VenueDontKnow,
    VenueExecution,
    VenueMassStatusRequest,
    VenueMessageRejected,
    VenueNewOrder,
    VenueReplace,
    VenueStatusRequest,
    describe_route,
)
from sessions.outbound import Outbound

log = logging.getLogger("fixgw.engine")
_STOP = object()
_REQUEST = object()
# the sender's work items besides (action, command, message): marks kept in order with the sends
_DONE = object()  # (_DONE, future, result, exception): a request or call, answered once what came before is sent
_CALL = object()  # (_CALL, fn): run fn() on the sender thread, after the sends before it
_REF_MSG_TYPE = {NewOrder: "D", CancelRequest: "F", ReplaceRequest: "G", StatusRequest: "H", MassCancelRequest: "q"}
_VENUE_ACTIONS = (VenueNewOrder, VenueCancel, VenueReplace, VenueDontKnow, VenueStatusRequest, VenueMassStatusRequest)
_TICK = Tick()

# (command type, action type) -> the hop histogram child a sent action is timed on
_HOP = {(command, action): metrics.HOPS[key] for command, action, key in (
    (NewOrder, VenueNewOrder, ("client_to_venue", "D", "D")),
    (CancelRequest, VenueCancel, ("client_to_venue", "F", "F")),
    (ReplaceRequest, VenueReplace, ("client_to_venue", "G", "G")),
    (VenueExecution, ClientExecReport, ("venue_to_client", "8", "8")),
    (VenueCancelReject, ClientCancelReject, ("venue_to_client", "9", "9")),
    (NewOrder, ClientExecReport, ("client_to_client", "D", "8")),
    (CancelRequest, ClientExecReport, ("client_to_client", "F", "8")),
    (CancelRequest, ClientCancelReject, ("client_to_client", "F", "9")),
    (ReplaceRequest, ClientExecReport, ("client_to_client", "G", "8")),
    (ReplaceRequest, ClientCancelReject, ("client_to_client", "G", "9")),
)}


class Engine:
    def __init__(self, core: Core, outbound: Outbound, journal_event: Callable[[str, str], None] | None = None,
                 recorder=None):
        self.core = core
        self.outbound = outbound
        self._journal_event = journal_event  # (session, text) -> None: risk decisions go to the journal
        self.recorder = recorder  # gateway.recovery.Recorder: the state log, written before actions are sent
        self.state_log_failures = 0
        self._deferred: dict[str, list] = {}  # venue -> (action, message) to send once it is logged on again
        self._routed: dict[str, object] = {}  # venue -> its fixgw_routed_orders_total child
        self._decisions: dict[tuple[str, str], object] = {}  # (strategy, result) -> fixgw_routing_decisions_total
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._sends: queue.SimpleQueue = queue.SimpleQueue()  # to the sender thread, in the core's order
        self._sender: threading.Thread | None = None
        # The sender is never more than SEND_BACKLOG_MAX items behind when the core writes a record: after a
        # crash, recovery looks that far back in the state log for messages that were decided and not sent.
        self._put_count = 0  # items put for the sender (core thread only)
        self._done_count = 0  # items the sender has finished (sender thread only)
        self._core_waiting = False  # the core thread waits for the sender to catch up
        self._caught_up = threading.Event()
        self.handled = 0
        self.errors = 0
        # The core's timer (desk/liveness.py: children a venue has not answered in time): a Tick every
        # TICK_S seconds, queued like any command so the core stays the only thread touching order state.
        self._ticker: threading.Thread | None = None
        self._ticking = threading.Event()

    def submit(self, command) -> None:
        self._queue.put(command)

    def call(self, fn: Callable[[Core], object], timeout: float = 5.0):
        """Run ``fn(core)`` on the core thread and return its result (for queries and admin), once the sender
        has also sent every message decided before it: a barrier, as when the core thread sent them itself."""
        fut: Future = Future()
        self._queue.put((fn, fut))
        return fut.result(timeout)

    def request(self, command, timeout: float = 5.0):
        """Submit a command, wait until the core has handled it and the sender has sent its actions; returns
        the Outcome."""
        fut: Future = Future()
        self._queue.put((_REQUEST, command, fut))
        return fut.result(timeout)

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def send_queue_depth(self) -> int:
        """Messages (and marks) the core has decided and the sender has not finished yet."""
        return max(0, self._put_count - self._done_count)

    def _put(self, item) -> None:
        """Hand one item to the sender (core thread only)."""
        self._put_count += 1
        self._sends.put(item)

    def _keep_sender_close(self) -> None:
        """After a command's items were put: if the sender is more than SEND_BACKLOG_MAX behind, wait until
        it has caught up half of that, so the next record is written with at most that many unsent."""
        if self._put_count - self._done_count <= SEND_BACKLOG_MAX:
            return
        self._caught_up.clear()
        self._core_waiting = True
        try:
            while self._put_count - self._done_count > SEND_BACKLOG_MAX // 2 and self._sender is not None:
                self._caught_up.wait(0.05)
                self._caught_up.clear()
        finally:
            self._core_waiting = False

    TICK_S = 1.0

    def start(self) -> None:
        self._sender = threading.Thread(target=self._send_loop, name="fixgw-sender", daemon=True)
        self._sender.start()
        self._thread = threading.Thread(target=self._run, name="fixgw-core", daemon=True)
        self._thread.start()
        self._ticking.clear()
        self._ticker = threading.Thread(target=self._tick_loop, name="fixgw-timer", daemon=True)
        self._ticker.start()

    def _tick_loop(self) -> None:
        while not self._ticking.wait(self.TICK_S):
            self._queue.put(_TICK)

    @property
    def sender_thread_id(self) -> int | None:
        """The identifier (``threading.get_ident()``) of the thread that sends the gateway's messages."""
        return self._sender.ident if self._sender is not None else None

    def stop(self, timeout: float = 5.0) -> None:
        """Handle what was submitted before, send what that decided, stop both threads."""
        if self._thread is None:
            return
        self._ticking.set()
        if self._ticker is not None:
            self._ticker.join(timeout)
            self._ticker = None
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None
        self._sends.put(_STOP)
        self._sender.join(timeout)
        self._sender = None

    # Every this many commands the core thread moves what survived so far (the open orders above all) out of
    # the cyclic garbage collector's reach (``gc.freeze()``, O(1)). Otherwise each automatic full collection
    # walks every order the gateway holds, on whichever thread triggers it, and the walks grow with the day:
    # 170 ms per pass with 100,000 orders open (bench/gc_pauses.py). Reference counting still frees frozen
    # objects; only a reference cycle that became garbage after it was frozen is never collected, and the
    # order flow makes none (tests/test_metrics.py). 0: never (bench/gc_pauses.py compares the two).
    FREEZE_EVERY = 1024

    def _run(self) -> None:
        get = self._queue.get
        until_freeze = self.FREEZE_EVERY
        while True:
            item = get()
            until_freeze -= 1
            if not until_freeze:
                until_freeze = self.FREEZE_EVERY
                gc.freeze()
            if item is _STOP:
                return
            if type(item) is tuple and item[0] is _REQUEST:
                _, command, fut = item
                self._put((_DONE, fut, self._handle(command), None))  # answered once its actions are sent
                continue
            if type(item) is tuple:
                fn, fut = item
                try:
                    done = (_DONE, fut, fn(self.core), None)
                except BaseException as exc:  # noqa: BLE001
                    done = (_DONE, fut, None, exc)
                if self.recorder is not None:
                    self._record(None, None)
                self._put(done)  # answered once the messages decided before it have been sent too
                continue
            self._handle(item)

    def resend(self, messages: list) -> None:
        """Send messages recovered from the state log, [(role, session name, text)] (from the core thread,
        in order); venue messages wait until their venue is logged on, so quickfix does not just store them.
        (A state log of an older layout holds domain actions instead: those are performed.)"""
        def run(core):
            for m in messages:
                if type(m) is tuple:
                    role, venue = m[0], m[1]
                    action, message = m, m
                else:
                    role, venue = ("venue", m.venue) if isinstance(m, _VENUE_ACTIONS) else ("client", None)
                    action, message = m, None
                if role == "venue" and not self._venue_up(venue):
                    self._deferred.setdefault(venue, []).append((action, message))
                else:
                    self._put((action, None, message))
        self._queue.put((run, Future()))

    def _venue_up(self, name: str) -> bool:
        venue = self.core.venues.get(name)
        return venue is not None and venue.up

    def _record(self, command, outcome, sends: list = ()) -> None:
        try:
            if command is None:
                self.recorder.record_controls()
            else:
                self.recorder.record(command, outcome, sends)
        except Exception:  # noqa: BLE001 - keep trading; /health and the metric say recovery is impaired
            self.state_log_failures += 1
            metrics.INTERNAL_ERRORS.labels("state_log").inc()
            log.critical("could not write the state log for %r: a crash now would lose this change",
                         command, exc_info=True)

    def _handle(self, command):
        recorder = self.recorder
        if recorder is not None and recorder.already_processed(command):
            log.info("%s: re-sent message MsgSeqNum %d was processed before the restart; not acted on again",
                     getattr(command, "session", None) or getattr(command, "venue", "?"), command.seq)
            return None
        try:
            outcome = self.core.handle(command)
        except Exception as exc:  # noqa: BLE001 - a bug in the core must not stop the engine
            self.errors += 1
            metrics.INTERNAL_ERRORS.labels("core").inc()
            log.exception("core failed on %r", command, extra=_command_ids(command))
            self._answer_failure(command, exc)
            return None
        self.handled += 1
        if outcome.audit and self._journal_event is not None:
            for session, text in outcome.audit:  # access-control refusals (the core's account checks)
                self._journal_event("access", f"{session}: {text}")
        if outcome.risk and self._journal_event is not None:
            for session, cl_ord_id, decision in outcome.risk:
                self._journal_event("risk", describe_decision(decision, session, cl_ord_id))
        if outcome.risk_events and self._journal_event is not None:
            for text in outcome.risk_events:  # trading-day rolls of per-day risk usage
                self._journal_event("risk", text)
        for decision in outcome.routes:
            if self._journal_event is not None:
                self._journal_event("routing", describe_route(decision))
            key = (decision.strategy.partition(":")[0], "routed" if decision.split else "none")
            counter = self._decisions.get(key)
            if counter is None:
                counter = self._decisions[key] = metrics.ROUTING_DECISIONS.labels(*key)
            counter.inc()
        for ns in outcome.risk_ns:
            metrics.RISK_CHECK_SECONDS.observe(ns / 1e9)
        for _, _, decision in outcome.risk:
            if decision.reject is not None:
                metrics.RISK_REJECTS.labels(decision.reject.rule, "enforced").inc()
            for shadow in decision.shadow_rejects:
                metrics.RISK_REJECTS.labels(shadow.rule, "shadow").inc()
        for warning in outcome.warnings:
            log.warning("%s", warning, extra=getattr(warning, "fields", None))
        if outcome.events and self._journal_event is not None:
            for category, text in outcome.events:  # reconciliation: what changed and why, for the audit trail
                self._journal_event(category, text)
        for _, venue in outcome.in_doubt:
            metrics.IN_DOUBT_TOTAL.labels(venue).inc()
        if type(command) is Tick:
            metrics.ORDERS_IN_DOUBT.set(len(self.core.in_doubt_orders()))
        elif type(command) is VenueMessageRejected:
            metrics.VENUE_MESSAGE_REJECTS.labels(command.venue, "session" if command.session_level else "business",
                                                 command.ref_msg_type or "?").inc()
        messages = [self._encode(action) for action in outcome.actions]  # (a _NotEncoded for a failure)
        if recorder is not None:
            # durable before anything leaves: the messages' texts, as they will be sent
            self._record(command, outcome, [m for m in messages if type(m) is tuple])
            if type(command) is SessionStatus and command.up:
                recorder.session_up(command.role, command.name)
        put = self._put
        if self._deferred and type(command) is SessionStatus and command.up and command.name in self._deferred:
            # first what was decided before (and held while the venue was down), then what its logon decided:
            # the logon's status requests (desk/liveness.py) must take higher MsgSeqNums than the orders
            # they ask about, or the venue answers "unknown order" for an order it has not been sent yet
            for action, message in self._deferred.pop(command.name):
                put((action, None, message))
        failed = None
        for action, message in zip(outcome.actions, messages):
            if type(message) is _NotEncoded:
                failed = (failed or []) + [(action, message.exc)]
            else:
                put((action, command, message))
        if failed:
            self._not_encoded(command, failed)
        self._keep_sender_close()
        recv_ns = getattr(command, "recv_ns", 0)
        if recv_ns:
            metrics.CORE_HANDLE_SECONDS.observe((time.perf_counter_ns() - recv_ns) / 1e9)
        return outcome

    def _send_loop(self) -> None:
        """The sender thread: perform the core's actions, and its marks, in the order they were put."""
        get = self._sends.get
        send = self._send
        while True:
            item = get()
            if item is _STOP:
                return
            kind = item[0]
            try:
                if kind is _DONE:
                    if item[3] is None:
                        item[1].set_result(item[2])
                    else:
                        item[1].set_exception(item[3])
                elif kind is _CALL:
                    item[1]()
                else:
                    send(*item)  # (catches and logs what the sessions raise)
            except Exception:  # noqa: BLE001 - a bug: the sender must keep sending what follows
                self.errors += 1
                metrics.INTERNAL_ERRORS.labels("outbound").inc()
                log.exception("sender failed on %r", item)
            self._done_count += 1
            if self._core_waiting and self._put_count - self._done_count <= SEND_BACKLOG_MAX // 2:
                self._caught_up.set()

    def _encode(self, action):
        """The action's message as (role, session name, text); None for an action that is no message of
        ours to record (a logout, a market data request); a _NotEncoded when it cannot be encoded."""
        try:
            return self.outbound.encode(action)
        except Exception as exc:  # noqa: BLE001
            self.errors += 1
            metrics.INTERNAL_ERRORS.labels("encode").inc()
            log.exception("could not encode %r; not sent", action, extra=_action_ids(action))
            return _NotEncoded(exc)

    def _send(self, action, command, message=None) -> None:
        """Send one action's message (or perform the action), on the sender thread; time its hop from the
        command's arrival; log rejects with their IDs."""
        try:
            if message is None:
                self.outbound.perform(action)
            else:
                self.outbound.send(message)
        except Exception:  # noqa: BLE001
            self.errors += 1
            metrics.INTERNAL_ERRORS.labels("outbound").inc()
            log.exception("could not send %r", action, extra=_action_ids(action))
            return
        recv_ns = getattr(command, "recv_ns", 0)
        if recv_ns:
            hop = _HOP.get((type(command), type(action)))
            if hop is not None:
                hop.observe((time.perf_counter_ns() - recv_ns) / 1e9)
        kind = type(action)
        if kind is VenueStatusRequest or kind is VenueMassStatusRequest:
            metrics.VENUE_STATUS_REQUESTS.labels(action.venue).inc()
        elif kind is VenueNewOrder:
            routed = self._routed.get(action.venue)
            if routed is None:
                routed = self._routed[action.venue] = metrics.ROUTED_ORDERS.labels(action.venue)
            routed.inc()
        elif kind is ClientExecReport and action.kind is ExecKind.REJECTED:
            log.info("order rejected: %s", action.text, extra=_action_ids(action))
        elif kind is ClientCancelReject:
            log.info("%s rejected: %s", "replace" if action.response_to is CxlRejResponseTo.REPLACE else "cancel", action.text,
                     extra=_action_ids(action))

    def _answer_failure(self, command, exc: Exception) -> None:
        """Tell the client its message was not acted on, so it never waits for an answer forever."""
        ref_type = _REF_MSG_TYPE.get(type(command))
        if ref_type is None:
            return
        text = (f"gateway could not process ClOrdID {command.cl_ord_id}: internal error ({type(exc).__name__}); "
                "it was journaled and not acted on")
        if self._journal_event is not None:
            self._journal_event("internal", f"{command.session}: {text}: {exc!r}")
        self._business_reject(command.session, ref_type, command.seq, command.cl_ord_id, text)

    # ------------------------------------------------------------------ safety net: a message that cannot be encoded
    # The intake (sessions/codec.py) accepts only what can be written back, so this is for bugs. Either way
    # nobody is left waiting: a client gets a BusinessMessageReject instead of the answer that could not be
    # written, a venue-bound child is refused inside the core (ChildNotSent) as if the venue had refused it.
    # Each gets a log line (``_encode``), fixgw_internal_errors_total{where="encode"} and a journal event.
    def _not_encoded(self, command, failed: list) -> None:
        for action, exc in failed:
            kind = type(action)
            what = f"{_MSG_TYPE.get(kind, kind.__name__)} for ClOrdID {getattr(action, 'cl_ord_id', '?')}"
            problem = f"internal error ({type(exc).__name__}: {exc})"
            session = getattr(action, "session", None) or getattr(action, "venue", "?")
            if self._journal_event is not None:
                self._journal_event("internal", f"{session}: could not encode {what}, not sent: {problem}")
            if kind in _CLIENT_ANSWERS:
                ref_type, ref_seq = _ref_of(command, action)
                self._business_reject(action.session, ref_type, ref_seq, action.cl_ord_id,
                                      f"gateway could not send you the {what}: {problem}")
            elif kind in _CHILD_MESSAGES:
                self._handle(ChildNotSent(
                    venue=action.venue, cl_ord_id=action.cl_ord_id, msg_type=_MSG_TYPE[kind],
                    text=f"not sent to {action.venue}: {problem}",
                    orig_cl_ord_id=getattr(action, "orig_cl_ord_id", None)))

    def _business_reject(self, session: str, ref_type: str, ref_seq: int, ref_id: str, text: str) -> None:
        """Send a client a BusinessMessageReject once what was decided before it has been sent."""
        def reject() -> None:
            try:
                self.outbound.business_reject(session, ref_type, ref_id, text, ref_seq or None)
            except Exception:  # noqa: BLE001
                metrics.INTERNAL_ERRORS.labels("outbound").inc()
                log.exception("could not send BusinessMessageReject to %s for %s", session, ref_id)
        self._put((_CALL, reject))


class _NotEncoded:
    """An action whose message could not be encoded, and why."""

    __slots__ = ("exc",)

    def __init__(self, exc: Exception):
        self.exc = exc


_MSG_TYPE = {ClientExecReport: "8", ClientCancelReject: "9", ClientMassCancelReport: "r", VenueNewOrder: "D",
             VenueCancel: "F", VenueReplace: "G", VenueDontKnow: "Q", VenueStatusRequest: "H",
             VenueMassStatusRequest: "AF"}
_CLIENT_ANSWERS = (ClientExecReport, ClientCancelReject, ClientMassCancelReport)
_CHILD_MESSAGES = (VenueNewOrder, VenueCancel, VenueReplace)


def _ref_of(command, action) -> tuple[str, int]:
    """What a BusinessMessageReject for an answer that could not be sent refers to: (RefMsgType, RefSeqNum).

    The client's own message if it caused the answer (its MsgType and MsgSeqNum); otherwise (a venue's
    report, the end of day, an operator) the message that made the ClOrdID the answer names, without a
    RefSeqNum: a cancel (F) or replace (G) for an answer about one, else the NewOrderSingle (D)."""
    ref_type = _REF_MSG_TYPE.get(type(command))
    if ref_type is not None and command.session == action.session:
        return ref_type, command.seq
    if type(action) is ClientMassCancelReport:
        return "q", 0
    if type(action) is ClientCancelReject:
        return ("G" if action.response_to is CxlRejResponseTo.REPLACE else "F"), 0
    if action.orig_cl_ord_id:
        return ("G" if action.kind in (ExecKind.REPLACED, ExecKind.PENDING_REPLACE) else "F"), 0
    return "D", 0


def _command_ids(command) -> dict:
    return fields(session=getattr(command, "session", None) or getattr(command, "venue", None),
                  cl_ord_id=getattr(command, "cl_ord_id", None))


def _action_ids(action) -> dict:
    return fields(session=getattr(action, "session", None), venue=getattr(action, "venue", None),
                  cl_ord_id=getattr(action, "cl_ord_id", None), orig_cl_ord_id=getattr(action, "orig_cl_ord_id", None),
                  order_id=getattr(action, "order_id", None))
