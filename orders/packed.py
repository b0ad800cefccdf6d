"""An order as the tuple of its fields, its children's as tuples too: what the state log packs in C.

The state log writes every order a command touched (gateway/state/records.py). Making plain values of its fields
in Python first (``order_state_log_form``: Decimals as text, enums as codes) and pickling them was most of what a
record cost. Records are now packed by msgspec (MessagePack), which writes Decimals as text, enums as their values
and datetimes as timestamps in C, from the fields as they are (``order_fields``), and reads them back into the
exact types given here (``ORDER_FIELDS_TYPE``, taken from the dataclasses' annotations), again in C; the objects
are then made from those tuples (``order_from_fields``).

A datetime with a time zone comes back as the same instant in UTC (the gateway's are all UTC); one without
comes back without. The types must say exactly what the fields hold: a value of another type fails to decode,
and start-up stops naming the record rather than trade on a wrong picture. Two fields are annotated only as
``tuple`` and are given here in full. A change of the fields (one added, removed, retyped) changes what old records decode into: give
records a new layout then (gateway/state/records.py), and keep reading the old one.
"""
from __future__ import annotations

import typing

from orders.model import CxlRejCode
from orders.states import (
    _CHILD_FIELDS, _CHILD_GET, _CHILDREN, _SLIM, _SLIM_GET, Child, Event, Order, order_from_slim,
)


def order_fields(order: Order) -> list:
    """The order's fields (``Order._slim_fields``: all but its routing decisions), each child as the tuple of its
    fields; values as they are (msgspec packs Decimals, enums, datetimes and the replace terms itself)."""
    v = list(_SLIM_GET(order))
    v[_CHILDREN] = [_CHILD_GET(c) for c in v[_CHILDREN]]
    return v


def order_from_fields(values) -> Order:
    """The order back from ``order_fields``'s values, decoded as ``ORDER_FIELDS_TYPE``."""
    return order_from_slim(list(values))


def _fields_type(types) -> type:
    """tuple[T1, T2, ...]"""
    return tuple.__class_getitem__(tuple(types))


_CHILD_HINTS = typing.get_type_hints(Child)
CHILD_FIELDS_TYPE = _fields_type(_CHILD_HINTS[name] for name in _CHILD_FIELDS)
_ORDER_HINTS = typing.get_type_hints(Order)
_SPELLED_OUT = {
    "children": list[CHILD_FIELDS_TYPE],
    "refusal": tuple[CxlRejCode, str | None, str | None] | None,  # a venue's refused cancel (desk/bookings.py)
    "released": tuple[Event, str | None, str | None] | None,  # how quantity last stopped working (desk/lifecycle.py)
}
ORDER_FIELDS_TYPE = _fields_type(_SPELLED_OUT.get(name, _ORDER_HINTS[name]) for name in _SLIM)
