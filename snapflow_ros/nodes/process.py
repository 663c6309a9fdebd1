"""Start-up and spinning shared by the node executables.

Every node process: ``rclpy.init`` without rclpy's own signal handlers (SIGINT / SIGTERM only
ask the loop to stop, so the node can shut down in order), one executor thread, and a loop
that logs a failed callback instead of ending the process.

Why one executor thread: rclpy's ``MultiThreadedExecutor`` busy-loops while a callback of a
mutually exclusive group runs and another entity of that group is ready. That loop holds the
GIL and starved the policy node's inference thread (tiny SmolVLA at 50 Hz: inference p95 1.5 s,
3.7 commands/s; with one executor thread p95 8.8 ms, 50.00 commands/s) and slowed LIBERO
lock-step episodes from 5.96 to 4.50 steps/s. Callbacks are short; long work (inference,
simulation) runs in the nodes' own threads.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions


def init_ros(args: list[str] | None = None) -> threading.Event:
    """``rclpy.init`` for a node executable; SIGINT / SIGTERM set the returned stop event."""
    rclpy.init(
        args=args if args is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def spin(node: Node, stop: threading.Event, done: Callable[[], bool] = lambda: False) -> None:
    """Run ``node``'s callbacks on one thread until ``stop`` is set, ``done()`` or shutdown.

    A callback that raises is logged and the loop goes on. Further signals are ignored once
    the loop ends, so the caller's clean-up is not interrupted.
    """
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok() and not stop.is_set() and not done():
            try:
                executor.spin_once(timeout_sec=0.1)
            except ExternalShutdownException:
                raise
            except Exception as exc:  # a failed callback must not end the node
                node.get_logger().error(f"callback failed: {type(exc).__name__}: {exc}")
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        executor.shutdown(timeout_sec=1.0)
