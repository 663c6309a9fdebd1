"""State messages -> numpy: ``JointState`` by joint name, number arrays, poses; stamps.

Every conversion raises :class:`StateConversionError` (never anything else) for a message
that cannot give a trustworthy state: missing or duplicated joint names, mismatched lengths,
NaN/inf in the values used, a degenerate quaternion. None of them returns NaN/inf.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from snapflow_ros.params.choices import JOINT_FIELDS, POSE_FORMATS, POSE_SIZES


class StateConversionError(ValueError):
    """A state message that does not provide what the state vector needs (says why)."""


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp_fields(ns: int) -> tuple[int, int]:
    """Integer nanoseconds -> ``(sec, nanosec)`` of a ``builtin_interfaces/Time``."""
    sec, nsec = divmod(int(ns), 1_000_000_000)
    return sec, nsec


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        bad = np.nonzero(~np.isfinite(values))[0].tolist()
        raise StateConversionError(f"{what} contains NaN/inf at indices {_few(bad)}")
    return values


def _few(items: Sequence[Any], n: int = 8) -> str:
    """At most ``n`` items of a list as text (messages stay short whatever the input)."""
    shown = ", ".join(repr(i)[:40] for i in items[:n])
    return f"[{shown}{', ...' if len(items) > n else ''}]"


def _numbers(values: Any, what: str) -> np.ndarray:
    try:
        return np.asarray(values, np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise StateConversionError(f"{what}: not a list of numbers ({exc})") from exc


def joint_state_values(msg: Any, names: Sequence[str], field: str = "position") -> np.ndarray:
    """The ``field`` values of joints ``names`` (in that order), looked up BY NAME in ``msg``."""
    if field not in JOINT_FIELDS:
        raise StateConversionError(f"joint field must be one of {JOINT_FIELDS}, got {field!r}")
    msg_names = list(msg.name)
    values = _numbers(getattr(msg, field), f"JointState {field}")
    if values.size != len(msg_names):
        raise StateConversionError(
            f"JointState has {len(msg_names)} names but {values.size} {field} values"
        )
    index = {n: i for i, n in enumerate(msg_names)}
    if len(index) != len(msg_names):
        dups = sorted(n for n, count in Counter(msg_names).items() if count > 1)
        raise StateConversionError(f"JointState names joints {_few(dups)} more than once")
    missing = [n for n in names if n not in index]
    if missing:
        raise StateConversionError(
            f"JointState lacks joints {_few(missing)} (it has {_few(msg_names)})"
        )
    out = values[[index[n] for n in names]]
    return _finite(out, f"JointState {field}")


def array_values(msg: Any, indices: Sequence[int] = (), size: int = 0) -> np.ndarray:
    """Values of a ``std_msgs/Float64MultiArray``-like message (``data``), optionally selected.

    ``indices`` picks elements (empty: all); ``size`` (>0) is the required result length.
    """
    data = _numbers(msg.data, "array")
    if indices:
        bad = [i for i in indices if not -data.size <= i < data.size]
        if bad:
            raise StateConversionError(
                f"array has {data.size} elements, indices {_few(bad)} are out of range"
            )
        data = data[list(indices)]
    if size and data.size != size:
        raise StateConversionError(f"array: expected {size} values, got {data.size}")
    return _finite(data, "array")


def quat_to_axis_angle(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Unit quaternion (x, y, z, w) -> axis-angle vector (angle in [0, pi])."""
    norm = math.hypot(x, y, z, w)  # no overflow for huge finite components
    if norm == 0 or not math.isfinite(norm):
        raise StateConversionError("quaternion has zero or non-finite norm")
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    if w < 0:
        x, y, z, w = -x, -y, -z, -w
    s = math.sqrt(max(1.0 - w * w, 0.0))
    angle = 2.0 * math.atan2(s, w)
    if s < 1e-9:
        return np.zeros(3)
    return np.array([x, y, z]) / s * angle


def pose_values(msg: Any, fmt: str = "xyz_quat") -> np.ndarray:
    """A ``geometry_msgs/PoseStamped`` (or ``Pose``) as xyz + quaternion / axis-angle / nothing.

    The quaternion must have a finite, non-zero norm (it is passed on as is in ``xyz_quat``).
    """
    if fmt not in POSE_FORMATS:
        raise StateConversionError(f"pose format must be one of {POSE_FORMATS}, got {fmt!r}")
    pose = getattr(msg, "pose", msg)
    p, q = pose.position, pose.orientation
    xyz = _finite(np.array([p.x, p.y, p.z], np.float64), "pose position")
    if fmt == "xyz":
        return xyz
    quat = _finite(np.array([q.x, q.y, q.z, q.w], np.float64), "pose orientation")
    if fmt == "xyz_quat":
        if not np.linalg.norm(quat) > 1e-9:
            raise StateConversionError("pose orientation: quaternion has zero norm")
        return np.concatenate([xyz, quat])
    return np.concatenate([xyz, _finite(quat_to_axis_angle(*quat), "pose axis-angle")])


def pose_size(fmt: str) -> int:
    """Number of state values a pose gives in ``fmt``."""
    return POSE_SIZES[fmt]
