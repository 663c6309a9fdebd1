"""Simulated LIBERO + the policy node, lock-step (ROS 2 installs with launch / launch_ros).

    ros2 launch snapflow_ros libero_eval.launch.py policy_path:=/path/to/checkpoint
    ros2 launch snapflow_ros libero_eval.launch.py policy_path:=... suite:=libero_object \\
        task_index:=3 mode:=realtime

Arguments: ``bridge_params`` / ``policy_params`` (params files, default the package's
config/libero_bridge.yaml and config/libero_policy.yaml), ``policy_path``, ``num_steps``,
``suite``, ``task_index``, ``init_state_index``, ``mode`` (lockstep | realtime: the policy
node then runs on the bridge's /clock, or not), ``namespace``, ``start_bridge`` /
``start_policy`` (``libero_eval --launcher ros2launch`` starts them separately). Empty values
keep the params files' values. Stop with Ctrl-C (SIGINT). Without launch (PyPI rclpy), run
``libero_eval`` or both executables with ``--ros-args --params-file`` (docs/libero.md).
"""

from __future__ import annotations

import yaml
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution

BRIDGE_ARGS = ("suite", "task_index", "init_state_index", "mode")
POLICY_ARGS = ("policy_path", "num_steps")


def _overrides(context, names):
    """Launch arguments given a value, as parameters (YAML-typed: 3 -> int)."""
    out = {}
    for name in names:
        value = LaunchConfiguration(name).perform(context)
        if value != "":
            out[name] = value if name in ("policy_path", "suite", "mode") else yaml.safe_load(value)
    return out


def _nodes(context):
    ns = LaunchConfiguration("namespace").perform(context)
    bridge = _overrides(context, BRIDGE_ARGS)
    policy = _overrides(context, POLICY_ARGS)
    if "mode" in bridge:
        policy["use_sim_time"] = bridge["mode"] == "lockstep"
    return [
        Node(
            package="snapflow_ros",
            executable="libero_bridge",
            name="libero_bridge",
            namespace=ns,
            output="screen",
            parameters=[LaunchConfiguration("bridge_params"), bridge],
            condition=IfCondition(LaunchConfiguration("start_bridge")),
        ),
        Node(
            package="snapflow_ros",
            executable="policy_node",
            name="policy_node",
            namespace=ns,
            output="screen",
            parameters=[LaunchConfiguration("policy_params"), policy],
            condition=IfCondition(LaunchConfiguration("start_policy")),
        ),
    ]


def generate_launch_description() -> LaunchDescription:
    """Bridge + policy node with the LIBERO params files."""
    share = FindPackageShare("snapflow_ros")
    args = [
        DeclareLaunchArgument(
            "bridge_params",
            default_value=PathJoinSubstitution([share, "config", "libero_bridge.yaml"]),
        ),
        DeclareLaunchArgument(
            "policy_params",
            default_value=PathJoinSubstitution([share, "config", "libero_policy.yaml"]),
        ),
        DeclareLaunchArgument("namespace", default_value=""),
        DeclareLaunchArgument("start_bridge", default_value="true"),
        DeclareLaunchArgument("start_policy", default_value="true"),
    ]
    args += [DeclareLaunchArgument(n, default_value="") for n in (*BRIDGE_ARGS, *POLICY_ARGS)]
    return LaunchDescription([*args, OpaqueFunction(function=_nodes)])
