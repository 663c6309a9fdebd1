"""The process launcher (snapflow_ros.launching) with real child processes: output captured or
logged, SIGINT then SIGTERM / SIGKILL after the grace period, the whole process group, exit
codes, and the ``alive`` check that ends a wait when a child dies."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from snapflow_ros.client.waiting import WaitAborted, wait_until
from snapflow_ros.launching import (
    KILL,
    ManagedProcess,
    first_exit,
    ros_env,
    stop_all,
    watch,
)
from test.fresh_interpreter import modules_loaded

# A child that reports each signal it gets; on SIGINT it exits with CODE unless told to hold
# on, on SIGTERM it exits with 7 unless told to ignore it too.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    hold = sys.argv[1]
    def on_int(signum, frame):
        print("got SIGINT", flush=True)
        if hold == "no":
            print("bye", flush=True)
            sys.exit(3)
    def on_term(signum, frame):
        print("got SIGTERM", flush=True)
        if hold != "all":
            os._exit(7)
    signal.signal(signal.SIGINT, on_int)
    signal.signal(signal.SIGTERM, on_term)
    print("ready", os.getpid(), flush=True)
    while True:
        time.sleep(0.05)
    """
)


def child(hold: str, **kwargs) -> ManagedProcess:
    """The CHILD process, started and ready (its handlers installed)."""
    proc = ManagedProcess(f"child_{hold}", [sys.executable, "-c", CHILD, hold], **kwargs)
    wait_until(lambda: "ready" in proc.log(), 60, "the child to be ready", watch(proc, log_lines=5))
    return proc


def test_sigint_is_enough_for_a_child_that_stops_on_it():
    proc = child("no", capture=True)
    assert proc.alive() and proc.returncode is None
    assert proc.stop(timeout=60) == 3
    assert not proc.alive() and proc.returncode == 3
    assert proc.log().splitlines()[1:] == ["got SIGINT", "bye"]  # complete, no SIGTERM


def test_ctrl_c_stops_a_child_even_when_we_were_started_with_it_ignored():
    """Started in the background by a non-interactive shell (``make test &``, nohup, some CI
    runners), this process has SIGINT ignored and its children would inherit that: a plain
    Python child would then sit out the grace period and end by SIGTERM (seen in a stress
    run). The launcher gives each child SIGINT at its default."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc = ManagedProcess("sleeper", [sys.executable, "-c", SLEEPER], capture=True)
        wait_until(lambda: "ready" in proc.log(), 60, "the sleeper to be ready", watch(proc))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert proc.stop(timeout=30) == -signal.SIGINT  # KeyboardInterrupt, not SIGTERM later


SLEEPER = "import time; print('ready', flush=True); time.sleep(600)"


def test_a_child_that_ignores_sigint_is_killed_after_the_grace_period():
    proc = child("all", capture=True)
    start = time.monotonic()
    code = proc.stop(signal.SIGINT, timeout=0.5, escalate=KILL)
    assert code == -signal.SIGKILL
    assert time.monotonic() - start >= 0.5  # it had its grace period
    assert proc.log().splitlines()[1:] == ["got SIGINT"]  # no SIGTERM on the way


def test_the_default_escalation_sends_sigterm_before_sigkill(tmp_path):
    log = tmp_path / "logs" / "child.log"
    proc = child("int", log_path=log)
    assert proc.stop(timeout=0.3) == 7
    text = log.read_text()
    assert text.splitlines()[1:] == ["got SIGINT", "got SIGTERM"]
    assert proc.log() == text


def test_the_whole_process_group_is_stopped(tmp_path):
    script = textwrap.dedent(
        """
        import subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print("grandchild", grandchild.pid, flush=True)
        time.sleep(600)
        """
    )
    proc = ManagedProcess("parent", [sys.executable, "-c", script], capture=True)
    line = wait_until(
        lambda: next((ln for ln in proc.log().splitlines() if ln.startswith("grandchild")), ""),
        60,
        "the grandchild's pid",
    )
    grandchild = int(line.split()[1])
    assert proc.stop(timeout=30) == -signal.SIGINT  # Python's default: KeyboardInterrupt...
    # ...raised in both: the grandchild got the SIGINT too, as it is in the same group
    wait_until(lambda: not _running(grandchild), 30, "the grandchild to end")


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_stop_all_signals_every_process_and_returns_the_codes_in_order():
    first, second = child("no", capture=True), child("all", capture=True)
    codes = stop_all([first, second], signal.SIGINT, 0.5, KILL)
    assert codes == [3, -signal.SIGKILL]
    assert "got SIGINT" in first.log() and "got SIGINT" in second.log()


def test_a_wait_ends_when_a_watched_child_dies_naming_it_and_its_output():
    crash = ManagedProcess(
        "crash", [sys.executable, "-c", "print('boom'); raise SystemExit(4)"], capture=True
    )
    with pytest.raises(WaitAborted) as info:
        wait_until(lambda: False, 60, "something", watch(crash, log_lines=5))
    assert info.value.reason == "crash exited with code 4; its output ends with:\nboom"
    assert str(info.value) == f"{info.value.reason} while waiting for something"
    assert first_exit([None, crash]) == "crash exited with code 4"


def test_first_exit_names_the_log_file_and_is_empty_while_all_run(tmp_path):
    running = child("no", log_path=tmp_path / "a.log")
    try:
        assert first_exit([running, None], log_lines=3) == ""
    finally:
        running.stop()
    text = first_exit([running], log_lines=1)
    assert text == f"child_no exited with code 3; its log ({tmp_path / 'a.log'}) ends with:\nbye"


def test_echo_copies_the_output_to_ours(capsys):
    proc = ManagedProcess(
        "echo", [sys.executable, "-c", "print('one'); print('two')"], capture=True, echo=True
    )
    assert proc.wait(60) == 0
    assert proc.log() == "one\ntwo\n"
    assert capsys.readouterr().out == "one\ntwo\n"


def test_keep_lines_keeps_the_last_lines():
    cmd = [sys.executable, "-c", "for i in range(100): print(i)"]
    proc = ManagedProcess("count", cmd, capture=True, keep_lines=3)
    assert proc.wait(60) == 0
    assert proc.log() == "97\n98\n99\n"


def test_the_environment_is_the_given_one_and_ros_env_isolates():
    env = ros_env(42, base={"PATH": os.environ["PATH"], "ROS_LOCALHOST_ONLY": "1"})
    assert env["ROS_DOMAIN_ID"] == "42"
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert "ROS_LOCALHOST_ONLY" not in env
    kept = ros_env(None, base={"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"})
    assert kept["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET" and "ROS_DOMAIN_ID" not in kept
    cmd = [sys.executable, "-c", "import os; print(os.environ['ROS_DOMAIN_ID'])"]
    proc = ManagedProcess("env", cmd, env, capture=True)
    assert proc.wait(60) == 0 and proc.log() == "42\n"


def test_the_launcher_and_the_wait_import_no_ros():
    setup = "import snapflow_ros.launching, snapflow_ros.client.waiting"
    assert modules_loaded(setup, ("rclpy", "torch")) == []
