"""The LIBERO bridge over real DDS: topics, bad commands, a lock-step closed loop through the
policy node (tiny LIBERO-shaped policy), services, real-time mode and the assets error.

One bridge process serves the whole module (64x64 renders, no shadows); the tests run in
file order and share it. Isolation: a ROS domain of the session (``domain_id``), localhost
discovery and a namespace of their own.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from lifecycle_msgs.srv import GetState
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from snapflow_ros.client import NodeClient
from snapflow_ros.launching import write_params
from snapflow_ros.policies import libero_tiny_spec
from snapflow_ros.policies.tiny import ensure_tiny_checkpoint
from snapflow_ros.ros_conversions import image_to_rgb, stamp_to_ns
from snapflow_ros.sim import ARM_JOINTS, GRIPPER_JOINTS, LEROBOT_STATE_NAMES
from snapflow_ros.sim.episode_events import decode_episode_event
from snapflow_ros.sim.scripted_expert import PRIVILEGED_STATE_NAMES

from .harness import LoggedProcess, console_script, domain_id, ros_env, wait_for

REPO = Path(__file__).resolve().parents[2]
DOMAIN = domain_id(17)
NS = f"/lb{os.getpid()}"
DT_NS = 50_000_000
LEAD_NS = 10_000
EPISODE = 25


class Proc(LoggedProcess):
    """An executable of this package in the test namespace, logging to a file."""

    def __init__(self, exe: str, params: Path, log: Path, extra: list[str] | None = None) -> None:
        cmd = [
            console_script(exe),
            "--ros-args", "--params-file", str(params), "-r", f"__ns:={NS}", *(extra or []),
        ]  # fmt: skip
        super().__init__(cmd, ros_env(DOMAIN), log)


class Probe:
    """The test's ROS node (a client of the policy node): records the bridge's outputs and
    the policy's commands, calls the nodes' services."""

    def __init__(self) -> None:
        self.client = NodeClient(f"{NS}/policy_node", DOMAIN, name="libero_probe")
        self.node = self.client.node
        self.lock = threading.Lock()
        self.msgs: dict[str, list[tuple[int, Any]]] = {}
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=100,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        topics = {
            "agentview": (Image, f"{NS}/libero/agentview/image_raw", reliable),
            "wrist": (Image, f"{NS}/libero/wrist/image_raw", reliable),
            "joints": (JointState, f"{NS}/libero/joint_states", reliable),
            "pose": (PoseStamped, f"{NS}/libero/eef_pose", reliable),
            "state": (Float64MultiArray, f"{NS}/libero/state", reliable),
            "lerobot": (JointState, f"{NS}/libero/lerobot_state", reliable),
            "privileged": (JointState, f"{NS}/libero/privileged_state", reliable),
            "episode": (String, f"{NS}/libero/episode", latched),
            "clock": (Clock, "/clock", QoSProfile(depth=200)),
            "command": (JointState, f"{NS}/policy_node/command", reliable),
        }
        for key, (msg_type, topic, qos) in topics.items():
            self.msgs[key] = []
            self.node.create_subscription(msg_type, topic, self._record(key), qos)
        self.cmd_pub = self.node.create_publisher(JointState, f"{NS}/policy_node/command", reliable)

    def _record(self, key: str) -> Callable[[Any], None]:
        def callback(msg: Any) -> None:
            with self.lock:
                self.msgs[key].append((time.monotonic_ns(), msg))

        return callback

    def get(self, key: str, since: int = 0) -> list[Any]:
        with self.lock:
            return [m for t, m in self.msgs[key] if t >= since]

    def events(self, kind: str) -> list[Any]:
        """The episode events of ``kind`` received so far (decoded as every reader does)."""
        events = (decode_episode_event(m.data) for m in self.get("episode"))
        return [e for e in events if e.kind == kind]

    def latest_stamp(self) -> int:
        images = self.get("agentview")
        return stamp_to_ns(images[-1].header.stamp) if images else 0

    def call(self, srv_type: type, name: str, request: Any, timeout: float = 120.0) -> Any:
        return self.client.call(srv_type, name, request, timeout)

    def trigger(self, name: str) -> Trigger.Response:
        return self.call(Trigger, name, Trigger.Request())

    def set_params(self, node: str, **values: Any) -> list[Any]:
        changes = {k.replace("__", "."): v for k, v in values.items()}
        return self.client.try_set_parameters(changes, node, timeout=120.0)

    def command(self, values: list[float], names: list[str] | None = None) -> None:
        self.cmd_pub.publish(JointState(name=names or [], position=[float(v) for v in values]))

    def close(self) -> None:
        self.client.close()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("libero_bridge")


@pytest.fixture(scope="module")
def probe() -> Probe:
    p = Probe()
    yield p
    p.close()


@pytest.fixture(scope="module")
def bridge(workdir: Path, probe: Probe) -> Proc:
    params = write_params(
        REPO / "config" / "libero_bridge.yaml",
        "libero_bridge",
        {
            "image_height": 64,
            "image_width": 64,
            "fast_render": True,
            "episode_length": EPISODE,
            "privileged_state": True,  # libero_spatial task 0 (the bowl) has a scripted expert
        },
        workdir / "bridge.yaml",
    )
    proc = Proc("libero_bridge", params, workdir / "bridge.log")
    try:
        wait_for(
            lambda: probe.events("start") or proc.proc.poll() is not None,
            180,
            "the bridge's first episode",
        )
        assert proc.proc.poll() is None, proc.log()[-3000:]
        yield proc
    finally:
        code = proc.stop()
        assert code == 0, proc.log()[-3000:]


@pytest.fixture(scope="module")
def policy(workdir: Path, tiny_cache: Path, bridge: Proc, probe: Probe) -> Proc:
    ckpt = ensure_tiny_checkpoint(libero_tiny_spec("smolvla"), tiny_cache)
    params = write_params(
        REPO / "config" / "libero_policy.yaml",
        "policy_node",
        {
            "policy_path": str(ckpt),
            "torch_threads": 1,
        },
        workdir / "policy.yaml",
    )
    proc = Proc("policy_node", params, workdir / "policy.log")
    try:
        state = probe.call(GetState, f"{NS}/policy_node/get_state", GetState.Request(), 180)
        assert state.current_state.label == "active", proc.log()[-3000:]
        yield proc
    finally:
        proc.stop()


def test_missing_assets_exit_with_a_clear_error(workdir: Path):
    empty = workdir / "empty_assets"
    empty.mkdir()
    params = write_params(
        REPO / "config" / "libero_bridge.yaml",
        "libero_bridge",
        {"assets_path": str(empty)},
        workdir / "bad.yaml",
    )
    proc = Proc("libero_bridge", params, workdir / "bad.log")
    try:
        proc.proc.wait(120)
    finally:
        proc.stop()
    log = proc.log()
    assert proc.proc.returncode == 1, log[-2000:]
    assert "LIBERO setup failed" in log and str(empty) in log and "missing or empty" in log


def test_publishes_the_observation_task_and_clock(bridge: Proc, probe: Probe):
    start = probe.events("start")[0]
    assert start.suite == "libero_spatial" and start.task_index == 0
    assert start.mode == "lockstep" and start.max_steps == EPISODE
    first = start.first_stamp_ns
    wait_for(
        lambda: probe.get("agentview")
        and probe.get("wrist")
        and probe.get("state")
        and probe.get("joints")
        and probe.get("lerobot")
        and probe.get("privileged")
        and probe.get("pose")
        and probe.get("clock"),
        60,
        "every bridge topic",
    )
    images = {}
    for cam, frame in (("agentview", "agentview"), ("wrist", "robot0_eye_in_hand")):
        msg = probe.get(cam)[-1]
        assert (msg.encoding, msg.height, msg.width) == ("rgb8", 64, 64)
        assert msg.header.frame_id == frame and stamp_to_ns(msg.header.stamp) == first
        images[cam] = image_to_rgb(msg)
    assert not np.array_equal(images["agentview"], images["wrist"])
    joints = probe.get("joints")[-1]
    assert list(joints.name) == [*ARM_JOINTS, *GRIPPER_JOINTS] and len(joints.velocity) == 9
    pose = probe.get("pose")[-1]
    state = np.array(probe.get("state")[-1].data)
    assert pose.header.frame_id == "world" and state.shape == (8,)
    p = pose.pose.position
    np.testing.assert_allclose(state[:3], [p.x, p.y, p.z], atol=1e-6)
    np.testing.assert_allclose(state[6:], list(joints.position)[7:], atol=1e-6)
    lerobot = probe.get("lerobot")[-1]
    assert list(lerobot.name) == list(LEROBOT_STATE_NAMES)
    assert stamp_to_ns(lerobot.header.stamp) == first
    np.testing.assert_array_equal(np.array(lerobot.position), state)
    privileged = probe.get("privileged")[-1]
    assert list(privileged.name) == list(PRIVILEGED_STATE_NAMES)
    assert stamp_to_ns(privileged.header.stamp) == first and privileged.header.frame_id == "world"
    bowl, plate = np.array(privileged.position[:3]), np.array(privileged.position[3:])
    assert 0.85 < bowl[2] < 0.95 and 0.85 < plate[2] < 0.95  # both bases on the table (z 0.90)
    assert np.linalg.norm(bowl[:2] - plate[:2]) > 0.05
    # /clock sits just behind the observation stamps (kicks also send it one period back)
    clocks = wait_for(
        lambda: (c := {stamp_to_ns(m.clock) for m in probe.get("clock")}) >= {first - LEAD_NS}
        and c,
        30,
        "the clock",
    )
    assert clocks <= {first - LEAD_NS, first - LEAD_NS - DT_NS}
    ctx = Context()  # a late subscriber still gets the latched task
    rclpy.init(context=ctx, domain_id=DOMAIN)
    node = rclpy.create_node("late_task", context=ctx)
    got: list[str] = []
    qos = QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    node.create_subscription(String, f"{NS}/libero/task", lambda m: got.append(m.data), qos)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    assert got == [start.task] and "black bowl" in got[0]


def test_bad_commands_are_rejected_and_the_bridge_keeps_going(bridge: Proc, probe: Probe):
    wait_for(lambda: probe.cmd_pub.get_subscription_count() > 0, 30, "the command subscription")
    before = probe.latest_stamp()
    probe.command([0, 0, float("nan"), 0, 0, 0, -1])
    probe.command([0.1] * 6)
    probe.command([0.1] * 7, names=["a", "b", "c", "d", "e", "f", "g"])
    wait_for(
        lambda: "6 values, expected 7" in bridge.log()
        and "NaN/inf" in bridge.log()
        and "do not provide" in bridge.log(),
        30,
        "the rejection messages",
    )
    time.sleep(1.0)
    assert probe.latest_stamp() == before, "a rejected command moved the simulation"
    assert bridge.proc.poll() is None
    probe.command([2.0, 0, 0, 0, 0, 0, -1])  # out of range: clipped (config: clip) and applied
    wait_for(lambda: probe.latest_stamp() == before + DT_NS, 30, "one step after a valid command")
    wait_for(lambda: "clipped" in bridge.log(), 30, "the clipping warning")
    time.sleep(0.5)
    assert probe.latest_stamp() == before + DT_NS  # lock-step: one command, one step


def test_closed_loop_episode_through_the_policy_node(bridge: Proc, policy: Proc, probe: Probe):
    node = f"{NS}/policy_node"
    assert probe.trigger(f"{node}/pause").success
    since, since_wall = time.monotonic_ns(), time.time_ns()
    reply = probe.trigger(f"{NS}/libero_bridge/reset")
    assert reply.success, reply.message
    info = decode_episode_event(reply.message)
    assert probe.trigger(f"{node}/reset").success and probe.trigger(f"{node}/resume").success
    end = wait_for(
        lambda: [e for e in probe.events("end") if e.episode_id == info.episode_id],
        240,
        "the end of the closed-loop episode",
    )[0]
    assert (end.steps, end.reason, end.success) == (EPISODE, "max_steps", False)
    assert end.commands.applied == EPISODE and end.commands.rejected == 0
    t0 = info.first_stamp_ns
    stamps = sorted(
        {s for m in probe.get("agentview", since) if (s := stamp_to_ns(m.header.stamp)) >= t0}
    )
    assert stamps == [t0 + k * DT_NS for k in range(EPISODE + 1)]  # one frame per step
    commands = sorted(
        {s for m in probe.get("command", since) if (s := stamp_to_ns(m.header.stamp)) >= t0 - DT_NS}
    )
    assert [t0 + k * DT_NS - LEAD_NS for k in range(EPISODE)] == commands[:EPISODE]
    chunks = probe.client.events("chunk", since_wall)
    chunk_stamps = sorted(c.stamp_ns for c in chunks if c.accepted)
    # whole chunks (10 actions), re-planned from the observation at steps 0, 10, 20 (25: after)
    assert chunk_stamps[:3] == [t0, t0 + 10 * DT_NS, t0 + 20 * DT_NS]
    assert end.kicks >= 3 and end.steps_per_s > 0


def test_services_and_parameter_checks(bridge: Proc, policy: Proc, probe: Probe):
    bad = probe.set_params(f"{NS}/libero_bridge", suite="libero_99")
    assert not bad[0].successful and "unknown LIBERO suite" in bad[0].reason
    bad = probe.set_params(f"{NS}/libero_bridge", task_index=12)
    assert not bad[0].successful and "tasks 0..9" in bad[0].reason
    bad = probe.set_params(f"{NS}/libero_bridge", image_height=32)
    assert not bad[0].successful and "start-up" in bad[0].reason
    bad = probe.set_params(f"{NS}/libero_bridge", task_index=5)  # no object/target to publish
    assert not bad[0].successful and "privileged_state: no scripted expert" in bad[0].reason
    last = probe.events("start")[-1]
    assert probe.trigger(f"{NS}/policy_node/pause").success
    reply = probe.trigger(f"{NS}/libero_bridge/next_episode")
    assert reply.success, reply.message
    info = decode_episode_event(reply.message)
    assert info.init_state_index == last.init_state_index + 1
    assert info.episode_id == last.episode_id + 1


def test_realtime_mode_runs_on_the_wall_clock_with_noops(bridge: Proc, policy: Proc, probe: Probe):
    assert probe.trigger(f"{NS}/policy_node/pause").success  # no commands: every step a no-op
    results = probe.set_params(
        f"{NS}/libero_bridge", mode="realtime", episode_length=8, realtime__wait_first_command=False
    )
    assert all(r.successful for r in results), [r.reason for r in results]
    since = time.monotonic_ns()
    reply = probe.trigger(f"{NS}/libero_bridge/reset")
    assert reply.success, reply.message
    info = decode_episode_event(reply.message)
    assert info.mode == "realtime" and info.stamps == "wall"
    end = wait_for(
        lambda: [e for e in probe.events("end") if e.episode_id == info.episode_id],
        120,
        "the end of the real-time episode",
    )[0]
    assert (end.steps, end.noop_steps, end.commands.applied) == (8, 8, 0)
    assert end.wall_s >= 8 * 0.05 * 0.95  # never faster than 20 Hz
    stamps = [stamp_to_ns(m.header.stamp) for m in probe.get("agentview", since)]
    assert stamps and abs(stamps[-1] - time.time_ns()) < 60e9  # wall-clock stamps
