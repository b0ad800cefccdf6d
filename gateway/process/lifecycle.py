"""Process lifecycle helpers shared by the long-running commands (run, demo, venue-sim)."""
from __future__ import annotations

import signal
import threading
import time


def wait_for_stop(duration: float | None, stop: threading.Event | None = None) -> None:
    """Block until SIGINT/SIGTERM (or ``duration`` seconds, if given, or ``stop`` is set: the gateway asks to stop
    on its own)."""
    stop = stop or threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            stop.wait(0.5 if remaining is None else min(0.5, remaining))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
