"""Actions -> messages: whole chunks as ``trajectory_msgs/JointTrajectory`` and per-tick
commands as ``sensor_msgs/JointState``, ``std_msgs/Float64MultiArray`` or a one-point
``JointTrajectory`` (what ros2_control's forward and trajectory controllers take)."""

from __future__ import annotations

import array
from collections.abc import Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from snapflow_ros.params.choices import COMMAND_TYPES
from snapflow_ros.ros_conversions.state import ns_to_stamp_fields

# the message of each command type (the types are named once, in params/choices.py)
COMMAND_MESSAGES: dict[str, type] = dict(
    zip(COMMAND_TYPES, (JointState, Float64MultiArray, JointTrajectory), strict=True)
)
POINT_FIELDS = {"position": "positions", "velocity": "velocities", "effort": "effort"}


def duration(seconds: float) -> Duration:
    """``builtin_interfaces/Duration`` of ``seconds`` (rounded to ns)."""
    ns = round(seconds * 1e9)
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _stamp(header: Any, ns: int) -> None:
    header.stamp.sec, header.stamp.nanosec = ns_to_stamp_fields(ns)


def chunk_message(
    actions: np.ndarray, stamp_ns: int, names: Sequence[str], field: str, dt: float
) -> JointTrajectory:
    """A chunk: header stamp = its observation's capture time, point k = action k (in the
    ``field`` the actions are, e.g. ``position``) at ``time_from_start = k * dt``."""
    msg = JointTrajectory()
    _stamp(msg.header, stamp_ns)
    msg.joint_names = list(names)
    attr = POINT_FIELDS[field]
    points = []
    for k, action in enumerate(actions):
        point = JointTrajectoryPoint(time_from_start=duration(k * dt))
        setattr(point, attr, array.array("d", np.asarray(action, np.float64).tolist()))
        points.append(point)
    msg.points = points
    return msg


def command_message(
    kind: str, values: np.ndarray, t_ns: int, names: Sequence[str], field: str, dt: float
) -> Any:
    """One command of type ``kind`` (see :data:`COMMAND_TYPES`), for the tick at ``t_ns``."""
    data = array.array("d", np.asarray(values, np.float64).tolist())
    if kind == "float64_multi_array":
        return Float64MultiArray(data=data)
    if kind == "joint_state":
        msg = JointState()
        _stamp(msg.header, t_ns)
        msg.name = list(names)
        setattr(msg, field, data)
        return msg
    if kind != "joint_trajectory":
        raise ValueError(f"command type must be one of {', '.join(COMMAND_TYPES)}, got {kind!r}")
    msg = JointTrajectory()  # stamp 0: "start now" for joint_trajectory_controller
    msg.joint_names = list(names)
    point = JointTrajectoryPoint(time_from_start=duration(dt))
    setattr(point, POINT_FIELDS[field], data)
    msg.points = [point]
    return msg
