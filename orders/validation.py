"""Checks every order must pass whoever receives it (the gateway's core, the venue simulator)."""
from __future__ import annotations

from decimal import Decimal

from orders.model import OrdType, RejectCode


def order_shape_problem(qty: Decimal, ord_type: OrdType, price: Decimal | None) -> tuple[RejectCode, str] | None:
    """(reject code, reason) if the order's quantity, type or price make no sense, else None."""
    if qty <= 0:
        return RejectCode.INCORRECT_QUANTITY, f"OrderQty must be positive, got {qty}"
    if ord_type in (OrdType.STOP, OrdType.STOP_LIMIT):
        return RejectCode.UNSUPPORTED_ORDER_CHARACTERISTIC, f"OrdType {ord_type.name.lower()} is not supported"
    if ord_type is OrdType.LIMIT:
        if price is None:
            return RejectCode.OTHER, "limit order without Price (44)"
        if price <= 0:
            return RejectCode.OTHER, f"Price must be positive, got {price}"
    return None
