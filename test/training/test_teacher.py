"""The teacher recipe: LeRobot's own lerobot-train on a local dataset, exported for distill."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from snapflow_training.distill_cli import main as distill_main
from snapflow_training.errors import DistillError
from snapflow_training.teacher import (
    TEACHER_DIR,
    TeacherRecipe,
    build_command,
    offline_env,
    train_teacher,
    write_vlm_folder,
)

from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions


def test_command_is_offline_and_fits_the_dataset(teacher_dataset: Path, tmp_path: Path) -> None:
    vlm = write_vlm_folder(tmp_path / "vlm", "small")
    recipe = TeacherRecipe(str(teacher_dataset), str(tmp_path / "run"), steps=50, episodes=[0, 2])
    command = build_command(recipe, vlm, tmp_path)
    args = dict(a.removeprefix("--").split("=", 1) for a in command if a.startswith("--"))
    assert args["policy.type"] == "smolvla" and args["policy.load_vlm_weights"] == "false"
    assert args["policy.vlm_model_name"] == str(vlm)
    assert args["dataset.root"] == str(teacher_dataset) and args["dataset.episodes"] == "[0,2]"
    assert args["policy.max_state_dim"] == "8" and args["policy.max_action_dim"] == "8"
    assert args["policy.num_vlm_layers"] == "4" and args["policy.push_to_hub"] == "false"
    assert args["policy.scheduler_decay_steps"] == args["steps"] == "50"
    longest = max(len(t) for t in ("reach the red target", "reach the blue target"))
    assert int(args["policy.tokenizer_max_length"]) >= longest + 8
    assert json.loads((vlm / "config.json").read_text())["text_config"]["hidden_size"] == 128
    env = offline_env()
    assert env["HF_HUB_OFFLINE"] == "1" and env["WANDB_MODE"] == "disabled"


def test_image_size_sets_the_vlm_input_and_its_token_count(
    teacher_dataset: Path, tmp_path: Path
) -> None:
    vlm = write_vlm_folder(tmp_path / "vlm", "tiny", image_size=128)
    config = json.loads((vlm / "config.json").read_text())
    processor = json.loads((vlm / "processor_config.json").read_text())
    assert config["vision_config"]["image_size"] == 128
    assert processor["image_seq_len"] == 16  # (128 / 16-pixel patches / 2x2 shuffle) ** 2
    recipe = TeacherRecipe(str(teacher_dataset), str(tmp_path / "run"), image_size=128)
    command = build_command(recipe, vlm, tmp_path)
    assert "--policy.resize_imgs_with_padding=[128,128]" in command
    default = write_vlm_folder(tmp_path / "vlm64", "tiny")
    assert json.loads((default / "processor_config.json").read_text())["image_seq_len"] == 4


@pytest.mark.parametrize("size", [0, 100, 1024, True])
def test_bad_image_sizes_are_refused(teacher_dataset: Path, tmp_path: Path, size: int) -> None:
    with pytest.raises(DistillError, match="--image-size must be a multiple of 32"):
        train_teacher(TeacherRecipe(str(teacher_dataset), str(tmp_path / "a"), image_size=size))
    assert not (tmp_path / "a").exists()


def test_bad_recipes_are_refused(teacher_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(DistillError, match="not a local LeRobot dataset"):
        train_teacher(TeacherRecipe(str(tmp_path / "nope"), str(tmp_path / "a")))
    with pytest.raises(DistillError, match="--steps"):
        train_teacher(TeacherRecipe(str(teacher_dataset), str(tmp_path / "b"), steps=0))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(DistillError, match="not empty"):
        train_teacher(TeacherRecipe(str(teacher_dataset), str(busy), steps=2))


@pytest.mark.slow
def test_lerobot_train_teacher_distils_and_runs(teacher_dataset: Path, tmp_path: Path) -> None:
    """The documented path: lerobot-train -> exported teacher -> distill -> runtime."""
    recipe = TeacherRecipe(
        str(teacher_dataset), str(tmp_path / "t"), steps=6, batch_size=4, image_size=96
    )  # not the default 64: the option reaches lerobot-train, the export and the runtime
    teacher = train_teacher(recipe, quiet=True)
    assert teacher == tmp_path / "t" / TEACHER_DIR
    record = json.loads((tmp_path / "t" / "teacher.json").read_text())
    assert record["command"][1:3] == ["-m", "lerobot.scripts.lerobot_train"]
    config = json.loads((teacher / "config.json").read_text())
    assert config["type"] == "smolvla" and config["vlm_model_name"] == str(teacher / "vlm")
    assert config["resize_imgs_with_padding"] == [96, 96]
    plain = PolicyRuntime(teacher, RuntimeOptions(device="cpu", warmup=0))
    assert not plain.is_snapflow and plain.default_num_steps == 10
    out = tmp_path / "d"
    code = distill_main(
        ["--policy", str(teacher), "--dataset", str(teacher_dataset), "--output", str(out),
         "--steps", "2", "--batch-size", "4", "--eval-episodes", "0", "--num-workers", "0",
         "--device", "cpu", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    student = PolicyRuntime(out / "model", RuntimeOptions(device="cpu", warmup=0))
    assert student.is_snapflow and student.default_num_steps == 1
    chunk = student.predict_chunk(student.dummy_observation())
    assert chunk.actions.shape == (10, 7) and np.all(np.isfinite(chunk.actions))
