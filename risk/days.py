"""Trading days: which trading day a moment belongs to, and when the next one starts.

Per-day risk usage (an account's daily notional, a client session's throttle
breaches) belongs to a trading day and starts again at zero when the next one
begins. A trading day begins at a time of day in UTC, its boundary, and lasts
24 hours; it is named by the UTC date it begins on (with a 21:00:00 boundary the
day that begins on Sunday at 21:00 UTC is "Sunday's" and lasts until Monday
21:00). With the default boundary, 00:00:00, it is simply the UTC date.

Pure functions of the time they are given: the caller's clock decides, so a
fake clock moves a test across a boundary without waiting.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

MIDNIGHT = time(0)
_DAY = timedelta(days=1)


def _offset(start: time) -> timedelta:
    return timedelta(hours=start.hour, minutes=start.minute, seconds=start.second)


def trading_day(now: datetime, start: time = MIDNIGHT) -> date:
    """The trading day ``now`` falls in, for days beginning at ``start`` (UTC)."""
    return (now.astimezone(timezone.utc) - _offset(start)).date()


def day_begins(day: date, start: time = MIDNIGHT) -> datetime:
    """The moment trading day ``day`` begins."""
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + _offset(start)


def next_boundary(now: datetime, start: time = MIDNIGHT) -> datetime:
    """The first moment after ``now`` at which a new trading day begins."""
    return day_begins(trading_day(now, start), start) + _DAY
