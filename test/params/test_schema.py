"""The parameter schema (snapflow_ros/params/schema.py) without ROS: coercion, every validator's
message, tables (each entry declared once, look-up, checks) and the typed configuration."""

from __future__ import annotations

import array
import dataclasses
import math
import re
from pathlib import Path

import pytest

from snapflow_ros.params import choices
from snapflow_ros.params.schema import (
    ConfigError,
    EntryGroup,
    ParamSpec,
    ParamTable,
    attribute,
    bounded,
    choice,
    coerce,
    device,
    lookup,
    names,
    not_empty,
    one_of,
    policy_path,
    record_type,
    requires,
    shown,
    text,
    topic,
    type_name,
)
from test.fresh_interpreter import modules_loaded

PACKAGE = Path(__file__).resolve().parents[2] / "snapflow_ros"
COMMAND_TYPES_TEXT = r'"joint_state",\s*"float64_multi_array"'  # the command types, written out


# ------------------------------------------------------------------ coercion
@pytest.mark.parametrize(
    ("default", "kind", "value", "expected"),
    [
        (True, "", "TRUE", True),
        (True, "", "false", False),
        (0, "", 3.0, 3),
        (0.0, "", 2, 2.0),
        ("", "", "x", "x"),
        (["a"], "", ("b", "c"), ["b", "c"]),
        ([1.0], "", array.array("d", [1.5]), [1.5]),
        ([], "int[]", [4, 5.0], [4, 5]),
        ([], "double[]", None, []),
        (7, "", None, 7),
    ],
)
def test_values_are_converted_to_the_parameters_type(default, kind, value, expected):
    spec = ParamSpec("p", default, "", kind=kind)
    out = coerce("p", spec, value)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(
    ("default", "kind", "value", "message"),
    [
        (True, "", "yes", "p: expected true or false; got 'yes'"),
        (True, "", 1, "p: expected true or false; got 1"),
        (0, "", 1.5, "p: expected an integer; got 1.5"),
        (0, "", True, "p: expected an integer; got True"),
        (0.0, "", "fast", "p: expected a number; got 'fast'"),
        (0.0, "", math.nan, "p: expected a number; got NaN"),
        ("", "", 5, "p: expected a string; got 5"),
        ([], "double[]", "1,2", "p: expected a list (double[]); got '1,2'"),
        ([], "string[]", ["a", 2], "p[1]: expected a string; got 2"),
        ([], "int[]", [0.5], "p[0]: expected an integer; got 0.5"),
    ],
)
def test_values_of_another_type_are_refused_naming_parameter_and_type(
    default, kind, value, message
):
    with pytest.raises(ConfigError) as info:
        coerce("p", ParamSpec("p", default, "", kind=kind), value)
    assert str(info.value) == message


def test_a_type_must_be_told():
    assert type_name(ParamSpec("p", [], "", kind="int[]")) == "int[]"
    assert type_name(ParamSpec("p", ["a"], "")) == "string[]"
    assert type_name(ParamSpec("p", [0.5], "")) == "double[]"
    with pytest.raises(ValueError, match="p: the default .* give a kind"):
        ParamSpec("p", [], "")
    with pytest.raises(ValueError, match="unknown kind 'float'"):
        ParamSpec("p", 0.0, "", kind="float")


def test_long_values_are_cut_in_messages():
    assert shown("x") == "'x'"
    cut = shown("y" * 500)
    assert len(cut) == 60 and cut.endswith("...")


# ------------------------------------------------------------------ validators
def _message(check, value, name="p") -> str:
    with pytest.raises(ConfigError) as info:
        check(name, value)
    return str(info.value)


def test_each_validator_accepts_good_values():
    for check, value in [
        (one_of("a", "b"), "b"),
        (requires(lambda v: v > 0, "> 0"), 1),
        (choice("a", "b"), "a"),
        (bounded(0, 1), 1.0),
        (bounded(0, low_open=True, unit="s"), 1e9),
        (names(identifiers=True, min_items=1), ["front", "wrist_2"]),
        (topic(), "~/command"),
        (topic(allow_empty=True), ""),
        (topic(), "/robot/forward_position_controller/commands"),
        (text(3), "abc"),
        (not_empty, " x "),
        (policy_path, "tiny:smolvla"),
        (policy_path, ""),
        (device, "cuda:12"),
    ]:
        check("p", value)  # no error


@pytest.mark.parametrize(
    ("check", "value", "message"),
    [
        (one_of("a", "b"), "c", "p: must be one of a, b; got 'c'"),
        (requires(lambda v: v > 0, "> 0"), 0, "p: must be > 0, got 0"),
        (requires(lambda v: v > 0, "> 0 (why)", None), 0, "p: must be > 0 (why)"),
        (choice("a", "b"), "c", "p: must be one of a, b, got 'c'"),
        (bounded(0, 1000, low_open=True, unit="Hz"), 0.0, "p: must be > 0 and <= 1000 Hz; got 0.0"),
        (bounded(0, 1000, low_open=True, unit="Hz"), math.inf, "p: must be > 0 and <= 1000 Hz"),
        (bounded(-1), -2, "p: must be >= -1; got -2"),
        (bounded(unit="s"), math.inf, "p: must be  s; got inf"),
        (names(min_items=1), [], "p: at least 1 name(s) needed; got []"),
        (names(), ["a", " b"], "p: names must be non-empty, without spaces at the ends"),
        (names(identifiers=True), ["1st"], "p: '1st' must start with a letter and contain only"),
        (names(), ["a", "b", "a"], "p: duplicate names ['a']"),
        (topic(), "", "p: a topic name is needed; got ''"),
        (topic(), "a//b", "p: 'a//b' is not a valid topic name ("),
        (text(3), "abcd", "p: 4 characters, at most 3 are accepted"),
        (not_empty, "  ", "p: must not be empty"),
        (policy_path, "tiny:pi0", "p: unknown tiny policy 'tiny:pi0' (tiny:smolvla"),
        (policy_path, " /ckpt", "p: ' /ckpt' has spaces at the ends"),
        (device, "gpu", "p: must be auto, cpu, cuda or cuda:N; got 'gpu'"),
        (device, "cuda:", "p: must be auto, cpu, cuda or cuda:N; got 'cuda:'"),
    ],
)
def test_each_validator_names_the_parameter_and_what_it_accepts(check, value, message):
    assert _message(check, value).startswith(message)


# ------------------------------------------------------------------ tables
def _table(**kwargs) -> ParamTable:
    return ParamTable(
        "demo",
        [
            ParamSpec("rate", 10.0, "", checks=(bounded(0, low_open=True),)),
            ParamSpec("blend.mode", "linear", "", runtime=True, checks=(one_of("none", "linear"),)),
            ParamSpec("blend.alpha", 0.5, ""),
            ParamSpec("items.names", ["a"], "", checks=(names(identifiers=True),)),
        ],
        [
            EntryGroup(
                "items",
                "items.names",
                (
                    ParamSpec("topic", "in/{name}", "", checks=(topic(),)),
                    ParamSpec("ids", [], "", kind="int[]"),
                ),
                templates=True,
            )
        ],
        config_name="Demo",
        **kwargs,
    )


def test_every_entry_is_declared_once():
    spec = ParamSpec("rate", 1.0, "")
    with pytest.raises(ValueError, match=r"declared twice: \['rate'\]"):
        ParamTable("demo", [spec, spec])
    group = EntryGroup("items", "items.names", (ParamSpec("x", 0, ""), ParamSpec("x", 1, "")))
    with pytest.raises(ValueError, match=r"declared twice: \['items.<name>.x'\]"):
        ParamTable("demo", [ParamSpec("items.names", ["a"], "")], [group])
    with pytest.raises(ValueError, match="needs the parameter items.names"):
        ParamTable("demo", [spec], [EntryGroup("items", "items.names", ())])


def test_lookup_and_checks_of_top_level_and_entry_parameters():
    table = _table()
    assert table.runtime == {"blend.mode"}
    assert table.spec_for("items.b.topic")[1] == "b"
    assert table.spec_for("items.b.nope") is None and table.spec_for("use_sim_time") is None
    assert table.check("rate", 20) == 20.0
    assert table.check("items.x.topic", "cam/{name}") == "cam/{name}"  # checked filled in
    with pytest.raises(ConfigError, match="^rate: must be > 0; got 0.0$"):
        table.check("rate", 0)
    with pytest.raises(ConfigError, match="^items.x.topic: 'cam/{bad}' is not a valid topic"):
        table.check("items.x.topic", "cam/{bad}")
    with pytest.raises(ConfigError, match="^rates: not a parameter of demo$"):
        table.check("rates", 1.0)


def test_a_related_check_reads_the_other_parameters():
    def fits(name, value, values):
        if value > values("high"):
            raise ConfigError(f"{name}: above high ({values('high')})")

    table = ParamTable(
        "demo", [ParamSpec("high", 5, ""), ParamSpec("low", 0, "", related=fits)], coerce=False
    )
    table.check("low", 4, {"high": 5}.get)
    with pytest.raises(ConfigError, match=r"low: above high \(3\)"):
        table.check("low", 4, {"high": 3}.get)
    assert table.check("low", None) is None  # not set: nothing to check without coercion
    assert table.check("low", "text") == "text"  # typed by rclpy, not here


def test_the_configuration_is_typed_and_nested():
    table = _table()
    values = {"items.names": ["a", "b"], "items.b.ids": [1, 2.0], "blend.alpha": 1}
    cfg = table.build(values.get)
    assert type(cfg).__name__ == "Demo" and cfg.rate == 10.0
    assert (cfg.blend.mode, cfg.blend.alpha) == ("linear", 1.0)
    assert type(cfg.blend.alpha) is float
    assert [item.name for item in cfg.items] == ["a", "b"] and len(cfg.items) == 2
    assert cfg.items[0].topic == "in/a"  # the template filled in
    assert cfg.items[1].ids == [1, 2] and cfg.items.names == ["a", "b"]
    assert lookup(cfg, "blend.mode") == "linear"
    fields = {f.name: f.type for f in dataclasses.fields(cfg.blend)}
    assert fields == {"mode": str, "alpha": float}
    with pytest.raises(ConfigError, match="items.b.topic: a topic name is needed"):
        table.build({**values, "items.b.topic": ""}.get)


def test_a_name_that_is_a_parameter_and_a_section_makes_no_nested_configuration():
    table = ParamTable("demo", [ParamSpec("render", True, ""), ParamSpec("render.age", 0.5, "")])
    assert table.check("render.age", 1) == 1.0  # the table itself works
    with pytest.raises(ValueError, match="render is a parameter and a section"):
        table.build(lambda name: None)


def test_a_record_is_built_from_its_parameters():
    specs = (ParamSpec("task.text", "", ""), ParamSpec("limits", [], "", kind="double[]"))
    record = record_type("Record", specs, doc="A record.")
    assert [f.name for f in dataclasses.fields(record)] == ["task_text", "limits"]
    one, two = record(), record()
    assert one.task_text == "" and one.limits == [] and one.limits is not two.limits
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.task_text = "x"
    assert record.__doc__ == "A record." and attribute("a.b.c") == "a_b_c"


# ------------------------------------------------------------------ defined once, imports nothing
def test_the_device_pattern_and_the_command_types_are_defined_once():
    sources = {p: p.read_text() for p in PACKAGE.rglob("*.py")}
    device_patterns = [p for p, s in sources.items() if re.search(r"cuda\(:\[0-9\]", s)]
    command_types = [p for p, s in sources.items() if re.search(COMMAND_TYPES_TEXT, s)]
    assert device_patterns == [PACKAGE / "params" / "choices.py"]
    assert command_types == [PACKAGE / "params" / "choices.py"]
    assert choices.DEVICE_PATTERN.fullmatch("cuda:3") and not choices.DEVICE_PATTERN.fullmatch(
        "mps"
    )


def test_importing_the_schema_and_the_tables_loads_no_torch_opencv_or_ros():
    setup = (
        "import snapflow_ros.params.schema, snapflow_ros.params.policy_node\n"
        "import snapflow_ros.params.libero_bridge, snapflow_ros.launch_args"
    )
    heavy = ("torch", "cv2", "rclpy", "lerobot", "mujoco", "robosuite", "sensor_msgs")
    assert modules_loaded(setup, heavy) == []
