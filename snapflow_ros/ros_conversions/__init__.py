"""ROS message <-> numpy conversions for the policy node (no cv_bridge needed).

Images: ``sensor_msgs/Image`` in rgb8, bgr8, rgba8, bgra8, mono8 and ``CompressedImage``
(JPEG/PNG through OpenCV) to HxWx3 uint8 RGB. State: ``JointState`` by joint name,
number arrays, poses. A message that cannot be converted raises :class:`ImageConversionError`
or :class:`StateConversionError` (both ``ValueError``), never anything else, and no
conversion returns NaN/inf. Message classes are imported only where messages are built.
"""

from snapflow_ros.ros_conversions.images import (
    MAX_PIXELS,
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    check_compressed,
    check_image,
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
    "MAX_PIXELS",
    "POSE_FORMATS",
    "SUPPORTED_ENCODINGS",
    "ImageConversionError",
    "StateConversionError",
    "array_values",
    "check_compressed",
    "check_image",
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
