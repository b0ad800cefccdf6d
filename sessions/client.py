"""A small FIX initiator for tests, benchmarks and UAT scripts.

It logs on to one session, sends orders in its own FIX version and collects every
message it receives as a ``dict[int, str]`` (the last value of each tag). Its own
wire traffic is recorded through ``JournalLogFactory`` so tests can compare what
the peer journaled with what this side actually sent and received.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Callable

import quickfix as fix

from orders.actions import VenueMarketDataRequest
from sessions.closing import CONNECTING_EVENT, INITIATOR_WAIT_S, settle
from sessions.codec import encode
from sessions.codec.tagvalue import fmt, utc_timestamp
from sessions.fixsettings import build_settings, graceful_stop, session_id
from sessions.journal_log import JournalLogFactory

SOH = "\x01"


def parse(raw: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for part in raw.split(SOH):
        if part:
            tag, _, value = part.partition("=")
            out[int(tag)] = value
    return out


@dataclass
class WireLog:
    """Every raw message the client's engine read ("I") or wrote ("O")."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    on_event: Callable[[], None] | None = None  # called after each event is noted (FixClient wakes its waiters)

    def record(self, session_id: str, direction: str, raw: str) -> None:
        with self._lock:
            self.lines.append((direction, raw))

    def event(self, session_id: str, text: str) -> None:
        if text.startswith(CONNECTING_EVENT):
            settle(INITIATOR_WAIT_S)  # the initiator opens its socket when this returns (sessions/closing.py)
        with self._lock:
            self.events.append(text)
        if self.on_event is not None:
            self.on_event()

    def count(self, direction: str) -> int:
        with self._lock:
            return sum(1 for d, _ in self.lines if d == direction)


class _ClientApp(fix.Application):
    def __init__(self, client: "FixClient"):
        super().__init__()
        self._client = client

    def onCreate(self, sid):
        pass

    def onLogon(self, sid):
        self._client._set_logged_on(True)

    def onLogout(self, sid):
        self._client._set_logged_on(False)

    def toAdmin(self, msg, sid):
        try:
            if msg.getHeader().getField(35) == "A":
                for tag, value in self._client.logon_fields.items():
                    msg.setField(tag, value)  # e.g. Username (553), Password (554)
                if self._client.reset_seqnum_flag:
                    # quickfix sees 141=Y after toAdmin: it resets this side's store and sends the Logon as 1
                    msg.setField(141, "Y")
        except Exception:  # noqa: BLE001
            pass

    def toApp(self, msg, sid):
        pass

    def fromAdmin(self, msg, sid):
        try:
            self._client._received(msg.toString())
        except Exception:  # noqa: BLE001 - never let an exception reach quickfix
            pass

    def fromApp(self, msg, sid):
        try:
            self._client._received(msg.toString())
        except Exception:  # noqa: BLE001
            pass


class FixClient:
    def __init__(self, *, version: str, sender: str, target: str, port: int, store_dir: Path,
                 host: str = "127.0.0.1", heartbeat_s: int = 30, extra: dict[str, str] | None = None,
                 logon_fields: dict[int, str] | None = None, reset_seqnum_flag: bool = False):
        """``logon_fields`` go into every Logon this client sends (Username 553, Password 554, ...);
        ``reset_seqnum_flag``: every Logon it sends carries ResetSeqNumFlag (141=Y), so both sides start
        again at MsgSeqNum 1 (an attribute: set it before a reconnect to reset then)."""
        self.version = version
        self.logon_fields = dict(logon_fields or {})
        self.reset_seqnum_flag = reset_seqnum_flag
        self.sid = session_id(version, sender, target)
        self.wire = WireLog(on_event=self._poke)
        self.messages: list[dict[int, str]] = []
        self._cond = threading.Condition()
        self._consumed = 0
        self._logged_on = False
        self._app = _ClientApp(self)
        settings = build_settings("initiator", Path(store_dir), [(self.sid, version, {
            "SocketConnectHost": host, "SocketConnectPort": str(port), "HeartBtInt": str(heartbeat_s),
            "ReconnectInterval": "1", **(extra or {}),
        })])
        self._settings = settings
        self._store = fix.FileStoreFactory(settings)
        self._logs = JournalLogFactory(self.wire)
        self._engine = fix.SocketInitiator(self._app, self._store, settings, self._logs)
        self._seq = 0

    # ---------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 10.0) -> "FixClient":
        self._engine.start()
        if not self.wait_logged_on(timeout):
            raise TimeoutError(f"{self.sid.toString()} did not log on within {timeout}s")
        return self

    def connect(self) -> None:
        """Start connecting and logging on without waiting (``logon_outcome`` says how it went)."""
        self._engine.start()

    def logon_outcome(self, timeout: float) -> tuple[str, str]:
        """Wait for the first logon attempt's end: ("logged_on", ""), ("refused", the Logout's Text),
        ("closed", "") when the connection ended before any answer (refused, or closed by the peer), or
        ("timeout", "")."""
        def seen() -> tuple[str, str] | None:
            if self._logged_on:
                return "logged_on", ""
            for m in self.messages:
                if m.get(35) == "5":
                    return "refused", m.get(58, "")
            with self.wire._lock:
                if "Disconnecting" in self.wire.events:
                    return "closed", ""
            return None

        with self._cond:
            self._cond.wait_for(lambda: seen() is not None, timeout)
            return seen() or ("timeout", "")

    @property
    def logged_on(self) -> bool:
        with self._cond:
            return self._logged_on

    def messages_after(self, index: int, timeout: float) -> list[dict[int, str]]:
        """The messages received after the first ``index``, waiting up to ``timeout`` for one (or a logout)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.messages) > index or not self._logged_on, timeout)
            return self.messages[index:]

    def sent(self, msg_type: str, cl_ord_id: str) -> dict[int, str] | None:
        """The last message of ``msg_type`` with ClOrdID ``cl_ord_id`` this client wrote to the wire, as sent
        (header included: its MsgSeqNum is what a session Reject of it names)."""
        needle, mark = f"{SOH}35={msg_type}{SOH}", f"{SOH}11={cl_ord_id}{SOH}"
        with self.wire._lock:
            for direction, raw in reversed(self.wire.lines):
                if direction == "O" and needle in raw and mark in raw:
                    return parse(raw)
        return None

    def _poke(self) -> None:
        with self._cond:
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        return self._engine is None

    def refusals(self) -> list[str]:
        """The Text (58) of each Logout received (a refused logon's reason)."""
        with self._cond:
            return [m.get(58, "") for m in self.messages if m.get(35) == "5"]

    def stop(self) -> None:
        if self._engine is None:
            return
        graceful_stop(self._engine, [self.sid])
        # Destroy the C++ engine now: quickfix keeps one process-wide SessionID ->
        # Session map, and an engine destroyed later (by the garbage collector) would
        # unregister a newer engine's session with the same SessionID.
        self._engine = None

    def wait_logged_on(self, timeout: float = 10.0, up: bool = True) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._logged_on == up, timeout)

    @property
    def session(self) -> fix.Session:
        return fix.Session.lookupSession(self.sid)

    def _set_logged_on(self, value: bool) -> None:
        with self._cond:
            self._logged_on = value
            self._cond.notify_all()

    def _received(self, raw: str) -> None:
        fields = parse(raw)
        with self._cond:
            self.messages.append(fields)
            self._cond.notify_all()

    # ---------------------------------------------------------------- receiving
    def wait_for(self, predicate: Callable[[dict[int, str]], bool], timeout: float = 5.0,
                 what: str = "message") -> dict[int, str]:
        """The first received message matching ``predicate`` (searching all received so far)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            start = 0
            while True:
                for m in self.messages[start:]:
                    if predicate(m):
                        return m
                start = len(self.messages)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.sid.toString()}: no {what} within {timeout}s; got "
                                         f"{[self.describe(m) for m in self.messages[-8:]]}")
                self._cond.wait(remaining)

    def app_messages(self, msg_type: str | None = None) -> list[dict[int, str]]:
        with self._cond:
            return [m for m in self.messages if (msg_type is None and m.get(35) not in ADMIN_TYPES)
                    or m.get(35) == msg_type]

    def exec_reports(self, cl_ord_id: str) -> list[dict[int, str]]:
        with self._cond:
            return [m for m in self.messages if m.get(35) == "8" and m.get(11) == cl_ord_id]

    def wait_exec(self, cl_ord_id: str, ord_status: str, timeout: float = 5.0) -> dict[int, str]:
        return self.wait_for(lambda m: m.get(35) == "8" and m.get(11) == cl_ord_id and m.get(39) == ord_status,
                             timeout, what=f"ExecutionReport 11={cl_ord_id} 39={ord_status}")

    @staticmethod
    def describe(m: dict[int, str]) -> str:
        keys = (35, 11, 41, 150, 39, 38, 32, 31, 14, 151, 6, 58, 103, 102, 373, 380)
        return " ".join(f"{k}={m[k]}" for k in keys if k in m)

    # ---------------------------------------------------------------- sending
    def next_id(self, prefix: str = "C") -> str:
        self._seq += 1
        return f"{prefix}{self._seq}-{time.monotonic_ns() % 10**9}"

    def send(self, msg: fix.Message) -> bool:
        """Send now, or (logged out) store it for the resend after the next logon: then False."""
        if fix.Session.lookupSession(self.sid) is None:
            raise RuntimeError(f"{self.sid.toString()}: no such session (client stopped?)")
        return fix.Session.sendToTarget(msg, self.sid)

    def new_order(self, symbol: str, side: str, qty, price=None, *, cl_ord_id: str | None = None,
                  ord_type: str | None = None, tif: str | None = None, account: str | None = None,
                  extra: dict[int, str] | None = None) -> str:
        cl = cl_ord_id or self.next_id()
        msg = self._order_message("D", cl, symbol, side, qty, price, ord_type)
        if tif:
            msg.setField(59, tif)
        if account:
            msg.setField(1, account)
        for tag, value in (extra or {}).items():
            msg.setField(tag, value)
        self.send(msg)
        return cl

    def replace(self, orig_cl_ord_id: str, symbol: str, side: str, qty, price=None, *, cl_ord_id: str | None = None,
                ord_type: str | None = None) -> str:
        cl = cl_ord_id or self.next_id("R")
        msg = self._order_message("G", cl, symbol, side, qty, price, ord_type)
        msg.setField(41, orig_cl_ord_id)
        self.send(msg)
        return cl

    def _order_message(self, msg_type: str, cl: str, symbol: str, side: str, qty, price, ord_type) -> fix.Message:
        """The fields NewOrderSingle and OrderCancelReplaceRequest share, in this client's version."""
        msg = fix.Message()
        msg.getHeader().setField(35, msg_type)
        msg.setField(11, cl)
        if self.version != "FIX.5.0":
            msg.setField(21, "1")
        msg.setField(55, symbol)
        msg.setField(54, side)
        msg.setField(60, utc_timestamp())
        msg.setField(38, _text(qty))
        msg.setField(40, ord_type or ("2" if price is not None else "1"))
        if price is not None:
            msg.setField(44, _text(price))
        return msg

    def status(self, cl_ord_id: str, symbol: str, side: str) -> None:
        msg = fix.Message()
        msg.getHeader().setField(35, "H")
        msg.setField(11, cl_ord_id)
        msg.setField(55, symbol)
        msg.setField(54, side)
        self.send(msg)

    def mass_cancel(self, request_type: str = "7", symbol: str | None = None, *, cl_ord_id: str | None = None) -> str:
        cl = cl_ord_id or self.next_id("Q")
        msg = fix.Message()
        msg.getHeader().setField(35, "q")
        msg.setField(11, cl)
        msg.setField(530, request_type)
        if symbol:
            msg.setField(55, symbol)
        msg.setField(60, utc_timestamp())
        self.send(msg)
        return cl

    def market_data_request(self, symbols, depth: int = 5, *, incremental: bool = True, request_type: str = "1",
                            req_id: str | None = None) -> str:
        """MarketDataRequest (V) for bids and offers: 263 = 0 snapshot, 1 subscribe, 2 unsubscribe."""
        req = req_id or self.next_id("MD")
        msg = encode.encode_md_request(self.version, VenueMarketDataRequest(
            venue="", req_id=req, symbols=tuple(symbols), depth=depth, subscribe=request_type != "2",
            incremental=incremental))
        if request_type == "0":
            msg.setField(263, "0")
        self.send(msg)
        return req

    def raw_messages(self, msg_type: str) -> list[str]:
        """The raw text of every received message of ``msg_type`` (for repeating groups, which
        ``messages`` cannot hold)."""
        needle = f"{SOH}35={msg_type}{SOH}"
        with self.wire._lock:
            return [raw for d, raw in self.wire.lines if d == "I" and needle in raw]

    def cancel(self, orig_cl_ord_id: str, symbol: str, side: str, qty, *, cl_ord_id: str | None = None) -> str:
        cl = cl_ord_id or self.next_id("X")
        msg = fix.Message()
        msg.getHeader().setField(35, "F")
        msg.setField(41, orig_cl_ord_id)
        msg.setField(11, cl)
        msg.setField(55, symbol)
        msg.setField(54, side)
        msg.setField(60, utc_timestamp())
        if qty is not None:  # OrderQty: optional in every version's OrderCancelRequest
            msg.setField(38, _text(qty))
        self.send(msg)
        return cl


ADMIN_TYPES = frozenset({"0", "1", "2", "3", "4", "5", "A"})


def _text(value) -> str:
    return fmt(value) if isinstance(value, Decimal) else str(value)
