"""The shared start-up and spin loop: command line, rcl errors, a failing callback is logged
and the node keeps running."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest
import rclpy
from rclpy.node import Node

from snapflow_ros.nodes.process import parse_command_line, rcl_message, spin, user_args


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


def test_only_arguments_outside_ros_args_are_the_programs():
    argv = ["prog", "--help", "--ros-args", "-p", "a:=1", "--params-file", "x.yaml", "--", "-v"]
    assert user_args(argv) == ["--help", "-v"]
    assert user_args(["prog", "--ros-args", "--params-file", "--help"]) == []


def test_help_exits_0_and_stray_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        parse_command_line(["policy_node", "--help"], "policy_node", "What it does.")
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: policy_node") and "What it does." in out
    with pytest.raises(SystemExit) as info:
        parse_command_line(["policy_node", "--params-file", "x.yaml"], "policy_node", "")
    assert info.value.code == 2
    assert "unrecognized arguments: --params-file x.yaml" in capsys.readouterr().err
    parse_command_line(["policy_node", "--ros-args", "--params-file", "x.yaml"], "policy_node", "")


def test_rcl_errors_become_one_line_without_source_locations():
    text = (
        "failed to initialize rcl: Couldn't parse params file: '--params-file /tmp/b.yaml'.\n"
        " Error: Sequence should be of same type, at /project/src/parse.c:435, at "
        "/project/src/rcl/arguments.c:415"
    )
    assert rcl_message(RuntimeError(text)) == (
        "failed to initialize rcl: Couldn't parse params file: '--params-file /tmp/b.yaml'. "
        "Error: Sequence should be of same type"
    )


def test_realtime_priority_covers_the_threads_started_afterwards_or_says_why_not():
    code = (
        "import os, threading\n"
        "from snapflow_ros.nodes.process import set_realtime_priority\n"
        "assert set_realtime_priority(0) == ''\n"
        "assert os.sched_getscheduler(0) == os.SCHED_OTHER\n"
        "assert 'above 98' in set_realtime_priority(99)\n"
        "why = set_realtime_priority(5)\n"
        "seen = []\n"
        "t = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))\n"
        "t.start(); t.join()\n"
        "if why:\n"
        "    assert seen == [os.SCHED_OTHER], seen\n"
        "    print('refused', why)\n"
        "else:\n"
        "    assert os.sched_getparam(0).sched_priority == 5 and seen == [os.SCHED_FIFO], seen\n"
        "    print('fifo')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith(("fifo", "refused"))
    if out.stdout.startswith("refused"):
        assert "Error" in out.stdout  # the reason names the refusal (PermissionError)
