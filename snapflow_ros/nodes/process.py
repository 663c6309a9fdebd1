"""Start-up, spinning, logging and exit shared by the node executables.

Every node process: a command line with ``--help`` (and an error for arguments outside
``--ros-args``, the usual slip of ``node --params-file x.yaml``), ``rclpy.init`` without
rclpy's own signal handlers (SIGINT / SIGTERM only ask the loop to stop, so the node can shut
down in order; a malformed parameters file ends the process with one line, exit status 2),
one executor thread, and a loop that logs a failed callback instead of ending the process.

Exit: once the node is shut down and rclpy with it, :func:`exit_process` ends the process at
once. Python's own clean-up of a process that loaded torch and a policy (module teardown,
garbage collection of the model graph) took 3-6 s on an idle 2-core machine and over 15 s
under load, after the node had already said "stopped"; ``ros2 launch`` then escalated to
SIGTERM and SIGKILL. A SIGTERM that arrives while the node shuts down ends it at once too.

Scheduling: :func:`set_realtime_priority` puts the calling thread, and every thread it starts
afterwards, on SCHED_FIFO where the operating system permits it. It must cover every thread
that runs Python code, not only the control tick: each thread takes the interpreter lock, and
a normally scheduled thread preempted while holding it delays the tick by a scheduler time
slice (measured in docs/policy_node.md).

Why one executor thread: rclpy's ``MultiThreadedExecutor`` busy-loops while a callback of a
mutually exclusive group runs and another entity of that group is ready. That loop holds the
GIL and starved the policy node's inference thread (tiny SmolVLA at 50 Hz: inference p95 1.5 s,
3.7 commands/s; with one executor thread p95 8.8 ms, 50.00 commands/s) and slowed LIBERO
lock-step episodes from 5.96 to 4.50 steps/s. Callbacks are short; long work (inference,
simulation) runs in the nodes' own threads.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

EXIT_USAGE = 2  # bad command line or parameters file
EXIT_TERMINATED = 143  # SIGTERM while shutting down (128 + 15, as a shell reports it)
MAX_FIFO_PRIORITY = 98  # 99 is left to the kernel's own threads
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
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: clean-up goes on
        signal.signal(signal.SIGTERM, _terminate)  # launch escalating: end now
        executor.shutdown(timeout_sec=1.0)


def _terminate(signum: int, frame: Any) -> None:
    print("terminated while shutting down", file=sys.stderr, flush=True)
    exit_process(EXIT_TERMINATED)


def exit_process(code: int) -> NoReturn:
    """End the process now with ``code``: standard streams flushed, the interpreter's module
    clean-up skipped (call it after the node is destroyed and rclpy shut down)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing more to say
            stream.flush()
    os._exit(code)


def log_at(logger: Any, level: str, message: str) -> None:
    """Log ``message`` at ``level`` (debug, info, warning, error) with an rclpy logger, which
    ties a severity to each call site: one call per level."""
    if level == "error":
        logger.error(message)
    elif level == "warning":
        logger.warning(message)
    elif level == "debug":
        logger.debug(message)
    else:
        logger.info(message)


def set_realtime_priority(priority: int) -> str:
    """SCHED_FIFO at ``priority`` (1..98) for the calling thread and the threads it starts
    from now on; 0 leaves the scheduling alone. Returns '' when done (or nothing to do), else
    why it could not be done (not permitted: CAP_SYS_NICE or an RLIMIT_RTPRIO limit needed)."""
    if priority <= 0:
        return ""
    if priority > MAX_FIFO_PRIORITY:
        return f"priority {priority} is above {MAX_FIFO_PRIORITY}"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as exc:  # PermissionError where not permitted
        return f"{type(exc).__name__}: {exc}"
    return ""
