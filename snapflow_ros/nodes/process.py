"""Start-up and spinning shared by the node executables.

Every node process: a command line with ``--help`` (and an error for arguments outside
``--ros-args``, the usual slip of ``node --params-file x.yaml``), ``rclpy.init`` without
rclpy's own signal handlers (SIGINT / SIGTERM only ask the loop to stop, so the node can shut
down in order; a malformed parameters file ends the process with one line, exit status 2),
one executor thread, and a loop that logs a failed callback instead of ending the process.

Why one executor thread: rclpy's ``MultiThreadedExecutor`` busy-loops while a callback of a
mutually exclusive group runs and another entity of that group is ready. That loop holds the
GIL and starved the policy node's inference thread (tiny SmolVLA at 50 Hz: inference p95 1.5 s,
3.7 commands/s; with one executor thread p95 8.8 ms, 50.00 commands/s) and slowed LIBERO
lock-step episodes from 5.96 to 4.50 steps/s. Callbacks are short; long work (inference,
simulation) runs in the nodes' own threads.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

EXIT_USAGE = 2  # bad command line or parameters file
USAGE = "%(prog)s [-h] [--ros-args [--params-file FILE] [-p NAME:=VALUE ...] [-r FROM:=TO ...]]"


def user_args(argv: Sequence[str]) -> list[str]:
    """The arguments of ``argv`` (program name first) outside ``--ros-args ... [--]``."""
    out, in_ros = [], False
    for arg in argv[1:]:
        if arg == "--ros-args":
            in_ros = True
        elif arg == "--" and in_ros:
            in_ros = False
        elif not in_ros:
            out.append(arg)
    return out


def parse_command_line(argv: Sequence[str], prog: str, description: str) -> None:
    """``--help``: print the usage and exit 0; any other argument outside ``--ros-args``:
    an error naming it (exit 2). ROS arguments are left to ``rclpy.init``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=USAGE,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _, extra = parser.parse_known_args(user_args(argv))
    if extra:
        parser.error(
            f"unrecognized arguments: {' '.join(extra)} (ROS arguments go after --ros-args, "
            f"e.g. {prog} --ros-args --params-file FILE -p NAME:=VALUE)"
        )


def rcl_message(exc: BaseException) -> str:
    """An rcl error as one line, without rcl's source locations."""
    text = " ".join(str(exc).split())
    return re.sub(r",? at /\S+:\d+", "", text)


def init_ros(
    args: list[str] | None = None, prog: str = "node", description: str = ""
) -> threading.Event:
    """Command line (see :func:`parse_command_line`), then ``rclpy.init`` for a node
    executable; SIGINT / SIGTERM set the returned stop event. A parameters file rcl cannot
    read ends the process with one line on stderr and exit status 2."""
    argv = list(args if args is not None else sys.argv)
    parse_command_line(argv, prog, description)
    try:
        rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as exc:  # RCLError: malformed YAML, missing file, bad --ros-args
        print(f"{prog}: cannot start: {rcl_message(exc)}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
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
