"""Action chunks and status events read from bags, and matching chunks of two bags.

A chunk is the policy node's ``trajectory_msgs/JointTrajectory``: ``header.stamp`` is the
capture time of the observation it was computed from, point k holds action k (in the
field the node was configured with) at ``time_from_start = k / control_rate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snapflow_ros.bags.errors import BagError
from snapflow_ros.bags.io import BagReader, deserialize
from snapflow_ros.bags.lockstep import Rejection, parse_rejection
from snapflow_ros.control.status import decode

CHUNK_TYPE = "trajectory_msgs/msg/JointTrajectory"
STATUS_TYPE = "std_msgs/msg/String"
POINT_FIELDS = ("positions", "velocities", "accelerations", "effort")


@dataclass
class Chunk:
    """One action chunk: observation stamp, receive (log) time, names and H x D actions."""

    stamp_ns: int
    log_ns: int
    joint_names: tuple[str, ...]
    actions: np.ndarray
    point_field: str = "positions"
    times_s: np.ndarray = field(default_factory=lambda: np.zeros(0))


def find_chunk_topic(reader: BagReader, topic: str | None = None) -> str:
    """The chunk topic of a bag: ``topic`` if given (checked), else the JointTrajectory one.

    Several JointTrajectory topics: the one ending in ``action_chunk``, else an error.
    """
    if topic:
        reader.require(topic, CHUNK_TYPE)
        return topic
    candidates = sorted(t for t, i in reader.topics.items() if i.msgtype == CHUNK_TYPE)
    if not candidates:
        have = ", ".join(f"{t} ({i.msgtype})" for t, i in sorted(reader.topics.items()))
        raise BagError(
            f"bag {reader.path} has no {CHUNK_TYPE} (action chunk) topic; topics: {have or 'none'}"
        )
    if len(candidates) == 1:
        return candidates[0]
    preferred = [t for t in candidates if t.endswith("action_chunk")]
    if len(preferred) == 1:
        return preferred[0]
    raise BagError(
        f"bag {reader.path} has several chunk topics ({', '.join(candidates)}): choose one"
    )


def decode_chunk(data: bytes, log_ns: int, topic: str = "") -> Chunk:
    """Decode one serialized JointTrajectory into a :class:`Chunk`."""
    msg = deserialize(data, CHUNK_TYPE, topic)
    stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
    names = tuple(str(n) for n in msg.joint_names)
    points = list(msg.points)
    point_field = "positions"
    for name in POINT_FIELDS:
        if points and len(getattr(points[0], name)) > 0:
            point_field = name
            break
    dim = len(getattr(points[0], point_field)) if points else len(names)
    rows = []
    for k, point in enumerate(points):
        values = np.asarray(getattr(point, point_field), np.float64)
        if values.shape != (dim,):
            raise BagError(
                f"chunk on {topic or 'its topic'} at stamp {stamp}: point {k} has "
                f"{values.size} {point_field}, point 0 has {dim}"
            )
        rows.append(values)
    actions = np.stack(rows) if rows else np.zeros((0, dim))
    times = np.array(
        [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in points], np.float64
    )
    return Chunk(stamp, int(log_ns), names, actions, point_field, times)


def read_chunks(reader: BagReader, topic: str, stamp_shift_ns: int = 0) -> list[Chunk]:
    """Every chunk of ``topic``, stamps and log times minus ``stamp_shift_ns``."""
    chunks = []
    for m in reader.messages([topic]):
        chunk = decode_chunk(m.data, m.log_ns, topic)
        chunk.stamp_ns -= stamp_shift_ns
        chunk.log_ns -= stamp_shift_ns
        chunks.append(chunk)
    return chunks


def find_status_topic(reader: BagReader, chunk_topic: str, topic: str | None = None) -> str | None:
    """The node's JSON status topic: ``topic``, else ``<chunk topic's namespace>/status``."""
    if topic:
        reader.require(topic, STATUS_TYPE)
        return topic
    namespace = chunk_topic.rsplit("/", 1)[0]
    guess = f"{namespace}/status"
    info = reader.topics.get(guess)
    return guess if info is not None and info.msgtype == STATUS_TYPE else None


SHIFTED_FIELDS = ("stamp_ns", "trigger_ns", "received_ns", "published_ns", "t_ns")


def read_status_events(
    reader: BagReader, topic: str, kind: str | None = "chunk", stamp_shift_ns: int = 0
) -> list[Any]:
    """The node's status events of ``kind`` (None: all), decoded with the node's protocol
    (:mod:`snapflow_ros.control.status`; messages that are not events are skipped), their
    times moved back by ``stamp_shift_ns``."""
    events = []
    for m in reader.messages([topic]):
        event = decode(deserialize(m.data, STATUS_TYPE, topic).data)
        if event is None or (kind is not None and event.kind != kind):
            continue
        if stamp_shift_ns:
            for key in SHIFTED_FIELDS:
                value = getattr(event, key, None)
                if isinstance(value, int):
                    setattr(event, key, value - stamp_shift_ns)
        events.append(event)
    return events


def read_rejections(reader: BagReader, topic: str, stamp_shift_ns: int = 0) -> list[Rejection]:
    """The node's ``rejected`` events on its status ``topic`` (one per stamp, in order)."""
    seen: dict[int, Rejection] = {}
    for event in read_status_events(reader, topic, "rejected", stamp_shift_ns):
        rejection = parse_rejection(event)
        if rejection is not None and rejection.stamp_ns not in seen:
            seen[rejection.stamp_ns] = rejection
    return sorted(seen.values(), key=lambda r: r.stamp_ns)


def split_rejected(
    reference: list[Chunk], missing: list[int], rejections: list[Rejection], tolerance_ns: int = 0
) -> tuple[list[int], list[int]]:
    """Split missing reference chunks (indices) into (still missing, rejected): those whose
    observation the node rejected (a rejection stamp within ``tolerance_ns``)."""
    stamps = sorted(r.stamp_ns for r in rejections)
    still, rejected = [], []
    for i in missing:
        stamp = reference[i].stamp_ns
        hit = any(abs(s - stamp) <= tolerance_ns for s in stamps)
        (rejected if hit else still).append(i)
    return still, rejected


@dataclass
class Matching:
    """Result of matching output chunks to reference chunks (indices into the two lists)."""

    pairs: list[tuple[int, int]]
    missing: list[int]  # reference chunks without an output chunk
    extra: list[int]  # output chunks without a reference chunk


def match_chunks(
    reference: list[Chunk], output: list[Chunk], by: str = "stamp", tolerance_ns: int = 0
) -> Matching:
    """Pair chunks by observation stamp (within ``tolerance_ns``; equal stamps in order) or by
    order (``by="order"``: the i-th with the i-th)."""
    if by == "order":
        n = min(len(reference), len(output))
        return Matching(
            [(i, i) for i in range(n)], list(range(n, len(reference))), list(range(n, len(output)))
        )
    if by != "stamp":
        raise ValueError(f"match by 'stamp' or 'order', got {by!r}")
    ref = sorted(range(len(reference)), key=lambda i: (reference[i].stamp_ns, reference[i].log_ns))
    out = sorted(range(len(output)), key=lambda i: (output[i].stamp_ns, output[i].log_ns))
    pairs, missing, extra = [], [], []
    i = j = 0
    while i < len(ref) and j < len(out):
        delta = output[out[j]].stamp_ns - reference[ref[i]].stamp_ns
        if abs(delta) <= tolerance_ns:
            pairs.append((ref[i], out[j]))
            i += 1
            j += 1
        elif delta < 0:
            extra.append(out[j])
            j += 1
        else:
            missing.append(ref[i])
            i += 1
    missing += ref[i:]
    extra += out[j:]
    return Matching(pairs, sorted(missing), sorted(extra))
