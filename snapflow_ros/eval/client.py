"""The evaluation's own ROS node: calls the bridge's and policy node's services, records events.

It runs in a private rclpy context with a spinning thread; every wait polls a condition with a
deadline and fails early when a watched process has died.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from lifecycle_msgs.srv import GetState
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from snapflow_ros.ros_conversions import image_to_rgb, stamp_to_ns


class EvalError(RuntimeError):
    """The evaluation cannot go on (a process died, a service failed, a timeout)."""


@dataclass
class Names:
    """Fully qualified names of the bridge, the policy node and the bridge's topics."""

    ns: str = ""
    topic_prefix: str = "libero"

    @property
    def bridge(self) -> str:
        """The bridge node."""
        return f"{self.ns}/libero_bridge"

    @property
    def policy(self) -> str:
        """The policy node."""
        return f"{self.ns}/policy_node"

    def topic(self, name: str) -> str:
        """A bridge topic (``libero/<name>`` in the namespace)."""
        return f"{self.ns}/{self.topic_prefix}/{name}"


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, alive: Callable[[], str] | None = None
) -> Any:
    """Poll ``predicate`` until truthy; EvalError on timeout or when ``alive()`` names a death."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if alive is not None:
            dead = alive()
            if dead:
                raise EvalError(f"{dead} while waiting for {what}")
        if time.monotonic() > deadline:
            raise EvalError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


class EvalClient:
    """Services and recordings of one evaluation (bridge + policy node)."""

    def __init__(self, domain: int, names: Names, video_cameras: tuple[str, ...] = ()) -> None:
        self.names = names
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("libero_eval", context=self.context)
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._chunks: list[dict[str, Any]] = []
        self._frames: dict[int, dict[str, np.ndarray]] = {}
        self._record_from: int | None = None
        self.video_cameras = video_cameras
        history = QoSProfile(
            depth=100,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self.node.create_subscription(String, names.topic("episode"), self._on_episode, history)
        self.node.create_subscription(
            String,
            f"{names.policy}/status",
            self._on_status,
            QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE),
        )
        for cam in video_cameras:
            self.node.create_subscription(
                Image,
                names.topic(f"{cam}/image_raw"),
                self._frame_cb(cam),
                QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE),
            )
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            self._executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        """Stop spinning and shut the context down."""
        self._stop.set()
        self._thread.join(5)
        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    # ------------------------------------------------------------------ recordings
    def _on_episode(self, msg: String) -> None:
        with self._lock:
            self._events.append(json.loads(msg.data))

    def _on_status(self, msg: String) -> None:
        data = json.loads(msg.data)
        if data.get("event") == "chunk":
            data["_recv"] = time.monotonic()
            with self._lock:
                self._chunks.append(data)

    def _frame_cb(self, cam: str) -> Callable[[Image], None]:
        def callback(msg: Image) -> None:
            stamp = stamp_to_ns(msg.header.stamp)
            with self._lock:
                if self._record_from is None or stamp < self._record_from:
                    return
                self._frames.setdefault(stamp, {})[cam] = image_to_rgb(msg)

        return callback

    def record_frames(self, from_stamp_ns: int | None) -> None:
        """Keep camera frames stamped at or after ``from_stamp_ns`` (None: stop, drop all)."""
        with self._lock:
            self._record_from = from_stamp_ns
            self._frames = {}

    def frames(self, since_ns: int = 0) -> list[dict[str, np.ndarray]]:
        """Frames stamped at or after ``since_ns``, in stamp order, with every video camera."""
        with self._lock:
            items = sorted(self._frames.items())
        return [f for t, f in items if t >= since_ns and all(c in f for c in self.video_cameras)]

    def end_event(self, episode_id: int) -> dict[str, Any] | None:
        """The bridge's ``end`` event of ``episode_id``, if it came."""
        with self._lock:
            for event in self._events:
                if event.get("event") == "end" and event.get("episode_id") == episode_id:
                    return event
        return None

    def chunks_since(self, t: float) -> list[dict[str, Any]]:
        """Policy ``chunk`` status events received after monotonic time ``t``."""
        with self._lock:
            return [c for c in self._chunks if c["_recv"] >= t]

    # ------------------------------------------------------------------ services
    def _call(
        self,
        srv_type: type,
        name: str,
        request: Any,
        timeout: float,
        alive: Callable[[], str] | None = None,
    ) -> Any:
        client = self.node.create_client(srv_type, name)
        try:
            wait_until(client.service_is_ready, timeout, f"service {name}", alive)
            future = client.call_async(request)
            wait_until(future.done, timeout, f"the answer of {name}", alive)
            return future.result()
        finally:
            self.node.destroy_client(client)

    def trigger(
        self, name: str, timeout: float = 60.0, alive: Callable[[], str] | None = None
    ) -> str:
        """Call a Trigger service; its message, or EvalError when it reports failure."""
        res = self._call(Trigger, name, Trigger.Request(), timeout, alive)
        if not res.success:
            raise EvalError(f"{name} failed: {res.message}")
        return str(res.message)

    def set_params(
        self,
        node: str,
        values: dict[str, Any],
        timeout: float = 30.0,
        alive: Callable[[], str] | None = None,
    ) -> None:
        """Set parameters of ``node``; EvalError naming any that was refused."""
        params = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        res = self._call(
            SetParameters,
            f"{node}/set_parameters",
            SetParameters.Request(parameters=params),
            timeout,
            alive,
        )
        refused = [
            f"{p.name}: {r.reason}"
            for p, r in zip(params, res.results, strict=True)
            if not r.successful
        ]
        if refused:
            raise EvalError(f"{node} refused parameters: {'; '.join(refused)}")

    def lifecycle_state(
        self, node: str, timeout: float, alive: Callable[[], str] | None = None
    ) -> str:
        """Current lifecycle state label of ``node`` (waits for its service)."""
        res = self._call(GetState, f"{node}/get_state", GetState.Request(), timeout, alive)
        return str(res.current_state.label)

    def wait_end(
        self, episode_id: int, timeout: float, alive: Callable[[], str] | None = None
    ) -> dict[str, Any]:
        """Wait for the end of episode ``episode_id``."""
        return wait_until(
            lambda: self.end_event(episode_id), timeout, f"the end of episode {episode_id}", alive
        )
