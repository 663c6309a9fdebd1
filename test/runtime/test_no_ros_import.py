"""The runtime layer never imports ROS."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import snapflow_ros.fixtures
import snapflow_ros.runtime

FORBIDDEN = ("rclpy", "launch", "sensor_msgs", "std_msgs", "trajectory_msgs", "snapflow_ros.nodes")
LAYERS = [Path(snapflow_ros.runtime.__file__).parent, Path(snapflow_ros.fixtures.__file__).parent]


def test_no_ros_import_in_runtime_sources():
    offenders = []
    for layer in LAYERS:
        for path in layer.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                offenders += [f"{path}: {n}" for n in names if n.startswith(FORBIDDEN)]
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
