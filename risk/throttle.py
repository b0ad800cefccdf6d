"""The throttle's memory: the recent message times of each client session and account, each session's breaches
(on its trading day) and the sessions those breaches disabled.

The limits themselves are rules (``risk/rules.py``) and the verdict is a check (``risk/checks.py``); this only
counts. Times are the caller's clock, non-decreasing per session and account.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(slots=True)
class Throttle:
    session_times: dict[str, deque] = field(default_factory=dict)  # session -> deque[datetime]
    account_times: dict[str, deque] = field(default_factory=dict)  # account -> deque[datetime]
    breaches: dict[str, int] = field(default_factory=dict)  # session -> breaches on its trading day
    disabled: set[str] = field(default_factory=set)  # sessions disabled by their breaches

    def count(self, session: str, now: datetime, window: timedelta, account: str | None = None) -> None:
        """Count one inbound application message for its session and, when it has one, its account; forgets
        times older than ``window``."""
        _count_in(self.session_times, session, now, window)
        if account is not None:
            _count_in(self.account_times, account, now, window)

    def session_count(self, session: str, now: datetime, window: timedelta) -> int:
        return _in_window(self.session_times.get(session), now, window)

    def account_count(self, account: str, now: datetime, window: timedelta) -> int:
        return _in_window(self.account_times.get(account), now, window)

    def record_breach(self, session: str, disable_after: int | None) -> bool:
        """Count a throttle breach; returns True when this breach disabled the session."""
        n = self.breaches.get(session, 0) + 1
        self.breaches[session] = n
        if disable_after is not None and n >= disable_after and session not in self.disabled:
            self.disabled.add(session)
            return True
        return False

    def enable(self, session: str) -> None:
        """Operator action: re-enable a session disabled by throttle breaches and reset its count."""
        self.disabled.discard(session)
        self.breaches.pop(session, None)

    def drop_breaches(self, session: str) -> int:
        """A new trading day for the session: its breach count restarts (a disabled session stays disabled);
        returns the breaches dropped."""
        return self.breaches.pop(session, 0)

    # ------------------------------------------------------------------ RiskState.snapshot's part
    def snapshot(self) -> dict:
        return {"msg_times": {s: [t.isoformat() for t in ts] for s, ts in self.session_times.items()},
                "account_msg_times": {a: [t.isoformat() for t in ts] for a, ts in self.account_times.items()},
                "throttle_breaches": dict(self.breaches),
                "disabled_sessions": sorted(self.disabled)}

    @classmethod
    def from_snapshot(cls, data: dict) -> "Throttle":
        return cls({s: deque(datetime.fromisoformat(t) for t in ts) for s, ts in data.get("msg_times", {}).items()},
                   {a: deque(datetime.fromisoformat(t) for t in ts)
                    for a, ts in data.get("account_msg_times", {}).items()},
                   dict(data.get("throttle_breaches", {})),
                   set(data.get("disabled_sessions", [])))


def _count_in(book: dict[str, deque], key: str, now: datetime, window: timedelta) -> None:
    times = book.get(key)
    if times is None:
        times = book[key] = deque()
    times.append(now)
    cutoff = now - window
    while times and times[0] <= cutoff:
        times.popleft()


def _in_window(times: deque | None, now: datetime, window: timedelta) -> int:
    if not times:  # non-decreasing times, pruned by count
        return 0
    cutoff = now - window
    n = len(times)
    for t in times:  # oldest first: usually already pruned by count
        if t > cutoff:
            break
        n -= 1
    return n
