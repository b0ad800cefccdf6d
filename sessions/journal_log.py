"""A quickfix LogFactory written in Python that feeds the journal.

quickfix calls ``Log.onIncoming`` with every raw message it reads (before it is
parsed or validated) and ``Log.onOutgoing`` with every raw message it writes,
resends included, so this is the one place that sees each session's wire traffic
byte for byte. (The Application callbacks miss inbound messages that fail
validation.) ``onEvent`` carries the engine's session events.

Binding facts this depends on (see docs/quickfix-binding.md, proven by
tests/test_quickfix_binding.py):
- ``LogFactory.create`` is called with no argument (the engine-wide log) as well as
  with a SessionID.
- Each ``Log`` must be ``__disown__()``-ed before it is returned. Otherwise SWIG
  records the ownership transfer under a director mutex whose ``Unlock`` frees the
  lock instead of releasing it, and the second session created hangs or crashes.
- Any Python exception escaping a Log method exits the process, so every method
  here is guarded.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Protocol

import quickfix as fix

log = logging.getLogger("fixgw.sessions")


class Sink(Protocol):
    def record(self, session_id: str, direction: str, raw: str) -> None: ...

    def event(self, session_id: str, text: str) -> None: ...


EventHook = Callable[[str, str], None]  # (session key, event text), on the thread that logged it


ErrorHook = Callable[[str, BaseException], None]  # (callback, exception)

# Set by ``onOutgoing`` on the thread that writes a message to the wire. quickfix calls it from inside
# ``sendToTarget`` when, and only when, the session is logged on in quickfix's own view (``Session::sendRaw``
# checks ``isLoggedOn()`` under the session lock); otherwise the message is only stored. So the sender
# clears it before ``sendToTarget`` and reads it after: the one place that decides whether a message it sent
# still needs journaling as stored (sessions/outbound.py), every message exactly once.
WIRE = threading.local()


class JournalLog(fix.Log):
    __slots__ = ("_name", "_record", "_event", "_on_error", "_hook", "_sent")

    def __init__(self, name: str, sink: Sink, on_error: ErrorHook, hook: EventHook | None = None,
                 sent: Callable[[str], None] | None = None):
        super().__init__()
        self._name = name
        self._record = sink.record
        self._event = sink.event
        self._on_error = on_error
        self._hook = hook
        self._sent = sent  # a venue session's SentIndex hook (sessions/sent_index.py)

    def clear(self):  # the journal keeps history across sequence resets
        pass

    def backup(self):
        pass

    def onIncoming(self, raw):
        try:
            self._record(self._name, "I", raw)
        except BaseException as exc:  # noqa: BLE001 - nothing may reach quickfix
            self._failed("onIncoming", exc)

    def onOutgoing(self, raw):
        try:
            WIRE.sent = True
            self._record(self._name, "O", raw)
            if self._sent is not None:
                self._sent(raw)
        except BaseException as exc:  # noqa: BLE001
            self._failed("onOutgoing", exc)

    def onEvent(self, text):
        try:
            self._event(self._name, text)
            if self._hook is not None:
                self._hook(self._name, text)
        except BaseException as exc:  # noqa: BLE001
            self._failed("onEvent", exc)

    def _failed(self, where: str, exc: BaseException) -> None:
        _report(self._on_error, where, exc)


class JournalLogFactory(fix.LogFactory):
    """``on_event`` also sees every engine and session event (the gateway learns each logon's source
    address from quickfix's "Allows connections to the acceptor from ..." event: gateway/security/auth.py)."""

    def __init__(self, sink: Sink, on_error: ErrorHook | None = None, on_event: EventHook | None = None,
                 sent_index=None):
        super().__init__()
        self._sink = sink
        self._on_error = on_error or _log_error
        self._on_event = on_event
        self._sent_index = sent_index  # sessions.sent_index.SentIndex: venue sessions' order messages by MsgSeqNum
        self._logs: list[JournalLog] = []  # strong references for the engine's lifetime

    def create(self, sid=None):
        try:
            name = sid.toString() if sid is not None else "*"
            sent = self._sent_index.hook(name) if self._sent_index is not None and sid is not None else None
            created = JournalLog(name, self._sink, self._on_error, self._on_event, sent)
            created.__disown__()
            self._logs.append(created)
            return created
        except BaseException as exc:  # noqa: BLE001
            _report(self._on_error, "LogFactory.create", exc)
            fallback = fix.NullLog()
            fallback.thisown = False  # same ownership rule as above
            self._logs.append(fallback)
            return fallback

    def destroy(self, created):
        pass  # the engine is going away; our references keep the proxies valid until then


def _log_error(where: str, exc: BaseException) -> None:
    log.error("journal log callback %s failed: %r", where, exc)


def _report(on_error: ErrorHook, where: str, exc: BaseException) -> None:
    """Hand a failure to the error hook; if the hook fails too, log both (nothing may reach quickfix)."""
    try:
        on_error(where, exc)
    except BaseException as again:  # noqa: BLE001
        try:
            _log_error(where, exc)
            log.critical("journal log error hook failed: %r", again)
        except BaseException:  # noqa: BLE001 - logging itself failed: there is nothing left to tell
            pass
