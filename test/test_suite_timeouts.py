"""The suite's per-test timeouts (setup.cfg, test/conftest.py), in a pytest run of its own: a
test that hangs fails alone, by name, and the run goes on; ``slow`` and ``libero`` tests get
their longer timeout; a test the signal cannot reach ends the run through the backstop."""

from __future__ import annotations

from .inner_pytest import run_inner

INNER = """
import time

import pytest


def test_hangs():
    time.sleep(60)


@pytest.mark.slow
def test_slow_gets_longer():
    time.sleep(3)


def test_after_the_hang():
    pass
"""

STUCK = """
import signal
import time


def test_signal_cannot_reach_it():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # like a thread stuck in C
    time.sleep(60)


def test_never_runs():
    pass
"""


def test_a_hang_fails_that_test_by_name_and_the_run_goes_on(tmp_path):
    done = run_inner(tmp_path, INNER, "-o", "timeout=2", "-o", "timeout_method=signal")
    out = done.output
    assert "FAILED test_inner.py::test_hangs - Failed: Timeout (>2.0s)" in out, out[-3000:]
    assert done.summary.startswith("1 failed, 2 passed"), out[-3000:]


def test_a_test_stuck_out_of_the_signals_reach_ends_the_run(tmp_path):
    done = run_inner(tmp_path, STUCK, "-o", "timeout=1", "-o", "timeout_hard_exit_after=2")
    out = done.output
    assert done.returncode == 1 and done.seconds < 60, out[-3000:]
    assert "test_inner.py::test_signal_cannot_reach_it: still running 2 s after its 1 s" in out
    assert "test_never_runs" not in out
