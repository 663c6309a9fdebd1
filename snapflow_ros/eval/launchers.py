"""Start the LIBERO bridge and the policy node of a ``libero_eval`` run, with generated params
files (:func:`snapflow_ros.launching.write_params`).

Two launchers: ``subprocess`` (the plain-Python path: each executable is started with
``--ros-args --params-file``, for machines without ROS 2's launch tools) and ``ros2launch``
(``ros2 launch snapflow_ros libero_eval.launch.py`` on a ROS 2 install). Both run as a
:class:`snapflow_ros.launching.ManagedProcess`, stopped with SIGINT (launch forwards it to its
children), then SIGTERM/SIGKILL if they hang.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from snapflow_ros.launching import ManagedProcess, executable

LAUNCHERS = ("subprocess", "ros2launch")
EVAL_NODES = ("libero_bridge", "policy_node")  # what start_node starts


def start_node(
    kind: str,
    params: Path,
    launcher: str,
    log_path: Path,
    env: dict[str, str],
    ns: str = "",
) -> ManagedProcess:
    """Start ``libero_bridge`` or ``policy_node`` with ``params`` (directly or through launch)."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    if kind not in EVAL_NODES:
        raise ValueError(f"unknown executable {kind!r}")
    if launcher == "ros2launch":
        ros2 = shutil.which("ros2")
        if ros2 is None:
            raise RuntimeError("--launcher ros2launch needs ROS 2's `ros2` on PATH")
        bridge = kind == "libero_bridge"
        cmd = [
            ros2,
            "launch",
            "snapflow_ros",
            "libero_eval.launch.py",
            f"start_bridge:={'true' if bridge else 'false'}",
            f"start_policy:={'false' if bridge else 'true'}",
            f"{'bridge' if bridge else 'policy'}_params:={params}",
        ]
        if ns:
            cmd.append(f"namespace:={ns}")
    else:
        cmd = [*executable(kind), "--ros-args", "--params-file", str(params)]
        if ns:
            cmd += ["-r", f"__ns:={ns}"]
    return ManagedProcess(kind, cmd, env, log_path)
