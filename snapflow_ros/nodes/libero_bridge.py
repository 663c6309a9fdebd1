"""ROS 2 bridge to a simulated LIBERO task: cameras, robot state and task out, actions in.

Runs one LIBERO task headless (:class:`snapflow_ros.sim.LiberoSim`), publishes what a robot
driver would, applies the 7-D commands of a policy node as LIBERO actions, and reports
episode results. Topics, parameters, services and the two timing modes are documented in
``docs/libero.md``; in short:

* out: ``libero/agentview/image_raw``, ``libero/wrist/image_raw`` (``sensor_msgs/Image`` rgb8,
  upright), ``libero/joint_states`` (arm + finger joints), ``libero/eef_pose``
  (``PoseStamped``), ``libero/state`` (LeRobot's 8-D state, ``Float64MultiArray``) and
  ``libero/lerobot_state`` (the same, stamped, as a ``JointState``),
  ``libero/task`` (latched ``String``), ``libero/episode`` (JSON events), ``/clock``
  (lock-step only);
* in: ``command.topic`` (``JointState`` positions or ``Float64MultiArray``, 7 values);
* services: ``~/reset`` (restart the episode with the current parameters),
  ``~/next_episode`` (next initial state, then reset);
* ``mode: lockstep``: one simulation step per command, stamps and ``/clock`` in simulation
  time (run the policy node with ``use_sim_time: true``); ``mode: realtime``: a 20 Hz wall
  clock, stamps in wall time, a missing command is replaced by a no-op (or held).

The simulator lives in one thread (its OpenGL context is bound to it); ROS callbacks only
store commands and queue requests.

Run: ``libero_bridge --ros-args --params-file config/libero_bridge.yaml``.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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

from snapflow_ros.control import Throttle
from snapflow_ros.nodes.process import init_ros, spin
from snapflow_ros.ros_conversions import ns_to_stamp_fields, rgb_to_image_fields, stamp_to_ns
from snapflow_ros.sim import (
    ARM_JOINTS,
    GRIPPER_JOINTS,
    LEROBOT_STATE_NAMES,
    MUJOCO_CAMERAS,
    NOOP_ACTION,
    ActionError,
    LiberoSetupError,
    LiberoSim,
    SimConfig,
    prepare_libero,
    validate_action,
)
from snapflow_ros.sim.suites import (
    CONTROL_FREQ,
    NUM_INIT_STATES,
    check_init_state,
    check_suite,
    check_task,
)

NODE_NAME = "libero_bridge"
MODES = ("lockstep", "realtime")
COMMAND_TYPES = ("joint_state", "float64_multi_array")
MISSING_MODES = ("noop", "hold")
DT_NS = 1_000_000_000 // CONTROL_FREQ
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
    ("fast_render", False, "No shadows/reflections: faster, but images differ from the datasets'."),
    ("hard_reset", True, "Rebuild the MuJoCo model at each reset (LeRobot's default)."),
    ("seed", 0, "Seed passed to LIBERO's env.seed at each reset (<0: none)."),
    ("assets_path", "", "LIBERO assets folder ('' : $LIBERO_ASSETS_PATH or the assets packages)."),
    ("gl", "auto", "OpenGL backend: auto (EGL, then OSMesa), egl or osmesa."),
    ("autostart", True, "Start the first episode at start-up (false: wait for ~/reset)."),
    ("auto_next", False, "After an episode ends, start the next initial state by itself."),
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
    ("clock.start", 1.0, "Simulation time of the first episode (s)."),
    (
        "clock.reset_gap",
        10.0,
        "Simulation time skipped at each reset (s; expires old plans/inputs).",
    ),
    ("topic_prefix", "libero", "Prefix of the published topics."),
    ("world_frame", "world", "frame_id of poses."),
]
RUNTIME = {
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


@dataclass
class Command:
    """A validated command: the action, its header stamp (0: none) and arrival number."""

    action: np.ndarray
    stamp_ns: int
    seq: int
    recv_mono: float


@dataclass
class EpisodeStats:
    """Counters and timings of one episode."""

    episode_id: int = 0
    start_wall: float = 0.0
    start_ns: int = 0
    received: int = 0
    applied: int = 0
    rejected: int = 0
    clipped: int = 0
    stale: int = 0
    held: int = 0
    noop: int = 0
    kicks: int = 0
    overruns: int = 0
    step_s: list[float] = field(default_factory=list)
    publish_s: list[float] = field(default_factory=list)
    wait_s: list[float] = field(default_factory=list)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


class LiberoBridge(Node):
    """The bridge node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for name, default, text in PARAMS:
            value = Parameter.Type.STRING_ARRAY if default is None else default
            self.declare_parameter(name, value, ParameterDescriptor(description=text))
        self._validate_all()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._throttle = Throttle(2.0)
        self._lock = threading.Lock()
        self._cmd_cond = threading.Condition(self._lock)
        self._latest: Command | None = None
        self._seq = 0
        self._requests: queue.Queue[tuple[str, threading.Event, dict[str, Any]]] = queue.Queue()
        self._stop = threading.Event()
        self.fatal: str = ""
        self._sim: LiberoSim | None = None
        self._running = False
        self._episode_id = 0
        self._stats = EpisodeStats()
        self._time_ns = int(round(self._p("clock.start") * 1e9 / DT_NS)) * DT_NS
        self._lead_ns = int(round(float(self._p("lockstep.stamp_lead")) * 1e9))
        self._obs_seq = 0
        self._cached_msgs: list[tuple[Any, Any]] = []
        self._last_gripper = -1.0
        self._mode = str(self._p("mode"))
        self._paths: Any = None
        self._rt_next = 0.0
        self._rt_episode = -1
        self._rt_used = 0

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
        self.create_service(Trigger, "~/reset", self._srv_reset, callback_group=self._cb_srv)
        self.create_service(Trigger, "~/next_episode", self._srv_next, callback_group=self._cb_srv)
        self._sim_thread = threading.Thread(target=self._sim_main, name="libero_sim", daemon=True)

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
        elif name in ("image_height", "image_width") and not 16 <= value <= 2048:
            raise ValueError(f"{name}: must be in 16..2048, got {value}")
        elif name in ("episode_length", "settle_steps") and value < 0:
            raise ValueError(f"{name}: must be >= 0, got {value}")
        elif name in ("lockstep.kick_period", "lockstep.kick_max", "realtime.command_timeout") and (
            not value > 0
        ):
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
        return SetParametersResult(successful=True)

    # ================================================================== commands
    def _log(self, key: str, level: str, text: str) -> None:
        ok, suppressed = self._throttle.ready(key, time.monotonic())
        if not ok:
            return
        text += f" (+{suppressed} similar)" if suppressed else ""
        logger = self.get_logger()  # one call site per severity (rclpy requires it)
        if level == "error":
            logger.error(text)
        elif level == "warning":
            logger.warning(text)
        else:
            logger.info(text)

    def _on_command(self, msg: Any) -> None:
        topic = self._p("command.topic")
        stamp_ns = 0
        if isinstance(msg, JointState):
            stamp_ns = stamp_to_ns(msg.header.stamp)
            values: Any = list(msg.position)
            names = [n for n in (self._p("command.names") or []) if n]
            if names and list(msg.name):
                index = {n: i for i, n in enumerate(msg.name)}
                missing = [n for n in names if n not in index]
                if missing or len(msg.name) != len(values):
                    self._reject(
                        f"names {list(msg.name)} do not provide {missing or names}", "names"
                    )
                    return
                values = [values[index[n]] for n in names]
        else:
            values = list(msg.data)
        try:
            action, clipped = validate_action(values, str(self._p("command.out_of_range")))
        except ActionError as exc:
            self._reject(str(exc), exc.kind)
            return
        with self._lock:
            self._seq += 1
            self._stats.received += 1
            if clipped:
                self._stats.clipped += 1
            self._latest = Command(action, stamp_ns, self._seq, time.monotonic())
            self._cmd_cond.notify_all()
        if clipped:
            self._log(
                "clip",
                "warning",
                f"command on {topic} outside [-1, 1], clipped to "
                f"{np.round(action, 3).tolist()}",
            )

    def _reject(self, why: str, kind: str) -> None:
        with self._lock:
            self._stats.rejected += 1
            total = self._stats.rejected
        self._log(
            f"reject:{kind}",
            "error",
            f"rejected command on {self._p('command.topic')}: {why} "
            f"({total} rejected this episode; the simulation did not move)",
        )

    # ================================================================== services
    def _request(self, kind: str, response: Trigger.Response, timeout: float = 600.0) -> Any:
        done = threading.Event()
        result: dict[str, Any] = {}
        self._requests.put((kind, done, result))
        with self._lock:
            self._cmd_cond.notify_all()
        if not done.wait(timeout):
            response.success = False
            response.message = f"{kind}: no answer within {timeout:.0f} s"
            return response
        response.success = bool(result.get("success"))
        response.message = str(result.get("message", ""))
        return response

    def _srv_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._request("reset", response)

    def _srv_next(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._request("next", response)

    # ================================================================== simulation thread
    def start(self, paths: Any) -> None:
        """Start the simulation thread (``paths``: what :func:`prepare_libero` returned)."""
        self._paths = paths
        self._sim_thread.start()

    def stop(self) -> None:
        """Stop the simulation thread (the episode in progress ends with reason 'shutdown')."""
        self._stop.set()
        with self._lock:
            self._cmd_cond.notify_all()
        if self._sim_thread.is_alive():
            self._sim_thread.join(30.0)

    def _sim_main(self) -> None:
        try:
            self._sim = LiberoSim(self._sim_config(), paths=self._paths)
            if self._p("autostart"):
                self._reset()
            while not self._stop.is_set():
                if self._serve_requests():
                    continue
                if not self._running:
                    with self._lock:
                        self._cmd_cond.wait(0.1)
                    continue
                try:
                    if self._mode == "lockstep":
                        self._lockstep_step()
                    else:
                        self._realtime_step()
                except Exception as exc:  # a failing step ends the episode, not the bridge
                    self.get_logger().error(f"step failed: {type(exc).__name__}: {exc}")
                    if self._running:
                        self._end("sim_error")
            if self._running:
                self._end("shutdown")
        except Exception as exc:  # report and let main() exit non-zero
            self.fatal = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"simulation stopped: {self.fatal}")
        finally:
            if self._sim is not None:
                self._sim.close()

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
        )

    def _serve_requests(self) -> bool:
        try:
            kind, done, result = self._requests.get_nowait()
        except queue.Empty:
            return False
        try:
            if kind == "next":
                count = self._sim.num_init_states or NUM_INIT_STATES
                index = (int(self._p("init_state_index")) + 1) % count
                self.set_parameters([Parameter("init_state_index", value=index)])
            info = self._reset()
            result.update(success=True, message=json.dumps(info))
        except Exception as exc:  # a bad suite/task/index must not kill the bridge
            result.update(success=False, message=f"{kind} failed: {type(exc).__name__}: {exc}")
            self.get_logger().error(result["message"])
        finally:
            done.set()
        return True

    def _reset(self) -> dict[str, Any]:
        if self._running:
            self._end("reset")
        sim = self._sim
        suite = str(self._p("suite"))
        sim.config.max_steps = int(self._p("episode_length"))
        self._mode = str(self._p("mode"))
        obs = sim.reset(suite, int(self._p("task_index")), int(self._p("init_state_index")))
        self._time_ns += int(round(self._p("clock.reset_gap") * 1e9 / DT_NS)) * DT_NS
        self._episode_id += 1
        with self._lock:
            self._latest = None
            self._stats = EpisodeStats(
                episode_id=self._episode_id, start_wall=time.monotonic(), start_ns=self._time_ns
            )
        self._last_gripper = -1.0
        self._task_pub.publish(String(data=sim.task_language))
        first_stamp = self._stamp_ns()
        info = {
            "event": "start",
            "episode_id": self._episode_id,
            "suite": suite,
            "task_index": sim.config.task_index,
            "task": sim.task_language,
            "task_name": sim.task_name,
            "init_state_index": sim.config.init_state_index,
            "max_steps": sim.max_steps,
            "mode": self._mode,
            "start_ns": self._time_ns,
            "first_stamp_ns": first_stamp,
            "stamps": "sim" if self._mode == "lockstep" else "wall",
            "reset_s": round(sim.timing.reset_s, 4),
            "build_s": round(sim.timing.build_s, 4),
        }
        self._episode_pub.publish(String(data=json.dumps(info)))
        self._running = True
        if self._mode == "lockstep":
            # Clock first (one period early): the state array has no header, so the node
            # stamps it on arrival; arriving after the jump keeps it fresh.
            self._publish_clock(self._time_ns - DT_NS - self._lead_ns)
        self._publish_obs(obs, first_stamp)
        self.get_logger().info(
            f"episode {self._episode_id}: {suite} task {sim.config.task_index} "
            f"({sim.task_language!r}), init state {sim.config.init_state_index}, "
            f"{sim.max_steps} steps max, {self._mode}"
        )
        return info

    def _stamp_ns(self) -> int:
        return self._time_ns if self._mode == "lockstep" else time.time_ns()

    def _end(self, reason: str) -> None:
        sim = self._sim
        self._running = False
        sim.end_episode()
        st = self._stats
        wall = time.monotonic() - st.start_wall
        success = reason == "success"
        result = {
            "event": "end",
            "episode_id": st.episode_id,
            "suite": sim.config.suite,
            "task_index": sim.config.task_index,
            "task": sim.task_language,
            "init_state_index": sim.config.init_state_index,
            "success": bool(success),
            "steps": sim.steps,
            "reason": reason,
            "max_steps": sim.max_steps,
            "mode": self._mode,
            "sim_time_s": round(sim.steps / CONTROL_FREQ, 4),
            "wall_s": round(wall, 4),
            "steps_per_s": round(sim.steps / wall, 4) if wall > 0 else None,
            "step_mean_s": _mean(st.step_s),
            "publish_mean_s": _mean(st.publish_s),
            "wait_mean_s": _mean(st.wait_s),
            "commands": {
                "received": st.received,
                "applied": st.applied,
                "rejected": st.rejected,
                "clipped": st.clipped,
                "stale": st.stale,
            },
            "held_steps": st.held,
            "noop_steps": st.noop,
            "kicks": st.kicks,
            "overruns": st.overruns,
            "end_ns": self._time_ns,
            "final_state": [round(float(v), 6) for v in sim.observation.state],
        }
        self._episode_pub.publish(String(data=json.dumps(result)))
        self.get_logger().info(
            f"episode {st.episode_id} ended: {reason}, success={result['success']}, "
            f"{sim.steps} steps in {wall:.1f} s"
        )
        if self._p("auto_next") and reason not in ("reset", "shutdown"):
            self._requests.put(("next", threading.Event(), {}))

    # ------------------------------------------------------------------ publishing
    def _header(self, msg: Any, stamp_ns: int, frame: str) -> Any:
        msg.header.stamp.sec, msg.header.stamp.nanosec = ns_to_stamp_fields(stamp_ns)
        msg.header.frame_id = frame
        return msg

    def _publish_obs(self, obs: Any, stamp_ns: int) -> None:
        start = time.perf_counter()
        msgs: list[tuple[Any, Any]] = []
        for name, img in obs.images.items():
            msg = self._header(
                Image(**rgb_to_image_fields(img, "rgb8")), stamp_ns, MUJOCO_CAMERAS[name]
            )
            msgs.append((self._cam_pubs[name], msg))
        js = self._header(JointState(), stamp_ns, "")
        js.name = [*ARM_JOINTS, *GRIPPER_JOINTS]
        js.position = [*obs.joint_pos.tolist(), *obs.gripper_qpos.tolist()]
        js.velocity = [*obs.joint_vel.tolist(), *obs.gripper_qvel.tolist()]
        msgs.append((self._joint_pub, js))
        pose = self._header(PoseStamped(), stamp_ns, str(self._p("world_frame")))
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = obs.eef_pos.tolist()
        q = obs.eef_quat.tolist()
        o = pose.pose.orientation
        o.x, o.y, o.z, o.w = q
        msgs.append((self._pose_pub, pose))
        state = Float64MultiArray(data=obs.state.astype(np.float64).tolist())
        state.layout.dim = [MultiArrayDimension(label=STATE_LABEL, size=8, stride=8)]
        msgs.append((self._state_pub, state))
        stamped = self._header(JointState(), stamp_ns, "")
        stamped.name = list(LEROBOT_STATE_NAMES)
        stamped.position = state.data
        msgs.append((self._lerobot_pub, stamped))
        for pub, msg in msgs:
            pub.publish(msg)
        with self._lock:
            self._obs_seq = self._seq
            self._cached_msgs = msgs
        if self._mode == "lockstep":
            # Let the policy node take these inputs before its clock (and its tick) advances.
            self._stop.wait(float(self._p("lockstep.clock_delay")))
            self._publish_clock(stamp_ns - self._lead_ns)
        self._stats.publish_s.append(time.perf_counter() - start)

    def _republish(self, stamp_ns: int | None = None) -> None:
        """Publish the current observation again (late subscribers; realtime: fresh stamps)."""
        with self._lock:
            msgs = list(self._cached_msgs)
        for pub, msg in msgs:
            if stamp_ns is not None and hasattr(msg, "header"):
                msg.header.stamp.sec, msg.header.stamp.nanosec = ns_to_stamp_fields(stamp_ns)
            pub.publish(msg)

    def _publish_clock(self, ns: int) -> None:
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = ns_to_stamp_fields(ns)
        self._clock_pub.publish(msg)

    # ------------------------------------------------------------------ lock-step
    def _kick(self, wait: float) -> None:
        """Make the policy node's timer fire again at the current time.

        A timer on simulation time fires once per clock advance. When the node had no plan
        at that tick (its first chunk was still being computed), the bridge steps the clock
        one period back and forward again: the node's timer re-arms (a backward jump re-arms
        ROS timers one period after the new time) and fires at the same time once more. Same
        time, so the command is the one the plan gives for this step.
        """
        self._republish()
        self._publish_clock(self._time_ns - self._lead_ns - DT_NS)
        self._stop.wait(min(0.02, wait / 2))
        self._publish_clock(self._time_ns - self._lead_ns)
        self._stats.kicks += 1

    def _take_lockstep_command(self) -> Command | None:
        cmd = self._latest
        if cmd is None:
            return None
        clock = self._time_ns - self._lead_ns
        fresh = cmd.stamp_ns >= clock if cmd.stamp_ns > 0 else cmd.seq > self._obs_seq
        if not fresh:
            return None
        self._latest = None
        return cmd

    def _lockstep_step(self) -> None:
        start = time.monotonic()
        period = float(self._p("lockstep.kick_period"))
        longest = float(self._p("lockstep.kick_max"))
        next_kick = start + period
        cmd = None
        while not self._stop.is_set() and self._requests.empty():
            with self._lock:
                cmd = self._take_lockstep_command()
                if cmd is None and self._latest is not None:
                    self._stats.stale += 1
                    self._latest = None
                if cmd is None:
                    self._cmd_cond.wait(max(0.0, min(next_kick - time.monotonic(), 0.5)))
                    cmd = self._take_lockstep_command()
            if cmd is not None:
                break
            now = time.monotonic()
            if now >= next_kick:
                self._kick(period)
                period = min(period * 2.0, longest)
                next_kick = time.monotonic() + period
            waited = now - start
            if waited > 10.0:
                self._log(
                    "waiting",
                    "warning",
                    f"lock-step: no command on {self._p('command.topic')} for {waited:.0f} s "
                    f"(step {self._sim.steps}); is the policy node running, with use_sim_time?",
                )
        if cmd is None:
            return
        self._stats.wait_s.append(time.monotonic() - start)
        self._apply(cmd.action)

    def _apply(self, action: np.ndarray, source: str = "command") -> None:
        sim = self._sim
        result = sim.step(action)
        self._stats.step_s.append(result.step_s)
        if source == "command":
            self._stats.applied += 1
        self._last_gripper = float(action[-1])
        self._time_ns += DT_NS
        self._publish_obs(result.observation, self._stamp_ns())
        if result.done:
            self._end(result.reason)

    # ------------------------------------------------------------------ real time
    def _realtime_step(self) -> None:
        period = 1.0 / CONTROL_FREQ
        if self._rt_episode != self._episode_id:
            self._rt_next = time.monotonic()
            self._rt_episode = self._episode_id
            self._rt_used = 0
        if self._p("realtime.wait_first_command") and self._sim.steps == 0:
            with self._lock:
                has = self._latest is not None
            if not has:
                self._republish(time.time_ns())  # keep the inputs fresh while the policy starts
                with self._lock:
                    self._cmd_cond.wait(period)
                self._rt_next = time.monotonic()
                return
        delay = self._rt_next - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)
        with self._lock:
            cmd = self._latest
        now = time.monotonic()
        if cmd is not None and cmd.seq > self._rt_used:
            self._rt_used = cmd.seq
            action, source = cmd.action, "command"
        elif (
            cmd is not None
            and self._p("realtime.missing") == "hold"
            and now - cmd.recv_mono <= float(self._p("realtime.command_timeout"))
        ):
            action, source = cmd.action, "hold"
            self._stats.held += 1
        else:
            action = np.array([*NOOP_ACTION[:6], self._last_gripper], np.float64)
            source = "noop"
            self._stats.noop += 1
        self._apply(action, source)
        self._rt_next += period
        if time.monotonic() > self._rt_next:
            self._stats.overruns += 1
            self._rt_next = time.monotonic()  # do not try to catch up: stay at one step per period


HELP = """\
ROS 2 bridge to a simulated LIBERO task (headless MuJoCo): camera images, robot state and the
task out, 7-D policy commands in; lock-step (one simulation step per command, /clock in
simulation time: run the policy node with use_sim_time) or real time (20 Hz wall clock).

example:
  libero_bridge --ros-args --params-file config/libero_bridge.yaml -p task_index:=3

Topics, parameters, services and the timing modes: docs/libero.md."""


def main(args: list[str] | None = None) -> int:
    """Entry point of ``libero_bridge`` (Ctrl-C / SIGTERM: clean stop; setup errors: exit 1)."""
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
    return 1 if node.fatal else 0


if __name__ == "__main__":
    sys.exit(main())
