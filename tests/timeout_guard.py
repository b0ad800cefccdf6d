"""A test that times out fails, always, and so does the run (a pytest plugin, loaded by tests/conftest.py).

pytest-timeout's signal method raises ``Failed`` from its SIGALRM handler, in whatever Python code the main
thread runs at that moment. If that is a garbage-collector callback (hypothesis registers one), the
interpreter reports the exception as "unraisable" and carries on: the test goes on and may pass. So this
plugin takes over the signal method's timer (pytest-timeout's ``pytest_timeout_set_timer`` hook; its thread
method and its settings are unchanged):

- the handler notes that the timeout fired (and where), then raises as pytest-timeout does;
- the report of the phase that was running (setup, call or teardown) is made a failure if it would pass,
  saying the timeout's exception was swallowed;
- the alarm is re-armed: a test that keeps running is interrupted again every ``GRACE_S`` seconds, and
  after ``MAX_SIGNALS`` the process ends as pytest-timeout's thread method ends it (exit status 1).
"""
from __future__ import annotations

import os
import signal
import sys
import threading

import pytest

GRACE_S = 10.0  # after a timeout whose exception went nowhere, how long until the next interruption
MAX_SIGNALS = 3  # then the process ends

_FIRED = pytest.StashKey[str]()  # where the first timeout signal landed
_REPORTED = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item, settings):
    if settings.method != "signal" or threading.current_thread() is not threading.main_thread():
        return None  # pytest-timeout's own timer (its thread method ends the process on a timeout)
    import pytest_timeout

    signals = 0

    def handler(signum, frame):
        nonlocal signals
        __tracebackhide__ = True
        if not settings.disable_debugger_detection and pytest_timeout.is_debugging():
            return
        signals += 1
        if _FIRED not in item.stash:
            code = frame.f_code if frame is not None else None
            item.stash[_FIRED] = (f"{code.co_name} ({code.co_filename}:{frame.f_lineno})" if code is not None
                                  else "unknown code")
        if signals >= MAX_SIGNALS:
            pytest_timeout.dump_stacks(item.config.get_terminal_writer())
            sys.stderr.write(f"\n{item.nodeid}: still running {MAX_SIGNALS - 1} timeout interruptions after "
                             f"its timeout ({settings.timeout}s): ending the test run\n")
            sys.stderr.flush()
            os._exit(1)
        signal.setitimer(signal.ITIMER_REAL, GRACE_S)  # in case this exception is swallowed too
        pytest_timeout.timeout_sigalrm(item, settings)  # dumps the threads' stacks, raises Failed

    def cancel():
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    item.cancel_timeout = cancel  # pytest-timeout's pytest_timeout_cancel_timer calls it
    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    where = item.stash.get(_FIRED, None)
    if where is not None and not item.stash.get(_REPORTED, False):
        item.stash[_REPORTED] = True  # the phase running when it fired reports first
        if not report.failed:
            report.outcome = "failed"
            report.longrepr = (f"Timeout: pytest-timeout's signal fired in {where}, but its exception never "
                               "reached the test (raised inside a garbage-collector callback or another place "
                               "that swallows exceptions as unraisable), so the test went on; failed here")
    return report
