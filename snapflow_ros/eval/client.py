"""The evaluation's ROS side: the bridge's episode events, camera frames for videos, and the
policy node's and the bridge's services, through the package's node client.

Every wait polls a condition with a deadline and fails early when a watched process has died
(:func:`snapflow_ros.client.wait_until`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from snapflow_ros.client import ClientError, NodeClient, wait_until
from snapflow_ros.control.status import ChunkEvent
from snapflow_ros.ros_conversions import image_to_rgb, stamp_to_ns
from snapflow_ros.sim.episode_events import (
    EpisodeEnd,
    EpisodeEvent,
    EpisodeStart,
    decode_episode_event,
)

EvalError = ClientError  # the evaluation cannot go on (a process died, a service failed, ...)
__all__ = ["EvalClient", "EvalError", "Names", "wait_until"]


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


class EvalClient:
    """Services and recordings of one evaluation (bridge + policy node)."""

    def __init__(
        self,
        domain: int,
        names: Names,
        video_cameras: tuple[str, ...] = (),
        video_topic: str = "image_raw",
    ) -> None:
        """``video_cameras``: record these cameras' ``<camera>/<video_topic>`` frames
        (``image_raw``: the policy's images; ``video_raw``: the bridge's ``video.size``)."""
        self.names = names
        self.ros = NodeClient(names.policy, domain, name="libero_eval")
        node = self.ros.node
        self._lock = threading.Lock()
        self._events: list[EpisodeEvent] = []
        self._malformed: list[str] = []  # why each undecodable episode message was dropped
        self._frames: dict[int, dict[str, np.ndarray]] = {}
        self._record_from: int | None = None
        self.video_cameras = video_cameras
        history = QoSProfile(
            depth=100,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        node.create_subscription(String, names.topic("episode"), self._on_episode, history)
        for cam in video_cameras:
            node.create_subscription(
                Image,
                names.topic(f"{cam}/{video_topic}"),
                self._frame_cb(cam),
                QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE),
            )

    def close(self) -> None:
        """Stop spinning and shut the context down."""
        self.ros.close()

    # ------------------------------------------------------------------ recordings
    def _on_episode(self, msg: String) -> None:
        try:
            event = decode_episode_event(msg.data)
        except ValueError as exc:  # kept (wait_end names it), never raised in the executor
            self.ros.node.get_logger().error(f"dropped an episode event: {exc}")
            with self._lock:
                self._malformed.append(str(exc))
            return
        with self._lock:
            self._events.append(event)

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

    def start_events(self) -> list[EpisodeStart]:
        """The bridge's ``start`` events received so far, in order."""
        with self._lock:
            return [e for e in self._events if isinstance(e, EpisodeStart)]

    def end_event(self, episode_id: int) -> EpisodeEnd | None:
        """The bridge's ``end`` event of ``episode_id``, if it came."""
        with self._lock:
            for event in self._events:
                if isinstance(event, EpisodeEnd) and event.episode_id == episode_id:
                    return event
        return None

    def chunks_since(self, t: float) -> list[ChunkEvent]:
        """The policy node's ``chunk`` status events received after monotonic time ``t``."""
        return [
            r.event
            for r in self.ros.received("chunk")
            if r.recv_mono >= t and isinstance(r.event, ChunkEvent)
        ]

    # ------------------------------------------------------------------ services
    def trigger(
        self, name: str, timeout: float = 60.0, alive: Callable[[], str] | None = None
    ) -> str:
        """Call a Trigger service; its message, or EvalError when it reports failure."""
        return self.ros.trigger(name, timeout, alive)

    def set_params(
        self,
        node: str,
        values: dict[str, Any],
        timeout: float = 30.0,
        alive: Callable[[], str] | None = None,
    ) -> None:
        """Set parameters of ``node``; EvalError naming any that was refused."""
        self.ros.set_parameters(values, node, timeout, alive)

    def lifecycle_state(
        self, node: str, timeout: float, alive: Callable[[], str] | None = None
    ) -> str:
        """Current lifecycle state label of ``node`` (waits for its service)."""
        return self.ros.lifecycle_state(node, timeout, alive)

    def reset_episode(self, timeout: float, alive: Callable[[], str] | None = None) -> EpisodeStart:
        """Call the bridge's ``~/reset``: the ``start`` event of the new episode (its reply);
        EvalError when the reply is not one."""
        reply = self.trigger(f"{self.names.bridge}/reset", timeout, alive)
        try:
            event = decode_episode_event(reply)
        except ValueError as exc:
            raise EvalError(
                f"{self.names.bridge}/reset replied with no start event: {exc}"
            ) from None
        if not isinstance(event, EpisodeStart):
            raise EvalError(f"{self.names.bridge}/reset replied with a {event.kind!r} event")
        return event

    def wait_end(
        self, episode_id: int, timeout: float, alive: Callable[[], str] | None = None
    ) -> EpisodeEnd:
        """Wait for the end of episode ``episode_id`` (EvalError after ``timeout``, naming
        the episode messages that could not be decoded, if any came)."""
        try:
            return wait_until(
                lambda: self.end_event(episode_id),
                timeout,
                f"the end of episode {episode_id}",
                alive,
            )
        except ClientError as exc:
            with self._lock:
                malformed = list(self._malformed)
            if not malformed:
                raise
            raise EvalError(
                f"{exc} ({len(malformed)} episode message(s) could not be decoded, the "
                f"last: {malformed[-1]})"
            ) from None
