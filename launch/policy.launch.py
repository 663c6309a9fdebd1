"""Launch the snapflow_ros policy node (and, optionally, the LIBERO bridge).

    ros2 launch snapflow_ros policy.launch.py
    ros2 launch snapflow_ros policy.launch.py config:=/path/robot.yaml policy_path:=/ckpt \\
        namespace:=arm device:=cuda num_steps:=1

Arguments (empty = keep what the config file says):
  config         parameters file (default: the installed config/policy.yaml, the tiny policy)
  policy_path    checkpoint folder, Hub id, or a tiny test policy (tiny:smolvla, tiny:libero, ...)
  namespace      namespace of the nodes (topics and services move with it)
  device         auto | cpu | cuda | cuda:N
  num_steps      denoising steps per chunk (0: the checkpoint's default)
  dry_run        true: compute and log, publish no command
  log_level      debug | info | warn | error | fatal
  libero_bridge  true: also start the `libero_bridge` executable of this package
  libero_config  parameters file of the LIBERO bridge

Every argument is checked before a node starts (snapflow_ros.launch_args): a value that
cannot be parsed (``dry_run:=ture``, ``num_steps:=abc``) or a params file that is missing,
not YAML or without a ``/**/policy_node:`` key ends the launch with one error line naming
the argument. The policy node is a lifecycle node that configures and activates itself (its
`autostart` parameter, true in the shipped configs); set `autostart: false` in the config to
drive it with a lifecycle manager instead.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch_ros.actions import LifecycleNode, Node

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from snapflow_ros.launch_args import (
    PACKAGE,
    LaunchArg,
    declared_description,
    node_options,
    parse_args,
)

NODE_NAME = "policy_node"
LIBERO_NODE_NAME = "libero_bridge"
DEFAULT_CONFIG = "policy.yaml"

ARGUMENTS = (
    LaunchArg(
        "config",
        "params_file",
        "",
        "Parameters file (empty: <share>/snapflow_ros/config/policy.yaml).",
        optional=True,
        node=NODE_NAME,
    ),
    LaunchArg(
        "policy_path",
        "policy_path",
        "",
        "Checkpoint folder, Hub id or tiny test policy (empty: the config's).",
        optional=True,
    ),
    LaunchArg("namespace", "namespace", "", "Namespace of the nodes (empty: none).", optional=True),
    LaunchArg("device", "device", "", "Torch device (empty: the config's).", optional=True),
    LaunchArg(
        "num_steps",
        "int",
        "",
        "Denoising steps per chunk, 0 = checkpoint default (empty: the config's).",
        optional=True,
        minimum=0,
    ),
    LaunchArg(
        "dry_run",
        "bool",
        "",
        "true: compute and log but publish no command (empty: the config's).",
        optional=True,
    ),
    LaunchArg("log_level", "log_level", "info", "Log level of the nodes."),
    LaunchArg("libero_bridge", "bool", "false", "Also start the LIBERO bridge (libero_bridge)."),
    LaunchArg(
        "libero_config",
        "params_file",
        "",
        "Parameters file of the LIBERO bridge (empty: its defaults).",
        optional=True,
        node=LIBERO_NODE_NAME,
    ),
)
OVERRIDES = ("policy_path", "device", "num_steps", "dry_run")  # node parameters of the same name


def parameter_overrides(values: dict[str, object]) -> dict[str, object]:
    """Node parameters set by given launch arguments (parsed: typed as the node declares)."""
    return {name: values[name] for name in OVERRIDES if values.get(name) is not None}


def _launch_setup(context, *args, **kwargs):
    """Parse every argument (LaunchArgumentError: one line, no node started), then the nodes."""
    text = {arg.name: LaunchConfiguration(arg.name).perform(context) for arg in ARGUMENTS}
    if not text["config"]:
        share = get_package_share_directory(PACKAGE)
        text["config"] = os.path.join(share, "config", DEFAULT_CONFIG)
    values = parse_args(ARGUMENTS, text)
    parameters: list[object] = [values["config"]]
    overrides = parameter_overrides(values)
    if overrides:
        parameters.append(overrides)
    namespace = values["namespace"] or ""
    ros_arguments = ["--log-level", values["log_level"]]
    actions = [
        LifecycleNode(
            **node_options(NODE_NAME, namespace, parameters, ros_arguments, emulate_tty=True)
        )
    ]
    if values["libero_bridge"]:
        bridge_params = [values["libero_config"]] if values["libero_config"] else []
        actions.append(
            Node(
                **node_options(
                    LIBERO_NODE_NAME, namespace, bridge_params, ros_arguments, emulate_tty=True
                )
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    """The launch description: declared arguments, then the nodes (built at launch time)."""
    declared = [
        DeclareLaunchArgument(
            arg.name, default_value=arg.default, description=declared_description(arg)
        )
        for arg in ARGUMENTS
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_launch_setup)])
