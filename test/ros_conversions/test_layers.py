"""The conversions (ROS messages <-> numpy) need neither torch nor the runtime."""

from __future__ import annotations

from pathlib import Path

import snapflow_ros.ros_conversions

from ..import_scan import forbidden_imports


def test_the_conversions_import_no_torch_or_runtime():
    folder = Path(snapflow_ros.ros_conversions.__file__).parent
    assert forbidden_imports(folder, ("torch", "lerobot", "snapflow_ros.runtime")) == []
