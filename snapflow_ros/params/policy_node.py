"""The policy node's parameters: one table (names, defaults, meaning, checks), a typed config.

The table is the single source of truth: the node declares it, checks every value against it
whenever one is set (start-up, ``set_parameters`` at run time, configure; the same checks each
time), ``docs/policy_node.md`` lists it, and the tests check that ``config/*.yaml`` only use
names from it. The run-time rows are :data:`snapflow_ros.control.settings.SETTINGS_PARAMS`
(the controller's :class:`~snapflow_ros.control.settings.Settings` is built from them), taken
in place. Per-camera and per-state-source parameters are declared for every name listed in
``cameras.names`` / ``state.sources``. :func:`build_config` returns the typed configuration
(``cfg.blend.mode``, ``cfg.cameras[0].topic``). Importing this loads no ROS, torch or OpenCV.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from snapflow_ros.control import BLEND_MODES, ActionLimits, LimitError, short
from snapflow_ros.control.input_slots import STAMP_MODES
from snapflow_ros.control.settings import MAX_TASK_CHARS as MAX_TASK_CHARS
from snapflow_ros.control.settings import SETTINGS_PARAMS, runtime_seed
from snapflow_ros.params.choices import (
    COMMAND_TYPES,
    JOINT_FIELDS,
    MAX_PIXELS,
    POSE_FORMATS,
    POSE_SIZES,
)
from snapflow_ros.params.schema import (
    Check,
    ConfigError,
    EntryGroup,
    ParamSpec,
    ParamTable,
    bounded,
    device,
    lookup,
    names,
    not_empty,
    one_of,
    policy_path,
    topic,
)
from snapflow_ros.policies import LIBERO_POLICIES, resolve_policy, tiny_names
from snapflow_ros.runtime.errors import CheckpointError
from snapflow_ros.runtime.options import COMPILE_MODES, DTYPE_NAMES, ENGINES, RuntimeOptions

NODE_NAME = "policy_node"
ACTION_FIELDS = JOINT_FIELDS
STATE_TYPES = ("joint_state", "float64_array", "float32_array", "pose")
QOS_MODES = ("sensor_data", "reliable")
_topic = functools.partial(topic, node=NODE_NAME)
_RUN_TIME = {p.name: p for p in SETTINGS_PARAMS}


def limit_values(kind: str) -> Check:
    """Bounds ``lower`` / ``upper`` or ``max_delta``: no NaN, no infinity in the wrong direction
    (``max_delta`` > 0); lengths are checked against each other by :func:`check_limits`."""

    def check(name: str, value: Any) -> None:
        try:
            ActionLimits.build(max(len(value), 1), **{kind: value})
        except LimitError as exc:
            raise ConfigError(f"{name}: {exc}") from exc

    return check


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
    _RUN_TIME["num_steps"],
    _RUN_TIME["seed"],
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
        "autostart",
        True,
        "Configure and activate at start-up (no lifecycle manager needed).",
        startup=True,
    ),
    ParamSpec(
        "realtime_priority",
        0,
        "SCHED_FIFO priority (1-98) of every thread of the node process, where the system "
        "permits it (CAP_SYS_NICE or an rtprio limit); 0: normal scheduling. Steadies command "
        "timing on a busy machine (read at start-up; see docs/policy_node.md).",
        startup=True,
        checks=(bounded(0, 98),),
    ),
    # --- timing / scheduling
    ParamSpec(
        "control_rate",
        10.0,
        "Command rate (Hz); chunk action k is due at capture time + k / control_rate.",
        checks=(bounded(0, 1000, low_open=True, unit="Hz"),),
    ),
    _RUN_TIME["replan_threshold"],
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
    _RUN_TIME["hold_mode"],
    _RUN_TIME["dry_run"],
    # --- inputs
    _RUN_TIME["input_timeout"],
    _RUN_TIME["max_future_stamp"],
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
        checks=(_topic(allow_empty=True),),
    ),
    _RUN_TIME["task.text"],
    # --- outputs
    ParamSpec(
        "action_names",
        [],
        "Names of the action dimensions (chunk joint_names, JointState names); "
        "empty: action_0..action_{D-1}.",
        kind="string[]",
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
        kind="double[]",
        checks=(limit_values("lower"),),
    ),
    ParamSpec(
        "limits.upper",
        [],
        "Per-dimension upper bounds of every command (empty: none; 1 value: all).",
        kind="double[]",
        checks=(limit_values("upper"),),
    ),
    ParamSpec(
        "limits.max_delta",
        [],
        "Largest change of a command per tick (empty: none; 1 value: all).",
        kind="double[]",
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
    ParamSpec("command.topic", "~/command", "Per-tick command topic.", checks=(_topic(),)),
    ParamSpec(
        "command.publish",
        True,
        "Publish per-tick commands (false: only chunks, for joint_trajectory_controller).",
    ),
    ParamSpec(
        "chunk.topic",
        "~/action_chunk",
        "Whole-chunk trajectory_msgs/JointTrajectory topic.",
        checks=(_topic(),),
    ),
    ParamSpec("chunk.publish", True, "Publish every chunk as a JointTrajectory."),
    ParamSpec(
        "status_topic",
        "~/status",
        "std_msgs/String JSON status (per chunk and periodic).",
        checks=(_topic(),),
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
    ParamSpec("topic", "camera/{name}/image_raw", "Image topic of the camera.", checks=(_topic(),)),
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
    ParamSpec("topic", "joint_states", "Topic of this state source.", checks=(_topic(),)),
    ParamSpec(
        "names",
        [],
        "joint_state: joint names taken BY NAME, in this order.",
        kind="string[]",
        checks=(names(),),
    ),
    ParamSpec(
        "field",
        "position",
        "joint_state: position, velocity or effort.",
        checks=(one_of(*ACTION_FIELDS),),
    ),
    ParamSpec("indices", [], "float*_array: elements to take (empty: all).", kind="int[]"),
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


class StateSource:
    """What every state-source entry (``cfg.state[i]``) can say about itself."""

    type: str
    names: list[str]
    indices: list[int]
    size: int
    format: str

    def dim(self) -> int:
        """Number of state values this source gives."""
        if self.type == "joint_state":
            return len(self.names)
        if self.type == "pose":
            return POSE_SIZES[self.format]
        return len(self.indices) if self.indices else self.size


TABLE = ParamTable(
    NODE_NAME,
    PARAMS,
    (
        EntryGroup("cameras", "cameras.names", tuple(CAMERA_PARAMS), templates=True),
        EntryGroup("state", "state.sources", tuple(STATE_PARAMS), base=StateSource),
    ),
    config_name="PolicyNodeConfig",
)
RUNTIME_PARAMS = TABLE.runtime
START_UP_PARAMS = tuple(p.name for p in PARAMS if p.startup)  # read once, at start-up
TOP_LEVEL = frozenset(p.name for p in PARAMS)  # not per camera / state source
spec_for = TABLE.spec_for
check_param = TABLE.check


def build_config(get: Callable[[str], Any]) -> Any:
    """Read and check every parameter through ``get(name) -> value or None``, with the
    cross-checks (limits, camera keys, state sizes); the typed configuration."""
    values = TABLE.values(get)
    check_limits(
        values["limits.lower"],
        values["limits.upper"],
        values["limits.max_delta"],
        len(values["action_names"]) or None,
    )
    cameras = [TABLE.entry("cameras", name, get) for name in values["cameras.names"]]
    keys = [c.key for c in cameras]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"cameras: two cameras feed the same policy key ({keys})")
    state = []
    for name in values["state.sources"]:
        src = TABLE.entry("state", name, get)
        if src.dim() <= 0:
            what = "names" if src.type == "joint_state" else "indices or size"
            raise ConfigError(f"state.{name}: gives no values (set state.{name}.{what})")
        state.append(src)
    return TABLE.config(values, {"cameras": cameras, "state": state})


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


def check_set_sizes(
    checked: dict[str, Any],
    current: Callable[[str], Any],
    loaded: tuple[str, int] | None = None,
) -> None:
    """Cross-checks of a ``set_parameters`` whose values (``checked``) passed the table: the
    limit list lengths, lower <= upper, and the action size of the loaded policy (``loaded``:
    its ``policy_path`` and action size) while ``policy_path`` stays. ``current(name)`` gives
    the value of a parameter not in the set (None when it is bad itself)."""
    names_ = ("limits.lower", "limits.upper", "limits.max_delta", "action_names")
    if not any(n in checked for n in names_):
        return

    def value(name: str) -> Any:
        return checked[name] if name in checked else current(name)

    lower, upper, max_delta, action_names = (value(n) for n in names_)
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


def check_against_policy(cfg: Any, image_keys: list[str], state_dim: int, action_dim: int) -> None:
    """The cameras, state sources and action names fit the loaded policy; camera keys are
    completed to ``observation.images.<key>`` in ``cfg``."""
    for cam in cfg.cameras:
        if not cam.key.startswith("observation.images."):
            cam.key = "observation.images." + cam.key
    libero = libero_hint(cfg.policy_path)
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
    names_ = cfg.action_names
    if names_ and len(names_) != action_dim:
        raise ConfigError(
            f"action_names: {len(names_)} names for {action_dim} action dimensions"
            + (f" ({libero})" if libero else "")
        )


def runtime_options(cfg: Any) -> RuntimeOptions:
    """How the runtime loads and runs the policy of ``cfg``."""
    return RuntimeOptions(
        device=cfg.device,
        dtype=cfg.dtype,
        engine=cfg.engine,
        compile_mode=cfg.compile_mode,
        compile_prefix=cfg.compile_prefix,
        seed=runtime_seed(cfg.seed),
        vlm_path=cfg.vlm_path or None,
        tokenizer_path=cfg.tokenizer_path or None,
        warmup=cfg.warmup,
    )


def load_runtime(cfg: Any, log: Callable[[str, str], None]) -> Any:
    """The policy runtime of ``cfg`` (torch is imported here), checked against ``cfg``
    (:func:`check_against_policy`). Raises ConfigError for an empty or unknown policy name
    and the loader's CheckpointError for a file, a missing folder or an unreachable Hub id."""
    if cfg.torch_threads:
        import torch

        torch.set_num_threads(cfg.torch_threads)
    from snapflow_ros.runtime import PolicyRuntime

    try:
        path = resolve_policy(cfg.policy_path)
    except CheckpointError:
        raise  # a file, a missing folder, an unreachable Hub id: the loader's own message
    except ValueError as exc:  # empty, or an unknown tiny: / libero: name
        raise ConfigError(f"policy_path: {exc}") from exc
    log("info", f"loading policy {path} on {cfg.device}")
    runtime = PolicyRuntime(path, runtime_options(cfg))
    check_against_policy(cfg, runtime.image_keys, runtime.state_dim, runtime.action_dim)
    return runtime


def libero_hint(policy_path_: str) -> str:
    """For a policy with LIBERO's cameras, state and actions (``libero:*``, ``tiny:libero*``):
    where its configuration is (the node's defaults and ``config/policy.yaml`` are for the
    synthetic robot); '' for any other policy."""
    if policy_path_ not in LIBERO_POLICIES:
        return ""
    return (
        f"{policy_path_} is a LIBERO policy: run it with config/libero_policy.yaml "
        "(installed in share/snapflow_ros/config), e.g. `ros2 launch snapflow_ros "
        f"libero_eval.launch.py policy_path:={policy_path_}` (the LIBERO bridge and the policy "
        "node with its config)"
    )


def not_applied_yet(names_: list[str], cfg: Any | None) -> str:
    """Why accepted parameters ``names_`` do not apply yet ('' when there are none): the next
    configure (``cfg``: the running configuration, whose values are named) or the next start."""
    parts = []
    at_start = [n for n in names_ if n in START_UP_PARAMS]
    at_configure = [n for n in names_ if n not in START_UP_PARAMS]
    if at_configure:
        text_ = f"{', '.join(at_configure)}: accepted, applies at the next configure"
        if cfg is not None:
            running = [f"{n} {lookup(cfg, n)!r}" for n in at_configure if n in TOP_LEVEL]
            text_ += " (cleanup, then configure); the node runs with its configured "
            text_ += f"{'values (' + ', '.join(running) + ')' if running else 'values'} "
            text_ += "until then"
        parts.append(text_)
    if at_start:
        parts.append(
            f"{', '.join(at_start)}: accepted, read only when the node starts "
            "(applies when the process is started again)"
        )
    return short("; ".join(parts), 500)
