"""Missing, corrupt and mismatched checkpoints are refused with clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from snapflow_ros.runtime import CheckpointError, PolicyRuntime, RuntimeOptions
from snapflow_ros.runtime.checkpoint import SNAPFLOW_META
from snapflow_ros.runtime.target_time import TARGET_TIME_WEIGHTS

OPTS = RuntimeOptions(device="cpu", warmup=0)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        PolicyRuntime(tmp_path / "nope", OPTS)


def test_file_instead_of_folder(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="is a file"):
        PolicyRuntime(f, OPTS)


def test_unreachable_hub_id_is_explained(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="neither a local folder nor a reachable"):
        PolicyRuntime("someone/not-a-local-folder", OPTS)


def test_folder_without_config(tmp_path):
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        PolicyRuntime(tmp_path / "ckpt", OPTS)


def test_invalid_config_json(tiny_smolvla_dir, tmp_path):
    ck = _copy(tiny_smolvla_dir, tmp_path / "ck")
    (ck / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        PolicyRuntime(ck, OPTS)


def test_unsupported_policy_type(tiny_smolvla_dir, tmp_path):
    ck = _copy(tiny_smolvla_dir, tmp_path / "ck")
    cfg = json.loads((ck / "config.json").read_text())
    cfg["type"] = "act"
    (ck / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="'act' is not supported"):
        PolicyRuntime(ck, OPTS)


def test_pickle_only_checkpoint_is_refused(tiny_smolvla_dir, tmp_path):
    ck = _copy(tiny_smolvla_dir, tmp_path / "ck")
    (ck / "model.safetensors").unlink()
    torch.save({"w": torch.zeros(1)}, ck / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="only safetensors"):
        PolicyRuntime(ck, OPTS)


def test_truncated_weights(tiny_smolvla_dir, tmp_path):
    ck = _copy(tiny_smolvla_dir, tmp_path / "ck")
    data = (ck / "model.safetensors").read_bytes()
    (ck / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        PolicyRuntime(ck, OPTS)


def test_missing_weight_is_refused(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint, tmp_path / "ck")
    weights = load_file(ck / "model.safetensors")
    dropped = sorted(k for k in weights if "action_out_proj" in k)[0]
    del weights[dropped]
    save_file(weights, ck / "model.safetensors")
    with pytest.raises(CheckpointError, match="1 missing weights"):
        PolicyRuntime(ck, OPTS)


def test_unexpected_weight_is_refused(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint, tmp_path / "ck")
    weights = load_file(ck / "model.safetensors")
    weights["model.some_extra_head.weight"] = torch.zeros(2, 2)
    save_file(weights, ck / "model.safetensors")
    with pytest.raises(CheckpointError, match="1 unexpected weights"):
        PolicyRuntime(ck, OPTS)


def test_weights_of_another_architecture_are_refused(tiny_smolvla_dir, tiny_pi05_dir, tmp_path):
    ck = _copy(tiny_pi05_dir, tmp_path / "ck")
    shutil.copy(tiny_smolvla_dir / "model.safetensors", ck / "model.safetensors")
    with pytest.raises(CheckpointError, match="does not match the model"):
        PolicyRuntime(ck, OPTS)


def test_wrong_shape_weight_is_refused(tiny_smolvla_dir, tmp_path):
    ck = _copy(tiny_smolvla_dir, tmp_path / "ck")
    weights = load_file(ck / "model.safetensors")
    key = next(k for k in weights if k.endswith("action_out_proj.weight"))
    weights[key] = torch.zeros(3, 3)
    save_file(weights, ck / "model.safetensors")
    with pytest.raises(CheckpointError, match="does not match the model"):
        PolicyRuntime(ck, OPTS)


def test_snapflow_metadata_without_weights(tiny_smolvla_dir, tmp_path):
    ck = _copy(tiny_smolvla_dir, tmp_path / "ck")
    (ck / SNAPFLOW_META).write_text(
        json.dumps(
            {
                "format_version": 1,
                "base_policy": "x",
                "policy_type": "smolvla",
                "target_time": {"width": 48, "min_period": 0.004, "max_period": 4.0},
            }
        )
    )
    with pytest.raises(CheckpointError, match=f"no {TARGET_TIME_WEIGHTS}"):
        PolicyRuntime(ck, OPTS)


def test_snapflow_metadata_for_another_policy_type(tiny_smolvla_dir, tmp_path):
    ck = _copy(tiny_smolvla_dir, tmp_path / "ck")
    (ck / SNAPFLOW_META).write_text(
        json.dumps(
            {
                "format_version": 1,
                "base_policy": "x",
                "policy_type": "pi05",
                "target_time": {"width": 32, "min_period": 0.004, "max_period": 4.0},
            }
        )
    )
    with pytest.raises(CheckpointError, match="snapflow.json is for 'pi05'"):
        PolicyRuntime(ck, OPTS)


def test_bad_options_are_refused(tiny_smolvla_dir):
    with pytest.raises(CheckpointError, match="unknown dtype"):
        PolicyRuntime(tiny_smolvla_dir, RuntimeOptions(dtype="float8"))
    with pytest.raises(CheckpointError, match="unknown device"):
        PolicyRuntime(tiny_smolvla_dir, RuntimeOptions(device="tpu"))
    if not torch.cuda.is_available():
        with pytest.raises(CheckpointError, match="CUDA is not available"):
            PolicyRuntime(tiny_smolvla_dir, RuntimeOptions(device="cuda"))
    with pytest.raises(ValueError, match="num_steps"):
        PolicyRuntime(tiny_smolvla_dir, RuntimeOptions(device="cpu", num_steps=0))
