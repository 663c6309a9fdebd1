"""A tiny pi0.5 teacher trained by LeRobot's own lerobot-train (``--policy-type pi05``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from snapflow_training.distill_cli import main as distill_main
from snapflow_training.errors import DistillError
from snapflow_training.teacher import (
    PI05_LAUNCHER,
    PI05_TRAIN_HEADS,
    TEACHER_DIR,
    TeacherRecipe,
    build_pi05_command,
    flat_quantile_dims,
    pi05_teacher_arch,
    train_teacher,
    write_pi05_assets,
)
from snapflow_training.teacher import main as teacher_main

from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions
from snapflow_ros.runtime.tiny_pi05_arch import TINY_ARCH_FILE, TinyPI05Arch


def lerobot_args(command: list[str]) -> dict[str, str]:
    """``--key=value`` arguments after the launcher's ``--``."""
    rest = command[command.index("--") + 1 :]
    return dict(a.removeprefix("--").split("=", 1) for a in rest)


def test_pi05_command_runs_lerobot_train_through_the_launcher(
    teacher_dataset: Path, tmp_path: Path
) -> None:
    tokenizer = write_pi05_assets(tmp_path)
    recipe = TeacherRecipe(str(teacher_dataset), str(tmp_path / "r"), policy_type="pi05", steps=40)
    command = build_pi05_command(recipe, tmp_path, tmp_path / "lerobot")
    assert command[1:3] == ["-m", PI05_LAUNCHER]
    assert command[3:8] == ["--arch-dir", str(tmp_path), "--tokenizer", str(tokenizer), "--"]
    args = lerobot_args(command)
    assert args["policy.type"] == "pi05" and args["policy.dtype"] == "float32"
    assert args["policy.image_resolution"] == "[64,64]"
    assert args["policy.chunk_size"] == args["policy.n_action_steps"] == "10"
    assert args["policy.num_inference_steps"] == "10"
    assert args["policy.max_state_dim"] == "8" and args["policy.max_action_dim"] == "8"
    assert args["dataset.root"] == str(teacher_dataset)
    assert args["policy.scheduler_decay_steps"] == args["steps"] == "40"
    assert args["policy.push_to_hub"] == "false" and args["wandb.enable"] == "false"
    # the whole prompt of the longest task fits: "Task: <task>, State: <8 bins>;\nAction: "
    prompt = f"Task: reach the blue target, State: {' '.join(['255'] * 8)};\nAction: "
    assert int(args["policy.tokenizer_max_length"]) >= len(prompt)
    # tiny:libero-pi05's sizes, with the 8 attention heads LeRobot's training forward needs
    arch = TinyPI05Arch.load(tmp_path)
    tiny = TinyPI05Arch()
    assert arch == pi05_teacher_arch()
    assert arch.vlm.num_heads == arch.expert.num_heads == PI05_TRAIN_HEADS != tiny.vlm.num_heads
    assert (arch.vlm.width, arch.expert.width, arch.vocab_size) == (
        tiny.vlm.width,
        tiny.expert.width,
        tiny.vocab_size,
    )
    assert (tokenizer / "tokenizer_config.json").is_file()


def test_wrong_policy_type_is_refused(
    teacher_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        teacher_main(["--dataset", str(teacher_dataset), "--output", str(tmp_path / "a"),
                      "--policy-type", "pi0"])  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--policy-type: invalid choice: 'pi0'" in err and "smolvla" in err and "pi05" in err
    with pytest.raises(DistillError, match=r"--policy-type must be one of \('smolvla', 'pi05'\)"):
        train_teacher(TeacherRecipe(str(teacher_dataset), str(tmp_path / "b"), policy_type="pi0"))
    with pytest.raises(DistillError, match="--vlm-size applies to SmolVLA only"):
        train_teacher(
            TeacherRecipe(
                str(teacher_dataset), str(tmp_path / "c"), policy_type="pi05", vlm_size="small"
            )
        )
    assert not any((tmp_path / name).exists() for name in "abc")


def test_flat_quantiles_are_found() -> None:
    stats = {
        "observation.state": {"q01": [0, 1], "q99": [1, 1], "min": [0, 1], "max": [1, 1]},
        "action": {"q01": [0.5, -1], "q99": [0.5, 1], "min": [-1, -1], "max": [1, 1]},
    }
    # state dim 1 is constant (harmless); action dim 0 varies with a zero 1-99% range
    assert flat_quantile_dims(stats) == {"action": [0]}
    assert flat_quantile_dims({"action": {"mean": [0.0]}}) == {}


def test_lerobot_train_pi05_teacher_loads_and_distils(
    teacher_dataset: Path, tmp_path: Path
) -> None:
    """lerobot-train (pi05) -> exported teacher -> runtime with verified weights -> distill."""
    recipe = TeacherRecipe(
        str(teacher_dataset), str(tmp_path / "t"), policy_type="pi05", steps=3, batch_size=4
    )
    teacher = train_teacher(recipe, quiet=True)
    assert teacher == tmp_path / "t" / TEACHER_DIR
    record = json.loads((tmp_path / "t" / "teacher.json").read_text())
    assert record["command"][1:3] == ["-m", PI05_LAUNCHER]
    assert record["recipe"]["policy_type"] == "pi05"
    assert "step:3 " in (tmp_path / "t" / "lerobot_train.log").read_text()
    config = json.loads((teacher / "config.json").read_text())
    assert config["type"] == "pi05" and config["image_resolution"] == [64, 64]
    assert (teacher / TINY_ARCH_FILE).is_file() and (teacher / "tokenizer").is_dir()

    rt = PolicyRuntime(teacher, RuntimeOptions(device="cpu", warmup=0))
    assert rt.policy_type == "pi05" and not rt.is_snapflow and rt.default_num_steps == 10
    # the weights are the trained ones, not a fresh random model: every saved tensor is in
    # the loaded policy, equal to the file
    saved = load_file(teacher / "model.safetensors")
    loaded = rt.policy.state_dict()
    assert "model.action_out_proj.weight" in saved
    for key, value in saved.items():
        assert torch.equal(loaded[key], value), key
    # LeRobot's own sampling of a dataset frame: a (1, chunk, action_dim) chunk
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    frame = LeRobotDataset("local/teacher_3x12", root=teacher_dataset)[5]
    keys = (*rt.image_keys, "observation.state")
    batch = rt.preprocessor({**{k: frame[k] for k in keys}, "task": frame["task"]})
    with torch.no_grad():
        actions = rt.postprocessor(rt.policy.predict_action_chunk(batch))
    assert actions.shape == (1, 10, 7) and torch.isfinite(actions).all()
    # and the runtime's (the ROS node's, libero_eval's) path
    chunk = rt.predict_chunk(rt.dummy_observation())
    assert chunk.actions.shape == (10, 7) and np.all(np.isfinite(chunk.actions))

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


def test_launcher_refuses_missing_pieces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from snapflow_training.pi05_train import main as launch

    run = tmp_path / "run"
    tokenizer = write_pi05_assets(run)
    cases = [
        (["--arch-dir", str(tmp_path), "--tokenizer", str(tokenizer)], TINY_ARCH_FILE),
        (["--arch-dir", str(run), "--tokenizer", str(tmp_path)], "tokenizer_config"),
        (["--arch-dir", str(run), "--tokenizer", str(tokenizer)], "--policy.type=pi05"),
    ]
    for own, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            launch([*own, "--", "--policy.type=smolvla"])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
