"""The package builds as an ament_python package with colcon, as on a ROS machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLCON = Path(sys.executable).parent / "colcon"


def _console_scripts() -> list[str]:
    text = (ROOT / "setup.py").read_text()
    block = text.split('"console_scripts": [', 1)[1].split("]", 1)[0]
    return [line.split("=")[0].strip().strip("f\"'") for line in block.splitlines() if "=" in line]


def test_package_xml_declares_ament_python_and_ros_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "snapflow_ros"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.iter("exec_depend")}
    for dep in (
        "rclpy",
        "sensor_msgs",
        "std_msgs",
        "trajectory_msgs",
        "diagnostic_msgs",
        "std_srvs",
        "lifecycle_msgs",
        "launch_ros",
        "cv_bridge",
    ):
        assert dep in deps, dep
    email = root.find("maintainer").get("email")
    assert "@" in email and "." in email.split("@")[1]


@pytest.mark.skipif(not COLCON.exists(), reason="colcon is installed by requirements/dev.txt")
def test_colcon_build_installs_executables_where_ros2_run_finds_them(tmp_path):
    src = tmp_path / "ws" / "src" / "snapflow_ros"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLCON")}
    result = subprocess.run(
        [str(COLCON), "build", "--event-handlers", "console_direct-"],
        cwd=tmp_path / "ws",
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    prefix = tmp_path / "ws" / "install" / "snapflow_ros"
    index = prefix / "share" / "ament_index" / "resource_index" / "packages" / "snapflow_ros"
    assert index.is_file()
    assert (prefix / "share" / "snapflow_ros" / "package.xml").is_file()
    for exe in _console_scripts():
        assert (prefix / "lib" / "snapflow_ros" / exe).is_file(), exe
    site = next((prefix / "lib").glob("python3*/site-packages"))
    assert (site / "snapflow_ros" / "runtime" / "policy_runtime.py").is_file()
    assert (site / "snapflow_training" / "__init__.py").is_file()
    launch_files = sorted(p.name for p in (ROOT / "launch").glob("*.launch.py"))
    installed = sorted(p.name for p in (prefix / "share" / "snapflow_ros" / "launch").glob("*"))
    assert installed == launch_files
