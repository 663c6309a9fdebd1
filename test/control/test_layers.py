"""The logic layer (snapflow_ros.control) stays plain Python: no ROS, no torch, no runtime.

Checked twice: by the import scanner over its sources, and by importing it (and running a
controller) with every ROS package made unimportable.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import snapflow_ros.control

from ..import_scan import forbidden_imports

ROS = (
    "rclpy",
    "launch",
    "sensor_msgs",
    "std_msgs",
    "trajectory_msgs",
    "geometry_msgs",
    "diagnostic_msgs",
    "rcl_interfaces",
    "builtin_interfaces",
    "lifecycle_msgs",
    "rosgraph_msgs",
)
NOT_IN_LOGIC = (
    *ROS,
    "torch",
    "lerobot",
    "snapflow_ros.runtime",
    "snapflow_ros.nodes",
    "snapflow_ros.client",
    "snapflow_ros.ros_conversions",
)


def test_the_logic_sources_import_no_ros_torch_or_runtime():
    folder = Path(snapflow_ros.control.__file__).parent
    assert forbidden_imports(folder, NOT_IN_LOGIC) == []


def test_control_imports_without_any_ros_package():
    code = (
        "import sys\n"
        f"for name in {ROS!r}:\n"
        "    sys.modules[name] = None  # any import of them raises ImportError\n"
        "import snapflow_ros.control as c\n"
        "loop = c.CommandLoop(dt=0.1, action_dim=2)\n"
        "ctl = c.PolicyController(lambda: 0, type('Out', (), {'log': print})())\n"
        "print('ok', [m for m in sys.modules if m.startswith(('snapflow_ros', 'torch'))])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout and "runtime" not in out.stdout and "torch" not in out.stdout
