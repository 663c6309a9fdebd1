"""launch/*.launch.py, their argument parser and config/*.yaml, checked against setup.py and
the node.

``launch`` / ``launch_ros`` cannot be installed from PyPI (PyPI's ``launch`` is an unrelated
package), so the launch files are evaluated here against small recording stand-ins of the
launch_ros API they use; the real ``ros2 launch``-style tests run only where launch_ros is
importable (a ROS 2 install) and are skipped otherwise. The argument parser
(``snapflow_ros.launch_args``) is pure Python and tested table by table.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import re
import signal
import subprocess
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from snapflow_ros.launch_args import (
    FALSE_WORDS,
    SIGINT_GRACE_S,
    TRUE_WORDS,
    LaunchArg,
    LaunchArgumentError,
    check_params_file,
    parse_args,
    parse_bool,
    parse_choice,
    parse_device,
    parse_float,
    parse_int,
    parse_log_level,
    parse_namespace,
)
from snapflow_ros.params.policy_node import (
    CAMERA_PARAMS,
    NODE_NAME,
    PARAMS,
    STATE_PARAMS,
    build_config,
)
from test.config_files import flat_parameters

from .harness import Harness, domain_id, ros_env, wait_for

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / "launch" / "policy.launch.py"
EVAL_LAUNCH_FILE = REPO / "launch" / "libero_eval.launch.py"
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
CONFIGS = sorted((REPO / "config").glob("*.yaml"))
# parameter files of the policy node (other nodes' files in config/ are not checked here)
NODE_CONFIGS = [p for p in CONFIGS if p.read_text().find(f"/**/{NODE_NAME}:") >= 0]
ROS_PARAMS = {"use_sim_time"}  # declared by rclpy itself


# ------------------------------------------------------------------ stand-ins for launch_ros
class _Recorded:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context: Any) -> str:
        return context.launch_configurations[self.name]


class _LaunchDescription:
    def __init__(self, entities: list[Any]) -> None:
        self.entities = entities


def _fake_launch_modules() -> dict[str, types.ModuleType]:
    mods = {
        name: types.ModuleType(name)
        for name in (
            "launch",
            "launch.actions",
            "launch.substitutions",
            "launch_ros",
            "launch_ros.actions",
        )
    }
    mods["launch"].LaunchDescription = _LaunchDescription
    mods["launch.actions"].DeclareLaunchArgument = type("DeclareLaunchArgument", (_Recorded,), {})
    mods["launch.actions"].OpaqueFunction = type("OpaqueFunction", (_Recorded,), {})
    mods["launch.substitutions"].LaunchConfiguration = _LaunchConfiguration
    mods["launch_ros.actions"].LifecycleNode = type("LifecycleNode", (_Recorded,), {})
    mods["launch_ros.actions"].Node = type("Node", (_Recorded,), {})
    mods["launch"].actions = mods["launch.actions"]
    mods["launch"].substitutions = mods["launch.substitutions"]
    mods["launch_ros"].actions = mods["launch_ros.actions"]
    return mods


EXECUTABLES = ("policy_node", "synthetic_source", "libero_bridge")


def fake_prefix(root: Path) -> Path:
    """An install prefix laid out like colcon's (ament index marker, share/, lib/<pkg>/), with
    the working tree's launch files and configs and the venv's executables."""
    index = root / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / "snapflow_ros").write_text("")
    share = root / "share" / "snapflow_ros"
    (share / "config").mkdir(parents=True)
    (share / "launch").mkdir()
    for cfg in CONFIGS:
        (share / "config" / cfg.name).write_text(cfg.read_text())
    for launch_file in LAUNCH_FILES:
        (share / "launch" / launch_file.name).write_text(launch_file.read_text())
    (share / "package.xml").write_text((REPO / "package.xml").read_text())
    lib = root / "lib" / "snapflow_ros"
    lib.mkdir(parents=True)
    for exe in EXECUTABLES:
        (lib / exe).symlink_to(Path(sys.executable).parent / exe)
    return root


@dataclass
class Evaluated:
    """A launch file evaluated against the stand-ins."""

    module: types.ModuleType
    declared: dict[str, str]  # argument -> default text
    descriptions: dict[str, str]
    prefix: Path
    function: Callable[[Any], list[Any]]  # the OpaqueFunction's function

    def setup(self, **args: str) -> list[Any]:
        """Run its OpaqueFunction with ``args`` over the declared defaults (as launch does)."""
        context = types.SimpleNamespace(launch_configurations={**self.declared, **args})
        return self.function(context)


def evaluate_launch_file(path: Path, monkeypatch: pytest.MonkeyPatch, tmp: Path) -> Evaluated:
    """Import ``path`` with the stand-ins and a fake install prefix; build its description."""
    for name, mod in _fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, mod)
    stem = path.name.split(".")[0]
    prefix = fake_prefix(tmp / stem / "install")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    spec = importlib.util.spec_from_file_location(f"under_test_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    args = [e for e in description.entities if type(e).__name__ == "DeclareLaunchArgument"]
    opaque = [e for e in description.entities if type(e).__name__ == "OpaqueFunction"]
    assert len(opaque) == 1 and len(description.entities) == len(args) + 1
    return Evaluated(
        module,
        {e.args[0]: e.kwargs["default_value"] for e in args},
        {e.args[0]: e.kwargs["description"] for e in args},
        prefix,
        opaque[0].kwargs["function"],
    )


@pytest.fixture
def policy_launch(monkeypatch, tmp_path) -> Evaluated:
    """launch/policy.launch.py against the stand-ins."""
    return evaluate_launch_file(LAUNCH_FILE, monkeypatch, tmp_path)


@pytest.fixture
def eval_launch(monkeypatch, tmp_path) -> Evaluated:
    """launch/libero_eval.launch.py against the stand-ins."""
    return evaluate_launch_file(EVAL_LAUNCH_FILE, monkeypatch, tmp_path)


def console_scripts() -> dict[str, str]:
    """console_scripts declared in setup.py (parsed, not imported; f"{PACKAGE}" resolved)."""
    tree = ast.parse((REPO / "setup.py").read_text())

    def text(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            parts = []
            for v in node.values:
                if isinstance(v, ast.FormattedValue):
                    assert isinstance(v.value, ast.Name) and v.value.id == "PACKAGE"
                    parts.append("snapflow_ros")
                else:
                    parts.append(v.value)
            return "".join(parts)
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if text(key) == "console_scripts" and isinstance(value, ast.List):
                    entries = [text(e) for e in value.elts]
                    return dict((s.strip() for s in e.split("=", 1)) for e in entries if e)
    raise AssertionError("no console_scripts in setup.py")


# ------------------------------------------------------------------ tests: the parser
BOOL_SPELLINGS = [
    *[(w, True) for w in ("true", "True", "TRUE", "tRuE", "1", "yes", "Yes", "YES", "on", "On")],
    *[(w, False) for w in ("false", "False", "FALSE", "0", "no", "No", "NO", "off", "Off", "OFF")],
    *[(w, v) for w, v in ((" true", True), ("off ", False), ("\tyes\n", True), ("  0  ", False))],
]
BAD_BOOLS = [
    "ture",
    "flase",
    "treu",
    "t",
    "f",
    "y",
    "n",
    "2",
    "-1",
    "01",
    "1.0",
    "none",
    "null",
    "enable",
    "disabled",
    "yes please",
    "true false",
    "tru e",
    "'true'",
    '"true"',
    "truee",
    "✓",
]


@pytest.mark.parametrize(("text", "value"), BOOL_SPELLINGS)
def test_every_boolean_spelling_parses(text, value):
    assert parse_bool("dry_run", text) is value
    assert LaunchArg("dry_run", "bool", "", "", optional=True).parse(text) is value


@pytest.mark.parametrize("text", BAD_BOOLS)
def test_unrecognised_booleans_are_errors_naming_argument_value_and_accepted_words(text):
    with pytest.raises(LaunchArgumentError) as err:
        parse_bool("dry_run", text)
    message = str(err.value)
    assert message.startswith("dry_run: ") and repr(text.strip()) in message
    for word in (*TRUE_WORDS, *FALSE_WORDS):
        assert word in message
    assert "\n" not in message


@pytest.mark.parametrize("optional", [True, False])
@pytest.mark.parametrize("kind", ["bool", "int", "float", "str", "device", "namespace"])
def test_empty_and_blank_values(kind, optional):
    arg = LaunchArg("x", kind, "", "", optional=optional)
    if optional:
        assert arg.parse("") is None  # not given: the params file's value is kept
    else:
        with pytest.raises(LaunchArgumentError, match=r"^x: '' is empty \(accepted: "):
            arg.parse("")
    for blank in (" ", "   ", "\t", "\n"):
        with pytest.raises(LaunchArgumentError, match=rf"^x: {re.escape(repr(blank))} is empty"):
            arg.parse(blank)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("1", 1), ("10", 10), (" 3 ", 3), ("+2", 2), ("007", 7), ("123456789", 123456789)],
)
def test_integers_parse(text, value):
    assert parse_int("num_steps", text, minimum=0) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "num_steps: 'abc' is not valid (accepted: an integer >= 0)"),
        ("1.0", "num_steps: '1.0' is not valid"),
        ("1e3", "num_steps: '1e3' is not valid"),
        ("0x10", "num_steps: '0x10' is not valid"),
        ("1_000", "num_steps: '1_000' is not valid"),
        ("1 0", "num_steps: '1 0' is not valid"),
        ("true", "num_steps: 'true' is not valid"),
        ("-1", "num_steps: '-1' is below the minimum 0"),
        ("٣", "num_steps: '٣' is not valid"),  # a non-ASCII digit int() would take
    ],
)
def test_bad_integers_are_errors_naming_the_argument(text, message):
    with pytest.raises(LaunchArgumentError) as err:
        parse_int("num_steps", text, minimum=0)
    assert str(err.value).startswith(message)


def test_integer_and_float_ranges():
    assert parse_int("init_state_index", "49", 0, 49) == 49
    with pytest.raises(LaunchArgumentError, match="'50' is above the maximum 49"):
        parse_int("init_state_index", "50", 0, 49)
    assert parse_float("rate", " 0.5 ") == 0.5
    assert parse_float("rate", "1e-3") == 1e-3
    assert parse_float("rate", "2") == 2.0
    assert parse_float("rate", ".5") == 0.5
    for bad in ("nan", "inf", "-inf", "1e400", "1,5", "half", "0x1p3", "1.0.0"):
        with pytest.raises(LaunchArgumentError, match=rf"^rate: {re.escape(repr(bad))} is not"):
            parse_float("rate", bad)
    with pytest.raises(LaunchArgumentError, match="below the minimum 0"):
        parse_float("rate", "-0.1", minimum=0.0)


def test_choices_devices_namespaces_and_log_levels():
    assert parse_choice("mode", " RealTime ", ("lockstep", "realtime")) == "realtime"
    with pytest.raises(LaunchArgumentError, match=r"mode: 'lock-step' .*lockstep, realtime"):
        parse_choice("mode", "lock-step", ("lockstep", "realtime"))
    for good in ("auto", "cpu", "CUDA", "cuda:0", "cuda:12"):
        assert parse_device("device", good) == good.lower()
    for bad in ("gpu", "cuda:", "cuda:x", "cuda0", "mps", "cpu "):
        if bad.strip() != bad:
            assert parse_device("device", bad) == bad.strip()
            continue
        with pytest.raises(LaunchArgumentError, match=r"device: .* auto, cpu, cuda or cuda:N"):
            parse_device("device", bad)
    for good in ("arm", "/arm", "/robot/arm_2", "robot/_x", "/"):
        assert parse_namespace("namespace", good) == good
    for bad in ("no slash", "/arm/", "//arm", "/2arm", "arm-1", "~/arm", "/arm//x"):
        with pytest.raises(LaunchArgumentError, match="namespace: .* ROS namespace"):
            parse_namespace("namespace", bad)
    assert parse_log_level("log_level", "WARN") == "warn"
    assert parse_log_level("log_level", "rcl:=debug") == "rcl:=debug"
    for bad in ("verbose", ":=debug", "rcl:=loud", "warning"):
        with pytest.raises(LaunchArgumentError, match="log_level: .*debug, info, warn"):
            parse_log_level("log_level", bad)


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_params_files_must_exist_parse_and_address_the_node(tmp_path):
    good = "/**/policy_node:\n  ros__parameters:\n    num_steps: 1\n"
    assert check_params_file("config", _write(tmp_path / "a.yaml", good), NODE_NAME)
    for key in ("policy_node", "/arm/policy_node", "/**", "/*/policy_node", "/arm/*"):
        path = _write(tmp_path / "k.yaml", f"{key}:\n  ros__parameters: {{a: 1}}\n")
        assert check_params_file("config", path, NODE_NAME) == path
    cases = [
        (None, "/no/such/file.yaml", "config: /no/such/file.yaml does not exist"),
        (None, str(tmp_path), f"config: {tmp_path} is a folder"),
        ("/**/policy_node:\n  ros__parameters: [1\n", "", "is not valid YAML at line 3"),
        ("just text\n", "", "is not a ROS params file (expected a `/**/policy_node:` key"),
        ("", "", "is not a ROS params file"),
        ("- a\n- b\n", "", "is not a ROS params file"),
        (
            "/**/libero_bridge:\n  ros__parameters: {a: 1}\n",
            "",
            "has no parameters for policy_node (keys: /**/libero_bridge; expected",
        ),
        ("/**/policy_node:\n  num_steps: 1\n", "", "`/**/policy_node:` has no `ros__parameters:`"),
        ("/**/policy_node:\n  ros__parameters: 3\n", "", "has no `ros__parameters:` mapping"),
        ("/**/policy_node_2:\n  ros__parameters: {a: 1}\n", "", "has no parameters for"),
    ]
    for i, (content, path, message) in enumerate(cases):
        if content is not None:
            path = _write(tmp_path / f"bad{i}.yaml", content)
        with pytest.raises(LaunchArgumentError) as err:
            check_params_file("config", path, NODE_NAME)
        assert message in str(err.value) and path in str(err.value), str(err.value)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(LaunchArgumentError, match="is not a text"):
        check_params_file("config", str(binary), NODE_NAME)
    if os.geteuid() != 0:  # root reads everything
        unreadable = Path(_write(tmp_path / "private.yaml", good))
        unreadable.chmod(0)
        with pytest.raises(LaunchArgumentError, match="cannot be read"):
            check_params_file("config", str(unreadable), NODE_NAME)


def test_every_bad_argument_is_reported_in_one_line():
    args = (
        LaunchArg("dry_run", "bool", "", "", optional=True),
        LaunchArg("num_steps", "int", "", "", optional=True, minimum=0),
        LaunchArg("libero_bridge", "bool", "false", ""),
    )
    assert parse_args(args, {}) == {"dry_run": None, "num_steps": None, "libero_bridge": False}
    assert parse_args(args, {"dry_run": "Yes", "num_steps": "2"})["dry_run"] is True
    with pytest.raises(LaunchArgumentError) as err:
        parse_args(args, {"dry_run": "ture", "num_steps": "abc", "libero_bridge": ""})
    message = str(err.value)
    assert "\n" not in message
    assert message.split("; ") == [
        "launch argument dry_run: 'ture' is not valid (accepted: true/false, 1/0, yes/no, "
        "on/off, any case)",
        "launch argument num_steps: 'abc' is not valid (accepted: an integer >= 0)",
        "launch argument libero_bridge: '' is empty (accepted: true/false, 1/0, yes/no, on/off)",
    ]


def test_the_parser_imports_without_ros_or_torch():
    code = (
        "import sys, snapflow_ros.launch_args\n"
        "heavy = {'torch', 'rclpy', 'launch', 'launch_ros', 'numpy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------ tests: policy.launch.py
def test_declares_the_documented_arguments(policy_launch):
    declared = policy_launch.declared
    assert list(declared) == [a.name for a in policy_launch.module.ARGUMENTS]
    for name in ("config", "policy_path", "namespace", "device", "num_steps", "libero_bridge"):
        assert name in declared
    docs = (REPO / "docs" / "policy_node.md").read_text()
    for name in declared:
        assert f"`{name}`" in docs, f"launch argument {name} is not documented"
    assert "true/false, 1/0, yes/no, on/off" in policy_launch.descriptions["dry_run"]


def test_node_description_matches_setup_py_and_config(policy_launch):
    module, setup, prefix = policy_launch.module, policy_launch.setup, policy_launch.prefix
    actions = setup()
    assert len(actions) == 1
    node = actions[0]
    assert type(node).__name__ == "LifecycleNode"
    kw = node.kwargs
    assert kw["package"] == "snapflow_ros" == module.PACKAGE
    assert kw["name"] == NODE_NAME
    scripts = console_scripts()
    assert scripts[kw["executable"]] == "snapflow_ros.nodes.policy_node:main"
    installed = {
        ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")
    }
    assert installed.get(kw["executable"]) == scripts[kw["executable"]], "pip install -e . again"
    # default parameters file: the installed config/policy.yaml, no overrides
    default_cfg = prefix / "share" / "snapflow_ros" / "config" / "policy.yaml"
    assert kw["parameters"] == [str(default_cfg)]
    params = yaml.safe_load(default_cfg.read_text())
    assert f"/**/{kw['name']}" in params, "the config must match the node name in any namespace"
    assert kw["namespace"] == ""
    assert kw["ros_arguments"] == ["--log-level", "info"]


def test_arguments_become_typed_parameter_overrides(policy_launch):
    cfg = str(REPO / "config" / "robot_example.yaml")
    node = policy_launch.setup(
        config=cfg,
        policy_path="/ckpt",
        namespace="arm",
        device="CUDA",
        num_steps=" 1 ",
        dry_run="On",
        log_level="DEBUG",
    )[0]
    params = node.kwargs["parameters"]
    assert params[0] == cfg
    assert params[1] == {"policy_path": "/ckpt", "device": "cuda", "num_steps": 1, "dry_run": True}
    declared = {p.name: p.default for p in PARAMS}
    for name, value in params[1].items():
        assert type(value) is type(declared[name]), name
    assert node.kwargs["namespace"] == "arm"
    assert node.kwargs["ros_arguments"] == ["--log-level", "debug"]


@pytest.mark.parametrize(("text", "value"), BOOL_SPELLINGS)
def test_every_boolean_spelling_reaches_the_node_and_the_bridge_switch(policy_launch, text, value):
    node = policy_launch.setup(dry_run=text)[0]
    assert node.kwargs["parameters"][1] == {"dry_run": value}
    actions = policy_launch.setup(libero_bridge=text)
    assert [type(a).__name__ for a in actions] == ["LifecycleNode", "Node"][: 1 + value]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"dry_run": "ture"}, "dry_run: 'ture' is not valid (accepted: true/false"),
        ({"dry_run": " "}, "dry_run: ' ' is empty"),
        ({"libero_bridge": "ture"}, "libero_bridge: 'ture' is not valid"),
        ({"libero_bridge": ""}, "libero_bridge: '' is empty"),
        ({"num_steps": "abc"}, "num_steps: 'abc' is not valid (accepted: an integer >= 0)"),
        ({"num_steps": "-1"}, "num_steps: '-1' is below the minimum 0"),
        ({"num_steps": "1.5"}, "num_steps: '1.5' is not valid"),
        ({"config": "/nope.yaml"}, "config: /nope.yaml does not exist"),
        ({"device": "gpu"}, "device: 'gpu' is not valid (accepted: auto, cpu, cuda or cuda:N)"),
        ({"namespace": "my arm"}, "namespace: 'my arm' is not valid"),
        ({"log_level": "verbose"}, "log_level: 'verbose' is not valid"),
        ({"policy_path": "tiny:pi0"}, "policy_path: unknown tiny policy 'tiny:pi0' (tiny:smolvla"),
        (
            {"libero_bridge": "true", "libero_config": "/nope/libero.yaml"},
            "libero_config: /nope/libero.yaml does not exist",
        ),
    ],
)
def test_bad_arguments_stop_the_launch_before_any_node(policy_launch, args, message):
    with pytest.raises(LaunchArgumentError) as err:
        policy_launch.setup(**args)
    assert str(err.value).startswith(f"launch argument {message}"), str(err.value)


def test_config_files_are_checked_for_the_node_key(policy_launch, tmp_path):
    other = tmp_path / "bridge_only.yaml"
    other.write_text((REPO / "config" / "libero_bridge.yaml").read_text())
    with pytest.raises(LaunchArgumentError, match=f"config: {other} has no parameters for"):
        policy_launch.setup(config=str(other))
    with pytest.raises(LaunchArgumentError, match="libero_config: .* no parameters for libero_b"):
        policy_launch.setup(libero_bridge="yes", libero_config=str(REPO / "config" / "policy.yaml"))
    # the installed default is checked as well
    (policy_launch.prefix / "share" / "snapflow_ros" / "config" / "policy.yaml").write_text("x")
    with pytest.raises(LaunchArgumentError, match=r"config: .*/config/policy.yaml is not a ROS"):
        policy_launch.setup()


def test_optional_libero_bridge(policy_launch):
    libero_cfg = str(REPO / "config" / "libero_bridge.yaml")
    actions = policy_launch.setup(libero_bridge="true", libero_config=libero_cfg, namespace="sim")
    assert len(actions) == 2
    bridge = actions[1]
    assert type(bridge).__name__ == "Node"
    assert bridge.kwargs["executable"] == "libero_bridge"
    assert bridge.kwargs["namespace"] == "sim"
    assert bridge.kwargs["parameters"] == [libero_cfg]
    assert policy_launch.setup(libero_bridge="TRUE")[1].kwargs["parameters"] == []


def test_nodes_get_time_to_shut_down_after_ctrl_c(policy_launch, eval_launch):
    """launch escalates SIGINT to SIGTERM after 5 s by default; every node gets the same
    grace, longer than the policy node's shutdown (checked in test_node_exit.py)."""
    nodes = [*policy_launch.setup(libero_bridge="true"), *eval_launch.setup()]
    assert len(nodes) == 4
    for node in nodes:
        assert float(node.kwargs["sigterm_timeout"]) == SIGINT_GRACE_S >= 5.0


# ------------------------------------------------------------------ tests: libero_eval.launch.py
def test_eval_launch_starts_both_nodes_with_the_installed_params(eval_launch):
    config = eval_launch.prefix / "share" / "snapflow_ros" / "config"
    bridge, policy = eval_launch.setup()
    assert (bridge.kwargs["executable"], policy.kwargs["executable"]) == (
        "libero_bridge",
        "policy_node",
    )
    demo_bridge = {"suite": "libero_object", "task_index": 0, "init_state_index": 3}
    demo_bridge |= {"image_height": 64}
    demo_bridge |= {"image_width": 64, "auto_next": True}
    assert bridge.kwargs["parameters"] == [str(config / "libero_bridge.yaml"), demo_bridge]
    assert policy.kwargs["parameters"] == [
        str(config / "libero_policy.yaml"),
        {"policy_path": "libero:snapflow", "seed": 3},  # state 3's noise, as auto_next's
    ]
    assert bridge.kwargs["namespace"] == policy.kwargs["namespace"] == ""
    bridge, policy = eval_launch.setup(policy_path="/ckpt", suite="libero_goal")
    assert bridge.kwargs["parameters"][1] == {"suite": "libero_goal"}  # no demo defaults
    # the installed bridge file starts at state 0 with noise base 0: state 0's noise
    assert policy.kwargs["parameters"][1] == {"policy_path": "/ckpt", "seed": 0}


@pytest.mark.parametrize(
    ("lines", "arguments", "seed"),
    [
        (["init_state_index: 7", "policy_noise_seed: 100"], {}, 107),
        (["init_state_index: 7", "policy_noise_seed: 100"], {"init_state_index": "2"}, 102),
        (["init_state_index: 7"], {}, 7),  # the parameter's default base, 0
        (["init_state_index: 7", "policy_noise_seed: -1"], {}, None),  # the node's own seed
    ],
)
def test_eval_launch_gives_the_first_episode_the_noise_auto_next_gives_later_ones(
    eval_launch, tmp_path, lines, arguments, seed
):
    """The policy node starts with noise_seed(B, index) of the bridge as it will start (its
    params file, then the arguments), as libero_eval --noise-seed B gives that state."""
    bridge_file = tmp_path / "bridge.yaml"
    body = "".join(f"    {line}\n" for line in ["suite: libero_object", *lines])
    bridge_file.write_text(f"/**/libero_bridge:\n  ros__parameters:\n{body}")
    _, policy = eval_launch.setup(bridge_params=str(bridge_file), policy_path="/ckpt", **arguments)
    assert policy.kwargs["parameters"][1].get("seed") == seed


def test_eval_launch_arguments_are_typed_overrides(eval_launch):
    bridge, policy = eval_launch.setup(
        suite="LIBERO_object",
        task_index="3",
        init_state_index=" 49",
        mode="Realtime",
        policy_path="/ckpt",
        num_steps="1",
        namespace="/ev",
    )
    assert bridge.kwargs["parameters"][1] == {
        "suite": "libero_object",
        "task_index": 3,
        "init_state_index": 49,
        "mode": "realtime",
    }
    assert policy.kwargs["parameters"][1] == {
        "policy_path": "/ckpt",
        "num_steps": 1,
        "use_sim_time": False,
        "seed": 49,  # the first state's noise seed (auto_next gives the next ones theirs)
    }
    assert bridge.kwargs["namespace"] == policy.kwargs["namespace"] == "/ev"
    lockstep = eval_launch.setup(mode="lockstep", policy_path="/ckpt")[1].kwargs["parameters"][1]
    assert lockstep == {"policy_path": "/ckpt", "use_sim_time": True, "seed": 0}


@pytest.mark.parametrize(("text", "value"), BOOL_SPELLINGS)
def test_eval_launch_start_switches_accept_every_boolean_spelling(eval_launch, text, value):
    started = [a.kwargs["executable"] for a in eval_launch.setup(start_bridge=text)]
    assert started == ["libero_bridge", "policy_node"][(0 if value else 1) :]
    started = [a.kwargs["executable"] for a in eval_launch.setup(start_policy=text)]
    assert started == ["libero_bridge", "policy_node"][: (2 if value else 1)]


def test_eval_launch_checks_only_the_params_files_of_started_nodes(eval_launch, tmp_path):
    policy_only = str(REPO / "config" / "libero_policy.yaml")
    # libero_eval --launcher ros2launch: one node per launch, its own params file
    (node,) = eval_launch.setup(start_bridge="false", policy_params=policy_only)
    assert node.kwargs["parameters"] == [policy_only, {}]
    (eval_launch.prefix / "share" / "snapflow_ros" / "config" / "libero_bridge.yaml").unlink()
    (node,) = eval_launch.setup(start_bridge="false")
    assert node.kwargs["executable"] == "policy_node"
    with pytest.raises(LaunchArgumentError, match=r"bridge_params: .*libero_bridge.yaml does not"):
        eval_launch.setup()
    with pytest.raises(
        LaunchArgumentError, match="policy_params: .* no parameters for policy_node"
    ):
        eval_launch.setup(policy_params=str(REPO / "config" / "libero_bridge.yaml"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"start_bridge": "ture"}, "start_bridge: 'ture' is not valid (accepted: true/false"),
        ({"start_policy": "nope"}, "start_policy: 'nope' is not valid"),
        ({"start_policy": ""}, "start_policy: '' is empty"),
        ({"suite": "libero_99"}, "suite: 'libero_99' is not valid (accepted: libero_spatial"),
        ({"task_index": "x"}, "task_index: 'x' is not valid (accepted: an integer >= 0)"),
        ({"init_state_index": "50"}, "init_state_index: '50' is above the maximum 49"),
        ({"mode": "fast"}, "mode: 'fast' is not valid (accepted: lockstep, realtime)"),
        ({"num_steps": "abc"}, "num_steps: 'abc' is not valid"),
        ({"policy_path": "tiny:libre"}, "policy_path: unknown tiny policy 'tiny:libre'"),
        ({"policy_params": "/nope.yaml"}, "policy_params: /nope.yaml does not exist"),
        ({"namespace": "no slash"}, "namespace: 'no slash' is not valid"),
    ],
)
def test_eval_launch_bad_arguments_stop_before_any_node(eval_launch, args, message):
    with pytest.raises(LaunchArgumentError) as err:
        eval_launch.setup(**args)
    assert str(err.value).startswith(f"launch argument {message}"), str(err.value)


def test_eval_launch_modes_and_suites_are_the_bridges(eval_launch):
    from snapflow_ros.params.libero_bridge import MODES
    from snapflow_ros.sim.suites import SUITES

    assert eval_launch.module.MODES == MODES
    choices = {a.name: a.choices for a in eval_launch.module.ARGUMENTS}
    assert choices["mode"] == MODES and choices["suite"] == SUITES


def test_shipped_configs_are_checked():
    names = {p.name for p in NODE_CONFIGS}
    assert {"policy.yaml", "robot_example.yaml"} <= names


@pytest.mark.parametrize("path", NODE_CONFIGS, ids=[p.name for p in NODE_CONFIGS])
def test_config_files_use_only_declared_parameters_with_valid_values(path):
    data = yaml.safe_load(path.read_text())
    assert list(data) == [f"/**/{NODE_NAME}"]
    flat = flat_parameters(data[f"/**/{NODE_NAME}"]["ros__parameters"])
    known = {p.name for p in PARAMS} | ROS_PARAMS
    for cam in flat.get("cameras.names", ["front", "wrist"]):
        known |= {f"cameras.{cam}.{p.name}" for p in CAMERA_PARAMS}
    for src in flat.get("state.sources", ["joints"]):
        known |= {f"state.{src}.{p.name}" for p in STATE_PARAMS}
    unknown = sorted(set(flat) - known)
    assert not unknown, f"{path.name}: undeclared parameters {unknown}"
    build_config(lambda name: flat.get(name))  # raises on invalid values


def test_default_config_is_the_embedded_tiny_policy():
    flat = flat_parameters(
        yaml.safe_load((REPO / "config" / "policy.yaml").read_text())[f"/**/{NODE_NAME}"][
            "ros__parameters"
        ]
    )
    assert flat["policy_path"] == "tiny:smolvla"
    assert len(flat["state.joints.names"]) == 8 and len(flat["action_names"]) == 7


NEEDS_LAUNCH = pytest.mark.skipif(
    importlib.util.find_spec("launch_ros") is None,
    reason="launch_ros is not installed (not installable from PyPI; needs a ROS 2 install)",
)
LAUNCH_SCRIPT = (
    "import sys, launch\n"
    "from launch.actions import IncludeLaunchDescription\n"
    "from launch.launch_description_sources import PythonLaunchDescriptionSource\n"
    "ls = launch.LaunchService()\n"
    "src = PythonLaunchDescriptionSource(sys.argv[1])\n"
    "args = dict(a.split(':=', 1) for a in sys.argv[2:])\n"
    "ls.include_launch_description(IncludeLaunchDescription(src, "
    "launch_arguments=args.items()))\n"
    "sys.exit(ls.run())\n"
)


def launch_env(tmp_path: Path, domain: int) -> dict[str, str]:
    """Environment of a real launch: isolated DDS, the fake install prefix first."""
    prefix = fake_prefix(tmp_path / "install")
    env = ros_env(domain)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(
        [str(prefix), *filter(None, [env.get("AMENT_PREFIX_PATH")])]
    )
    return env


@NEEDS_LAUNCH
@pytest.mark.parametrize(
    ("launch_file", "args", "message"),
    [
        (LAUNCH_FILE, ["dry_run:=ture"], "launch argument dry_run: 'ture' is not valid"),
        (LAUNCH_FILE, ["num_steps:=abc"], "launch argument num_steps: 'abc' is not valid"),
        (LAUNCH_FILE, ["config:=/nope.yaml"], "launch argument config: /nope.yaml does not exist"),
        (EVAL_LAUNCH_FILE, ["start_bridge:=ture"], "launch argument start_bridge: 'ture'"),
    ],
)
def test_real_launch_rejects_bad_arguments_in_one_line(tmp_path, launch_file, args, message):
    env = launch_env(tmp_path, domain_id(3))
    log = tmp_path / "launch.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH_SCRIPT, str(launch_file), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        rc = proc.wait(60)
    except subprocess.TimeoutExpired:  # it went on and started nodes: stop them all
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        pytest.fail(f"the launch did not stop on {args}: {log.read_text()[-3000:]}")
    text = log.read_text()
    assert rc != 0, text
    errors = [line for line in text.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and message in errors[0], text
    assert "Traceback" not in text and "process started" not in text, text


@NEEDS_LAUNCH
def test_real_launch_starts_an_active_node_and_stops_cleanly(tiny_smolvla_dir, tmp_path):
    domain = domain_id(3)
    env = launch_env(tmp_path, domain)
    log = tmp_path / "launch.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                LAUNCH_SCRIPT,
                str(LAUNCH_FILE),
                "namespace:=lt",
                f"policy_path:={tiny_smolvla_dir}",
                "num_steps:=1",
                "device:=cpu",
                "dry_run:=Yes",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    harness = Harness(domain, ns="/lt/policy_node")
    try:
        wait_for(
            lambda: any(e.state == "active" for e in harness.events("periodic")),
            120,
            "the launched node to become active",
        )
        assert harness.lifecycle_state() == "active"
        assert harness.get_params("num_steps", "device", "dry_run") == [1, "cpu", True]
    finally:
        harness.close()
        os.killpg(proc.pid, signal.SIGINT)  # like Ctrl-C on ros2 launch
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait(10)
    text = log.read_text()
    assert rc == 0, text[-3000:]
    assert "process has finished cleanly" in text, text[-3000:]
    assert "Traceback" not in text


def test_every_parameter_topic_and_service_is_documented():
    docs = (REPO / "docs" / "policy_node.md").read_text()
    for p in PARAMS:
        assert f"`{p.name}`" in docs, f"parameter {p.name} is not documented"
    for p in CAMERA_PARAMS:
        assert f"`cameras.<name>.{p.name}`" in docs
    for p in STATE_PARAMS:
        assert f"`state.<name>.{p.name}`" in docs
    for name in (
        "~/action_chunk",
        "~/command",
        "~/status",
        "/diagnostics",
        "~/reset",
        "~/pause",
        "~/resume",
        "joint_state",
        "float64_multi_array",
        "joint_trajectory",
    ):
        assert f"`{name}`" in docs, name
