"""``distill``: SnapFlow self-distillation of a LeRobot SmolVLA / pi0.5 checkpoint.

Examples::

    distill --policy CKPT --dataset DATA --output runs/snapflow --steps 30000
    distill --policy CKPT --dataset DATA --output runs/snapflow --steps 30000 --resume
    distill --policy CKPT --dataset DATA --output runs/snapflow --eval-only
    torchrun --standalone --nproc-per-node 2 -m snapflow_training.distill_cli ... (2 processes)
    accelerate launch --multi_gpu --num_processes 4 -m snapflow_training.distill_cli ... (4 GPUs)

With several processes only the main one prints (log, summary); an error is printed by each
process that meets it, tagged with its rank.

Bad inputs (missing dataset, features that do not fit the policy, unsupported policy type,
unusable output folder, out-of-range numbers) end with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn

from snapflow_ros.runtime.errors import CheckpointError
from snapflow_training.errors import DistillError
from snapflow_training.normalization import STATS_SOURCES
from snapflow_training.objective import (
    ConsistencyTarget,
    ConsistencyTimes,
    FlowTarget,
    Progressive,
    TargetSource,
)
from snapflow_training.settings import DTYPES, DistillSettings

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
_DEFAULTS = DistillSettings(policy="", dataset="", output="")


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _choices(literal: object) -> tuple[str, ...]:
    from typing import get_args

    return tuple(get_args(literal))


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    d = _DEFAULTS
    p = _Parser(
        prog="distill",
        description="SnapFlow self-distillation: one-step sampling for a LeRobot SmolVLA / "
        "pi0.5 checkpoint (docs/distillation.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    io = p.add_argument_group("inputs and output")
    io.add_argument(
        "--policy",
        required=True,
        help="teacher: checkpoint folder, Hub repo id or a shipped name "
        "(libero:teacher, tiny:smolvla)",
    )
    io.add_argument("--dataset", required=True, help="LeRobotDataset root folder or Hub repo id")
    io.add_argument("--output", required=True, help="run folder (final model in <output>/model)")
    io.add_argument("--resume", action="store_true", help="continue the run in --output")
    io.add_argument("--overwrite", action="store_true", help="replace an earlier run in --output")
    io.add_argument("--vlm-path", help="local SmolVLA VLM folder (config + processor files)")
    io.add_argument("--tokenizer-path", help="local tokenizer folder (pi0.5: PaliGemma's)")
    io.add_argument(
        "--rename-map",
        help="JSON map of dataset keys to the policy's, e.g. '{\"observation.images.top\": "
        "\"observation.images.front\"}' (LeRobot's rename_map)",
    )
    io.add_argument(
        "--normalization-stats",
        choices=STATS_SOURCES,
        default=d.normalization_stats,
        help="checkpoint: normalise with the teacher's statistics (a warning lists dimensions "
        "where the dataset's differ widely); dataset: replace them by the dataset's, as "
        "lerobot-train does when fine-tuning (the student carries them)",
    )

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--steps", type=int, default=d.steps, help="optimizer steps in total")
    opt.add_argument("--batch-size", type=int, default=d.batch_size, help="per process")
    opt.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    opt.add_argument("--min-lr", type=float, default=d.min_lr, help="lr at the end of the decay")
    opt.add_argument(
        "--warmup-steps",
        type=int,
        default=d.warmup_steps,
        help="linear warm-up; default: min(1000, steps / 30); must be < --steps",
    )
    opt.add_argument("--schedule", choices=("cosine", "constant"), default=d.schedule)
    opt.add_argument("--weight-decay", type=float, help="default: the checkpoint config's")
    opt.add_argument("--grad-clip", type=float, help="max grad norm; default: the config's")
    opt.add_argument(
        "--train",
        choices=("expert", "all"),
        default=d.train,
        help="expert: action expert + projections + target-time embedding (VLM frozen, prefix "
        "encoded once without grad); all: the whole model",
    )
    opt.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    opt.add_argument(
        "--dtype",
        "--amp",
        dest="dtype",
        choices=DTYPES,
        default=d.dtype,
        help="bfloat16: autocast of the model passes (fp32 master weights)",
    )
    opt.add_argument("--seed", type=int, default=d.seed)
    opt.add_argument("--num-workers", type=int, default=d.num_workers, help="DataLoader workers")

    obj = p.add_argument_group("SnapFlow objective")
    obj.add_argument("--alpha", type=float, default=d.alpha, help="flow-matching fraction")
    obj.add_argument("--lam", type=float, default=d.lam, help="consistency loss weight")
    obj.add_argument("--progressive", choices=_choices(Progressive), default=d.progressive)
    obj.add_argument(
        "--consistency-target", choices=_choices(ConsistencyTarget), default=d.consistency_target
    )
    obj.add_argument(
        "--consistency-times", choices=_choices(ConsistencyTimes), default=d.consistency_times
    )
    obj.add_argument("--ramp-steps", type=int, default=d.ramp_steps, help="for --progressive ramp")
    obj.add_argument(
        "--recursive-levels",
        type=int,
        default=d.recursive_levels,
        help="for --progressive recursive",
    )
    obj.add_argument(
        "--target-source",
        choices=_choices(TargetSource),
        default=d.target_source,
        help="network making the consistency targets: the student itself, its EMA, or the "
        "frozen teacher for the instantaneous velocities",
    )
    obj.add_argument("--ema-decay", type=float, default=d.ema_decay, help="--target-source ema")
    obj.add_argument(
        "--flow-target",
        choices=_choices(FlowTarget),
        default=d.flow_target,
        help="what the flow-matching samples regress on: the data's velocity eps - a, or the "
        "frozen teacher's velocity (keeps the student's s = t branch at the teacher)",
    )

    ev = p.add_argument_group("evaluation, logging, checkpoints")
    ev.add_argument(
        "--eval-episodes",
        default=d.eval_episodes,
        help="held-out episodes: a count, a fraction or a comma-separated list",
    )
    ev.add_argument("--eval-interval", type=int, default=d.eval_interval, help="0: at the end")
    ev.add_argument("--eval-samples", type=int, default=d.eval_samples, help="frames evaluated")
    ev.add_argument("--eval-batch-size", type=int, help="default: --batch-size")
    ev.add_argument(
        "--fidelity-frames",
        type=int,
        default=d.fidelity_frames,
        help="eval frames (evenly spaced) for the distribution metrics (0: none)",
    )
    ev.add_argument(
        "--fidelity-draws",
        type=int,
        default=d.fidelity_draws,
        help="noise draws per frame for the distribution metrics (energy distance, spread)",
    )
    ev.add_argument(
        "--eval-student-steps",
        type=int,
        nargs="*",
        default=list(d.eval_student_steps),
        metavar="N",
        help="step counts (>= 2) the student is also evaluated with, besides one step "
        "(rows snapflow_<N>_steps; none: one step only)",
    )
    ev.add_argument(
        "--mode-dim",
        type=int,
        help="action dimension whose sign is a mode (e.g. left/right): report how often "
        "draws commit to a mode and pick the recorded sign",
    )
    ev.add_argument(
        "--mode-group",
        help="per-frame dataset feature to split the mode metrics by (e.g. mode_visible)",
    )
    ev.add_argument(
        "--latency-repeats",
        type=int,
        default=d.latency_repeats,
        help="timed batch-1 runs per method in each evaluation (0: no timing)",
    )
    ev.add_argument("--eval-only", action="store_true", help="evaluate, do not train")
    ev.add_argument("--student", help="--eval-only: SnapFlow checkpoint (default <output>/model)")
    ev.add_argument("--save-interval", type=int, default=d.save_interval)
    ev.add_argument(
        "--keep-checkpoints",
        type=int,
        default=d.keep_checkpoints,
        help="newest training checkpoints kept (0: all)",
    )
    ev.add_argument("--log-interval", type=int, default=d.log_interval)
    ev.add_argument(
        "--stop-after",
        type=int,
        help="checkpoint and exit after this many steps of this call (e.g. for "
        "time-limited jobs); continue later with --resume",
    )
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def settings_from_args(args: argparse.Namespace) -> DistillSettings:
    """Command-line namespace -> settings."""
    values = vars(args).copy()
    values["progress_bar"] = not values.pop("no_progress")
    return DistillSettings(**values)


def _summary(result) -> str:
    lines = []
    if result.model_dir is not None:
        lines.append(f"SnapFlow checkpoint: {result.model_dir}")
    if result.samples_per_s is not None:
        lines.append(f"training throughput (median): {result.samples_per_s:.1f} samples/s")
    if result.report is not None:
        parts = [f"{name} mse={m['mse']:.5g}" for name, m in result.report["methods"].items()]
        lines.append(f"eval at step {result.report['step']}: " + ", ".join(parts))
        fidelity = [
            f"{name} energy={m['fidelity']['energy_distance']:.4g}"
            for name, m in result.report["methods"].items()
            if "energy_distance" in (m.get("fidelity") or {})
        ]
        if fidelity:
            floor = result.report["fidelity_floor"]["energy_distance"]
            head = f"energy distance to the teacher (floor {floor:.4g}): "
            lines.append(head + ", ".join(fidelity))
        lines.append("(MSE rewards averaging; the energy distance does not: see the report)")
    return "\n".join(lines)


def _launch_rank() -> int:
    """The rank a launcher gave this process (torchrun, accelerate, MPI); 0 when none."""
    for name in ("RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMI_RANK"):
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``distill``; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(f"distill: error: {exc} (see distill --help)", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("snapflow_training").setLevel(logging.INFO)
    settings = settings_from_args(args)
    from snapflow_training.distill import distill, evaluate_only

    try:
        result = evaluate_only(settings) if settings.eval_only else distill(settings)
    except (DistillError, CheckpointError) as exc:
        rank = _launch_rank()
        where = f" (process {rank})" if rank else ""
        print(f"distill: error{where}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not result.main_process:  # the main process reports for all
        return EXIT_INTERRUPTED if result.interrupted else 0
    print(_summary(result))
    if result.interrupted:
        print(f"interrupted at step {result.step}; continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not result.finished:
        print(f"stopped at step {result.step} (--stop-after); continue with --resume")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
