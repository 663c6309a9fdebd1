"""The LIBERO bridge's parameters: one table (names, defaults, meaning, checks).

Declared with static types (rclpy refuses a value of another type before any check runs);
the run-time ones apply at the next reset, the others are fixed at start-up
(``docs/libero.md``). The checks are those of :mod:`snapflow_ros.sim.suites` for the suite,
task and initial state, and :func:`check_privileged` (a task with an object and a target to
publish) across parameters. Importing this loads no ROS, torch, OpenCV or simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from snapflow_ros.params.choices import COMMAND_TYPES
from snapflow_ros.params.schema import ConfigError, ParamSpec, ParamTable, choice, requires
from snapflow_ros.sim import MUJOCO_CAMERAS, SimConfig
from snapflow_ros.sim.episodes import privileged_task
from snapflow_ros.sim.suites import CONTROL_FREQ, check_init_state, check_suite, check_task

NODE_NAME = "libero_bridge"
MODES = ("lockstep", "realtime")
BRIDGE_COMMAND_TYPES = tuple(t for t in COMMAND_TYPES if t != "joint_trajectory")
MISSING_MODES = ("noop", "hold")
GL_BACKENDS = ("auto", "egl", "osmesa")
OUT_OF_RANGE = ("clip", "reject")
FIXED = "{name} is fixed at start-up (restart the bridge)"  # a set of a start-up parameter

_IMAGE_SIZE = requires(lambda v: 16 <= v <= 2048, "in 16..2048")
_NOT_NEGATIVE = requires(lambda v: v >= 0, ">= 0")
_POSITIVE = requires(lambda v: v > 0, "> 0")


def _suite(name: str, value: Any) -> None:
    check_suite(value)


def _task(name: str, value: Any, values: Callable[[str], Any]) -> None:
    check_task(values("suite"), value)


def _init_state(name: str, value: Any) -> None:
    check_init_state(value)


def _video_cameras(name: str, value: Any) -> None:
    if not value or any(c not in MUJOCO_CAMERAS for c in value) or len(set(value)) < len(value):
        raise ConfigError(
            f"video.cameras: one or both of {', '.join(MUJOCO_CAMERAS)}, got {list(value)}"
        )


def check_privileged(checked: dict[str, Any], current: Callable[[str], Any]) -> None:
    """With ``privileged_state``, the task must have an object and a target to publish
    (values of ``checked``, else ``current``); ValueError naming ``privileged_state``."""

    def value(name: str) -> Any:
        return checked[name] if name in checked else current(name)

    privileged_task(value, str(value("suite")), int(value("task_index")))


PARAMS: list[ParamSpec] = [
    ParamSpec(
        "suite",
        "libero_spatial",
        "LIBERO suite (runtime: next reset).",
        runtime=True,
        checks=(_suite,),
    ),
    ParamSpec(
        "task_index", 0, "Task of the suite (runtime: next reset).", runtime=True, related=_task
    ),
    ParamSpec(
        "init_state_index",
        0,
        "Benchmark initial state 0..49 (runtime: next reset).",
        runtime=True,
        checks=(_init_state,),
    ),
    ParamSpec(
        "episode_length",
        0,
        "Step limit of an episode; 0: the suite's (LeRobot's) value.",
        runtime=True,
        checks=(_NOT_NEGATIVE,),
    ),
    ParamSpec(
        "mode",
        "lockstep",
        "lockstep (one step per command, sim time) or realtime (20 Hz wall clock).",
        runtime=True,
        checks=(choice(*MODES),),
    ),
    ParamSpec(
        "settle_steps",
        10,
        "No-op steps after each reset (not counted, not published).",
        checks=(_NOT_NEGATIVE,),
    ),
    ParamSpec("image_height", 256, "Camera image height.", checks=(_IMAGE_SIZE,)),
    ParamSpec("image_width", 256, "Camera image width.", checks=(_IMAGE_SIZE,)),
    ParamSpec("render", True, "Render the cameras (false: physics only, no images published)."),
    ParamSpec(
        "video.size",
        0,
        "Also render video.cameras at this size for people (<prefix>/<camera>/video_raw; "
        "0: none). The policy's images keep image_height x image_width.",
        checks=(requires(lambda v: v == 0 or 16 <= v <= 2048, "0 or in 16..2048"),),
    ),
    ParamSpec(
        "video.cameras",
        ["agentview"],
        "Cameras of video.size (agentview, wrist).",
        checks=(_video_cameras,),
    ),
    ParamSpec(
        "fast_render",
        False,
        "No shadows/reflections: faster, but images differ from the datasets'.",
    ),
    ParamSpec("hard_reset", True, "Rebuild the MuJoCo model at each reset (LeRobot's default)."),
    ParamSpec("seed", 0, "Seed passed to LIBERO's env.seed at each reset (<0: none)."),
    ParamSpec(
        "assets_path",
        "",
        "LIBERO assets folder ('' : $LIBERO_ASSETS_PATH or the assets packages).",
    ),
    ParamSpec(
        "gl",
        "auto",
        "OpenGL backend: auto (EGL, then OSMesa), egl or osmesa.",
        checks=(choice(*GL_BACKENDS),),
    ),
    ParamSpec("autostart", True, "Start the first episode at start-up (false: wait for ~/reset)."),
    ParamSpec(
        "auto_next",
        False,
        "After an episode ends, start the next initial state by itself.",
        runtime=True,
    ),
    ParamSpec(
        "policy_node",
        "",
        "auto_next: the policy node to pause, reset and resume around each new episode, as "
        "libero_eval does ('' : none; relative names follow the namespace).",
    ),
    ParamSpec(
        "policy_noise_seed",
        0,
        "auto_next: before resetting the policy node, set its `seed` to this + the new "
        "initial state's index (as `libero_eval --noise-seed`); -1: leave its seed alone.",
        runtime=True,
        checks=(requires(lambda v: v >= -1, ">= -1"),),
    ),
    ParamSpec(
        "command.type",
        "joint_state",
        "joint_state (positions) or float64_multi_array.",
        checks=(choice(*BRIDGE_COMMAND_TYPES),),
    ),
    ParamSpec(
        "command.topic", "policy_node/command", "Command topic (7 values: deltas + gripper)."
    ),
    ParamSpec(
        "command.names",
        None,
        "JointState names in action order (unset: positions in order).",
        kind="string[]",
    ),
    ParamSpec(
        "command.out_of_range",
        "clip",
        "Values outside [-1, 1]: clip (warn) or reject.",
        runtime=True,
        checks=(choice(*OUT_OF_RANGE),),
    ),
    ParamSpec(
        "realtime.missing",
        "noop",
        "realtime, no new command for a step: noop or hold (repeat last).",
        runtime=True,
        checks=(choice(*MISSING_MODES),),
    ),
    ParamSpec(
        "realtime.command_timeout",
        0.5,
        "realtime + hold: repeat the last command at most this long (s).",
        runtime=True,
        checks=(_POSITIVE,),
    ),
    ParamSpec(
        "realtime.wait_first_command",
        True,
        "realtime: keep the episode at step 0 until a command comes.",
        runtime=True,
    ),
    ParamSpec(
        "lockstep.kick_period",
        0.05,
        "lockstep: re-trigger the policy node's tick after this wait (s).",
        runtime=True,
        checks=(_POSITIVE,),
    ),
    ParamSpec(
        "lockstep.clock_delay",
        0.01,
        "lockstep: pause between an observation and its /clock (s).",
        runtime=True,
        checks=(requires(lambda v: 0 <= v <= 1, "in [0, 1] s"),),
    ),
    ParamSpec(
        "lockstep.stamp_lead",
        1e-5,
        "lockstep: observation stamps lead /clock by this much (s).",
        checks=(
            requires(
                lambda v: 0 <= v <= 0.1 / CONTROL_FREQ, f"in [0, {0.1 / CONTROL_FREQ}] s", None
            ),
        ),
    ),
    ParamSpec(
        "lockstep.kick_max",
        0.5,
        "lockstep: longest wait between re-triggers (s; doubles up to it).",
        runtime=True,
        checks=(_POSITIVE,),
    ),
    ParamSpec(
        "render.on_demand",
        False,
        "lockstep: render the cameras only for the observations the policy node reads (where "
        "its last chunk runs out, at least every render.max_age); other steps publish the "
        "state without images. For whole-chunk policies (no replan threshold) without video.",
        runtime=True,
    ),
    ParamSpec(
        "render.chunk_topic",
        "policy_node/action_chunk",
        "render.on_demand: the policy node's chunk topic (trajectory_msgs/JointTrajectory).",
    ),
    ParamSpec(
        "render.max_age",
        0.5,
        "render.on_demand: render at least this often (s of simulation time; keep it under "
        "the policy node's input_timeout).",
        runtime=True,
        checks=(_POSITIVE,),
    ),
    ParamSpec(
        "clock.start",
        1.0,
        "Simulation time of the first episode (s).",
        checks=(requires(lambda v: v > 0, "> 0 (time 0 means 'unset' in ROS)", None),),
    ),
    ParamSpec(
        "clock.reset_gap",
        10.0,
        "Simulation time skipped at each reset (s; expires old plans/inputs).",
    ),
    ParamSpec(
        "privileged_state",
        False,
        "Also publish the task object's and its target's positions on libero/privileged_state "
        "(for policies trained on --privileged demonstrations; tasks with a scripted expert).",
    ),
    ParamSpec("topic_prefix", "libero", "Prefix of the published topics."),
    ParamSpec("world_frame", "world", "frame_id of poses."),
]
TABLE = ParamTable(NODE_NAME, PARAMS, coerce=False)
RUNTIME = TABLE.runtime


def sim_config(value: Callable[[str], Any]) -> SimConfig:
    """The simulation of the parameters ``value(name)`` gives (read at every reset)."""
    return SimConfig(
        suite=str(value("suite")),
        task_index=int(value("task_index")),
        init_state_index=int(value("init_state_index")),
        image_height=int(value("image_height")),
        image_width=int(value("image_width")),
        render=bool(value("render")),
        fast_render=bool(value("fast_render")),
        settle_steps=int(value("settle_steps")),
        max_steps=int(value("episode_length")),
        hard_reset=bool(value("hard_reset")),
        seed=int(value("seed")),
        assets_path=str(value("assets_path")),
        gl=str(value("gl")),
        video_size=int(value("video.size")),
        video_cameras=tuple(value("video.cameras")),
    )
