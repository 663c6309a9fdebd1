"""Train a small SmolVLA or pi0.5 teacher offline with LeRobot's own ``lerobot-train``.

A SnapFlow student is distilled from a flow-matching teacher; the teacher comes from LeRobot's
trainer, not from ``distill`` (whose ``--alpha 1`` is an ablation only). This module builds the
``lerobot-train`` command for a local LeRobotDataset and a tiny or small SmolVLA whose VLM is
built from a local config folder (no Hub, random VLM weights), runs it, and turns LeRobot's
``checkpoints/last/pretrained_model`` into a checkpoint folder that ``distill`` and the
runtime load (``vlm/`` inside, ``vlm_model_name`` pointing at it).

``--policy-type pi05`` trains a tiny pi0.5 (LeRobot's ``pi05`` type, the sizes of the
project's ``tiny:libero-pi05`` with 8 attention heads) the same way: LeRobot's training loop
runs through :mod:`snapflow_training.pi05_train`, which applies the project's
tiny-architecture override and a local tokenizer inside the ``lerobot-train`` process.

Run folder layout (``--output RUN``)::

    RUN/vlm/            SmolVLA: the VLM config + tokenizer folder the policy is built from
    RUN/tokenizer/      pi0.5: the local tokenizer (instead of the Hub's PaliGemma one)
    RUN/snapflow_tiny_arch.json  pi0.5: the tiny sizes (snapflow_ros.runtime.tiny_pi05_arch)
    RUN/lerobot/        lerobot-train's own output (checkpoints/, train_config.json, logs)
    RUN/teacher/        the checkpoint folder to pass to ``distill --policy``
    RUN/teacher.json    the recipe and the exact command that was run

Example::

    python -m snapflow_training.teacher --dataset DATA --output runs/teacher --steps 3000
    distill --policy runs/teacher/teacher --dataset DATA --output runs/snapflow
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from snapflow_training.errors import DistillError

if TYPE_CHECKING:
    from snapflow_ros.runtime.tiny_pi05_arch import TinyPI05Arch

VlmSize = Literal["tiny", "small"]
VLM_SIZES: tuple[str, ...] = ("tiny", "small")
PolicyType = Literal["smolvla", "pi05"]
POLICY_TYPES: tuple[str, ...] = ("smolvla", "pi05")
# Overrides of the tiny VLM (snapflow_ros.policies.tiny) that make the "small" one: 4x the width.
SMALL_VLM = {
    "text": {"hidden_size": 128, "intermediate_size": 512, "head_dim": 32},
    "vision": {"hidden_size": 64, "intermediate_size": 128},
}
VLM_DIR, LEROBOT_DIR, TEACHER_DIR, RECIPE_FILE = "vlm", "lerobot", "teacher", "teacher.json"
TOKENIZER_DIR = "tokenizer"  # pi0.5: the same name the runtime looks for in a checkpoint
PI05_LAUNCHER = "snapflow_training.pi05_train"
PI05_DEFAULT_IMAGE = 64
PI05_MIN_TOKENS = 48  # tiny:libero-pi05's tokenizer_max_length
# pi0.5's prompt around the task: "Task: <task>, State: <one 0-255 bin per dim>;\nAction: "
PI05_PROMPT_BYTES = len("Task: , State: ;\nAction: ")
PI05_BYTES_PER_STATE = 4  # up to 3 digits and a space per state dimension
PI05_MEAN_STD_ACTIONS = (
    '--policy.normalization_mapping={"VISUAL": "IDENTITY", "STATE": "QUANTILES", '
    '"ACTION": "MEAN_STD"}'
)
PI05_TRAIN_HEADS = 8
"""Attention heads of both Gemma towers of a pi0.5 teacher. LeRobot's training forward (prefix
and actions through the layers together, ``compute_layer_complete``) reshapes the attention
output to ``8 * head_dim``, so training needs 8 heads; the tiny test model has 2 (it is only
sampled, which takes another path). Every other size is ``tiny:libero-pi05``'s."""
LAST_PRETRAINED = Path("checkpoints") / "last" / "pretrained_model"
IMAGE_MULTIPLE = 32  # the VLM's 16-pixel patches, pixel-shuffled 2x2 into one token


@dataclass
class TeacherRecipe:
    """How to train the teacher (the defaults are the benchmark's, see docs/distillation.md).

    ``policy_type``: ``smolvla`` (tiny or small VLM, ``vlm_size``) or ``pi05`` (a tiny pi0.5,
    :func:`pi05_teacher_arch`; ``vlm_size`` must stay ``tiny``).
    ``train_expert_only`` / ``freeze_vision_encoder`` are LeRobot's SmolVLA options; the VLM
    here has random weights, so by default everything trains. ``lr`` is the peak of LeRobot's
    warm-up + cosine schedule (``warmup_steps``, decaying to ``lr / 10`` over ``steps``).
    ``image_size``: the VLM's input size in pixels (camera frames are resized and padded to
    it); a multiple of 32 (16-pixel patches, 2x2 pixel shuffle). Default: the VLM's 64.
    ``episodes``: train on these episodes only (e.g. keep evaluation episodes out).
    ``extra``: further ``--key=value`` arguments passed to ``lerobot-train`` unchanged.
    """

    dataset: str
    output: str
    policy_type: PolicyType = "smolvla"
    vlm_size: VlmSize = "tiny"
    image_size: int | None = None
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 100
    chunk_size: int = 10
    n_action_steps: int | None = None
    num_steps: int = 10
    train_expert_only: bool = False
    freeze_vision_encoder: bool = False
    seed: int = 1000
    num_workers: int = 0
    device: str = "cpu"
    episodes: list[int] | None = None
    extra: list[str] = field(default_factory=list)

    def validate(self) -> None:
        """Refuse values ``lerobot-train`` would reject late (or silently misread)."""
        if self.policy_type not in POLICY_TYPES:
            raise DistillError(
                f"--policy-type must be one of {POLICY_TYPES}, got {self.policy_type!r}"
            )
        if self.vlm_size not in VLM_SIZES:
            raise DistillError(f"--vlm-size must be one of {VLM_SIZES}, got {self.vlm_size!r}")
        if self.policy_type == "pi05" and self.vlm_size != "tiny":
            raise DistillError(
                "--vlm-size applies to SmolVLA only; a pi0.5 teacher has tiny:libero-pi05's "
                "sizes with 8 attention heads (leave --vlm-size at tiny)"
            )
        for name in ("steps", "batch_size", "chunk_size", "num_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DistillError(f"--{name.replace('_', '-')} must be an integer >= 1")
        size = self.image_size
        if size is not None and (
            isinstance(size, bool)
            or not isinstance(size, int)
            or not 32 <= size <= 512
            or size % IMAGE_MULTIPLE
        ):
            raise DistillError(
                f"--image-size must be a multiple of {IMAGE_MULTIPLE} in [32, 512], got {size!r}"
            )
        if self.n_action_steps is not None and not 1 <= self.n_action_steps <= self.chunk_size:
            raise DistillError("--n-action-steps must be in [1, --chunk-size]")
        if not self.lr > 0 or self.warmup_steps < 0:
            raise DistillError("--lr must be > 0 and --warmup-steps >= 0")
        if not (Path(self.dataset) / "meta" / "info.json").is_file():
            raise DistillError(f"--dataset {self.dataset} is not a local LeRobot dataset folder")


def write_vlm_folder(dest: Path, size: VlmSize, image_size: int | None = None) -> Path:
    """The local VLM folder (config, processor, tokenizer) the SmolVLA is built from."""
    from transformers import SmolVLMConfig

    from snapflow_ros.policies.tiny import write_smolvla_vlm

    write_smolvla_vlm(dest, "tiny", image_size)
    if size == "small":
        config = SmolVLMConfig.from_pretrained(dest)
        for key, value in SMALL_VLM["text"].items():
            setattr(config.text_config, key, value)
        for key, value in SMALL_VLM["vision"].items():
            setattr(config.vision_config, key, value)
        config.save_pretrained(dest)
    return dest


def _dataset_shapes(root: Path) -> tuple[int, int, int]:
    """State width, action width and the longest task prompt (bytes) of a local dataset."""
    info = json.loads((root / "meta" / "info.json").read_text())
    features = info["features"]
    state = int(features["observation.state"]["shape"][0]) if "observation.state" in features else 0
    action = int(features["action"]["shape"][0])
    longest = 0
    tasks = root / "meta" / "tasks.parquet"
    if tasks.is_file():
        import pandas as pd

        frame = pd.read_parquet(tasks)
        names = list(frame.index) if "task" not in frame.columns else list(frame["task"])
        longest = max((len(str(name).encode()) for name in names), default=0)
    return state, action, longest


def build_command(recipe: TeacherRecipe, vlm_dir: Path, train_dir: Path) -> list[str]:
    """The ``lerobot-train`` command line (as ``python -m lerobot.scripts.lerobot_train``)."""
    from transformers import SmolVLMConfig

    root = Path(recipe.dataset).resolve()
    state_dim, action_dim, prompt = _dataset_shapes(root)
    vlm = SmolVLMConfig.from_pretrained(vlm_dir)
    image = int(vlm.vision_config.image_size)
    # byte-level tokenizer: one token per byte, plus SmolVLA's newline and some room
    max_length = max(32, 8 * -(-(prompt + 8) // 8))
    args = {
        "policy.type": "smolvla",
        "policy.vlm_model_name": str(vlm_dir),
        "policy.load_vlm_weights": "false",
        "policy.num_vlm_layers": str(vlm.text_config.num_hidden_layers),
        "policy.chunk_size": str(recipe.chunk_size),
        "policy.n_action_steps": str(recipe.n_action_steps or recipe.chunk_size),
        "policy.num_steps": str(recipe.num_steps),
        "policy.resize_imgs_with_padding": f"[{image},{image}]",
        "policy.max_state_dim": str(max(8, state_dim)),
        "policy.max_action_dim": str(max(8, action_dim)),
        "policy.tokenizer_max_length": str(max_length),
        **_common_args(recipe, root, train_dir),
    }
    command = [sys.executable, "-m", "lerobot.scripts.lerobot_train"]
    command += [f"--{key}={value}" for key, value in args.items()]
    return command + list(recipe.extra)


def _common_args(recipe: TeacherRecipe, root: Path, train_dir: Path) -> dict[str, str]:
    """``lerobot-train`` arguments shared by both policy types (schedule, data, output)."""
    args = {
        "policy.train_expert_only": str(recipe.train_expert_only).lower(),
        "policy.freeze_vision_encoder": str(recipe.freeze_vision_encoder).lower(),
        "policy.optimizer_lr": repr(recipe.lr),
        "policy.scheduler_warmup_steps": str(recipe.warmup_steps),
        "policy.scheduler_decay_steps": str(recipe.steps),
        "policy.scheduler_decay_lr": repr(recipe.lr / 10),
        "policy.device": recipe.device,
        "policy.push_to_hub": "false",
        "dataset.repo_id": f"local/{root.name}",
        "dataset.root": str(root),
        "output_dir": str(train_dir),
        "steps": str(recipe.steps),
        "batch_size": str(recipe.batch_size),
        "num_workers": str(recipe.num_workers),
        "seed": str(recipe.seed),
        "save_freq": str(recipe.steps),
        "log_freq": str(max(1, min(200, recipe.steps // 20))),
        "wandb.enable": "false",
    }
    if recipe.episodes is not None:
        args["dataset.episodes"] = "[" + ",".join(str(e) for e in recipe.episodes) + "]"
    return args


def pi05_tokenizer_length(longest_task: int, state_dim: int) -> int:
    """pi0.5's ``tokenizer_max_length`` for the byte-level tokenizer (one token per byte):
    the whole prompt (task and discretised state) of the dataset's longest task, with room."""
    needed = PI05_PROMPT_BYTES + longest_task + PI05_BYTES_PER_STATE * state_dim + 8
    return max(PI05_MIN_TOKENS, 8 * -(-needed // 8))


def write_pi05_assets(run_dir: Path) -> Path:
    """The local tokenizer and the tiny-size record a pi0.5 teacher is built from; returns
    the tokenizer folder (``run_dir/tokenizer``; the sizes go to ``run_dir``)."""
    from snapflow_ros.policies.tokenizer import build_byte_tokenizer, tokenizer_vocab_size

    arch = pi05_teacher_arch()
    if tokenizer_vocab_size() > arch.vocab_size:
        raise DistillError("the byte-level tokenizer does not fit the tiny pi0.5 vocabulary")
    run_dir.mkdir(parents=True, exist_ok=True)
    arch.save(run_dir)
    return build_byte_tokenizer(run_dir / TOKENIZER_DIR)


def flat_quantile_dims(stats: dict) -> dict[str, list[int]]:
    """State / action dimensions whose 1st and 99th percentiles coincide although the values
    vary: LeRobot's quantile normalisation (pi0.5's default for both) divides by that zero
    range, so their normalised values (and the training loss) explode."""
    flat: dict[str, list[int]] = {}
    for key in ("observation.state", "action"):
        block = stats.get(key, {})
        if not all(name in block for name in ("q01", "q99", "min", "max")):
            continue
        rows = zip(block["q01"], block["q99"], block["min"], block["max"], strict=True)
        dims = [i for i, (lo, hi, mn, mx) in enumerate(rows) if hi - lo < 1e-6 < mx - mn]
        if dims:
            flat[key] = dims
    return flat


def pi05_warnings(recipe: TeacherRecipe) -> list[str]:
    """What is worth knowing before a pi0.5 run starts (flat quantiles, see
    :func:`flat_quantile_dims`), unless the normalisation is overridden after ``--``."""
    if any(a.startswith("--policy.normalization_mapping") for a in recipe.extra):
        return []
    stats_file = Path(recipe.dataset) / "meta" / "stats.json"
    if not stats_file.is_file():
        return []
    flat = flat_quantile_dims(json.loads(stats_file.read_text()))
    return [
        f"{key} dimension(s) {dims} of {recipe.dataset} have q01 == q99 but vary: pi0.5's "
        "quantile normalisation blows them up (huge training loss). Vary the data, or "
        f"normalise with mean/std instead, after --: '{PI05_MEAN_STD_ACTIONS}' (the same "
        "with STATE for the state)"
        for key, dims in flat.items()
    ]


def pi05_teacher_arch() -> TinyPI05Arch:
    """The pi0.5 teacher's sizes: ``tiny:libero-pi05``'s with :data:`PI05_TRAIN_HEADS` heads."""
    from dataclasses import replace

    from snapflow_ros.runtime.tiny_pi05_arch import TinyPI05Arch

    tiny = TinyPI05Arch()
    return replace(
        tiny,
        vlm=replace(tiny.vlm, num_heads=PI05_TRAIN_HEADS),
        expert=replace(tiny.expert, num_heads=PI05_TRAIN_HEADS),
    )


def build_pi05_command(recipe: TeacherRecipe, run_dir: Path, train_dir: Path) -> list[str]:
    """The command that runs ``lerobot-train`` on a tiny pi0.5 (through
    :mod:`snapflow_training.pi05_train`, which applies the tiny sizes of
    ``run_dir/snapflow_tiny_arch.json`` and the tokenizer of ``run_dir/tokenizer``)."""
    root = Path(recipe.dataset).resolve()
    state_dim, action_dim, prompt = _dataset_shapes(root)
    max_state = max(8, state_dim)
    image = recipe.image_size or PI05_DEFAULT_IMAGE
    args = {
        "policy.type": "pi05",
        "policy.dtype": "float32",
        "policy.chunk_size": str(recipe.chunk_size),
        "policy.n_action_steps": str(recipe.n_action_steps or recipe.chunk_size),
        "policy.num_inference_steps": str(recipe.num_steps),
        "policy.image_resolution": f"[{image},{image}]",
        "policy.max_state_dim": str(max_state),
        "policy.max_action_dim": str(max(8, action_dim)),
        "policy.tokenizer_max_length": str(pi05_tokenizer_length(prompt, max_state)),
        **_common_args(recipe, root, train_dir),
    }
    command = [sys.executable, "-m", PI05_LAUNCHER]
    command += ["--arch-dir", str(run_dir), "--tokenizer", str(run_dir / TOKENIZER_DIR), "--"]
    command += [f"--{key}={value}" for key, value in args.items()]
    return command + list(recipe.extra)


def offline_env() -> dict[str, str]:
    """The environment of the training process: no Hub, no telemetry."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="disabled")
    return env


def export_teacher(train_dir: Path, vlm_dir: Path, dest: Path) -> Path:
    """Copy LeRobot's last ``pretrained_model`` + the VLM folder into a checkpoint folder.

    ``config.json`` is rewritten only to point ``vlm_model_name`` at the copied ``vlm/``, so
    LeRobot's own ``from_pretrained`` loads the folder too.
    """
    staging = _stage_last_checkpoint(train_dir, dest)
    shutil.copytree(vlm_dir, staging / VLM_DIR)
    config_path = staging / "config.json"
    config = json.loads(config_path.read_text())
    config["vlm_model_name"] = str((dest / VLM_DIR).resolve())
    config_path.write_text(json.dumps(config, indent=4))
    return _publish(staging, dest)


def export_pi05_teacher(train_dir: Path, run_dir: Path, dest: Path) -> Path:
    """Copy LeRobot's last ``pretrained_model`` into a checkpoint folder with the local
    ``tokenizer/`` and the tiny-size record, which the runtime applies when it loads it."""
    from snapflow_ros.runtime.tiny_pi05_arch import TINY_ARCH_FILE

    staging = _stage_last_checkpoint(train_dir, dest)
    shutil.copytree(run_dir / TOKENIZER_DIR, staging / TOKENIZER_DIR)
    shutil.copy2(run_dir / TINY_ARCH_FILE, staging / TINY_ARCH_FILE)
    return _publish(staging, dest)


def _stage_last_checkpoint(train_dir: Path, dest: Path) -> Path:
    """A fresh copy of lerobot-train's last ``pretrained_model`` next to ``dest``."""
    source = train_dir / LAST_PRETRAINED
    if not (source / "model.safetensors").is_file():
        raise DistillError(f"lerobot-train left no checkpoint at {source}")
    staging = dest.with_name(f".{dest.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source.resolve(), staging)
    return staging


def _publish(staging: Path, dest: Path) -> Path:
    """Replace ``dest`` by the finished ``staging`` folder."""
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest


def check_teacher(path: Path) -> None:
    """Load the exported teacher exactly as ``distill`` and the runtime do (verified weights)."""
    from snapflow_ros.runtime.checkpoint import load_checkpoint
    from snapflow_ros.runtime.errors import CheckpointError

    try:
        load_checkpoint(path, "cpu")
    except CheckpointError as exc:
        raise DistillError(f"the exported teacher {path} does not load: {exc}") from exc


def train_teacher(recipe: TeacherRecipe, quiet: bool = False) -> Path:
    """Run ``lerobot-train`` for ``recipe`` and export the teacher; returns its folder."""
    recipe.validate()
    out = Path(recipe.output).expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        raise DistillError(f"--output {out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    train_dir = out / LEROBOT_DIR
    if recipe.policy_type == "pi05":
        write_pi05_assets(out)
        command = build_pi05_command(recipe, out, train_dir)
    else:
        vlm_dir = write_vlm_folder(out / VLM_DIR, recipe.vlm_size, recipe.image_size)
        command = build_command(recipe, vlm_dir, train_dir)
    record: dict = {"recipe": asdict(recipe), "command": command}
    if recipe.policy_type == "pi05" and (warnings := pi05_warnings(recipe)):
        record["warnings"] = warnings
        for warning in warnings:
            print(f"snapflow_teacher: warning: {warning}", file=sys.stderr)
    (out / RECIPE_FILE).write_text(json.dumps(record, indent=2))
    start = time.perf_counter()
    log = (out / "lerobot_train.log").open("w")
    try:
        proc = subprocess.run(
            command,
            env=offline_env(),
            stdout=log if quiet else None,
            stderr=subprocess.STDOUT if quiet else None,
            check=False,
        )
    finally:
        log.close()
    if proc.returncode != 0:
        log_file = out / "lerobot_train.log"
        raise DistillError(f"lerobot-train failed (exit code {proc.returncode}, see {log_file})")
    if recipe.policy_type == "pi05":
        teacher = export_pi05_teacher(train_dir, out, out / TEACHER_DIR)
    else:
        teacher = export_teacher(train_dir, vlm_dir, out / TEACHER_DIR)
    check_teacher(teacher)
    record["seconds"] = round(time.perf_counter() - start, 1)
    record["teacher"] = str(teacher)
    (out / RECIPE_FILE).write_text(json.dumps(record, indent=2))
    return teacher


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    d = TeacherRecipe(dataset="", output="")
    p = argparse.ArgumentParser(
        prog="snapflow_teacher",
        description="Train a tiny/small SmolVLA or a tiny pi0.5 teacher offline with "
        "lerobot-train and export a checkpoint folder for distill (docs/distillation.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", required=True, help="local LeRobotDataset root folder")
    p.add_argument("--output", required=True, help="run folder (teacher in <output>/teacher)")
    p.add_argument(
        "--policy-type",
        choices=POLICY_TYPES,
        default=d.policy_type,
        help="LeRobot policy type: smolvla, or pi05 (a tiny pi0.5: tiny:libero-pi05's sizes "
        "with 8 attention heads)",
    )
    p.add_argument("--vlm-size", choices=VLM_SIZES, default=d.vlm_size, help="SmolVLA's VLM size")
    p.add_argument(
        "--image-size",
        type=int,
        help=f"VLM input size in pixels, a multiple of {IMAGE_MULTIPLE} (default: 64; pi0.5: "
        "its image_resolution); match the dataset's frames (e.g. demonstrations recorded with "
        "--image-size 128)",
    )
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    p.add_argument("--chunk-size", type=int, default=d.chunk_size)
    p.add_argument("--n-action-steps", type=int, help="default: --chunk-size")
    p.add_argument("--num-steps", type=int, default=d.num_steps, help="teacher's Euler steps")
    p.add_argument("--train-expert-only", action="store_true", help="freeze the VLM")
    p.add_argument("--freeze-vision-encoder", action="store_true")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--num-workers", type=int, default=d.num_workers)
    p.add_argument("--device", default=d.device)
    p.add_argument("--episodes", help="train on these episodes only, e.g. 0,1,2,5")
    p.add_argument("--quiet", action="store_true", help="lerobot-train's output to a log file")
    p.add_argument("extra", nargs="*", help="after --: further lerobot-train arguments")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point: train, export, print the teacher folder."""
    args = build_parser().parse_args(argv)
    episodes = None
    if args.episodes:
        episodes = [int(e) for e in args.episodes.strip("[]").split(",") if e.strip()]
    recipe = TeacherRecipe(
        dataset=args.dataset,
        output=args.output,
        policy_type=args.policy_type,
        vlm_size=args.vlm_size,
        image_size=args.image_size,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        chunk_size=args.chunk_size,
        n_action_steps=args.n_action_steps,
        num_steps=args.num_steps,
        train_expert_only=args.train_expert_only,
        freeze_vision_encoder=args.freeze_vision_encoder,
        seed=args.seed,
        num_workers=args.num_workers,
        device=args.device,
        episodes=episodes,
        extra=list(args.extra),
    )
    try:
        teacher = train_teacher(recipe, quiet=args.quiet)
    except DistillError as exc:
        print(f"snapflow_teacher: error: {exc}", file=sys.stderr)
        return 2
    print(f"teacher checkpoint: {teacher}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
