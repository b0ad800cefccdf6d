"""The sender thread: sends the messages the core thread decided (``sendToTarget``) and answers its marks, in the
order they were handed over, each only once the state log record that explains it is durable, and keeps the core
from running more than SEND_BACKLOG_MAX items ahead; once told to halt, it sends nothing more."""
from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from concurrent.futures import Future
from typing import Callable

from gateway.observability import metrics
from gateway.observability.logs import fields
from gateway.state.records import SEND_BACKLOG_MAX
from orders.actions import (
    ClientCancelReject, ClientExecReport, VenueCancel, VenueMassStatusRequest, VenueNewOrder, VenueReplace,
    VenueStatusRequest,
)
from orders.commands import CancelRequest, NewOrder, ReplaceRequest, VenueCancelReject, VenueExecution
from orders.model import CxlRejResponseTo, ExecKind
from sessions.outbound import Outbound

log = logging.getLogger("fixgw.engine")
_STOP = object()
# Every work item ends with the ticket of the state log record it waits for. Besides (action, command, message,
# ticket), marks kept in order with the sends:
_DONE = object()  # (_DONE, future, result, exception, ticket): answered once what came before is sent
_CALL = object()  # (_CALL, fn, ticket): run fn() on the sender thread, after the sends before it
_EVERY_TICKET = sys.maxsize  # what "durable up to" is with a state log whose records are durable when appended
_HALT_CHECK_S = 0.25  # a sender waiting for a commit looks at least this often whether it was told to halt

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


class SendingStopped(Exception):
    """The gateway stopped sending (its state log failed for good): a request's answer never went out."""


class Sender:
    """One thread, one FIFO: the core thread ``put``s (action, command, message, ticket) items and marks; this thread
    performs them in that order, each once its ticket is durable in the state log (``wait_for``). The core thread
    is the only one to put, this thread the only one to take."""

    def __init__(self, outbound: Outbound):
        self.outbound = outbound
        self.errors = 0  # items the sender failed on (its own count; the engine adds the core thread's)
        self._routed: dict[str, object] = {}  # venue -> its fixgw_routed_orders_total child
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # The sender is never more than SEND_BACKLOG_MAX items behind when the core writes a record: after a
        # crash, recovery looks that far back in the state log for messages that were decided and not sent.
        self._put_count = 0  # items put (core thread only)
        self._done_count = 0  # items finished (sender thread only)
        self.core_waiting = False  # the core thread waits for the sender to catch up
        self._caught_up = threading.Event()
        # With a state log that commits after ``append`` returns (the database's), an item waits for its record:
        # ``_durable`` is the highest ticket known durable. With the file log every ticket is durable at once,
        # and the sender pays one comparison per item.
        self._statelog = None
        self._durable = _EVERY_TICKET
        self.halted: str | None = None  # why the sender sends nothing more (set once, never cleared)
        self.dropped = 0  # items not sent because the sender was halted

    def wait_for(self, statelog) -> None:
        """Before ``start``: perform each item only once its record's ticket is durable in ``statelog`` (None, or a
        log whose records are durable when appended: nothing to wait for)."""
        if statelog is None or statelog.durable_on_append:
            self._statelog, self._durable = None, _EVERY_TICKET
        else:
            self._statelog, self._durable = statelog, statelog.durable

    def halt(self, reason: str) -> None:
        """Send nothing from now on (any thread): items still queued or put later are dropped, requests answered
        with SendingStopped. A sender waiting for a commit notices within ``_HALT_CHECK_S``."""
        if self.halted is None:
            self.halted = reason

    # ------------------------------------------------------------------ the core thread's side
    def put(self, item) -> None:
        """Hand one (action, command, message, ticket) item to the sender: sent once ``ticket`` is durable."""
        self._put_count += 1
        self._queue.put(item)

    def answer(self, fut: Future, result, exc: BaseException | None = None, ticket: int = 0) -> None:
        """Answer ``fut`` once everything put before has been sent (and ``ticket`` is durable)."""
        self.put((_DONE, fut, result, exc, ticket))

    def call(self, fn: Callable[[], None], ticket: int = 0) -> None:
        """Run ``fn()`` on the sender thread, after everything put before (and once ``ticket`` is durable)."""
        self.put((_CALL, fn, ticket))

    def depth(self) -> int:
        """Messages (and marks) the core has decided and the sender has not finished yet."""
        return max(0, self._put_count - self._done_count)

    def keep_close(self) -> None:
        """After a command's items were put: if the sender is more than SEND_BACKLOG_MAX behind, wait until
        it has caught up half of that, so the next record is written with at most that many unsent."""
        if self._put_count - self._done_count <= SEND_BACKLOG_MAX:
            return
        self._caught_up.clear()
        self.core_waiting = True
        try:
            while self._put_count - self._done_count > SEND_BACKLOG_MAX // 2 and self._thread is not None:
                self._caught_up.wait(0.05)
                self._caught_up.clear()
        finally:
            self.core_waiting = False

    # ------------------------------------------------------------------ the thread
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="fixgw-sender", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Send what was put before, then end the thread (once the core thread puts no more)."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    @property
    def thread_id(self) -> int | None:
        return self._thread.ident if self._thread is not None else None

    def _loop(self) -> None:
        """Perform the core's actions, and its marks, in the order they were put."""
        get = self._queue.get
        send = self._send
        while True:
            item = get()
            if item is _STOP:
                return
            if item[-1] > self._durable:  # (never true with the file state log)
                self._wait_durable(item[-1])
            kind = item[0]
            try:
                if self.halted is not None:
                    self._drop(item)
                elif kind is _DONE:
                    if item[3] is None:
                        item[1].set_result(item[2])
                    else:
                        item[1].set_exception(item[3])
                elif kind is _CALL:
                    item[1]()
                else:
                    send(item[0], item[1], item[2])  # (catches and logs what the sessions raise)
            except Exception:  # noqa: BLE001 - a bug: the sender must keep sending what follows
                self.errors += 1
                metrics.INTERNAL_ERRORS.labels("outbound").inc()
                log.exception("sender failed on %r", item)
            self._done_count += 1
            if self.core_waiting and self._put_count - self._done_count <= SEND_BACKLOG_MAX // 2:
                self._caught_up.set()

    def _wait_durable(self, ticket: int) -> None:
        """Until the state log says ``ticket`` is durable, or the sender is halted (by its owner, or here: the log
        stopped for good, so ``ticket`` never will be)."""
        statelog = self._statelog
        while self.halted is None:
            durable = statelog.durable
            if durable >= ticket:
                self._durable = durable
                return
            if statelog.fatal is not None:
                self.halt(f"the state log stopped: {statelog.fatal}")
                return
            statelog.wait_durable(ticket, _HALT_CHECK_S)  # (a condition the committer notifies at each commit)

    def _drop(self, item) -> None:
        """A halted sender's answer to an item: nothing is sent; a request's caller is told why."""
        if item[0] is _DONE:
            item[1].set_exception(SendingStopped(f"the gateway stopped sending: {self.halted}"))
        elif item[0] is not _CALL:
            self.dropped += 1

    def _send(self, action, command, message=None) -> None:
        """Send one action's message (or perform the action); time its hop from the command's arrival; log
        rejects with their IDs."""
        try:
            if message is None:
                self.outbound.perform(action)
            else:
                self.outbound.send(message)
        except Exception:  # noqa: BLE001
            self.errors += 1
            metrics.INTERNAL_ERRORS.labels("outbound").inc()
            log.exception("could not send %r", action, extra=action_ids(action))
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
            log.info("order rejected: %s", action.text, extra=action_ids(action))
        elif kind is ClientCancelReject:
            log.info("%s rejected: %s", "replace" if action.response_to is CxlRejResponseTo.REPLACE else "cancel", action.text,
                     extra=action_ids(action))


def action_ids(action) -> dict:
    """An action's IDs as log fields."""
    return fields(session=getattr(action, "session", None), venue=getattr(action, "venue", None),
                  cl_ord_id=getattr(action, "cl_ord_id", None), orig_cl_ord_id=getattr(action, "orig_cl_ord_id", None),
                  order_id=getattr(action, "order_id", None))
