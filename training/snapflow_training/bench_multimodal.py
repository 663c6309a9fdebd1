"""Multimodal benchmark: does the one-step student keep the teacher's modes?

Pipeline (every stage cached in ``--work``):

1. a synthetic LeRobotDataset with a hidden per-episode mode (:mod:`.multimodal_dataset`,
   made with LeRobot's dataset API): the sign of ``action[3]``, shown in the front camera in
   half of the episodes only;
2. a tiny SmolVLA teacher trained on the training episodes by LeRobot's own ``lerobot-train``
   (:mod:`.teacher`);
3. ``distill`` with the project's defaults (plus the budget given here), one run per seed;
4. the eval report's fidelity metrics on the held-out episodes (K noise draws per frame):
   energy distance to the 10-step teacher vs the teacher's floor, mode commitment on frames
   whose mode is hidden, right sign on frames whose mode is visible; plus multi-step sampling
   of the student (``s = t - 1/N`` vs the trained-jumps rule).

Run: ``python -m snapflow_training.bench_multimodal --out results.json`` (``--size ci`` for the
CI-sized version; ``--work`` defaults to ``~/.cache/snapflow_ros/bench_multimodal``, or
``$SNAPFLOW_CACHE/bench_multimodal``). ``--distill-arg`` passes further ``distill`` options,
e.g. ``--distill-arg=--lam=1``. The result (JSON with the table under ``markdown``) follows
the benchmark suite's format (``snapflow_ros.bench.output``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from snapflow_ros.bench.machine import machine_info
from snapflow_ros.bench.output import emit
from snapflow_training.multimodal_dataset import (
    MODE_DIM,
    VISIBLE_KEY,
    MultimodalSpec,
    ensure_multimodal_dataset,
)
from snapflow_training.teacher import TEACHER_DIR, TeacherRecipe, train_teacher

HIDDEN, VISIBLE = f"{VISIBLE_KEY}=0", f"{VISIBLE_KEY}=1"
MULTI_STEPS = (2, 3, 4, 10)


@dataclass(frozen=True)
class BenchSize:
    """Dataset, teacher and distillation budget of one benchmark size.

    The distillation runs with ``distill``'s defaults except these: steps, batch and the
    learning rate (the default 2.5e-5 is LeRobot's fine-tuning scale for full-size models;
    the tiny models here need 1e-3, measured: 3e-4 gives a worse student at 300 steps).
    """

    episodes: int
    episode_length: int
    eval_episodes: int
    teacher_steps: int
    teacher_batch: int
    distill_steps: int
    distill_batch: int
    distill_lr: float
    fidelity_frames: int
    fidelity_draws: int


SIZES = {
    "full": BenchSize(40, 24, 8, 600, 32, 900, 16, 1e-3, 48, 32),
    "ci": BenchSize(12, 16, 4, 40, 8, 30, 8, 1e-3, 16, 16),
}


@dataclass
class BenchConfig:
    """What to run."""

    work: Path
    size: str = "full"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    distill_steps: int | None = None
    distill_args: list[str] = field(default_factory=list)
    tag: str = "default"
    multi_step: bool = True
    device: str = "cpu"


def default_work_dir() -> Path:
    """Where the benchmark caches its dataset, teacher and runs by default."""
    from snapflow_ros.policies.tiny import default_cache_dir

    return default_cache_dir().parent / "bench_multimodal"


def ensure_dataset(cfg: BenchConfig) -> Path:
    """The benchmark dataset (built once)."""
    size = SIZES[cfg.size]
    spec = MultimodalSpec(num_episodes=size.episodes, episode_length=size.episode_length)
    return ensure_multimodal_dataset(cfg.work / f"data_{cfg.size}", spec)


def eval_episodes(cfg: BenchConfig) -> list[int]:
    """Held-out episodes (evenly spaced: half visible, half hidden)."""
    from snapflow_training.data import parse_eval_episodes

    size = SIZES[cfg.size]
    return parse_eval_episodes(str(size.eval_episodes), size.episodes)


def ensure_teacher(cfg: BenchConfig, dataset: Path) -> Path:
    """The lerobot-train teacher, trained on the training episodes only (built once)."""
    size = SIZES[cfg.size]
    run = cfg.work / f"teacher_{cfg.size}"
    teacher = run / TEACHER_DIR
    if (teacher / "model.safetensors").is_file():
        return teacher
    held_out = set(eval_episodes(cfg))
    recipe = TeacherRecipe(
        dataset=str(dataset),
        output=str(run),
        steps=size.teacher_steps,
        batch_size=size.teacher_batch,
        episodes=[e for e in range(size.episodes) if e not in held_out],
    )
    if run.exists():
        import shutil

        shutil.rmtree(run)
    return train_teacher(recipe, quiet=True)


def distill_args(cfg: BenchConfig, teacher: Path, dataset: Path, out: Path, seed: int) -> list[str]:
    """The ``distill`` command line of one seed (project defaults + the benchmark budget)."""
    size = SIZES[cfg.size]
    steps = cfg.distill_steps or size.distill_steps
    held_out = ",".join(str(e) for e in eval_episodes(cfg))
    return [
        "--policy", str(teacher), "--dataset", str(dataset), "--output", str(out),
        "--steps", str(steps), "--batch-size", str(size.distill_batch), "--seed", str(seed),
        "--lr", repr(size.distill_lr),
        "--eval-episodes", held_out, "--eval-interval", "0", "--save-interval", "0",
        "--eval-samples", str(size.fidelity_frames), "--fidelity-frames",
        str(size.fidelity_frames), "--fidelity-draws", str(size.fidelity_draws),
        "--mode-dim", str(MODE_DIM), "--mode-group", VISIBLE_KEY, "--num-workers", "0",
        "--device", cfg.device, "--latency-repeats", "0", "--no-progress", "--overwrite",
        "--eval-student-steps",  # none: the benchmark's own multi-step rows cover them
        *cfg.distill_args,
    ]  # fmt: skip


def multi_step_rows(run: Path, args: list[str]) -> dict[str, float]:
    """Energy distance of the student's N-step draws to the teacher's: ``s = t - 1/N`` at
    every step, the trained-jumps rule, and ``s = t``."""
    from snapflow_ros.runtime.adapters import make_adapter
    from snapflow_training import fidelity
    from snapflow_training.distill import _load, evaluation_setup
    from snapflow_training.distill_cli import build_parser, settings_from_args
    from snapflow_training.evaluate import Method

    settings = settings_from_args(build_parser().parse_args([*args, "--eval-only"]))
    settings.overwrite = False
    setup = evaluation_setup(settings)
    teacher = setup.teacher
    baseline = setup.evaluator.teacher_baseline(
        make_adapter(teacher.policy, teacher.policy_type, None), None
    )
    student = _load(settings, setup.device, True, str(setup.student_dir))
    student.policy.eval()
    jumps = student.meta.trained_jumps if student.meta is not None else None
    adapter = make_adapter(student.policy, student.policy_type, student.target_time)
    methods = []
    for steps in MULTI_STEPS:
        methods.append(Method(f"{steps}_any", adapter, steps, True, None))
        methods.append(Method(f"{steps}_trained", adapter, steps, True, jumps))
        methods.append(Method(f"{steps}_instant", adapter, steps, False))
    preds, _ = setup.evaluator.run_methods(methods)
    assert baseline.floor_draws is not None
    out = {}
    for name, p in preds.items():
        assert p.draws is not None
        out[name] = float(fidelity.energy_distance(p.draws, baseline.floor_draws).mean())
    return out


def run_seed(cfg: BenchConfig, teacher: Path, dataset: Path, seed: int) -> dict[str, Any]:
    """Distil one seed; returns the report's numbers (and multi-step rows)."""
    from snapflow_training.distill_cli import main as distill_main

    out = cfg.work / "runs" / cfg.tag / f"seed{seed}"
    args = distill_args(cfg, teacher, dataset, out, seed)
    start = time.perf_counter()
    code = distill_main(args)
    if code != 0:
        raise RuntimeError(f"distill failed with exit code {code}: {' '.join(args)}")
    seconds = time.perf_counter() - start
    reports = sorted((out / "eval").glob("step_*/report.json"))
    report = json.loads(reports[-1].read_text())
    row = summarise(report)
    row["seconds"] = seconds
    row["samples_per_s"] = _median_sps(out)
    if cfg.multi_step:
        row["multi_step"] = multi_step_rows(out, args)
    return row


def _median_sps(run: Path) -> float | None:
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    values = [r["samples_per_s"] for r in rows if "samples_per_s" in r]
    return float(statistics.median(values)) if values else None


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """The benchmark's numbers from one eval report."""
    floor = report["fidelity_floor"]
    out: dict[str, Any] = {"floor": floor["energy_distance"], "methods": {}}
    out["methods"]["teacher_second_noise"] = {
        "energy": floor["energy_distance"],
        "commit_hidden": floor["mode"]["groups"][HIDDEN]["commitment"],
        "plus_hidden": floor["mode"]["groups"][HIDDEN].get("plus_share"),
        "right_sign_visible": floor["mode"]["groups"][VISIBLE]["right_sign"],
    }
    for name, m in report["methods"].items():
        fid = m["fidelity"] or {}
        groups = fid.get("mode", {}).get("groups", {})
        out["methods"][name] = {
            "energy": fid.get("energy_distance"),
            "same_noise_rms": (fid.get("same_noise_rms") or {}).get("mean"),
            "same_noise_rms_p90": (fid.get("same_noise_rms") or {}).get("p90"),
            "commit_hidden": groups.get(HIDDEN, {}).get("commitment"),
            "plus_hidden": groups.get(HIDDEN, {}).get("plus_share"),
            "right_sign_visible": groups.get(VISIBLE, {}).get("right_sign"),
            "mse": m["mse"],
            "spread": m["sample_spread"],
        }
    return out


def _fmt(values: list[float | None], digits: int = 3) -> str:
    clean = [v for v in values if v is not None]
    if not clean:
        return ""
    mean = statistics.fmean(clean)
    if len(clean) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(clean):.{digits}f}"


def table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown table over seeds (mean ± sd)."""
    floor = statistics.fmean(r["floor"] for r in rows)
    lines = [
        "| method | energy distance to teacher-10 | / floor | commits when hidden "
        "| + mode share when hidden | right sign when visible | same-noise RMS "
        "| MSE (rewards averaging) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    labels = {"teacher_second_noise": "teacher-10, second noise set (floor)"}
    for name in rows[0]["methods"]:
        vals = [r["methods"][name] for r in rows]
        energy = [v["energy"] for v in vals]
        ratio = ""
        if all(e is not None for e in energy):
            ratio = f"{statistics.fmean(energy) / floor:.2f}"
        lines.append(
            f"| {labels.get(name, name)} | {_fmt(energy)} | {ratio} "
            f"| {_fmt([v['commit_hidden'] for v in vals], 2)} "
            f"| {_fmt([v.get('plus_hidden') for v in vals], 2)} "
            f"| {_fmt([v['right_sign_visible'] for v in vals], 2)} "
            f"| {_fmt([v.get('same_noise_rms') for v in vals])} "
            f"| {_fmt([v.get('mse') for v in vals])} |"
        )
    if rows[0].get("multi_step"):
        lines += [
            "",
            "| student N steps: energy distance | s = t - 1/N | trained jumps only | s = t |",
            "|---|---|---|---|",
        ]
        for steps in MULTI_STEPS:
            cells = [
                _fmt([r["multi_step"][f"{steps}_{kind}"] for r in rows])
                for kind in ("any", "trained", "instant")
            ]
            lines.append(f"| {steps} | " + " | ".join(cells) + " |")
    return lines


def sweep_table(results: list[Path]) -> list[str]:
    """One markdown row per configuration (``tag``) of several result files, over seeds:
    the SnapFlow student's numbers next to the teacher's."""
    by_tag: dict[str, list[dict[str, Any]]] = {}
    for path in results:
        body = json.loads(path.read_text())
        tag = Path(body["budget"].get("tag") or path.stem.rsplit("_s", 1)[0]).name
        by_tag.setdefault(tag, []).extend(body["rows"])
    lines = [
        "| configuration | seeds | SnapFlow-1 energy / floor | commits when hidden (teacher) "
        "| right sign visible | same-noise RMS | floor |",
        "|---|---|---|---|---|---|---|",
    ]
    for tag, rows in sorted(by_tag.items()):
        ratio = [r["methods"]["snapflow_1_step"]["energy"] / r["floor"] for r in rows]
        commit = [r["methods"]["snapflow_1_step"]["commit_hidden"] for r in rows]
        teacher = [r["methods"]["teacher_10_steps"]["commit_hidden"] for r in rows]
        right = [r["methods"]["snapflow_1_step"]["right_sign_visible"] for r in rows]
        rms = [r["methods"]["snapflow_1_step"]["same_noise_rms"] for r in rows]
        lines.append(
            f"| {tag} | {len(rows)} | {_fmt(ratio, 2)} | {_fmt(commit, 2)} ({_fmt(teacher, 2)}) "
            f"| {_fmt(right, 2)} | {_fmt(rms)} | {_fmt([r['floor'] for r in rows])} |"
        )
    return lines


def run(cfg: BenchConfig, out: Path | None) -> dict[str, Any]:
    """The whole benchmark; writes ``out`` (JSON) and ``out.md`` after every seed."""
    start = time.perf_counter()
    dataset = ensure_dataset(cfg)
    teacher = ensure_teacher(cfg, dataset)
    size = SIZES[cfg.size]
    result: dict[str, Any] = {
        "benchmark": "multimodal",
        "size": cfg.size,
        "budget": {
            **asdict(size),
            "distill_steps": cfg.distill_steps or size.distill_steps,
            "distill_args": cfg.distill_args,
            "tag": cfg.tag,
        },
        "teacher": str(teacher),
        "teacher_recipe": json.loads((teacher.parent / "teacher.json").read_text()),
        "machine": machine_info(cfg.device),
        "seeds": cfg.seeds,
        "rows": [],
    }  # fmt: skip
    for seed in cfg.seeds:  # written after every seed: nothing is lost when interrupted
        result["rows"].append({"seed": seed, **run_seed(cfg, teacher, dataset, seed)})
        result["seconds"] = time.perf_counter() - start
        emit(result, "\n".join(table(result["rows"])), out)
    return result


def main(argv: list[str] | None = None) -> int:
    """CLI."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--work", type=Path, help="cache of data/teacher/runs")
    parser.add_argument("--size", choices=list(SIZES), default="full")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--distill-steps", type=int)
    parser.add_argument("--distill-arg", action="append", default=[], dest="distill_args")
    parser.add_argument("--tag", default="default", help="name of this configuration's runs")
    parser.add_argument("--no-multi-step", action="store_true")
    parser.add_argument("--device", default="cpu", help="distill's --device")
    parser.add_argument("--out", type=Path, help="JSON result (the table under 'markdown')")
    parser.add_argument(
        "--sweep-table",
        type=Path,
        nargs="+",
        help="only print the table of earlier result files, one row per --tag",
    )
    args = parser.parse_args(argv)
    if args.sweep_table:
        print("\n".join(sweep_table(args.sweep_table)))
        return 0
    cfg = BenchConfig(
        work=args.work or default_work_dir(),
        size=args.size,
        seeds=args.seeds,
        distill_steps=args.distill_steps,
        distill_args=args.distill_args,
        tag=args.tag,
        multi_step=not args.no_multi_step,
        device=args.device,
    )
    run(cfg, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
