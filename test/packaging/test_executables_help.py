"""Every console script of setup.py answers ``--help`` with a usage text and exits 0.

Nodes that ignored ``--help`` started publishing instead (``synthetic_source --help``); this
runs each executable as the user would, with a short timeout, so one that starts working
instead of answering fails here rather than hanging.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from snapflow_ros.launching import entry_module, executable

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60  # importing torch/lerobot takes a few seconds on a loaded 2-core machine


def console_scripts() -> list[str]:
    """Names of the ``console_scripts`` entry points declared in setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return [_entry_name(item) for item in value.elts]
    raise AssertionError("setup.py declares no console_scripts")


def _entry_name(item: ast.expr) -> str:
    if isinstance(item, ast.Constant):
        text = item.value
    else:  # an f-string: its first literal part holds "name = "
        text = next(v.value for v in item.values if isinstance(v, ast.Constant))
    return text.split("=", 1)[0].strip()


SCRIPTS = console_scripts()


def test_setup_py_lists_the_node_executables():
    assert {"policy_node", "synthetic_source", "libero_bridge"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_prints_usage_and_exits_0(name):
    script = Path(sys.executable).parent / name
    assert script.is_file(), f"{name} is not installed: pip install --no-deps -e ."
    try:
        out = subprocess.run(
            [str(script), "--help"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{name} --help still ran after {TIMEOUT_S} s") from exc
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stdout.lstrip().lower().startswith("usage:"), out.stdout[:500]
    assert name in out.stdout.split("\n", 1)[0], out.stdout[:500]


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_executable_runs_from_its_script_or_its_module(name):
    """``executable`` (what libero_eval, the demo and the benchmarks start) finds each one:
    its console script, else ``python -m`` the module setup.py names."""
    cmd = executable(name)
    assert cmd == [str(Path(sys.executable).parent / name)]
    module = entry_module(name)
    assert importlib.util.find_spec(module) is not None
    with pytest.raises(ValueError, match="not an executable of snapflow_ros"):
        entry_module("ros2")
