"""The LIBERO bridge's calls to a policy node around each ``auto_next`` episode: its
``~/pause``, ``~/reset`` and ``~/resume`` services and its ``seed`` parameter, each waited for
with a timeout (cut short by :meth:`PolicyCalls.cancel` when the bridge stops) and answered
with '' (done) or why not, never an exception."""

from __future__ import annotations

import threading
import time
from typing import Any

from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger

from snapflow_ros.sim.episodes import NO_POLICY_NODE

POLICY_ACTIONS = ("pause", "reset", "resume")  # what auto_next asks of the policy node
POLICY_CALL_TIMEOUT = 10.0  # s
CANCELLED = "cancelled: the bridge is stopping"
_POLL = 0.05  # s between checks of the cancel flag while waiting


class PolicyCalls:
    """Service and parameter clients of the policy node ``policy`` ('' : none to call)."""

    def __init__(self, node: Node, policy: str, callback_group: Any) -> None:
        def client(kind: Any, name: str) -> Any:
            return node.create_client(kind, f"{policy}/{name}", callback_group=callback_group)

        self._triggers = {a: client(Trigger, a) for a in POLICY_ACTIONS} if policy else {}
        self._params = client(SetParameters, "set_parameters") if policy else None
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """End the call in progress and every later one at once with :data:`CANCELLED` (the
        bridge is stopping: a policy node stopped beside it would otherwise hold each call
        for its whole timeout)."""
        self._cancelled.set()

    def __call__(
        self, action: str, seed: int | None = None, timeout: float = POLICY_CALL_TIMEOUT
    ) -> str:
        """Call ``~/<action>`` (with ``seed``: set the ``seed`` parameter first); '' when it
        succeeded, else why not (``NO_POLICY_NODE`` when there is none to call)."""
        trigger = self._triggers.get(action)
        if trigger is None:
            return NO_POLICY_NODE
        if seed is not None:
            param = Parameter("seed", value=int(seed)).to_parameter_msg()
            request = SetParameters.Request(parameters=[param])
            result, why = _call(self._params, request, timeout, self._cancelled)
            if why:
                return why
            if not result.results or not result.results[0].successful:
                reason = result.results[0].reason if result.results else ""
                return f"{self._params.srv_name}: seed {seed} refused {reason}".rstrip()
        result, why = _call(trigger, Trigger.Request(), timeout, self._cancelled)
        if why:
            return why
        if not result.success:
            return f"{trigger.srv_name}: {result.message or 'failed'}"
        return ""


def _call(client: Any, request: Any, timeout: float, cancelled: threading.Event) -> tuple[Any, str]:
    """(reply, '') or (None, why not) of one service call waited for up to ``timeout``, or
    until ``cancelled`` is set."""
    deadline = time.monotonic() + timeout
    while not client.wait_for_service(timeout_sec=min(_POLL, timeout)):
        if cancelled.is_set():
            return None, CANCELLED
        if time.monotonic() >= deadline:
            return None, f"{client.srv_name} is not available"
    if cancelled.is_set():
        return None, CANCELLED
    done = threading.Event()
    future = client.call_async(request)
    future.add_done_callback(lambda _: done.set())
    while not done.wait(_POLL):
        if cancelled.is_set() or time.monotonic() >= deadline:
            future.cancel()
            if cancelled.is_set():
                return None, CANCELLED
            return None, f"{client.srv_name}: no answer within {timeout:.0f} s"
    result = future.result()
    if result is None:
        return None, f"{client.srv_name}: failed"
    return result, ""
