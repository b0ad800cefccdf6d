"""Gateway threads carry their names at the OS level (``top -H``, /proc/PID/task/TID/comm), quickfix's native
threads the name of the engine that made them."""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from sessions import threadnames

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl names are Linux's")


def _comm(native_id: int) -> str:
    return Path(f"/proc/self/task/{native_id}/comm").read_text().strip()


def test_a_python_thread_started_after_install_has_its_name_at_the_os_level():
    threadnames.name_os_threads()
    threadnames.name_os_threads()  # idempotent
    seen = {}

    def run():
        seen["comm"] = _comm(threading.get_native_id())
        seen["read"] = threadnames.os_thread_name()

    t = threading.Thread(target=run, name="fixgw-a-rather-long-thread-name")
    t.start()
    t.join()
    assert seen == {"comm": "fixgw-a-rather-", "read": "fixgw-a-rather-"}  # the kernel keeps 15 bytes


def test_named_renames_the_calling_thread_for_the_block_and_threads_made_inside_inherit_it():
    before = threadnames.os_thread_name()
    seen = {}
    with threadnames.named("fixgw-qf-test"):
        assert _comm(threading.get_native_id()) == "fixgw-qf-test"
        # a thread created by native code (no Python bootstrap) takes the creator's name; _thread.start_new_thread
        # is the closest: it bypasses threading.Thread's bootstrap
        import _thread
        done = threading.Event()

        def native_like():
            seen["child"] = _comm(threading.get_native_id())
            done.set()

        _thread.start_new_thread(native_like, ())
        done.wait(5)
    assert seen["child"] == "fixgw-qf-test"
    assert threadnames.os_thread_name() == before
