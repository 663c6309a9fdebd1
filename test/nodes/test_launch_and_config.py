"""launch/policy.launch.py and config/*.yaml, checked against setup.py and the node.

``launch`` / ``launch_ros`` cannot be installed from PyPI (PyPI's ``launch`` is an unrelated
package), so the launch file is evaluated here against small recording stand-ins of the
launch_ros API it uses; the real ``ros2 launch``-style test runs only where launch_ros is
importable (a ROS 2 install) and is skipped otherwise.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import signal
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from snapflow_ros.nodes.params import (
    CAMERA_PARAMS,
    NODE_NAME,
    PARAMS,
    STATE_PARAMS,
    build_config,
)

from .harness import Harness, domain_id, ros_env, wait_for

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / "launch" / "policy.launch.py"
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


def fake_prefix(root: Path) -> Path:
    """An install prefix laid out like colcon's (ament index marker, share/, lib/<pkg>/)."""
    index = root / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / "snapflow_ros").write_text("")
    share = root / "share" / "snapflow_ros"
    (share / "config").mkdir(parents=True)
    (share / "launch").mkdir()
    for cfg in CONFIGS:
        (share / "config" / cfg.name).write_text(cfg.read_text())
    (share / "launch" / LAUNCH_FILE.name).write_text(LAUNCH_FILE.read_text())
    (share / "package.xml").write_text((REPO / "package.xml").read_text())
    lib = root / "lib" / "snapflow_ros"
    lib.mkdir(parents=True)
    for exe in ("policy_node", "synthetic_source"):
        (lib / exe).symlink_to(Path(sys.executable).parent / exe)
    return root


@pytest.fixture
def evaluated(monkeypatch, tmp_path):
    """Run the launch file against the stand-ins; returns (module, declared args, setup fn)."""
    for name, mod in _fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, mod)
    prefix = fake_prefix(tmp_path / "install")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    spec = importlib.util.spec_from_file_location("policy_launch_under_test", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    declared = {
        e.args[0]: e.kwargs["default_value"]
        for e in description.entities
        if type(e).__name__ == "DeclareLaunchArgument"
    }
    opaque = [e for e in description.entities if type(e).__name__ == "OpaqueFunction"]
    assert len(opaque) == 1

    def setup(**args: str) -> list[Any]:
        context = types.SimpleNamespace(launch_configurations={**declared, **args})
        return opaque[0].kwargs["function"](context)

    return module, declared, setup, prefix


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


# ------------------------------------------------------------------ tests
def test_launch_file_compiles():
    compile(LAUNCH_FILE.read_text(), str(LAUNCH_FILE), "exec")


def test_declares_the_documented_arguments(evaluated):
    _, declared, _, _ = evaluated
    for name in ("config", "policy_path", "namespace", "device", "num_steps", "libero_bridge"):
        assert name in declared
    docs = (REPO / "docs" / "policy_node.md").read_text()
    for name in declared:
        assert f"`{name}`" in docs, f"launch argument {name} is not documented"


def test_node_description_matches_setup_py_and_config(evaluated):
    module, _, setup, prefix = evaluated
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


def test_arguments_become_typed_parameter_overrides(evaluated, tmp_path):
    _, _, setup, _ = evaluated
    cfg = str(REPO / "config" / "robot_example.yaml")
    node = setup(
        config=cfg,
        policy_path="/ckpt",
        namespace="arm",
        device="cuda",
        num_steps="1",
        dry_run="true",
        log_level="debug",
    )[0]
    params = node.kwargs["parameters"]
    assert params[0] == cfg
    assert params[1] == {"policy_path": "/ckpt", "device": "cuda", "num_steps": 1, "dry_run": True}
    declared = {p.name: p.default for p in PARAMS}
    for name, value in params[1].items():
        assert type(value) is type(declared[name]), name
    assert node.kwargs["namespace"] == "arm"
    assert node.kwargs["ros_arguments"] == ["--log-level", "debug"]


def test_optional_libero_bridge(evaluated):
    _, _, setup, _ = evaluated
    actions = setup(libero_bridge="true", libero_config="/tmp/libero.yaml", namespace="sim")
    assert len(actions) == 2
    bridge = actions[1]
    assert type(bridge).__name__ == "Node"
    assert bridge.kwargs["executable"] == "libero_bridge"
    assert bridge.kwargs["namespace"] == "sim"
    assert bridge.kwargs["parameters"] == ["/tmp/libero.yaml"]


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def test_shipped_configs_are_checked():
    names = {p.name for p in NODE_CONFIGS}
    assert {"policy.yaml", "robot_example.yaml"} <= names


@pytest.mark.parametrize("path", NODE_CONFIGS, ids=[p.name for p in NODE_CONFIGS])
def test_config_files_use_only_declared_parameters_with_valid_values(path):
    data = yaml.safe_load(path.read_text())
    assert list(data) == [f"/**/{NODE_NAME}"]
    flat = _flatten(data[f"/**/{NODE_NAME}"]["ros__parameters"])
    known = {p.name for p in PARAMS} | ROS_PARAMS
    for cam in flat.get("cameras.names", ["front", "wrist"]):
        known |= {f"cameras.{cam}.{p.name}" for p in CAMERA_PARAMS}
    for src in flat.get("state.sources", ["joints"]):
        known |= {f"state.{src}.{p.name}" for p in STATE_PARAMS}
    unknown = sorted(set(flat) - known)
    assert not unknown, f"{path.name}: undeclared parameters {unknown}"
    build_config(lambda name: flat.get(name))  # raises on invalid values


def test_default_config_is_the_embedded_tiny_policy():
    flat = _flatten(
        yaml.safe_load((REPO / "config" / "policy.yaml").read_text())[f"/**/{NODE_NAME}"][
            "ros__parameters"
        ]
    )
    assert flat["policy_path"] == "tiny:smolvla"
    assert len(flat["state.joints.names"]) == 8 and len(flat["action_names"]) == 7


@pytest.mark.skipif(
    importlib.util.find_spec("launch_ros") is None,
    reason="launch_ros is not installed (not installable from PyPI; needs a ROS 2 install)",
)
def test_real_launch_starts_an_active_node_and_stops_cleanly(tiny_smolvla_dir, tmp_path):
    prefix = fake_prefix(tmp_path / "install")
    domain = domain_id(3)
    env = ros_env(domain)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(
        [str(prefix), *filter(None, [env.get("AMENT_PREFIX_PATH")])]
    )
    script = (
        "import sys, launch\n"
        "from launch.actions import IncludeLaunchDescription\n"
        "from launch.launch_description_sources import PythonLaunchDescriptionSource\n"
        "ls = launch.LaunchService()\n"
        f"src = PythonLaunchDescriptionSource({str(LAUNCH_FILE)!r})\n"
        "args = dict(a.split(':=', 1) for a in sys.argv[1:])\n"
        "ls.include_launch_description(IncludeLaunchDescription(src, "
        "launch_arguments=args.items()))\n"
        "sys.exit(ls.run())\n"
    )
    log = tmp_path / "launch.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                script,
                "namespace:=lt",
                f"policy_path:={tiny_smolvla_dir}",
                "num_steps:=1",
                "device:=cpu",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    harness = Harness(domain, ns="/lt/policy_node")
    try:
        wait_for(
            lambda: any(e["state"] == "active" for e in harness.events("periodic")),
            120,
            "the launched node to become active",
        )
        assert harness.lifecycle_state() == "active"
        assert harness.get_params("num_steps", "device") == [1, "cpu"]
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
