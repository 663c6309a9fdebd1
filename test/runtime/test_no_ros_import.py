"""The runtime layer never imports ROS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import snapflow_ros.fixtures
import snapflow_ros.runtime

from ..import_scan import forbidden_imports

FORBIDDEN = ("rclpy", "launch", "sensor_msgs", "std_msgs", "trajectory_msgs", "snapflow_ros.nodes")
LAYERS = [Path(snapflow_ros.runtime.__file__).parent, Path(snapflow_ros.fixtures.__file__).parent]


def test_no_ros_import_in_runtime_sources():
    offenders = [o for layer in LAYERS for o in forbidden_imports(layer, FORBIDDEN)]
    assert offenders == []


def test_loading_and_predicting_leaves_rclpy_unimported(tiny_smolvla_dir):
    code = (
        "import sys\n"
        "from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions\n"
        f"rt = PolicyRuntime({str(tiny_smolvla_dir)!r}, RuntimeOptions(device='cpu'))\n"
        "rt.predict_chunk(rt.dummy_observation(), num_steps=1)\n"
        "roots = ('rclpy', 'launch_ros', 'sensor_msgs')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in roots]\n"
        "assert not bad, bad\n"
        "print('OK')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("OK")
