"""A synthetic robot: moving coloured camera images, sinusoidal joint states and a task.

Feeds the policy node in ``snapflow_demo``, the tests and the benchmark, across processes,
exactly as real drivers would (``sensor_msgs/Image`` or ``CompressedImage`` with sensor-data
QoS, ``sensor_msgs/JointState``, a latched ``std_msgs/String`` task).

Run: ``synthetic_source --ros-args -p cameras:="[front, wrist]" -p camera_rate:=30.0``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from snapflow_ros.nodes.process import init_ros, spin
from snapflow_ros.ros_conversions import ns_to_stamp_fields, rgb_to_compressed, rgb_to_image

DEFAULT_JOINTS = [
    "joint_1",
    "joint_2",
    "joint_3",
    "joint_4",
    "joint_5",
    "joint_6",
    "joint_7",
    "gripper",
]


def synthetic_frame(t: float, height: int, width: int, camera: int = 0) -> np.ndarray:
    """An RGB frame at time ``t``: a hue-cycling gradient with a moving coloured square."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = t * 0.5 + camera * 1.7
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 0.5 + 0.5 * np.sin(phase + xs / max(width, 1) * math.pi)
    img[..., 1] = 0.5 + 0.5 * np.sin(phase * 1.3 + ys / max(height, 1) * math.pi)
    img[..., 2] = 0.5 + 0.5 * np.cos(phase * 0.7)
    size = max(min(height, width) // 4, 2)
    cx = int((0.5 + 0.4 * math.sin(t * 1.1 + camera)) * (width - size))
    cy = int((0.5 + 0.4 * math.cos(t * 0.9 + camera)) * (height - size))
    colour = np.array([math.sin(t), math.sin(t + 2.1), math.sin(t + 4.2)]) * 0.5 + 0.5
    img[cy : cy + size, cx : cx + size] = colour
    return (img * 255).astype(np.uint8)


def synthetic_joints(t: float, n: int) -> np.ndarray:
    """Sinusoidal joint positions at time ``t`` (joint i: amplitude 0.5, frequency 0.2+0.05 i)."""
    i = np.arange(n)
    return 0.5 * np.sin(2 * math.pi * (0.2 + 0.05 * i) * t + i)


class SyntheticSource(Node):
    """Publishes cameras, joint states and a task on timers."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("synthetic_source", **kwargs)
        self.declare_parameter("cameras", ["front", "wrist"])
        self.declare_parameter("camera_topic", "camera/{name}/image_raw")
        self.declare_parameter("camera_rate", 30.0)
        self.declare_parameter("width", 64)
        self.declare_parameter("height", 48)
        self.declare_parameter("encoding", "rgb8")  # rgb8 bgr8 rgba8 bgra8 mono8 jpeg png
        self.declare_parameter("joint_names", DEFAULT_JOINTS)
        self.declare_parameter("joint_topic", "joint_states")
        self.declare_parameter("joint_rate", 50.0)
        self.declare_parameter("task_topic", "task")
        self.declare_parameter("task", "pick up the red cube")
        self.declare_parameter("stamp_offset", 0.0)  # added to header stamps (s); <0: "old" data
        get = self.get_parameter
        self.cameras = list(get("cameras").value)
        self.width, self.height = int(get("width").value), int(get("height").value)
        self.encoding = str(get("encoding").value)
        self.joint_names = list(get("joint_names").value)
        self.offset_ns = int(float(get("stamp_offset").value) * 1e9)
        topic = str(get("camera_topic").value)
        compressed = self.encoding in ("jpeg", "png")
        self.camera_pubs = []
        for name in self.cameras:
            cam_topic = topic.format(name=name) + ("/compressed" if compressed else "")
            msg_type = rgb_to_compressed if compressed else rgb_to_image
            self.camera_pubs.append(
                (
                    self.create_publisher(
                        _image_type(compressed), cam_topic, qos_profile_sensor_data
                    ),
                    msg_type,
                )
            )
        self.joint_pub = self.create_publisher(
            JointState, str(get("joint_topic").value), qos_profile_sensor_data
        )
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self.task_pub = self.create_publisher(String, str(get("task_topic").value), latched)
        self.task_pub.publish(String(data=str(get("task").value)))
        self.frames = 0
        self.create_timer(1.0 / float(get("camera_rate").value), self._publish_images)
        self.create_timer(1.0 / float(get("joint_rate").value), self._publish_joints)

    def _stamped_now(self) -> tuple[float, Any]:
        now_ns = self.get_clock().now().nanoseconds
        header = _header(now_ns + self.offset_ns)
        return now_ns * 1e-9, header

    def _publish_images(self) -> None:
        t, header = self._stamped_now()
        for i, (pub, make) in enumerate(self.camera_pubs):
            frame = synthetic_frame(t, self.height, self.width, i)
            pub.publish(make(frame, self.encoding, header))
        self.frames += 1

    def _publish_joints(self) -> None:
        t, header = self._stamped_now()
        msg = JointState(header=header, name=self.joint_names)
        msg.position = synthetic_joints(t, len(self.joint_names)).tolist()
        self.joint_pub.publish(msg)


def _image_type(compressed: bool):
    from sensor_msgs.msg import CompressedImage, Image

    return CompressedImage if compressed else Image


def _header(ns: int):
    from std_msgs.msg import Header

    header = Header()
    header.stamp.sec, header.stamp.nanosec = ns_to_stamp_fields(ns)
    return header


HELP = """\
A synthetic robot for the policy node: moving coloured camera images (sensor_msgs/Image, or
CompressedImage with encoding jpeg/png), sinusoidal joint states and a latched task, published
until Ctrl-C.

parameters (-p NAME:=VALUE): cameras ([front, wrist]), camera_topic (camera/{name}/image_raw),
camera_rate (30.0), width (64), height (48), encoding (rgb8 bgr8 rgba8 bgra8 mono8 jpeg png),
joint_names, joint_topic (joint_states), joint_rate (50.0), task_topic (task), task,
stamp_offset (0.0 s added to header stamps).

example:
  synthetic_source --ros-args -p cameras:="[front, wrist]" -p camera_rate:=30.0"""


def main(args: list[str] | None = None) -> int:
    """Entry point of ``synthetic_source`` (Ctrl-C / SIGTERM: clean exit)."""
    stop = init_ros(args, "synthetic_source", HELP)
    node = SyntheticSource()
    try:
        spin(node, stop)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
