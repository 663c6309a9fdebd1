"""The policy node's parameter table (params/policy_node.py): every validator branch, in-process.

No ROS graph is involved: these are the checks the node runs on every set, at start-up and at
configure, so each bad value must give a ConfigError that names the parameter and says what
is accepted, and each good one must pass unchanged.
"""

from __future__ import annotations

import array
import math

import pytest

from snapflow_ros.control.input_slots import task_preview
from snapflow_ros.params.policy_node import (
    MAX_TASK_CHARS,
    PARAMS,
    ConfigError,
    build_config,
    check_against_policy,
    check_limits,
    check_param,
    check_set_sizes,
    spec_for,
)
from test.fresh_interpreter import modules_loaded

NAN, INF = math.nan, math.inf

BAD = [
    # name, value, text the message must contain
    # types
    ("num_steps", "one", "expected an integer"),
    ("num_steps", 1.5, "expected an integer"),
    ("num_steps", True, "expected an integer"),
    ("control_rate", "fast", "expected a number"),
    ("control_rate", NAN, "NaN"),
    ("dry_run", "maybe", "expected true or false"),
    ("dry_run", 1, "expected true or false"),
    ("blend.mode", 3, "expected a string"),
    ("limits.upper", "x", "expected a list"),
    ("limits.upper", ["x"], "limits.upper[0]: expected a number"),
    ("action_names", [1, 2], "action_names[0]: expected a string"),
    # ranges (the review's values first)
    ("control_rate", 0.0, "> 0 and <= 1000 Hz"),
    ("control_rate", -5.0, "> 0 and <= 1000 Hz"),
    ("control_rate", INF, "> 0 and <= 1000 Hz"),
    ("control_rate", 5000.0, "<= 1000"),
    ("stats_window", 0, ">= 10"),
    ("status_rate", 0.0, "> 0"),
    ("input_timeout", -1.0, "> 0"),
    ("input_timeout", INF, "> 0"),
    ("max_future_stamp", 0.0, "> 0 and <= 2 s"),
    ("max_future_stamp", 10.0, "<= 2 s"),
    ("replan_threshold", INF, "must be"),
    ("num_steps", -1, ">= 0"),
    ("seed", -2, ">= -1"),
    ("warmup", -1, ">= 0"),
    ("torch_threads", -1, ">= 0"),
    ("blend.alpha", 0.0, "> 0 and <= 1"),
    ("blend.alpha", 1.5, "<= 1"),
    ("blend.max_steps", -1, ">= 0"),
    # enums (typos)
    ("blend.mode", "bogus", "none, linear, exponential"),
    ("blend.mode", "Linear", "none, linear, exponential"),
    ("hold_mode", "hold", "none, last, zero"),
    ("observation_stamp", "latest", "oldest, newest"),
    ("qos", "best_effort", "sensor_data, reliable"),
    ("action_field", "positions", "position, velocity, effort"),
    ("command.type", "JointState", "joint_state, float64_multi_array, joint_trajectory"),
    ("dtype", "fp16", "float32, bfloat16"),
    ("engine", "turbo", "eager, fast, compiled"),
    ("compile_mode", "max", "default"),
    ("device", "cdua", "auto, cpu, cuda or cuda:N"),
    ("device", "cuda:x", "cuda:N"),
    ("policy_path", "tiny:pi0", "tiny:smolvla, tiny:pi05, tiny:libero"),
    ("policy_path", " /ckpt", "spaces"),
    # names
    ("cameras.names", [], "at least 1"),
    ("cameras.names", ["front", "front"], "duplicate names"),
    ("cameras.names", ["front cam"], "letters, digits and _"),
    ("cameras.names", ["1st"], "must start with a letter"),
    ("state.sources", [""], "non-empty"),
    ("action_names", ["j1", "j1"], "duplicate"),
    ("action_names", [" j1"], "spaces"),
    # limits
    ("limits.lower", [NAN], "NaN"),
    ("limits.lower", [INF], "inf is not a limit"),
    ("limits.upper", [0.0, -INF], "inf is not a limit"),
    ("limits.max_delta", [0.0], "max_delta must be > 0"),
    ("limits.max_delta", [-0.1, 0.2], "max_delta must be > 0"),
    # topics
    ("command.topic", "", "a topic name is needed"),
    ("command.topic", 5, "expected a string"),
    ("chunk.topic", "a//b", "not a valid topic name"),
    ("status_topic", "1abc", "not a valid topic name"),
    ("task.topic", "my task", "not a valid topic name"),
    ("task.topic", "ns/", "not a valid topic name"),
    # task text
    ("task.text", "x" * (MAX_TASK_CHARS + 1), f"at most {MAX_TASK_CHARS}"),
    # per camera / per state source
    ("cameras.front.topic", 5, "expected a string"),
    ("cameras.front.topic", "", "a topic name is needed"),
    ("cameras.front.topic", "cam/{bad}/image", "not a valid topic name"),
    ("cameras.front.key", "  ", "must not be empty"),
    ("cameras.front.compressed", "yes", "expected true or false"),
    ("state.joints.type", "jointstate", "joint_state, float64_array, float32_array, pose"),
    ("state.joints.field", "pos", "position, velocity, effort"),
    ("state.joints.format", "quat", "xyz_quat, xyz_axis_angle, xyz"),
    ("state.joints.names", ["joint_1", "joint_1"], "duplicate names"),
    ("state.joints.indices", ["0"], "expected an integer"),
    ("state.joints.size", -1, ">= 0"),
    ("state.joints.topic", "joint states", "not a valid topic name"),
    # image size limit
    ("cameras.max_pixels", 0, ">= 1"),
    ("cameras.max_pixels", 50_000_001, "<= 5e+07"),
    ("cameras.max_pixels", 1.5, "expected an integer"),
    # not ours
    ("num_step", 1, "not a parameter of policy_node"),
    ("cameras.front.topics", "x", "not a parameter of policy_node"),
]


@pytest.mark.parametrize(("name", "value", "text"), BAD, ids=[f"{b[0]}={b[1]!r}"[:50] for b in BAD])
def test_bad_values_are_refused_naming_the_parameter(name, value, text):
    with pytest.raises(ConfigError) as info:
        check_param(name, value)
    message = str(info.value)
    assert message.startswith(name.split("[")[0]), message
    assert text in message, message
    assert len(message) < 300, "messages stay short whatever the value"


GOOD = [
    ("num_steps", 0, 0),
    ("num_steps", 3.0, 3),  # an integral double for an int
    ("control_rate", 20, 20.0),  # an int for a double (-p control_rate:=20)
    ("control_rate", 1000.0, 1000.0),
    ("dry_run", "true", True),
    ("replan_threshold", -1.0, -1.0),
    ("max_future_stamp", 2.0, 2.0),
    ("seed", -1, -1),
    ("device", "cuda:1", "cuda:1"),
    ("policy_path", "", ""),  # not set yet (config/libero_policy.yaml); configure says so
    ("policy_path", "tiny:", "tiny:"),
    ("policy_path", "tiny:libero", "tiny:libero"),  # one resolver: libero_eval's names too
    ("limits.lower", array.array("d", [-1.0, -2.0]), [-1.0, -2.0]),  # from a service call
    ("limits.lower", [-INF, 0.0], [-INF, 0.0]),  # no bound on dimension 0
    ("limits.upper", [], []),
    ("task.topic", "", ""),  # disables the topic
    ("task.text", "x" * MAX_TASK_CHARS, "x" * MAX_TASK_CHARS),
    ("command.topic", "~/command", "~/command"),
    ("command.topic", "/robot/forward_position_controller/commands", None),
    ("cameras.front.topic", "camera/{name}/image_raw", "camera/{name}/image_raw"),
    ("state.arm.indices", [0, -1], [0, -1]),
    ("cameras.names", None, ["front", "wrist"]),  # not set: the default
    ("cameras.max_pixels", None, 50_000_000),
    ("cameras.max_pixels", 640 * 480, 640 * 480),
]


@pytest.mark.parametrize(("name", "value", "expected"), GOOD)
def test_good_values_pass_in_their_type(name, value, expected):
    out = check_param(name, value)
    assert out == (value if expected is None else expected)
    assert type(out) is type(value if expected is None else expected)


def test_every_parameter_default_passes_its_own_checks():
    for spec in PARAMS:
        assert check_param(spec.name, spec.default) == spec.default


def test_spec_lookup_covers_per_camera_and_per_source_names():
    assert spec_for("cameras.names")[0].name == "cameras.names"
    assert spec_for("cameras.scene.compressed") == (spec_for("cameras.x.compressed")[0], "scene")
    assert spec_for("state.gripper.indices")[1] == "gripper"
    assert spec_for("use_sim_time") is None and spec_for("qos_overrides./x.depth") is None


@pytest.mark.parametrize(
    ("lists", "dim", "text"),
    [
        (([1.0], [0.0], []), None, "lower > upper"),
        (([0.0, 0.0], [1.0, 1.0, 1.0], []), None, "limits.lower has 2, limits.upper has 3"),
        (([0.0, 0.0], [], []), 7, "7 (the action size)"),
        (([], [], [0.1, 0.1, 0.1]), 2, "the action size"),
    ],
)
def test_limit_lists_are_checked_against_each_other(lists, dim, text):
    with pytest.raises(ConfigError, match=text.replace("(", r"\(").replace(")", r"\)")):
        check_limits(*lists, dim)


def test_consistent_limits_pass():
    check_limits([-1.0], [1.0, 2.0], [0.5, 0.5], 2)
    check_limits([], [], [], 7)


def _config(**overrides):
    values = {
        "policy_path": "tiny:smolvla",
        "state.joints.names": ["j1", "j2"],
        **overrides,
    }
    return build_config(lambda name: values.get(name))


def test_build_config_reports_the_first_bad_value():
    with pytest.raises(ConfigError, match="num_steps: expected an integer"):
        _config(num_steps="one")
    with pytest.raises(ConfigError, match="cameras.wrist.topic"):
        _config(**{"cameras.wrist.topic": 3})


@pytest.mark.parametrize(
    ("overrides", "text"),
    [
        ({"state.joints.names": []}, "state.joints: gives no values"),
        ({"state.joints.type": "float64_array"}, "set state.joints.indices or size"),
        ({"cameras.wrist.key": "observation.images.front"}, "same policy key"),
        ({"action_names": ["a", "b"], "limits.lower": [0.0] * 3}, "2 (the action size)"),
        ({"limits.lower": [1.0], "limits.upper": [0.0]}, "lower > upper"),
    ],
)
def test_build_config_cross_checks(overrides, text):
    with pytest.raises(ConfigError, match=text.replace("(", r"\(").replace(")", r"\)")):
        _config(**overrides)


def test_build_config_fills_camera_templates():
    cfg = _config(**{"cameras.names": ["scene"]})
    assert cfg.cameras[0].topic == "camera/scene/image_raw"
    assert cfg.cameras[0].key == "observation.images.scene"
    assert cfg.max_future_stamp == 0.25


def test_task_preview_never_echoes_a_long_task():
    assert task_preview("pick up the cube") == "pick up the cube"
    text = task_preview("y" * 100_000)
    assert len(text) < 120 and "100000 characters" in text


def test_building_a_configuration_imports_no_torch():
    setup = (
        "from snapflow_ros.params.policy_node import build_config\n"
        "build_config(lambda name: ['j1'] if name == 'state.joints.names' else None)"
    )
    assert modules_loaded(setup, ("torch", "lerobot")) == []


# --------------------------------------------------------------------- against the loaded policy
def _current(values: dict):
    return lambda name: check_param(name, values.get(name))


def test_a_set_is_checked_against_the_loaded_policys_action_size():
    loaded = ("tiny:smolvla", 7)
    check_set_sizes({"limits.lower": [0.0] * 7}, _current({}), loaded)
    with pytest.raises(ConfigError, match="limits: limits.lower has 3 values; each needs 0, 1"):
        check_set_sizes({"limits.lower": [0.0] * 3}, _current({}), loaded)
    with pytest.raises(ConfigError, match="action_names: 2 names for the 7 action dimensions"):
        check_set_sizes({"action_names": ["a", "b"]}, _current({}), loaded)
    # a new policy_path: the next configure judges the size against the new policy
    check_set_sizes({"action_names": ["a", "b"]}, _current({"policy_path": "/other"}), loaded)
    with pytest.raises(ConfigError, match="lower > upper"):
        check_set_sizes({"limits.lower": [2.0]}, _current({"limits.upper": [1.0]}), None)
    check_set_sizes({"num_steps": 3}, _current({}), loaded)  # nothing to cross-check


def test_cameras_state_and_actions_must_fit_the_policy():
    cfg = _config(**{"cameras.front.key": "front"})
    keys = ["observation.images.front", "observation.images.wrist"]
    check_against_policy(cfg, keys, 2, 7)
    assert cfg.cameras[0].key == "observation.images.front"  # completed
    with pytest.raises(ConfigError, match=r"missing \['observation.images.top'\]"):
        check_against_policy(_config(), [*keys, "observation.images.top"], 2, 7)
    with pytest.raises(ConfigError, match="state: the sources give 2 values .* expects 6"):
        check_against_policy(_config(), keys, 6, 7)
    named = _config(action_names=[f"a{i}" for i in range(7)])
    with pytest.raises(ConfigError, match="action_names: 7 names for 6 action dimensions"):
        check_against_policy(named, keys, 2, 6)


@pytest.mark.parametrize("policy", ["libero:snapflow", "libero:teacher", "tiny:libero"])
def test_a_libero_policy_with_another_robots_config_names_the_libero_config(policy):
    """``ros2 launch snapflow_ros policy.launch.py policy_path:=libero:snapflow`` (offered by
    --show-args) cannot configure with the default config: the reason used to say only
    "set cameras.<name>.key"."""
    keys = ["observation.images.image", "observation.images.image2"]
    with pytest.raises(ConfigError) as info:
        check_against_policy(_config(policy_path=policy), keys, 2, 7)
    message = str(info.value)
    assert "cameras: the policy expects image keys" in message
    assert "config/libero_policy.yaml" in message and "libero_eval.launch.py" in message
    assert f"policy_path:={policy}" in message and "cameras.<name>.key" not in message
    with pytest.raises(ConfigError, match="config/libero_policy.yaml"):  # cameras fit, state not
        check_against_policy(
            _config(policy_path=policy),
            ["observation.images.front", "observation.images.wrist"],
            8,
            7,
        )
    # any other policy: the hint stays the camera key
    with pytest.raises(ConfigError, match=r"\(set cameras.<name>.key\)"):
        check_against_policy(_config(), keys, 2, 7)
