"""The shared spin loop: a failing callback is logged and the node keeps running."""

from __future__ import annotations

import signal
import threading

import pytest
import rclpy
from rclpy.node import Node

from snapflow_ros.nodes.process import spin


@pytest.fixture
def ros():
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(args=[])
    yield
    rclpy.try_shutdown()
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def test_a_raising_callback_does_not_end_the_loop(ros, capfd):
    node = Node("spin_test")
    stop = threading.Event()
    calls = []

    def tick():
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("first tick fails")
        if len(calls) == 3:
            stop.set()

    node.create_timer(0.01, tick)
    try:
        spin(node, stop)
    finally:
        node.destroy_node()
    assert len(calls) == 3
    assert "callback failed: RuntimeError: first tick fails" in capfd.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # clean-up is not interrupted


def test_done_ends_the_loop(ros):
    node = Node("spin_done_test")
    calls = []
    node.create_timer(0.01, lambda: calls.append(1))
    try:
        spin(node, threading.Event(), done=lambda: len(calls) >= 2)
    finally:
        node.destroy_node()
    assert len(calls) == 2
