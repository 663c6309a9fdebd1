"""The ROS 2 policy node: cameras + joint states + task in, action chunks and commands out.

A lifecycle node that wires a :class:`~snapflow_ros.control.PolicyController` (all the logic:
inputs, replanning, scheduling, limits, hold, faults, status; plain Python, see
``docs/architecture.md``) to ROS: the parameters (the table of
:mod:`snapflow_ros.params.policy_node`, declared and checked on every set by a
:class:`~snapflow_ros.nodes.parameters.ParameterListener`), the subscriptions and publishers,
the lifecycle, the services, the control timer and the inference thread. A configure builds
its session with :func:`snapflow_ros.control.session.open_session`. Topics, parameters and
services: ``docs/policy_node.md``.

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
import traceback
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
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

from snapflow_ros.control import InputSet, InputSlot, PolicyController
from snapflow_ros.control.session import Backend, open_session
from snapflow_ros.control.settings import SETTING_OF, settings_from
from snapflow_ros.control.status import PeriodicEvent, StatusEvent, TransitionEvent
from snapflow_ros.nodes.parameters import ParameterListener, SetReasons
from snapflow_ros.nodes.process import exit_process, init_ros, log_at, set_realtime_priority, spin
from snapflow_ros.nodes.status_output import StatusOutput
from snapflow_ros.params.policy_node import (
    NODE_NAME,
    TABLE,
    build_config,
    check_set_sizes,
    load_runtime,
    not_applied_yet,
)
from snapflow_ros.params.schema import lookup
from snapflow_ros.ros_conversions.actions import COMMAND_MESSAGES, chunk_message, command_message
from snapflow_ros.ros_conversions.input_converters import (
    header_stamp,
    image_checker,
    image_converter,
    state_converter,
)

STATE_MSG_TYPES = {
    "joint_state": JointState,
    "float64_array": Float64MultiArray,
    "float32_array": Float32MultiArray,
    "pose": PoseStamped,
}
WORKER_JOIN_S = 30.0  # cleanup: the inference in progress finishes (a re-configure follows)
SHUTDOWN_JOIN_S = 2.0  # shutdown: the process ends; a chunk computed later is discarded


class PolicyNode(SetReasons, LifecycleNode):
    """Lifecycle policy node (see the module docstring and docs/policy_node.md)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.params = ParameterListener(
            self,
            TABLE,
            apply=self._apply_parameters,
            cross_check=self._check_sizes,
            log_refused=lambda *line: self.controller.log_throttled(*line),
        )
        self._cb_inputs = MutuallyExclusiveCallbackGroup()
        self._cb_control = MutuallyExclusiveCallbackGroup()
        self._cb_misc = MutuallyExclusiveCallbackGroup()
        self._cfg: Any = None  # the configuration of the configured session
        self._action_names: list[str] = []
        self._subs: list[Any] = []
        self._chunk_pub: Any = None
        self._command_pub: Any = None
        self._control_timer: Any = None
        self._worker: threading.Thread | None = None
        self._worker_stop = threading.Event()
        self.realtime_priority = int(self.params.start_value("realtime_priority"))
        settings = settings_from(self.params.start_value)
        self.controller = PolicyController(
            self._now_ns, self, settings, name=self.get_fully_qualified_name()
        )
        self.controller.simulated_clock = bool(self.get_parameter("use_sim_time").value)
        self.params.listen()

        self.status = StatusOutput(
            self,
            self.controller,
            self.params.start_value("status_topic"),
            self.params.start_value("status_rate"),
            self._cb_misc,
            self._now_ns,
        )
        self.create_service(Trigger, "~/reset", self._srv_reset, callback_group=self._cb_misc)
        self.create_service(Trigger, "~/pause", self._srv_pause, callback_group=self._cb_misc)
        self.create_service(Trigger, "~/resume", self._srv_resume, callback_group=self._cb_misc)
        for error in self.params.startup_errors:
            self.get_logger().error(
                f"bad parameter: {error}; the node cannot be configured until it is fixed"
            )
        self._autostarting = False
        self.params.warn_unknown_overrides()

    # ================================================================== parameters
    def _apply_parameters(self, checked: dict[str, Any]) -> str:
        """Run-time values go to the controller now; the others apply at the next configure
        (or start-up): the reason says so (``successful`` is not "done")."""
        updates = {SETTING_OF[k]: v for k, v in checked.items() if k in SETTING_OF}
        if updates:
            self.controller.update_settings(**updates)
        later = sorted(k for k in checked if k not in SETTING_OF)
        reason = not_applied_yet(later, self._cfg)
        if reason and self._cfg is not None:
            self.controller.log_throttled(f"later.{','.join(later)}", "info", reason)
        return reason

    def _check_sizes(self, checked: dict[str, Any], current: Any) -> None:
        """Limits and action names of a set against each other and the loaded policy."""
        session, cfg = self.controller.session, self._cfg
        loaded = (cfg.policy_path, session.runtime.action_dim) if session and cfg else None
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
        if not self.params.value("autostart"):
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
            if self._autostarting and str(exc) in self.params.startup_errors:
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
        cfg = build_config(self.params.value)
        self.controller.update_settings(**{f: lookup(cfg, p) for p, f in SETTING_OF.items()})
        from snapflow_ros.runtime import Observation

        backend = Backend(
            load_runtime, Observation, image_converter, image_checker, state_converter
        )
        opened = open_session(
            cfg, backend, self.controller.settings.steps, self.log, self.controller.log_throttled
        )
        self.status.retarget(cfg.status_topic, cfg.status_rate)
        self._cfg, self._action_names = cfg, opened.action_names
        self.controller.attach(opened.session)
        self._create_io(cfg, opened.session.inputs)
        self._worker_stop.clear()
        self._worker = threading.Thread(target=self._worker_loop, name="inference", daemon=True)
        self._worker.start()
        self.get_logger().info(opened.summary)

    def _create_io(self, cfg: Any, inputs: InputSet) -> None:
        """Subscriptions of the inputs, the chunk / command publishers and the control timer."""
        qos = (
            qos_profile_sensor_data
            if cfg.qos == "sensor_data"
            else QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        )
        for cam in cfg.cameras:
            msg_type = CompressedImage if cam.compressed else Image
            self._subscribe(msg_type, cam.topic, inputs.slots[f"camera.{cam.name}"], qos)
        for src in cfg.state:
            slot = inputs.slots[f"state.{src.name}"]
            self._subscribe(STATE_MSG_TYPES[src.type], src.topic, slot, qos)
        if cfg.task.topic:
            latched = QoSProfile(
                depth=1,
                history=HistoryPolicy.KEEP_LAST,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
            )
            self._subs.append(
                self.create_subscription(
                    String,
                    cfg.task.topic,
                    lambda msg: self.controller.set_task(str(msg.data)),
                    latched,
                    callback_group=self._cb_inputs,
                )
            )
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        if cfg.chunk.publish:
            self._chunk_pub = self.create_lifecycle_publisher(
                JointTrajectory, cfg.chunk.topic, reliable
            )
        if cfg.command.publish:
            self._command_pub = self.create_lifecycle_publisher(
                COMMAND_MESSAGES[cfg.command.type], cfg.command.topic, reliable
            )
        self._control_timer = self.create_timer(
            1.0 / cfg.control_rate, self.controller.tick, self._cb_control
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
                cfg.command.type,
                values,
                t_ns,
                self._action_names,
                cfg.action_field,
                1.0 / cfg.control_rate,
            )
        )

    def chunk(self, actions: np.ndarray, stamp_ns: int) -> bool:
        """Publish a whole chunk; False when chunks are not published."""
        pub, cfg = self._chunk_pub, self._cfg
        if pub is None or cfg is None:
            return False
        dt = 1.0 / cfg.control_rate
        pub.publish(chunk_message(actions, stamp_ns, self._action_names, cfg.action_field, dt))
        return True

    def event(self, event: StatusEvent) -> None:
        """Publish a status event on ``~/status``."""
        self.status.event(event)

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
        return self.status.diagnostics(report)


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
