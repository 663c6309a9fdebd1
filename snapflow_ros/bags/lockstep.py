"""When to ask the node for a chunk during a lock-step replay (pure logic, no ROS).

Messages are replayed in log-time order. A new *frame* starts when every step topic (by
default the cameras) has delivered a message newer than the last frame, i.e. when the
oldest of their latest header stamps advances. The frame's observation is complete once
every message stamped at or before the frame has been published, so the step fires just
before the first later-stamped message (or at the end of the bag); every observation input
must have a message by then. The node answers with a chunk stamped with the oldest (or
newest) stamp of its latest inputs: :class:`Step` carries that expected stamp so that the
replay can check the node saw exactly the replayed observation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snapflow_ros.bags.errors import BagError

CAMERA_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
NON_OBSERVATION_TYPES = ("std_msgs/msg/String",)  # the task: not part of the stamp


@dataclass
class Step:
    """One lock-step observation: its index, the /clock value and the expected chunk stamp."""

    index: int
    clock_ns: int  # newest input stamp (monotonic)
    expected_stamp_ns: int
    frame_ns: int
    oldest_ns: int  # oldest input stamp
    all_stamped: bool = True  # every observation input has a header stamp


@dataclass
class StepPlanner:
    """Call :meth:`before` / :meth:`after` around every replayed message, :meth:`flush` at
    the end; they return the :class:`Step` to run (ask the node for a chunk) or None."""

    topic_types: dict[str, str]  # input topic -> message type
    stamped: dict[str, bool]  # input topic -> has a header stamp
    step_topics: list[str] = field(default_factory=list)
    stamp_mode: str = "oldest"  # the node's observation_stamp parameter
    every: int = 1  # one step every n complete frames
    only_stamps: set[int] | None = None  # only observations with these expected stamps

    def __post_init__(self) -> None:
        if self.stamp_mode not in ("oldest", "newest"):
            raise BagError(f"observation_stamp must be oldest or newest, not {self.stamp_mode!r}")
        if self.every < 1:
            raise BagError(f"--step-every must be >= 1, got {self.every}")
        self.observation = [
            t for t, ty in self.topic_types.items() if ty not in NON_OBSERVATION_TYPES
        ]
        if not self.observation:
            raise BagError("no observation inputs to replay (cameras / state topics)")
        if not self.step_topics:
            self.step_topics = [
                t
                for t in self.observation
                if self.topic_types[t] in CAMERA_TYPES and self.stamped[t]
            ] or [t for t in self.observation if self.stamped[t]]
        for topic in self.step_topics:
            if topic not in self.topic_types:
                raise BagError(f"step topic {topic} is not one of the replayed inputs")
            if not self.stamped[topic]:
                raise BagError(
                    f"step topic {topic} has no header stamp ({self.topic_types[topic]})"
                )
        if not self.step_topics:
            raise BagError(
                "no input with a header stamp to define lock-step observations (--step-topics)"
            )
        self.latest: dict[str, int | None] = {t: None for t in self.topic_types}
        self.clock_ns = 0
        self.skipped = 0  # complete frames not asked for (every / only_stamps)
        self._frame: int | None = None
        self._pending = False
        self._frames = 0
        self._steps = 0

    def before(self, topic: str, stamp_ns: int | None) -> Step | None:
        """Before publishing a message: the pending step, if this message is newer."""
        if self._pending and stamp_ns is not None and stamp_ns > (self._frame or 0):
            return self._fire()
        return None

    def after(self, topic: str, log_ns: int, stamp_ns: int | None) -> None:
        """After publishing a message (``stamp_ns`` None: it has no header)."""
        if topic not in self.latest:
            return
        self.latest[topic] = stamp_ns if stamp_ns is not None else log_ns
        if any(self.latest[t] is None for t in self.step_topics):
            return
        frame = min(self.latest[t] for t in self.step_topics)  # type: ignore[type-var]
        if self._frame is None or frame > self._frame:  # (before() fired the previous one)
            self._frame = frame
            self._pending = True

    def flush(self) -> Step | None:
        """At the end of the bag: the last pending step."""
        return self._fire() if self._pending else None

    def _fire(self) -> Step | None:
        self._pending = False
        if any(self.latest[t] is None for t in self.observation):
            self.skipped += 1
            return None
        self._frames += 1
        stamps = [self.latest[t] for t in self.observation if self.stamped[t]]
        self.clock_ns = max(self.clock_ns, max(stamps) if stamps else 0)  # type: ignore[type-var]
        values = [self.latest[t] if self.stamped[t] else self.clock_ns for t in self.observation]
        expected = int(min(values) if self.stamp_mode == "oldest" else max(values))  # type: ignore[type-var]
        if (self._frames - 1) % self.every or (
            self.only_stamps is not None and expected not in self.only_stamps
        ):
            self.skipped += 1
            return None
        oldest = int(min(values))  # type: ignore[type-var]
        all_stamped = all(self.stamped[t] for t in self.observation)
        step = Step(
            self._steps, self.clock_ns, expected, int(self._frame or 0), oldest, all_stamped
        )
        self._steps += 1
        return step
