"""The runtime layer runs without ROS (its import rules: test/test_layers.py)."""

from __future__ import annotations

import subprocess
import sys

from test.fresh_interpreter import modules_loaded


def test_the_options_module_imports_no_torch():
    setup = (
        "from snapflow_ros.runtime.options import COMPILE_MODES, DTYPE_NAMES, ENGINES\n"
        "from snapflow_ros.runtime import RuntimeOptions\n"
        "RuntimeOptions(engine=ENGINES[1], dtype=DTYPE_NAMES[1]).check()"
    )
    assert modules_loaded(setup, ("torch", "lerobot")) == []


def test_the_old_import_paths_still_work():
    from snapflow_ros.runtime import options
    from snapflow_ros.runtime.fast_path import COMPILE_MODES, ENGINES
    from snapflow_ros.runtime.policy_runtime import DTYPES, RuntimeOptions

    assert (ENGINES, COMPILE_MODES) == (options.ENGINES, options.COMPILE_MODES)
    assert RuntimeOptions is options.RuntimeOptions
    assert tuple(DTYPES) == options.DTYPE_NAMES


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
