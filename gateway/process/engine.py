"""The engine: runs the core on its own thread and performs its actions.

quickfix callbacks and scheduler jobs only ``submit()`` commands; one thread, the
core thread, applies them to the core in arrival order, encodes the resulting
messages and writes the state log. That thread is the single owner of order
state, so the core needs no locks. A second thread, the sender, sends the
messages (``sendToTarget``) in the order the core thread handed them over, so a
message never leaves before the state log record that names it is durable (each
item carries its record's ticket: at once with the file log, after the group
commit with the database's), and never overtakes one decided before it. No
quickfix session lock is ever held while another session's lock is taken.

``halt(reason)`` (the database state log failed for good) stops both threads'
work for good: nothing more is decided or sent; commands still coming are
dropped (they are journaled: the next start, or a successor, processes them),
callers get an error.

Why two threads: a send is mostly waiting, for the session's lock (held while
the session thread runs its callbacks), the socket, quickfix's FileStore, and
the GIL again after each of its two Python callbacks (``toApp`` and the
journal's ``Log.onOutgoing``). With one thread the core's Python work waited
behind every send; with the sender beside it, the next command is handled while
the last one's messages go out. The sender is its own object (sender.py).
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
from gateway.process.outcome_report import OutcomeReport
from gateway.process.sender import Sender, SendingStopped, action_ids
from desk.core import Core
from orders.actions import (
    ClientCancelReject, ClientExecReport, ClientMassCancelReport, VenueCancel, VenueDontKnow, VenueMassStatusRequest,
    VenueNewOrder, VenueReplace, VenueStatusRequest,
)
from orders.commands import (
    CancelRequest, ChildNotSent, MassCancelRequest, NewOrder, ReplaceRequest, SessionStatus, StatusRequest, Tick,
)
from orders.model import CxlRejResponseTo, ExecKind
from sessions.outbound import Outbound

log = logging.getLogger("fixgw.engine")
_STOP = object()
_REQUEST = object()
_REF_MSG_TYPE = {NewOrder: "D", CancelRequest: "F", ReplaceRequest: "G", StatusRequest: "H", MassCancelRequest: "q"}
_VENUE_ACTIONS = (VenueNewOrder, VenueCancel, VenueReplace, VenueDontKnow, VenueStatusRequest, VenueMassStatusRequest)
_TICK = Tick()


class Engine:
    def __init__(self, core: Core, outbound: Outbound, journal_event: Callable[[str, str], None] | None = None,
                 recorder=None):
        self.core = core
        self.outbound = outbound
        self._journal_event = journal_event  # (session, text) -> None: risk decisions go to the journal
        self.recorder = recorder  # gateway.recovery.Recorder: the state log, written before actions are sent
        self.state_log_failures = 0
        self._ticket = 0  # the ticket of the last record written: what every item put from now on waits for
        self.halted: str | None = None  # why the engine decides and sends nothing more (set once)
        self.refused = 0  # commands dropped after the halt
        self._errors = 0  # commands the core failed on, actions that could not be encoded
        self._deferred: dict[str, list] = {}  # venue -> (action, message) to send once it is logged on again
        self._report = OutcomeReport(core, journal_event)  # the outcome's journal events, metrics and warnings
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.sender = Sender(outbound)  # sends what the core thread decided, in its order
        self.handled = 0
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
        return self.sender.depth()

    @property
    def errors(self) -> int:
        """Internal errors of both threads: the core's, encoding, sending."""
        return self._errors + self.sender.errors

    @property
    def _core_waiting(self) -> bool:
        """Whether the core thread waits for the sender to catch up (tests/test_engine_sender.py watches it)."""
        return self.sender.core_waiting

    TICK_S = 1.0

    def start(self) -> None:
        self.sender.wait_for(getattr(self.recorder, "log", None))
        self.sender.start()
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
        return self.sender.thread_id

    def halt(self, reason: str) -> None:
        """Decide and send nothing from now on (any thread; see the module's docstring)."""
        if self.halted is None:
            self.halted = reason
        self.sender.halt(reason)

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
        self.sender.stop(timeout)

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
            if self.halted is not None:
                self._refuse(item)
                continue
            if type(item) is tuple and item[0] is _REQUEST:
                _, command, fut = item
                outcome = self._handle(command)
                self.sender.answer(fut, outcome, None, self._ticket)  # answered once its actions are sent
                continue
            if type(item) is tuple:
                fn, fut = item
                try:
                    result, failure = fn(self.core), None
                except BaseException as exc:  # noqa: BLE001
                    result, failure = None, exc
                if self.recorder is not None:
                    self._record(None, None)
                # once the messages decided before it have been sent too (and its own record is durable)
                self.sender.answer(fut, result, failure, self._ticket)
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
                    self.sender.put((action, None, message, self._ticket))
        self._queue.put((run, Future()))

    def _venue_up(self, name: str) -> bool:
        venue = self.core.venues.get(name)
        return venue is not None and venue.up

    def _refuse(self, item) -> None:
        """After the halt: a command is dropped, a caller told."""
        self.refused += 1
        if type(item) is tuple:
            fut = item[2] if item[0] is _REQUEST else item[1]
            fut.set_exception(SendingStopped(f"the gateway stopped: {self.halted}"))

    def _record(self, command, outcome, sends: list = ()) -> None:
        """Write the state log record of a command; the items put from now on wait for its ticket."""
        try:
            if command is None:
                ticket = self.recorder.record_controls()
            else:
                ticket = self.recorder.record(command, outcome, sends)
            if ticket is not None:
                self._ticket = ticket
        except Exception:  # noqa: BLE001 - keep trading; /health and the metric say recovery is impaired
            fatal = getattr(getattr(self.recorder, "log", None), "fatal", None)
            if fatal is not None:  # the database log stopped for good: nothing it would explain may be sent
                self.halt(f"the state log stopped: {fatal}")
                return
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
            self._errors += 1
            metrics.INTERNAL_ERRORS.labels("core").inc()
            log.exception("core failed on %r", command, extra=_command_ids(command))
            self._answer_failure(command, exc)
            return None
        self.handled += 1
        self._report.report(command, outcome)
        messages = [self._encode(action) for action in outcome.actions]  # (a _NotEncoded for a failure)
        if recorder is not None:
            # durable before anything leaves: the messages' texts, as they will be sent
            self._record(command, outcome, [m for m in messages if type(m) is tuple])
            if type(command) is SessionStatus and command.up:
                ticket = recorder.session_up(command.role, command.name)
                if ticket is not None:
                    self._ticket = ticket
        put = self.sender.put
        ticket = self._ticket
        if self._deferred and type(command) is SessionStatus and command.up and command.name in self._deferred:
            # first what was decided before (and held while the venue was down), then what its logon decided:
            # the logon's status requests (desk/liveness.py) must take higher MsgSeqNums than the orders
            # they ask about, or the venue answers "unknown order" for an order it has not been sent yet
            for action, message in self._deferred.pop(command.name):
                put((action, None, message, ticket))
        failed = None
        for action, message in zip(outcome.actions, messages):
            if type(message) is _NotEncoded:
                failed = (failed or []) + [(action, message.exc)]
            else:
                put((action, command, message, ticket))
        if failed:
            self._not_encoded(command, failed)
        self.sender.keep_close()
        recv_ns = getattr(command, "recv_ns", 0)
        if recv_ns:
            metrics.CORE_HANDLE_SECONDS.observe((time.perf_counter_ns() - recv_ns) / 1e9)
        return outcome

    def _encode(self, action):
        """The action's message as (role, session name, text); None for an action that is no message of
        ours to record (a logout, a market data request); a _NotEncoded when it cannot be encoded."""
        try:
            return self.outbound.encode(action)
        except Exception as exc:  # noqa: BLE001
            self._errors += 1
            metrics.INTERNAL_ERRORS.labels("encode").inc()
            log.exception("could not encode %r; not sent", action, extra=action_ids(action))
            return _NotEncoded(exc)

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
    # The intake (sessions/codec/) accepts only what can be written back, so this is for bugs. Either way
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
        self.sender.call(reject, self._ticket)


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
