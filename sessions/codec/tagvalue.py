"""FIX text both directions share: the versions, tag=value strings split into fields, numbers and
timestamps as FIX writes them, and the MDEntryType values.

Pure string work, no binding call: a received message is read with one ``toString()`` and split here
(``sessions.codec`` package docstring, "Cost model").
"""
from __future__ import annotations

import time
from decimal import Decimal

FIX42 = "FIX.4.2"
FIX44 = "FIX.4.4"
FIX50 = "FIX.5.0"
VERSIONS = (FIX42, FIX44, FIX50)

# BeginString on the wire for each application version.
BEGIN_STRING = {FIX42: "FIX.4.2", FIX44: "FIX.4.4", FIX50: "FIXT.1.1"}
# DefaultApplVerID (1137) for FIXT.1.1 sessions.
APPL_VER_ID = {FIX50: "7"}

# What ``fmt`` writes exactly (a Decimal has 28 significant digits): the configuration's intake limits
# ([limits] max_qty, max_price, max_decimals) may be set at most to these.
LIMIT_CEILING = Decimal(10) ** 15
DECIMALS_CEILING = 10
_DECIMAL_PLACES = Decimal(1).scaleb(-DECIMALS_CEILING)  # 1e-10


_FMT_CACHE: dict[Decimal, str] = {}  # prices and quantities repeat: most calls are one dict read
_FMT_CACHE_MAX = 50_000


def fmt(value: Decimal) -> str:
    """A Decimal as a FIX float field: no exponent, no trailing zeros."""
    if not value:
        return "0"  # also for -0, which equals 0 and so must not be cached as "-0"
    text = _FMT_CACHE.get(value)  # equal values (100, 100.0) format alike
    if text is not None:
        return text
    if value == value.to_integral_value():
        text = format(value.quantize(Decimal(1)), "f")
    else:
        text = format(value.quantize(_DECIMAL_PLACES).normalize(), "f")
    if len(_FMT_CACHE) >= _FMT_CACHE_MAX:
        _FMT_CACHE.clear()
    _FMT_CACHE[value] = text
    return text


_stamp = (-1, "")  # (unix second, its "YYYYMMDD-HH:MM:SS."), replaced as one object: safe across threads


def utc_timestamp() -> str:
    """UTCTimestamp with milliseconds, e.g. 20261124-06:31:02.123 (the date and time formatted once a second)."""
    global _stamp
    second, milli = divmod(time.time_ns() // 1_000_000, 1000)
    known, prefix = _stamp
    if second != known:
        prefix = time.strftime("%Y%m%d-%H:%M:%S.", time.gmtime(second))
        _stamp = (second, prefix)
    return f"{prefix}{milli:03d}"


# --------------------------------------------------------------------------- field helpers
SOH = "\x01"
Fields = dict[int, str]


def parse_fields(raw: str) -> Fields:
    """tag -> value for a raw FIX string (the last value wins for a repeated tag)."""
    out: Fields = {}
    for part in raw.split(SOH):
        if part:
            tag, _, value = part.partition("=")
            out[int(tag)] = value
    return out


def parse_pairs(raw: str) -> list[tuple[int, str]]:
    """(tag, value) in wire order, repeated tags kept: for messages with repeating groups."""
    out = []
    for part in raw.split(SOH):
        if part:
            tag, _, value = part.partition("=")
            out.append((int(tag), value))
    return out


def fields(msg) -> Fields:
    """The fields of a quickfix Message (header, body, trailer), read with one binding call."""
    if isinstance(msg, dict):
        return msg
    return parse_fields(msg.toString())


BID, OFFER = "0", "1"  # MDEntryType (269), in market data requests, snapshots and incrementals
