"""Why a venue session does not log on: said once, clearly, then rate-limited.

quickfix reconnects a venue session every ``reconnect_s`` and, when the venue
refuses the logon, says only that the session logged out. The venue's answer is
one of three, by the ``reason`` label of ``fixgw_venue_logon_failures_total``:

- ``logout``: a Logout before its Logon answer, usually with a Text (a wrong
  password, CompIDs it knows but does not expect from us, outside its hours);
- ``disconnect``: the connection closed with no answer, which is what FIX engines
  do with a Logon for a session they do not know (wrong SenderCompID,
  TargetCompID or FIX version);
- ``timeout``: no answer within quickfix's logon timeout (not a FIX port, or the
  venue is stuck).

The first failure after a logon (or start), and any failure unlike the last one
logged, is one WARNING naming the CompID pair and FIX version we tried, the
venue's answer and what to check. Repeats of the same failure are logged at
debug and summed up in one WARNING per ``summary_interval_s``. The next logon
logs the recovery. The admin API shows the last failure per venue
(``fixgw sessions show VENUE1``).

The calls come from quickfix callbacks (sessions.gateway_app.VenueApplication):
they take one short lock, log and count, and never block.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from gateway.observability import metrics
from gateway.observability.logs import fields

log = logging.getLogger("fixgw.sessions")

LOGOUT, DISCONNECT, TIMEOUT = "logout", "disconnect", "timeout"
SUMMARY_INTERVAL_S = 60.0


def _utc(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


@dataclass
class _Venue:
    begin: str = "?"
    sender: str = "?"
    target: str = "?"
    connecting: bool = False  # quickfix is opening a connection: the next Logon is an attempt
    attempting: bool = False  # our Logon was sent on a connection that has not ended
    logged_on: bool = False  # ... and it was answered
    logout_text: str | None = None  # the venue's Logout (58) before its Logon answer
    timed_out: bool = False
    failures: int = 0  # failed attempts since the last logon (or start)
    first_failure_at: float = 0.0  # wall clock
    last: dict | None = None  # the last failure: at, reason, detail, failed_attempts
    logged_key: tuple | None = None  # (reason, text) of the last failure logged at warning
    logged_at: float = 0.0  # monotonic
    since_logged: int = 0  # failures since that line


class LogonWatch:
    def __init__(self, summary_interval_s: float = SUMMARY_INTERVAL_S, clock=time.monotonic, wall=time.time):
        self.summary_interval_s = summary_interval_s
        self._clock, self._wall = clock, wall
        self._lock = threading.Lock()
        self._venues: dict[str, _Venue] = {}

    def _venue(self, name: str) -> _Venue:
        v = self._venues.get(name)
        if v is None:
            v = self._venues[name] = _Venue()
        return v

    # ------------------------------------------------------------ from the session's callbacks
    def connecting(self, name: str) -> None:
        """quickfix's "Connecting to ..." event: a connection to the venue is being opened."""
        with self._lock:
            self._venue(name).connecting = True

    def attempt(self, name: str, begin: str, sender: str, target: str) -> None:
        """Our Logon is going out (toAdmin). Only the first after a connection is opened is an attempt:
        quickfix 1.16 also generates one right after a disconnect, with no connection, and drops it."""
        with self._lock:
            v = self._venue(name)
            if not v.connecting:
                return
            v.connecting = False
            v.begin, v.sender, v.target = begin, sender, target
            v.attempting, v.logged_on, v.logout_text, v.timed_out = True, False, None, False

    def logout_received(self, name: str, text: str) -> None:
        """The venue sent a Logout (fromAdmin); a refusal if it came before its Logon answer."""
        with self._lock:
            v = self._venues.get(name)
            if v is not None and v.attempting and not v.logged_on:
                v.logout_text = text

    def timed_out(self, name: str) -> None:
        """quickfix's "Timed out waiting for logon response" event."""
        with self._lock:
            v = self._venues.get(name)
            if v is not None and v.attempting and not v.logged_on:
                v.timed_out = True

    def logged_on(self, name: str) -> None:
        """onLogon: the attempt succeeded; after failures, say so once."""
        with self._lock:
            v = self._venue(name)
            v.logged_on = True
            failures, since = v.failures, v.first_failure_at
            v.failures, v.logged_key, v.since_logged = 0, None, 0
        if failures:
            log.warning("venue %s logged on as SenderCompID=%s TargetCompID=%s (%s) after %d failed logon "
                        "attempt(s) since %s", name, v.sender, v.target, v.begin, failures, _utc(since),
                        extra=fields(session=name))

    def ended(self, name: str) -> bool:
        """onLogout: True if the session had not logged on (a failed attempt is logged and counted here; the
        Logon quickfix drops after a disconnect is nothing); False for a session that was logged on."""
        with self._lock:
            v = self._venues.get(name)
            if v is None:
                return False
            if not v.attempting:
                return not v.logged_on
            v.attempting = False
            if v.logged_on:
                v.logged_on = False
                return False
            reason = LOGOUT if v.logout_text is not None else TIMEOUT if v.timed_out else DISCONNECT
            now, wall = self._clock(), self._wall()
            if not v.failures:
                v.first_failure_at = wall
            v.failures += 1
            detail = _detail(reason, v.logout_text)
            v.last = {"at": _utc(wall), "reason": reason, "detail": detail, "failed_attempts": v.failures}
            key = (reason, v.logout_text)
            if key != v.logged_key:
                line = "first"
            elif now - v.logged_at >= self.summary_interval_s:
                line = "summary"
            else:
                line = None
            if line is None:
                v.since_logged += 1
            else:
                repeats, v.since_logged, v.logged_key, v.logged_at = v.since_logged + 1, 0, key, now
            failures, since, pair = v.failures, v.first_failure_at, (v.sender, v.target, v.begin)
        metrics.VENUE_LOGON_FAILURES.labels(name, reason).inc()
        extra = fields(session=name, reason=reason)
        if line == "first":
            log.warning("venue %s %s as SenderCompID=%s TargetCompID=%s (%s)%s; check %s", name, _refused(reason),
                        *pair, _answer(reason, detail), _check(reason, name), extra=extra)
        elif line == "summary":
            log.warning("venue %s still refuses our logon as SenderCompID=%s TargetCompID=%s (%s): %d failed "
                        "attempt(s) since %s, %d since the last line like this, the last: %s", name, *pair, failures,
                        _utc(since), repeats, detail, extra=extra)
        else:
            log.debug("venue %s refused our logon again (%s), %d failed attempt(s) since %s", name, detail,
                      failures, _utc(since), extra=extra)
        return True

    # ------------------------------------------------------------ for the admin API
    def last_failure(self, name: str) -> dict | None:
        """The last failed logon attempt (at, reason, detail, failed_attempts since the last logon), or None."""
        with self._lock:
            v = self._venues.get(name)
            return dict(v.last) if v is not None and v.last is not None else None


def _detail(reason: str, text: str | None) -> str:
    if reason == LOGOUT:
        return f"Logout text '{text}'" if text else "Logout without a Text"
    if reason == TIMEOUT:
        return "no answer within the logon timeout"
    return "connection closed with no answer"


def _refused(reason: str) -> str:
    if reason == LOGOUT:
        return "refused our logon"
    if reason == TIMEOUT:
        return "did not answer our logon"
    return "closed the connection without answering our logon"


def _answer(reason: str, detail: str) -> str:
    if reason == LOGOUT:
        return f": {detail}"
    if reason == TIMEOUT:
        return " within the logon timeout"
    return " (what a FIX engine does with a Logon for a session it does not know)"


def _check(reason: str, name: str) -> str:
    where = f"(gateway.cfg comp_id or venue_comp_id, [venues.{name}])"
    if reason == LOGOUT:
        return f"the CompIDs, FIX version and Username/Password agreed with the venue {where}"
    if reason == TIMEOUT:
        return f"that host and port are the venue's FIX port {where}"
    return f"the SenderCompID, TargetCompID and FIX version agreed with the venue {where}"
