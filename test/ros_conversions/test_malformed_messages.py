"""Generated malformed messages against the conversion layer (property-based, real message classes).

Whatever a message holds, a conversion either returns finite values of the expected shape or
raises its own error type (:class:`ImageConversionError` / :class:`StateConversionError`);
never another exception, never NaN/inf. Each malformed class (bad encoding, sizes that do not
add up, truncated or forged compressed data, duplicate or missing joint names, NaN/inf,
out-of-range indices, degenerate quaternions) must raise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float32MultiArray, Float64MultiArray

from snapflow_ros.ros_conversions import (
    MAX_PIXELS,
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    StateConversionError,
    array_values,
    check_compressed,
    check_image,
    compressed_to_rgb,
    image_to_rgb,
    joint_state_values,
    pose_values,
    rgb_to_compressed,
)
from snapflow_ros.ros_conversions.images import CHANNELS

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
FINITE = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
FLOAT32 = st.floats(allow_nan=True, allow_infinity=True, width=32)  # fits either array type
JOINTS = ("a", "b", "c", "d", "e")  # few names, so generated lists collide


def _raises(error: type[Exception], fn, *args):
    """Run ``fn``; it must raise ``error`` (pytest.raises would also accept subclasses of
    other errors by accident; here anything else fails with its traceback)."""
    try:
        fn(*args)
    except error:
        return
    raise AssertionError(f"{fn.__name__} accepted a malformed message")


def _finite_or(error: type[Exception], fn, *args) -> np.ndarray | None:
    """``fn(*args)``: its finite result, or None if it raised ``error`` (nothing else)."""
    try:
        out = np.asarray(fn(*args))
    except error:
        return None
    assert np.all(np.isfinite(out.astype(np.float64))), out
    return out


# ------------------------------------------------------------------------------ raw images
@st.composite
def raw_images(draw) -> Image:
    """Any Image: encodings known or not, sizes and data lengths that may not add up."""
    encoding = draw(st.sampled_from([*SUPPORTED_ENCODINGS, "RGB8", "yuv422", "16UC1", "", "x"]))
    height = draw(st.integers(0, 12))
    width = draw(st.integers(0, 12))
    channels = CHANNELS.get(encoding.lower(), 3)
    step = draw(st.integers(0, width * channels + 4))
    size = draw(st.one_of(st.just(step * height), st.integers(0, 400)))
    data = draw(st.binary(min_size=size, max_size=size))
    return Image(height=height, width=width, encoding=encoding, step=step, data=data)


@SETTINGS
@given(raw_images())
def test_any_raw_image_converts_or_raises_image_error(msg):
    out = _finite_or(ImageConversionError, image_to_rgb, msg)
    if out is not None:
        assert out.dtype == np.uint8 and out.shape == (msg.height, msg.width, 3)


@st.composite
def malformed_raw_images(draw) -> Image:
    """An Image that is wrong in exactly one detectable way."""
    encoding = draw(st.sampled_from(SUPPORTED_ENCODINGS))
    height, width = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    channels = CHANNELS[encoding]
    step = width * channels + draw(st.integers(0, 3))
    size = step * height
    kind = draw(st.sampled_from(["encoding", "empty", "step", "length"]))
    if kind == "encoding":
        encoding = draw(st.text(max_size=12).filter(lambda e: e.lower() not in CHANNELS))
    elif kind == "empty":
        height, width = draw(st.sampled_from([(0, width), (height, 0), (0, 0)]))
    elif kind == "step":
        step = draw(st.integers(0, width * channels - 1))
        size = step * height
    else:
        size = draw(st.integers(0, 2 * size + 8).filter(lambda n: n != size))
    data = draw(st.binary(min_size=size, max_size=size))
    return Image(height=height, width=width, encoding=encoding, step=step, data=data)


@SETTINGS
@given(malformed_raw_images())
def test_malformed_raw_images_raise_image_error(msg):
    _raises(ImageConversionError, check_image, msg)
    _raises(ImageConversionError, image_to_rgb, msg)


# ------------------------------------------------------------------------------ compressed
def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    return bytes(rgb_to_compressed(img, fmt).data)


JPEG, PNG = _encoded("jpeg"), _encoded("png")


def _forged_size(data: bytes, width: int, height: int) -> bytes:
    """``data`` with the size in its header replaced (the pixel data stays small)."""
    if data.startswith(b"\x89PNG"):
        return data[:16] + width.to_bytes(4, "big") + height.to_bytes(4, "big") + data[24:]
    pos = 2
    while data[pos + 1] not in (0xC0, 0xC1, 0xC2):
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    size = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return data[: pos + 5] + size + data[pos + 9 :]


@st.composite
def malformed_compressed(draw) -> CompressedImage:
    """A CompressedImage that cannot be trusted: empty, another format, not an image,
    truncated, or announcing a huge or empty size."""
    kind = draw(st.sampled_from(["empty", "format", "junk", "truncated", "forged"]))
    base = draw(st.sampled_from([JPEG, PNG]))
    fmt = "jpeg" if base is JPEG else "png"
    if kind == "empty":
        data = b""
    elif kind == "format":
        data = base
        fmt = draw(st.sampled_from(["tiff", "bmp", "rgb8", "h264"]))
    elif kind == "junk":
        data = draw(st.binary(min_size=1, max_size=300))
        assume(not data.startswith((b"\xff\xd8", b"\x89PNG")))
    elif kind == "truncated":
        data = base[: draw(st.integers(1, len(base) - 1))]
    else:
        side = 65535 if base is JPEG else 1_000_000
        width, height = draw(st.sampled_from([(side, side), (0, 12), (16, 0)]))
        assume(width * height == 0 or width * height > MAX_PIXELS)
        data = _forged_size(base, width, height)
    return CompressedImage(format=fmt, data=data)


@SETTINGS
@given(malformed_compressed())
def test_malformed_compressed_images_raise_image_error(msg):
    _raises(ImageConversionError, check_compressed, msg)
    _raises(ImageConversionError, compressed_to_rgb, msg)


@SETTINGS
@given(st.sampled_from([JPEG, PNG]), st.binary(max_size=64), st.integers(0, 4000))
def test_corrupted_compressed_data_converts_or_raises_image_error(base, junk, at):
    at = min(at, len(base))
    msg = CompressedImage(format="", data=base[:at] + junk + base[at + len(junk) :])
    out = _finite_or(ImageConversionError, compressed_to_rgb, msg)
    if out is not None:
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


def test_valid_compressed_images_still_convert():
    for data, fmt in ((JPEG, "jpeg"), (PNG, "png"), (JPEG + b"\x00\x00", "jpeg")):
        assert compressed_to_rgb(CompressedImage(format=fmt, data=data)).shape == (12, 16, 3)


# ------------------------------------------------------------------------------ joint states
@st.composite
def joint_states(draw) -> tuple[JointState, list[str], str]:
    names = draw(st.lists(st.sampled_from(JOINTS), max_size=6))
    field = draw(st.sampled_from(["position", "velocity", "effort"]))
    count = draw(st.one_of(st.just(len(names)), st.integers(0, 7)))
    values = draw(st.lists(st.one_of(FINITE, ANY_FLOAT), min_size=count, max_size=count))
    wanted = draw(st.lists(st.sampled_from(JOINTS), min_size=1, max_size=4, unique=True))
    msg = JointState(name=names)
    setattr(msg, field, values)
    return msg, wanted, field


def joint_state_is_malformed(msg: JointState, wanted: list[str], field: str) -> bool:
    """What makes a JointState unusable, stated independently of the conversion."""
    names, values = list(msg.name), list(getattr(msg, field))
    if len(set(names)) != len(names) or len(values) != len(names):
        return True
    if not set(wanted) <= set(names):
        return True
    return not all(math.isfinite(values[names.index(n)]) for n in wanted)


@SETTINGS
@given(joint_states())
def test_joint_states_convert_exactly_when_well_formed(case):
    msg, wanted, field = case
    out = _finite_or(StateConversionError, joint_state_values, msg, wanted, field)
    assert (out is None) == joint_state_is_malformed(msg, wanted, field)
    if out is not None:
        values = dict(zip(msg.name, getattr(msg, field), strict=True))
        np.testing.assert_array_equal(out, [values[n] for n in wanted])


@SETTINGS
@given(
    st.lists(st.sampled_from(JOINTS), min_size=1, max_size=4, unique=True),
    st.data(),
)
def test_duplicate_joint_names_are_rejected_even_with_consistent_values(names, data):
    dup = data.draw(st.sampled_from(names))
    msg = JointState(name=[*names, dup], position=[0.1] * (len(names) + 1))
    _raises(StateConversionError, joint_state_values, msg, names)


def test_duplicate_joint_names_from_the_review():
    """``joint_1`` twice (0.1 and 2.9): the last value used to win silently."""
    msg = JointState(name=["joint_1", "joint_2", "joint_1"], position=[0.1, 0.5, 2.9])
    with pytest.raises(StateConversionError, match="joint_1.*more than once"):
        joint_state_values(msg, ["joint_1", "joint_2"])


# ------------------------------------------------------------------------------ arrays
@SETTINGS
@given(
    st.sampled_from([Float64MultiArray, Float32MultiArray]),
    st.lists(st.one_of(FINITE, FLOAT32), max_size=8),
    st.lists(st.integers(-10, 10), max_size=4),
    st.integers(0, 9),
)
def test_arrays_convert_exactly_when_well_formed(msg_type, data, indices, size):
    out = _finite_or(StateConversionError, array_values, msg_type(data=data), indices, size)
    n = len(data)
    in_range = all(-n <= i < n for i in indices)
    selected = [data[i] for i in indices] if indices and in_range else data
    malformed = (
        not in_range
        or (size and len(selected) != size)
        or not all(math.isfinite(v) for v in selected)
    )
    assert (out is None) == bool(malformed)
    if out is not None:  # the values as the message stores them
        dtype = np.float32 if msg_type is Float32MultiArray else np.float64
        np.testing.assert_array_equal(out, np.asarray(selected, dtype))


@SETTINGS
@given(st.lists(FINITE, min_size=1, max_size=6), NON_FINITE, st.data())
def test_non_finite_array_values_are_rejected(data, bad, draw):
    at = draw.draw(st.integers(0, len(data) - 1))
    data[at] = bad
    _raises(StateConversionError, array_values, Float64MultiArray(data=data), [], len(data))


# ------------------------------------------------------------------------------ poses
@SETTINGS
@given(
    st.lists(st.one_of(FINITE, ANY_FLOAT), min_size=7, max_size=7),
    st.sampled_from(["xyz_quat", "xyz_axis_angle", "xyz"]),
)
def test_any_pose_converts_or_raises_state_error(values, fmt):
    msg = PoseStamped()
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z, q.x, q.y, q.z, q.w = values
    out = _finite_or(StateConversionError, pose_values, msg, fmt)
    if out is not None:
        assert out.shape == ({"xyz_quat": 7, "xyz_axis_angle": 6, "xyz": 3}[fmt],)


@SETTINGS
@given(
    st.lists(FINITE, min_size=7, max_size=7),
    st.integers(0, 6),
    NON_FINITE,
    st.sampled_from(["xyz_quat", "xyz_axis_angle"]),
)
def test_non_finite_pose_values_are_rejected(values, at, bad, fmt):
    values[at] = bad
    msg = PoseStamped()
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z, q.x, q.y, q.z, q.w = values
    _raises(StateConversionError, pose_values, msg, fmt)


@pytest.mark.parametrize("fmt", ["xyz_quat", "xyz_axis_angle"])
def test_zero_quaternion_is_rejected(fmt):
    msg = PoseStamped()
    msg.pose.orientation.w = 0.0  # all four components zero: not a rotation
    with pytest.raises(StateConversionError, match="norm"):
        pose_values(msg, fmt)
