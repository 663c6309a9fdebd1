"""Start the LIBERO bridge and the policy node as processes, with generated params files.

Two launchers: ``subprocess`` (the plain-Python path: each executable is started with
``--ros-args --params-file``, for machines without ROS 2's launch tools) and ``ros2launch``
(``ros2 launch snapflow_ros libero_eval.launch.py`` on a ROS 2 install). Both are stopped
with SIGINT (launch forwards it to its children), then SIGTERM/SIGKILL if they hang.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

import snapflow_ros

LAUNCHERS = ("subprocess", "ros2launch")
EVAL_NODES = ("libero_bridge", "policy_node")  # what start_node starts


def config_dir() -> Path:
    """The package's ``config/`` folder: from the ament index (installed package), else next
    to the sources, else ``<python prefix>/share/snapflow_ros/config``."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("snapflow_ros")) / "config"
        if installed.is_dir():
            return installed
    except Exception:  # not in an ament index (pip / editable install)
        pass
    source = Path(snapflow_ros.__file__).resolve().parents[1] / "config"
    if source.is_dir():
        return source
    return Path(sys.prefix) / "share" / "snapflow_ros" / "config"


def ros_env(domain: int | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for child processes: localhost discovery, optionally another ROS domain."""
    env = dict(os.environ if base is None else base)
    if domain is not None:
        env["ROS_DOMAIN_ID"] = str(domain)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.pop("ROS_LOCALHOST_ONLY", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def node_parameters(data: dict[str, Any], node_key: str) -> dict[str, Any]:
    """The ``ros__parameters`` of the ``/**/<node_key>`` section (any key ending in
    ``node_key``) of a params file's content; created when the file has none."""
    key = next((k for k in data if str(k).rstrip("/").endswith(node_key)), f"/**/{node_key}")
    return data.setdefault(key, {}).setdefault("ros__parameters", {})


def params_with_overrides(
    base_file: Path, node_key: str, overrides: dict[str, Any]
) -> dict[str, Any]:
    """A ``/**/<node>:`` params file's content with ``overrides`` (dotted names) applied."""
    data = yaml.safe_load(Path(base_file).read_text()) or {}
    params = node_parameters(data, node_key)
    for name, value in overrides.items():
        node = params
        parts = name.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return data


def write_params(base_file: Path, node_key: str, overrides: dict[str, Any], out: Path) -> Path:
    """Copy a ``/**/<node>:`` params file with ``overrides`` (dotted names) applied."""
    data = params_with_overrides(base_file, node_key, overrides)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def entry_module(name: str) -> str:
    """The module of executable ``name``, from this package's entry points (setup.py's
    ``console_scripts``: the one list of executables)."""
    for ep in importlib.metadata.entry_points(group="console_scripts", name=name):
        module = ep.value.split(":")[0]
        if module.startswith(("snapflow_ros.", "snapflow_training.")):
            return module
    raise ValueError(f"{name!r} is not an executable of snapflow_ros (see setup.py)")


def executable(name: str) -> list[str]:
    """Command that runs an executable of this package (console script next to this Python,
    else ``python -m`` its module)."""
    script = shutil.which(name, path=str(Path(sys.executable).parent))
    if script:
        return [script]
    return [sys.executable, "-m", entry_module(name)]


class ManagedProcess:
    """A child process in its own process group with its log file; a context manager that
    stops it (SIGINT first) on the way out."""

    def __init__(self, name: str, cmd: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            self.cmd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()  # never left running when the caller fails half-way

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def log(self) -> str:
        """Everything the process printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of its log."""
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int | None:
        """``sig`` (Ctrl-C by default) to its process group, then SIGTERM, then SIGKILL;
        returns the exit code."""
        for signum, wait in ((sig, timeout), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, signum)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode


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
