"""snapflow_ros.control must stay importable without ROS (pure Python + numpy)."""

from __future__ import annotations

import subprocess
import sys


def test_control_imports_without_any_ros_package():
    code = (
        "import sys\n"
        "for name in ('rclpy', 'sensor_msgs', 'std_msgs', 'trajectory_msgs', 'diagnostic_msgs',"
        " 'rcl_interfaces', 'builtin_interfaces'):\n"
        "    sys.modules[name] = None  # any import of them raises ImportError\n"
        "import snapflow_ros.control as c\n"
        "loop = c.CommandLoop(dt=0.1, action_dim=2)\n"
        "print('ok', [m for m in sys.modules if m.startswith('snapflow_ros')])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout and "runtime" not in out.stdout
