"""The one wait helper (snapflow_ros.client.waiting), without ROS: the predicate's value, the
time-out and the early end named after what was awaited."""

from __future__ import annotations

import itertools
import time

import pytest

from snapflow_ros.client import ClientError
from snapflow_ros.client.waiting import WaitAborted, WaitTimeout, wait_until


def test_it_polls_until_the_predicate_holds_and_returns_its_value():
    calls = itertools.count(1)
    value = wait_until(lambda: [n] if (n := next(calls)) >= 4 else [], 60, "four calls", poll=0)
    assert value == [4]


def test_the_timeout_names_what_was_awaited():
    start = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"^timed out after 0.2 s waiting for the answer$") as e:
        wait_until(lambda: None, 0.2, "the answer")
    assert time.monotonic() - start >= 0.2
    assert (e.value.what, e.value.timeout) == ("the answer", 0.2)
    assert isinstance(e.value, ClientError)


def test_alive_ends_the_wait_at_once_with_its_reason():
    checks = itertools.count(1)

    def alive() -> str:
        return "the node died" if next(checks) >= 3 else ""

    start = time.monotonic()
    with pytest.raises(WaitAborted) as e:
        wait_until(lambda: False, 600, "a chunk", alive, poll=0.01)
    assert time.monotonic() - start < 300  # long before the deadline
    assert str(e.value) == "the node died while waiting for a chunk"
    assert (e.value.reason, e.value.what) == ("the node died", "a chunk")
    assert isinstance(e.value, ClientError) and not isinstance(e.value, WaitTimeout)


def test_a_condition_that_holds_wins_over_a_death_seen_at_the_same_time():
    assert wait_until(lambda: "done", 1, "it", alive=lambda: "dead") == "done"
