"""The order-state log: what the core changed, made durable before anything is sent.

After every command the engine appends one record (the orders the command
touched, as they are now; their open risk exposure; the routing decisions it
took, each written once; the inbound MsgSeqNum it consumed; the text of every
message about to be sent; operator switches when they changed; per-day risk
usage when it changed: the trading day, the notional filled on it per account,
each session's day; each new order refused at intake, as a small plain-value
entry) with a single
``write()``, and only then are the messages sent (by the engine's sender
thread, in order, never more than ``SEND_BACKLOG_MAX`` behind). So every message
the gateway ever sent is explained by a record on disk, and a message whose
record is missing was never acted on. A ``write()`` lands in the kernel's page
cache: it survives the process being killed (``kill -9``, OOM, a segfault).
Surviving a power cut as well needs ``fsync = true`` ([recovery] in the config),
at the cost of a disk flush per command.

Files, in ``<data_dir>/state/``:

- ``state.snap``: a full snapshot, replaced atomically (temp file, fsync, rename);
  written at start-up (compaction) and at a clean stop (marked clean);
- ``state.log``: the records since that snapshot, each ``[length u32][crc32 u32]
  [pickle]``. A torn last record (the process died inside ``write()``) fails its
  length or CRC check and is ignored: its messages were never sent.

Records are pickled (fast, in C; orders without their routing decisions, which
the records carry once; orders, open orders and decisions as plain values: Decimals
as text, enums as codes) and read back with an unpickler that only
accepts the gateway's own domain types and a few standard ones, so a tampered
state file cannot run code; it can only fail to load, and start-up stops with a
clear error naming the file.
"""
from __future__ import annotations

import io
import logging
import os
import pickle
import struct
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from risk.daily_usage import fold_day_changes
from risk.state import OpenOrder, open_order_from_state_log, open_order_state_log_form
from orders import actions as _actions, commands as _commands, model as _model, records as _records
from orders.records import (
    RejectedOrder, RouteDecision, rejected_from_state_log, rejected_state_log_form, route_from_state_log,
    route_state_log_form,
)
from orders.states import Order, order_from_state_log, order_state_log_form

log = logging.getLogger("fixgw.statelog")

_HEADER = struct.Struct("<II")
SNAPSHOT_VERSION = 1
# How many messages (and marks) the engine's sender thread may be behind when the core thread writes a record
# (gateway/process/engine.py). After a crash the last record's messages, and up to this many before them, may not have
# been sent: recovery looks for each of them in its session's FileStore.
SEND_BACKLOG_MAX = 512
_ALLOWED_MODULES = ("orders.model", "orders.commands", "orders.actions", "orders.records", "orders.states",
                    "risk.state", "decimal", "datetime", "collections")
# Where the order vocabulary lived before issue 19's re-cut: state files written by an older gateway name these.
# routing.orders became orders.states; routing.model became orders.model, which was later split into the
# enumerations (orders.model), commands, actions and records: a name the old module held is found where it is now.
_MOVED_MODULES = {"routing.model": "orders.model", "routing.orders": "orders.states"}
_SPLIT_FROM_MODEL = (_commands, _actions, _records)
_ALLOWED_BUILTINS = frozenset({"set", "frozenset", "dict", "list", "tuple", "bytes", "str", "int", "bool",
                               "NoneType"})


class StateLogError(Exception):
    """The state files cannot be read; start-up must stop rather than trade on a wrong picture."""


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module == "builtins" and name in _ALLOWED_BUILTINS:
            return super().find_class(module, name)
        module = _MOVED_MODULES.get(module, module)
        if module == "orders.model" and not hasattr(_model, name):
            module = next((m.__name__ for m in _SPLIT_FROM_MODEL if hasattr(m, name)), module)
        if module in _ALLOWED_MODULES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"state files may not refer to {module}.{name}")


def _loads(data: bytes):
    return _SafeUnpickler(io.BytesIO(data)).load()


def _slim_order(order: Order):
    """An order in a record: plain values, without its routing decisions, which each record carries once
    (``routes``)."""
    return order_from_state_log, (order_state_log_form(order),)


class _RecordPickler:
    """pickle.dumps for records: orders slimmed, and orders, open orders and routing decisions as plain
    values (``orders.model.PlainForm``); one pickler reused (cleared per record)."""

    def __init__(self):
        self._buf = io.BytesIO()
        self._pickler = pickle.Pickler(self._buf, protocol=5)
        self._pickler.dispatch_table = {
            Order: _slim_order,
            RouteDecision: lambda d: (route_from_state_log, (route_state_log_form(d),)),
            OpenOrder: lambda o: (open_order_from_state_log, (open_order_state_log_form(o),)),
            RejectedOrder: lambda r: (rejected_from_state_log, (rejected_state_log_form(r),)),
        }

    def dumps(self, obj) -> bytes:
        buf = self._buf
        buf.seek(0)
        buf.truncate()
        self._pickler.clear_memo()
        self._pickler.dump(obj)
        return buf.getvalue()


@dataclass
class Record:
    ts: float  # time.time() when written
    origin: str | None  # "client:NAME" / "venue:NAME" of the inbound message consumed, or None
    seq: int  # its MsgSeqNum (0: none; 0 with an origin: that session's sequence numbers were reset)
    orders: list  # [(Order, OpenOrder | None)]: each Order without its routing decisions (``routes``)
    sends: list  # the messages sent after this record was written: [(role, session name, body text)]
    controls: tuple | None  # operator switches, when they changed
    routes: list = field(default_factory=list)  # routing decisions taken by this command (each logged once)
    trades: dict | None = None  # symbol -> last price of a fill reported to a client by this command
    risk_day: tuple | None = None  # per-day risk usage changed by this command (``DailyUsage.changes``)
    rejected: list | None = None  # RejectedOrder: new orders this command refused at intake


@dataclass
class State:
    """Everything the log knows, folded: what a restart starts from."""

    orders: dict = field(default_factory=dict)  # order_id -> Order
    open_risk: dict = field(default_factory=dict)  # order_id -> OpenOrder (orders still counted by risk)
    watermarks: dict = field(default_factory=dict)  # origin -> (seq, time processed)
    controls: tuple | None = None
    last_trades: dict = field(default_factory=dict)  # symbol -> last fill price reported to a client
    # per-day risk usage (``risk.daily_usage.fold_day_changes``): its trading day, notional filled on it per account,
    # each session's day; None: not recorded (a log of an older version)
    risk_day: dict | None = None
    # (record time, message) of the messages that may not all have been sent when the process died: the last
    # record's, and the SEND_BACKLOG_MAX before them (the engine's sender is never further behind the log).
    earlier_sends: deque = field(default_factory=lambda: deque(maxlen=SEND_BACKLOG_MAX))
    last_sends: list = field(default_factory=list)
    # new orders refused at intake (order_id -> RejectedOrder), oldest first, at most ``rejected_kept``
    rejected: dict = field(default_factory=dict)
    rejected_kept: int | None = None  # None: no cap (the core applies its own when it takes them over)
    clean: bool = True  # the last stop was clean: nothing after the snapshot
    records: int = 0  # records read after the snapshot
    torn: bool = False  # the log ended in a partial record (ignored)

    def apply(self, rec: Record) -> None:
        orders = self.orders
        for order, open_order in rec.orders:
            prev = orders.get(order.order_id)
            if prev is not None and not order.routes:  # (a record of an older layout carries them inline)
                order.routes = prev.routes
            orders[order.order_id] = order
            if open_order is None:
                self.open_risk.pop(order.order_id, None)
            else:
                self.open_risk[order.order_id] = open_order
        for decision in rec.routes:
            order = orders.get(decision.order_id)
            if order is not None:  # (an order refused at intake is not in the book, nor its decision)
                order.routes.append(decision)
        if rec.origin is not None:
            if rec.seq:
                self.watermarks[rec.origin] = (rec.seq, rec.ts)
            else:  # the session's sequence numbers were reset: its watermark is meaningless now
                self.watermarks.pop(rec.origin, None)
        if rec.controls is not None:
            self.controls = rec.controls
        if rec.trades:
            self.last_trades.update(rec.trades)
        if rec.risk_day is not None:
            self.risk_day = fold_day_changes(self.risk_day, rec.risk_day)
        if rec.rejected:
            rejected = self.rejected
            for r in rec.rejected:
                rejected[r.order_id] = r
            self._cap_rejected()
        for a in rec.sends:  # records of an older layout: actions, not message texts
            if type(a) is not tuple and getattr(a, "last_px", None) and getattr(a, "last_qty", None):
                self.last_trades[a.symbol] = a.last_px
        self.earlier_sends.extend(self.last_sends)
        ts = rec.ts
        self.last_sends = [(ts, m) for m in rec.sends]
        self.records += 1

    def _cap_rejected(self) -> None:
        rejected, kept = self.rejected, self.rejected_kept
        if kept is not None:
            while len(rejected) > kept:
                del rejected[next(iter(rejected))]

    @property
    def pending(self) -> list:
        """(record time, message) of each message that may not have been sent, oldest first."""
        return [*self.earlier_sends, *self.last_sends]

    def prune(self, before: float) -> int:
        """Forget finished orders accepted before ``before`` (unix time), and orders refused before it;
        returns how many finished orders."""
        old = [oid for oid, o in self.orders.items()
               if not o.is_open and (o.accepted_at is None or o.accepted_at.timestamp() < before)]
        for oid in old:
            del self.orders[oid]
            self.open_risk.pop(oid, None)
        self.rejected = {oid: r for oid, r in self.rejected.items() if r.received_at.timestamp() >= before}
        return len(old)


class StateLog:
    def __init__(self, directory: Path, fsync: bool = False, rejected_kept: int | None = None):
        self.dir = Path(directory)
        self.rejected_kept = rejected_kept  # refused orders kept at most (the oldest dropped), None: all
        self.snap_path = self.dir / "state.snap"
        self.log_path = self.dir / "state.log"
        self.fsync = fsync
        self._fd: int | None = None
        self.written = 0
        self.bytes_written = 0
        self._pickler = _RecordPickler()

    # ------------------------------------------------------------------ reading
    def recover(self) -> State:
        """Fold the snapshot and every complete record after it."""
        state = self._read_snapshot()
        state.rejected_kept = self.rejected_kept
        state._cap_rejected()
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return state
        pos, n = 0, len(data)
        while pos < n:
            if pos + _HEADER.size > n:
                state.torn = True
                break
            length, crc = _HEADER.unpack_from(data, pos)
            body = data[pos + _HEADER.size:pos + _HEADER.size + length]
            if len(body) < length or zlib.crc32(body) != crc:
                state.torn = True
                break
            try:
                rec = Record(*_loads(body))  # (a record of an older layout has 6 fields: the rest default)
            except Exception as exc:  # noqa: BLE001 - a record that passed its CRC but cannot load
                raise StateLogError(f"{self.log_path}: record at byte {pos} cannot be read: {exc}") from None
            state.apply(rec)
            pos += _HEADER.size + length
        if state.records or state.torn:
            state.clean = False
        return state

    def _read_snapshot(self) -> State:
        try:
            data = self.snap_path.read_bytes()
        except FileNotFoundError:
            return State()
        try:
            snap = _loads(data)
            if snap.get("version") != SNAPSHOT_VERSION:
                raise ValueError(f"unknown snapshot version {snap.get('version')!r}")
            return State(orders=snap["orders"], open_risk=snap["open_risk"], watermarks=snap["watermarks"],
                         controls=snap["controls"], last_trades=snap["last_trades"], clean=snap["clean"],
                         risk_day=snap.get("risk_day"),
                         rejected={r.order_id: r for r in snap.get("rejected", ())})
        except Exception as exc:  # noqa: BLE001
            raise StateLogError(f"{self.snap_path} cannot be read: {exc}; refusing to start without the "
                                "gateway's order state (move the file aside only if you know the orders "
                                "it held are closed)") from None

    # ------------------------------------------------------------------ writing
    def open(self, state: State) -> None:
        """Compact: write ``state`` as the snapshot (not clean: we are running), start an empty log."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_snapshot(state, clean=False)
        self._fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        if self.fsync:
            os.fsync(self._fd)

    def append(self, origin: str | None, seq: int, orders: list, sends: list, controls: tuple | None,
               routes: list, trades: dict | None, risk_day: tuple | None = None, rejected: list = ()) -> None:
        body = self._pickler.dumps((time.time(), origin, seq, orders, sends, controls, routes, trades, risk_day,
                                    list(rejected) if rejected else None))
        buf = _HEADER.pack(len(body), zlib.crc32(body)) + body
        os.write(self._fd, buf)  # one syscall: the record is whole in the page cache, or torn and ignored
        if self.fsync:
            os.fsync(self._fd)
        self.written += 1
        self.bytes_written += len(buf)

    def close(self, state: State) -> None:
        """Clean stop: the snapshot holds everything and says so; the log is emptied."""
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        self._write_snapshot(state, clean=True)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)

    def _write_snapshot(self, state: State, clean: bool) -> None:
        snap = {"version": SNAPSHOT_VERSION, "clean": clean, "orders": state.orders, "open_risk": state.open_risk,
                "watermarks": state.watermarks, "controls": state.controls, "last_trades": state.last_trades,
                "risk_day": state.risk_day, "rejected": list(state.rejected.values())}
        tmp = self.snap_path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            pickle.dump(snap, f, protocol=5)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.snap_path)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

