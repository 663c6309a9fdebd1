"""Lifecycle of the policy node, driven through lifecycle_msgs services over DDS.

The node runs with ``autostart: false`` (as under a lifecycle manager), a params file plus
``-p`` overrides (as launch passes them), a JPEG ``CompressedImage`` front camera, a bgr8
wrist camera, ``Float64MultiArray`` commands on an absolute ros2_control-style topic and
``hold_mode: last``. The tests run in file order: unconfigured -> failed configure ->
configure -> activate -> deactivate -> activate -> deactivate -> cleanup -> shutdown.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from lifecycle_msgs.msg import Transition
from std_msgs.msg import Float64MultiArray

from .harness import ACTIONS, JOINTS, Harness, NodeProcess, domain_id, wait_for, write_params

DOMAIN = domain_id(2)
TOPIC = "/robot/forward_position_controller/commands"
RATE = 25.0  # from the -p override; the YAML says 20


@pytest.fixture(scope="module")
def managed(tiny_smolvla_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lifecycle")
    params = write_params(
        tmp / "params.yaml",
        {
            "policy_path": str(tiny_smolvla_dir),
            "autostart": False,
            "engine": "fast",
            "control_rate": 20.0,
            "num_steps": 1,
            "torch_threads": 1,
            "input_timeout": 1.0,
            "status_rate": 4.0,
            "blend.mode": "exponential",
            "blend.alpha": 0.3,
            "hold_mode": "none",
            "command.type": "float64_multi_array",
            "command.topic": TOPIC,
            "cameras.front.topic": "camera/front/image_raw/compressed",
            "cameras.front.compressed": True,
        },
    )
    harness = Harness(
        DOMAIN,
        command_type=Float64MultiArray,
        command_topic=TOPIC,
        compressed=("front",),
        encodings={"wrist": "bgr8"},
    )
    proc = NodeProcess(
        params, DOMAIN, tmp / "node.log", extra_args=[f"control_rate:={RATE}", "hold_mode:=last"]
    )
    try:
        harness.start_feed()
        wait_for(lambda: harness.events("periodic"), 120, "the node's first status report")
        yield harness, proc
    finally:
        rc = proc.stop()
        harness.close()
        log = proc.log()
    assert rc == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def quiet_window(harness: Harness, seconds: float = 1.0) -> list:
    """Commands received during the next ``seconds``."""
    start = time.time_ns()
    time.sleep(seconds)
    return harness.snapshot(harness.commands, start)


def test_starts_unconfigured_with_yaml_and_override_parameters(managed):
    harness, _ = managed
    assert harness.lifecycle_state() == "unconfigured"
    assert harness.get_params(
        "control_rate",
        "blend.mode",
        "blend.alpha",
        "command.type",
        "hold_mode",
        "cameras.front.compressed",
        "state.joints.names",
    ) == [RATE, "exponential", 0.3, "float64_multi_array", "last", True, JOINTS]
    assert not quiet_window(harness)
    assert harness.latest_report()["state"] == "unconfigured"


def test_failed_configure_is_reported_and_recoverable(managed):
    harness, _ = managed
    assert harness.set_params(state__joints__names=JOINTS[:-1])[0].successful
    assert not harness.transition(Transition.TRANSITION_CONFIGURE)
    assert harness.lifecycle_state() == "unconfigured"
    report = harness.latest_report()
    assert "state" in report["configure_error"] and "expects 8" in report["configure_error"]
    level, message, _ = harness.latest_diagnostics()["inference"]
    assert level == 2 and "configure failed" in message
    assert harness.set_params(state__joints__names=JOINTS)[0].successful


def test_configure_gives_inactive_node_without_commands(managed):
    harness, _ = managed
    assert harness.transition(Transition.TRANSITION_CONFIGURE)
    assert harness.lifecycle_state() == "inactive"
    harness.wait_matched()
    assert not quiet_window(harness)
    report = harness.latest_report()
    assert report["state"] == "inactive" and report["configure_error"] == ""
    assert report["policy"]["action_dim"] == len(ACTIONS)
    assert report["policy"]["engine"] == "fast"


def test_activate_commands_at_the_overridden_rate(managed):
    harness, _ = managed
    since = time.time_ns()
    assert harness.transition(Transition.TRANSITION_ACTIVATE)
    assert harness.lifecycle_state() == "active"
    harness.wait_commands(10, timeout=60, since_ns=since)
    start = time.time_ns()
    time.sleep(3.0)
    cmds = harness.snapshot(harness.commands, start)
    assert len(cmds) >= 0.5 * 3.0 * RATE
    intervals = np.diff([c.recv_ns for c in cmds]) * 1e-9  # Float64MultiArray has no stamp
    assert abs(np.median(intervals) - 1.0 / RATE) < 0.25 / RATE
    assert all(len(c.msg.data) == len(ACTIONS) for c in cmds)
    chunk = harness.snapshot(harness.chunks, start)[-1].msg
    ns = [p.time_from_start.sec * 10**9 + p.time_from_start.nanosec for p in chunk.points]
    assert ns == [round(k / RATE * 1e9) for k in range(len(chunk.points))]
    # the JPEG front camera and the bgr8 wrist camera convert without faults
    level, message, values = harness.latest_diagnostics()["inputs"]
    assert level == 0, message
    assert values["camera.front.errors"] == "0" and int(values["camera.front.count"]) > 0
    events = harness.events("chunk", start)
    assert events and all(e["num_steps"] == 1 for e in events)


def test_deactivate_stops_commands_with_one_hold(managed):
    harness, _ = managed
    before = harness.snapshot(harness.commands)
    assert harness.transition(Transition.TRANSITION_DEACTIVATE)
    assert harness.lifecycle_state() == "inactive"
    after_call = time.time_ns()
    assert not quiet_window(harness, 1.5), "commands after deactivate"
    cmds = harness.snapshot(harness.commands)
    # hold_mode last: the final command repeats the last executed one, then silence
    assert len(cmds) > len(before)
    np.testing.assert_array_equal(cmds[-1].msg.data, cmds[-2].msg.data)
    assert cmds[-1].recv_ns <= after_call + int(0.5e9)
    assert harness.latest_report()["state"] == "inactive"


def test_reactivate_then_cleanup(managed):
    harness, _ = managed
    since = time.time_ns()
    assert harness.transition(Transition.TRANSITION_ACTIVATE)
    harness.wait_commands(5, timeout=60, since_ns=since)
    assert harness.transition(Transition.TRANSITION_DEACTIVATE)
    assert harness.transition(Transition.TRANSITION_CLEANUP)
    assert harness.lifecycle_state() == "unconfigured"
    assert not quiet_window(harness)
    report = harness.latest_report()
    assert report["state"] == "unconfigured" and report["policy"] is None


def test_shutdown_transition_ends_the_process_cleanly(managed):
    harness, proc = managed
    assert harness.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    wait_for(lambda: not proc.alive(), 30, "the node process to exit after shutdown")
    assert proc.proc.returncode == 0
