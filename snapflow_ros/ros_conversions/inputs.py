"""Input messages -> what the policy node's input slots need: stamps and converters.

:func:`header_stamp` reads a message's capture time; :func:`image_converter` and
:func:`state_converter` build the message -> numpy function of one camera or state source
(resizing to the policy's image size when asked). Each converter raises a ``ValueError``
saying what is wrong with a message, never anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from snapflow_ros.ros_conversions.images import compressed_to_rgb, image_to_rgb, resize_rgb
from snapflow_ros.ros_conversions.state import (
    array_values,
    joint_state_values,
    pose_values,
    stamp_to_ns,
)

NANOSEC_LIMIT = 1_000_000_000


def header_stamp(msg: Any) -> tuple[int, str]:
    """``(stamp_ns, fault)`` of a message's header: 0 when it has no header or an unset
    stamp; ``fault`` says why the stamp is malformed ('' when it is not)."""
    header = getattr(msg, "header", None)
    if header is None:
        return 0, ""
    ns = stamp_to_ns(header.stamp)
    if header.stamp.nanosec >= NANOSEC_LIMIT:
        return max(ns, 0), f"header stamp nanosec {header.stamp.nanosec} is >= 1e9"
    return max(ns, 0), ""


def image_converter(
    compressed: bool, height: int, width: int, resize: bool
) -> Callable[[Any], np.ndarray]:
    """Image (or CompressedImage) message -> HxWx3 uint8 RGB of the policy's size."""
    decode = compressed_to_rgb if compressed else image_to_rgb

    def convert(msg: Any) -> np.ndarray:
        img = decode(msg)
        if img.shape[0] != height or img.shape[1] != width:
            if not resize:
                raise ValueError(
                    f"image is {img.shape[1]}x{img.shape[0]}, the policy expects "
                    f"{width}x{height} (set cameras.resize: true to resize)"
                )
            img = resize_rgb(img, height, width)
        return img

    return convert


def state_converter(
    kind: str,
    names: Sequence[str] = (),
    field: str = "position",
    indices: Sequence[int] = (),
    size: int = 0,
    fmt: str = "xyz_quat",
) -> Callable[[Any], np.ndarray]:
    """State message -> values: ``joint_state`` (``field`` of ``names``, by name), ``pose``
    (``fmt``), ``float64_array`` / ``float32_array`` (``indices`` or ``size`` values)."""
    if kind == "joint_state":
        return lambda msg: joint_state_values(msg, names, field)
    if kind == "pose":
        return lambda msg: pose_values(msg, fmt)
    return lambda msg: array_values(msg, indices, size)
