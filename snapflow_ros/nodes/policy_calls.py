"""The LIBERO bridge's calls to a policy node around each ``auto_next`` episode: its
``~/pause``, ``~/reset`` and ``~/resume`` services and its ``seed`` parameter, each waited for
with a timeout and answered with '' (done) or why not, never an exception."""

from __future__ import annotations

import threading
from typing import Any

from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger

from snapflow_ros.sim.episodes import NO_POLICY_NODE

POLICY_ACTIONS = ("pause", "reset", "resume")  # what auto_next asks of the policy node
POLICY_CALL_TIMEOUT = 10.0  # s


class PolicyCalls:
    """Service and parameter clients of the policy node ``policy`` ('' : none to call)."""

    def __init__(self, node: Node, policy: str, callback_group: Any) -> None:
        def client(kind: Any, name: str) -> Any:
            return node.create_client(kind, f"{policy}/{name}", callback_group=callback_group)

        self._triggers = {a: client(Trigger, a) for a in POLICY_ACTIONS} if policy else {}
        self._params = client(SetParameters, "set_parameters") if policy else None

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
            result, why = _call(self._params, SetParameters.Request(parameters=[param]), timeout)
            if why:
                return why
            if not result.results or not result.results[0].successful:
                reason = result.results[0].reason if result.results else ""
                return f"{self._params.srv_name}: seed {seed} refused {reason}".rstrip()
        result, why = _call(trigger, Trigger.Request(), timeout)
        if why:
            return why
        if not result.success:
            return f"{trigger.srv_name}: {result.message or 'failed'}"
        return ""


def _call(client: Any, request: Any, timeout: float) -> tuple[Any, str]:
    """(reply, '') or (None, why not) of one service call waited for up to ``timeout``."""
    if not client.wait_for_service(timeout_sec=timeout):
        return None, f"{client.srv_name} is not available"
    done = threading.Event()
    future = client.call_async(request)
    future.add_done_callback(lambda _: done.set())
    if not done.wait(timeout):
        future.cancel()
        return None, f"{client.srv_name}: no answer within {timeout:.0f} s"
    result = future.result()
    if result is None:
        return None, f"{client.srv_name}: failed"
    return result, ""
