"""SnapFlow checkpoint export and atomic, exactly resumable training checkpoints.

Layout of a run folder::

    <output>/model/                      final SnapFlow checkpoint (runtime-loadable)
    <output>/checkpoints/step_00001000/
        model/                           SnapFlow checkpoint at that step (runtime-loadable)
        training_state/                  optimizer.pt, scheduler.pt, rng_<rank>.pt, progress.json
    <output>/checkpoints/last -> step_00001000

Every folder is written under a temporary name and renamed into place, so a crash leaves either
the previous checkpoint or the new one, never a half-written one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from snapflow_ros.runtime import checkpoint as ckpt
from snapflow_ros.runtime.target_time import TARGET_TIME_WEIGHTS, TargetTimeEmbedding
from snapflow_training.errors import DistillError

MODEL_DIR = "model"
CHECKPOINTS_DIR = "checkpoints"
STATE_DIR = "training_state"
LAST_LINK = "last"
PROGRESS_FILE = "progress.json"
# Teacher files never copied into a SnapFlow checkpoint (written fresh or not wanted).
SKIP_FILES = {ckpt.MODEL_WEIGHTS, ckpt.SNAPFLOW_META, TARGET_TIME_WEIGHTS, "config.json"}
# Teacher files copied: metadata, processor configs and their state (normalisation stats).
COPIED_SUFFIXES = (".json", ".md", ".txt", ".yaml")
# Small files of a VLM / tokenizer folder given with --vlm-path / --tokenizer-path.
PROCESSOR_SUFFIXES = (".json", ".txt", ".model", ".jinja", ".tiktoken")


def _copy_small_files(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for item in sorted(src.iterdir()):
        if item.is_file() and item.name.endswith(PROCESSOR_SUFFIXES):
            shutil.copy2(item, dest / item.name)


def export_snapflow_checkpoint(
    out_dir: Path,
    policy: nn.Module,
    embedding: TargetTimeEmbedding,
    meta: ckpt.SnapFlowMeta,
    teacher_dir: Path,
    vlm_dir: Path | None = None,
    tokenizer_dir: Path | None = None,
) -> Path:
    """Write a SnapFlow checkpoint: a LeRobot checkpoint + target-time weights + metadata.

    ``config.json`` is the teacher's own (the architecture is unchanged and the loaded config
    was adjusted for local loading); the pre/post-processor files, ``vlm/``, ``tokenizer/`` and
    the tiny-architecture override are copied from the teacher. A VLM or tokenizer folder given
    on the command line is copied (its small files only) so the result loads offline.
    """
    out_dir = Path(out_dir)
    policy.save_pretrained(out_dir)
    for item in sorted(teacher_dir.iterdir()):
        wanted = item.name.endswith(COPIED_SUFFIXES) or (
            "processor" in item.name and item.name.endswith(".safetensors")
        )
        if item.is_file() and wanted and item.name not in SKIP_FILES:
            shutil.copy2(item, out_dir / item.name)
        elif item.is_dir() and item.name in ("vlm", "tokenizer"):
            shutil.copytree(item, out_dir / item.name, dirs_exist_ok=True)
    shutil.copy2(teacher_dir / "config.json", out_dir / "config.json")
    sub = "vlm" if meta.policy_type == "smolvla" else "tokenizer"
    extra = vlm_dir if meta.policy_type == "smolvla" else tokenizer_dir
    if extra is not None and not (out_dir / sub).exists():
        _copy_small_files(Path(extra), out_dir / sub)
    ckpt.write_snapflow_files(out_dir, meta, embedding)
    return out_dir


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished ``tmp`` folder to ``final``, replacing an older one."""
    if final.exists():
        trash = final.with_name(f".old-{final.name}-{os.getpid()}")
        final.rename(trash)
        tmp.rename(final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        tmp.rename(final)


def staging_dir(final: Path, clear: bool = True) -> Path:
    """The temporary folder next to ``final`` (same file system, so rename is atomic).

    Its name is deterministic so that every process of a multi-process run finds it.
    """
    tmp = final.with_name(f".tmp-{final.name}")
    if clear:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    return tmp


def publish_model(output: Path, write: Any) -> Path:
    """Write the final SnapFlow checkpoint to ``<output>/model`` atomically via ``write(dir)``."""
    final = output / MODEL_DIR
    tmp = staging_dir(final)
    write(tmp)
    _replace_dir(tmp, final)
    return final


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every random state a training step depends on."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
        "generator_device": str(generator.device),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def step_dir_name(step: int) -> str:
    """Folder name of the checkpoint at ``step``."""
    return f"step_{step:08d}"


def begin_checkpoint(
    output: Path,
    step: int,
    write_model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    progress: dict[str, Any],
) -> Path:
    """Main process: write model + optimizer + scheduler + progress into a staging folder."""
    final = output / CHECKPOINTS_DIR / step_dir_name(step)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_dir(final)
    write_model(tmp / MODEL_DIR)
    state = tmp / STATE_DIR
    state.mkdir()
    torch.save(optimizer.state_dict(), state / "optimizer.pt")
    torch.save(scheduler.state_dict(), state / "scheduler.pt")
    (state / PROGRESS_FILE).write_text(json.dumps({**progress, "step": step}, indent=2))
    return tmp


SHADOW_FILE = "shadow.pt"


def save_shadow(staging: Path, values: list[torch.Tensor]) -> None:
    """Add the EMA / frozen-teacher weights of the targets to a staging checkpoint."""
    torch.save(values, staging / STATE_DIR / SHADOW_FILE)


def load_shadow(path: Path) -> list[torch.Tensor]:
    """The target weights saved by :func:`save_shadow` in a training checkpoint."""
    file = path / STATE_DIR / SHADOW_FILE
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        msg = f"training checkpoint {path} has no readable {SHADOW_FILE}: {exc}"
        raise DistillError(msg) from exc


def write_rng(output: Path, step: int, rank: int, generator: torch.Generator) -> None:
    """Every process: add its random states to the staging folder of ``step``."""
    final = output / CHECKPOINTS_DIR / step_dir_name(step)
    tmp = staging_dir(final, clear=False)
    torch.save(rng_state(generator), tmp / STATE_DIR / f"rng_{rank}.pt")


def commit_checkpoint(output: Path, step: int, keep: int) -> Path:
    """Main process: rename the staging folder into place, point ``last`` at it, prune."""
    root = output / CHECKPOINTS_DIR
    final = root / step_dir_name(step)
    _replace_dir(staging_dir(final, clear=False), final)
    link_tmp = root / f".{LAST_LINK}-{os.getpid()}"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    link_tmp.symlink_to(final.name)
    os.replace(link_tmp, root / LAST_LINK)
    prune_checkpoints(root, keep)
    return final


def prune_checkpoints(root: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step folders (``keep <= 0`` keeps all)."""
    if keep <= 0:
        return
    steps = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def last_checkpoint(output: Path) -> Path | None:
    """The newest complete training checkpoint of a run folder, or None."""
    root = output / CHECKPOINTS_DIR
    link = root / LAST_LINK
    if link.is_symlink() and (link.resolve() / STATE_DIR / PROGRESS_FILE).is_file():
        return link.resolve()
    steps = sorted(p for p in root.glob("step_*") if (p / STATE_DIR / PROGRESS_FILE).is_file())
    return steps[-1] if steps else None


def load_training_state(path: Path, rank: int = 0) -> dict[str, Any]:
    """Optimizer, scheduler, this process's RNG states and progress of a training checkpoint."""
    state = path / STATE_DIR

    def load(name: str) -> Any:
        return torch.load(state / name, map_location="cpu", weights_only=False)

    rng_file = f"rng_{rank}.pt"
    if not (state / rng_file).is_file():  # resumed on more processes than it was saved with
        rng_file = "rng_0.pt"
    try:
        return {
            "optimizer": load("optimizer.pt"),
            "scheduler": load("scheduler.pt"),
            "rng": load(rng_file),
            "progress": json.loads((state / PROGRESS_FILE).read_text()),
        }
    except (OSError, RuntimeError, json.JSONDecodeError) as exc:
        raise DistillError(f"training checkpoint {path} is unreadable: {exc}") from exc


def load_student_weights(
    policy: nn.Module, policy_type: str, embedding: TargetTimeEmbedding, model_dir: Path
) -> None:
    """Load a saved student (LeRobot weights + target-time weights), verified complete."""
    meta = ckpt.SnapFlowMeta.read(model_dir)
    if meta is None:
        raise DistillError(f"{model_dir} has no {ckpt.SNAPFLOW_META}")
    ckpt.load_verified_weights(policy, policy_type, model_dir)
    saved = ckpt.load_target_time(model_dir, meta)
    embedding.load_state_dict(saved.state_dict(), strict=True)
