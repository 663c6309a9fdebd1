"""A small client for the package's nodes: wait for them, call their services, set their
parameters, read the policy node's status.

:class:`NodeClient` joins the ROS graph with its own rclpy context (a domain of its own if
asked) and one executor thread, so it lives beside whatever else the calling process does
(``replay``, ``libero_eval``, the demo, the benchmarks, the tests). Every wait is
:func:`snapflow_ros.client.waiting.wait_until`: a condition polled against a deadline that can
fail early when a watched process has died (``alive``: a function naming the death, '' while
all is well). Status events arrive decoded
(:mod:`snapflow_ros.control.status`) with their receive time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import SetParametersResult
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String
from std_srvs.srv import Trigger

from snapflow_ros.client.names import absolute, split_name
from snapflow_ros.client.waiting import Alive, ClientError, WaitTimeout, wait_until
from snapflow_ros.control.status import PeriodicEvent, decode

STATUS_DEPTH = 1000
RESEND_AFTER_S = 5.0  # read-only calls: resend a request that got no reply (see call())


@dataclass(frozen=True)
class Received:
    """A status event and when it arrived here (``time.time_ns()`` and ``time.monotonic()``)."""

    event: Any
    recv_ns: int
    recv_mono: float


class NodeClient:
    """Talks to one node (``target``, e.g. ``/policy_node``); see the module docstring.

    ``node`` is the client's own rclpy node: callers add their publishers and subscriptions
    to it (its executor thread runs their callbacks). With ``status`` the policy node's
    ``~/status`` is recorded.
    """

    def __init__(
        self,
        target: str = "/policy_node",
        domain: int | None = None,
        name: str = "snapflow_client",
        status: bool = True,
    ) -> None:
        self.target = absolute(target).rstrip("/")
        self.context = Context()
        rclpy.init(
            args=["--ros-args"],
            context=self.context,
            domain_id=domain,
            signal_handler_options=SignalHandlerOptions.NO,
        )
        self.node = rclpy.create_node(name, context=self.context)
        self._lock = threading.Lock()
        self._events: list[Received] = []
        if status:
            self.node.create_subscription(
                String,
                f"{self.target}/status",
                self._on_status,
                QoSProfile(depth=STATUS_DEPTH, reliability=ReliabilityPolicy.RELIABLE),
            )
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=f"{name}_spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            self._executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        """Stop spinning, destroy the node, shut the context down."""
        self._stop.set()
        self._thread.join(5)
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ graph
    def has_node(self, node: str | None = None) -> bool:
        """True when ``node`` (default: the target) is in the graph."""
        ns, name = split_name(node or self.target)
        return (name, ns) in self.node.get_node_names_and_namespaces()

    def node_count(self, node: str | None = None) -> int:
        """How many nodes of that full name are in the graph (more than one: a twin)."""
        ns, name = split_name(node or self.target)
        return self.node.get_node_names_and_namespaces().count((name, ns))

    def wait_for_node(self, timeout: float, alive: Alive | None = None) -> None:
        """Wait until the target is in the graph."""
        wait_until(
            self.has_node,
            timeout,
            f"node {self.target} (is it running, on the same ROS_DOMAIN_ID?)",
            alive,
        )

    # ------------------------------------------------------------------ services
    def service(self, name: str, node: str | None = None) -> str:
        """Full name of service ``name`` of ``node`` (default: the target); absolute names
        are kept."""
        return name if name.startswith("/") else f"{absolute(node or self.target)}/{name}"

    def call(
        self,
        srv_type: type,
        name: str,
        request: Any,
        timeout: float = 60.0,
        alive: Alive | None = None,
        resend_after: float | None = None,
    ) -> Any:
        """Call a service (``name`` as in :meth:`service`) once it is there; the reply.

        ``resend_after``: for a READ-ONLY service, send the request again when no reply came
        within that many seconds (until ``timeout``). A node restarted under the same name
        needs it: the graph may still show the old server as "ready", and a request sent
        before the new server's request reader is matched is lost (volatile QoS), so the
        reply would never come.
        """
        full = self.service(name)
        client = self.node.create_client(srv_type, full)
        try:
            deadline = time.monotonic() + timeout
            wait_until(client.service_is_ready, timeout, f"service {full}", alive)
            while True:
                future = client.call_async(request)
                left = deadline - time.monotonic()
                wait = left if resend_after is None else min(left, resend_after)
                try:
                    wait_until(future.done, max(wait, 0.0), f"the reply of {full}", alive)
                    return future.result()
                except WaitTimeout:  # (a death named by ``alive`` ends the call at once)
                    if resend_after is None or time.monotonic() >= deadline:
                        raise
                    client.remove_pending_request(future)
        finally:
            self.node.destroy_client(client)

    def trigger(self, name: str, timeout: float = 60.0, alive: Alive | None = None) -> str:
        """Call a ``std_srvs/Trigger`` service; its message (:class:`ClientError` when it
        reports failure)."""
        reply = self.call(Trigger, name, Trigger.Request(), timeout, alive)
        if not reply.success:
            raise ClientError(f"{self.service(name)} failed: {reply.message}")
        return str(reply.message)

    def try_set_parameters(
        self,
        values: dict[str, Any],
        node: str | None = None,
        timeout: float = 30.0,
        alive: Alive | None = None,
    ) -> list[SetParametersResult]:
        """Set parameters (dotted names) of ``node``; the result of each, in order."""
        params = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        reply = self.call(
            SetParameters,
            self.service("set_parameters", node),
            SetParameters.Request(parameters=params),
            timeout,
            alive,
        )
        return list(reply.results)

    def set_parameters(
        self,
        values: dict[str, Any],
        node: str | None = None,
        timeout: float = 30.0,
        alive: Alive | None = None,
    ) -> None:
        """Set parameters of ``node``; :class:`ClientError` naming each one refused."""
        results = self.try_set_parameters(values, node, timeout, alive)
        refused = [
            f"{name}: {r.reason}"
            for name, r in zip(values, results, strict=False)
            if not r.successful
        ]
        if refused or len(results) != len(values):
            who = absolute(node or self.target)
            raise ClientError(f"{who} refused parameters: {'; '.join(refused) or 'no result'}")

    def get_parameters(
        self, names: list[str], node: str | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Values of parameters of ``node`` (None: not set; every value None when one of
        them is not declared, as rclpy then answers with no values)."""
        reply = self.call(
            GetParameters,
            self.service("get_parameters", node),
            GetParameters.Request(names=list(names)),
            timeout,
            resend_after=RESEND_AFTER_S,
        )
        if len(reply.values) != len(names):  # rclpy answers nothing if one is not declared
            return dict.fromkeys(names)
        return {
            name: Parameter.from_parameter_msg(ParameterMsg(name=name, value=value)).value
            for name, value in zip(names, reply.values, strict=True)
        }

    def lifecycle_state(
        self, node: str | None = None, timeout: float = 60.0, alive: Alive | None = None
    ) -> str:
        """The lifecycle state label of ``node`` (waits for its service)."""
        reply = self.call(
            GetState,
            self.service("get_state", node),
            GetState.Request(),
            timeout,
            alive,
            resend_after=RESEND_AFTER_S,
        )
        return str(reply.current_state.label)

    def change_state(
        self, transition_id: int, node: str | None = None, timeout: float = 120.0
    ) -> bool:
        """Request a lifecycle transition (``lifecycle_msgs/Transition`` id); True on success."""
        request = ChangeState.Request(transition=Transition(id=transition_id))
        reply = self.call(ChangeState, self.service("change_state", node), request, timeout)
        return bool(reply.success)

    # ------------------------------------------------------------------ status
    def _on_status(self, msg: String) -> None:
        event = decode(msg.data)
        if event is not None:
            with self._lock:
                self._events.append(Received(event, time.time_ns(), time.monotonic()))

    def received(self, kind: str | None = None, since_ns: int = 0) -> list[Received]:
        """Status events of ``kind`` (None: all) received at or after ``since_ns``."""
        with self._lock:
            return [
                r
                for r in self._events
                if r.recv_ns >= since_ns and (kind is None or r.event.kind == kind)
            ]

    def events(self, kind: str | None = None, since_ns: int = 0) -> list[Any]:
        """The events of :meth:`received`, without their receive times."""
        return [r.event for r in self.received(kind, since_ns)]

    def latest_report(self, timeout: float = 10.0) -> PeriodicEvent:
        """The next periodic status report."""
        since = time.time_ns()
        return wait_until(
            lambda: (e := self.events("periodic", since)) and e[-1],
            timeout,
            "a periodic status report",
        )
