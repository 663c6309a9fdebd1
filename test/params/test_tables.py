"""The two node tables declared with the schema, without ROS: the policy node's (its run-time
rows are the controller's Settings) and the LIBERO bridge's (every check's message)."""

from __future__ import annotations

import dataclasses

import pytest

from snapflow_ros.control import PolicyController, Settings
from snapflow_ros.control.settings import SETTING_OF, SETTINGS_PARAMS, settings_from
from snapflow_ros.params import libero_bridge as bridge
from snapflow_ros.params import policy_node as policy
from snapflow_ros.params.schema import TYPES, ConfigError, lookup, type_name

from ..control.fakes import Recorder


# ------------------------------------------------------------------ the policy node
def test_settings_are_built_from_the_tables_run_time_rows():
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    assert list(fields) == [p.name.replace(".", "_") for p in SETTINGS_PARAMS]
    for spec in SETTINGS_PARAMS:
        field = fields[SETTING_OF[spec.name]]
        assert field.default == spec.default and field.type is TYPES[type_name(spec)]
    # the same rows, in the table (declared once: not copies)
    runtime_rows = [p for p in policy.PARAMS if p.runtime]
    assert len(runtime_rows) == len(SETTINGS_PARAMS)
    assert all(any(p is s for s in SETTINGS_PARAMS) for p in runtime_rows)
    assert set(SETTING_OF) == policy.RUNTIME_PARAMS
    assert Settings().max_future_stamp == 0.25 and Settings(num_steps=3).steps == 3
    assert Settings().steps is None
    assert PolicyController(lambda: 0, Recorder()).settings == Settings()


def test_settings_of_a_configuration():
    cfg = policy.build_config(
        {"state.joints.names": ["j"], "task.text": "pick", "num_steps": 2}.get
    )
    settings = settings_from(lambda name: lookup(cfg, name))
    assert (settings.task_text, settings.num_steps, settings.hold_mode) == ("pick", 2, "none")


def test_the_policy_tables_names_are_declared_once_and_typed():
    names = [p.name for p in policy.PARAMS]
    assert len(names) == len(set(names)) == 44
    assert policy.START_UP_PARAMS == ("autostart", "realtime_priority")
    assert type_name(policy.spec_for("limits.lower")[0]) == "double[]"
    assert type_name(policy.spec_for("state.arm.indices")[0]) == "int[]"
    assert type_name(policy.spec_for("state.arm.names")[0]) == "string[]"
    assert type_name(policy.spec_for("action_names")[0]) == "string[]"


def test_the_policy_configuration_is_typed_and_nested():
    values = {
        "cameras.names": ["scene"],
        "cameras.scene.compressed": True,
        "state.sources": ["arm", "tool"],
        "state.arm.names": ["a", "b"],
        "state.tool.type": "pose",
        "state.tool.format": "xyz",
        "blend.alpha": 1,
        "limits.upper": [1, 2],
    }
    cfg = policy.build_config(values.get)
    assert (cfg.blend.mode, cfg.blend.alpha) == ("linear", 1.0)
    assert cfg.limits.upper == [1.0, 2.0] and cfg.limits.lower == []
    assert (cfg.command.type, cfg.command.topic, cfg.chunk.publish) == (
        "joint_state",
        "~/command",
        True,
    )
    assert cfg.cameras.names == ["scene"] and cfg.cameras.max_pixels == 50_000_000
    (cam,) = cfg.cameras
    assert (cam.name, cam.topic, cam.key, cam.compressed) == (
        "scene",
        "camera/scene/image_raw",
        "observation.images.scene",
        True,
    )
    assert [(s.name, s.dim()) for s in cfg.state] == [("arm", 2), ("tool", 3)]
    assert cfg.state[1].field == "position" and cfg.task.topic == "task"


def test_a_set_that_applies_later_says_when():
    cfg = policy.build_config({"state.joints.names": ["j"]}.get)
    assert policy.not_applied_yet([], cfg) == ""
    assert policy.not_applied_yet(["control_rate"], None) == (
        "control_rate: accepted, applies at the next configure"
    )
    assert policy.not_applied_yet(["cameras.front.topic", "control_rate"], cfg) == (
        "cameras.front.topic, control_rate: accepted, applies at the next configure (cleanup, "
        "then configure); the node runs with its configured values (control_rate 10.0) until then"
    )
    assert policy.not_applied_yet(["autostart"], cfg) == (
        "autostart: accepted, read only when the node starts (applies when the process is "
        "started again)"
    )


def test_runtime_options_of_a_configuration():
    cfg = policy.build_config(
        {"state.joints.names": ["j"], "seed": -1, "vlm_path": "", "engine": "fast"}.get
    )
    options = policy.runtime_options(cfg)
    assert (options.seed, options.vlm_path, options.engine, options.device) == (
        None,
        None,
        "fast",
        "auto",
    )


# ------------------------------------------------------------------ the LIBERO bridge
def test_the_bridge_table_is_declared_once_with_static_types():
    names = [p.name for p in bridge.PARAMS]
    assert len(names) == len(set(names)) == 39
    assert not bridge.TABLE.coerce
    assert type_name(bridge.TABLE.spec_for("command.names")[0]) == "string[]"
    assert bridge.BRIDGE_COMMAND_TYPES == ("joint_state", "float64_multi_array")
    assert {
        "suite",
        "task_index",
        "init_state_index",
        "episode_length",
        "mode",
        "auto_next",
        "policy_noise_seed",
        "command.out_of_range",
        "realtime.missing",
        "realtime.command_timeout",
        "realtime.wait_first_command",
        "lockstep.kick_period",
        "lockstep.kick_max",
        "lockstep.clock_delay",
        "render.on_demand",
        "render.max_age",
    } == bridge.RUNTIME


DEFAULTS = {p.name: p.default for p in bridge.PARAMS}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("mode", "fast", "mode: must be one of lockstep, realtime, got 'fast'"),
        ("command.type", "joint_trajectory", "command.type: must be one of joint_state, "),
        ("gl", "glx", "gl: must be one of auto, egl, osmesa, got 'glx'"),
        ("suite", "libero_99", "unknown LIBERO suite 'libero_99' (known: libero_spatial"),
        ("task_index", 12, "libero_spatial has tasks 0..9, got task index 12"),
        ("init_state_index", 50, "init state index must be in 0..49, got 50"),
        ("video.size", 8, "video.size: must be 0 or in 16..2048, got 8"),
        ("video.cameras", ["top"], "video.cameras: one or both of agentview, wrist, got ['top']"),
        ("video.cameras", ["wrist", "wrist"], "video.cameras: one or both of agentview, wrist"),
        ("image_height", 4000, "image_height: must be in 16..2048, got 4000"),
        ("settle_steps", -1, "settle_steps: must be >= 0, got -1"),
        ("lockstep.kick_period", 0.0, "lockstep.kick_period: must be > 0, got 0.0"),
        ("lockstep.clock_delay", 2.0, "lockstep.clock_delay: must be in [0, 1] s, got 2.0"),
        ("lockstep.stamp_lead", 0.006, "lockstep.stamp_lead: must be in [0, 0.005] s"),
        ("clock.start", 0.0, "clock.start: must be > 0 (time 0 means 'unset' in ROS)"),
    ],
)
def test_each_bridge_check_says_what_is_accepted(name, value, message):
    with pytest.raises(ValueError) as info:
        bridge.TABLE.check(name, value, DEFAULTS.get)
    assert str(info.value).startswith(message), str(info.value)
    good = DEFAULTS[name]
    assert bridge.TABLE.check(name, good, DEFAULTS.get) == good


def test_the_task_is_checked_against_the_suite_the_set_names():
    values = {**DEFAULTS, "suite": "libero_10"}
    assert bridge.TABLE.check("task_index", 9, values.get) == 9
    with pytest.raises(ValueError, match="libero_10 has tasks 0..9, got task index 10"):
        bridge.TABLE.check("task_index", 10, values.get)


def test_privileged_state_needs_a_task_with_a_scripted_expert():
    current = {**DEFAULTS, "privileged_state": True}.get
    bridge.check_privileged({}, current)  # libero_spatial task 0: the bowl
    with pytest.raises(ValueError, match="^privileged_state: no scripted expert"):
        bridge.check_privileged({"task_index": 5}, current)
    bridge.check_privileged({"task_index": 5}, DEFAULTS.get)  # off: any task


def test_the_simulation_of_the_parameters():
    sim = bridge.sim_config({**DEFAULTS, "video.size": 64, "task_index": 3}.get)
    assert (sim.suite, sim.task_index, sim.video_size, sim.video_cameras) == (
        "libero_spatial",
        3,
        64,
        ("agentview",),
    )
    assert (sim.image_height, sim.max_steps, sim.gl) == (256, 0, "auto")


def test_a_bad_value_is_a_config_error_or_the_suites_own():
    with pytest.raises(ConfigError):
        bridge.TABLE.check("mode", "x")
    with pytest.raises(ConfigError, match="not a parameter of libero_bridge"):
        bridge.TABLE.check("modes", "x")
