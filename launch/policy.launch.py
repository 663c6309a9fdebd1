"""Launch the snapflow_ros policy node (and, optionally, the LIBERO bridge).

    ros2 launch snapflow_ros policy.launch.py
    ros2 launch snapflow_ros policy.launch.py config:=/path/robot.yaml policy_path:=/ckpt \\
        namespace:=arm device:=cuda num_steps:=1

Arguments (empty = keep what the config file says):
  config         parameters file (default: the installed config/policy.yaml, the tiny policy)
  policy_path    checkpoint folder, or tiny:smolvla / tiny:pi05
  namespace      namespace of the nodes (topics and services move with it)
  device         auto | cpu | cuda | cuda:N
  num_steps      denoising steps per chunk (0: the checkpoint's default)
  dry_run        true: compute and log, publish no command
  log_level      debug | info | warn | error
  libero_bridge  true: also start the `libero_bridge` executable of this package
  libero_config  parameters file of the LIBERO bridge

The policy node is a lifecycle node that configures and activates itself (its `autostart`
parameter, true in the shipped configs); set `autostart: false` in the config to drive it
with a lifecycle manager instead.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch_ros.actions import LifecycleNode, Node

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

PACKAGE = "snapflow_ros"
EXECUTABLE = "policy_node"
NODE_NAME = "policy_node"
LIBERO_EXECUTABLE = "libero_bridge"
DEFAULT_CONFIG = "policy.yaml"

ARGUMENTS = {
    "config": ("", "Parameters file (empty: <share>/snapflow_ros/config/policy.yaml)."),
    "policy_path": ("", "Checkpoint folder or tiny:smolvla / tiny:pi05 (empty: the config's)."),
    "namespace": ("", "Namespace of the nodes."),
    "device": ("", "auto, cpu, cuda or cuda:N (empty: the config's)."),
    "num_steps": ("", "Denoising steps per chunk, 0 = checkpoint default (empty: the config's)."),
    "dry_run": ("", "true: compute and log but publish no command (empty: the config's)."),
    "log_level": ("info", "Log level of the nodes."),
    "libero_bridge": ("false", "Also start the LIBERO bridge (executable libero_bridge)."),
    "libero_config": ("", "Parameters file of the LIBERO bridge (empty: its defaults)."),
}


def _bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def parameter_overrides(values: dict[str, str]) -> dict[str, object]:
    """Node parameters set by non-empty launch arguments (typed as the node declares them)."""
    out: dict[str, object] = {}
    if values.get("policy_path"):
        out["policy_path"] = values["policy_path"]
    if values.get("device"):
        out["device"] = values["device"]
    if values.get("num_steps"):
        out["num_steps"] = int(values["num_steps"])
    if values.get("dry_run"):
        out["dry_run"] = _bool(values["dry_run"])
    return out


def _launch_setup(context, *args, **kwargs):
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    config = values["config"] or os.path.join(
        get_package_share_directory(PACKAGE), "config", DEFAULT_CONFIG
    )
    parameters: list[object] = [config]
    overrides = parameter_overrides(values)
    if overrides:
        parameters.append(overrides)
    namespace = values["namespace"]
    ros_arguments = ["--log-level", values["log_level"] or "info"]
    actions = [
        LifecycleNode(
            package=PACKAGE,
            executable=EXECUTABLE,
            name=NODE_NAME,
            namespace=namespace,
            parameters=parameters,
            ros_arguments=ros_arguments,
            output="screen",
            emulate_tty=True,
        )
    ]
    if _bool(values["libero_bridge"]):
        bridge_params = [values["libero_config"]] if values["libero_config"] else []
        actions.append(
            Node(
                package=PACKAGE,
                executable=LIBERO_EXECUTABLE,
                name="libero_bridge",
                namespace=namespace,
                parameters=bridge_params,
                ros_arguments=ros_arguments,
                output="screen",
                emulate_tty=True,
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    """The launch description: declared arguments, then the nodes (built at launch time)."""
    declared = [
        DeclareLaunchArgument(name, default_value=default, description=description)
        for name, (default, description) in ARGUMENTS.items()
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_launch_setup)])
