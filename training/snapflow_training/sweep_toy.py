"""Sweeps of the SnapFlow objective on the 2-D toy, scored with the benchmark's fidelity metrics.

Every run distils one variant from a seed's flow-matching teacher (:mod:`snapflow_training.toy`)
and scores, on 64 conditions with K=32 noise draws each (the benchmark's protocol):

* ``energy``: energy distance of the student's one-step draws (noise set A) to the 10-step
  teacher's draws from an independent noise set B, averaged over conditions; ``floor``: the
  teacher's own draws from set A against set B (what a perfect sampler gets);
* ``rms``: RMS distance to the teacher's chunk from the same noise (set A): how well the
  deterministic noise -> action map is reproduced;
* ``commit``: fraction of draws nearer a mode's mean chunk than half the distance between two
  modes (the data: about 1.0; an average of the modes: 0);
* ``mmd``: MMD² of the one-step samples to held-out data (the toy's own metric);
* multi-step sampling of the student (``energy_N_any`` asks ``s = t - 1/N``, ``energy_N_instant``
  asks ``s = t``, ``energy_N_trained`` uses the jump only when ``1/N`` was trained).

Run: ``python -m snapflow_training.sweep_toy --grid lam --seeds 0 1 2 --out DIR``; each grid
writes ``DIR/toy_<grid>.json`` and ``.md`` (appended run by run, so nothing is lost).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from snapflow_ros.runtime.sampling import euler_sample
from snapflow_training import fidelity
from snapflow_training.objective import SnapFlowConfig
from snapflow_training.toy import (
    Evaluator,
    ToyConfig,
    ToyVelocityModel,
    distill,
    train_teacher,
)

CONDITIONS, DRAWS = 64, 32
MULTI_STEPS = (2, 3, 4, 10)


@dataclass(frozen=True)
class ToyRun:
    """One point of a sweep: objective settings and the distillation budget."""

    name: str
    objective: dict[str, Any] = field(default_factory=dict)
    steps: int = 500
    lr: float = 5e-4

    def snap(self) -> SnapFlowConfig:
        """The objective (the defaults of SnapFlowConfig, overridden)."""
        return SnapFlowConfig(**self.objective)


def _draw_noise(cfg: ToyConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(40_000 + seed)
    conds = torch.linspace(-0.95, 0.95, CONDITIONS)
    shape = (CONDITIONS, DRAWS, cfg.horizon, cfg.action_dim)
    return conds, torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)


@torch.no_grad()
def draws(
    model: ToyVelocityModel,
    conds: torch.Tensor,
    noise: torch.Tensor,
    steps: int,
    target_time: bool,
    trained_jumps: Sequence[float] | None = None,
) -> torch.Tensor:
    """(C, K, H, D) samples: K noise draws per condition."""
    c, k = noise.shape[:2]
    cond = conds.repeat_interleave(k)
    flat = noise.reshape(c * k, *noise.shape[2:])
    out = euler_sample(model.velocity_fn(cond), flat, steps, target_time, trained_jumps)
    return out.reshape(noise.shape)


def mode_means(conds: torch.Tensor, cfg: ToyConfig) -> torch.Tensor:
    """(C, M, H, D) mean chunk of every mode at every condition."""
    modes = torch.arange(cfg.num_modes)
    angle = 2 * math.pi * modes[None, :] / cfg.num_modes + conds[:, None] * math.pi / 2
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)  # (C, M, 2)
    scale = 0.5 + 0.5 * torch.arange(cfg.horizon) / max(1, cfg.horizon - 1)
    return cfg.radius * scale.view(1, 1, -1, 1) * direction[:, :, None, :]


def commitment(samples: torch.Tensor, conds: torch.Tensor, cfg: ToyConfig) -> float:
    """Fraction of draws nearer a mode mean than half the distance between two modes."""
    means = mode_means(conds, cfg)
    flat = samples.flatten(2)  # (C, K, F)
    dist = torch.cdist(flat, means.flatten(2)).min(dim=-1).values
    gap = (means[:, 0] - means[:, 1]).flatten(1).norm(dim=-1)  # (C,)
    return float((dist < 0.5 * gap[:, None]).double().mean())


def score(
    cfg: ToyConfig, seed: int, teacher: ToyVelocityModel, student: ToyVelocityModel | None
) -> dict[str, float]:
    """Fidelity metrics of the teacher rows (student None) or of a student."""
    conds, noise_a, noise_b = _draw_noise(cfg, seed)
    same_noise = draws(teacher, conds, noise_a, 10, False)
    reference = draws(teacher, conds, noise_b, 10, False)

    def energy(x: torch.Tensor) -> float:
        return float(fidelity.energy_distance(x, reference).mean())

    def rms(x: torch.Tensor) -> float:
        return float(fidelity.same_noise_rms(x, same_noise).mean())

    if student is None:
        out = {
            "floor": energy(same_noise),
            "commit_teacher10": commitment(same_noise, conds, cfg),
            "commit_floor": commitment(reference, conds, cfg),
        }
        for steps in (1, 2, 4):
            x = draws(teacher, conds, noise_a, steps, False)
            out[f"energy_teacher{steps}"] = energy(x)
            out[f"rms_teacher{steps}"] = rms(x)
            out[f"commit_teacher{steps}"] = commitment(x, conds, cfg)
        return out
    one = draws(student, conds, noise_a, 1, True)
    out = {
        "energy": energy(one),
        "rms": rms(one),
        "commit": commitment(one, conds, cfg),
        "mmd": Evaluator(cfg, seed).score_model(student, 1, True)["mmd"],
    }
    for steps in MULTI_STEPS:
        out[f"energy_{steps}_any"] = energy(draws(student, conds, noise_a, steps, True, None))
        out[f"energy_{steps}_instant"] = energy(draws(student, conds, noise_a, steps, False))
    return out


def teacher_job(cfg: ToyConfig, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Train a seed's teacher; return its weights and its metrics."""
    teacher = train_teacher(cfg, seed)
    metrics = score(cfg, seed, teacher, None)
    metrics["mmd_teacher10"] = Evaluator(cfg, seed).score_model(teacher, 10, False)["mmd"]
    return teacher.state_dict(), metrics


def run_job(
    cfg: ToyConfig, seed: int, run: ToyRun, teacher_state: dict[str, torch.Tensor]
) -> dict[str, float]:
    """Distil ``run`` from a seed's teacher and score it."""
    teacher = ToyVelocityModel(cfg)
    teacher.load_state_dict(teacher_state)
    teacher.eval()
    start = time.perf_counter()
    snap = run.snap()
    student = distill(teacher, snap, replace(cfg, distill_steps=run.steps, distill_lr=run.lr), seed)
    out = score(cfg, seed, teacher, student)
    conds, noise_a, noise_b = _draw_noise(cfg, seed)
    reference = draws(teacher, conds, noise_b, 10, False)
    for steps in MULTI_STEPS:
        x = draws(student, conds, noise_a, steps, True, snap.trained_jumps())
        out[f"energy_{steps}_trained"] = float(fidelity.energy_distance(x, reference).mean())
    out["seconds"] = time.perf_counter() - start
    return out


def _init_worker() -> None:
    torch.set_num_threads(1)


GRIDS: dict[str, list[ToyRun]] = {
    "baseline": [ToyRun("default (recursive, lam 0.1, 500 steps)")],
    "lam": [ToyRun(f"lam {lam}", {"lam": lam}) for lam in (0.1, 0.3, 1.0, 3.0, 10.0)],
    "alpha": [ToyRun(f"alpha {a}, lam 1", {"alpha": a, "lam": 1.0}) for a in (0.25, 0.5, 0.75)],
    "levels": [
        ToyRun(f"levels {n}, lam 1", {"recursive_levels": n, "lam": 1.0}) for n in (2, 3, 4, 5, 6)
    ],
    "progressive": [
        ToyRun(f"{p}, lam 1", {"progressive": p, "lam": 1.0}) for p in ("none", "ramp", "recursive")
    ],
    "times": [
        ToyRun(f"{t} times, lam 1", {"consistency_times": t, "lam": 1.0})
        for t in ("one_step", "random")
    ],
    "target": [
        ToyRun(f"target {t}, lam 1", {"target_source": t, "lam": 1.0})
        for t in ("student", "ema", "teacher")
    ],
    "flow": [
        ToyRun(f"flow target {f}, lam {lam}", {"flow_target": f, "lam": lam})
        for f in ("data", "teacher")
        for lam in (1.0, 3.0)
    ],
    "steps": [
        ToyRun(f"{n} steps, lam 1", {"lam": 1.0}, steps=n) for n in (250, 500, 1000, 2000, 4000)
    ],
    "lr": [ToyRun(f"lr {lr}, lam 1", {"lam": 1.0}, lr=lr) for lr in (2e-4, 5e-4, 1e-3, 2e-3)],
}


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def table(
    results: dict[str, list[dict[str, float]]], teachers: list[dict[str, float]]
) -> list[str]:
    """Markdown rows: mean ± sd over seeds of the key metrics, ratio to the floor."""
    floor = _mean_sd([t["floor"] for t in teachers])
    commit_t = _mean_sd([t["commit_teacher10"] for t in teachers])
    lines = [
        "| run | energy (1 step) | / floor | commit | same-noise rms | mmd² | energy 10 any "
        "| 10 instant | 10 trained | s/run |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| teacher-10 (floor: second noise set) | {floor[0]:.4f} ± {floor[1]:.4f} | 1.0 "
        f"| {commit_t[0]:.3f} | 0 | | | | | |",
    ]
    for steps in (1, 2, 4):
        e = _mean_sd([t[f"energy_teacher{steps}"] for t in teachers])
        c = _mean_sd([t[f"commit_teacher{steps}"] for t in teachers])
        r = statistics.fmean(t[f"rms_teacher{steps}"] for t in teachers)
        lines.append(
            f"| teacher-{steps} | {e[0]:.4f} ± {e[1]:.4f} | {e[0] / floor[0]:.1f} "
            f"| {c[0]:.3f} | {r:.3f} | | | | | |"
        )
    for name, rows in results.items():
        e = _mean_sd([r["energy"] for r in rows])
        c = _mean_sd([r["commit"] for r in rows])
        m = _mean_sd([r["mmd"] for r in rows])
        rm = statistics.fmean(r["rms"] for r in rows)
        any10 = statistics.fmean(r["energy_10_any"] for r in rows)
        inst10 = statistics.fmean(r["energy_10_instant"] for r in rows)
        tr10 = statistics.fmean(r["energy_10_trained"] for r in rows)
        sec = statistics.fmean(r["seconds"] for r in rows)
        lines.append(
            f"| {name} | {e[0]:.4f} ± {e[1]:.4f} | {e[0] / floor[0]:.2f} | {c[0]:.3f} ± "
            f"{c[1]:.3f} | {rm:.3f} | {m[0]:.4f} | {any10:.4f} | {inst10:.4f} | {tr10:.4f} "
            f"| {sec:.0f} |"
        )
    return lines


def sweep(
    grid: str, seeds: Sequence[int], cfg: ToyConfig, workers: int, out_dir: Path
) -> dict[str, Any]:
    """Run one grid over ``seeds``; write JSON and markdown as results arrive."""
    runs = GRIDS[grid]
    ctx = multiprocessing.get_context("spawn")
    teachers: list[dict[str, float]] = [{} for _ in seeds]
    results: dict[str, list[dict[str, float]]] = {r.name: [] for r in runs}
    out_dir.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        body = {
            "grid": grid,
            "seeds": list(seeds),
            "config": asdict(cfg),
            "runs": [asdict(r) for r in runs],
            "teachers": teachers,
            "results": results,
        }
        (out_dir / f"toy_{grid}.json").write_text(json.dumps(body, indent=2))
        if all(teachers) and all(results.values()):
            (out_dir / f"toy_{grid}.md").write_text("\n".join(table(results, teachers)) + "\n")

    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
        jobs = {}

        def submit(i: int, state: dict[str, torch.Tensor]) -> None:
            for run in runs:
                jobs[pool.submit(run_job, cfg, seeds[i], run, state)] = run.name

        teacher_futs = {}
        for i, seed in enumerate(seeds):
            cached = out_dir / f"toy_teacher_{seed}.pt"
            if cached.is_file():  # teachers are shared by every grid
                state, teachers[i] = torch.load(cached, weights_only=False)
                submit(i, state)
            else:
                teacher_futs[pool.submit(teacher_job, cfg, seed)] = i
        for fut in as_completed(teacher_futs):
            i = teacher_futs[fut]
            state, teachers[i] = fut.result()
            torch.save((state, teachers[i]), out_dir / f"toy_teacher_{seeds[i]}.pt")
            submit(i, state)
        for fut in as_completed(jobs):
            results[jobs[fut]].append(fut.result())
            write()
    write()
    return {"teachers": teachers, "results": results}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: run grids, print the tables."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--grid", nargs="+", default=["baseline"], choices=list(GRIDS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("toy_sweeps"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = ToyConfig()
    for grid in args.grid:
        result = sweep(grid, args.seeds, cfg, args.workers, args.out)
        print(f"## {grid}\n" + "\n".join(table(result["results"], result["teachers"])) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
