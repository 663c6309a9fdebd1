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

from snapflow_ros.ros_conversions.images import (
    MAX_PIXELS,
    compressed_to_rgb,
    image_to_rgb,
    resize_rgb,
)
from snapflow_ros.ros_conversions.state import (
    array_values,
    joint_state_values,
    pose_values,
    stamp_to_ns,
)

NANOSEC_LIMIT = 1_000_000_000


def header_stamp(msg: Any) -> tuple[int, str]:
    """``(stamp_ns, fault)`` of a message's header; ``fault`` says why the stamp is malformed
    ('' when it is not).

    0 when the message has no header or its stamp is exactly zero (unset). Every other stamp
    is returned as it is, negative ones included (``sec`` is a signed 32-bit number: -1 is
    1969, and a sender writing 2^31 s puts -2^31 on the wire), so the node judges it like
    any other stamp (stale when far in the past). ``nanosec`` must be below 1e9.
    """
    header = getattr(msg, "header", None)
    if header is None:
        return 0, ""
    ns = stamp_to_ns(header.stamp)
    if header.stamp.nanosec >= NANOSEC_LIMIT:
        return ns, f"header stamp nanosec {header.stamp.nanosec} is >= 1e9"
    return ns, ""


def image_converter(
    compressed: bool,
    height: int,
    width: int,
    resize: bool,
    max_pixels: int = MAX_PIXELS,
    on_warning: Callable[[str], None] | None = None,
) -> Callable[[Any], np.ndarray]:
    """Image (or CompressedImage) message -> HxWx3 uint8 RGB of the policy's size; images of
    more than ``max_pixels`` pixels are refused before anything is converted; decoder
    messages that do not make the image malformed go to ``on_warning``."""

    def decode(msg: Any) -> np.ndarray:
        if compressed:
            return compressed_to_rgb(msg, max_pixels, on_warning)
        return image_to_rgb(msg, max_pixels)

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
