"""Failures off the test's thread are not lost (test/nodes/harness.py, test/conftest.py): a
feed thread that dies is named by every later wait instead of a timeout, and a callback of an
in-process node that raises fails the test during which it raised, not a later one nor the
module's teardown."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..inner_pytest import run_inner
from .harness import Harness, domain_id

DOMAIN = domain_id(18)

INNER = """
import time

import pytest

from test.nodes.harness import InProcessNode, domain_id, node_parameters


@pytest.fixture(scope="module")
def node():
    proc = InProcessNode(domain_id(1), node_parameters({}))
    yield proc
    proc.close()


def test_a_callback_raises(node):
    def boom():
        timer.cancel()
        raise RuntimeError("boom in a timer")

    timer = node.node.create_timer(0.05, boom)
    deadline = time.monotonic() + 60
    while not node.errors and time.monotonic() < deadline:
        time.sleep(0.05)  # only this test's own code polls: the error must still fail it
    assert node.errors


def test_the_next_test_is_not_blamed(node):
    assert node.errors == ["RuntimeError: boom in a timer"]
"""


def test_a_dead_feed_thread_is_named_by_every_wait():
    harness = Harness(DOMAIN)
    try:
        harness.feed.cameras = ("front", "wrist", "ghost")  # no publisher: KeyError
        harness.start_feed()
        assert harness._feed_thread is not None
        harness._feed_thread.join(60)
        assert not harness._feed_thread.is_alive()
        with pytest.raises(AssertionError, match="feed thread failed: .*KeyError: 'ghost'"):
            harness.wait_commands(1, timeout=600)  # would time out in 10 min if not named
        with pytest.raises(AssertionError, match="feed thread failed"):
            harness.wait_matched(timeout=600)
        with pytest.raises(AssertionError, match="timed out .*feed thread failed"):
            harness.latest_report(timeout=1)  # nothing answers: the timeout names the cause
    finally:
        harness.close()


def test_a_raising_callback_fails_the_test_it_happened_in(tmp_path: Path) -> None:
    done = run_inner(tmp_path, INNER, timeout=300)
    out, summary = done.output, done.summary
    assert summary.startswith("1 failed, 1 passed") and "error" not in summary, out[-4000:]
    failed = out.split("_ test_a_callback_raises _")[1]
    assert "in the background during the test" in failed and "boom in a timer" in failed
    assert "FAILED test_inner.py::test_a_callback_raises" in out
