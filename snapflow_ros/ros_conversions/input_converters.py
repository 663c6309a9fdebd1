"""Input messages -> what the policy node's input slots need: stamps and converters.

:func:`header_stamp` reads a message's capture time; :func:`image_converter` and
:func:`state_converter` build the message -> numpy function of one camera or state source
(resizing to the policy's image size when asked), :func:`image_checker` the cheap check a
camera's messages get as they arrive (nothing decoded). Each converter and checker raises a
``ValueError`` saying what is wrong with a message, never anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from snapflow_ros.ros_conversions.images import (
    MAX_PIXELS,
    check_image,
    compressed_size,
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


def _other_size(width: int, height: int, policy_width: int, policy_height: int) -> ValueError:
    """An image of ``width`` x ``height`` where the policy takes only its own size."""
    return ValueError(
        f"image is {width}x{height}, the policy expects {policy_width}x{policy_height} "
        "(set cameras.resize: true to resize)"
    )


def image_checker(
    compressed: bool,
    height: int,
    width: int,
    resize: bool,
    max_pixels: int = MAX_PIXELS,
) -> Callable[[Any], None]:
    """The check of a camera's Image (or CompressedImage) messages on arrival, nothing
    decoded: their structure and at most ``max_pixels`` pixels (:func:`check_image`,
    :func:`check_compressed`) and, unless ``resize``, the policy's ``width`` x ``height``
    (the size the message declares; :func:`image_converter` checks the decoded image)."""

    def check(msg: Any) -> None:
        if compressed:
            got_width, got_height = compressed_size(msg, max_pixels)
        else:
            check_image(msg, max_pixels)
            got_width, got_height = int(msg.width), int(msg.height)
        if not resize and (got_width, got_height) != (width, height):
            raise _other_size(got_width, got_height, width, height)

    return check


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
            if not resize:  # found on arrival already, unless the header lied
                raise _other_size(img.shape[1], img.shape[0], width, height)
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
