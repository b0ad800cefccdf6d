"""The simulated venue: a quickfix acceptor in front of ``venuesim.matcher.Matcher``.

``VenueSimulator`` accepts one session per (counterparty, FIX version) pair,
SenderCompID = the venue's comp_id, on one port, and answers like a small real
venue: NewOrderSingle (D) is acknowledged, filled against the synthetic book and
resting client orders, or rejected; OrderCancelRequest (F),
OrderCancelReplaceRequest (G) and OrderStatusRequest (H) act on the orders that
session sent. Orders from every session share one book per symbol, so a resting
order can be hit by another session's order; its owner then gets its own fill.

Threading: the engine is a ``ThreadedSocketAcceptor`` (one thread per
connection). quickfix 1.16's single-threaded ``SocketAcceptor.stop()`` closes the
listening socket on the caller's thread while its acceptor thread may close and
delete the same server: a use-after-free that segfaulted in about half of the
stops made while a peer was logged on or reconnecting (reproduced here). The
threaded acceptor's stop closes the sockets and joins its threads instead.
Callbacks for different sessions can therefore run at the same time: the matcher
is guarded by ``self._lock``, and the reports of one request are encoded and
queued under that lock, in matcher order, to a single sender thread that calls
``sendToTarget`` holding no lock of ours (``sessions.simulator.outbox``). So a fill for
another session's resting order never makes one session thread wait for another
session's lock (no A->B / B->A deadlock), and every session gets its reports in
matcher order.

Every callback is guarded: quickfix's own exceptions pass through (quickfix turns
them into a session Reject or BusinessMessageReject), anything else is logged
with its traceback and answered with a BusinessMessageReject (j).

The simulator dispatches each message to the collaborator whose job it is:
order entry, status and the misbehaviour of ``[venues.X.simulator.misbehave]``
(``sessions.simulator.orders``), market data (``sessions.simulator.market_data``). A session that
logs out loses its market data subscriptions, and with ``cancel_on_disconnect``
its resting orders. ``forget_orders()`` (also ``forget_orders_on_logon``, and
SIGUSR1 to ``fixgw venue-sim``) makes it lose its orders, so a status request
for one is answered "unknown order".

Restart: with ``book_file`` (``keep_orders``, the default for `fixgw demo` and
`fixgw venue-sim`) a simulator stopped in good order saves its working orders
there and the next one on the same store takes them back (``sessions.simulator.book_file``),
as a venue keeps its book across a restart; a killed one saves nothing.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import quickfix as fix

from sessions.closing import DISCONNECTING_EVENT, ClosingConnections
from sessions.codec import encode
from sessions.fixsettings import app_version, build_settings, graceful_stop, session_id, session_key, \
    session_registered
from sessions.journal_log import JournalLogFactory
from sessions.simulator.book_file import BookFile
from sessions.simulator.market_data import MarketDataFeed
from sessions.simulator.orders import Misbehaviour, OrderEntry
from sessions.simulator.outbox import Outbox
from venuesim.book import TopOfBook
from venuesim.config import SimulatorConfig
from venuesim.matcher import Matcher

log = logging.getLogger("fixgw.venuesim")

QUICKFIX_ERRORS = (fix.FieldNotFound, fix.IncorrectTagValue, fix.IncorrectDataFormat, fix.UnsupportedMessageType)
ALL_VERSIONS = ("FIX.4.2", "FIX.4.4", "FIX.5.0")


def _run_token() -> str:
    """A short token that differs between runs, so ids stay unique across simulator restarts."""
    n = int(time.time() * 1000)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out


class WireCounter:
    """JournalLogFactory sink: counts wire messages, sends engine events to the debug log, and notes each session
    quickfix is closing the connection of (sessions/closing.py: in a process shared with a gateway, the demo's or
    a test's, its sockets wait until quickfix has let go)."""

    def __init__(self, sids: dict[str, fix.SessionID] | None = None) -> None:
        self.incoming = 0
        self.outgoing = 0
        self.accepted = threading.Event()  # set when the acceptor has accepted a connection
        self.rows: list[tuple[str, str, str]] | None = None  # a list here keeps every message (for tests)
        self._sids = {sid.toString(): sid for sid in (sids or {}).values()}
        self.closing = ClosingConnections(session_registered)

    def record(self, session_id: str, direction: str, raw: str) -> None:
        if direction == "I":
            self.incoming += 1
        else:
            self.outgoing += 1
        if self.rows is not None:
            self.rows.append((session_id, direction, raw))

    def event(self, session_id: str, text: str) -> None:
        if text == DISCONNECTING_EVENT and session_id in self._sids:
            self.closing.closing(session_id, self._sids[session_id])
        if text.startswith("Accepted connection"):
            self.accepted.set()
        log.debug("%s: %s", session_id, text)


class _VenueApp(fix.Application):
    """Guarded quickfix callbacks; the work is done by the VenueSimulator."""

    def __init__(self, sim: "VenueSimulator"):
        super().__init__()
        self._sim = sim

    def onCreate(self, sid):
        pass

    def onLogon(self, sid):
        try:
            self._sim._logged_on(sid, True)
        except BaseException as exc:  # noqa: BLE001 - nothing may reach quickfix
            self._sim._bug("onLogon", sid, exc)

    def onLogout(self, sid):
        try:
            self._sim._logged_on(sid, False)
        except BaseException as exc:  # noqa: BLE001
            self._sim._bug("onLogout", sid, exc)

    def toAdmin(self, msg, sid):
        pass

    def fromAdmin(self, msg, sid):
        pass

    def toApp(self, msg, sid):
        try:
            # quickfix 1.16 puts DefaultApplVerID (1137) in the body of the BusinessMessageReject
            # it generates on FIXT sessions; a validating peer rejects that ("Tag not defined
            # for this message type"). 1137 belongs only on Logon, so drop it here, unless the
            # venue is told to misbehave like that (misbehave.appl_ver_id_in_reject).
            if not self._sim.keep_appl_ver_id and msg.isSetField(1137):
                msg.removeField(1137)
        except BaseException as exc:  # noqa: BLE001
            self._sim._bug("toApp", sid, exc)

    def fromApp(self, msg, sid):
        try:
            self._sim._dispatch(msg, sid, time.perf_counter_ns())
        except QUICKFIX_ERRORS:
            raise
        except BaseException as exc:  # noqa: BLE001
            self._sim._bug("fromApp", sid, exc, msg)


class VenueSimulator:
    """A simulated FIX venue listening on ``port`` as ``comp_id``.

    Accepts SessionID(BeginString, SenderCompID=comp_id, TargetCompID=counterparty)
    for every counterparty and version. ``store_dir`` holds the quickfix file store
    (sequence numbers survive a restart). Read-only views for tests and tools:
    ``orders_received``, ``matcher``, ``top_of_book(symbol)``, ``logged_on``,
    ``session_ids``, ``wire``.
    """

    def __init__(self, comp_id: str, port: int, sim: SimulatorConfig, store_dir: Path,
                 counterparties: tuple[str, ...] = ("FIXGW",),
                 versions: tuple[str, ...] = ALL_VERSIONS, book_file: Path | None = None):
        if not counterparties:
            raise ValueError("a venue simulator needs at least one counterparty")
        unknown = [v for v in versions if v not in ALL_VERSIONS]
        if unknown or not versions:
            raise ValueError(f"unsupported FIX version(s) {unknown or versions} (use {', '.join(ALL_VERSIONS)})")
        self.comp_id = comp_id
        self.port = port
        self.sim = sim
        self.store_dir = Path(store_dir)
        self.book_file = book_file  # working orders kept across a stop in good order (None: forgotten)
        self._saved_book = BookFile(book_file, comp_id) if book_file is not None else None
        self.counterparties = tuple(counterparties)
        self.versions = tuple(versions)
        self.matcher = Matcher(sim, id_prefix=f"{comp_id}-{_run_token()}", last_mkt=comp_id)
        self._lock = threading.Lock()
        self._logged_on_keys: set[str] = set()
        sessions: dict[str, fix.SessionID] = {}  # session key (owner) -> SessionID
        versions_of: dict[str, str] = {}  # session key -> application FIX version
        for cp in self.counterparties:
            for version in self.versions:
                sid = session_id(version, comp_id, cp)
                sessions[session_key(sid)] = sid
                versions_of[session_key(sid)] = app_version(sid)
        self.wire = WireCounter(sessions)
        self.outbox = Outbox(comp_id, sessions, versions_of)
        self.market_data = MarketDataFeed(comp_id, sim, self.matcher, self._lock, self.outbox,
                                          self._logged_on_keys.__contains__)
        self.order_entry = OrderEntry(self.matcher, self._lock, self.outbox, self.market_data.book_changed)
        self.misbehaviour = Misbehaviour(comp_id, sim.misbehave, self._lock, self.outbox)
        self._handlers: dict[str, Callable[[fix.Message, str, int], None]] = {
            "D": self.order_entry.new_order,
            "F": self.order_entry.cancel,
            "G": self.order_entry.replace,
            "H": self.order_entry.status,
            "AF": self.order_entry.mass_status,
            "V": self.market_data.request,
        }
        self._misbehaving = sim.misbehave.active
        self.keep_appl_ver_id = sim.misbehave.appl_ver_id_in_reject
        self._app: _VenueApp | None = None
        self._engine = None
        self._started = False

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "VenueSimulator":
        if self._started:
            return self
        if self._saved_book is not None:
            self._saved_book.take_back(self.matcher)
        settings = build_settings("acceptor", self.store_dir, [
            (sid, self.outbox.versions[key], {"SocketAcceptPort": str(self.port)})
            for key, sid in self.outbox.sessions.items()
        ])
        self._settings = settings
        self._app = _VenueApp(self)
        self._store = fix.FileStoreFactory(settings)
        self._logs = JournalLogFactory(self.wire)
        self.outbox.start()
        self._engine = fix.ThreadedSocketAcceptor(self._app, self._store, settings, self._logs)
        try:
            self._engine.start()
        except BaseException:
            self._engine = None  # destroy the half-started engine (and unregister its sessions)
            self.outbox.close()
            raise
        self._started = True
        self.market_data.start()
        self._wait_accepting()
        log.info("venue simulator %s listening on port %d; sessions %s", self.comp_id, self.port,
                 ", ".join(self.session_names))
        return self

    def _wait_accepting(self, timeout: float = 5.0) -> None:
        """Return once the acceptor's accept thread runs, proven by accepting a probe connection.

        ``ThreadedSocketAcceptor.start()`` spawns the accept thread from another
        thread; a ``stop()`` that comes before it is registered leaves the listening
        socket open for the rest of the process (the port cannot be bound again).
        """
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout):
                if not self.wire.accepted.wait(timeout):
                    log.warning("venue simulator %s: no connection accepted on port %d within %.0f s", self.comp_id,
                                self.port, timeout)
        except OSError as exc:
            log.warning("venue simulator %s: cannot connect to its own port %d: %s", self.comp_id, self.port, exc)

    def stop(self, timeout: float = 3.0) -> None:
        """Log every session out, stop the acceptor and release its sessions (safe to call twice)."""
        if not self._started:
            return
        self._started = False
        self.market_data.stop(timeout)
        try:
            graceful_stop(self._engine, list(self.outbox.sessions.values()), timeout)
        finally:
            # No callback runs any more: flush what is queued while the Sessions still
            # exist, then drop the engine. That destroys the C++ acceptor and its
            # Sessions, so a new simulator with the same SessionIDs can start in this
            # process. The Application must outlive the engine, hence the order.
            self.outbox.close()
            self._engine = None
            with self._lock:
                self._logged_on_keys.clear()
                self.market_data.clear()
                working = self.matcher.resting_book() if self._saved_book is not None else []
            if self._saved_book is not None:
                self._saved_book.save(working)
        log.info("venue simulator %s stopped", self.comp_id)

    def __enter__(self) -> "VenueSimulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------------- views
    @property
    def running(self) -> bool:
        return self._started

    @property
    def orders_received(self) -> int:
        """NewOrderSingle messages received (accepted or rejected)."""
        return self.order_entry.orders_received

    @property
    def new_order_ids(self) -> Counter[tuple[str, str]]:
        """(session key, ClOrdID) -> NewOrderSingles seen."""
        return self.order_entry.new_order_ids

    @property
    def misbehaved(self) -> Counter[tuple[str, str]]:
        """(message kind, mode) -> messages misanswered."""
        return self.misbehaviour.misbehaved

    @property
    def md_published(self) -> int:
        """Market data messages queued (snapshots and incrementals)."""
        return self.market_data.published

    @property
    def session_ids(self) -> list[fix.SessionID]:
        return list(self.outbox.sessions.values())

    @property
    def session_names(self) -> list[str]:
        return list(self.outbox.sessions)

    @property
    def logged_on(self) -> set[str]:
        """Keys (``SessionID.toString()``) of the sessions currently logged on."""
        with self._lock:
            return set(self._logged_on_keys)

    def top_of_book(self, symbol: str) -> TopOfBook:
        with self._lock:
            return self.matcher.top_of_book(symbol)

    def subscriptions(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(session key, MDReqID, symbols) of every live market data subscription."""
        return self.market_data.subscriptions()

    # ---------------------------------------------------------------- quickfix callbacks (via _VenueApp)
    def _logged_on(self, sid: fix.SessionID, up: bool) -> None:
        key = session_key(sid)
        with self._lock:
            (self._logged_on_keys.add if up else self._logged_on_keys.discard)(key)
            if not up:  # a subscription lives as long as its session
                self.market_data.drop(key)
            if not up and self.sim.cancel_on_disconnect and self.outbox.started:
                # quickfix stores the reports for the logged-out session; it gets them, as resends, once
                # it logs on again
                reports, symbols = self.matcher.cancel_owner(key, "canceled: the session disconnected "
                                                                  "(the venue cancels on disconnect)")
                self.outbox.reports(reports)
                for symbol in symbols:
                    self.market_data.book_changed(symbol)
                if reports:
                    log.info("venue simulator %s: %d resting order(s) of %s canceled on disconnect", self.comp_id,
                             len(reports), key)
            if up and self.sim.misbehave.forget_orders_on_logon:
                lost, symbols = self.matcher.forget(key)
                for symbol in symbols:
                    self.market_data.book_changed(symbol)
                if lost:
                    log.warning("venue simulator %s: forgot %d order(s) of %s at its logon "
                                "(misbehave.forget_orders_on_logon)", self.comp_id, lost, key)
        log.info("venue simulator %s: session %s logged %s", self.comp_id, key, "on" if up else "out")

    def _dispatch(self, msg: fix.Message, sid: fix.SessionID, recv_ns: int) -> None:
        msg_type = msg.getHeader().getField(35)
        handler = self._handlers.get(msg_type)
        if handler is None:
            raise fix.UnsupportedMessageType()
        key = session_key(sid)
        if self._misbehaving and self.misbehaviour.answer(msg, msg_type, key):
            return
        handler(msg, key, recv_ns)

    def _bug(self, callback: str, sid: fix.SessionID, exc: BaseException, msg: fix.Message | None = None) -> None:
        """An unexpected exception: log it with its traceback and, for a message, tell the sender."""
        try:
            raw = msg.toString().replace("\x01", "|") if msg is not None else ""
            log.error("venue simulator %s: internal error in %s for %s: %r; message: %s", self.comp_id, callback,
                      sid.toString(), exc, raw, exc_info=exc)
            if msg is not None:
                header = msg.getHeader()
                reject = encode.encode_business_reject(
                    header.getField(35) if header.isSetField(35) else "?",
                    header.getField(34) if header.isSetField(34) else None,
                    f"venue simulator could not process this message: internal error ({type(exc).__name__})")
                own_sid = self.outbox.sessions.get(session_key(sid))  # the callback's SessionID is only borrowed
                if own_sid is not None and self.outbox.running:
                    self.outbox.put([(reject, own_sid)])  # after the reports already queued for it
                else:
                    fix.Session.sendToTarget(reject, sid)
        except BaseException as again:  # noqa: BLE001 - the guard itself must never fail outward
            log.critical("venue simulator %s: error while handling an error in %s: %r", self.comp_id, callback,
                         again)

    def forget_orders(self, session: str | None = None) -> int:
        """Lose every order of ``session`` (a session key; None: of every session), as a venue restarted without
        its book: nothing is sent, a later status request or cancel for one is answered as for an unknown order.
        Returns how many orders were forgotten."""
        with self._lock:
            lost, symbols = self.matcher.forget(session)
            for symbol in symbols:
                self.market_data.book_changed(symbol)
        log.warning("venue simulator %s: forgot %d order(s) of %s", self.comp_id, lost, session or "every session")
        return lost
