"""Per-day risk usage: each account's daily notional on the accounts' trading day, the trading day of each client
session's throttle breaches, and what of it changed since the state log last took it.

An account's daily notional (``used``) is the notional it filled on ``day`` (``filled``) plus its open orders'
notional; the risk state books both into it as orders open, fill and close. ``start_day`` and
``start_session_day`` move the usage to a new trading day (risk/days.py says which; the engine calls them when
its clock has passed a boundary). What changed is kept as plain values for the state log (``changes``, folded
there by ``fold_day_changes``), so a restart after a roll starts from the new day's usage, not from every fill
of the orders it still knows (``load_saved``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Callable

ZERO = Decimal(0)


@dataclass(slots=True)
class DailyUsage:
    used: dict[str, Decimal] = field(default_factory=dict)  # per account: ``filled`` + open notional
    filled: dict[str, Decimal] = field(default_factory=dict)  # per account: notional filled on ``day``
    day: date | None = None  # the trading day of the accounts' usage (None: not known yet)
    session_days: dict[str, date] = field(default_factory=dict)  # session -> trading day of its breach count
    dirty: bool = False  # changed since the state log last took it (``changes``)
    _whole: bool = False  # the day moved on: the accounts' usage is written whole
    _filled_changed: set[str] = field(default_factory=set)
    _sessions_changed: set[str] = field(default_factory=set)

    def firm_used(self) -> Decimal:
        """Every account's daily notional together (``[firm] max_daily_notional``): a sum over the accounts."""
        return sum(self.used.values(), ZERO)

    # ------------------------------------------------------------------ booking
    def add_open(self, account: str, notional: Decimal) -> None:
        """Open notional of ``account`` grew by ``notional`` (negative: it was released)."""
        self.used[account] = self.used.get(account, ZERO) + notional

    def add_fill(self, account: str, notional: Decimal) -> None:
        """``account`` filled ``notional`` today."""
        self.used[account] = self.used.get(account, ZERO) + notional
        self.filled[account] = self.filled.get(account, ZERO) + notional
        self._filled_changed.add(account)
        self.dirty = True

    def restart(self, open_notional: dict[str, Decimal]) -> None:
        """Start of a trading day: daily notional restarts from the still-open orders' notional."""
        self.filled = {}
        self.used = open_notional

    # ------------------------------------------------------------------ trading days
    def start_day(self, day: date, open_notional: Callable[[], dict[str, Decimal]]) -> bool:
        """The accounts' usage moves to trading day ``day``: daily notional restarts from the still-open orders
        (``open_notional``: an order carried over counts with its open quantity, not with what filled before).

        Returns True when an earlier day's usage was dropped. A first day (none known: a new state, or one
        restored from a state log that did not record it) keeps what is counted, the safe side. A day at or
        before the current one (a clock stepping back) changes nothing.
        """
        old = self.day
        if old is not None and day <= old:
            return False
        self.day = day
        self._whole = True
        self.dirty = True
        if old is None:
            return False
        self.restart(open_notional())
        return True

    def start_session_day(self, session: str, day: date) -> bool:
        """A session's usage moves to trading day ``day``; True when an earlier day was left (the caller drops
        its breaches), False when nothing rolled (the session had no day yet, or ``day`` is not later)."""
        old = self.session_days.get(session)
        if old is not None and day <= old:
            return False
        self.session_days[session] = day
        self._sessions_changed.add(session)
        self.dirty = True
        return old is not None

    # ------------------------------------------------------------------ the state log's part
    def changes(self) -> tuple | None:
        """What changed since the last call, as plain values for the state log, or None:
        (day ISO or None, whole, {account: notional filled today, text}, {session: its day ISO}).
        ``whole``: the accounts' part is all of them (the day moved on), else only those that changed."""
        if not self.dirty:
            return None
        filled = self.filled
        accounts = filled if self._whole else {a: filled.get(a, ZERO) for a in self._filled_changed}
        out = (None if self.day is None else self.day.isoformat(), self._whole,
               {a: str(v) for a, v in accounts.items()},
               {s: self.session_days[s].isoformat() for s in self._sessions_changed if s in self.session_days})
        self.clear_changes()
        return out

    def saved(self) -> dict | None:
        """All of it as plain values, in the form ``fold_day_changes`` builds (for a snapshot)."""
        if self.day is None and not self.session_days:
            return None
        return {"day": None if self.day is None else self.day.isoformat(),
                "filled": {a: str(v) for a, v in self.filled.items()},
                "sessions": {s: d.isoformat() for s, d in self.session_days.items()}}

    def clear_changes(self) -> None:
        self.dirty = self._whole = False
        self._filled_changed.clear()
        self._sessions_changed.clear()

    def load_saved(self, saved: dict | None, open_notional: dict[str, Decimal]) -> None:
        """The usage as the state log last recorded it (``fold_day_changes``); daily notional = notional filled
        on that day + ``open_notional`` (the restored open orders'). None (a state log of a version that did
        not record it): the counts rebuilt from the orders stay, and the day is unknown until the engine sets
        it."""
        if not saved:
            self.clear_changes()
            return
        self.day = date.fromisoformat(saved["day"]) if saved.get("day") else None
        self.filled = {a: Decimal(v) for a, v in saved.get("filled", {}).items()}
        used = open_notional
        for a, v in self.filled.items():
            used[a] = used.get(a, ZERO) + v
        self.used = used
        self.session_days = {s: date.fromisoformat(d) for s, d in saved.get("sessions", {}).items()}
        self.clear_changes()

    # ------------------------------------------------------------------ RiskState.snapshot's part
    def snapshot(self) -> dict:
        return {"daily_used": {a: str(v) for a, v in self.used.items()},
                "daily_filled": {a: str(v) for a, v in self.filled.items()},
                "day": None if self.day is None else self.day.isoformat(),
                "session_days": {s: d.isoformat() for s, d in self.session_days.items()}}

    @classmethod
    def from_snapshot(cls, data: dict) -> "DailyUsage":
        return cls({a: Decimal(v) for a, v in data.get("daily_used", {}).items()},
                   {a: Decimal(v) for a, v in data.get("daily_filled", {}).items()},
                   date.fromisoformat(data["day"]) if data.get("day") else None,
                   {s: date.fromisoformat(d) for s, d in data.get("session_days", {}).items()})


def fold_day_changes(saved: dict | None, change: tuple) -> dict:
    """The state log's picture of per-day usage (plain values) with one ``DailyUsage.changes`` applied."""
    day, whole, accounts, sessions = change
    if saved is None:
        saved = {"day": day, "filled": {}, "sessions": {}}
    if whole:
        saved["filled"] = dict(accounts)
    else:
        saved["filled"].update(accounts)
    saved["day"] = day
    saved["sessions"].update(sessions)
    return saved
