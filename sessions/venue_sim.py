"""The simulated venue: a quickfix acceptor in front of ``venuesim.book.Matcher``.

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
``sendToTarget`` holding no lock of ours. So a fill for another session's
resting order never makes one session thread wait for another session's lock
(no A->B / B->A deadlock), and every session gets its reports in matcher order.

Every callback is guarded: quickfix's own exceptions pass through (quickfix turns
them into a session Reject or BusinessMessageReject), anything else is logged
with its traceback and answered with a BusinessMessageReject (j).

Market data: a MarketDataRequest (V) for bids and offers subscribes the session
to the symbols it names (263=1), answers with one snapshot (W) per symbol at the
requested depth (264; 0 = every level), or (263=0) just sends the snapshots;
263=2 ends the subscription named by its MDReqID. An unknown symbol or a reused
MDReqID gets a MarketDataRequestReject (Y). While subscribed, every request that
changes a symbol's visible book publishes the change, queued under the matcher
lock right after the request's execution reports (so a subscriber sees the fills
before the book they left behind): as incrementals (X: new, change or delete one
price level) when the request asked for MDUpdateType 265=1, otherwise as a full
snapshot (W). Nothing is published when the visible book did not change (the
synthetic levels are topped up after every request). Every ``md_refresh_s``
seconds each subscription also gets a fresh snapshot of each of its symbols, so
a subscriber can tell a quiet book from a dead feed; with ``md_changes`` off
that is all it gets (a conflated feed, whose quotes lag the book). A session
that logs out loses its subscriptions, and with ``cancel_on_disconnect`` its
resting orders.

Status: an OrderStatusRequest (H) is answered with the order's state (ExecType I in
4.4/5.0, ExecType = OrdStatus in 4.2; OrdStatusReqID 790 echoed), or for an order
the venue does not know with OrdStatus 8, OrdRejReason 5 and Text "unknown order".
An OrderMassStatusRequest (AF, 4.4/5.0; MassStatusReqType 7 all orders or 1 one
symbol, Side 54 optional) gets one status report per working order of the session,
each with MassStatusReqID (584) and TotNumReports (911), LastRptRequested (912) =Y
on the last; when none matches, a single report with OrderID NONE, OrdStatus 8,
TotNumReports 0 says so.

Misbehaviour (``[venues.X.simulator.misbehave]``, see ``MisbehaviourConfig``): per
message type and symbol, the venue can answer D/G with a session Reject (35=3),
D/F/G/H/AF with a BusinessMessageReject (35=j), or not at all ("silent": the
message is consumed at the session level and ignored). ``forget_orders()`` (also
``forget_orders_on_logon``, and SIGUSR1 to ``fixgw venue-sim``) makes it lose its
orders, so a status request for one is answered "unknown order".

Restart: with ``book_file`` (``keep_orders``, the default for `fixgw demo` and
`fixgw venue-sim`) a simulator stopped in good order saves its working orders
there and the next one on the same store takes them back (and removes the file),
as a venue keeps its book across a restart; a killed one saves nothing.
"""
from __future__ import annotations

import json
import logging
import queue
from collections import Counter
from dataclasses import dataclass, field
import socket
import threading
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable

import quickfix as fix

from venuesim.config import SimulatorConfig
from orders.model import ClientCancelReject, ClientExecReport, MDUpdateAction, Side
from sessions.codec import decode, encode, tagvalue
from sessions.fixsettings import app_version, build_settings, graceful_stop, session_id, session_key
from sessions.journal_log import JournalLogFactory
from venuesim import misbehave
from venuesim.book import TopOfBook
from venuesim.matcher import Matcher

log = logging.getLogger("fixgw.venuesim")

QUICKFIX_ERRORS = (fix.FieldNotFound, fix.IncorrectTagValue, fix.IncorrectDataFormat, fix.UnsupportedMessageType)
ALL_VERSIONS = ("FIX.4.2", "FIX.4.4", "FIX.5.0")

Outgoing = list[tuple[fix.Message, fix.SessionID]]
BookView = tuple[tuple[tuple[Decimal, Decimal], ...], tuple[tuple[Decimal, Decimal], ...]]  # (bids, asks)


@dataclass
class Subscription:
    """One session's market data subscription (MDReqID), and what it was last sent per symbol."""

    owner: str  # session key
    req_id: str
    symbols: tuple[str, ...]
    depth: int  # 0: every level
    incremental: bool
    last: dict[str, BookView] = field(default_factory=dict)


def diff_levels(old: BookView, new: BookView, symbol: str) -> list[tuple]:
    """Incremental entries (MDUpdateAction, Side, symbol, price, size) that turn ``old`` into ``new``."""
    out = []
    for side, before, after in ((Side.BUY, old[0], new[0]), (Side.SELL, old[1], new[1])):
        b, a = dict(before), dict(after)
        for px, size in before:
            if px not in a:
                out.append((MDUpdateAction.DELETE, side, symbol, px, size))
        for px, size in after:
            if px not in b:
                out.append((MDUpdateAction.NEW, side, symbol, px, size))
            elif b[px] != size:
                out.append((MDUpdateAction.CHANGE, side, symbol, px, size))
    return out


def _run_token() -> str:
    """A short token that differs between runs, so ids stay unique across simulator restarts."""
    n = int(time.time() * 1000)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out


def _decimal_field(msg: fix.Message, tag: int) -> Decimal:
    try:
        value = Decimal(msg.getField(tag))
    except InvalidOperation:
        raise fix.IncorrectDataFormat(tag) from None
    if not value.is_finite():
        raise fix.IncorrectDataFormat(tag)
    return value


class WireCounter:
    """JournalLogFactory sink: counts wire messages, sends engine events to the debug log."""

    def __init__(self) -> None:
        self.incoming = 0
        self.outgoing = 0
        self.accepted = threading.Event()  # set when the acceptor has accepted a connection
        self.rows: list[tuple[str, str, str]] | None = None  # a list here keeps every message (for tests)

    def record(self, session_id: str, direction: str, raw: str) -> None:
        if direction == "I":
            self.incoming += 1
        else:
            self.outgoing += 1
        if self.rows is not None:
            self.rows.append((session_id, direction, raw))

    def event(self, session_id: str, text: str) -> None:
        if text.startswith("Accepted connection"):
            self.accepted.set()
        log.debug("%s: %s", session_id, text)


class _Sender:
    """One thread that sends every outgoing batch, in the order the batches were queued."""

    def __init__(self, name: str):
        self._queue: queue.SimpleQueue[Outgoing | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"venuesim-send-{name}", daemon=True)
        self._name = name
        self.sent = 0

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def put(self, batch: Outgoing) -> None:
        if batch:
            self._queue.put(batch)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
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
        self.counterparties = tuple(counterparties)
        self.versions = tuple(versions)
        self.matcher = Matcher(sim, id_prefix=f"{comp_id}-{_run_token()}", last_mkt=comp_id)
        self._lock = threading.Lock()
        self._orders_received = 0
        self.new_order_ids: Counter[tuple[str, str]] = Counter()  # (session key, ClOrdID) -> NewOrderSingles seen
        self._logged_on_keys: set[str] = set()
        self._sessions: dict[str, fix.SessionID] = {}  # session key (owner) -> SessionID
        self._versions: dict[str, str] = {}  # session key -> application FIX version
        for cp in self.counterparties:
            for version in self.versions:
                sid = session_id(version, comp_id, cp)
                self._sessions[session_key(sid)] = sid
                self._versions[session_key(sid)] = app_version(sid)
        self.wire = WireCounter()
        self._handlers: dict[str, Callable[[fix.Message, str, int], None]] = {
            "D": self._on_new_order,
            "F": self._on_cancel,
            "G": self._on_replace,
            "H": self._on_status,
            "AF": self._on_mass_status,
            "V": self._on_market_data_request,
        }
        self._subscriptions: dict[tuple[str, str], Subscription] = {}  # (session key, MDReqID) -> subscription
        self.md_published = 0  # market data messages queued (snapshots and incrementals)
        self._misbehaving = sim.misbehave.active
        self.keep_appl_ver_id = sim.misbehave.appl_ver_id_in_reject
        self.misbehaved: Counter[tuple[str, str]] = Counter()  # (message kind, mode) -> messages misanswered
        self._app: _VenueApp | None = None
        self._engine = None
        self._sender: _Sender | None = None
        self._refresher: threading.Thread | None = None
        self._stopping = threading.Event()
        self._started = False

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "VenueSimulator":
        if self._started:
            return self
        self._load_book()
        settings = build_settings("acceptor", self.store_dir, [
            (sid, self._versions[key], {"SocketAcceptPort": str(self.port)}) for key, sid in self._sessions.items()
        ])
        self._settings = settings
        self._app = _VenueApp(self)
        self._store = fix.FileStoreFactory(settings)
        self._logs = JournalLogFactory(self.wire)
        self._sender = _Sender(self.comp_id)
        self._sender.start()
        self._engine = fix.ThreadedSocketAcceptor(self._app, self._store, settings, self._logs)
        try:
            self._engine.start()
        except BaseException:
            self._engine = None  # destroy the half-started engine (and unregister its sessions)
            self._sender.close()
            raise
        self._started = True
        self._stopping.clear()
        if self.sim.md_refresh_s > 0:
            self._refresher = threading.Thread(target=self._refresh_loop, name=f"venuesim-md-{self.comp_id}",
                                               daemon=True)
            self._refresher.start()
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
        self._stopping.set()
        if self._refresher is not None:
            self._refresher.join(timeout)
            self._refresher = None
        try:
            graceful_stop(self._engine, list(self._sessions.values()), timeout)
        finally:
            # No callback runs any more: flush what is queued while the Sessions still
            # exist, then drop the engine. That destroys the C++ acceptor and its
            # Sessions, so a new simulator with the same SessionIDs can start in this
            # process. The Application must outlive the engine, hence the order.
            if self._sender is not None:
                self._sender.close()
            self._engine = None
            with self._lock:
                self._logged_on_keys.clear()
                self._subscriptions.clear()
            self._save_book()
        log.info("venue simulator %s stopped", self.comp_id)

    def _load_book(self) -> None:
        """Take back the working orders the previous simulator on this store saved when it stopped.

        The file is removed once read: a simulator that is killed instead of stopped leaves none, and the next
        one starts without the orders, as a venue that lost its book would (a status request for one of them
        is answered "unknown order")."""
        if self.book_file is None or not self.book_file.exists():
            return
        try:
            saved = json.loads(self.book_file.read_text())
            restored = self.matcher.restore_book(saved["orders"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("venue simulator %s: cannot read its saved orders from %s (%s); starting without them",
                        self.comp_id, self.book_file, exc)
            restored = None
        self.book_file.unlink(missing_ok=True)
        if restored is not None:
            log.info("venue simulator %s: %d working order(s) taken back from %s", self.comp_id, restored,
                     self.book_file)

    def _save_book(self) -> None:
        if self.book_file is None:
            return
        with self._lock:
            orders = self.matcher.resting_book()
        try:
            self.book_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.book_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"venue": self.comp_id, "orders": orders}))
            tmp.replace(self.book_file)
        except OSError as exc:
            log.warning("venue simulator %s: cannot save its %d working order(s) to %s: %s", self.comp_id,
                        len(orders), self.book_file, exc)
            return
        if orders:
            log.info("venue simulator %s: %d working order(s) saved to %s for its next start", self.comp_id,
                     len(orders), self.book_file)

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
        return self._orders_received

    @property
    def session_ids(self) -> list[fix.SessionID]:
        return list(self._sessions.values())

    @property
    def session_names(self) -> list[str]:
        return list(self._sessions)

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
        with self._lock:
            return [(s.owner, s.req_id, s.symbols) for s in self._subscriptions.values()]

    # ---------------------------------------------------------------- quickfix callbacks (via _VenueApp)
    def _logged_on(self, sid: fix.SessionID, up: bool) -> None:
        key = session_key(sid)
        with self._lock:
            (self._logged_on_keys.add if up else self._logged_on_keys.discard)(key)
            if not up:  # a subscription lives as long as its session
                for k in [k for k in self._subscriptions if k[0] == key]:
                    del self._subscriptions[k]
            if not up and self.sim.cancel_on_disconnect and self._sender is not None:
                # quickfix stores the reports for the logged-out session; it gets them, as resends, once
                # it logs on again
                reports, symbols = self.matcher.cancel_owner(key, "canceled: the session disconnected "
                                                                  "(the venue cancels on disconnect)")
                self._queue(reports)
                for symbol in symbols:
                    self._book_changed(symbol)
                if reports:
                    log.info("venue simulator %s: %d resting order(s) of %s canceled on disconnect", self.comp_id,
                             len(reports), key)
            if up and self.sim.misbehave.forget_orders_on_logon:
                lost, symbols = self.matcher.forget(key)
                for symbol in symbols:
                    self._book_changed(symbol)
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
        if self._misbehaving and self._misbehave(msg, msg_type, key):
            return
        handler(msg, key, recv_ns)

    def _misbehave(self, msg: fix.Message, msg_type: str, owner: str) -> bool:
        """Answer ``msg`` as ``misbehave`` says (a Reject, a BusinessMessageReject or nothing); False: normally."""
        kind = misbehave.MESSAGE_KIND.get(msg_type)
        if kind is None:
            return False
        cfg = self.sim.misbehave
        mode = cfg.mode(kind, msg.getField(55) if msg.isSetField(55) else None)
        if mode == "normal":
            return False
        seq = msg.getHeader().getField(34)
        if mode == "session_reject":
            text = misbehave.session_reject(seq, msg_type)
        elif mode == "business_reject":
            version = self._versions[owner]
            text = misbehave.business_reject(
                seq, msg_type, cfg.business_reject_reason, msg.getField(11) if msg.isSetField(11) else None,
                tagvalue.APPL_VER_ID.get(version) if cfg.appl_ver_id_in_reject else None)
        else:
            text = None
        with self._lock:  # queued after the reports already queued for this session
            self.misbehaved[(kind, mode)] += 1
            if text is not None:
                self._sender.put([(fix.Message(text, False), self._sessions[owner])])
        log.info("venue simulator %s: %s %s from %s answered %s (misbehave)", self.comp_id, kind, seq, owner, mode)
        return True

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
                own_sid = self._sessions.get(session_key(sid))  # the callback's SessionID is only borrowed
                if own_sid is not None and self._sender is not None and self._sender.running:
                    self._sender.put([(reject, own_sid)])  # after the reports already queued for it
                else:
                    fix.Session.sendToTarget(reject, sid)
        except BaseException as again:  # noqa: BLE001 - the guard itself must never fail outward
            log.critical("venue simulator %s: error while handling an error in %s: %r", self.comp_id, callback,
                         again)

    # ---------------------------------------------------------------- message handlers
    def _on_new_order(self, msg: fix.Message, owner: str, recv_ns: int) -> None:
        order = decode.decode_new_order(msg, owner, recv_ns)  # quickfix exceptions on bad fields
        with self._lock:
            self._orders_received += 1
            self.new_order_ids[(owner, order.cl_ord_id)] += 1
            self._queue(self.matcher.submit(order))
            self._book_changed(order.symbol)

    def _on_cancel(self, msg: fix.Message, owner: str, recv_ns: int) -> None:
        req = decode.decode_cancel_request(msg, owner, recv_ns)
        with self._lock:
            self._queue(self.matcher.cancel(owner, req.orig_cl_ord_id, req.cl_ord_id, recv_ns))
            self._book_changed(req.symbol)

    def _on_replace(self, msg: fix.Message, owner: str, recv_ns: int) -> None:
        orig = msg.getField(41)
        cl_ord_id = msg.getField(11)
        symbol = msg.getField(55)
        qty = _decimal_field(msg, 38)
        price = _decimal_field(msg, 44) if msg.isSetField(44) else None
        with self._lock:
            self._queue(self.matcher.replace(owner, orig, cl_ord_id, qty, price, recv_ns))
            self._book_changed(symbol)

    def _on_status(self, msg: fix.Message, owner: str, recv_ns: int) -> None:
        cl_ord_id = msg.getField(11)
        symbol = msg.getField(55)
        try:
            side = Side(msg.getField(54))
        except ValueError:
            raise fix.IncorrectTagValue(54) from None
        echo = f"790={msg.getField(790)}{tagvalue.SOH}" if msg.isSetField(790) else ""  # OrdStatusReqID
        with self._lock:
            report = self.matcher.status(owner, cl_ord_id, symbol, side)
            self._sender.put([(self._with_fields(report, echo), self._sessions[owner])])

    def _on_mass_status(self, msg: fix.Message, owner: str, recv_ns: int) -> None:
        """OrderMassStatusRequest (AF): a status report per working order; see the module docstring."""
        req_id = msg.getField(584)
        req_type = msg.getField(585)
        if req_type not in ("1", "7"):  # 1: one security, 7: all orders; the rest select what we do not keep
            raise fix.IncorrectTagValue(585)
        symbol = msg.getField(55) if req_type == "1" else None  # FieldNotFound: quickfix rejects it
        side = None
        if msg.isSetField(54):
            try:
                side = Side(msg.getField(54))
            except ValueError:
                raise fix.IncorrectTagValue(54) from None
        sid = self._sessions[owner]
        with self._lock:
            orders = self.matcher.open_orders(owner, symbol, side)
            out: Outgoing = []
            for n, order in enumerate(orders, 1):
                extra = f"584={req_id}{tagvalue.SOH}911={len(orders)}{tagvalue.SOH}912={'Y' if n == len(orders) else 'N'}"
                out.append((self._with_fields(self.matcher.status_of(order), extra + tagvalue.SOH), sid))
            if not orders:
                out.append((fix.Message(self._no_orders_report(owner, req_id, symbol, side), False), sid))
            self._sender.put(out)

    def _with_fields(self, report: ClientExecReport, extra: str) -> fix.Message:
        """An execution report in its owner's version, with ``extra`` (tag=value SOH ...) added."""
        return fix.Message(encode.encode_exec_report.text(self._versions[report.session], report) + extra, False)

    def _no_orders_report(self, owner: str, req_id: str, symbol: str | None, side: Side | None) -> str:
        """The one answer to a mass status request that matches no working order."""
        soh = tagvalue.SOH  # AF exists from FIX 4.4 on (quickfix refuses it on 4.2 sessions): ExecType I
        return (f"35=8{soh}37=NONE{soh}17={self.matcher.reporter.next_exec_id()}{soh}150=I{soh}39=8{soh}"
                f"55={symbol or '[N/A]'}{soh}54={(side or Side.BUY).value}{soh}151=0{soh}14=0{soh}6=0{soh}"
                f"584={req_id}{soh}911=0{soh}912=Y{soh}58=no working order matches the mass status request{soh}"
                f"60={tagvalue.utc_timestamp()}{soh}")

    def forget_orders(self, session: str | None = None) -> int:
        """Lose every order of ``session`` (a session key; None: of every session), as a venue restarted without
        its book: nothing is sent, a later status request or cancel for one is answered as for an unknown order.
        Returns how many orders were forgotten."""
        with self._lock:
            lost, symbols = self.matcher.forget(session)
            for symbol in symbols:
                self._book_changed(symbol)
        log.warning("venue simulator %s: forgot %d order(s) of %s", self.comp_id, lost, session or "every session")
        return lost

    def _on_market_data_request(self, msg: fix.Message, owner: str, recv_ns: int) -> None:
        """MarketDataRequest (V): snapshot (0), subscribe (1) or unsubscribe (2); see the module docstring."""
        req = decode.decode_md_request(msg.toString())  # quickfix exceptions on bad fields
        version = self._versions[owner]
        sid = self._sessions[owner]
        with self._lock:
            key = (owner, req.req_id)
            if req.request_type == "2":
                self._subscriptions.pop(key, None)
                return
            unknown = [s for s in req.symbols if s not in self.matcher.books]
            if not req.symbols or unknown:
                text = f"unknown symbol {', '.join(unknown)}" if unknown else "no symbol requested (146)"
                self._sender.put([(encode.encode_md_reject(version, req.req_id, "0", text), sid)])
                return
            if req.request_type == "1" and key in self._subscriptions:
                self._sender.put([(encode.encode_md_reject(version, req.req_id, "1",
                                                          f"duplicate MDReqID {req.req_id}"), sid)])
                return
            sub = Subscription(owner, req.req_id, tuple(dict.fromkeys(req.symbols)), req.depth, req.incremental)
            self._send_snapshots(sub)
            if req.request_type == "1":
                self._subscriptions[key] = sub

    def _view(self, symbol: str, depth: int) -> BookView:
        book = self.matcher.books[symbol]
        bids, asks = book.depth(Side.BUY), book.depth(Side.SELL)
        if depth:
            bids, asks = bids[:depth], asks[:depth]
        return tuple(bids), tuple(asks)

    def _send_snapshots(self, sub: Subscription) -> None:
        """A full snapshot (W) of each of the subscription's symbols. Under ``self._lock``."""
        version, sid = self._versions[sub.owner], self._sessions[sub.owner]
        out: Outgoing = []
        for symbol in sub.symbols:
            view = sub.last[symbol] = self._view(symbol, sub.depth)
            out.append((encode.encode_md_snapshot(version, sub.req_id, symbol, view[0], view[1]), sid))
        self.md_published += len(out)
        self._sender.put(out)

    def _book_changed(self, symbol: str) -> None:
        """Publish ``symbol``'s book to its subscribers if what they see changed. Under ``self._lock``,
        after the request's reports were queued."""
        if not self._subscriptions or symbol not in self.matcher.books or not self.sim.md_changes:
            return
        out: Outgoing = []
        views: dict[int, BookView] = {}
        for sub in self._subscriptions.values():
            if symbol not in sub.symbols:
                continue
            view = views.get(sub.depth)
            if view is None:
                view = views[sub.depth] = self._view(symbol, sub.depth)
            old = sub.last.get(symbol)
            if old == view:
                continue
            sub.last[symbol] = view
            version, sid = self._versions[sub.owner], self._sessions[sub.owner]
            if sub.incremental and old is not None:
                out.append((encode.encode_md_incremental(version, sub.req_id, diff_levels(old, view, symbol)), sid))
            else:
                out.append((encode.encode_md_snapshot(version, sub.req_id, symbol, view[0], view[1]), sid))
        if out:
            self.md_published += len(out)
            self._sender.put(out)

    def _refresh_loop(self) -> None:
        """Every ``md_refresh_s``: a fresh snapshot of every subscribed symbol (proof the feed is alive)."""
        interval = float(self.sim.md_refresh_s)
        while not self._stopping.wait(interval):
            try:
                with self._lock:
                    if self._sender is None or not self._sender.running:
                        continue
                    for sub in list(self._subscriptions.values()):
                        if sub.owner in self._logged_on_keys:
                            self._send_snapshots(sub)
            except BaseException:  # noqa: BLE001 - the refresher must keep going
                log.exception("venue simulator %s: market data refresh failed", self.comp_id)

    # ---------------------------------------------------------------- sending
    def _queue(self, reports: list[ClientExecReport | ClientCancelReject]) -> None:
        """Encode reports in their owners' FIX versions and queue them for the sender thread.

        Called under ``self._lock`` so batches are queued in matcher order; it never
        sends (and never waits for a session lock) itself.
        """
        out: Outgoing = []
        for r in reports:
            version = self._versions[r.session]
            if isinstance(r, ClientExecReport):
                out.append((encode.encode_exec_report(version, r), self._sessions[r.session]))
            else:
                out.append((encode.encode_cancel_reject(version, r), self._sessions[r.session]))
        assert self._sender is not None
        self._sender.put(out)
