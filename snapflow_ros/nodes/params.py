"""Parameters of the policy node: one table (names, defaults, meaning, validators), a typed config.

The table is the single source of truth: the node declares it, checks every value against it
whenever one is set (start-up, ``set_parameters`` at run time, configure; the same
validators each time, like generate_parameter_library's), ``docs/policy_node.md`` lists it,
and the tests check that ``config/*.yaml`` only use names from it. Per-camera and
per-state-source parameters are declared for every name listed in ``cameras.names`` /
``state.sources``. Every error is a :class:`ConfigError` whose message names the parameter
and the accepted values. Nothing here needs a running ROS graph (topic names are checked
with rclpy's own validator, imported when first used).
"""

from __future__ import annotations

import array
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from snapflow_ros.control import BLEND_MODES, DEFAULT_MAX_LEAD, HOLD_MODES, ActionLimits, LimitError
from snapflow_ros.control.inputs import MAX_FUTURE_STAMP, STAMP_MODES
from snapflow_ros.policies import LIBERO_POLICIES, check_policy_path, tiny_names
from snapflow_ros.ros_conversions.images import MAX_PIXELS
from snapflow_ros.ros_conversions.state import JOINT_FIELDS, POSE_FORMATS, pose_size
from snapflow_ros.runtime.options import COMPILE_MODES, DTYPE_NAMES, ENGINES

NODE_NAME = "policy_node"
COMMAND_TYPES = ("joint_state", "float64_multi_array", "joint_trajectory")
ACTION_FIELDS = JOINT_FIELDS
STATE_TYPES = ("joint_state", "float64_array", "float32_array", "pose")
QOS_MODES = ("sensor_data", "reliable")
MAX_TASK_CHARS = 1000  # longer task instructions are rejected (prompts are 48-200 tokens)
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # camera / state source names
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


class ConfigError(ValueError):
    """A parameter value the node cannot work with (says which and why)."""


Check = Callable[[str, Any], None]  # raises ConfigError naming the parameter


def _shown(value: Any) -> str:
    """A value for an error message (long ones cut: messages stay short whatever the input)."""
    text_ = repr(value)
    return text_ if len(text_) <= 60 else text_[:57] + "..."


# ---------------------------------------------------------------------------------------------
# validators (each returns a check; every check gets the already type-checked value)
def one_of(*choices: str) -> Check:
    """The value must be one of ``choices``."""

    def check(name: str, value: Any) -> None:
        if value not in choices:
            raise ConfigError(f"{name}: must be one of {', '.join(choices)}; got {_shown(value)}")

    return check


def bounded(
    low: float | None = None, high: float | None = None, *, low_open: bool = False, unit: str = ""
) -> Check:
    """A number in ``[low, high]`` (``(low, high]`` with ``low_open``); None: no bound."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    text = " and ".join(parts) + (f" {unit}" if unit else "")

    def check(name: str, value: Any) -> None:
        bad = not math.isfinite(value)
        bad = bad or (low is not None and (value <= low if low_open else value < low))
        bad = bad or (high is not None and value > high)
        if bad:
            raise ConfigError(f"{name}: must be {text}; got {_shown(value)}")

    return check


def names(*, identifiers: bool = False, min_items: int = 0) -> Check:
    """A list of distinct non-empty strings (``identifiers``: letters, digits, ``_``)."""

    def check(name: str, value: Any) -> None:
        if len(value) < min_items:
            raise ConfigError(f"{name}: at least {min_items} name(s) needed; got {_shown(value)}")
        for item in value:
            if not item or item != item.strip():
                raise ConfigError(f"{name}: names must be non-empty, without spaces at the ends")
            if identifiers and not NAME_PATTERN.fullmatch(item):
                raise ConfigError(
                    f"{name}: {_shown(item)} must start with a letter and contain only "
                    "letters, digits and _"
                )
        if len(set(value)) != len(value):
            dups = sorted({v for v in value if value.count(v) > 1})
            raise ConfigError(f"{name}: duplicate names {dups}")

    return check


def limit_values(kind: str) -> Check:
    """Bounds ``lower`` / ``upper`` or ``max_delta``: no NaN, no infinity in the wrong direction
    (``max_delta`` > 0); lengths are checked against each other by :func:`check_limits`."""

    def check(name: str, value: Any) -> None:
        try:
            ActionLimits.build(max(len(value), 1), **{kind: value})
        except LimitError as exc:
            raise ConfigError(f"{name}: {exc}") from exc

    return check


def topic(*, allow_empty: bool = False) -> Check:
    """A valid ROS topic name (relative, absolute or ``~/private``), checked as rcl does."""

    def check(name: str, value: Any) -> None:
        if not value:
            if allow_empty:
                return
            raise ConfigError(f"{name}: a topic name is needed; got ''")
        from rclpy.expand_topic_name import expand_topic_name
        from rclpy.validate_full_topic_name import validate_full_topic_name

        try:
            validate_full_topic_name(expand_topic_name(value, NODE_NAME, "/"))
        except Exception as exc:  # rclpy raises several types; all mean "invalid"
            why = str(exc).splitlines()[0].split(", at /")[0]
            raise ConfigError(f"{name}: {_shown(value)} is not a valid topic name ({why})") from exc

    return check


def text(max_chars: int) -> Check:
    """A string of at most ``max_chars`` characters."""

    def check(name: str, value: Any) -> None:
        if len(value) > max_chars:
            raise ConfigError(f"{name}: {len(value)} characters, at most {max_chars} are accepted")

    return check


def not_empty(name: str, value: Any) -> None:
    """A non-empty string."""
    if not value.strip():
        raise ConfigError(f"{name}: must not be empty")


def policy_path(name: str, value: Any) -> None:
    """A checkpoint folder, a Hub id or a known ``tiny:`` / ``libero:`` name
    (:mod:`snapflow_ros.policies`); '' = not set yet: a shipped config may leave it to the
    command line, and configure then fails with a clear message."""
    if value != value.strip():
        raise ConfigError(f"{name}: {_shown(value)} has spaces at the ends")
    try:
        check_policy_path(value)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from exc


def device(name: str, value: Any) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if not DEVICE_PATTERN.fullmatch(value):
        raise ConfigError(f"{name}: must be auto, cpu, cuda or cuda:N; got {_shown(value)}")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default (its type is the parameter's type), meaning."""

    name: str
    default: Any
    description: str
    runtime: bool = False  # may be changed while the node runs
    checks: tuple[Check, ...] = ()  # run on every value, at every set and at configure


# Types: str, bool, int, float, list[str] ("str[]"), list[float] ("float[]"), list[int] ("int[]").
PARAMS: list[ParamSpec] = [
    # --- policy
    ParamSpec(
        "policy_path",
        "tiny:smolvla",
        "Checkpoint folder (LeRobot SmolVLA / pi0.5, plain or SnapFlow), or an embedded tiny "
        f"test policy (built offline on first use): {tiny_names()}.",
        checks=(policy_path,),
    ),
    ParamSpec(
        "device",
        "auto",
        "`auto` (cuda if present, else cpu), `cpu`, `cuda`, `cuda:N`.",
        checks=(device,),
    ),
    ParamSpec(
        "dtype",
        "float32",
        "`float32` or `bfloat16` (autocast).",
        checks=(one_of(*DTYPE_NAMES),),
    ),
    ParamSpec(
        "engine",
        "eager",
        "`eager` (LeRobot's denoise step, the reference), `fast` (per-step work hoisted out "
        "of the loop, fixed prompt length, bf16 weights with `dtype: bfloat16`; same numbers "
        "in float32), `compiled` (`fast` + torch.compile "
        "of the expert pass; compiles during warm-up) or `onnxruntime` (a `snapflow_export` "
        "folder as policy_path; float32).",
        checks=(one_of(*ENGINES),),
    ),
    ParamSpec(
        "compile_mode",
        "default",
        "torch.compile mode of the `compiled` engine: `default`, `reduce-overhead` (CUDA "
        "graphs on a GPU), `max-autotune`, `max-autotune-no-cudagraphs`.",
        checks=(one_of(*COMPILE_MODES),),
    ),
    ParamSpec("compile_prefix", False, "Also compile the prefix encoder (`compiled` engine)."),
    ParamSpec(
        "num_steps",
        0,
        "Denoising steps per chunk; 0 = the checkpoint's default (1 for SnapFlow). "
        "Can be changed at run time (A/B comparisons).",
        runtime=True,
        checks=(bounded(0, 1000),),
    ),
    ParamSpec("seed", 0, "Seed of the denoising noise (-1: random).", checks=(bounded(-1),)),
    ParamSpec("vlm_path", "", "Local SmolVLA VLM folder (default: the checkpoint's `vlm/`)."),
    ParamSpec("tokenizer_path", "", "Local pi0.5 tokenizer folder (default: `tokenizer/`)."),
    ParamSpec(
        "warmup", 1, "Warm-up predictions when the policy is loaded.", checks=(bounded(0, 1000),)
    ),
    ParamSpec(
        "torch_threads",
        0,
        "torch intra-op threads (0: leave torch's default).",
        checks=(bounded(0, 1024),),
    ),
    ParamSpec(
        "autostart", True, "Configure and activate at start-up (no lifecycle manager needed)."
    ),
    ParamSpec(
        "realtime_priority",
        0,
        "SCHED_FIFO priority (1-98) of every thread of the node process, where the system "
        "permits it (CAP_SYS_NICE or an rtprio limit); 0: normal scheduling. Steadies command "
        "timing on a busy machine (read at start-up; see docs/policy_node.md).",
        checks=(bounded(0, 98),),
    ),
    # --- timing / scheduling
    ParamSpec(
        "control_rate",
        10.0,
        "Command rate (Hz); chunk action k is due at capture time + k / control_rate.",
        checks=(bounded(0, 1000, low_open=True, unit="Hz"),),
    ),
    ParamSpec(
        "replan_threshold",
        -1.0,
        "Start a new inference when the plan's remaining horizon (s) drops below this; "
        "<0: automatic (1.5 x p95 inference latency + 2 periods).",
        runtime=True,
        checks=(bounded(unit="s"),),
    ),
    ParamSpec(
        "blend.mode",
        "linear",
        "Blending of overlapping chunks: none, linear, exponential.",
        checks=(one_of(*BLEND_MODES),),
    ),
    ParamSpec(
        "blend.alpha",
        0.5,
        "Exponential blending: weight of the new chunk grows as 1-(1-a)^(i+1).",
        checks=(bounded(0, 1, low_open=True),),
    ),
    ParamSpec(
        "blend.max_steps",
        0,
        "Blend at most this many overlapping actions (0: whole overlap).",
        checks=(bounded(0),),
    ),
    ParamSpec(
        "hold_mode",
        "none",
        "What a tick publishes with no valid action (bad inputs, paused, starved): "
        "none (nothing), last (repeat the last command), zero (zeros, clamped).",
        runtime=True,
        checks=(one_of(*HOLD_MODES),),
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
        checks=(bounded(0, low_open=True, unit="s"),),
    ),
    ParamSpec(
        "max_future_stamp",
        DEFAULT_MAX_LEAD,
        "Inputs stamped more than this (s) AHEAD of the node clock are a fault (clock skew): "
        f"hold, no command from them. At most {MAX_FUTURE_STAMP:g} s.",
        runtime=True,
        checks=(bounded(0, MAX_FUTURE_STAMP, low_open=True, unit="s"),),
    ),
    ParamSpec(
        "observation_stamp",
        "oldest",
        "Capture time of an observation: `oldest` or `newest` stamp of its camera/state inputs.",
        checks=(one_of(*STAMP_MODES),),
    ),
    ParamSpec(
        "qos",
        "sensor_data",
        "QoS of camera/state subscriptions: sensor_data (best effort, depth 5) or reliable.",
        checks=(one_of(*QOS_MODES),),
    ),
    ParamSpec(
        "cameras.names",
        ["front", "wrist"],
        "Camera names; each has `cameras.<name>.*`.",
        checks=(names(identifiers=True, min_items=1),),
    ),
    ParamSpec(
        "cameras.resize",
        True,
        "Resize images to the checkpoint's image size (false: a size mismatch is an error).",
    ),
    ParamSpec(
        "cameras.max_pixels",
        MAX_PIXELS,
        "Largest camera image accepted, in pixels (width x height; for compressed images "
        "the size their header declares): a larger one is a fault of that camera (hold), "
        f"refused on arrival before it is converted or decoded. At most {MAX_PIXELS}.",
        checks=(bounded(1, MAX_PIXELS),),
    ),
    ParamSpec(
        "state.sources",
        ["joints"],
        "State sources, in state-vector order; each has `state.<name>.*`.",
        checks=(names(identifiers=True, min_items=1),),
    ),
    ParamSpec(
        "task.topic",
        "task",
        "std_msgs/String task topic (transient local); '' disables it.",
        checks=(topic(allow_empty=True),),
    ),
    ParamSpec(
        "task.text",
        "",
        f"Task instruction used until one arrives on `task.topic` (at most {MAX_TASK_CHARS} "
        "characters).",
        runtime=True,
        checks=(text(MAX_TASK_CHARS),),
    ),
    # --- outputs
    ParamSpec(
        "action_names",
        [],
        "Names of the action dimensions (chunk joint_names, JointState names); "
        "empty: action_0..action_{D-1}.",
        checks=(names(),),
    ),
    ParamSpec(
        "action_field",
        "position",
        "Which field carries the actions: position, velocity or effort.",
        checks=(one_of(*ACTION_FIELDS),),
    ),
    ParamSpec(
        "limits.lower",
        [],
        "Per-dimension lower bounds of every command (empty: none; 1 value: all).",
        checks=(limit_values("lower"),),
    ),
    ParamSpec(
        "limits.upper",
        [],
        "Per-dimension upper bounds of every command (empty: none; 1 value: all).",
        checks=(limit_values("upper"),),
    ),
    ParamSpec(
        "limits.max_delta",
        [],
        "Largest change of a command per tick (empty: none; 1 value: all).",
        checks=(limit_values("max_delta"),),
    ),
    ParamSpec(
        "command.type",
        "joint_state",
        "Per-tick command message: joint_state (sensor_msgs/JointState), "
        "float64_multi_array (std_msgs/Float64MultiArray, ros2_control forward controllers), "
        "joint_trajectory (one-point trajectory_msgs/JointTrajectory).",
        checks=(one_of(*COMMAND_TYPES),),
    ),
    ParamSpec("command.topic", "~/command", "Per-tick command topic.", checks=(topic(),)),
    ParamSpec(
        "command.publish",
        True,
        "Publish per-tick commands (false: only chunks, for joint_trajectory_controller).",
    ),
    ParamSpec(
        "chunk.topic",
        "~/action_chunk",
        "Whole-chunk trajectory_msgs/JointTrajectory topic.",
        checks=(topic(),),
    ),
    ParamSpec("chunk.publish", True, "Publish every chunk as a JointTrajectory."),
    ParamSpec(
        "status_topic",
        "~/status",
        "std_msgs/String JSON status (per chunk and periodic).",
        checks=(topic(),),
    ),
    ParamSpec(
        "status_rate",
        1.0,
        "Periodic status / diagnostics rate (Hz).",
        checks=(bounded(0, 100, low_open=True, unit="Hz"),),
    ),
    ParamSpec(
        "stats_window",
        200,
        "Samples kept for latency percentiles.",
        checks=(bounded(10, 100_000),),
    ),
]

CAMERA_PARAMS: list[ParamSpec] = [
    ParamSpec("topic", "camera/{name}/image_raw", "Image topic of the camera.", checks=(topic(),)),
    ParamSpec(
        "key",
        "observation.images.{name}",
        "Policy image key this camera feeds.",
        checks=(not_empty,),
    ),
    ParamSpec("compressed", False, "Subscribe to sensor_msgs/CompressedImage (JPEG/PNG) instead."),
]

STATE_PARAMS: list[ParamSpec] = [
    ParamSpec(
        "type",
        "joint_state",
        "joint_state, float64_array, float32_array or pose (PoseStamped).",
        checks=(one_of(*STATE_TYPES),),
    ),
    ParamSpec("topic", "joint_states", "Topic of this state source.", checks=(topic(),)),
    ParamSpec(
        "names", [], "joint_state: joint names taken BY NAME, in this order.", checks=(names(),)
    ),
    ParamSpec(
        "field",
        "position",
        "joint_state: position, velocity or effort.",
        checks=(one_of(*ACTION_FIELDS),),
    ),
    ParamSpec("indices", [], "float*_array: elements to take (empty: all)."),
    ParamSpec(
        "size",
        0,
        "float*_array: number of values (required when indices is empty).",
        checks=(bounded(0, 1_000_000),),
    ),
    ParamSpec(
        "format",
        "xyz_quat",
        "pose: xyz_quat (7), xyz_axis_angle (6) or xyz (3).",
        checks=(one_of(*POSE_FORMATS),),
    ),
]

RUNTIME_PARAMS = {p.name for p in PARAMS if p.runtime}
_TOP = {p.name: p for p in PARAMS}
_PER_CAMERA = {p.name: p for p in CAMERA_PARAMS}
_PER_SOURCE = {p.name: p for p in STATE_PARAMS}


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


def spec_for(name: str) -> tuple[ParamSpec, str] | None:
    """``(spec, owner)`` of a full parameter name (owner: the camera / source name, or '');
    None for names that are not the policy node's (e.g. rclpy's ``use_sim_time``)."""
    if name in _TOP:
        return _TOP[name], ""
    group, _, rest = name.partition(".")
    owner, _, short = rest.rpartition(".")
    table = {"cameras": _PER_CAMERA, "state": _PER_SOURCE}.get(group)
    if table is None or not owner or short not in table:
        return None
    return table[short], owner


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
            return pose_size(self.format)
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
    raise ConfigError(f"{name}: expected true or false; got {_shown(v)}")


def _as_int(name: str, v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise ConfigError(f"{name}: expected an integer; got {_shown(v)}")


def _as_float(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{name}: expected a number; got {_shown(v)}")
    if math.isnan(float(v)):
        raise ConfigError(f"{name}: expected a number; got NaN")
    return float(v)


def _as_str(name: str, v: Any) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"{name}: expected a string; got {_shown(v)}")
    return v


ITEM_TYPES = {"string[]": _as_str, "double[]": _as_float, "int[]": _as_int}
SCALAR_TYPES = {"bool": _as_bool, "int": _as_int, "double": _as_float, "string": _as_str}


def coerce(name: str, spec: ParamSpec, value: Any) -> Any:
    """``value`` in the type of ``spec`` (None, i.e. not set: the default); ConfigError if it
    cannot be (a number for a string, a word for a number, ...). An integer is accepted for a
    double, an integral double for an integer."""
    if value is None:
        return list(spec.default) if isinstance(spec.default, list) else spec.default
    kind = type_name(spec)
    if kind in SCALAR_TYPES:
        return SCALAR_TYPES[kind](name, value)
    if isinstance(value, str) or not isinstance(value, list | tuple | array.array):
        raise ConfigError(f"{name}: expected a list ({kind}); got {_shown(value)}")
    item = ITEM_TYPES[kind]
    return [item(f"{name}[{i}]", v) for i, v in enumerate(value)]


def check_param(name: str, value: Any) -> Any:
    """The value of parameter ``name`` in its type, after every check of the table.

    Raises :class:`ConfigError` (naming the parameter and what it accepts) for a bad value or
    a name that is not a parameter of the policy node. Templates (``{name}`` in a camera's
    topic or key) are checked with the camera's name filled in.
    """
    found = spec_for(name)
    if found is None:
        raise ConfigError(f"{name}: not a parameter of {NODE_NAME}")
    spec, owner = found
    value = coerce(name, spec, value)
    shown = value.replace("{name}", owner) if owner and isinstance(value, str) else value
    for check in spec.checks:
        check(name, shown)
    return value


def check_limits(
    lower: list[float], upper: list[float], max_delta: list[float], dim: int | None = None
) -> None:
    """Cross-checks of ``limits.*``: one length for every list with more than one value
    (``dim`` when known: the action size), lower <= upper."""
    lists = {"limits.lower": lower, "limits.upper": upper, "limits.max_delta": max_delta}
    lengths = {n: len(v) for n, v in lists.items() if len(v) > 1}
    sizes = set(lengths.values()) | ({dim} if dim else set())
    if len(sizes) > 1:
        what = ", ".join(f"{n} has {k}" for n, k in lengths.items())
        expected = f"{dim} (the action size)" if dim else "the same number"
        raise ConfigError(f"limits: {what} values; each needs 0, 1 or {expected}")
    try:
        ActionLimits.build(max(sizes, default=1), lower, upper, max_delta)
    except LimitError as exc:
        raise ConfigError(f"limits: {exc} (limits.lower must be <= limits.upper)") from exc


def build_config(get: Any) -> NodeConfig:
    """Read and validate every parameter through ``get(name) -> value or None``."""
    values: dict[str, Any] = {spec.name: check_param(spec.name, get(spec.name)) for spec in PARAMS}
    names_ = values["action_names"]
    check_limits(
        values["limits.lower"],
        values["limits.upper"],
        values["limits.max_delta"],
        len(names_) or None,
    )
    cameras = []
    for name in values["cameras.names"]:
        raw = {p: check_param(p_full, get(p_full)) for p, p_full in _per(name, "cameras")}
        cameras.append(
            CameraConfig(
                name=name,
                topic=raw["topic"].replace("{name}", name),
                key=raw["key"].replace("{name}", name),
                compressed=raw["compressed"],
            )
        )
    keys = [c.key for c in cameras]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"cameras: two cameras feed the same policy key ({keys})")
    state = []
    for name in values["state.sources"]:
        raw = {p: check_param(p_full, get(p_full)) for p, p_full in _per(name, "state")}
        src = StateSourceConfig(
            name=name,
            type=raw["type"],
            topic=raw["topic"],
            names=raw["names"],
            joint_field=raw["field"],
            indices=raw["indices"],
            size=raw["size"],
            format=raw["format"],
        )
        if src.dim() <= 0:
            what = "names" if src.type == "joint_state" else "indices or size"
            raise ConfigError(f"state.{name}: gives no values (set state.{name}.{what})")
        state.append(src)
    return NodeConfig(values=values, cameras=cameras, state=state)


def _per(name: str, group: str) -> list[tuple[str, str]]:
    specs = CAMERA_PARAMS if group == "cameras" else STATE_PARAMS
    return [(p.name, f"{group}.{name}.{p.name}") for p in specs]


def check_set_sizes(
    checked: dict[str, Any],
    current: Callable[[str], Any],
    loaded: tuple[str, int] | None = None,
) -> None:
    """Cross-checks of a ``set_parameters`` whose values (``checked``) passed the table: the
    limit list lengths, lower <= upper, and the action size of the loaded policy (``loaded``:
    its ``policy_path`` and action size) while ``policy_path`` stays. ``current(name)`` gives
    the value of a parameter not in the set (None when it is bad itself)."""
    names = ("limits.lower", "limits.upper", "limits.max_delta", "action_names")
    if not any(n in checked for n in names):
        return

    def value(name: str) -> Any:
        return checked[name] if name in checked else current(name)

    lower, upper, max_delta, action_names = (value(n) for n in names)
    if None in (lower, upper, max_delta, action_names):
        return  # another bad value: configure reports it
    dim = len(action_names) or None
    if loaded is not None and value("policy_path") == loaded[0]:
        if action_names and len(action_names) != loaded[1]:
            raise ConfigError(
                f"action_names: {len(action_names)} names for the "
                f"{loaded[1]} action dimensions of the loaded policy"
            )
        dim = loaded[1]
    check_limits(lower, upper, max_delta, dim)


def check_against_policy(
    cfg: NodeConfig, image_keys: list[str], state_dim: int, action_dim: int
) -> None:
    """The cameras, state sources and action names fit the loaded policy; camera keys are
    completed to ``observation.images.<key>`` in ``cfg``."""
    for cam in cfg.cameras:
        if not cam.key.startswith("observation.images."):
            cam.key = "observation.images." + cam.key
    libero = libero_hint(cfg["policy_path"])
    keys = [cam.key for cam in cfg.cameras]
    missing = [k for k in image_keys if k not in keys]
    unknown = [k for k in keys if k not in image_keys]
    if missing or unknown:
        raise ConfigError(
            f"cameras: the policy expects image keys {image_keys}; "
            f"missing {missing}, unknown {unknown} ({libero or 'set cameras.<name>.key'})"
        )
    total = sum(s.dim() for s in cfg.state)
    if total != state_dim:
        parts = ", ".join(f"{s.name}={s.dim()}" for s in cfg.state)
        raise ConfigError(
            f"state: the sources give {total} values ({parts}), the policy expects {state_dim}"
            + (f" ({libero})" if libero else "")
        )
    names = cfg["action_names"]
    if names and len(names) != action_dim:
        raise ConfigError(
            f"action_names: {len(names)} names for {action_dim} action dimensions"
            + (f" ({libero})" if libero else "")
        )


def libero_hint(policy_path: str) -> str:
    """For a policy with LIBERO's cameras, state and actions (``libero:*``, ``tiny:libero*``):
    where its configuration is (the node's defaults and ``config/policy.yaml`` are for the
    synthetic robot); '' for any other policy."""
    if policy_path not in LIBERO_POLICIES:
        return ""
    return (
        f"{policy_path} is a LIBERO policy: run it with config/libero_policy.yaml "
        "(installed in share/snapflow_ros/config), e.g. `ros2 launch snapflow_ros "
        f"libero_eval.launch.py policy_path:={policy_path}` (the LIBERO bridge and the policy "
        "node with its config)"
    )
