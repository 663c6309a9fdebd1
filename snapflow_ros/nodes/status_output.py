"""The policy node's status outputs: ``~/status`` events and ``/diagnostics`` at ``status_rate``.

:class:`StatusOutput` owns the status publisher, the ``/diagnostics`` publisher and the timer
of the periodic report; a configure that changed ``status_topic`` or ``status_rate`` moves
them (:meth:`StatusOutput.retarget`). The report itself is the controller's
(:meth:`snapflow_ros.control.PolicyController.report`), the diagnostics its translation
(:func:`snapflow_ros.nodes.diagnostics.build_diagnostics`).
"""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import QoSProfile
from std_msgs.msg import String

from snapflow_ros.control import PolicyController
from snapflow_ros.control.status import PeriodicEvent, StatusEvent, encode
from snapflow_ros.nodes.diagnostics import build_diagnostics


class StatusOutput:
    """Status events and diagnostics of ``node`` (see the module docstring); the timer runs in
    ``callback_group``."""

    def __init__(
        self,
        node: Node,
        controller: PolicyController,
        topic: str,
        rate: float,
        callback_group: Any,
        now_ns: Any,
    ) -> None:
        self._node = node
        self._controller = controller
        self._group = callback_group
        self._now_ns = now_ns
        self._settings = (topic, rate)
        self._pub = node.create_publisher(String, topic, QoSProfile(depth=100))
        self._diag_pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = node.create_timer(1.0 / rate, self._on_timer, callback_group)

    def event(self, event: StatusEvent) -> None:
        """Publish a status event on the status topic."""
        self._pub.publish(String(data=encode(event)))

    def retarget(self, topic: str, rate: float) -> None:
        """``status_topic`` / ``status_rate`` changed since start-up: new publisher / timer."""
        node = self._node
        if topic != self._settings[0]:
            old = self._pub
            self._pub = node.create_publisher(String, topic, QoSProfile(depth=100))
            node.destroy_publisher(old)
        if rate != self._settings[1]:
            node.destroy_timer(self._timer)
            self._timer = node.create_timer(1.0 / rate, self._on_timer, self._group)
        self._settings = (topic, rate)

    def diagnostics(self, report: PeriodicEvent) -> DiagnosticArray:
        """The /diagnostics message of ``report``."""
        now_ns = self._now_ns()
        return build_diagnostics(
            report,
            self._node.get_fully_qualified_name(),
            now_ns,
            self._controller.inference_error,
            self._controller.recent_starvation(now_ns),
        )

    def _on_timer(self) -> None:
        try:
            report = self._controller.report()
            self._controller.emit(report)
            self._diag_pub.publish(self.diagnostics(report))
        except Exception as exc:
            self._controller.log_throttled(
                "status", "error", f"status failed: {type(exc).__name__}: {exc}"
            )
