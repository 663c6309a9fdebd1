"""ROS message <-> numpy conversions for the policy node (no cv_bridge needed).

Images: ``sensor_msgs/Image`` in rgb8, bgr8, rgba8, bgra8, mono8 and ``CompressedImage``
(JPEG/PNG through OpenCV) to HxWx3 uint8 RGB. State: ``JointState`` by joint name,
number arrays, poses. Message classes are imported only where messages are built.
"""

from snapflow_ros.ros_conversions.images import (
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    compressed_to_rgb,
    image_to_rgb,
    resize_rgb,
    rgb_to_compressed,
    rgb_to_image,
    rgb_to_image_fields,
)
from snapflow_ros.ros_conversions.state import (
    JOINT_FIELDS,
    POSE_FORMATS,
    StateConversionError,
    array_values,
    joint_state_values,
    ns_to_stamp_fields,
    pose_size,
    pose_values,
    quat_to_axis_angle,
    stamp_to_ns,
)

__all__ = [
    "JOINT_FIELDS",
    "POSE_FORMATS",
    "SUPPORTED_ENCODINGS",
    "ImageConversionError",
    "StateConversionError",
    "array_values",
    "compressed_to_rgb",
    "image_to_rgb",
    "joint_state_values",
    "ns_to_stamp_fields",
    "pose_size",
    "pose_values",
    "quat_to_axis_angle",
    "resize_rgb",
    "rgb_to_compressed",
    "rgb_to_image",
    "rgb_to_image_fields",
    "stamp_to_ns",
]
