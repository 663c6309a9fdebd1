"""When to ask the node for a chunk during a lock-step replay (pure logic, no ROS).

Messages are replayed in log-time order. A new *frame* starts when every step topic (by
default the cameras) has delivered a message newer than the last frame, i.e. when the
oldest of their latest header stamps advances. The frame's observation is complete once
every message stamped at or before the frame has been published, so the step fires just
before the first later-stamped message (or at the end of the bag); every observation input
must have a message by then. The node answers with a chunk stamped with the oldest (or
newest) stamp of its latest inputs: :class:`Step` carries that expected stamp so that the
replay can check the node saw exactly the replayed observation.

The node answers an observation with a chunk of that stamp, or, when it rejects the
observation as malformed (NaN state, wrong image size, a non-finite policy output...), with a
``rejected`` status event carrying the same stamp (:func:`parse_rejection`, on the node's
status protocol, :mod:`snapflow_ros.control.status`); :class:`Answers`
collects both kinds and picks the one that answers the observation asked for.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from snapflow_ros.bags.errors import BagError
from snapflow_ros.control.input_slots import MAX_REASON_CHARS
from snapflow_ros.control.status import RejectedEvent, decode

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


# ---------------------------------------------------------------------------- the node's answers
@dataclass(frozen=True)
class Rejection:
    """The node's ``rejected`` status event: it attempted the observation stamped
    ``stamp_ns`` and refused it as malformed (``input``: the slot that failed, e.g.
    ``state.joints``, ``camera.front``, or ``policy`` for a non-finite output)."""

    stamp_ns: int
    input: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (replay's outputs bag info, compare's report)."""
        return {"stamp_ns": self.stamp_ns, "input": self.input, "reason": self.reason}


def parse_rejection(event: Any) -> Rejection | None:
    """A status event (decoded, or its JSON text / object) as a :class:`Rejection`; None for
    any other event, or for a ``rejected`` event without an integer ``stamp_ns`` (it answers
    no observation)."""
    if not isinstance(event, RejectedEvent):
        event = decode(event) if isinstance(event, str | bytes | dict) else None
    if not isinstance(event, RejectedEvent) or event.stamp_ns is None:
        return None
    return Rejection(
        event.stamp_ns,
        event.input or "unknown input",
        (event.reason or "no reason given")[:MAX_REASON_CHARS],
    )


@dataclass(frozen=True)
class Answer:
    """What the node answered for a lock-step observation: a chunk (its serialized
    JointTrajectory) or a rejection, and the observation stamp it is for."""

    stamp_ns: int
    chunk: bytes | None = None
    rejection: Rejection | None = None


class Answers:
    """The node's answers in arrival order (chunks and rejections come on two topics, from
    another thread than the one that takes them).

    :meth:`take` returns the answer for the expected stamp if one has arrived (a chunk before
    a rejection of the same stamp), else the first answer for another stamp (the node saw
    another observation: the replay sends it again), else None (keep waiting).
    """

    def __init__(self) -> None:
        self.items: list[Answer] = []
        self._lock = threading.Lock()

    def add_chunk(self, stamp_ns: int, data: bytes) -> None:
        """A chunk arrived (``stamp_ns``: its header stamp)."""
        with self._lock:
            self.items.append(Answer(int(stamp_ns), chunk=bytes(data)))

    def add_rejection(self, rejection: Rejection) -> None:
        """A ``rejected`` status event arrived."""
        with self._lock:
            self.items.append(Answer(rejection.stamp_ns, rejection=rejection))

    def clear(self) -> None:
        """Forget everything received so far (before asking for the next observation)."""
        with self._lock:
            self.items.clear()

    def take(self, expected_ns: int) -> Answer | None:
        """The answer to use now for the observation stamped ``expected_ns`` (see above)."""
        with self._lock:
            matching = [a for a in self.items if a.stamp_ns == expected_ns]
            chosen = next((a for a in matching if a.chunk is not None), None)
            chosen = chosen or (matching[0] if matching else None)
            chosen = chosen or (self.items[0] if self.items else None)
            if chosen is not None:
                self.items.remove(chosen)
            return chosen
