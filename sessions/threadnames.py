"""Thread names the operating system sees (``top -H``, ``ps -L``, ``/proc/PID/task/TID/comm``), on Linux.

Python 3.11 names its threads for itself only: at the OS level every thread of the gateway is "python", so an
operator looking at a busy gateway cannot tell the core thread from the sender or from quickfix's session
threads, and neither can the benchmark harness, which reads each thread's CPU from /proc (bench/loadgen.py).

- ``name_os_threads()``: from then on every ``threading.Thread`` started carries its Python name (its first 15
  bytes, the kernel's limit) as its OS name: ``fixgw-core``, ``fixgw-sender``, ``fixgw-journal-proc``...
  (Python 3.14 does this itself; here it wraps the thread's start-up, and does nothing where that is not
  possible.)
- ``named(name)``: a context manager naming the calling thread for a while. A new thread takes its OS
  name from the thread that creates it, so quickfix's native threads are named after the engine that made
  them when it is started inside one (sessions/fixsettings.py: ``fixgw-qf-client``, ``fixgw-qf-venue``...).

Elsewhere than Linux, or without libc's ``prctl``, both do nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import threading
from typing import Iterator

_PR_SET_NAME, _PR_GET_NAME = 15, 16
_prctl = None
if sys.platform.startswith("linux"):
    try:
        _prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        _prctl = None


def set_os_thread_name(name: str) -> bool:
    """Name the calling thread at the OS level (its first 15 bytes); False where that cannot be done."""
    if _prctl is None:
        return False
    return _prctl(_PR_SET_NAME, name.encode("utf-8", "replace")[:15], 0, 0, 0) == 0


def os_thread_name() -> str | None:
    """The calling thread's OS name; None where it cannot be read."""
    if _prctl is None:
        return None
    buf = ctypes.create_string_buffer(16)
    if _prctl(_PR_GET_NAME, buf, 0, 0, 0) != 0:
        return None
    return buf.value.decode("utf-8", "replace")


@contextlib.contextmanager
def named(name: str) -> Iterator[None]:
    """Name the calling thread ``name`` inside the block (threads it creates there inherit it), then back."""
    before = os_thread_name()
    set_os_thread_name(name)
    try:
        yield
    finally:
        if before is not None:
            set_os_thread_name(before)


_installed = False


def name_os_threads() -> None:
    """Give every ``threading.Thread`` started from now on its Python name at the OS level (idempotent)."""
    global _installed
    if _installed or _prctl is None:
        return
    bootstrap = getattr(threading.Thread, "_bootstrap_inner", None)
    if bootstrap is None:  # pragma: no cover - a Python that starts threads another way
        return

    def _bootstrap_inner(self):
        set_os_thread_name(self.name)
        bootstrap(self)

    threading.Thread._bootstrap_inner = _bootstrap_inner
    _installed = True
