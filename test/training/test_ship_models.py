"""Shipping a teacher + SnapFlow student into the package: what is copied, the manifest, the
size limit, and that the shipped folders load in the runtime from wherever they are."""

from __future__ import annotations

import json
import shutil

import pytest
from snapflow_training.ship_models import main, ship

from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions
from test.runtime.helpers import make_observation, make_snapflow_copy


@pytest.fixture(scope="module")
def pair(tiny_smolvla_dir, tmp_path_factory):
    """A tiny teacher and a SnapFlow copy of it, with files that must not be shipped."""
    root = tmp_path_factory.mktemp("pair")
    teacher = root / "teacher"
    shutil.copytree(tiny_smolvla_dir, teacher)
    (teacher / "train_config.json").write_text("{}")
    (teacher / "training_state").mkdir()
    (teacher / "training_state" / "optimizer.safetensors").write_bytes(b"x" * 10)
    runtime = PolicyRuntime(str(tiny_smolvla_dir), RuntimeOptions(device="cpu"))
    student = make_snapflow_copy(runtime, tiny_smolvla_dir, root / "student", scale=0.01)
    return teacher, student


def test_ship_copies_the_loadable_files_and_writes_a_manifest(pair, tmp_path):
    teacher, student = pair
    out = ship("pair", teacher, student, {"seed": 3}, models_dir=tmp_path / "models")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 3 and 0 < manifest["size_mb"] < 25
    files = manifest["policies"]["teacher"]["files"]
    assert "model.safetensors" in files and "train_config.json" not in files
    assert not (out / "teacher" / "training_state").exists()
    assert "snapflow.json" in manifest["policies"]["snapflow"]["files"]
    moved = tmp_path / "elsewhere"  # nothing points back at the source folders
    shutil.move(str(out), moved)
    rt = PolicyRuntime(str(moved / "snapflow"), RuntimeOptions(device="cpu"))
    assert rt.is_snapflow and rt.default_num_steps == 1
    chunk = rt.predict_chunk(make_observation(rt))
    assert chunk.actions.shape == (10, 7)


def test_ship_refuses_a_plain_student_and_too_large_models(pair, tmp_path):
    teacher, student = pair
    with pytest.raises(ValueError, match="not a SnapFlow checkpoint"):
        ship("x", teacher, teacher, {}, models_dir=tmp_path)
    with pytest.raises(ValueError, match="more than --max-mb"):
        ship("x", teacher, student, {}, models_dir=tmp_path, max_mb=0.001)
    assert not (tmp_path / "x").exists()
    code = main(["--name", "x", "--teacher", str(tmp_path / "missing"), "--student",
                 str(student), "--models-dir", str(tmp_path)])  # fmt: skip
    assert code == 2
