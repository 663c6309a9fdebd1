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
ROS-free :class:`~snapflow_ros.sim.episodes.EpisodeDriver`; this node declares and
checks the parameters, converts messages and runs the driver's simulation thread (the
simulator's OpenGL context is bound to it). ROS callbacks only hand commands and requests to
the driver.

Run: ``libero_bridge --ros-args --params-file config/libero_bridge.yaml``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
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

from snapflow_ros.nodes.process import exit_process, init_ros, log_at, spin
from snapflow_ros.ros_conversions import ns_to_stamp_fields, rgb_to_image_fields, stamp_to_ns
from snapflow_ros.sim import (
    ARM_JOINTS,
    GRIPPER_JOINTS,
    LEROBOT_STATE_NAMES,
    MUJOCO_CAMERAS,
    LiberoSetupError,
    LiberoSim,
    SimConfig,
    prepare_libero,
    validate_action,
)
from snapflow_ros.sim.episode_events import EpisodeEvent, to_json
from snapflow_ros.sim.episodes import NO_POLICY_NODE, EpisodeDriver, privileged_task
from snapflow_ros.sim.scripted_expert import PRIVILEGED_STATE_NAMES
from snapflow_ros.sim.suites import (
    CONTROL_FREQ,
    check_init_state,
    check_suite,
    check_task,
)

NODE_NAME = "libero_bridge"
MODES = ("lockstep", "realtime")
POLICY_ACTIONS = ("pause", "reset", "resume")  # what auto_next asks of the policy node
POLICY_CALL_TIMEOUT = 10.0  # s
COMMAND_TYPES = ("joint_state", "float64_multi_array")
MISSING_MODES = ("noop", "hold")
STATE_LABEL = "eef_pos(3) axis_angle(3) gripper_qpos(2)"

# name, default, description; "runtime" ones apply at the next reset.
PARAMS: list[tuple[str, Any, str]] = [
    ("suite", "libero_spatial", "LIBERO suite (runtime: next reset)."),
    ("task_index", 0, "Task of the suite (runtime: next reset)."),
    ("init_state_index", 0, "Benchmark initial state 0..49 (runtime: next reset)."),
    ("episode_length", 0, "Step limit of an episode; 0: the suite's (LeRobot's) value."),
    (
        "mode",
        "lockstep",
        "lockstep (one step per command, sim time) or realtime (20 Hz wall clock).",
    ),
    ("settle_steps", 10, "No-op steps after each reset (not counted, not published)."),
    ("image_height", 256, "Camera image height."),
    ("image_width", 256, "Camera image width."),
    ("render", True, "Render the cameras (false: physics only, no images published)."),
    (
        "video.size",
        0,
        "Also render video.cameras at this size for people (<prefix>/<camera>/video_raw; "
        "0: none). The policy's images keep image_height x image_width.",
    ),
    ("video.cameras", ["agentview"], "Cameras of video.size (agentview, wrist)."),
    ("fast_render", False, "No shadows/reflections: faster, but images differ from the datasets'."),
    ("hard_reset", True, "Rebuild the MuJoCo model at each reset (LeRobot's default)."),
    ("seed", 0, "Seed passed to LIBERO's env.seed at each reset (<0: none)."),
    ("assets_path", "", "LIBERO assets folder ('' : $LIBERO_ASSETS_PATH or the assets packages)."),
    ("gl", "auto", "OpenGL backend: auto (EGL, then OSMesa), egl or osmesa."),
    ("autostart", True, "Start the first episode at start-up (false: wait for ~/reset)."),
    ("auto_next", False, "After an episode ends, start the next initial state by itself."),
    (
        "policy_node",
        "",
        "auto_next: the policy node to pause, reset and resume around each new episode, as "
        "libero_eval does ('' : none; relative names follow the namespace).",
    ),
    ("command.type", "joint_state", "joint_state (positions) or float64_multi_array."),
    ("command.topic", "policy_node/command", "Command topic (7 values: deltas + gripper)."),
    ("command.names", None, "JointState names in action order (unset: positions in order)."),
    ("command.out_of_range", "clip", "Values outside [-1, 1]: clip (warn) or reject."),
    (
        "realtime.missing",
        "noop",
        "realtime, no new command for a step: noop or hold (repeat last).",
    ),
    (
        "realtime.command_timeout",
        0.5,
        "realtime + hold: repeat the last command at most this long (s).",
    ),
    (
        "realtime.wait_first_command",
        True,
        "realtime: keep the episode at step 0 until a command comes.",
    ),
    (
        "lockstep.kick_period",
        0.05,
        "lockstep: re-trigger the policy node's tick after this wait (s).",
    ),
    ("lockstep.clock_delay", 0.01, "lockstep: pause between an observation and its /clock (s)."),
    ("lockstep.stamp_lead", 1e-5, "lockstep: observation stamps lead /clock by this much (s)."),
    ("lockstep.kick_max", 0.5, "lockstep: longest wait between re-triggers (s; doubles up to it)."),
    (
        "render.on_demand",
        False,
        "lockstep: render the cameras only for the observations the policy node reads (where "
        "its last chunk runs out, at least every render.max_age); other steps publish the "
        "state without images. For whole-chunk policies (no replan threshold) without video.",
    ),
    (
        "render.chunk_topic",
        "policy_node/action_chunk",
        "render.on_demand: the policy node's chunk topic (trajectory_msgs/JointTrajectory).",
    ),
    (
        "render.max_age",
        0.5,
        "render.on_demand: render at least this often (s of simulation time; keep it under "
        "the policy node's input_timeout).",
    ),
    ("clock.start", 1.0, "Simulation time of the first episode (s)."),
    (
        "clock.reset_gap",
        10.0,
        "Simulation time skipped at each reset (s; expires old plans/inputs).",
    ),
    (
        "privileged_state",
        False,
        "Also publish the task object's and its target's positions on libero/privileged_state "
        "(for policies trained on --privileged demonstrations; tasks with a scripted expert).",
    ),
    ("topic_prefix", "libero", "Prefix of the published topics."),
    ("world_frame", "world", "frame_id of poses."),
]
RUNTIME = {
    "render.on_demand",
    "render.max_age",
    "suite",
    "task_index",
    "init_state_index",
    "episode_length",
    "mode",
    "auto_next",
    "command.out_of_range",
    "realtime.missing",
    "realtime.command_timeout",
    "realtime.wait_first_command",
    "lockstep.kick_period",
    "lockstep.kick_max",
    "lockstep.clock_delay",
}


class LiberoBridge(Node):
    """The bridge node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for name, default, text in PARAMS:
            value = Parameter.Type.STRING_ARRAY if default is None else default
            self.declare_parameter(name, value, ParameterDescriptor(description=text))
        self._validate_all()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._lock = threading.Lock()
        self._cached_msgs: list[tuple[Any, Any]] = []
        self._paths: Any = None
        self.driver = EpisodeDriver(
            self._p,
            lambda name, value: self.set_parameters([Parameter(name, value=value)]),
            self,
            lambda: LiberoSim(self._sim_config(), paths=self._paths),
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
        self._policy_clients = (
            {
                action: self.create_client(
                    Trigger, f"{policy}/{action}", callback_group=self._cb_srv
                )
                for action in POLICY_ACTIONS
            }
            if policy
            else {}
        )
        self.create_service(Trigger, "~/reset", self._srv_reset, callback_group=self._cb_srv)
        self.create_service(Trigger, "~/next_episode", self._srv_next, callback_group=self._cb_srv)
        self._sim_thread = threading.Thread(target=self.driver.run, name="libero_sim", daemon=True)

    # ================================================================== parameters
    def _p(self, name: str) -> Any:
        return self.get_parameter(name).value

    @staticmethod
    def _check(name: str, value: Any, current: Callable[[str], Any]) -> None:
        """Raise ValueError if ``value`` is not acceptable for parameter ``name``."""
        choices = {
            "mode": MODES,
            "command.type": COMMAND_TYPES,
            "command.out_of_range": ("clip", "reject"),
            "realtime.missing": MISSING_MODES,
            "gl": ("auto", "egl", "osmesa"),
        }
        if name in choices and value not in choices[name]:
            raise ValueError(f"{name}: must be one of {', '.join(choices[name])}, got {value!r}")
        if name == "suite":
            check_suite(value)
        elif name == "task_index":
            check_task(current("suite"), value)
        elif name == "init_state_index":
            check_init_state(value)
        elif name == "video.size" and not (value == 0 or 16 <= value <= 2048):
            raise ValueError(f"video.size: must be 0 or in 16..2048, got {value}")
        elif name == "video.cameras" and (
            not value or any(c not in MUJOCO_CAMERAS for c in value) or len(set(value)) < len(value)
        ):
            raise ValueError(
                f"video.cameras: one or both of {', '.join(MUJOCO_CAMERAS)}, got {list(value)}"
            )
        elif name in ("image_height", "image_width") and not 16 <= value <= 2048:
            raise ValueError(f"{name}: must be in 16..2048, got {value}")
        elif name in ("episode_length", "settle_steps") and value < 0:
            raise ValueError(f"{name}: must be >= 0, got {value}")
        elif name in (
            "lockstep.kick_period",
            "lockstep.kick_max",
            "realtime.command_timeout",
            "render.max_age",
        ) and (not value > 0):
            raise ValueError(f"{name}: must be > 0, got {value}")
        elif name == "lockstep.clock_delay" and not 0 <= value <= 1:
            raise ValueError(f"lockstep.clock_delay: must be in [0, 1] s, got {value}")
        elif name == "lockstep.stamp_lead" and not 0 <= value <= 0.1 / CONTROL_FREQ:
            raise ValueError(f"lockstep.stamp_lead: must be in [0, {0.1 / CONTROL_FREQ}] s")
        elif name == "clock.start" and not value > 0:
            raise ValueError("clock.start: must be > 0 (time 0 means 'unset' in ROS)")

    def _validate_all(self) -> None:
        for name, _, _ in PARAMS:
            self._check(name, self._p(name), self._p)
        privileged_task(self._p, str(self._p("suite")), int(self._p("task_index")))

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        values = {p.name: p.value for p in params}

        def current(name: str) -> Any:
            return values.get(name, self._p(name))

        for p in params:
            if p.name in ("use_sim_time",):
                continue
            if p.name not in RUNTIME:
                return SetParametersResult(
                    successful=False, reason=f"{p.name} is fixed at start-up (restart the bridge)"
                )
            try:
                self._check(p.name, p.value, current)
            except (ValueError, TypeError) as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        try:  # the next task must have an object and target to publish
            privileged_task(current, str(current("suite")), int(current("task_index")))
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    # ================================================================== commands and services
    def _on_command(self, msg: Any) -> None:
        if isinstance(msg, JointState):
            names = list(msg.name) or None
            self.driver.command(list(msg.position), stamp_to_ns(msg.header.stamp), names)
        else:
            self.driver.command(list(msg.data))

    def _on_chunk(self, msg: JointTrajectory) -> None:
        self.driver.chunk(stamp_to_ns(msg.header.stamp), len(msg.points))

    def policy(self, action: str, timeout: float = POLICY_CALL_TIMEOUT) -> str:
        """Call the policy node's ``~/<action>`` (pause, reset, resume); '' when it
        succeeded, else why not (the driver's outputs)."""
        client = self._policy_clients.get(action)
        if client is None:
            return NO_POLICY_NODE
        if not client.wait_for_service(timeout_sec=timeout):
            return f"{client.srv_name} is not available"
        done = threading.Event()
        future = client.call_async(Trigger.Request())
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            future.cancel()
            return f"{client.srv_name}: no answer within {timeout:.0f} s"
        result = future.result()
        if result is None or not result.success:
            return f"{client.srv_name}: {getattr(result, 'message', '') or 'failed'}"
        return ""

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
        if self._sim_thread.is_alive():
            self._sim_thread.join(30.0)

    def _sim_config(self) -> SimConfig:
        return SimConfig(
            suite=str(self._p("suite")),
            task_index=int(self._p("task_index")),
            init_state_index=int(self._p("init_state_index")),
            image_height=int(self._p("image_height")),
            image_width=int(self._p("image_width")),
            render=bool(self._p("render")),
            fast_render=bool(self._p("fast_render")),
            settle_steps=int(self._p("settle_steps")),
            max_steps=int(self._p("episode_length")),
            hard_reset=bool(self._p("hard_reset")),
            seed=int(self._p("seed")),
            assets_path=str(self._p("assets_path")),
            gl=str(self._p("gl")),
            video_size=int(self._p("video.size")),
            video_cameras=tuple(self._p("video.cameras")),
        )

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
