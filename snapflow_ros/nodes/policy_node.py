"""The ROS 2 policy node: cameras + joint states + task in, action chunks and commands out.

A lifecycle node that wires a :class:`~snapflow_ros.control.PolicyController` (all the logic:
inputs, replanning, scheduling, limits, hold, faults, status; plain Python, see
``docs/architecture.md``) to ROS: the parameters (the table in :mod:`.params`, checked on
every set), the subscriptions and publishers, the lifecycle, the services, the control timer
and the inference thread. Topics, parameters and services: ``docs/policy_node.md``.

Threads: one executor thread (``SingleThreadedExecutor``) runs the input callbacks, the
control timer, status and services (short callbacks); inference runs in its own thread fed
with the latest message of every input. The callback groups keep the callbacks safe under a
multi-threaded executor too (composition). ``realtime_priority`` puts every thread of the
process on SCHED_FIFO where permitted (command timing on a busy machine).

Run: ``policy_node --ros-args --params-file config/policy.yaml``.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float32MultiArray, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from snapflow_ros.control import (
    ActionLimits,
    BlendConfig,
    CommandLoop,
    InputSet,
    InputSlot,
    PolicyController,
    Session,
    Settings,
    short,
)
from snapflow_ros.control.status import PeriodicEvent, StatusEvent, TransitionEvent, encode
from snapflow_ros.nodes.diagnostics import build_diagnostics
from snapflow_ros.nodes.params import (
    CAMERA_PARAMS,
    MAX_TASK_CHARS,
    NAME_PATTERN,
    NODE_NAME,
    PARAMS,
    RUNTIME_PARAMS,
    STATE_PARAMS,
    ConfigError,
    NodeConfig,
    build_config,
    check_against_policy,
    check_param,
    check_set_sizes,
    spec_for,
)
from snapflow_ros.nodes.process import (
    exit_process,
    init_ros,
    log_at,
    set_realtime_priority,
    spin,
)
from snapflow_ros.policies import resolve_policy
from snapflow_ros.ros_conversions.actions import COMMAND_TYPES, chunk_message, command_message
from snapflow_ros.ros_conversions.inputs import (
    header_stamp,
    image_checker,
    image_converter,
    state_converter,
)

STATE_MSG_TYPES = {
    "joint_state": JointState,
    "float64_array": Float64MultiArray,
    "float32_array": Float32MultiArray,
}
SETTING_OF = {name: name.replace(".", "_") for name in RUNTIME_PARAMS}  # param -> Settings
START_UP_PARAMS = ("autostart", "realtime_priority")  # read once, when the process starts
WORKER_JOIN_S = 30.0  # cleanup: the inference in progress finishes (a re-configure follows)
SHUTDOWN_JOIN_S = 2.0  # shutdown: the process ends; a chunk computed later is discarded


class PolicyNode(LifecycleNode):
    """Lifecycle policy node (see the module docstring and docs/policy_node.md)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._startup_errors: list[str] = []
        self._declare_parameters()
        self._cb_inputs = MutuallyExclusiveCallbackGroup()
        self._cb_control = MutuallyExclusiveCallbackGroup()
        self._cb_misc = MutuallyExclusiveCallbackGroup()
        self._cfg: NodeConfig | None = None
        self._action_names: list[str] = []
        self._subs: list[Any] = []
        self._chunk_pub: Any = None
        self._command_pub: Any = None
        self._control_timer: Any = None
        self._worker: threading.Thread | None = None
        self._worker_stop = threading.Event()
        self.realtime_priority = int(self._startup_value("realtime_priority"))
        settings = Settings(**{f: self._startup_value(p) for p, f in SETTING_OF.items()})
        self.controller = PolicyController(
            self._now_ns, self, settings, name=self.get_fully_qualified_name()
        )
        self.controller.simulated_clock = bool(self.get_parameter("use_sim_time").value)
        self._accepted = threading.local()  # .reason: why an accepted set does not apply yet
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._status_settings = (
            self._startup_value("status_topic"),
            self._startup_value("status_rate"),
        )
        self._status_pub = self.create_publisher(
            String, self._status_settings[0], QoSProfile(depth=100)
        )
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._status_timer = self.create_timer(
            1.0 / self._status_settings[1], self._on_status_timer, self._cb_misc
        )
        self.create_service(Trigger, "~/reset", self._srv_reset, callback_group=self._cb_misc)
        self.create_service(Trigger, "~/pause", self._srv_pause, callback_group=self._cb_misc)
        self.create_service(Trigger, "~/resume", self._srv_resume, callback_group=self._cb_misc)
        for error in self._startup_errors:
            self.get_logger().error(
                f"bad parameter: {error}; the node cannot be configured until it is fixed"
            )
        self._autostarting = False
        self._warn_unknown_overrides()

    # ================================================================== parameters
    def _declare_parameters(self) -> None:
        dyn = {"dynamic_typing": True}
        for spec in PARAMS:
            default = spec.default if spec.default != [] else None
            self.declare_parameter(
                spec.name, default, ParameterDescriptor(description=spec.description, **dyn)
            )
        # per-camera / per-source parameters of valid names only (configure reports the rest)
        for name in self._param_list("cameras.names", ["front", "wrist"]):
            for p in CAMERA_PARAMS:
                default = p.default.format(name=name) if isinstance(p.default, str) else p.default
                self.declare_parameter(
                    f"cameras.{name}.{p.name}",
                    default,
                    ParameterDescriptor(description=p.description, **dyn),
                )
        for name in self._param_list("state.sources", ["joints"]):
            for p in STATE_PARAMS:
                default = p.default if p.default != [] else None
                self.declare_parameter(
                    f"state.{name}.{p.name}",
                    default,
                    ParameterDescriptor(description=p.description, **dyn),
                )

    def _param_list(self, name: str, default: list[str]) -> list[str]:
        value = self.get_parameter(name).value
        if value is None:
            return default
        if isinstance(value, str) or not isinstance(value, list | tuple):
            return []
        return list(
            dict.fromkeys(v for v in value if isinstance(v, str) and NAME_PATTERN.fullmatch(v))
        )

    def _get_param(self, name: str) -> Any:
        return self.get_parameter(name).value if self.has_parameter(name) else None

    def _startup_value(self, name: str) -> Any:
        """A parameter's value checked against the table; a bad one (a wrongly typed value in
        the parameters file, say) is reported and replaced by the default so the node starts
        and stays unconfigured with that reason, instead of dying in its constructor."""
        try:
            return check_param(name, self._get_param(name))
        except ConfigError as exc:
            self._startup_errors.append(str(exc))
            return check_param(name, None)

    def _warn_unknown_overrides(self) -> None:
        """A parameter in the parameters file that this node does not have (a typo) would be
        ignored without a word by rclpy: say so."""
        overrides = getattr(self, "_parameter_overrides", None) or {}
        unknown = sorted(n for n in overrides if not self.has_parameter(n))
        if unknown:
            self.get_logger().warning(
                f"ignoring parameters that {NODE_NAME} does not have (typos?): "
                + short(", ".join(unknown))
            )

    def set_parameters_atomically(self, parameter_list: list[Any]) -> SetParametersResult:
        """rclpy's, plus the reason of an accepted set that applies only later: rclpy answers
        an accepted set with a fresh ``SetParametersResult(successful=True)``, dropping the
        reason of the set-parameters callback (:meth:`_on_set_parameters`). The parameter
        services (``ros2 param set``) call this once per parameter."""
        accepted = self.__dict__.get("_accepted")  # None while rclpy's constructor runs
        if accepted is None:
            return super().set_parameters_atomically(parameter_list)
        accepted.reason = ""
        result = super().set_parameters_atomically(parameter_list)
        if result.successful and accepted.reason:
            result.reason = accepted.reason
        accepted.reason = ""
        return result

    def set_parameters(self, parameter_list: list[Any]) -> list[SetParametersResult]:
        """rclpy's (one parameter after the other), with the reasons of
        :meth:`set_parameters_atomically`."""
        return [self.set_parameters_atomically([p]) for p in parameter_list]

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        """Check every value against the table (whether it applies now or at the next
        configure); a set with a bad value is refused as a whole, its reason naming every
        bad one. Accepted values of parameters that apply only at the next configure (or
        start-up) are accepted with a ``reason`` saying so: ``successful`` is not "done"."""
        checked: dict[str, Any] = {}
        refused: list[tuple[str, str]] = []
        for p in params:
            if spec_for(p.name) is None:
                continue  # rclpy's own (use_sim_time, qos_overrides.*)
            try:
                checked[p.name] = check_param(p.name, p.value)
            except ConfigError as exc:
                refused.append((p.name, str(exc)))
        if not refused and checked:
            try:
                self._check_sizes(checked)
            except ConfigError as exc:
                refused.append((str(exc).partition(":")[0], str(exc)))
        if refused:
            return self._refuse(refused)
        if not checked:
            return SetParametersResult(successful=True)
        updates = {SETTING_OF[k]: v for k, v in checked.items() if k in SETTING_OF}
        if updates:
            self.controller.update_settings(**updates)
        later = sorted(k for k in checked if k not in SETTING_OF)
        reason = self._not_applied_yet(later)
        if reason and self._cfg is not None:
            self.controller.log_throttled(f"later.{','.join(later)}", "info", reason)
        if "_accepted" in self.__dict__:  # rclpy drops it from this result: see set_parameters
            self._accepted.reason = reason
        return SetParametersResult(successful=True, reason=reason)

    def _not_applied_yet(self, names: list[str]) -> str:
        """Why accepted parameters ``names`` do not apply yet ('' when there are none)."""
        parts = []
        at_start = [n for n in names if n in START_UP_PARAMS]
        at_configure = [n for n in names if n not in START_UP_PARAMS]
        if at_configure:
            text = f"{', '.join(at_configure)}: accepted, applies at the next configure"
            cfg = self._cfg
            if cfg is not None:
                running = [f"{n} {cfg.values[n]!r}" for n in at_configure if n in cfg.values]
                text += " (cleanup, then configure); the node runs with its configured "
                text += f"{'values (' + ', '.join(running) + ')' if running else 'values'} "
                text += "until then"
            parts.append(text)
        if at_start:
            parts.append(
                f"{', '.join(at_start)}: accepted, read only when the node starts "
                "(applies when the process is started again)"
            )
        return short("; ".join(parts), 500)

    def _refuse(self, refused: list[tuple[str, str]]) -> SetParametersResult:
        """Refuse a set: one throttled line per refused parameter, under its own name."""
        for name, reason in refused:
            self.controller.log_throttled(
                f"refused.{name}", "warning", f"parameter refused: {reason}"
            )
        return SetParametersResult(
            successful=False, reason="; ".join(reason for _, reason in refused)
        )

    def _check_sizes(self, checked: dict[str, Any]) -> None:
        """Limits and action names of a set against each other and the loaded policy."""

        def current(name: str) -> Any:
            try:
                return check_param(name, self._get_param(name))
            except ConfigError:  # another bad value: configure reports it
                return None

        session, cfg = self.controller.session, self._cfg
        loaded = None
        if session is not None and cfg is not None:
            loaded = (cfg["policy_path"], session.runtime.action_dim)
        check_set_sizes(checked, current, loaded)

    # ================================================================== lifecycle
    @property
    def state_label(self) -> str:
        """Lifecycle state: unconfigured, inactive, active or finalized."""
        return self.controller.lifecycle_state

    def _set_state(self, label: str, error: str = "") -> None:
        self.controller.lifecycle_state = label
        self.controller.emit(TransitionEvent(state=label, error=error))

    def autostart(self) -> None:
        """Configure and activate when the ``autostart`` parameter says so. A failed
        configure has logged its one ERROR line (at start-up or in the configure); this
        adds only where the node stays."""
        if not self._get_param("autostart"):
            return
        self._autostarting = True
        try:
            configured = self.trigger_configure() == TransitionCallbackReturn.SUCCESS
        finally:
            self._autostarting = False
        if not configured:
            self.get_logger().info(
                "autostart: the node stays unconfigured (fix the parameters, then configure "
                "it again)"
            )
            return
        if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            self.get_logger().error("autostart: activate failed")

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.controller.configure_error = ""
        try:
            self._configure()
        except Exception as exc:  # report, stay unconfigured
            error = f"{type(exc).__name__}: {exc}"
            self.controller.configure_error = error
            if self._autostarting and str(exc) in self._startup_errors:
                # the same bad value as the start-up line: one ERROR line per cause
                self.get_logger().debug(f"configure failed: {error}")
            else:
                self.get_logger().error(f"configure failed: {error}")
            if not isinstance(exc, ValueError):
                self.get_logger().debug(traceback.format_exc())
            self._teardown()
            self._set_state("unconfigured", error)
            return TransitionCallbackReturn.FAILURE
        self._set_state("inactive")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)
        if ret != TransitionCallbackReturn.SUCCESS:
            return ret
        self.controller.activate()
        self.get_logger().info("activated: running the policy")
        self._set_state("active")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.controller.stop_commands()
        self.get_logger().info("deactivated: commands stopped")
        self._set_state("inactive")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self._set_state("unconfigured")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.controller.active:
            self.controller.stop_commands()
        self._teardown(SHUTDOWN_JOIN_S)
        self._set_state("finalized")
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self.controller.lifecycle_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ configure / teardown
    def _configure(self) -> None:
        cfg = build_config(self._get_param)
        self.controller.update_settings(**{f: cfg[p] for p, f in SETTING_OF.items()})
        if cfg["torch_threads"]:
            import torch

            torch.set_num_threads(cfg["torch_threads"])
        from snapflow_ros.runtime import CheckpointError, Observation, PolicyRuntime, RuntimeOptions

        try:
            path = resolve_policy(cfg["policy_path"])
        except CheckpointError:
            raise  # a file, a missing folder, an unreachable Hub id: the loader's own message
        except ValueError as exc:  # empty, or an unknown tiny: / libero: name
            raise ConfigError(f"policy_path: {exc}") from exc
        seed = cfg["seed"] if cfg["seed"] >= 0 else None
        self.get_logger().info(f"loading policy {path} on {cfg['device']}")
        runtime = PolicyRuntime(
            path,
            RuntimeOptions(
                device=cfg["device"],
                dtype=cfg["dtype"],
                engine=cfg["engine"],
                compile_mode=cfg["compile_mode"],
                compile_prefix=cfg["compile_prefix"],
                seed=seed,
                vlm_path=cfg["vlm_path"] or None,
                tokenizer_path=cfg["tokenizer_path"] or None,
                warmup=cfg["warmup"],
            ),
        )
        check_against_policy(cfg, runtime.image_keys, runtime.state_dim, runtime.action_dim)
        start = time.perf_counter()
        runtime.predict_chunk(runtime.dummy_observation(), num_steps=self.controller.settings.steps)
        latency_hint = time.perf_counter() - start
        runtime.reset_noise(seed)
        dim = runtime.action_dim
        loop = CommandLoop(
            dt=1.0 / cfg["control_rate"],
            action_dim=dim,
            blend=BlendConfig(cfg["blend.mode"], cfg["blend.alpha"], cfg["blend.max_steps"]),
            limits=ActionLimits.build(
                dim, cfg["limits.lower"], cfg["limits.upper"], cfg["limits.max_delta"]
            ),
            hold_mode=cfg["hold_mode"],
            max_lead=cfg["max_future_stamp"],
        )
        self._apply_status_settings(cfg)
        self._cfg = cfg
        self._action_names = list(cfg["action_names"] or [f"action_{i}" for i in range(dim)])
        inputs = self._make_inputs(cfg, runtime)
        self.controller.attach(
            Session(
                runtime=runtime,
                inputs=inputs,
                loop=loop,
                make_observation=Observation,
                control_rate=cfg["control_rate"],
                seed=seed,
                stats_window=cfg["stats_window"],
                latency_hint=latency_hint,
            )
        )
        self._create_io(cfg, inputs)
        self._worker_stop.clear()
        self._worker = threading.Thread(target=self._worker_loop, name="inference", daemon=True)
        self._worker.start()
        desc = runtime.describe()
        self.get_logger().info(
            f"configured: {desc['policy_type']} (snapflow={desc['snapflow']}) on {desc['device']} "
            f"({desc['dtype']}, engine {desc['engine']}), "
            f"cameras {[c.key for c in cfg.cameras]}, state {desc['state_dim']}, "
            f"actions {dim} x {desc['chunk_size']} at {cfg['control_rate']} Hz, "
            f"steps {self.controller.settings.steps or desc['default_num_steps']}, "
            f"first chunk {latency_hint * 1000:.0f} ms"
        )

    def _apply_status_settings(self, cfg: NodeConfig) -> None:
        """``status_topic`` / ``status_rate`` changed since start-up: new publisher / timer."""
        topic, rate = cfg["status_topic"], cfg["status_rate"]
        if topic != self._status_settings[0]:
            old = self._status_pub
            self._status_pub = self.create_publisher(String, topic, QoSProfile(depth=100))
            self.destroy_publisher(old)
        if rate != self._status_settings[1]:
            self.destroy_timer(self._status_timer)
            self._status_timer = self.create_timer(1.0 / rate, self._on_status_timer, self._cb_misc)
        self._status_settings = (topic, rate)

    def _make_inputs(self, cfg: NodeConfig, runtime: Any) -> InputSet:
        """One slot per camera (converted to the policy's image size; larger than
        ``cameras.max_pixels``: refused on arrival) and state source."""
        cameras = []
        max_pixels = cfg["cameras.max_pixels"]
        for cam in cfg.cameras:
            _, height, width = runtime.config.input_features[cam.key].shape
            label = f"camera {cam.name} ({cam.topic})"
            convert = image_converter(
                cam.compressed,
                int(height),
                int(width),
                cfg["cameras.resize"],
                max_pixels,
                self._decoder_warning(f"decoder.{cam.name}", label),
            )
            check = image_checker(
                cam.compressed, int(height), int(width), cfg["cameras.resize"], max_pixels
            )
            cameras.append((cam.key, InputSlot(f"camera.{cam.name}", label, convert, check)))
        states = [
            InputSlot(
                f"state.{src.name}",
                f"state {src.name} ({src.topic})",
                state_converter(
                    src.type, src.names, src.joint_field, src.indices, src.size, src.format
                ),
                eager=True,
            )
            for src in cfg.state
        ]
        return InputSet(
            cameras, states, cfg["observation_stamp"], cfg["task.topic"], MAX_TASK_CHARS
        )

    def _decoder_warning(self, key: str, label: str) -> Any:
        """A decoder message about an image of ``label`` that does not make it malformed:
        logged, throttled (never the decoder's own line on stderr)."""

        def warn(text: str) -> None:
            self.controller.log_throttled(key, "warning", f"{label}: {text}")

        return warn

    def _create_io(self, cfg: NodeConfig, inputs: InputSet) -> None:
        """Subscriptions of the inputs, the chunk / command publishers and the control timer."""
        qos = (
            qos_profile_sensor_data
            if cfg["qos"] == "sensor_data"
            else QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        )
        for cam in cfg.cameras:
            msg_type = CompressedImage if cam.compressed else Image
            self._subscribe(msg_type, cam.topic, inputs.slots[f"camera.{cam.name}"], qos)
        for src in cfg.state:
            msg_type = STATE_MSG_TYPES.get(src.type)
            if msg_type is None:
                from geometry_msgs.msg import PoseStamped

                msg_type = PoseStamped
            self._subscribe(msg_type, src.topic, inputs.slots[f"state.{src.name}"], qos)
        if cfg["task.topic"]:
            latched = QoSProfile(
                depth=1,
                history=HistoryPolicy.KEEP_LAST,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
            )
            self._subs.append(
                self.create_subscription(
                    String,
                    cfg["task.topic"],
                    lambda msg: self.controller.set_task(str(msg.data)),
                    latched,
                    callback_group=self._cb_inputs,
                )
            )
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        if cfg["chunk.publish"]:
            self._chunk_pub = self.create_lifecycle_publisher(
                JointTrajectory, cfg["chunk.topic"], reliable
            )
        if cfg["command.publish"]:
            self._command_pub = self.create_lifecycle_publisher(
                COMMAND_TYPES[cfg["command.type"]], cfg["command.topic"], reliable
            )
        self._control_timer = self.create_timer(
            1.0 / cfg["control_rate"], self.controller.tick, self._cb_control
        )

    def _subscribe(self, msg_type: type, topic: str, slot: InputSlot, qos: QoSProfile) -> None:
        def callback(msg: Any) -> None:
            try:
                stamp_ns, fault = header_stamp(msg)
                slot.update(msg, self._now_ns(), stamp_ns, fault)
            except Exception as exc:  # a malformed header must not kill the node
                slot.mark_unreadable(f"{type(exc).__name__}: {exc}")
            self.controller.wake()

        self._subs.append(
            self.create_subscription(msg_type, topic, callback, qos, callback_group=self._cb_inputs)
        )

    def _teardown(self, join_s: float = WORKER_JOIN_S) -> None:
        """Stop the inference thread (wait ``join_s`` for the chunk in progress), detach the
        controller (a chunk finished later is discarded), destroy the I/O."""
        self._worker_stop.set()
        self.controller.wake()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=join_s)
        self._worker = None
        self.controller.detach()
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._control_timer is not None:
            self.destroy_timer(self._control_timer)
            self._control_timer = None
        for attr in ("_chunk_pub", "_command_pub"):
            pub = getattr(self, attr)
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
                setattr(self, attr, None)
        self._cfg = None

    def _worker_loop(self) -> None:
        while not self._worker_stop.is_set():
            self.controller.wait_for_work(0.05)
            if self._worker_stop.is_set():
                break
            self.controller.infer_once()

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    # ================================================================== controller outputs
    def command(self, values: np.ndarray, t_ns: int) -> None:
        """Publish one command (see :class:`~snapflow_ros.control.Outputs`)."""
        pub, cfg = self._command_pub, self._cfg
        if pub is None or cfg is None:
            return
        pub.publish(
            command_message(
                cfg["command.type"],
                values,
                t_ns,
                self._action_names,
                cfg["action_field"],
                1.0 / cfg["control_rate"],
            )
        )

    def chunk(self, actions: np.ndarray, stamp_ns: int) -> bool:
        """Publish a whole chunk; False when chunks are not published."""
        pub, cfg = self._chunk_pub, self._cfg
        if pub is None or cfg is None:
            return False
        dt = 1.0 / cfg["control_rate"]
        pub.publish(chunk_message(actions, stamp_ns, self._action_names, cfg["action_field"], dt))
        return True

    def event(self, event: StatusEvent) -> None:
        """Publish a status event on ``~/status``."""
        self._status_pub.publish(String(data=encode(event)))

    def log(self, level: str, message: str) -> None:
        """Log through the node's logger."""
        log_at(self.get_logger(), level, message)

    # ================================================================== services and status
    def _srv_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.controller.reset()
        response.success, response.message = True, "reset"
        return response

    def _srv_pause(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        was = self.controller.pause()
        response.success, response.message = True, "already paused" if was else "paused"
        return response

    def _srv_resume(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        was = self.controller.resume()
        response.success, response.message = True, "resumed" if was else "not paused"
        return response

    def report(self) -> PeriodicEvent:
        """The status report (what ``~/status`` and /diagnostics say)."""
        return self.controller.report()

    def diagnostics(self, report: PeriodicEvent) -> DiagnosticArray:
        """The /diagnostics message of ``report``."""
        now_ns = self._now_ns()
        return build_diagnostics(
            report,
            self.get_fully_qualified_name(),
            now_ns,
            self.controller.inference_error,
            self.controller.recent_starvation(now_ns),
        )

    def _on_status_timer(self) -> None:
        try:
            report = self.controller.report()
            self.controller.emit(report)
            self._diag_pub.publish(self.diagnostics(report))
        except Exception as exc:
            self.controller.log_throttled(
                "status", "error", f"status failed: {type(exc).__name__}: {exc}"
            )


HELP = """\
Run a LeRobot SmolVLA / pi0.5 policy (plain or SnapFlow-distilled) on ROS 2: cameras, joint
states and a task in; timed action chunks (~/action_chunk) and per-tick commands (~/command)
out, status on ~/status and /diagnostics. A lifecycle node: with `autostart: true` (the
default) it configures and activates itself.

examples:
  policy_node --ros-args --params-file config/policy.yaml
  policy_node --ros-args --params-file config/robot_example.yaml -p policy_path:=/ckpt

Every parameter, topic, service and the safety behaviour: docs/policy_node.md.
Exit status: 0 after Ctrl-C / SIGTERM / a shutdown transition, 2 for a bad command line or
parameters file."""


def main(args: list[str] | None = None) -> int:
    """Entry point of ``policy_node`` (Ctrl-C / SIGTERM: clean shutdown, then the process
    ends at once; see :func:`snapflow_ros.nodes.process.exit_process`)."""
    stop = init_ros(args, NODE_NAME, HELP)
    try:
        node = PolicyNode()
    except Exception as exc:  # the parameters are checked, but never die with a traceback
        print(f"{NODE_NAME}: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    why_not = set_realtime_priority(node.realtime_priority)
    if why_not:
        node.get_logger().warning(
            f"realtime_priority {node.realtime_priority}: not permitted here ({why_not}); "
            "running with normal scheduling"
        )
    elif node.realtime_priority:
        node.get_logger().info(f"running with SCHED_FIFO priority {node.realtime_priority}")
    try:
        node.autostart()
        spin(node, stop, done=lambda: node.state_label == "finalized")
    finally:
        try:
            if node.state_label != "finalized":
                node.trigger_shutdown()
        except Exception as exc:  # already shut down, or the context is gone
            node.get_logger().debug(f"shutdown transition: {exc}")
        node.get_logger().info("policy node stopped")
        node.destroy_node()
        rclpy.try_shutdown()
    exit_process(0)


if __name__ == "__main__":
    sys.exit(main())
