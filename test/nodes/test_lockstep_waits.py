"""Lock-step simulation time: the node waiting for its next chunk is not starvation.

A policy node in this process runs on ``use_sim_time`` with the LIBERO settings
(``replan_threshold: 0``, no blending, no hold) while the test plays the LIBERO bridge's
lock-step protocol over real DDS: publish a step's inputs stamped ``t_k``, then ``/clock =
t_k - lead``; take the command of that tick; when none comes (the node is computing the next
chunk, and its tick has passed) re-publish the inputs and step the clock one period back and
forth so the tick fires again at the same time. The clock never moves while the node thinks,
so the end of every chunk is a *wait* (``plan_waits``), not a starvation, and the log does not
say "starved" (it did every chunk, i.e. every 2-3 s of a healthy LIBERO run).

The first inputs arrive while the node clock is still 0 (stamped 100 s "ahead", like every
step after a LIBERO reset jumps the clock): they must not be taken for clock skew.
"""

from __future__ import annotations

import time

import pytest
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState

from snapflow_ros.nodes.synthetic_source import synthetic_frame, synthetic_joints
from snapflow_ros.ros_conversions import ns_to_stamp_fields, rgb_to_image

from .harness import (
    JOINTS,
    Harness,
    active_in_process_node,
    domain_id,
    header_ns,
    wait_task_taken,
)

DOMAIN = domain_id(12)
DT_NS = 50_000_000  # 20 Hz
LEAD_NS = 10_000  # inputs lead the clock by 10 us (the bridge's stamp_lead)
T0_NS = 100_000_000_000
STEPS = 35  # three and a half chunks of 10


class LockStep:
    """The bridge side of the lock-step protocol, on the harness node."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.clock_pub = harness.node.create_publisher(Clock, "/clock", 10)
        self.kicks = 0

    def clock(self, ns: int) -> None:
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = ns_to_stamp_fields(ns)
        self.clock_pub.publish(msg)

    def inputs(self, t_ns: int) -> None:
        sec, nsec = ns_to_stamp_fields(t_ns)
        for i, (name, pub) in enumerate(self.harness.cam_pubs.items()):
            msg = rgb_to_image(synthetic_frame(t_ns * 1e-9, 48, 64, i))
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nsec
            pub.publish(msg)
            del name
        js = JointState(name=list(JOINTS), position=synthetic_joints(t_ns * 1e-9, 8).tolist())
        js.header.stamp.sec, js.header.stamp.nanosec = sec, nsec
        self.harness.joint_pub.publish(js)

    def step(self, t_ns: int, timeout: float = 60.0) -> None:
        """One simulation step at ``t_ns``: inputs, clock, wait for its command (kicking)."""
        tick_ns = t_ns - LEAD_NS
        self.inputs(t_ns)
        time.sleep(0.01)
        self.clock(tick_ns)
        deadline = time.monotonic() + timeout
        wait = 0.05
        while not any(
            header_ns(c.msg) >= tick_ns for c in self.harness.snapshot(self.harness.commands)
        ):
            if time.monotonic() > deadline:
                raise AssertionError(f"no command for the step at {t_ns} ns")
            time.sleep(wait)
            if not any(
                header_ns(c.msg) >= tick_ns for c in self.harness.snapshot(self.harness.commands)
            ):
                self.inputs(t_ns)
                self.clock(tick_ns - DT_NS)
                time.sleep(0.02)
                self.clock(tick_ns)
                self.kicks += 1
                wait = min(wait * 2, 0.5)


@pytest.fixture(scope="module")
def lockstep(tiny_smolvla_dir):
    overrides = {
        "policy_path": str(tiny_smolvla_dir),
        "use_sim_time": True,
        "control_rate": 20.0,
        "num_steps": 1,
        "torch_threads": 1,
        "replan_threshold": 0.0,
        "blend.mode": "none",
        "hold_mode": "none",
        "input_timeout": 1.0,
        "limits.max_delta": [],
    }
    with active_in_process_node(DOMAIN, overrides) as (harness, node):
        harness.publish_task()
        harness.wait_matched(120)
        wait_task_taken(harness, node)
        yield harness, node


def test_waiting_for_the_next_chunk_in_lock_step_is_not_starvation(lockstep, capfd):
    harness, node = lockstep
    bridge = LockStep(harness)
    for k in range(STEPS):
        bridge.step(T0_NS + k * DT_NS)
    counters = node.report().counters
    assert counters["chunks_accepted"] >= 4, counters
    assert counters["commands"] >= STEPS
    assert counters["starvation_events"] == 0 and counters["starved_ticks"] == 0, counters
    assert counters["plan_waits"] >= 3, counters  # one per used-up chunk
    assert not harness.events("rejected"), "a lock-step input was taken for clock skew"
    err = capfd.readouterr().err
    assert "starved" not in err and "clock skew" not in err, err[-2000:]
    # /diagnostics runs on the (now still) sim clock: build the message the node would send
    diag = node.diagnostics(node.report())
    commands = next(st for st in diag.status if st.name.endswith(": commands"))
    assert "starving" not in commands.message, commands.message


def test_a_simulator_reset_jumping_the_clock_is_not_starvation(lockstep, capfd):
    """The bridge's next episode (``auto_next``) moves the clock 10 s on while the node still
    executes the last episode's plan: a clock jump (plan dropped, one info line), not the
    "starved" warning that ``ros2 launch snapflow_ros libero_eval.launch.py`` printed at every
    episode start."""
    harness, node = lockstep
    node.controller.reset()
    bridge = LockStep(harness)
    start = T0_NS + 1_000 * 1_000_000_000  # after anything another test did on this node
    for k in range(12):
        bridge.step(start + k * DT_NS)
    assert node.report().counters["clock_jumps"] == 0
    after = start + 12 * DT_NS + 10_000_000_000  # the bridge's clock.reset_gap
    bridge.clock(after - DT_NS - LEAD_NS)  # the bridge: clock first, one period early
    for k in range(12):
        bridge.step(after + k * DT_NS)
    counters = node.report().counters
    assert counters["clock_jumps"] == 1, counters
    assert counters["starvation_events"] == 0 and counters["starved_ticks"] == 0, counters
    err = capfd.readouterr().err
    assert "starved" not in err, err[-2000:]
    assert "the clock jumped 10.00 s forward" in err, err[-2000:]
    assert "stale (" not in err, err[-2000:]  # inputs from before the jump: expected, not logged
