"""Message <-> numpy conversions (real ROS message classes, no DDS)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray

from snapflow_ros.ros_conversions import (
    ImageConversionError,
    StateConversionError,
    array_values,
    compressed_to_rgb,
    image_to_rgb,
    joint_state_values,
    pose_values,
    quat_to_axis_angle,
    resize_rgb,
    rgb_to_compressed,
    rgb_to_image,
    stamp_to_ns,
)
from snapflow_ros.ros_conversions.actions import chunk_message, command_message
from snapflow_ros.ros_conversions.input_converters import (
    header_stamp,
    image_converter,
    state_converter,
)


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_round_trip(rgb, encoding):
    msg = rgb_to_image(rgb, encoding)
    assert msg.encoding == encoding and msg.height == 6 and msg.width == 5
    out = image_to_rgb(msg)
    assert out.dtype == np.uint8 and out.shape == (6, 5, 3)
    np.testing.assert_array_equal(out, rgb)


def test_bgr8_is_channel_swapped():
    msg = Image(height=1, width=1, encoding="bgr8", step=3, data=bytes([10, 20, 30]))
    np.testing.assert_array_equal(image_to_rgb(msg)[0, 0], [30, 20, 10])
    msg = Image(height=1, width=1, encoding="bgra8", step=4, data=bytes([10, 20, 30, 255]))
    np.testing.assert_array_equal(image_to_rgb(msg)[0, 0], [30, 20, 10])


def test_mono8_becomes_grey_rgb():
    msg = Image(height=2, width=2, encoding="mono8", step=2, data=bytes([0, 50, 100, 255]))
    out = image_to_rgb(msg)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    np.testing.assert_array_equal(out[:, :, 1], [[0, 50], [100, 255]])


def test_row_padding_is_ignored(rgb):
    padded = np.zeros((6, 5 * 3 + 4), np.uint8)
    padded[:, :15] = rgb.reshape(6, 15)
    msg = Image(height=6, width=5, encoding="rgb8", step=19, data=padded.tobytes())
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"encoding": "yuv422"}, "unsupported encoding"),
        ({"encoding": "16UC1"}, "unsupported encoding"),
        ({"step": 10}, "step"),
        ({"height": 7}, "bytes"),
        ({"width": 0}, "empty"),
    ],
)
def test_malformed_images_raise_clear_errors(rgb, fields, match):
    msg = rgb_to_image(rgb, "rgb8")
    for k, v in fields.items():
        setattr(msg, k, v)
    with pytest.raises(ImageConversionError, match=match):
        image_to_rgb(msg)


def test_png_is_lossless_and_jpeg_close():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    np.testing.assert_array_equal(compressed_to_rgb(rgb_to_compressed(img, "png")), img)
    smooth = np.zeros((16, 24, 3), np.uint8)
    smooth[..., 0] = 200
    smooth[..., 2] = 40
    out = compressed_to_rgb(rgb_to_compressed(smooth, "jpeg", quality=95))
    assert np.abs(out.astype(int) - smooth).max() <= 4  # red stays red: channel order is right


def test_bad_compressed_data():
    with pytest.raises(ImageConversionError, match="decode"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"not a jpeg"))
    with pytest.raises(ImageConversionError, match="no data"):
        compressed_to_rgb(CompressedImage(format="png", data=b""))
    with pytest.raises(ImageConversionError, match="unsupported"):
        compressed_to_rgb(CompressedImage(format="tiff", data=b"xx"))


def test_resize():
    img = np.zeros((96, 128, 3), np.uint8)
    assert resize_rgb(img, 48, 64).shape == (48, 64, 3)
    assert resize_rgb(img, 96, 128) is img


def test_joint_state_by_name_not_position():
    msg = JointState(
        name=["b", "gripper", "a"], position=[2.0, 9.0, 1.0], velocity=[20.0, 90.0, 10.0]
    )
    np.testing.assert_array_equal(joint_state_values(msg, ["a", "b", "gripper"]), [1.0, 2.0, 9.0])
    np.testing.assert_array_equal(joint_state_values(msg, ["a", "b"], "velocity"), [10.0, 20.0])


def test_joint_state_problems():
    msg = JointState(name=["a", "b"], position=[1.0, float("nan")])
    with pytest.raises(StateConversionError, match="lacks joints"):
        joint_state_values(msg, ["a", "c"])
    with pytest.raises(StateConversionError, match="NaN"):
        joint_state_values(msg, ["a", "b"])
    with pytest.raises(StateConversionError, match="2 names but 0"):
        joint_state_values(msg, ["a"], "effort")


def test_array_values():
    msg = Float64MultiArray(data=[1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(array_values(msg, [3, 0]), [4.0, 1.0])
    np.testing.assert_array_equal(array_values(msg, size=4), [1, 2, 3, 4])
    with pytest.raises(StateConversionError, match="expected 3"):
        array_values(msg, size=3)
    with pytest.raises(StateConversionError, match="out of range"):
        array_values(msg, [7])


def test_pose_formats():
    msg = PoseStamped()
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = 1.0, 2.0, 3.0
    half = math.pi / 4  # 90 degrees about z
    msg.pose.orientation.z, msg.pose.orientation.w = math.sin(half), math.cos(half)
    np.testing.assert_allclose(pose_values(msg, "xyz"), [1, 2, 3])
    np.testing.assert_allclose(
        pose_values(msg, "xyz_quat"), [1, 2, 3, 0, 0, math.sin(half), math.cos(half)]
    )
    np.testing.assert_allclose(pose_values(msg, "xyz_axis_angle"), [1, 2, 3, 0, 0, math.pi / 2])
    np.testing.assert_allclose(quat_to_axis_angle(0, 0, 0, 1), [0, 0, 0])
    # q and -q are the same rotation
    np.testing.assert_allclose(
        quat_to_axis_angle(0, 0, -(0.5**0.5), -(0.5**0.5)), [0, 0, math.pi / 2]
    )


def test_stamp_to_ns():
    msg = JointState()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345
    assert stamp_to_ns(msg.header.stamp) == 12_000_000_345


# ----------------------------------------------------------------------- the node's inputs
def test_header_stamps_unset_set_and_malformed():
    msg = JointState()
    assert header_stamp(msg) == (0, "")  # unset: the receive time stands for it
    msg.header.stamp.sec, msg.header.stamp.nanosec = 3, 5
    assert header_stamp(msg) == (3_000_000_005, "")
    assert header_stamp(Float64MultiArray()) == (0, "")  # no header
    bad = type("Stamp", (), {"sec": 1, "nanosec": 2_000_000_000})()
    stamp, fault = header_stamp(type("Msg", (), {"header": type("H", (), {"stamp": bad})()})())
    assert stamp == 3_000_000_000 and "nanosec 2000000000 is >= 1e9" in fault


def test_image_converter_resizes_or_refuses_other_sizes():
    img = rgb_to_image(np.zeros((48, 64, 3), np.uint8))
    assert image_converter(False, 24, 32, resize=True)(img).shape == (24, 32, 3)
    assert image_converter(False, 48, 64, resize=False)(img).shape == (48, 64, 3)
    with pytest.raises(ValueError, match="image is 64x48, the policy expects 32x24"):
        image_converter(False, 24, 32, resize=False)(img)


def test_state_converters_by_kind():
    js = JointState(name=["b", "a"], position=[2.0, 1.0])
    np.testing.assert_array_equal(state_converter("joint_state", ["a", "b"])(js), [1.0, 2.0])
    arr = Float64MultiArray(data=[1.0, 2.0, 3.0])
    np.testing.assert_array_equal(state_converter("float64_array", indices=[2, 0])(arr), [3, 1])
    pose = PoseStamped()
    pose.pose.orientation.w = 1.0
    assert state_converter("pose", fmt="xyz")(pose).shape == (3,)


# ----------------------------------------------------------------------- actions out
def test_a_chunk_message_has_its_capture_stamp_names_and_timed_points():
    actions = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    msg = chunk_message(actions, 5_250_000_000, ["a", "b"], "velocity", 0.05)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (5, 250_000_000)
    assert list(msg.joint_names) == ["a", "b"]
    assert [list(p.velocities) for p in msg.points] == actions.tolist()
    assert [p.time_from_start.nanosec for p in msg.points] == [0, 50_000_000, 100_000_000]


@pytest.mark.parametrize("kind", ["joint_state", "float64_multi_array", "joint_trajectory"])
def test_command_messages(kind):
    msg = command_message(kind, np.array([0.5, -0.5]), 7_000_000_001, ["a", "b"], "position", 0.1)
    if kind == "joint_state":
        assert list(msg.position) == [0.5, -0.5] and list(msg.name) == ["a", "b"]
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (7, 1)
    elif kind == "float64_multi_array":
        assert list(msg.data) == [0.5, -0.5]
    else:
        (point,) = msg.points
        assert list(point.positions) == [0.5, -0.5] and point.time_from_start.nanosec == 10**8
        assert msg.header.stamp.sec == 0  # "start now" for joint_trajectory_controller
    with pytest.raises(ValueError, match="command type"):
        command_message("twist", np.zeros(2), 0, [], "position", 0.1)
