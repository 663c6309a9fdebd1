"""Simulated LIBERO (MuJoCo) without ROS: offline setup, the task wrapper, videos.

Heavy modules (LIBERO, robosuite, MuJoCo) are imported only when an environment is built.
"""

from snapflow_ros.sim.libero_env import (
    ARM_JOINTS,
    CAMERAS,
    GRIPPER_JOINTS,
    LEROBOT_STATE_NAMES,
    MUJOCO_CAMERAS,
    ActionError,
    LiberoSim,
    SimConfig,
    SimObservation,
    StepResult,
    lerobot_state,
    quat_to_axis_angle_lerobot,
    validate_action,
)
from snapflow_ros.sim.libero_setup import (
    LiberoPaths,
    LiberoSetupError,
    prepare_libero,
    resolve_assets_path,
    select_gl_backend,
    write_libero_config,
)
from snapflow_ros.sim.suites import (
    NOOP_ACTION,
    SUITE_MAX_STEPS,
    SUITE_NUM_TASKS,
    SUITES,
    max_steps_for,
)

__all__ = [
    "ARM_JOINTS",
    "CAMERAS",
    "GRIPPER_JOINTS",
    "LEROBOT_STATE_NAMES",
    "MUJOCO_CAMERAS",
    "NOOP_ACTION",
    "SUITES",
    "SUITE_MAX_STEPS",
    "SUITE_NUM_TASKS",
    "ActionError",
    "LiberoPaths",
    "LiberoSetupError",
    "LiberoSim",
    "SimConfig",
    "SimObservation",
    "StepResult",
    "lerobot_state",
    "max_steps_for",
    "prepare_libero",
    "quat_to_axis_angle_lerobot",
    "resolve_assets_path",
    "select_gl_backend",
    "validate_action",
    "write_libero_config",
]
