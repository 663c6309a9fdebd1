"""Hostile input and operator mistakes against a policy node running in this test process.

The node (tiny SmolVLA) lives in its own rclpy Context spun by a SingleThreadedExecutor thread,
exactly as the executable runs it, and is fed over real DDS on a private domain by a
:class:`Harness`; parameters are set and services called through the node's own entry points.
Every test starts from a running node with good inputs (the ``fed`` fixture), so each one can
run alone.

Command stamps are the node's tick times and a slot's receive time is the node clock when the
message was handled; both callbacks run on one executor thread, so "no command stamped after
the bad message arrived" is exact, not a timing window.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger

from .harness import (
    Harness,
    active_in_process_node,
    domain_id,
    header_ns,
    wait_for,
)

DOMAIN = domain_id(11)
RATE = 20.0
HORIZON = 10  # actions per chunk of the tiny policy
TASK = "pick up the red cube"


@pytest.fixture(scope="module")
def live(tiny_smolvla_dir):
    overrides = {
        "policy_path": str(tiny_smolvla_dir),
        "control_rate": RATE,
        "num_steps": 1,
        "torch_threads": 1,
        "input_timeout": 1.0,
        "status_rate": 4.0,
        "limits.max_delta": [],
        "task.text": TASK,
    }
    with active_in_process_node(DOMAIN, overrides) as (harness, node):
        harness.start_feed()
        harness.wait_matched(120)
        harness.wait_commands(5, timeout=120)
        yield harness, node
    values = [np.asarray(c.msg.position) for c in harness.snapshot(harness.commands)]
    assert values and all(np.all(np.isfinite(v)) for v in values), "a non-finite command"


@pytest.fixture
def fed(live):
    """The live node back to good inputs, default parameters and commands flowing."""
    harness, node = live
    harness.feed.mode = "good"
    harness.feed.stamp_offset = 0.0
    harness.feed.silent = set()
    harness.feed.paused = False
    defaults = {
        "replan_threshold": -1.0,
        "hold_mode": "none",
        "max_future_stamp": 0.25,
        "task.text": TASK,
        "dry_run": False,
    }
    results = node.set_parameters([Parameter(k, value=v) for k, v in defaults.items()])
    assert all(r.successful for r in results), [r.reason for r in results]
    harness.publish_task(TASK)
    node._srv_resume(Trigger.Request(), Trigger.Response())
    harness.wait_commands(3, timeout=60)
    return harness, node


def commands_after(harness: Harness, t_ns: int) -> list:
    """Commands the node stamped (ticked) after ``t_ns`` (node clock)."""
    return [c for c in harness.snapshot(harness.commands) if header_ns(c.msg) > t_ns]


def fault_onset(node, slot: str) -> int:
    """Node-clock receive time of the first message of ``slot`` found malformed."""
    return wait_for(
        lambda: (st := node.controller.session.inputs.slots[slot].state()).fault and st.recv_ns,
        10,
        f"{slot} to turn malformed",
        poll=0.001,
    )


def wait_ticks(node, n: int = HORIZON + 2) -> None:
    """Wait until the node's control loop has ticked ``n`` more times, held or not (by
    default longer than any plan in force can run): the node's own progress, not wall time."""
    counters = node.controller.session.loop.counters
    start = counters.ticks
    wait_for(lambda: counters.ticks >= start + n, 30, f"{n} control ticks", poll=0.005)


def halt_feed(harness: Harness) -> None:
    """Stop the harness' feed thread and wait for it to end: nothing is being published
    after this (unlike ``feed.paused``, which a frame already being published misses)."""
    harness._stop.set()
    harness._feed_thread.join(10)
    assert not harness._feed_thread.is_alive(), "the feed thread did not stop"
    harness._stop.clear()


def restart_feed(harness: Harness) -> None:
    """Start the feed thread again after :func:`halt_feed`."""
    harness._feed_thread = None
    harness.start_feed()


def input_faults(node) -> int:
    """How many observations the node has rejected (its own count, exact)."""
    return node.report().counters["input_faults"]


def inputs_diagnostic(harness: Harness, text: str) -> tuple[int, str]:
    """The next inputs diagnostic whose message mentions ``text``."""
    return wait_for(
        lambda: (d := harness.latest_diagnostics()["inputs"]) and text in d[1] and d[:2],
        15,
        f"an inputs diagnostic naming {text!r}",
    )


# --------------------------------------------------------------------- malformed input: hold
@pytest.mark.parametrize(
    ("mode", "slot", "text"),
    [
        ("nan_joint", "state.joints", "NaN"),
        ("duplicate_joint", "state.joints", "more than once"),
        ("bad_size", "camera.wrist", "bytes"),
        ("bad_encoding", "camera.wrist", "yuv422"),
        ("missing_joint", "state.joints", "lacks joints"),
    ],
)
def test_malformed_input_holds_at_the_next_tick(fed, mode, slot, text):
    """The old plan is not executed past a malformed input (it used to run 1-4 more ticks)."""
    harness, node = fed
    # re-plan only when the plan is used up: the plan in force has ~0.4 s left to run
    assert node.set_parameters([Parameter("replan_threshold", value=0.0)])[0].successful
    since = time.time_ns()
    wait_for(lambda: any(e.accepted for e in harness.events("chunk", since)), 30, "a fresh chunk")
    harness.feed.mode = mode
    bad_ns = fault_onset(node, slot)
    wait_ticks(node)  # longer than the plan that was in force
    late = commands_after(harness, bad_ns)
    assert not late, f"{len(late)} commands after the malformed input arrived"
    level, message = inputs_diagnostic(harness, text)
    assert level == 2 and slot.split(".")[1] in message
    rejected = [e for e in harness.events("rejected", since) if e.input == slot]
    assert rejected and text in rejected[0].reason and len(rejected[0].reason) <= 200
    assert node.report().counters["input_faults"] >= 1
    harness.feed.mode = "good"
    harness.wait_commands(5, timeout=30)


def stale_onset(node, mode: str, timeout_ns: int) -> int:
    """Node-clock time from which the inputs are stale: the receive time of the first message
    stamped older than input_timeout (``stale``), or the silent wrist camera's last stamp
    plus input_timeout (``silent_wrist``; waits until that time has passed)."""
    slots = node.controller.session.inputs.slots
    if mode == "stale":
        return wait_for(
            lambda: min(
                (
                    st.recv_ns
                    for st in (s.state() for s in slots.values())
                    if st.recv_ns - st.stamp_ns > timeout_ns
                ),
                default=None,
            ),
            10,
            "a message stamped older than input_timeout",
            poll=0.001,
        )
    wrist = slots["camera.wrist"]
    wait_for(
        lambda: time.time_ns() - wrist.state().stamp_ns > timeout_ns + 1e8,
        10,
        "the silent wrist camera's last image to turn stale",
    )
    return wrist.state().stamp_ns + timeout_ns


@pytest.mark.parametrize(("mode", "text"), [("stale", "stale"), ("silent_wrist", "camera wrist")])
def test_stale_or_silent_input_holds_at_the_next_tick(fed, mode, text):
    """Inputs that turn stale stop the commands at the first tick that judges them stale
    (the plan in force is not run out); not a rejection; commands again once they are fresh."""
    harness, node = fed
    timeout_ns = int(node.get_parameter("input_timeout").value * 1e9)
    assert node.set_parameters([Parameter("replan_threshold", value=0.0)])[0].successful
    since = time.time_ns()
    wait_for(lambda: any(e.accepted for e in harness.events("chunk", since)), 30, "a fresh chunk")
    faults = input_faults(node)
    if mode == "silent_wrist":
        harness.feed.silent = {"wrist"}
    else:
        harness.feed.mode = mode
    stale_ns = stale_onset(node, mode, timeout_ns)
    wait_ticks(node)
    # a tick at exactly the onset is not stale yet (older than the timeout, not as old)
    late = commands_after(harness, stale_ns + 1000)
    assert not late, f"{len(late)} commands after the inputs turned stale"
    if mode == "silent_wrist":
        wrist = node.controller.session.inputs.slots["camera.wrist"].state()
        assert wrist.stamp_ns + timeout_ns == stale_ns, "a wrist image arrived meanwhile"
    level, message = inputs_diagnostic(harness, text)
    assert level == 1 and "stale" in message
    assert input_faults(node) == faults, "stale inputs were counted as malformed"
    assert not harness.events("rejected", since)
    harness.feed.mode = "good"
    harness.feed.silent = set()
    harness.wait_commands(5, timeout=30)


def test_a_malformed_observation_is_rejected_once_with_its_stamp(fed):
    """The contract with ``replay``: one ``rejected`` event per attempted observation, stamped
    as its chunk would have been; missing or stale inputs are not a rejection."""
    harness, node = fed
    slots = node.controller.session.inputs.slots
    halt_feed(harness)
    try:
        with harness.lock:
            camera_ns = harness.image_stamps[-1]
        # the last frames have landed (nothing else is on its way: the feed has ended)
        cameras = [slots[f"camera.{name}"] for name in harness.feed.cameras]
        wait_for(
            lambda: all(slot.state().stamp_ns == camera_ns for slot in cameras),
            10,
            "the node to hold the last camera frames",
        )
        faults = input_faults(node)
        since = time.time_ns()
        joint_ns = harness.publish_joints(nan=True)
        events = wait_for(lambda: harness.events("rejected", since), 10, "a rejected event")
        # the inputs stay fresh (input_timeout 1 s) while the worker looks again at every tick
        wait_ticks(node, 10)
        assert input_faults(node) == faults + 1, "the same observation was rejected again"
        event = events[0]
        assert event.input == "state.joints"
        assert event.stamp_ns == min(camera_ns, joint_ns)  # observation_stamp: oldest
        assert "NaN" in event.reason and len(event.reason) <= 200
        assert event.node == "/policy_node" and event.t_ns >= joint_ns
        # now the cameras turn stale: not a rejection
        wait_for(
            lambda: any(p["severity"] == "stale" for p in node.report().problems),
            10,
            "the cameras to turn stale",
        )
        assert input_faults(node) == faults + 1
        assert len(harness.events("rejected", since)) == 1
    finally:
        restart_feed(harness)


# --------------------------------------------------------------------- future stamps
def test_future_stamps_are_a_clock_skew_fault_and_never_block_replanning(fed):
    harness, node = fed
    since = time.time_ns()
    harness.feed.stamp_offset = 10.0
    skew_ns = wait_for(
        lambda: (st := node.controller.session.inputs.slots["camera.front"].state()).stamp_ns
        > st.recv_ns + 5e9
        and st.recv_ns,
        10,
        "a camera stamped 10 s ahead",
        poll=0.001,
    )
    visible_ns = time.time_ns()  # the skewed camera is in its slot (a chunk merged from here on
    # sees it; one computed from the good inputs before it may finish between skew_ns and now)
    wait_ticks(node)
    assert not commands_after(harness, skew_ns), "commands from inputs stamped 10 s ahead"
    level, message = inputs_diagnostic(harness, "clock skew")
    assert level == 2 and "max_future_stamp 0.25" in message
    rejected = harness.events("rejected", since)
    assert rejected and "ahead" in rejected[0].reason
    merged = [e for e in harness.events("chunk", since) if e.received_ns > visible_ns]
    assert not any(e.accepted for e in merged), "a chunk scheduled while an input was skewed"
    # correctly stamped input again: commands at once (no plan scheduled 10 s ahead)
    harness.feed.stamp_offset = 0.0
    good_ns = time.time_ns()
    harness.wait_commands(5, timeout=5, since_ns=good_ns)
    chunks = [e for e in harness.events("chunk", good_ns) if e.accepted]
    assert chunks and all(e.stamp_ns <= e.received_ns for e in chunks)


def test_a_stamp_within_the_tolerance_is_accepted(fed):
    harness, node = fed
    harness.feed.stamp_offset = 0.1  # ahead, but within max_future_stamp (0.25 s)
    since = time.time_ns()
    harness.wait_commands(10, timeout=30, since_ns=since)
    assert not harness.events("rejected", since)


# --------------------------------------------------------------------- task length
def test_a_huge_task_is_refused_and_never_echoed(fed):
    harness, node = fed
    huge = "put the cube in the bowl " * 4000  # 100 kB
    res = node.set_parameters([Parameter("task.text", value=huge)])[0]
    assert not res.successful and res.reason.startswith("task.text") and "1000" in res.reason
    assert node.get_parameter("task.text").value == TASK
    since = time.time_ns()
    harness.publish_task(huge)
    seen_ns = wait_for(
        lambda: node.controller.session.inputs.task_fault and time.time_ns(),
        10,
        "the task to be refused",
    )
    wait_ticks(node)
    assert not commands_after(harness, seen_ns), "commands with a refused task"
    level, message = inputs_diagnostic(harness, "characters")
    assert level == 2 and "100000 characters" in message and "at most 1000" in message
    assert [e for e in harness.events("rejected", since) if e.input == "task"]
    report = harness.latest_report()
    assert len(report.task) < 200
    for rec in harness.snapshot(harness.status, since):
        assert len(rec.msg.data) < 20_000 and huge[:2000] not in rec.msg.data
    for rec in harness.snapshot(harness.diagnostics, since):
        assert all(len(kv.value) < 300 for st in rec.msg.status for kv in st.values)
    harness.publish_task(TASK)
    harness.wait_commands(5, timeout=30)


# --------------------------------------------------------------------- parameters on set
REFUSED = [
    ("control_rate", 0.0),
    ("control_rate", -5.0),
    ("control_rate", math.inf),
    ("blend.mode", "bogus"),
    ("stats_window", 0),
    ("limits.upper", "x"),
    ("cameras.front.topic", 5),
    ("cameras.front.topic", ""),
    ("state.joints.names", ["joint_1", "joint_1"]),
    ("state.joints.type", "joint_states"),
    ("input_timeout", -1.0),
    ("max_future_stamp", 0.0),
    ("num_steps", "one"),
    ("hold_mode", "hold"),
    ("command.topic", "a b"),
    ("limits.lower", [math.nan]),
    ("limits.lower", [5.0]),  # above limits.upper (3.0 in config/policy.yaml)
    ("limits.lower", [0.0, 0.0, 0.0]),  # the policy has 7 action dimensions
    ("action_names", ["a", "b"]),
]


@pytest.mark.parametrize(("name", "value"), REFUSED, ids=[f"{n}={v!r}" for n, v in REFUSED])
def test_bad_parameter_values_are_refused_when_set(fed, name, value):
    """Whether the parameter applies now or at the next configure."""
    _, node = fed
    before = node.get_parameter(name).value
    res = node.set_parameters([Parameter(name, value=value)])[0]
    assert not res.successful, f"{name}={value!r} was accepted"
    assert res.reason.startswith(name.split(".")[0]), res.reason
    assert node.get_parameter(name).value == before


def test_good_values_for_the_next_configure_are_accepted(fed):
    _, node = fed
    for name, value, restore in (
        ("control_rate", 25, RATE),
        ("blend.mode", "exponential", "linear"),
        ("limits.upper", [2.0] * 7, [3.0]),
        ("cameras.front.topic", "/robot/front/image_raw", "camera/front/image_raw"),
    ):
        assert node.set_parameters([Parameter(name, value=value)])[0].successful, name
        assert node.set_parameters([Parameter(name, value=restore)])[0].successful, name


# --------------------------------------------------------------------- service log flood
def test_rapid_service_calls_do_not_flood_the_log(fed, capfd):
    _, node = fed
    capfd.readouterr()
    for _ in range(200):
        node._srv_pause(Trigger.Request(), Trigger.Response())
        node._srv_resume(Trigger.Request(), Trigger.Response())
        node._srv_reset(Trigger.Request(), Trigger.Response())
    err = capfd.readouterr().err
    lines = [
        line
        for line in err.splitlines()
        if any(k in line for k in ("paused:", "] [policy_node]: resumed", "reset: plan"))
    ]
    assert 3 <= len(lines) <= 12, f"{len(lines)} log lines for 600 service calls"
    assert not node.report().paused


# --------------------------------------------------------------------- non-finite policy output
def test_non_finite_policy_output_is_rejected_and_held(fed):
    harness, node = fed
    layer = node.controller.session.runtime.policy.model.action_out_proj
    saved = layer.weight.detach().clone()
    since = time.time_ns()
    try:
        with torch.no_grad():
            layer.weight.fill_(math.nan)
        event = wait_for(
            lambda: [e for e in harness.events("rejected", since) if e.input == "policy"],
            30,
            "a rejected event for the policy output",
        )[0]
        assert "NaN" in event.reason
        held_ns = wait_for(lambda: node.controller.fault and time.time_ns(), 10, "the node to hold")
        wait_ticks(node)
        assert not commands_after(harness, held_ns)
        level, message, _ = harness.latest_diagnostics()["inference"]
        assert level == 2 and "policy" in message
    finally:
        with torch.no_grad():
            layer.weight.copy_(saved)
    harness.wait_commands(5, timeout=30)
    for rec in harness.snapshot(harness.chunks, since):
        assert all(np.all(np.isfinite(p.positions)) for p in rec.msg.points)
