"""The shipped LIBERO teacher distils by its name: a few steps of `distill --policy
libero:teacher` on a small dataset with LIBERO's features, and the student it writes runs one
step per chunk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from snapflow_training.distill_cli import main as distill_main
from snapflow_training.synthetic_dataset import SyntheticSpec, ensure_synthetic_dataset

from snapflow_ros.policies import resolve_policy
from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions

LIBERO_LIKE = SyntheticSpec(
    num_episodes=3, episode_length=12, fps=20, image_height=64, image_width=64,
    camera_names=("image", "image2"), state_dim=8, action_dim=7, seed=4,
)  # fmt: skip


def test_the_shipped_teacher_distils_and_its_student_runs(tmp_path: Path) -> None:
    teacher = resolve_policy("libero:teacher")
    manifest = json.loads((teacher.parent / "manifest.json").read_text())
    assert manifest["name"] == "libero_object_t0" and manifest["size_mb"] <= 25
    data = ensure_synthetic_dataset(tmp_path / "data", LIBERO_LIKE)
    out = tmp_path / "run"
    code = distill_main(
        ["--policy", "libero:teacher", "--dataset", str(data), "--output", str(out),
         "--steps", "3", "--batch-size", "4", "--lr", "1e-3", "--eval-episodes", "0",
         "--num-workers", "0", "--device", "cpu", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    student = PolicyRuntime(out / "model", RuntimeOptions(device="cpu", warmup=0))
    assert student.is_snapflow and student.default_num_steps == 1
    assert student.snapflow.base_policy == "libero:teacher"  # the name, not one machine's path
    chunk = student.predict_chunk(student.dummy_observation())
    assert chunk.actions.shape == (10, 7) and np.all(np.isfinite(chunk.actions))
    assert chunk.num_steps == 1
