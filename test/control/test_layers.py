"""The logic layer (snapflow_ros.control) stays plain Python: no ROS, no torch, no runtime.

Its sources' imports are checked by the one rule table (test/test_layers.py); here it is
imported (and a controller run) with every ROS package made unimportable.
"""

from __future__ import annotations

from test.fresh_interpreter import run_without

from ..test_layers import ROS


def test_control_imports_without_any_ros_package():
    code = (
        "import snapflow_ros.control as c\n"
        "loop = c.CommandLoop(dt=0.1, action_dim=2)\n"
        "ctl = c.PolicyController(lambda: 0, type('Out', (), {'log': print})())\n"
        "print('ok', [m for m in sys.modules if m.startswith(('snapflow_ros', 'torch'))])\n"
    )
    out = run_without(code, ROS, timeout=60)
    assert "ok" in out and "runtime" not in out and "torch" not in out
