"""The words and limits that parameters choose from, defined once.

The node tables offer them as choices, the message conversions implement them
(:mod:`snapflow_ros.ros_conversions`), the launch-argument parser accepts them
(:mod:`snapflow_ros.launch_args`). Plain constants: importing this loads nothing.
"""

from __future__ import annotations

import re

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:[0-9]+)?")  # torch devices a node accepts
DEVICE_WORDS = "auto, cpu, cuda or cuda:N"  # the same, for messages
COMMAND_TYPES = ("joint_state", "float64_multi_array", "joint_trajectory")  # per-tick commands
JOINT_FIELDS = ("position", "velocity", "effort")  # JointState fields of states and actions
POSE_SIZES = {"xyz_quat": 7, "xyz_axis_angle": 6, "xyz": 3}  # state values per pose format
POSE_FORMATS = tuple(POSE_SIZES)
MAX_PIXELS = 50_000_000  # largest image accepted, raw or compressed (8K UHD is 33 M)
