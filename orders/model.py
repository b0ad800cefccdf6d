"""Order domain vocabulary: the enumerations every command, action and order uses, and their plain-value form.

Pure Python, no quickfix. Enum values are the FIX code points where FIX has a
version-independent one (Side, OrdType, TimeInForce, OrdStatus); per-version
differences (ExecType, OrdRejReason) are resolved by ``sessions.codec``.

Prices and quantities are ``Decimal``; nothing here ever holds a float.
"""
from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from operator import attrgetter


def compact_pickle(cls):
    """Pickle a slots dataclass (frozen or not) as a plain tuple of its fields.

    The state log pickles commands' results on every order; the ``__getstate__``
    that ``dataclass(frozen=True, slots=True)`` adds walks ``fields()`` in Python and
    was most of that cost. ``attrgetter`` builds the tuple in C.
    """
    names = tuple(f.name for f in fields(cls))
    get = attrgetter(*names) if len(names) > 1 else (lambda obj, _g=attrgetter(names[0]): (_g(obj),))
    setter = object.__setattr__

    def __getstate__(self):
        return get(self)

    def __setstate__(self, state):
        for name, value in zip(names, state):
            setter(self, name, value)

    cls.__getstate__ = __getstate__
    cls.__setstate__ = __setstate__
    return cls


class Side(str, Enum):
    BUY = "1"
    SELL = "2"
    SELL_SHORT = "5"


class OrdType(str, Enum):
    MARKET = "1"
    LIMIT = "2"
    STOP = "3"
    STOP_LIMIT = "4"


class TimeInForce(str, Enum):
    DAY = "0"
    GTC = "1"
    IOC = "3"
    FOK = "4"


class OrdStatus(str, Enum):
    NEW = "0"
    PARTIALLY_FILLED = "1"
    FILLED = "2"
    DONE_FOR_DAY = "3"
    CANCELED = "4"
    PENDING_CANCEL = "6"
    REJECTED = "8"
    PENDING_NEW = "A"
    EXPIRED = "C"
    PENDING_REPLACE = "E"


class ExecKind(str, Enum):
    """What an execution report says happened; the codec maps it to ExecType per version."""

    PENDING_NEW = "pending_new"
    NEW = "new"
    TRADE = "trade"
    PENDING_CANCEL = "pending_cancel"
    CANCELED = "canceled"
    PENDING_REPLACE = "pending_replace"
    REPLACED = "replaced"
    REJECTED = "rejected"
    DONE_FOR_DAY = "done_for_day"
    EXPIRED = "expired"
    ORDER_STATUS = "order_status"
    RESTATED = "restated"  # unsolicited: the order's state as it really is (e.g. after a refused gateway cancel)


class RejectCode(str, Enum):
    """Why an order was rejected; mapped to OrdRejReason (103) per FIX version."""

    UNKNOWN_SYMBOL = "unknown_symbol"
    EXCHANGE_CLOSED = "exchange_closed"
    EXCEEDS_LIMIT = "exceeds_limit"
    UNKNOWN_ORDER = "unknown_order"
    DUPLICATE_ORDER = "duplicate_order"
    INCORRECT_QUANTITY = "incorrect_quantity"
    UNSUPPORTED_ORDER_CHARACTERISTIC = "unsupported_order_characteristic"
    UNKNOWN_ACCOUNT = "unknown_account"
    VENUE = "venue"
    OTHER = "other"


class CxlRejCode(str, Enum):
    """Why a cancel/replace was refused; mapped to CxlRejReason (102)."""

    TOO_LATE = "too_late"
    UNKNOWN_ORDER = "unknown_order"
    ALREADY_PENDING = "already_pending"
    DUPLICATE_CLORDID = "duplicate_clordid"
    OTHER = "other"


class CxlRejResponseTo(str, Enum):
    CANCEL = "1"
    REPLACE = "2"


class MassCancelScope(str, Enum):
    """MassCancelRequestType (530) values the gateway supports."""

    SYMBOL = "1"
    ALL = "7"


class MDUpdateAction(str, Enum):
    """MDUpdateAction (279) of an incremental market data entry."""

    NEW = "0"
    CHANGE = "1"
    DELETE = "2"



# --------------------------------------------------------------------------- plain-value forms
_UTC = timezone.utc
_PLAIN_ENUMS = {"Side": Side, "OrdType": OrdType, "TimeInForce": TimeInForce, "OrdStatus": OrdStatus,
                "RejectCode": RejectCode}


class PlainForm:
    """Field values of a dataclass as plain values, for the state log, and back.

    Decimals become their text (``str`` round-trips exactly, exponent and trailing zeros included), the
    order enums their FIX codes, and UTC datetimes their 10-byte pickled state. A pickler copies such values
    in C; a Decimal, an enum or a datetime costs it a reduce call and a class reference each, which was most
    of the state log's time (bench/state_log.py). ``load`` also takes values that are still objects (the
    forms of older state logs), so one reader serves both.
    """

    def __init__(self, cls, names: tuple[str, ...]):
        kinds = {f.name: str(f.type).strip('"').replace(" | None", "") for f in fields(cls)}
        self.decimals = tuple(i for i, n in enumerate(names) if kinds[n] == "Decimal")
        self.times = tuple(i for i, n in enumerate(names) if kinds[n] == "datetime")
        self.enums = tuple((i, _PLAIN_ENUMS[kinds[n]]) for i, n in enumerate(names) if kinds[n] in _PLAIN_ENUMS)

    def dump(self, v: list) -> list:
        """Make ``v`` (the values, in ``names`` order) plain, in place."""
        for i in self.decimals:
            x = v[i]
            if x is not None:
                v[i] = str(x)
        for i, _ in self.enums:
            x = v[i]
            if x is not None:
                v[i] = x._value_
        for i in self.times:
            x = v[i]
            if x is not None and x.tzinfo is _UTC:
                v[i] = x.__reduce__()[1][0]
        return v

    def load(self, v: list) -> list:
        """Turn ``dump``'s values (or an older form's, whose Decimals and datetimes are objects) back, in place.
        A form written before trailing fields were added is shorter: those fields are left to their defaults."""
        n = len(v)
        for i in self.decimals:
            if i < n and type(v[i]) is str:
                v[i] = Decimal(v[i])
        for i, enum in self.enums:
            if i < n and v[i] is not None:
                v[i] = enum(v[i])
        for i in self.times:
            if i < n and type(v[i]) is bytes:
                v[i] = datetime(v[i], _UTC)
        return v
