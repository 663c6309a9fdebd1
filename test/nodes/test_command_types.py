"""One-point JointTrajectory commands (velocity field), hold_mode zero, mono8/rgba8 cameras."""

from __future__ import annotations

import time

import numpy as np
import pytest
from trajectory_msgs.msg import JointTrajectory

from .harness import ACTIONS, Harness, NodeProcess, domain_id, wait_for, write_params

DOMAIN = domain_id(6)
RATE = 10.0


@pytest.fixture(scope="module")
def node(tiny_smolvla_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("command_types")
    params = write_params(
        tmp / "params.yaml",
        {
            "policy_path": str(tiny_smolvla_dir),
            "num_steps": 1,
            "command.type": "joint_trajectory",
            "action_field": "velocity",
            "hold_mode": "zero",
            "limits.lower": [-10.0],
            "limits.upper": [10.0],
        },
    )
    harness = Harness(
        DOMAIN, command_type=JointTrajectory, encodings={"front": "mono8", "wrist": "rgba8"}
    )
    proc = NodeProcess(params, DOMAIN, tmp / "node.log")
    try:
        harness.start_feed()
        harness.wait_matched(120)
        harness.wait_commands(3, timeout=120)
        yield harness
    finally:
        rc = proc.stop()
        harness.close()
    assert rc == 0, proc.log()[-3000:]
    assert "Traceback" not in proc.log()


def test_commands_are_one_point_trajectories_with_velocities(node):
    cmds = node.wait_commands(3, timeout=30)
    for rec in cmds:
        msg = rec.msg
        assert list(msg.joint_names) == ACTIONS
        assert msg.header.stamp.sec == 0 and msg.header.stamp.nanosec == 0  # "start now"
        assert len(msg.points) == 1
        point = msg.points[0]
        assert len(point.velocities) == len(ACTIONS) and not len(point.positions)
        assert point.time_from_start.nanosec == round(1e9 / RATE)

    # hold_mode zero: a tick without a plan (start-up, a stall of the box) commands zeros;
    # commands from the plan carry the policy's (non-zero) velocities
    def planned() -> bool:
        return any(
            np.any(np.asarray(c.msg.points[0].velocities) != 0.0)
            for c in node.snapshot(node.commands)
        )

    wait_for(planned, 60, "a command with the plan's non-zero velocities")


def test_stale_inputs_hold_with_zero_commands_then_recover(node):
    node.feed.mode = "stale"
    since = time.time_ns()

    def zeros():
        recs = node.snapshot(node.commands, since)
        return len(recs) >= 3 and all(
            not np.any(np.asarray(r.msg.points[0].velocities)) for r in recs[-3:]
        )

    wait_for(zeros, 15, "zero hold commands")
    node.feed.mode = "good"
    since = time.time_ns()
    wait_for(
        lambda: any(
            np.any(np.asarray(r.msg.points[0].velocities))
            for r in node.snapshot(node.commands, since)
        ),
        30,
        "policy commands again",
    )
