"""ROS 2 bridge to a simulated LIBERO task: cameras, robot state and task out, actions in.

Runs one LIBERO task headless (:class:`snapflow_ros.sim.LiberoSim`), publishes what a robot
driver would, applies the 7-D commands of a policy node as LIBERO actions, and reports
episode results. Topics, parameters, services and the two timing modes are documented in
``docs/libero.md``; in short:

* out: ``libero/agentview/image_raw``, ``libero/wrist/image_raw`` (``sensor_msgs/Image`` rgb8,
  upright), ``libero/joint_states`` (arm + finger joints), ``libero/eef_pose``
  (``PoseStamped``), ``libero/state`` (LeRobot's 8-D state, ``Float64MultiArray``) and
  ``libero/lerobot_state`` (the same, stamped, as a ``JointState``), with
  ``privileged_state: true`` also ``libero/privileged_state`` (``JointState``: the task
  object's and its target's positions, for policies trained on privileged demonstrations),
  ``libero/task`` (latched ``String``), ``libero/episode`` (JSON events of
  :mod:`snapflow_ros.sim.episode_events`), ``/clock``
  (lock-step only);
* in: ``command.topic`` (``JointState`` positions or ``Float64MultiArray``, 7 values);
* services: ``~/reset`` (restart the episode with the current parameters),
  ``~/next_episode`` (next initial state, then reset);
* ``mode: lockstep``: one simulation step per command, stamps and ``/clock`` in simulation
  time (run the policy node with ``use_sim_time: true``); ``mode: realtime``: a 20 Hz wall
  clock, stamps in wall time, a missing command is replaced by a no-op (or held).

The logic (episodes, commands, the lock-step clock protocol, real-time pacing) is the
ROS-free :class:`~snapflow_ros.sim.episodes.EpisodeDriver`; the parameters are the table of
:mod:`snapflow_ros.params.libero_bridge`, declared and checked by a
:class:`~snapflow_ros.nodes.parameters.ParameterListener`; this node converts messages and
runs the driver's simulation thread (the simulator's OpenGL context is bound to it). ROS
callbacks only hand commands and requests to the driver.

Run: ``libero_bridge --ros-args --params-file config/libero_bridge.yaml``.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from snapflow_ros.nodes.parameters import ParameterListener
from snapflow_ros.nodes.policy_calls import PolicyCalls
from snapflow_ros.nodes.process import exit_process, init_ros, log_at, spin
from snapflow_ros.params.libero_bridge import FIXED, NODE_NAME, TABLE, check_privileged, sim_config
from snapflow_ros.ros_conversions import ns_to_stamp_fields, rgb_to_image_fields, stamp_to_ns
from snapflow_ros.sim import (
    ARM_JOINTS,
    GRIPPER_JOINTS,
    LEROBOT_STATE_NAMES,
    MUJOCO_CAMERAS,
    LiberoSetupError,
    LiberoSim,
    prepare_libero,
    validate_action,
)
from snapflow_ros.sim.episode_events import EpisodeEvent, to_json
from snapflow_ros.sim.episodes import EpisodeDriver
from snapflow_ros.sim.scripted_expert import PRIVILEGED_STATE_NAMES

STATE_LABEL = "eef_pos(3) axis_angle(3) gripper_qpos(2)"


class LiberoBridge(Node):
    """The bridge node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.params = ParameterListener(
            self, TABLE, cross_check=check_privileged, first_error_only=True, fixed=FIXED
        )
        self.params.check_all()
        self.params.listen()
        self._lock = threading.Lock()
        self._cached_msgs: list[tuple[Any, Any]] = []
        self._paths: Any = None
        self.driver = EpisodeDriver(
            self._p,
            lambda name, value: self.set_parameters([Parameter(name, value=value)]),
            self,
            lambda: LiberoSim(sim_config(self._p), paths=self._paths),
            validate_action,
        )

        prefix = str(self._p("topic_prefix")).strip("/")
        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=1,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        events = QoSProfile(
            depth=100,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self._cam_pubs = {
            name: self.create_publisher(Image, f"{prefix}/{name}/image_raw", reliable)
            for name in MUJOCO_CAMERAS
        }
        self._joint_pub = self.create_publisher(JointState, f"{prefix}/joint_states", reliable)
        self._pose_pub = self.create_publisher(PoseStamped, f"{prefix}/eef_pose", reliable)
        self._state_pub = self.create_publisher(Float64MultiArray, f"{prefix}/state", reliable)
        self._lerobot_pub = self.create_publisher(JointState, f"{prefix}/lerobot_state", reliable)
        self._video_pubs = {
            name: self.create_publisher(Image, f"{prefix}/{name}/video_raw", reliable)
            for name in (self._p("video.cameras") if self._p("video.size") > 0 else ())
        }
        self._privileged_pub = (
            self.create_publisher(JointState, f"{prefix}/privileged_state", reliable)
            if self._p("privileged_state")
            else None
        )
        self._task_pub = self.create_publisher(String, f"{prefix}/task", latched)
        self._episode_pub = self.create_publisher(String, f"{prefix}/episode", events)
        self._clock_pub = self.create_publisher(Clock, "/clock", QoSProfile(depth=1))

        ctype = str(self._p("command.type"))
        msg_type = JointState if ctype == "joint_state" else Float64MultiArray
        self._cb_cmd = MutuallyExclusiveCallbackGroup()
        self._cb_srv = ReentrantCallbackGroup()
        self.create_subscription(
            msg_type,
            str(self._p("command.topic")),
            self._on_command,
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
            callback_group=self._cb_cmd,
        )
        self.create_subscription(
            JointTrajectory,
            str(self._p("render.chunk_topic")),
            self._on_chunk,
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
            callback_group=self._cb_cmd,
        )
        policy = str(self._p("policy_node")).strip()
        self._policy_calls = PolicyCalls(self, policy, self._cb_srv)
        self.create_service(Trigger, "~/reset", self._srv_reset, callback_group=self._cb_srv)
        self.create_service(Trigger, "~/next_episode", self._srv_next, callback_group=self._cb_srv)
        self._sim_thread = threading.Thread(target=self.driver.run, name="libero_sim", daemon=True)

    # ================================================================== parameters
    def _p(self, name: str) -> Any:
        return self.params.value(name)

    # ================================================================== commands and services
    def _on_command(self, msg: Any) -> None:
        if isinstance(msg, JointState):
            names = list(msg.name) or None
            self.driver.command(list(msg.position), stamp_to_ns(msg.header.stamp), names)
        else:
            self.driver.command(list(msg.data))

    def _on_chunk(self, msg: JointTrajectory) -> None:
        self.driver.chunk(stamp_to_ns(msg.header.stamp), len(msg.points))

    def policy(self, action: str, seed: int | None = None) -> str:
        """Ask the policy node to pause, reset (with ``seed``: its seed set first) or resume:
        '' when done, else why not (the driver's outputs)."""
        return self._policy_calls(action, seed)

    def _srv_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self.driver.request("reset")
        return response

    def _srv_next(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self.driver.request("next")
        return response

    # ================================================================== simulation thread
    @property
    def fatal(self) -> str:
        """Why the simulation stopped for good ('' while it runs)."""
        return self.driver.fatal

    def start(self, paths: Any) -> None:
        """Start the simulation thread (``paths``: what :func:`prepare_libero` returned)."""
        self._paths = paths
        self._sim_thread.start()

    def stop(self) -> None:
        """Stop the simulation thread (the episode in progress ends with reason 'shutdown')."""
        self.driver.stop()
        self._policy_calls.cancel()  # a policy call in flight must not hold the stop
        if self._sim_thread.is_alive():
            self._sim_thread.join(30.0)

    # ================================================================== driver outputs
    def _header(self, msg: Any, stamp_ns: int, frame: str) -> Any:
        msg.header.stamp.sec, msg.header.stamp.nanosec = ns_to_stamp_fields(stamp_ns)
        msg.header.frame_id = frame
        return msg

    def observation(self, obs: Any, stamp_ns: int, privileged: np.ndarray | None = None) -> None:
        """Publish an observation (the driver's outputs, see
        :class:`~snapflow_ros.sim.episodes.BridgeOutputs`)."""
        msgs: list[tuple[Any, Any]] = []
        for name, img in obs.images.items():
            msg = self._header(
                Image(**rgb_to_image_fields(img, "rgb8")), stamp_ns, MUJOCO_CAMERAS[name]
            )
            msgs.append((self._cam_pubs[name], msg))
        for name, img in obs.video.items():
            msg = self._header(
                Image(**rgb_to_image_fields(img, "rgb8")), stamp_ns, MUJOCO_CAMERAS[name]
            )
            msgs.append((self._video_pubs[name], msg))
        js = self._header(JointState(), stamp_ns, "")
        js.name = [*ARM_JOINTS, *GRIPPER_JOINTS]
        js.position = [*obs.joint_pos.tolist(), *obs.gripper_qpos.tolist()]
        js.velocity = [*obs.joint_vel.tolist(), *obs.gripper_qvel.tolist()]
        msgs.append((self._joint_pub, js))
        pose = self._header(PoseStamped(), stamp_ns, str(self._p("world_frame")))
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = obs.eef_pos.tolist()
        o = pose.pose.orientation
        o.x, o.y, o.z, o.w = obs.eef_quat.tolist()
        msgs.append((self._pose_pub, pose))
        state = Float64MultiArray(data=obs.state.astype(np.float64).tolist())
        state.layout.dim = [MultiArrayDimension(label=STATE_LABEL, size=8, stride=8)]
        msgs.append((self._state_pub, state))
        stamped = self._header(JointState(), stamp_ns, "")
        stamped.name = list(LEROBOT_STATE_NAMES)
        stamped.position = state.data
        msgs.append((self._lerobot_pub, stamped))
        if self._privileged_pub is not None and privileged is not None:
            extra = self._header(JointState(), stamp_ns, str(self._p("world_frame")))
            extra.name = list(PRIVILEGED_STATE_NAMES)
            extra.position = privileged.astype(np.float64).tolist()
            msgs.append((self._privileged_pub, extra))
        for pub, msg in msgs:
            pub.publish(msg)
        with self._lock:
            self._cached_msgs = msgs

    def republish(self, stamp_ns: int | None = None) -> None:
        """Publish the current observation again (late subscribers; realtime: fresh stamps)."""
        with self._lock:
            msgs = list(self._cached_msgs)
        for pub, msg in msgs:
            if stamp_ns is not None and hasattr(msg, "header"):
                msg.header.stamp.sec, msg.header.stamp.nanosec = ns_to_stamp_fields(stamp_ns)
            pub.publish(msg)

    def clock(self, ns: int) -> None:
        """Publish ``/clock``."""
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = ns_to_stamp_fields(ns)
        self._clock_pub.publish(msg)

    def task(self, text: str) -> None:
        """Publish the task (latched)."""
        self._task_pub.publish(String(data=text))

    def episode(self, event: EpisodeEvent) -> None:
        """Publish an episode event as JSON (:func:`~snapflow_ros.sim.episode_events.to_json`)."""
        self._episode_pub.publish(String(data=to_json(event)))

    def log(self, level: str, message: str) -> None:
        """Log through the node's logger."""
        log_at(self.get_logger(), level, message)


HELP = """\
ROS 2 bridge to a simulated LIBERO task (headless MuJoCo): camera images, robot state and the
task out, 7-D policy commands in; lock-step (one simulation step per command, /clock in
simulation time: run the policy node with use_sim_time) or real time (20 Hz wall clock).

example:
  libero_bridge --ros-args --params-file config/libero_bridge.yaml -p task_index:=3

Topics, parameters, services and the timing modes: docs/libero.md."""


def main(args: list[str] | None = None) -> int:
    """Entry point of ``libero_bridge`` (Ctrl-C / SIGTERM: clean stop, then the process ends at
    once; setup errors: exit 1)."""
    stop = init_ros(args, NODE_NAME, HELP)
    try:
        node = LiberoBridge()
    except (ValueError, ParameterException) as exc:
        print(f"libero_bridge: bad parameter: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        paths = prepare_libero(
            str(node.get_parameter("assets_path").value) or None,
            gl=str(node.get_parameter("gl").value),
            render=bool(node.get_parameter("render").value),
        )
    except LiberoSetupError as exc:
        node.get_logger().error(f"LIBERO setup failed: {exc}")
        node.destroy_node()
        rclpy.try_shutdown()
        return 1
    node.get_logger().info(f"LIBERO assets {paths.assets}, rendering with {paths.gl_backend}")
    node.start(paths)  # services wait for the simulation thread, which never needs the executor
    try:
        spin(node, stop, done=lambda: node.fatal)
    finally:
        node.stop()
        node.get_logger().info("libero bridge stopped")
        node.destroy_node()
        rclpy.try_shutdown()
    exit_process(1 if node.fatal else 0)


if __name__ == "__main__":
    sys.exit(main())
