"""The journal's quickfix Log: a failure to journal a message is logged and counted, and never leaves the
callback (an exception escaping a quickfix callback ends the process)."""
from __future__ import annotations

import errno
import logging

from gateway.observability import metrics
from gateway.process.server import journal_log_error
from sessions.journal_log import JournalLogFactory


class FullDisk:
    def record(self, session_id, direction, raw):
        raise OSError(errno.ENOSPC, "No space left on device")

    def event(self, session_id, text):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_message_the_journal_cannot_take_is_logged_and_counted_and_the_callback_returns(caplog):
    factory = JournalLogFactory(FullDisk(), journal_log_error)
    log = factory.create()
    before = metrics.INTERNAL_ERRORS.labels("onIncoming")._value.get()
    with caplog.at_level(logging.ERROR, logger="fixgw.journal"):
        log.onIncoming("8=FIX.4.4\x0135=D\x01")  # nothing raised: quickfix would have ended the process
        log.onOutgoing("8=FIX.4.4\x0135=8\x01")
        log.onEvent("Created session")
    assert metrics.INTERNAL_ERRORS.labels("onIncoming")._value.get() == before + 1
    texts = [r.getMessage() for r in caplog.records]
    assert any("could not journal" in t and "onIncoming" in t and "No space left" in t for t in texts)
    assert len(texts) == 3


def test_an_error_hook_that_fails_itself_does_not_leave_the_callback():
    def broken(where, exc):
        raise RuntimeError("the hook is broken too")

    log = JournalLogFactory(FullDisk(), broken).create()
    log.onIncoming("8=FIX.4.4\x0135=D\x01")
    log.onOutgoing("8=FIX.4.4\x0135=8\x01")
    log.onEvent("Created session")

    class NoSink:  # creating a Log for it fails: the factory hands quickfix a NullLog instead
        pass

    assert JournalLogFactory(NoSink(), broken).create() is not None
