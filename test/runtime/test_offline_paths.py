"""Offline loading through ``vlm_path`` / ``tokenizer_path`` (RuntimeOptions, node parameters).

A checkpoint whose VLM folder (SmolVLA) or tokenizer folder (pi0.5) lives elsewhere loads
from the folder the option names and predicts exactly what the untouched checkpoint
predicts; a wrong folder is refused with a :class:`CheckpointError` naming the option.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from snapflow_ros.runtime import CheckpointError, PolicyRuntime, RuntimeOptions
from snapflow_ros.runtime.checkpoint import load_checkpoint
from test.nodes.harness import InProcessNode, domain_id, node_parameters

from .helpers import make_observation

SUBFOLDER = {"smolvla": "vlm", "pi05": "tokenizer"}  # what the tiny checkpoints carry
OPTION = {"smolvla": "vlm_path", "pi05": "tokenizer_path"}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Hub look-ups: what is not local must fail, not be downloaded."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def split_checkpoint(checkpoint: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of ``checkpoint`` whose VLM / tokenizer subfolder is moved out of it, and
    where it went."""
    kind = "smolvla" if (checkpoint / "vlm").is_dir() else "pi05"
    copy = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, copy)
    moved = tmp_path / "elsewhere" / f"local_{SUBFOLDER[kind]}"
    moved.parent.mkdir()
    shutil.move(copy / SUBFOLDER[kind], moved)
    return copy, moved


def chunk(runtime: PolicyRuntime) -> np.ndarray:
    """A 2-step chunk of a fixed observation and noise."""
    noise = torch.randn(runtime.adapter.noise_shape(1), generator=torch.Generator().manual_seed(7))
    obs = make_observation(runtime, seed=2)
    return runtime.predict_chunk(obs, num_steps=2, noise=noise).actions


def test_the_local_folder_the_option_names_is_loaded(tiny_checkpoint, tmp_path):
    reference = PolicyRuntime(tiny_checkpoint, RuntimeOptions(device="cpu", warmup=0))
    kind = reference.policy_type
    copy, moved = split_checkpoint(tiny_checkpoint, tmp_path)
    loaded = load_checkpoint(copy, "cpu", **{OPTION[kind]: str(moved)})
    assert loaded.tokenizer_dir == moved  # SmolVLA's tokenizer is its VLM's
    assert loaded.vlm_dir == (moved if kind == "smolvla" else None)
    options = RuntimeOptions(device="cpu", warmup=0, **{OPTION[kind]: str(moved)})
    np.testing.assert_array_equal(chunk(PolicyRuntime(copy, options)), chunk(reference))


def test_without_the_option_the_moved_folder_is_missed(tiny_checkpoint, tmp_path):
    """The option is what made the loading above work: without it, the load fails."""
    copy, _ = split_checkpoint(tiny_checkpoint, tmp_path)
    with pytest.raises(CheckpointError):
        PolicyRuntime(copy, RuntimeOptions(device="cpu", warmup=0))


@pytest.mark.parametrize(
    ("kind", "folder", "message"),
    [
        ("smolvla", "nowhere", "vlm_path {} does not exist"),
        ("smolvla", "a_file", "vlm_path {} is not a folder"),
        ("smolvla", "empty", "vlm_path {} has no config.json"),
        ("pi05", "nowhere", "tokenizer_path {} does not exist"),
        ("pi05", "empty", "tokenizer_path {} has no tokenizer_config.json"),
        ("pi05", "broken", "could not load the pre/post-processors"),
    ],
)
def test_a_wrong_folder_is_a_clear_error(kind, folder, message, request, tmp_path):
    checkpoint = request.getfixturevalue(f"tiny_{kind}_dir")
    path = tmp_path / folder
    if folder == "a_file":
        path.write_text("not a folder")
    elif folder == "empty":
        path.mkdir()
    elif folder == "broken":  # a tokenizer folder whose files are not a tokenizer
        path.mkdir()
        (path / "tokenizer_config.json").write_text("{ not json")
    options = RuntimeOptions(device="cpu", warmup=0, **{OPTION[kind]: str(path)})
    with pytest.raises(CheckpointError) as exc:
        PolicyRuntime(checkpoint, options)
    assert message.format(path) in str(exc.value)


def test_the_node_passes_the_option_and_reports_a_wrong_folder(tiny_smolvla_dir, tmp_path):
    """``vlm_path`` as a node parameter: configure fails with the same clear reason."""
    wrong = tmp_path / "no_vlm_here"
    params = node_parameters(
        {"policy_path": str(tiny_smolvla_dir), "vlm_path": str(wrong), "torch_threads": 1}
    )
    node = InProcessNode(domain_id(26), params)
    try:
        node.node.autostart()
        assert node.node.state_label == "unconfigured"
        error = node.node.report().configure_error
        assert f"vlm_path {wrong} does not exist" in error, error
    finally:
        node.close()
    assert not node.errors, node.errors
