"""The bridge's policy-node calls against a policy node that is not there: a timeout names the
service, ``cancel`` (the bridge stopping) ends a call in flight at once and every later one."""

from __future__ import annotations

import threading
import time

import pytest
import rclpy
from rclpy.context import Context

from snapflow_ros.nodes.policy_calls import CANCELLED, PolicyCalls
from snapflow_ros.sim.episodes import NO_POLICY_NODE

from .harness import domain_id


@pytest.fixture
def node():
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id(41))
    node = rclpy.create_node("policy_calls_test", context=ctx)
    yield node
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)


def test_a_missing_policy_node_times_out_and_cancel_ends_a_call_at_once(node):
    calls = PolicyCalls(node, f"/nobody_{time.monotonic_ns()}/policy_node", None)
    assert "is not available" in calls("resume", timeout=0.3)
    answer: list[str] = []
    worker = threading.Thread(target=lambda: answer.append(calls("reset", seed=3, timeout=60)))
    start = time.monotonic()
    worker.start()
    time.sleep(0.3)
    assert worker.is_alive()  # waiting for the policy node
    calls.cancel()
    worker.join(10)
    assert not worker.is_alive() and answer == [CANCELLED]
    assert time.monotonic() - start < 10  # not the 60 s timeout
    assert calls("pause", timeout=60) == CANCELLED  # later calls: at once


def test_no_policy_node_named_means_nothing_to_call(node):
    assert PolicyCalls(node, "", None)("resume") == NO_POLICY_NODE
