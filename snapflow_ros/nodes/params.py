"""Parameters of the policy node: one table (names, defaults, meaning) and a typed config.

The table is the single source of truth: the node declares it, ``docs/policy_node.md`` lists
it, and the tests check that ``config/*.yaml`` only use names from it. Per-camera and
per-state-source parameters are declared for every name listed in ``cameras.names`` /
``state.sources``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from snapflow_ros.runtime.fast_path import COMPILE_MODES, ENGINES

NODE_NAME = "policy_node"
TINY_PREFIX = "tiny:"
COMMAND_TYPES = ("joint_state", "float64_multi_array", "joint_trajectory")
ACTION_FIELDS = ("position", "velocity", "effort")
STATE_TYPES = ("joint_state", "float64_array", "float32_array", "pose")
STAMP_MODES = ("oldest", "newest")
QOS_MODES = ("sensor_data", "reliable")


class ConfigError(ValueError):
    """A parameter value the node cannot work with (says which and why)."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default (its type is the parameter's type), meaning."""

    name: str
    default: Any
    description: str
    runtime: bool = False  # may be changed while the node runs


# Types: str, bool, int, float, list[str] ("str[]"), list[float] ("float[]"), list[int] ("int[]").
PARAMS: list[ParamSpec] = [
    # --- policy
    ParamSpec(
        "policy_path",
        "tiny:smolvla",
        "Checkpoint folder (LeRobot SmolVLA / pi0.5, plain or SnapFlow), or `tiny:smolvla` / "
        "`tiny:pi05` for the embedded tiny test policy (built offline on first use).",
    ),
    ParamSpec("device", "auto", "`auto` (cuda if present, else cpu), `cpu`, `cuda`, `cuda:N`."),
    ParamSpec("dtype", "float32", "`float32` or `bfloat16` (autocast)."),
    ParamSpec(
        "engine",
        "eager",
        "`eager` (LeRobot's denoise step, the reference), `fast` (per-step work hoisted out "
        "of the loop, fixed prompt length, bf16 weights with `dtype: bfloat16`; same numbers "
        "in float32) or `compiled` (`fast` + torch.compile "
        "of the expert pass; compiles during warm-up).",
    ),
    ParamSpec(
        "compile_mode",
        "default",
        "torch.compile mode of the `compiled` engine: `default`, `reduce-overhead` (CUDA "
        "graphs on a GPU), `max-autotune`, `max-autotune-no-cudagraphs`.",
    ),
    ParamSpec("compile_prefix", False, "Also compile the prefix encoder (`compiled` engine)."),
    ParamSpec(
        "num_steps",
        0,
        "Denoising steps per chunk; 0 = the checkpoint's default (1 for SnapFlow). "
        "Can be changed at run time (A/B comparisons).",
        runtime=True,
    ),
    ParamSpec("seed", 0, "Seed of the denoising noise (-1: random)."),
    ParamSpec("vlm_path", "", "Local SmolVLA VLM folder (default: the checkpoint's `vlm/`)."),
    ParamSpec("tokenizer_path", "", "Local pi0.5 tokenizer folder (default: `tokenizer/`)."),
    ParamSpec("warmup", 1, "Warm-up predictions when the policy is loaded."),
    ParamSpec("torch_threads", 0, "torch intra-op threads (0: leave torch's default)."),
    ParamSpec(
        "autostart", True, "Configure and activate at start-up (no lifecycle manager needed)."
    ),
    # --- timing / scheduling
    ParamSpec(
        "control_rate",
        10.0,
        "Command rate (Hz); chunk action k is due at capture time + k / control_rate.",
    ),
    ParamSpec(
        "replan_threshold",
        -1.0,
        "Start a new inference when the plan's remaining horizon (s) drops below this; "
        "<0: automatic (1.5 x p95 inference latency + 2 periods).",
        runtime=True,
    ),
    ParamSpec("blend.mode", "linear", "Blending of overlapping chunks: none, linear, exponential."),
    ParamSpec(
        "blend.alpha", 0.5, "Exponential blending: weight of the new chunk grows as 1-(1-a)^(i+1)."
    ),
    ParamSpec(
        "blend.max_steps", 0, "Blend at most this many overlapping actions (0: whole overlap)."
    ),
    ParamSpec(
        "hold_mode",
        "none",
        "What a tick publishes with no valid action (bad inputs, paused, starved): "
        "none (nothing), last (repeat the last command), zero (zeros, clamped).",
        runtime=True,
    ),
    ParamSpec(
        "dry_run", False, "Compute and log, but publish no command and no chunk.", runtime=True
    ),
    # --- inputs
    ParamSpec(
        "input_timeout",
        0.5,
        "Inputs whose header stamp is older than this (s) are stale: no command from them.",
        runtime=True,
    ),
    ParamSpec(
        "observation_stamp",
        "oldest",
        "Capture time of an observation: `oldest` or `newest` stamp of its camera/state inputs.",
    ),
    ParamSpec(
        "qos",
        "sensor_data",
        "QoS of camera/state subscriptions: sensor_data (best effort, depth 5) or reliable.",
    ),
    ParamSpec("cameras.names", ["front", "wrist"], "Camera names; each has `cameras.<name>.*`."),
    ParamSpec(
        "cameras.resize",
        True,
        "Resize images to the checkpoint's image size (false: a size mismatch is an error).",
    ),
    ParamSpec(
        "state.sources",
        ["joints"],
        "State sources, in state-vector order; each has `state.<name>.*`.",
    ),
    ParamSpec(
        "task.topic", "task", "std_msgs/String task topic (transient local); '' disables it."
    ),
    ParamSpec(
        "task.text", "", "Task instruction used until one arrives on `task.topic`.", runtime=True
    ),
    # --- outputs
    ParamSpec(
        "action_names",
        [],
        "Names of the action dimensions (chunk joint_names, JointState names); "
        "empty: action_0..action_{D-1}.",
    ),
    ParamSpec(
        "action_field", "position", "Which field carries the actions: position, velocity or effort."
    ),
    ParamSpec(
        "limits.lower",
        [],
        "Per-dimension lower bounds of every command (empty: none; 1 value: all).",
    ),
    ParamSpec(
        "limits.upper",
        [],
        "Per-dimension upper bounds of every command (empty: none; 1 value: all).",
    ),
    ParamSpec(
        "limits.max_delta", [], "Largest change of a command per tick (empty: none; 1 value: all)."
    ),
    ParamSpec(
        "command.type",
        "joint_state",
        "Per-tick command message: joint_state (sensor_msgs/JointState), "
        "float64_multi_array (std_msgs/Float64MultiArray, ros2_control forward controllers), "
        "joint_trajectory (one-point trajectory_msgs/JointTrajectory).",
    ),
    ParamSpec("command.topic", "~/command", "Per-tick command topic."),
    ParamSpec(
        "command.publish",
        True,
        "Publish per-tick commands (false: only chunks, for joint_trajectory_controller).",
    ),
    ParamSpec(
        "chunk.topic", "~/action_chunk", "Whole-chunk trajectory_msgs/JointTrajectory topic."
    ),
    ParamSpec("chunk.publish", True, "Publish every chunk as a JointTrajectory."),
    ParamSpec("status_topic", "~/status", "std_msgs/String JSON status (per chunk and periodic)."),
    ParamSpec("status_rate", 1.0, "Periodic status / diagnostics rate (Hz)."),
    ParamSpec("stats_window", 200, "Samples kept for latency percentiles."),
]

CAMERA_PARAMS: list[ParamSpec] = [
    ParamSpec("topic", "camera/{name}/image_raw", "Image topic of the camera."),
    ParamSpec("key", "observation.images.{name}", "Policy image key this camera feeds."),
    ParamSpec("compressed", False, "Subscribe to sensor_msgs/CompressedImage (JPEG/PNG) instead."),
]

STATE_PARAMS: list[ParamSpec] = [
    ParamSpec(
        "type", "joint_state", "joint_state, float64_array, float32_array or pose (PoseStamped)."
    ),
    ParamSpec("topic", "joint_states", "Topic of this state source."),
    ParamSpec("names", [], "joint_state: joint names taken BY NAME, in this order."),
    ParamSpec("field", "position", "joint_state: position, velocity or effort."),
    ParamSpec("indices", [], "float*_array: elements to take (empty: all)."),
    ParamSpec("size", 0, "float*_array: number of values (required when indices is empty)."),
    ParamSpec("format", "xyz_quat", "pose: xyz_quat (7), xyz_axis_angle (6) or xyz (3)."),
]

RUNTIME_PARAMS = {p.name for p in PARAMS if p.runtime}


def type_name(spec: ParamSpec) -> str:
    """Human name of a parameter's type (from its default)."""
    value = spec.default
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if value:
        return "string[]" if isinstance(value[0], str) else "double[]"
    if spec.name.endswith("indices"):
        return "int[]"
    return "string[]" if spec.name.endswith("names") else "double[]"


def camera_param_names(name: str) -> list[str]:
    """Full parameter names of camera ``name``."""
    return [f"cameras.{name}.{p.name}" for p in CAMERA_PARAMS]


def state_param_names(name: str) -> list[str]:
    """Full parameter names of state source ``name``."""
    return [f"state.{name}.{p.name}" for p in STATE_PARAMS]


# ---------------------------------------------------------------------------------------------
# typed configuration
@dataclass
class CameraConfig:
    """One camera input."""

    name: str
    topic: str
    key: str
    compressed: bool


@dataclass
class StateSourceConfig:
    """One piece of the state vector."""

    name: str
    type: str
    topic: str
    names: list[str] = field(default_factory=list)
    joint_field: str = "position"
    indices: list[int] = field(default_factory=list)
    size: int = 0
    format: str = "xyz_quat"

    def dim(self) -> int:
        """Number of state values this source gives."""
        if self.type == "joint_state":
            return len(self.names)
        if self.type == "pose":
            return {"xyz_quat": 7, "xyz_axis_angle": 6, "xyz": 3}[self.format]
        return len(self.indices) if self.indices else self.size


@dataclass
class NodeConfig:
    """Everything the node reads from its parameters, validated."""

    values: dict[str, Any]
    cameras: list[CameraConfig]
    state: list[StateSourceConfig]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def _as_bool(name: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise ConfigError(f"{name}: expected true/false, got {v!r}")


def _as_int(name: str, v: Any) -> int:
    if isinstance(v, bool):
        raise ConfigError(f"{name}: expected an integer, got {v!r}")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise ConfigError(f"{name}: expected an integer, got {v!r}")


def _as_float(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{name}: expected a number, got {v!r}")
    if math.isnan(float(v)):
        raise ConfigError(f"{name}: NaN is not allowed")
    return float(v)


def coerce(name: str, default: Any, value: Any) -> Any:
    """Turn a parameter value into the type of ``default`` (None: the default)."""
    if value is None:
        return default
    if isinstance(default, bool):
        return _as_bool(name, value)
    if isinstance(default, int):
        return _as_int(name, value)
    if isinstance(default, float):
        return _as_float(name, value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        return list(value)
    raise ConfigError(f"{name}: unsupported default {default!r}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name}: must be one of {', '.join(choices)}, got {value!r}")
    return value


def validate_value(name: str, value: Any) -> Any:
    """Check one (already coerced) value of a top-level parameter; returns it."""
    checks = {
        "blend.mode": ("none", "linear", "exponential"),
        "hold_mode": ("none", "last", "zero"),
        "observation_stamp": STAMP_MODES,
        "qos": QOS_MODES,
        "action_field": ACTION_FIELDS,
        "command.type": COMMAND_TYPES,
        "dtype": ("float32", "bfloat16"),
        "engine": ENGINES,
        "compile_mode": COMPILE_MODES,
    }
    if name in checks:
        return _choice(name, value, checks[name])
    if name == "num_steps" and value < 0:
        raise ConfigError("num_steps: must be >= 0 (0: the checkpoint's default)")
    if name in ("control_rate", "status_rate", "input_timeout") and not value > 0:
        raise ConfigError(f"{name}: must be > 0, got {value}")
    if name == "control_rate" and value > 1000:
        raise ConfigError(f"control_rate: {value} Hz is above 1 kHz")
    if name == "blend.alpha" and not 0 < value <= 1:
        raise ConfigError(f"blend.alpha: must be in (0, 1], got {value}")
    if name in ("blend.max_steps", "warmup", "torch_threads") and value < 0:
        raise ConfigError(f"{name}: must be >= 0, got {value}")
    if name == "stats_window" and value < 10:
        raise ConfigError(f"stats_window: must be >= 10, got {value}")
    if name in ("limits.lower", "limits.upper", "limits.max_delta"):
        return [_as_float(name, v) for v in value]
    if name in ("cameras.names", "state.sources", "action_names"):
        if not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{name}: expected non-empty strings, got {value!r}")
        if len(set(value)) != len(value):
            raise ConfigError(f"{name}: duplicate names in {value!r}")
    return value


def build_config(get: Any) -> NodeConfig:
    """Read and validate every parameter through ``get(name) -> value or None``."""
    values: dict[str, Any] = {}
    for spec in PARAMS:
        values[spec.name] = validate_value(
            spec.name, coerce(spec.name, spec.default, get(spec.name))
        )
    cameras = []
    for name in values["cameras.names"]:
        raw = {
            p.name: coerce(f"cameras.{name}.{p.name}", p.default, get(f"cameras.{name}.{p.name}"))
            for p in CAMERA_PARAMS
        }
        cameras.append(
            CameraConfig(
                name=name,
                topic=raw["topic"].format(name=name),
                key=raw["key"].format(name=name),
                compressed=raw["compressed"],
            )
        )
    if not cameras:
        raise ConfigError("cameras.names: at least one camera is needed")
    keys = [c.key for c in cameras]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"cameras: two cameras feed the same policy key ({keys})")
    state = []
    for name in values["state.sources"]:
        raw = {
            p.name: coerce(f"state.{name}.{p.name}", p.default, get(f"state.{name}.{p.name}"))
            for p in STATE_PARAMS
        }
        src = StateSourceConfig(
            name=name,
            type=_choice(f"state.{name}.type", raw["type"], STATE_TYPES),
            topic=raw["topic"],
            names=[str(n) for n in raw["names"]],
            joint_field=_choice(f"state.{name}.field", raw["field"], ACTION_FIELDS),
            indices=[_as_int(f"state.{name}.indices", i) for i in raw["indices"]],
            size=_as_int(f"state.{name}.size", raw["size"]),
            format=_choice(
                f"state.{name}.format", raw["format"], ("xyz_quat", "xyz_axis_angle", "xyz")
            ),
        )
        if src.dim() <= 0:
            what = "names" if src.type == "joint_state" else "indices or size"
            raise ConfigError(f"state.{name}: gives no values (set state.{name}.{what})")
        if not src.topic:
            raise ConfigError(f"state.{name}.topic: empty")
        state.append(src)
    if not state:
        raise ConfigError("state.sources: at least one state source is needed")
    return NodeConfig(values=values, cameras=cameras, state=state)
