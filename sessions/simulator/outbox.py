"""The venue simulator's way out: its sessions (SessionID and FIX version by session key) and the one thread
that sends every batch of messages with ``sendToTarget``, in the order the batches were queued."""
from __future__ import annotations

import logging
import queue
import threading

import quickfix as fix

from orders.actions import ClientCancelReject, ClientExecReport
from sessions.codec import encode

log = logging.getLogger("fixgw.venuesim")

Outgoing = list[tuple[fix.Message, fix.SessionID]]


class Outbox:
    """Queues the simulator's messages for its sender thread, which calls ``sendToTarget`` holding no lock of
    the simulator's; knows each session's SessionID (``sessions``) and application version (``versions``).

    ``put`` and ``reports`` are called under the simulator's lock, so batches are queued in matcher order;
    they never send (and never wait for a session lock) themselves. ``start()`` starts a sender thread, a
    fresh one for each start of the simulator.
    """

    def __init__(self, name: str, sessions: dict[str, fix.SessionID], versions: dict[str, str]):
        self._name = name
        self.sessions = sessions  # session key (owner) -> SessionID
        self.versions = versions  # session key -> application FIX version
        self._queue: queue.SimpleQueue[Outgoing | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.sent = 0

    def start(self) -> None:
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(self._queue,), name=f"venuesim-send-{self._name}",
                                        daemon=True)
        self.sent = 0
        self._thread.start()

    @property
    def started(self) -> bool:
        """Has a sender thread been started (it may have been closed since)?"""
        return self._thread is not None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def put(self, batch: Outgoing) -> None:
        if batch:
            self._queue.put(batch)

    def reports(self, reports: list[ClientExecReport | ClientCancelReject]) -> None:
        """Encode reports in their owners' FIX versions and queue them, as one batch, for the sender thread."""
        out: Outgoing = []
        for r in reports:
            version = self.versions[r.session]
            if isinstance(r, ClientExecReport):
                out.append((encode.encode_exec_report(version, r), self.sessions[r.session]))
            else:
                out.append((encode.encode_cancel_reject(version, r), self.sessions[r.session]))
        assert self._thread is not None
        self.put(out)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then end the thread."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self, batches: queue.SimpleQueue[Outgoing | None]) -> None:
        while True:
            batch = batches.get()
            if batch is None:
                return
            for msg, sid in batch:
                try:
                    if fix.Session.sendToTarget(msg, sid):
                        self.sent += 1
                    else:
                        log.warning("venue simulator %s: quickfix refused a message to %s", self._name,
                                    sid.toString())
                except fix.SessionNotFound:
                    log.warning("venue simulator %s: no session %s for %s", self._name, sid.toString(),
                                msg.toString().replace("\x01", "|"))
                except BaseException:  # noqa: BLE001 - the sender must keep going
                    log.exception("venue simulator %s: sending to %s failed", self._name, sid.toString())
