"""What the state log holds and how it is encoded, whichever log keeps it (a file, gateway/state/log.py, or
PostgreSQL, gateway/state/pglog.py): a record, the state records fold into, the snapshot, and the unpickler both
read them back with.

Records are packed by msgspec (MessagePack, in C, both ways): orders as the tuples of their fields
(``orders.packed``; without their routing decisions, which the records carry once), decoded into exact types.
A packed record starts with the byte 0x01, its layout. Records of earlier versions were pickled (they start
with 0x80) and are still read, with an unpickler that only accepts the gateway's own domain types and a few
standard ones; snapshots are still pickled that way. A tampered state file or row cannot run code; it can only
fail to load, and start-up stops with a clear error naming where it was.
"""
from __future__ import annotations

import io
import pickle
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from risk.daily_usage import fold_day_changes
from risk.state import open_order_from_state_log, open_order_state_log_form
from orders import actions as _actions, commands as _commands, model as _model, records as _records
from orders.records import (
    rejected_from_state_log, rejected_state_log_form, route_from_state_log, route_state_log_form,
)
from orders.packed import ORDER_FIELDS_TYPE, order_fields, order_from_fields

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
    """The state log cannot be read (or, in the database, written); start-up must stop rather than trade on a
    wrong picture."""


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


def loads(data: bytes):
    """Unpickle state log data, refusing anything but the gateway's own domain types and a few standard ones."""
    return _SafeUnpickler(io.BytesIO(data)).load()


# A packed record (layout 1): 0x01, then the MessagePack of
# (time, origin, seq, [(order fields, open order form | None)], [(role, session, text)], controls, [decision form],
#  {symbol: last price} | None, per-day risk changes | None, [refusal form] | None).
_PACKED = b"\x01"
_RECORD_TYPE = tuple[float, str | None, int, list[tuple[ORDER_FIELDS_TYPE, list | None]], list[tuple[str, str, str]],
                     tuple | None, list[list], dict[str, Decimal] | None,
                     tuple[str | None, bool, dict[str, str], dict[str, str]] | None, list[list] | None]
_DECODER = msgspec.msgpack.Decoder(_RECORD_TYPE)


class RecordEncoder:
    """Packs records (the arguments of ``StateLog.append``) with msgspec: the orders' fields as they are, routing
    decisions, open orders and refusals in their plain forms (``PlainForm``)."""

    def __init__(self):
        self._encode = msgspec.msgpack.Encoder(decimal_format="string").encode

    def record(self, origin: str | None, seq: int, orders: list, sends: list, controls: tuple | None,
               routes: list, trades: dict | None, risk_day: tuple | None = None, rejected=()) -> bytes:
        """The body of one record, stamped with the time now."""
        return _PACKED + self._encode((
            time.time(), origin, seq,
            [(order_fields(o), None if open_order is None else open_order_state_log_form(open_order))
             for o, open_order in orders],
            sends, controls, [route_state_log_form(d) for d in routes], trades, risk_day,
            [rejected_state_log_form(r) for r in rejected] if rejected else None))


def load_record(body: bytes) -> Record:
    """A record's body read back: packed (``RecordEncoder``), or pickled by an earlier version (a record of an
    older layout still has 6 fields: the rest default)."""
    if body[:1] == _PACKED:
        return _unpack(body)
    return Record(*loads(body))


def _unpack(body: bytes) -> Record:
    ts, origin, seq, orders, sends, controls, routes, trades, risk_day, rejected = _DECODER.decode(
        memoryview(body)[1:])
    return Record(ts, origin, seq,
                  [(order_from_fields(o), None if open_order is None else open_order_from_state_log(open_order))
                   for o, open_order in orders],
                  sends, None if controls is None else _tuples(controls), [route_from_state_log(v) for v in routes],
                  trades, risk_day, None if rejected is None else [rejected_from_state_log(v) for v in rejected])


def _tuples(value):
    """Lists back into the tuples they were (the operator switches are tuples all the way down)."""
    if type(value) in (list, tuple):
        return tuple(_tuples(v) for v in value)
    return value


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
    risk_day: tuple | None = None  # per-day risk usage changed by this command (``RiskState.day_changes``)
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


def snapshot_bytes(state: State, clean: bool) -> bytes:
    """The snapshot of ``state``: everything a start-up needs, whole; ``clean``: written at a clean stop."""
    snap = {"version": SNAPSHOT_VERSION, "clean": clean, "orders": state.orders, "open_risk": state.open_risk,
            "watermarks": state.watermarks, "controls": state.controls, "last_trades": state.last_trades,
            "risk_day": state.risk_day, "rejected": list(state.rejected.values())}
    return pickle.dumps(snap, protocol=5)


def load_snapshot(data: bytes) -> State:
    """A snapshot read back; raises (an UnpicklingError, a ValueError, a KeyError) if it cannot be: the caller
    names where it was in a StateLogError."""
    snap = loads(data)
    if snap.get("version") != SNAPSHOT_VERSION:
        raise ValueError(f"unknown snapshot version {snap.get('version')!r}")
    return State(orders=snap["orders"], open_risk=snap["open_risk"], watermarks=snap["watermarks"],
                 controls=snap["controls"], last_trades=snap["last_trades"], clean=snap["clean"],
                 risk_day=snap.get("risk_day"),
                 rejected={r.order_id: r for r in snap.get("rejected", ())})
