"""A test whose pytest-timeout timeout fires where its exception is swallowed (a garbage-collector callback, as
hypothesis registers) still fails, and the run with it (tests/timeout_guard.py).

Each case runs pytest in a subprocess on a temporary test file: once with the guard, once without it, to show
that the timeout really landed where its exception is lost.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SWALLOWED = '''
import gc
import time

import pytest


@pytest.mark.timeout(0.3)
def test_times_out_inside_a_gc_callback():
    def callback(phase, info):
        if phase == "start":
            time.sleep(0.05)  # nearly all the test's time is spent here: the alarm lands in the callback
    gc.callbacks.append(callback)
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            gc.collect()
    finally:
        gc.callbacks.remove(callback)


def test_an_ordinary_test():
    pass
'''

CONFTEST = '''
import os
pytest_plugins = ["tests.timeout_guard"] if os.environ.get("WITH_GUARD") == "1" else []
'''


def run_pytest(tmp_path: Path, guarded: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_case.py").write_text(SWALLOWED)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WITH_GUARD": "1" if guarded else "0"}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", "-W",
                           "ignore::pytest.PytestUnraisableExceptionWarning", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_a_timeout_swallowed_in_a_gc_callback_fails_the_test_and_the_run(tmp_path):
    unguarded = run_pytest(tmp_path, guarded=False)
    # the problem: pytest-timeout alone counts the test as passed
    assert unguarded.returncode == 0, unguarded.stdout + unguarded.stderr
    assert "2 passed" in unguarded.stdout

    guarded = run_pytest(tmp_path, guarded=True)
    assert guarded.returncode == 1, guarded.stdout + guarded.stderr
    assert "1 failed, 1 passed" in guarded.stdout
    assert "FAILED test_case.py::test_times_out_inside_a_gc_callback" in guarded.stdout
    assert "never reached the test" in guarded.stdout and "callback" in guarded.stdout


def test_an_ordinary_timeout_still_fails_as_pytest_timeout_reports_it(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_slow.py").write_text(
        "import time, pytest\n\n@pytest.mark.timeout(0.2)\ndef test_slow():\n    time.sleep(5)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WITH_GUARD": "1"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 failed" in out.stdout and "Timeout" in out.stdout and "0.2s" in out.stdout
