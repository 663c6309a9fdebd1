"""Settings of a distillation run, their validation, and the run folder checks."""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from snapflow_training.data import parse_rename_map
from snapflow_training.errors import DistillError
from snapflow_training.normalization import STATS_SOURCES
from snapflow_training.objective import SnapFlowConfig
from snapflow_training.schedule import SCHEDULES
from snapflow_training.student import TRAIN_MODES

RUN_FILE = "run.json"
DTYPES = ("float32", "bfloat16")
DEVICES = ("auto", "cpu", "cuda")
# Settings that must not change when a run is resumed (the result would not be one run).
RESUME_FIXED = (
    "policy",
    "dataset",
    "train",
    "batch_size",
    "seed",
    "alpha",
    "lam",
    "progressive",
    "consistency_target",
    "consistency_times",
    "ramp_steps",
    "recursive_levels",
    "target_source",
    "ema_decay",
    "flow_target",
    "eval_episodes",
    "normalization_stats",
    "rename_map",
)
_OBJ = SnapFlowConfig()
# Warm-up when --warmup-steps is not given: LeRobot's SmolVLA / pi0.5 presets use 1000 steps
# of 30000; shorter runs get the same fraction (LeRobot rescales it likewise).
WARMUP_STEPS, WARMUP_FRACTION = 1000, 1 / 30


@dataclass
class DistillSettings:
    """Everything ``distill`` can be told (see ``distill --help`` for each option)."""

    policy: str
    dataset: str
    output: str
    steps: int = 30000
    batch_size: int = 8
    lr: float = 2.5e-5
    min_lr: float = 2.5e-6
    warmup_steps: int | None = None
    schedule: str = "cosine"
    weight_decay: float | None = None
    grad_clip: float | None = None
    alpha: float = _OBJ.alpha
    lam: float = _OBJ.lam
    progressive: str = _OBJ.progressive
    consistency_target: str = _OBJ.consistency_target
    consistency_times: str = _OBJ.consistency_times
    ramp_steps: int = _OBJ.ramp_steps
    recursive_levels: int = _OBJ.recursive_levels
    target_source: str = _OBJ.target_source
    ema_decay: float = _OBJ.ema_decay
    # distill's one departure from SnapFlowConfig's defaults (measured; see its docstring)
    flow_target: str = "teacher"
    train: str = "expert"
    device: str = "auto"
    dtype: str = "float32"
    seed: int = 0
    eval_episodes: str = "0.1"
    eval_interval: int = 1000
    eval_samples: int = 256
    eval_batch_size: int | None = None
    fidelity_frames: int = 32
    fidelity_draws: int = 16
    eval_student_steps: tuple[int, ...] = (2, 4, 10)
    mode_dim: int | None = None
    mode_group: str | None = None
    latency_repeats: int = 5
    save_interval: int = 1000
    log_interval: int = 10
    keep_checkpoints: int = 2
    num_workers: int = 4
    resume: bool = False
    overwrite: bool = False
    eval_only: bool = False
    student: str | None = None
    stop_after: int | None = None
    vlm_path: str | None = None
    tokenizer_path: str | None = None
    normalization_stats: str = "checkpoint"
    rename_map: dict[str, str] | None = None
    progress_bar: bool = True

    def warmup(self) -> int:
        """Warm-up steps: as given, or ``min(1000, steps / 30)`` (at least 1) by default."""
        if self.warmup_steps is None:
            return min(WARMUP_STEPS, max(1, int(self.steps * WARMUP_FRACTION)))
        return self.warmup_steps

    def renames(self) -> dict[str, str]:
        """The dataset -> policy key map of ``--rename-map`` (empty without one)."""
        return parse_rename_map(self.rename_map)

    def objective(self) -> SnapFlowConfig:
        """The SnapFlow objective these settings describe (validated)."""
        try:
            return SnapFlowConfig(
                alpha=self.alpha,
                lam=self.lam,
                consistency_target=self.consistency_target,  # type: ignore[arg-type]
                progressive=self.progressive,  # type: ignore[arg-type]
                ramp_steps=self.ramp_steps,
                consistency_times=self.consistency_times,  # type: ignore[arg-type]
                recursive_levels=self.recursive_levels,
                target_source=self.target_source,  # type: ignore[arg-type]
                ema_decay=self.ema_decay,
                flow_target=self.flow_target,  # type: ignore[arg-type]
            )
        except ValueError as exc:
            raise DistillError(f"--{str(exc).replace('_', '-', 1)}") from exc

    def validate(self) -> None:
        """Refuse out-of-range numbers and unknown choices (one clear message)."""
        _int_at_least("steps", self.steps, 1)
        _int_at_least("batch-size", self.batch_size, 1)
        _positive("lr", self.lr)
        _finite_at_least("min-lr", self.min_lr, 0.0)
        if self.min_lr > self.lr:
            raise DistillError(f"--min-lr ({self.min_lr}) must not exceed --lr ({self.lr})")
        if self.warmup_steps is not None:
            _int_at_least("warmup-steps", self.warmup_steps, 0)
            if self.warmup_steps >= self.steps:
                raise DistillError(
                    f"--warmup-steps ({self.warmup_steps}) must be shorter than --steps "
                    f"({self.steps}): the learning rate would never leave the warm-up (leave "
                    "--warmup-steps out for steps / 30)"
                )
        if self.weight_decay is not None:
            _finite_at_least("weight-decay", self.weight_decay, 0.0)
        if self.grad_clip is not None:
            _finite_at_least("grad-clip", self.grad_clip, 0.0)
        if not (isinstance(self.alpha, int | float) and 0.0 <= self.alpha <= 1.0):
            raise DistillError(f"--alpha must be in [0, 1], got {self.alpha}")
        _finite_at_least("lam", self.lam, 0.0)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("train", self.train, TRAIN_MODES)
        _choice("dtype", self.dtype, DTYPES)
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise DistillError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        names = ("eval_interval", "save_interval", "keep_checkpoints", "num_workers")
        for name in (*names, "latency_repeats"):
            _int_at_least(name.replace("_", "-"), getattr(self, name), 0)
        _int_at_least("log-interval", self.log_interval, 1)
        _int_at_least("eval-samples", self.eval_samples, 1)
        _int_at_least("fidelity-frames", self.fidelity_frames, 0)
        _int_at_least("fidelity-draws", self.fidelity_draws, 2)
        for steps in self.eval_student_steps:
            _int_at_least("eval-student-steps", steps, 2)
        if self.mode_dim is not None:
            _int_at_least("mode-dim", self.mode_dim, 0)
        _choice("normalization-stats", self.normalization_stats, STATS_SOURCES)
        self.rename_map = self.renames() or None
        if self.eval_batch_size is not None:
            _int_at_least("eval-batch-size", self.eval_batch_size, 1)
        if self.stop_after is not None:
            _int_at_least("stop-after", self.stop_after, 1)
        if self.resume and self.overwrite:
            raise DistillError("--resume and --overwrite contradict each other; pass one")
        if self.eval_only and self.resume:
            raise DistillError("--eval-only does not train; drop --resume")
        self.objective()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return asdict(self)


def _int_at_least(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DistillError(f"--{name} must be an integer >= {minimum}, got {value!r}")


def _positive(name: str, value: Any) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise DistillError(f"--{name} must be a finite number > 0, got {value!r}")


def _finite_at_least(name: str, value: Any, minimum: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= minimum):
        raise DistillError(f"--{name} must be a finite number >= {minimum}, got {value!r}")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise DistillError(f"--{name} must be one of {', '.join(choices)}, got {value!r}")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output(settings: DistillSettings) -> Path:
    """Check the output folder before anything slow happens (nothing is written here)."""
    out = Path(settings.output).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise DistillError(f"--output {out} exists and is not a folder")
    anchor = _nearest_existing(out)
    if not anchor.is_dir() or not os.access(anchor, os.W_OK | os.X_OK):
        raise DistillError(f"--output {out} cannot be created: {anchor} is not a writable folder")
    if settings.eval_only:
        return out
    non_empty = out.is_dir() and any(out.iterdir())
    if settings.resume:
        from snapflow_training.checkpointing import last_checkpoint

        if not non_empty or last_checkpoint(out) is None:
            raise DistillError(f"--resume: {out} holds no training checkpoint to resume from")
    elif non_empty:
        if not settings.overwrite:
            raise DistillError(
                f"--output {out} is not empty; pass --resume to continue the run there or "
                "--overwrite to replace it"
            )
        if not (out / RUN_FILE).is_file():
            raise DistillError(
                f"--overwrite refused: {out} is not empty and is not a distillation run "
                f"folder (no {RUN_FILE})"
            )
    return out


def create_output(out: Path, clear: bool) -> None:
    """Create (or empty, for ``--overwrite``) the run folder; unwritable -> DistillError."""
    try:
        if clear and out.is_dir():
            for item in out.iterdir():
                if item.is_dir() and not item.is_symlink():
                    shutil.rmtree(item)
                else:
                    item.unlink()
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise DistillError(f"--output {out} is not writable: {exc}") from exc


def write_run_file(out: Path, settings: DistillSettings, extra: dict[str, Any]) -> None:
    """Record the run's settings (checked again on --resume)."""
    body = {"settings": settings.as_dict(), **extra}
    (out / RUN_FILE).write_text(json.dumps(body, indent=2, default=str))


def read_run_file(out: Path) -> dict[str, Any]:
    """The recorded settings of a run folder."""
    path = out / RUN_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DistillError(f"{path} is missing or unreadable: {exc}") from exc


def check_resume_compatible(settings: DistillSettings, recorded: dict[str, Any]) -> None:
    """Refuse to resume with settings that would make it a different run."""
    saved = recorded.get("settings", {})
    names = {f.name for f in fields(DistillSettings)}
    changed = [
        f"--{k.replace('_', '-')} {saved.get(k)!r} -> {getattr(settings, k)!r}"
        for k in RESUME_FIXED
        if k in names and k in saved and saved[k] != getattr(settings, k)
    ]
    if changed:
        raise DistillError(
            "cannot --resume with changed settings: " + "; ".join(changed) + " (start a new run)"
        )
