"""Simulated LIBERO + the policy node, lock-step (ROS 2 installs with launch / launch_ros).

    ros2 launch snapflow_ros libero_eval.launch.py        # the shipped SnapFlow student
    ros2 launch snapflow_ros libero_eval.launch.py policy_path:=/path/to/checkpoint
    ros2 launch snapflow_ros libero_eval.launch.py policy_path:=... suite:=libero_object \\
        task_index:=3 mode:=realtime

Arguments: ``bridge_params`` / ``policy_params`` (params files, default the package's
config/libero_bridge.yaml and config/libero_policy.yaml), ``policy_path``, ``num_steps``,
``suite``, ``task_index``, ``init_state_index``, ``mode`` (lockstep | realtime: the policy
node then runs on the bridge's /clock, or not), ``namespace``, ``start_bridge`` /
``start_policy`` (``libero_eval --launcher ros2launch`` starts them separately). Empty values
keep the params files' values. Without ``policy_path`` and ``policy_params`` it runs the shipped
SnapFlow student (``libero:snapflow``) on the task it was trained on: libero_object task 0,
64 px cameras, one benchmark initial state after the other from state 3 on, like ``make demo``
(DEMO_BRIDGE; arguments given still win). The policy node's ``seed`` at start is the first
state's noise seed, ``noise_seed(B, index)`` with the bridge's ``init_state_index`` and
``policy_noise_seed`` B as the bridge starts (arguments, then its params file, then the
defaults), as the bridge's ``auto_next`` and ``libero_eval --noise-seed B`` give every later
state (B = -1: the policy params file's seed is left alone). Every argument is checked before
a node starts (snapflow_ros.launch_args): a bad value or params file ends the launch with one
error line naming it. Stop with Ctrl-C (SIGINT). Without launch (PyPI rclpy),
run ``libero_eval`` or both executables with ``--ros-args --params-file`` (docs/libero.md).
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch_ros.actions import Node

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from snapflow_ros.launch_args import (
    PACKAGE,
    LaunchArg,
    check_params_file,
    declared_description,
    node_options,
    parse_args,
)
from snapflow_ros.launching import node_parameters, params_with_overrides
from snapflow_ros.params.libero_bridge import TABLE as BRIDGE_TABLE
from snapflow_ros.params.schema import default_of
from snapflow_ros.sim.placements import noise_seed
from snapflow_ros.sim.suites import NUM_INIT_STATES, SUITES

BRIDGE = "libero_bridge"
POLICY = "policy_node"
MODES = ("lockstep", "realtime")  # the bridge's `mode` parameter
PARAMS_FILES = {  # argument: (start flag, node, default file in <share>/config)
    "bridge_params": ("start_bridge", BRIDGE, "libero_bridge.yaml"),
    "policy_params": ("start_policy", POLICY, "libero_policy.yaml"),
}

ARGUMENTS = (
    LaunchArg(
        "bridge_params",
        "params_file",
        "",
        "Params file of the bridge (empty: <share>/config/libero_bridge.yaml).",
        optional=True,
        node=BRIDGE,
    ),
    LaunchArg(
        "policy_params",
        "params_file",
        "",
        "Params file of the policy node (empty: <share>/config/libero_policy.yaml).",
        optional=True,
        node=POLICY,
    ),
    LaunchArg(
        "namespace", "namespace", "", "Namespace of both nodes (empty: none).", optional=True
    ),
    LaunchArg("start_bridge", "bool", "true", "Start the LIBERO bridge."),
    LaunchArg("start_policy", "bool", "true", "Start the policy node."),
    LaunchArg(
        "suite",
        "choice",
        "",
        "LIBERO suite (empty: the params file's).",
        optional=True,
        choices=SUITES,
    ),
    LaunchArg(
        "task_index",
        "int",
        "",
        "Task of the suite (empty: the params file's).",
        optional=True,
        minimum=0,
    ),
    LaunchArg(
        "init_state_index",
        "int",
        "",
        "Benchmark initial state (empty: the params file's).",
        optional=True,
        minimum=0,
        maximum=NUM_INIT_STATES - 1,
    ),
    LaunchArg(
        "mode",
        "choice",
        "",
        "lockstep (policy on the bridge's /clock) or realtime (empty: the params files').",
        optional=True,
        choices=MODES,
    ),
    LaunchArg(
        "policy_path",
        "policy_path",
        "",
        "Checkpoint folder or tiny test policy (empty: the params file's).",
        optional=True,
    ),
    LaunchArg(
        "num_steps",
        "int",
        "",
        "Denoising steps per chunk, 0: default (empty: the params file's).",
        optional=True,
        minimum=0,
    ),
)
BRIDGE_ARGS = ("suite", "task_index", "init_state_index", "mode")
# No policy given: the shipped student on its own task (docs/libero.md, "Closed-loop proof").
DEMO_POLICY = {"policy_path": "libero:snapflow"}
DEMO_BRIDGE = {
    "suite": "libero_object",
    "task_index": 0,
    "init_state_index": 3,  # the states `make demo` runs first (3, 4, 5, ...)
    "image_height": 64,
    "image_width": 64,
    "auto_next": True,
}
POLICY_ARGS = ("policy_path", "num_steps")
FIRST_NOISE = ("policy_noise_seed", "init_state_index")  # noise_seed(base, index)


def _given(values: dict[str, object], names: tuple[str, ...]) -> dict[str, object]:
    """Arguments given a value, as node parameters (already typed by the parser)."""
    return {name: values[name] for name in names if values[name] is not None}


def _bridge_value(values: dict[str, object], bridge: dict[str, object], name: str) -> int:
    """The bridge's parameter ``name`` as it will start: the argument, else its params file,
    else the parameter's default."""
    given = node_parameters(params_with_overrides(values["bridge_params"], BRIDGE, bridge), BRIDGE)
    if name in given:
        return int(given[name])
    spec, _ = BRIDGE_TABLE.spec_for(name)
    return int(default_of(spec))


def _nodes(context, *args, **kwargs):
    """Parse every argument (LaunchArgumentError: one line, no node started), then the nodes."""
    text = {arg.name: LaunchConfiguration(arg.name).perform(context) for arg in ARGUMENTS}
    values = parse_args(ARGUMENTS, text)
    for name, (flag, node, default) in PARAMS_FILES.items():
        if values[flag] and values[name] is None:  # the installed default, checked as well
            path = os.path.join(get_package_share_directory(PACKAGE), "config", default)
            values[name] = check_params_file(name, path, node)
    ns = values["namespace"] or ""
    bridge = _given(values, BRIDGE_ARGS)
    policy = _given(values, POLICY_ARGS)
    if values["policy_path"] is None and not text["policy_params"].strip():
        bridge = {**DEMO_BRIDGE, **bridge}
        policy = {**DEMO_POLICY, **policy}
    if "mode" in bridge:
        policy["use_sim_time"] = bridge["mode"] == "lockstep"
    if values["start_bridge"]:  # the first episode's noise, as auto_next gives the next ones
        seed = noise_seed(*(_bridge_value(values, bridge, n) for n in FIRST_NOISE))
        if seed is not None:
            policy["seed"] = seed
    nodes = []
    if values["start_bridge"]:
        nodes.append(Node(**node_options(BRIDGE, ns, [values["bridge_params"], bridge])))
    if values["start_policy"]:
        nodes.append(Node(**node_options(POLICY, ns, [values["policy_params"], policy])))
    return nodes


def generate_launch_description() -> LaunchDescription:
    """Bridge + policy node with the LIBERO params files."""
    declared = [
        DeclareLaunchArgument(
            arg.name, default_value=arg.default, description=declared_description(arg)
        )
        for arg in ARGUMENTS
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes)])
