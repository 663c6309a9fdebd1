"""The ROS 2 policy node: cameras + joint states + task in, action chunks and commands out.

A lifecycle node (``rclpy.lifecycle.Node``). It is deliberately thin: message conversion is in
:mod:`snapflow_ros.ros_conversions`, scheduling / blending / limits / statistics in
:mod:`snapflow_ros.control`, inference in :mod:`snapflow_ros.runtime`. This module wires them
to topics, timers, services and the lifecycle. Topics, parameters and services are documented
in ``docs/policy_node.md``.

Threads: one executor thread (``SingleThreadedExecutor``) runs the input subscriptions, the
control timer and the status/services (short callbacks); inference runs in its own worker
thread fed with the latest message of every input (older ones are simply overwritten). The
callback groups keep the callbacks safe under a multi-threaded executor too (composition).

Bad input never reaches the robot: every message is checked as it arrives (structure, NaN,
duplicate joints; images without decoding), and every control tick judges all inputs (missing,
stale, malformed, stamped ahead of the clock). Any problem drops the plan at that tick and
holds; a malformed observation the worker attempted is announced once as a ``rejected`` status
event. Every parameter value is checked against the table in :mod:`.params` when it is set.

Run: ``policy_node --ros-args --params-file config/policy.yaml``.
"""

from __future__ import annotations

import array
import contextlib
import json
import math
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import rclpy
from builtin_interfaces.msg import Duration
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
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from snapflow_ros.control import (
    ActionLimits,
    BlendConfig,
    CommandLoop,
    LatencyStats,
    RateMeter,
    Throttle,
    auto_replan_threshold,
)
from snapflow_ros.nodes.diagnostics import build_diagnostics
from snapflow_ros.nodes.params import (
    CAMERA_PARAMS,
    MAX_TASK_CHARS,
    NAME_PATTERN,
    NODE_NAME,
    PARAMS,
    RUNTIME_PARAMS,
    STATE_PARAMS,
    TINY_PREFIX,
    ConfigError,
    NodeConfig,
    build_config,
    check_limits,
    check_param,
    spec_for,
    task_preview,
)
from snapflow_ros.nodes.process import init_ros, spin
from snapflow_ros.ros_conversions import (
    array_values,
    check_compressed,
    check_image,
    compressed_to_rgb,
    image_to_rgb,
    joint_state_values,
    ns_to_stamp_fields,
    pose_values,
    resize_rgb,
    stamp_to_ns,
)
from snapflow_ros.runtime.errors import ObservationError

LATENCY_STAGES = ("preprocess", "prefix", "denoise", "postprocess", "total")
STATE_MSG_TYPES = {
    "joint_state": JointState,
    "float64_array": Float64MultiArray,
    "float32_array": Float32MultiArray,
}
FIELD_PLURAL = {"position": "positions", "velocity": "velocities", "effort": "effort"}
MAX_REASON_CHARS = 200  # longest problem text in events, diagnostics and logs


def resolve_policy_path(path: str) -> str:
    """``tiny:smolvla`` / ``tiny:pi05`` -> the cached tiny checkpoint (built if needed)."""
    if not path.strip():
        raise ConfigError("policy_path: empty (a checkpoint folder, or tiny:smolvla / tiny:pi05)")
    if not path.startswith(TINY_PREFIX):
        return path
    from snapflow_ros.fixtures.tiny_checkpoints import TinySpec, ensure_tiny_checkpoint

    policy_type = path[len(TINY_PREFIX) :] or "smolvla"  # the table checked the name
    return str(ensure_tiny_checkpoint(TinySpec(policy_type=policy_type)))


def short(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` cut to ``limit`` characters (messages derived from input stay bounded)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class InputProblem(Exception):
    """The current inputs cannot make an observation.

    ``fault``: malformed (not just missing or stale); then ``input_name`` names what failed and
    ``stamp_ns`` is the stamp the observation's chunk would have carried. ``retry``: judge
    again once the clock has moved (an input stamped ahead of a clock that stands still).
    """

    def __init__(
        self,
        message: str,
        fault: bool = False,
        input_name: str = "",
        stamp_ns: int = 0,
        retry: bool = False,
    ) -> None:
        super().__init__(message)
        self.fault = fault
        self.input_name = input_name
        self.stamp_ns = stamp_ns
        self.retry = retry


class Problem(NamedTuple):
    """Something wrong with the inputs: ``severity`` is missing, stale, fault (malformed or
    stamped too far ahead) or early (ahead of a clock that has not moved since it arrived)."""

    severity: str
    input: str
    message: str


class SlotState(NamedTuple):
    """What an input slot holds (see :meth:`InputSlot.state`)."""

    msg: Any
    count: int
    stamp_ns: int
    recv_ns: int
    fault: str


class InputSlot:
    """The latest message of one input, its stamp, its converted value (cached) and its fault.

    ``check`` (cheap, no decoding) runs on every message as it arrives, so a malformed message
    is known at the next control tick; with ``eager`` the whole conversion runs on arrival
    (cheap ones: joint states, arrays, poses). ``convert`` otherwise runs when the worker makes
    an observation. ``fault`` says why the latest message is malformed ('' if it is not).
    """

    def __init__(
        self, name: str, label: str, convert: Any, check: Any = None, eager: bool = False
    ) -> None:
        self.name = name
        self.label = label
        self.convert = convert
        self.check = check
        self.eager = eager
        self.msg: Any = None
        self.stamp_ns = 0
        self.recv_ns = 0
        self.count = 0
        self.errors = 0
        self.fault = ""
        self._cache: tuple[int, Any] | None = None
        self._lock = threading.Lock()

    def update(self, msg: Any, recv_ns: int) -> None:
        """Store ``msg`` (received at ``recv_ns``): its header stamp (``recv_ns`` if unset) and
        whether it is malformed."""
        stamp = recv_ns
        fault = ""
        value = None
        header = getattr(msg, "header", None)
        if header is not None:
            ns = stamp_to_ns(header.stamp)
            if ns > 0:
                stamp = ns
            if header.stamp.nanosec >= 1_000_000_000:
                fault = f"header stamp nanosec {header.stamp.nanosec} is >= 1e9"
        if not fault:
            try:
                if self.eager:
                    value = self.convert(msg)
                elif self.check is not None:
                    self.check(msg)
            except Exception as exc:  # any failure is a bad input, never a crash
                fault = short(str(exc) or type(exc).__name__)
        with self._lock:
            self.msg = msg
            self.stamp_ns = stamp
            self.recv_ns = recv_ns
            self.count += 1
            self._cache = (self.count, value) if self.eager and not fault else None
            self._set_fault(fault)

    def _set_fault(self, fault: str) -> None:
        self.fault = fault
        if fault:
            self.errors += 1

    def state(self) -> SlotState:
        """The latest message, its count, stamp, receive time and fault, read together."""
        with self._lock:
            return SlotState(self.msg, self.count, self.stamp_ns, self.recv_ns, self.fault)

    def value(self) -> tuple[Any, int, int]:
        """Converted latest message, its stamp and receive time (raises on bad messages)."""
        with self._lock:
            msg, count, stamp_ns, recv_ns = self.msg, self.count, self.stamp_ns, self.recv_ns
            fault, cache = self.fault, self._cache
        if msg is None:
            raise InputProblem(f"{self.label}: no message yet")
        if fault:
            raise InputProblem(f"{self.label}: {fault}", fault=True, input_name=self.name)
        if cache is not None and cache[0] == count:
            return cache[1], stamp_ns, recv_ns
        try:
            value = self.convert(msg)
        except Exception as exc:  # any conversion failure is a bad input, never a crash
            fault = short(str(exc) or type(exc).__name__)
            with self._lock:
                if self.count == count:
                    self._set_fault(fault)
            raise InputProblem(f"{self.label}: {fault}", fault=True, input_name=self.name) from exc
        with self._lock:
            if self.count == count:
                self._cache = (count, value)
        return value, stamp_ns, recv_ns

    def clear(self) -> None:
        """Forget the stored message."""
        with self._lock:
            self.msg = None
            self.count = 0
            self.fault = ""
            self._cache = None


@dataclass
class _Observed:
    obs: Any
    stamp_ns: int
    newest_recv_ns: int
    newest_stamp_ns: int
    convert_s: float


def _stamp(msg_header: Any, ns: int) -> None:
    msg_header.stamp.sec, msg_header.stamp.nanosec = ns_to_stamp_fields(ns)


def _duration(seconds: float) -> Duration:
    ns = round(seconds * 1e9)
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value


class PolicyNode(LifecycleNode):
    """Lifecycle policy node (see the module docstring and docs/policy_node.md)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._startup_errors: list[str] = []
        self._declare_parameters()
        self._lock = threading.RLock()
        self._cb_inputs = MutuallyExclusiveCallbackGroup()
        self._cb_control = MutuallyExclusiveCallbackGroup()
        self._cb_misc = MutuallyExclusiveCallbackGroup()
        self._throttle = Throttle(2.0)
        self._state_label = "unconfigured"
        self._cfg: NodeConfig | None = None
        self._runtime: Any = None
        self._loop: CommandLoop | None = None
        self._active = False
        self._paused = False
        self._epoch = 0
        self._fault = ""
        self._inference_error = ""
        self._configure_error = ""
        self._reseed = False
        self._slots: dict[str, InputSlot] = {}
        self._camera_slots: list[tuple[Any, InputSlot]] = []
        self._state_slots: list[InputSlot] = []
        self._task_from_topic: str | None = None
        self._task_fault = ""
        self._task_count = 0
        self._param_version = 0
        self._subs: list[Any] = []
        self._chunk_pub: Any = None
        self._command_pub: Any = None
        self._control_timer: Any = None
        self._worker: threading.Thread | None = None
        self._worker_stop = threading.Event()
        self._wake = threading.Event()
        self._latency = LatencyStats(200)
        self._chunk_meter = RateMeter(5.0)
        self._command_meter = RateMeter(5.0)
        self._latency_hint = 0.0
        self._last_chunk_ns = 0
        self._last_starvation_ns = 0
        self._counts = {
            "inference_errors": 0,
            "input_faults": 0,
            "discarded_chunks": 0,
            "nonfinite_commands": 0,
            "dry_run_commands": 0,
        }
        self._runtime_values: dict[str, Any] = {
            name: self._startup_value(name) for name in sorted(RUNTIME_PARAMS)
        }
        self._action_names: list[str] = []
        self._dt = 0.1
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

    def _on_set_parameters(self, params: list[Any]) -> SetParametersResult:
        """Check every value against the table (whether it applies now or at the next
        configure); refuse the whole set on the first bad one."""
        checked: dict[str, Any] = {}
        for p in params:
            if spec_for(p.name) is None:
                continue  # rclpy's own (use_sim_time, qos_overrides.*)
            try:
                checked[p.name] = check_param(p.name, p.value)
            except ConfigError as exc:
                return self._refuse(str(exc))
        if not checked:
            return SetParametersResult(successful=True)
        try:
            self._check_sizes(checked)
        except ConfigError as exc:
            return self._refuse(str(exc))
        updates = {k: v for k, v in checked.items() if k in RUNTIME_PARAMS}
        later = sorted(k for k in checked if k not in RUNTIME_PARAMS)
        with self._lock:
            if "num_steps" in updates and updates["num_steps"] != self._runtime_values["num_steps"]:
                self._latency.clear()
                self.get_logger().info(
                    f"num_steps -> {updates['num_steps'] or 'checkpoint default'}"
                )
            self._runtime_values.update(updates)
            if self._loop is not None:
                self._loop.hold_mode = self._runtime_values["hold_mode"]
                self._loop.set_max_lead(self._runtime_values["max_future_stamp"])
            self._param_version += 1  # the worker judges unchanged inputs again
        if later and self._cfg is not None:
            self._log_throttled(
                "later", "info", f"{', '.join(later)}: takes effect at the next configure"
            )
        self._wake.set()
        return SetParametersResult(successful=True)

    def _refuse(self, reason: str) -> SetParametersResult:
        self._log_throttled("refused", "warning", f"parameter refused: {reason}")
        return SetParametersResult(successful=False, reason=reason)

    def _check_sizes(self, checked: dict[str, Any]) -> None:
        """Cross-checks of a set: limit list lengths and lower <= upper, and the action size
        of the loaded policy (when its ``policy_path`` stays)."""
        names = ("limits.lower", "limits.upper", "limits.max_delta", "action_names")
        if not any(n in checked for n in names):
            return

        def value(name: str) -> Any:
            if name in checked:
                return checked[name]
            try:
                return check_param(name, self._get_param(name))
            except ConfigError:  # another bad value: configure reports it
                return None

        lower, upper, max_delta, action_names = (value(n) for n in names)
        if None in (lower, upper, max_delta, action_names):
            return
        dim = len(action_names) or None
        with self._lock:
            if self._runtime is not None and value("policy_path") == self._cfg["policy_path"]:
                if action_names and len(action_names) != self._runtime.action_dim:
                    raise ConfigError(
                        f"action_names: {len(action_names)} names for the "
                        f"{self._runtime.action_dim} action dimensions of the loaded policy"
                    )
                dim = self._runtime.action_dim
        check_limits(lower, upper, max_delta, dim)

    def _num_steps(self) -> int | None:
        steps = int(self._runtime_values["num_steps"])
        return steps if steps > 0 else None

    # ================================================================== lifecycle
    @property
    def state_label(self) -> str:
        """Lifecycle state: unconfigured, inactive, active or finalized."""
        return self._state_label

    def autostart(self) -> None:
        """Configure and activate when the ``autostart`` parameter says so."""
        if not self._get_param("autostart"):
            return
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            self.get_logger().error(
                f"autostart: configure failed ({self._configure_error}); the node stays "
                "unconfigured (fix the parameters and configure it again)"
            )
            return
        if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            self.get_logger().error("autostart: activate failed")

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._configure_error = ""
        try:
            self._configure()
        except Exception as exc:  # report, stay unconfigured
            self._configure_error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"configure failed: {self._configure_error}")
            if not isinstance(exc, ValueError):
                self.get_logger().debug(traceback.format_exc())
            self._teardown()
            self._publish_event(
                "transition", {"state": "unconfigured", "error": self._configure_error}
            )
            return TransitionCallbackReturn.FAILURE
        self._state_label = "inactive"
        self._publish_event("transition", {"state": "inactive"})
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)
        if ret != TransitionCallbackReturn.SUCCESS:
            return ret
        now = self._now_ns() * 1e-9
        with self._lock:
            self._loop.reset()
            self._epoch += 1
            self._fault = ""
            self._active = True
            self._state_label = "active"
        self._command_meter.start(now)
        self._chunk_meter.start(now)
        self._wake.set()
        self.get_logger().info("activated: running the policy")
        self._publish_event("transition", {"state": "active"})
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_commands()
        self._state_label = "inactive"
        self.get_logger().info("deactivated: commands stopped")
        self._publish_event("transition", {"state": "inactive"})
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self._state_label = "unconfigured"
        self._publish_event("transition", {"state": "unconfigured"})
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._active:
            self._stop_commands()
        self._teardown()
        self._state_label = "finalized"
        self._publish_event("transition", {"state": "finalized"})
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._teardown()
        self._state_label = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _stop_commands(self) -> None:
        """Stop executing: drop the plan, send one hold command (if configured), stop ticks."""
        with self._lock:
            self._active = False
            self._epoch += 1
            if self._loop is None:
                return
            self._loop.stop()
            hold = self._loop.hold_command()
            if hold is not None and not self._runtime_values["dry_run"]:
                self._publish_command(hold, self._now_ns())

    # ------------------------------------------------------------------ configure / teardown
    def _configure(self) -> None:
        cfg = build_config(self._get_param)
        self._runtime_values.update({k: cfg[k] for k in RUNTIME_PARAMS})
        threads = cfg["torch_threads"]
        if threads:
            import torch

            torch.set_num_threads(threads)
        from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions

        path = resolve_policy_path(cfg["policy_path"])
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
        self._check_against_policy(cfg, runtime)
        start = time.perf_counter()
        runtime.predict_chunk(runtime.dummy_observation(), num_steps=self._num_steps())
        self._latency_hint = time.perf_counter() - start
        runtime.reset_noise(seed)
        dim = runtime.action_dim
        names = cfg["action_names"] or [f"action_{i}" for i in range(dim)]
        limits = ActionLimits.build(
            dim, cfg["limits.lower"], cfg["limits.upper"], cfg["limits.max_delta"]
        )
        dt = 1.0 / cfg["control_rate"]
        loop = CommandLoop(
            dt=dt,
            action_dim=dim,
            blend=BlendConfig(cfg["blend.mode"], cfg["blend.alpha"], cfg["blend.max_steps"]),
            limits=limits,
            hold_mode=self._runtime_values["hold_mode"],
            max_lead=self._runtime_values["max_future_stamp"],
        )
        self._apply_status_settings(cfg)
        with self._lock:
            self._cfg = cfg
            self._runtime = runtime
            self._loop = loop
            self._action_names = list(names)
            self._dt = dt
            self._latency = LatencyStats(cfg["stats_window"])
            self._command_meter = RateMeter(5.0, nominal_period=dt)
            self._chunk_meter = RateMeter(5.0)
        self._create_io(cfg)
        self._worker_stop.clear()
        self._worker = threading.Thread(target=self._worker_loop, name="inference", daemon=True)
        self._worker.start()
        desc = runtime.describe()
        self.get_logger().info(
            f"configured: {desc['policy_type']} (snapflow={desc['snapflow']}) on {desc['device']} "
            f"({desc['dtype']}, engine {desc['engine']}), "
            f"cameras {[c.key for c in cfg.cameras]}, state {desc['state_dim']}, "
            f"actions {dim} x {desc['chunk_size']} at {cfg['control_rate']} Hz, "
            f"steps {self._num_steps() or desc['default_num_steps']}, "
            f"first chunk {self._latency_hint * 1000:.0f} ms"
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

    def _check_against_policy(self, cfg: NodeConfig, runtime: Any) -> None:
        keys = []
        for cam in cfg.cameras:
            key = (
                cam.key
                if cam.key.startswith("observation.images.")
                else ("observation.images." + cam.key)
            )
            keys.append(key)
            cam.key = key
        missing = [k for k in runtime.image_keys if k not in keys]
        unknown = [k for k in keys if k not in runtime.image_keys]
        if missing or unknown:
            raise ConfigError(
                f"cameras: the policy expects image keys {runtime.image_keys}; "
                f"missing {missing}, unknown {unknown} (set cameras.<name>.key)"
            )
        state_dim = sum(s.dim() for s in cfg.state)
        if state_dim != runtime.state_dim:
            parts = ", ".join(f"{s.name}={s.dim()}" for s in cfg.state)
            raise ConfigError(
                f"state: the sources give {state_dim} values ({parts}), "
                f"the policy expects {runtime.state_dim}"
            )
        names = cfg["action_names"]
        if names and len(names) != runtime.action_dim:
            raise ConfigError(
                f"action_names: {len(names)} names for {runtime.action_dim} action dimensions"
            )

    def _sensor_qos(self, cfg: NodeConfig) -> QoSProfile:
        if cfg["qos"] == "sensor_data":
            return qos_profile_sensor_data
        return QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)

    def _create_io(self, cfg: NodeConfig) -> None:
        qos = self._sensor_qos(cfg)
        runtime = self._runtime
        resize = cfg["cameras.resize"]
        self._slots = {}
        self._camera_slots = []
        self._state_slots = []
        for cam in cfg.cameras:
            _, height, width = runtime.config.input_features[cam.key].shape
            convert = self._image_converter(cam.compressed, int(height), int(width), resize)
            check = check_compressed if cam.compressed else check_image
            slot = InputSlot(
                f"camera.{cam.name}", f"camera {cam.name} ({cam.topic})", convert, check
            )
            msg_type = CompressedImage if cam.compressed else Image
            self._subs.append(
                self.create_subscription(
                    msg_type,
                    cam.topic,
                    self._make_input_cb(slot),
                    qos,
                    callback_group=self._cb_inputs,
                )
            )
            self._slots[slot.name] = slot
            self._camera_slots.append((cam, slot))
        for src in cfg.state:
            slot = InputSlot(
                f"state.{src.name}",
                f"state {src.name} ({src.topic})",
                self._state_converter(src),
                eager=True,
            )
            msg_type = STATE_MSG_TYPES.get(src.type)
            if msg_type is None:
                from geometry_msgs.msg import PoseStamped

                msg_type = PoseStamped
            self._subs.append(
                self.create_subscription(
                    msg_type,
                    src.topic,
                    self._make_input_cb(slot),
                    qos,
                    callback_group=self._cb_inputs,
                )
            )
            self._slots[slot.name] = slot
            self._state_slots.append(slot)
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
                    self._on_task,
                    latched,
                    callback_group=self._cb_inputs,
                )
            )
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        if cfg["chunk.publish"]:
            self._chunk_pub = self.create_lifecycle_publisher(
                JointTrajectory, cfg["chunk.topic"], reliable
            )
        cmd_type = {
            "joint_state": JointState,
            "float64_multi_array": Float64MultiArray,
            "joint_trajectory": JointTrajectory,
        }[cfg["command.type"]]
        if cfg["command.publish"]:
            self._command_pub = self.create_lifecycle_publisher(
                cmd_type, cfg["command.topic"], reliable
            )
        self._control_timer = self.create_timer(
            1.0 / cfg["control_rate"], self._on_tick, self._cb_control
        )

    def _image_converter(self, compressed: bool, height: int, width: int, resize: bool):
        decode = compressed_to_rgb if compressed else image_to_rgb

        def convert(msg: Any) -> np.ndarray:
            img = decode(msg)
            if img.shape[0] != height or img.shape[1] != width:
                if not resize:
                    raise ValueError(
                        f"image is {img.shape[1]}x{img.shape[0]}, the policy expects "
                        f"{width}x{height} (set cameras.resize: true to resize)"
                    )
                img = resize_rgb(img, height, width)
            return img

        return convert

    @staticmethod
    def _state_converter(src: Any):
        if src.type == "joint_state":
            return lambda msg: joint_state_values(msg, src.names, src.joint_field)
        if src.type == "pose":
            return lambda msg: pose_values(msg, src.format)
        return lambda msg: array_values(msg, src.indices, src.dim())

    def _make_input_cb(self, slot: InputSlot):
        def callback(msg: Any) -> None:
            try:
                slot.update(msg, self._now_ns())
            except Exception as exc:  # a malformed header must not kill the node
                slot.errors += 1
                slot.fault = short(f"unreadable message: {type(exc).__name__}: {exc}")
            self._wake.set()

        return callback

    def _on_task(self, msg: String) -> None:
        text = str(msg.data)
        changed = False
        with self._lock:
            self._task_count += 1
            if len(text) > MAX_TASK_CHARS:
                topic = self._cfg["task.topic"] if self._cfg else "the task topic"
                self._task_fault = (
                    f"task: {len(text)} characters on {topic}, at most "
                    f"{MAX_TASK_CHARS} are accepted"
                )
            else:
                self._task_fault = ""
                changed = text != self._task_from_topic
                self._task_from_topic = text
        self._wake.set()
        if self._task_fault:
            self._log_throttled("task", "error", f"task rejected, holding: {self._task_fault}")
        elif changed:
            self.get_logger().info(f"task: {task_preview(text)!r}")

    def _teardown(self) -> None:
        self._worker_stop.set()
        self._wake.set()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=30.0)
        self._worker = None
        with self._lock:
            self._active = False
            self._epoch += 1
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
            self._slots = {}
            self._camera_slots = []
            self._state_slots = []
            self._task_from_topic = None
            self._task_fault = ""
            self._runtime = None
            self._loop = None
            self._cfg = None

    # ================================================================== time and health
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _task(self) -> str:
        if self._task_from_topic is not None:
            return self._task_from_topic
        return str(self._runtime_values["task.text"])

    def _input_problems(self, now_ns: int) -> list[Problem]:
        """What is wrong with the inputs at ``now_ns``: missing, stale, malformed (the latest
        message failed its checks), stamped more than ``max_future_stamp`` ahead of the node
        clock (clock skew; judged once the clock has moved since the message arrived, so a
        simulation that publishes a step's inputs just before advancing /clock is fine), a
        missing or rejected task."""
        problems = []
        timeout = float(self._runtime_values["input_timeout"])
        ahead_max = float(self._runtime_values["max_future_stamp"])
        for slot in self._slots.values():
            st = slot.state()
            if st.msg is None:
                problems.append(Problem("missing", slot.name, f"{slot.label}: no message yet"))
            elif st.fault:
                problems.append(Problem("fault", slot.name, short(f"{slot.label}: {st.fault}")))
            elif (ahead := (st.stamp_ns - now_ns) * 1e-9) > ahead_max:
                severity = "early" if now_ns == st.recv_ns else "fault"
                problems.append(
                    Problem(
                        severity,
                        slot.name,
                        f"{slot.label}: clock skew: stamped {ahead:.3f} s ahead of the node "
                        f"clock (max_future_stamp {ahead_max:g} s)",
                    )
                )
            elif -ahead > timeout:
                problems.append(
                    Problem(
                        "stale", slot.name, f"{slot.label}: stale ({-ahead:.2f} s > {timeout:g} s)"
                    )
                )
        if self._task_fault:
            problems.append(Problem("fault", "task", self._task_fault))
        elif not self._task():
            topic = self._cfg["task.topic"] if self._cfg else ""
            problems.append(
                Problem(
                    "missing",
                    "task",
                    f"task: none (set task.text or publish on {topic or 'task.topic'})",
                )
            )
        return problems

    def _healthy(self, now_ns: int) -> tuple[bool, list[Problem]]:
        problems = [p for p in self._input_problems(now_ns) if p.severity != "early"]
        if self._fault:
            problems.append(Problem("fault", "policy", self._fault))
        return not problems, problems

    def _log_throttled(self, key: str, level: str, message: str) -> None:
        ok, suppressed = self._throttle.ready(key, time.monotonic())
        if not ok:
            return
        if suppressed:
            message += f" (+{suppressed} similar)"
        logger = self.get_logger()
        # rclpy ties a severity to each call site: one call per level
        if level == "error":
            logger.error(message)
        elif level == "warning":
            logger.warning(message)
        else:
            logger.info(message)

    # ================================================================== control tick
    def _on_tick(self) -> None:
        try:
            self._tick()
        except Exception as exc:  # never let a tick kill the node
            self._log_throttled(
                "tick", "error", f"control tick failed: {type(exc).__name__}: {exc}"
            )
        self._wake.set()

    def _tick(self) -> None:
        problems: list[Problem] = []
        with self._lock:
            if self._loop is None or not self._active:
                return
            now_ns = self._now_ns()
            healthy, problems = self._healthy(now_ns)
            events = self._loop.counters.starvation_events
            result = self._loop.tick(now_ns * 1e-9, healthy and not self._paused)
            starved = self._loop.counters.starvation_events > events
            if starved:
                self._last_starvation_ns = now_ns
            cmd = result.command
            if cmd is not None:
                if not np.all(np.isfinite(cmd)):
                    self._counts["nonfinite_commands"] += 1
                    cmd = None
                elif self._runtime_values["dry_run"]:
                    self._counts["dry_run_commands"] += 1
                    self._log_throttled(
                        "dry_run",
                        "info",
                        f"dry_run: would command {np.array2string(cmd, precision=3)} "
                        f"({result.source})",
                    )
                else:
                    self._publish_command(cmd, now_ns)
                if cmd is not None and result.source == "plan":
                    self._command_meter.record(now_ns * 1e-9)
        if starved:
            self._log_starvation()
        if problems and not self._paused:
            text = "; ".join(p.message for p in problems)
            if any(p.severity == "fault" for p in problems):
                self._log_throttled("fault", "error", f"holding, bad input: {text}")
            else:
                self._log_throttled(
                    "inputs", "warning", f"holding, no command from these inputs: {text}"
                )

    def _log_starvation(self) -> None:
        self._log_throttled(
            "starved",
            "warning",
            "starved: the plan ran out and the clock moved on before a new chunk arrived "
            "(inference slower than the plan; see replan_threshold, num_steps)",
        )

    def _publish_command(self, cmd: np.ndarray, now_ns: int) -> None:
        pub = self._command_pub
        if pub is None:
            return
        ctype = self._cfg["command.type"]
        values = array.array("d", cmd.tolist())
        if ctype == "float64_multi_array":
            pub.publish(Float64MultiArray(data=values))
            return
        if ctype == "joint_state":
            msg = JointState()
            _stamp(msg.header, now_ns)
            msg.name = self._action_names
            setattr(msg, self._cfg["action_field"], values)
            pub.publish(msg)
            return
        msg = JointTrajectory()  # stamp 0: "start now" for joint_trajectory_controller
        msg.joint_names = self._action_names
        point = JointTrajectoryPoint(time_from_start=_duration(self._dt))
        setattr(point, FIELD_PLURAL[self._cfg["action_field"]], values)
        msg.points = [point]
        pub.publish(msg)

    # ================================================================== inference worker
    def _running(self) -> bool:
        return self._active and not self._paused and self._loop is not None

    def _threshold(self, runtime: Any = None) -> float:
        """Remaining-horizon threshold (s) that triggers the next inference."""
        fixed = float(self._runtime_values["replan_threshold"])
        if fixed >= 0:
            return fixed
        runtime = runtime or self._runtime
        e2e = self._latency.values("e2e")
        latency = float(np.percentile(e2e, 95)) if e2e else self._latency_hint
        return auto_replan_threshold(latency, self._dt, runtime.chunk_size)

    def _worker_loop(self) -> None:
        failed_generation = None
        while not self._worker_stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            if self._worker_stop.is_set():
                break
            try:
                failed_generation = self._worker_step(failed_generation)
            except Exception as exc:  # keep the worker alive whatever happens
                self._counts["inference_errors"] += 1
                with contextlib.suppress(Exception):  # logging must not end the worker
                    self._log_throttled(
                        "worker", "error", f"inference worker error: {type(exc).__name__}: {exc}"
                    )
                time.sleep(0.05)

    def _generation(self) -> int:
        """Changes whenever an input, the task or a parameter changes."""
        inputs = sum(slot.count for slot in self._slots.values())
        return inputs + self._task_count + self._param_version

    def _worker_step(self, failed_generation: int | None) -> int | None:
        with self._lock:
            if not self._running():
                return failed_generation
            trigger_ns = self._now_ns()
            if not self._loop.needs_chunk(trigger_ns * 1e-9, self._threshold()):
                return failed_generation
            epoch = self._epoch
            runtime = self._runtime
        generation = self._generation()
        if generation == failed_generation:
            return failed_generation  # nothing new since the last failure
        try:
            observed = self._observe(trigger_ns)
        except InputProblem as exc:
            if exc.retry:
                return failed_generation  # judged again once the clock moves
            if exc.fault:
                self._reject(exc)
            return generation
        if self._reseed:
            self._reseed = False
            runtime.reset_noise(self._cfg["seed"] if self._cfg["seed"] >= 0 else None)
        steps = self._num_steps()
        try:
            chunk = runtime.predict_chunk(observed.obs, num_steps=steps)
            if not np.all(np.isfinite(chunk.actions)):
                raise ObservationError("the policy returned NaN/inf actions")
        except ObservationError as exc:  # the observation was valid: the output is not
            problem = InputProblem(
                f"policy: {exc}", fault=True, input_name="policy", stamp_ns=observed.stamp_ns
            )
            self._reject(problem, hold=True)
            self._inference_error = str(problem)
            return generation
        except Exception as exc:
            with self._lock:
                self._fault = short(f"inference: {type(exc).__name__}: {exc}")
            self._inference_error = self._fault
            self._counts["inference_errors"] += 1
            self._log_throttled("inference", "error", f"inference failed, holding: {exc}")
            return generation
        stamp_s = observed.stamp_ns * 1e-9
        with self._lock:
            done_ns = self._now_ns()  # read under the lock: ticks and merges are time-ordered
            if epoch != self._epoch or not self._running():
                self._counts["discarded_chunks"] += 1
                return None
            clamped = np.stack([self._loop.limits.clamp(a) for a in chunk.actions])
            events = self._loop.counters.starvation_events
            result = self._loop.add_chunk(clamped, stamp_s, done_ns * 1e-9)
            starved = self._loop.counters.starvation_events > events
            if starved:
                self._last_starvation_ns = done_ns
            chunk_id = self._loop.scheduler.plan.chunk_id if result.accepted else None
            self._fault = ""
            self._inference_error = ""
            published = self._chunk_pub is not None and not self._runtime_values["dry_run"]
            if published:
                self._chunk_pub.publish(self._chunk_msg(clamped, observed.stamp_ns))
            publish_ns = self._now_ns()
        self._last_chunk_ns = done_ns
        self._chunk_meter.record(done_ns * 1e-9)
        timings = chunk.timings.as_dict()
        e2e = (done_ns - trigger_ns) * 1e-9
        overhead = max(e2e - timings["total"], 0.0)
        input_latency = (observed.newest_recv_ns - observed.newest_stamp_ns) * 1e-9
        samples = {k: timings[k] for k in LATENCY_STAGES}
        samples.update(
            {
                "convert": observed.convert_s,
                "e2e": e2e,
                "overhead": overhead,
                "obs_age": (done_ns - observed.stamp_ns) * 1e-9,
            }
        )
        self._latency.add_many(samples)
        if starved:
            self._log_starvation()
        if result.early:
            self._log_throttled("early", "warning", f"chunk not executed: {result.reason}")
        elif not result.accepted:
            self._log_throttled(
                "late",
                "warning",
                f"chunk arrived too late: all {result.horizon} actions already in the past "
                f"(observation {samples['obs_age']:.3f} s old); lower num_steps or control_rate",
            )
        self._publish_event(
            "chunk",
            {
                "chunk_id": chunk_id,
                "accepted": result.accepted,
                "published": published,
                "stamp_ns": observed.stamp_ns,
                "trigger_ns": trigger_ns,
                "received_ns": done_ns,
                "published_ns": publish_ns,
                "skipped": result.skipped,
                "overlap": result.overlap,
                "horizon": result.horizon,
                "num_steps": chunk.num_steps,
                "timings": timings,
                "convert_s": observed.convert_s,
                "overhead_s": overhead,
                "input_latency_s": input_latency,
                "dt": self._dt,
            },
        )
        return None

    def _reject(self, problem: InputProblem, hold: bool = False) -> None:
        """A malformed observation (or policy output): count it, announce it once on
        ``~/status`` (``rejected``), log (throttled); ``hold``: keep holding until a chunk."""
        self._counts["input_faults" if problem.input_name != "policy" else "inference_errors"] += 1
        if hold:
            with self._lock:
                self._fault = short(str(problem))
            self._log_throttled("rejected", "error", f"holding: {short(str(problem))}")
        self._publish_event(
            "rejected",
            {
                "stamp_ns": problem.stamp_ns,
                "input": problem.input_name,
                "reason": short(str(problem)),
            },
        )

    def _observation_stamp(self) -> int:
        """The stamp a chunk of the current inputs carries (oldest or newest input stamp)."""
        stamps = [slot.state().stamp_ns for _, slot in self._camera_slots]
        stamps += [slot.state().stamp_ns for slot in self._state_slots]
        return min(stamps) if self._cfg["observation_stamp"] == "oldest" else max(stamps)

    def _observe(self, now_ns: int) -> _Observed:
        """The observation of the current inputs; :class:`InputProblem` if there is none
        (``fault``: a malformed one, with the failing input and the stamp it would carry)."""
        from snapflow_ros.runtime import Observation

        problems = self._input_problems(now_ns)
        waiting = [p for p in problems if p.severity in ("missing", "early")]
        if waiting:
            retry = all(p.severity == "early" for p in waiting)
            raise InputProblem("; ".join(p.message for p in waiting), retry=retry)
        stamp_ns = self._observation_stamp()
        faults = [p for p in problems if p.severity == "fault"]
        if faults:
            first = faults[0]
            raise InputProblem(first.message, fault=True, input_name=first.input, stamp_ns=stamp_ns)
        if problems:  # stale only: not a malformed observation
            raise InputProblem("; ".join(p.message for p in problems))
        start = time.perf_counter()
        images = {}
        stamps, recvs = [], []
        try:
            for cam, slot in self._camera_slots:
                img, stamp, recv = slot.value()
                images[cam.key] = img
                stamps.append(stamp)
                recvs.append(recv)
            parts = []
            for slot in self._state_slots:
                values, stamp, recv = slot.value()
                parts.append(np.asarray(values, np.float64))
                stamps.append(stamp)
                recvs.append(recv)
        except InputProblem as exc:
            exc.stamp_ns = stamp_ns
            raise
        state = np.concatenate(parts).astype(np.float32)
        stamp_ns = min(stamps) if self._cfg["observation_stamp"] == "oldest" else max(stamps)
        newest = int(np.argmax(stamps))
        obs = Observation(images=images, state=state, task=self._task(), stamp=stamp_ns * 1e-9)
        try:
            self._runtime.validate(obs)
        except ValueError as exc:
            problem = InputProblem(
                short(f"observation: {exc}"),
                fault=True,
                input_name="observation",
                stamp_ns=stamp_ns,
            )
            with self._lock:
                self._fault = str(problem)  # hold until a valid observation makes a chunk
            raise problem from exc
        return _Observed(obs, stamp_ns, recvs[newest], stamps[newest], time.perf_counter() - start)

    def _chunk_msg(self, actions: np.ndarray, stamp_ns: int) -> JointTrajectory:
        msg = JointTrajectory()
        _stamp(msg.header, stamp_ns)
        msg.joint_names = self._action_names
        field = FIELD_PLURAL[self._cfg["action_field"]]
        points = []
        for k, action in enumerate(actions):
            point = JointTrajectoryPoint(time_from_start=_duration(k * self._dt))
            setattr(point, field, array.array("d", action.tolist()))
            points.append(point)
        msg.points = points
        return msg

    # ================================================================== services
    def _srv_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self._epoch += 1
            if self._loop is not None:
                self._loop.reset()
            self._fault = ""
            self._inference_error = ""
            self._reseed = True
            for key in self._counts:
                self._counts[key] = 0
            self._latency.clear()
            now_ns = self._now_ns()
            self._command_meter.start(now_ns * 1e-9)
            self._chunk_meter.start(now_ns * 1e-9)
            self._last_starvation_ns = 0
        self._wake.set()
        self._log_throttled("srv_reset", "info", "reset: plan, statistics and noise seed reset")
        self._publish_event("reset", {"t_ns": now_ns})
        response.success = True
        response.message = "reset"
        return response

    def _srv_pause(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            was = self._paused
            self._paused = True
            self._epoch += 1
            if self._loop is not None:
                self._loop.stop()
        if not was:
            self._log_throttled("srv_pause", "info", "paused: no inference, no commands (hold)")
            self._publish_event("pause", {})
        response.success = True
        response.message = "paused" if not was else "already paused"
        return response

    def _srv_resume(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            was = self._paused
            self._paused = False
        self._wake.set()
        if was:
            self._log_throttled("srv_resume", "info", "resumed")
            self._publish_event("resume", {})
        response.success = True
        response.message = "resumed" if was else "not paused"
        return response

    # ================================================================== status and diagnostics
    def _publish_event(self, event: str, data: dict[str, Any]) -> None:
        try:
            payload = {
                "event": event,
                "node": self.get_fully_qualified_name(),
                "t_ns": self._now_ns(),
                **data,
            }
            self._status_pub.publish(String(data=json.dumps(_jsonable(payload))))
        except Exception as exc:  # status is best effort (e.g. during shutdown)
            self.get_logger().debug(f"status publish failed: {exc}")

    def _on_status_timer(self) -> None:
        try:
            report = self.report()
            self._publish_event("periodic", report)
            self._diag_pub.publish(self._diagnostics(report))
        except Exception as exc:
            self._log_throttled("status", "error", f"status failed: {type(exc).__name__}: {exc}")

    def report(self) -> dict[str, Any]:
        """Everything the status topic and /diagnostics say, as a dict."""
        now_ns = self._now_ns()
        now = now_ns * 1e-9
        with self._lock:
            loop, cfg, runtime = self._loop, self._cfg, self._runtime
            healthy, problems = self._healthy(now_ns) if loop is not None else (True, [])
            counters = loop.counters.as_dict() if loop is not None else {}
            inputs = {}
            for slot in self._slots.values():
                st = slot.state()
                inputs[slot.name] = {
                    "topic": slot.label,
                    "count": st.count,
                    "age_s": (now_ns - st.stamp_ns) * 1e-9 if st.msg is not None else None,
                    "receive_age_s": (now_ns - st.recv_ns) * 1e-9 if st.msg is not None else None,
                    "errors": slot.errors,
                    "last_error": st.fault,
                }
            steps = self._num_steps() or (runtime.default_num_steps if runtime else None)
            remaining = loop.remaining(now) if loop is not None else None
        latency = {name: self._latency.summary(name) for name in self._latency.names()}
        return {
            "state": self._state_label,
            "active": self._active,
            "paused": self._paused,
            "dry_run": bool(self._runtime_values["dry_run"]),
            "healthy": healthy and not self._paused,
            "problems": [
                {"severity": p.severity, "input": p.input, "message": p.message} for p in problems
            ],
            "policy": runtime.describe() if runtime is not None else None,
            "configure_error": self._configure_error,
            "num_steps": steps,
            "control_rate": cfg["control_rate"] if cfg else None,
            "replan_threshold_s": self._threshold(runtime) if runtime is not None else None,
            "remaining_s": remaining
            if remaining is not None and math.isfinite(remaining)
            else None,
            "chunk_rate_hz": self._chunk_meter.rate(now),
            "command_rate_hz": self._command_meter.rate(now),
            "command_jitter_s": self._command_meter.jitter(),
            "latency_s": latency,
            "counters": {**counters, **self._counts},
            "inputs": inputs,
            "task": task_preview(self._task()) if cfg else None,
        }

    def _diagnostics(self, report: dict[str, Any]) -> DiagnosticArray:
        now_ns = self._now_ns()
        recent = bool(self._last_starvation_ns) and now_ns - self._last_starvation_ns < 5e9
        return build_diagnostics(
            report, self.get_fully_qualified_name(), now_ns, self._inference_error, recent
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
    """Entry point of the ``policy_node`` executable (Ctrl-C / SIGTERM: clean shutdown)."""
    stop = init_ros(args, NODE_NAME, HELP)
    try:
        node = PolicyNode()
    except Exception as exc:  # the parameters are checked, but never die with a traceback
        print(f"{NODE_NAME}: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
