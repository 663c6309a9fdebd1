"""The node client against a small real node (its own rclpy context, real DDS on a private
domain): waiting for it, Trigger services that succeed and fail, parameters set, refused and
read back, status events decoded with their receive times; and ``wait_until`` itself."""

from __future__ import annotations

import threading
import time

import pytest
import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from snapflow_ros.client import ClientError, NodeClient, wait_until
from snapflow_ros.control.status import RejectedEvent, encode

from ..nodes.harness import domain_id

DOMAIN = domain_id(16)


class Target:
    """A node named ``/target`` with ``~/ok`` and ``~/fail`` services, a ``rate`` parameter
    that must stay positive, and a ``~/status`` publisher."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=DOMAIN)
        self.node = rclpy.create_node("target", context=self.context)
        self.node.declare_parameter("rate", 10.0)
        self.node.add_on_set_parameters_callback(self._check)
        self.node.create_service(Trigger, "~/ok", self._answer(True))
        self.node.create_service(Trigger, "~/fail", self._answer(False))
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.status = self.node.create_publisher(String, "~/status", reliable)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    @staticmethod
    def _check(params):
        bad = [p.name for p in params if p.name == "rate" and not p.value > 0]
        return SetParametersResult(successful=not bad, reason="rate: must be > 0" if bad else "")

    @staticmethod
    def _answer(ok: bool):
        def serve(request, response):
            response.success, response.message = ok, "done" if ok else "cannot"
            return response

        return serve

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture(scope="module")
def pair():
    target = Target()
    client = NodeClient("target", DOMAIN, name="client_test")
    try:
        client.wait_for_node(60)
        yield target, client
    finally:
        client.close()
        target.close()


def test_services_answer_or_raise(pair):
    _, client = pair
    assert client.trigger("ok") == "done"
    with pytest.raises(ClientError, match="/target/fail failed: cannot"):
        client.trigger("/target/fail")
    with pytest.raises(ClientError, match="timed out after 0.2 s waiting for service"):
        client.trigger("missing", timeout=0.2)


def test_parameters_are_set_refused_and_read(pair):
    _, client = pair
    client.set_parameters({"rate": 20.0})
    assert client.get_parameters(["rate"]) == {"rate": 20.0}
    assert client.get_parameters(["rate", "nope"]) == {"rate": None, "nope": None}
    with pytest.raises(ClientError, match="/target refused parameters: rate: rate: must be > 0"):
        client.set_parameters({"rate": -1.0})
    (result,) = client.try_set_parameters({"rate": 0.0})
    assert not result.successful
    assert client.get_parameters(["rate"]) == {"rate": 20.0}


def test_status_events_arrive_decoded(pair):
    target, client = pair
    wait_until(lambda: target.status.get_subscription_count() > 0, 60, "the status subscriber")
    since = time.time_ns()
    target.status.publish(String(data="not an event"))
    target.status.publish(String(data=encode(RejectedEvent(stamp_ns=5, input="task"))))
    (event,) = wait_until(lambda: client.events("rejected", since), 30, "the rejected event")
    assert event == RejectedEvent(stamp_ns=5, input="task")
    (received,) = client.received("rejected", since)
    assert received.recv_ns >= since and client.events("chunk", since) == []


def test_wait_until_returns_the_value_or_names_the_timeout_and_the_death():
    assert wait_until(lambda: 3, 1, "three") == 3
    with pytest.raises(ClientError, match="timed out after 0.05 s waiting for nothing"):
        wait_until(lambda: None, 0.05, "nothing")
    with pytest.raises(ClientError, match="the node died while waiting for nothing"):
        wait_until(lambda: None, 10, "nothing", alive=lambda: "the node died")
