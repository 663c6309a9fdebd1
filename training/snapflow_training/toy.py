"""Toy proof of the SnapFlow objective on a conditional, multimodal action distribution.

Data: condition ``c ~ U[-1, 1]``; an action chunk (H x 2) follows one of ``num_modes`` equally
likely modes whose 2-D direction rotates with ``c``; along the chunk the action grows from half
to full radius, plus Gaussian noise. The conditional mean lies between the modes, so a sampler
that averages (naive one-step Euler, conditional-velocity targets) is visibly wrong.

Model: a small MLP ``v(x_t, t, s | c)`` whose target-time embedding (sinusoidal features of
``t - s`` through a zero-initialised Linear, added to the time features) makes it equal to the
teacher before distillation. The teacher is trained with plain flow matching (the SnapFlow
objective with ``alpha=1``), each variant is distilled from the teacher's weights, and every
sampler (``euler_sample``) is scored against held-out samples per condition with the sliced
2-Wasserstein distance (fixed projections) and an RBF-kernel MMD^2 (fixed bandwidth),
averaged over the evaluation conditions. ``data (held-out)`` is a second held-out set: the
distance floor set by the finite sample size.

Run: ``PYTHONPATH=training:. python -m snapflow_training.toy [--seeds 0 1 2] [--out r.json]``.
Measured with lam 0.1, the objective's earlier default (``--seeds 0 1 2 3 4 5 6 7 8 9``, 2000
teacher / 500 distillation steps); the default is now lam 3, chosen by the sweeps of
:mod:`snapflow_training.sweep_toy` and the multimodal benchmark (docs/distillation.md):

| method                                   | sliced W2       | MMD²            |
|------------------------------------------|-----------------|-----------------|
| data (held-out)                          | 0.138 ± 0.026   | 0.0003 ± 0.0005 |
| teacher 10-step                          | 0.157 ± 0.026   | 0.0037 ± 0.0007 |
| teacher 4-step                           | 0.214 ± 0.015   | 0.0178 ± 0.0014 |
| teacher 2-step                           | 0.431 ± 0.018   | 0.1250 ± 0.0089 |
| teacher 1-step (naive)                   | 1.030 ± 0.031   | 1.0646 ± 0.0137 |
| SnapFlow 1-step (progressive=none)       | 0.375 ± 0.024   | 0.0913 ± 0.0174 |
| SnapFlow 1-step (progressive=ramp)       | 0.414 ± 0.022   | 0.1182 ± 0.0169 |
| SnapFlow 1-step (progressive=recursive)  | 0.248 ± 0.021   | 0.0307 ± 0.0086 |
| SnapFlow 1-step (conditional target)     | 1.058 ± 0.031   | 1.1093 ± 0.0053 |

With ``consistency_times="random"`` (5 seeds, 1000 distillation steps) ``"none"`` fails at the
one-step jump (MMD² 0.90 ± 0.07: it is almost never trained on t=1 -> s=0), ``"recursive"``
is unchanged (0.027 ± 0.006 vs 0.028 ± 0.007 with ``"one_step"``).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from snapflow_ros.runtime.sampling import VelocityFn, euler_sample
from snapflow_training.objective import SnapFlowConfig, snapflow_loss


@dataclass(frozen=True)
class ToyConfig:
    """Sizes and schedules of the toy run (the defaults are the full run)."""

    horizon: int = 4
    action_dim: int = 2
    num_modes: int = 3
    radius: float = 2.0
    mode_std: float = 0.3
    hidden: int = 128
    time_features: int = 32
    cond_frequencies: int = 3
    batch: int = 256
    teacher_steps: int = 2000
    teacher_lr: float = 2e-3
    distill_steps: int = 500
    distill_lr: float = 5e-4
    eval_conditions: tuple[float, ...] = (-0.75, -0.25, 0.25, 0.75)
    eval_samples: int = 1000
    sw_projections: int = 256
    mmd_bandwidth: float = 1.0
    variants: tuple[str, ...] = ("none", "ramp", "recursive", "conditional")


def variant_config(name: str, cfg: ToyConfig) -> SnapFlowConfig:
    """SnapFlow config of a named toy variant (the objective's defaults otherwise)."""
    base = SnapFlowConfig()
    if name == "none":
        return replace(base, progressive="none")
    if name == "ramp":
        return replace(base, progressive="ramp", ramp_steps=max(1, cfg.distill_steps // 2))
    if name == "recursive":
        return replace(base, progressive="recursive")
    if name == "recursive_random":
        return replace(base, progressive="recursive", consistency_times="random")
    if name == "random":
        return replace(base, progressive="none", consistency_times="random")
    if name == "conditional":
        return replace(base, progressive="none", consistency_target="conditional")
    raise ValueError(f"unknown variant {name!r}")


def sample_actions(cond: torch.Tensor, cfg: ToyConfig, generator: torch.Generator) -> torch.Tensor:
    """Draw one action chunk (H, D) per condition value in ``cond`` (B,)."""
    batch = cond.shape[0]
    mode = torch.randint(cfg.num_modes, (batch,), generator=generator)
    angle = 2 * math.pi * mode / cfg.num_modes + cond * math.pi / 2
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)  # (B, 2)
    scale = 0.5 + 0.5 * torch.arange(cfg.horizon) / max(1, cfg.horizon - 1)  # (H,)
    mean = cfg.radius * scale.view(1, -1, 1) * direction.view(batch, 1, cfg.action_dim)
    return mean + cfg.mode_std * torch.randn(mean.shape, generator=generator)


def sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sin/cos features of a (B,) time, periods 4e-3 .. 4 as in LeRobot's policies."""
    return _sinusoidal(t, _periods(dim, t.device))


def _periods(dim: int, device: torch.device) -> torch.Tensor:
    return 4e-3 * (4.0 / 4e-3) ** torch.linspace(0.0, 1.0, dim // 2, device=device)


def _sinusoidal(t: torch.Tensor, periods: torch.Tensor) -> torch.Tensor:
    arg = (2 * math.pi) * t.view(-1, 1) / periods.view(1, -1)
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


def cond_features(cond: torch.Tensor, cfg: ToyConfig) -> torch.Tensor:
    """Fourier features of the condition (B,): ``c`` and sin/cos of ``2**i * pi/2 * c``."""
    c = cond.view(-1, 1).float()
    freqs = (math.pi / 2) * torch.exp2(torch.arange(cfg.cond_frequencies, device=c.device))
    return torch.cat([c, torch.sin(c * freqs), torch.cos(c * freqs)], dim=-1)


class ToyVelocityModel(nn.Module):
    """MLP ``v(x_t, t, s | c)`` with a zero-initialised target-time embedding."""

    def __init__(self, cfg: ToyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        width = cfg.hidden
        self.register_buffer("periods", _periods(cfg.time_features, None), persistent=False)
        self.time_mlp = nn.Sequential(
            nn.Linear(cfg.time_features, width), nn.SiLU(), nn.Linear(width, width)
        )
        self.target_embed = nn.Linear(cfg.time_features, width)
        nn.init.zeros_(self.target_embed.weight)
        nn.init.zeros_(self.target_embed.bias)
        self.cond_mlp = nn.Sequential(
            nn.Linear(2 * cfg.cond_frequencies + 1, width), nn.SiLU(), nn.Linear(width, width)
        )
        flat = cfg.horizon * cfg.action_dim
        self.net = nn.Sequential(
            nn.Linear(flat + 2 * width, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, flat),
        )

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """Velocity for x (B, H, D), times t, s (B,) and condition (B,)."""
        feats = _sinusoidal(torch.cat([t, t - s]), self.periods)
        t_feat, d_feat = feats.chunk(2, dim=0)
        temb = self.time_mlp(t_feat) + self.target_embed(d_feat)
        h = torch.cat([x.flatten(1), self.cond_mlp(cond_features(cond, self.cfg)), temb], dim=-1)
        return self.net(h).view_as(x)

    def velocity_fn(self, cond: torch.Tensor) -> VelocityFn:
        """Bind a condition batch: the closure ``v(x_t, t, s)`` the objective expects."""
        return lambda x, t, s: self(x, t, s, cond)


def _cosine(steps: int) -> Callable[[int], float]:
    return lambda i: 0.5 * (1.0 + math.cos(math.pi * min(i, steps) / steps))


def _train(
    model: ToyVelocityModel,
    params: list[nn.Parameter],
    snap: SnapFlowConfig,
    steps: int,
    lr: float,
    cfg: ToyConfig,
    generator: torch.Generator,
    teacher: ToyVelocityModel | None = None,
) -> list[float]:
    """Train ``model`` on fresh toy batches; ``teacher`` serves ``target_source="teacher"``
    and ``flow_target="teacher"``."""
    opt = torch.optim.Adam(params, lr=lr, foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine(steps))
    ema = copy.deepcopy(model).requires_grad_(False) if snap.target_source == "ema" else None
    model.train()
    losses = []
    for step in range(steps):
        cond = torch.rand(cfg.batch, generator=generator) * 2 - 1
        actions = sample_actions(cond, cfg, generator)
        noise = torch.randn(actions.shape, generator=generator)
        out = snapflow_loss(
            model.velocity_fn(cond),
            actions,
            noise,
            snap,
            step,
            generator,
            target_velocity=ema.velocity_fn(cond) if ema is not None else None,
            instant_velocity=(
                teacher.velocity_fn(cond)
                if teacher is not None and snap.target_source == "teacher"
                else None
            ),
            flow_velocity=(
                teacher.velocity_fn(cond)
                if teacher is not None and snap.flow_target == "teacher"
                else None
            ),
        )
        opt.zero_grad(set_to_none=True)
        out.total.backward()
        opt.step()
        sched.step()
        if ema is not None:
            with torch.no_grad():
                for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                    e.lerp_(p, 1.0 - snap.ema_decay)
        losses.append(float(out.total.detach()))
    model.eval()
    return losses


def train_teacher(cfg: ToyConfig, seed: int) -> ToyVelocityModel:
    """Plain flow matching (s = t); the target-time embedding stays frozen at zero."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ToyVelocityModel(cfg)
    params = [p for n, p in model.named_parameters() if not n.startswith("target_embed.")]
    gen = torch.Generator().manual_seed(10_000 + seed)
    fm_only = SnapFlowConfig(alpha=1.0, lam=0.0)
    _train(model, params, fm_only, cfg.teacher_steps, cfg.teacher_lr, cfg, gen)
    return model


def distill(
    teacher: ToyVelocityModel, snap: SnapFlowConfig, cfg: ToyConfig, seed: int
) -> ToyVelocityModel:
    """SnapFlow self-distillation starting from the teacher's weights (all parameters train)."""
    student = copy.deepcopy(teacher)
    teacher.eval()
    gen = torch.Generator().manual_seed(20_000 + seed)
    params = list(student.parameters())
    _train(student, params, snap, cfg.distill_steps, cfg.distill_lr, cfg, gen, teacher)
    return student


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, proj: torch.Tensor) -> float:
    """Sliced 2-Wasserstein distance of two equal-size (N, F) samples over unit ``proj`` (F, P)."""
    px = torch.sort(x @ proj, dim=0).values
    py = torch.sort(y @ proj, dim=0).values
    return float((px - py).square().mean().sqrt())


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Unbiased MMD^2 with the RBF kernel ``exp(-|a-b|^2 / (2 bandwidth^2))``."""

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-torch.cdist(a, b).square() / (2 * bandwidth**2))

    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(sxx + syy - 2 * kxy.mean())


@dataclass
class Evaluator:
    """Held-out data, fixed noise and fixed projections for one seed."""

    cfg: ToyConfig
    seed: int
    heldout: list[torch.Tensor] = field(init=False)
    heldout2: list[torch.Tensor] = field(init=False)
    noise: torch.Tensor = field(init=False)
    proj: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        cfg = self.cfg
        gen = torch.Generator().manual_seed(30_000 + self.seed)
        n = cfg.eval_samples
        self.heldout = [sample_actions(torch.full((n,), c), cfg, gen) for c in cfg.eval_conditions]
        self.heldout2 = [sample_actions(torch.full((n,), c), cfg, gen) for c in cfg.eval_conditions]
        self.noise = torch.randn((n, cfg.horizon, cfg.action_dim), generator=gen)
        proj = torch.randn((cfg.horizon * cfg.action_dim, cfg.sw_projections), generator=gen)
        self.proj = proj / proj.norm(dim=0, keepdim=True)

    def _score(self, samples: list[torch.Tensor], ref: list[torch.Tensor]) -> dict[str, float]:
        pairs = [(a.flatten(1), b.flatten(1)) for a, b in zip(samples, ref, strict=True)]
        sw = [sliced_wasserstein(a, b, self.proj) for a, b in pairs]
        mm = [mmd2(a, b, self.cfg.mmd_bandwidth) for a, b in pairs]
        return {"sw": statistics.fmean(sw), "mmd": statistics.fmean(mm)}

    @torch.no_grad()
    def score_model(
        self, model: ToyVelocityModel, num_steps: int, target_time: bool
    ) -> dict[str, float]:
        """Distances of ``num_steps``-step Euler samples to the held-out data."""
        samples = []
        for c in self.cfg.eval_conditions:
            cond = torch.full((self.noise.shape[0],), c)
            vel = model.velocity_fn(cond)
            samples.append(euler_sample(vel, self.noise, num_steps, target_time))
        return self._score(samples, self.heldout)

    def score_data(self) -> dict[str, float]:
        """Distances between two held-out sets: the finite-sample floor."""
        return self._score(self.heldout2, self.heldout)


VARIANT_LABELS = {
    "none": "SnapFlow 1-step (progressive=none)",
    "ramp": "SnapFlow 1-step (progressive=ramp)",
    "recursive": "SnapFlow 1-step (progressive=recursive)",
    "recursive_random": "SnapFlow 1-step (recursive, random times)",
    "random": "SnapFlow 1-step (none, random times)",
    "conditional": "SnapFlow 1-step (conditional target, ablation)",
}
TEACHER_ROWS = {
    "teacher 10-step": 10,
    "teacher 4-step": 4,
    "teacher 2-step": 2,
    "teacher 1-step (naive)": 1,
}

Metrics = dict[str, dict[str, float]]


def teacher_job(cfg: ToyConfig, seed: int) -> tuple[dict[str, torch.Tensor], Metrics]:
    """Train one seed's teacher; return its weights and the data/teacher rows."""
    ev = Evaluator(cfg, seed)
    teacher = train_teacher(cfg, seed)
    res = {"data (held-out)": ev.score_data()}
    for label, steps in TEACHER_ROWS.items():
        res[label] = ev.score_model(teacher, steps, False)
    return teacher.state_dict(), res


def distill_job(
    cfg: ToyConfig, seed: int, variant: str, teacher_state: dict[str, torch.Tensor]
) -> dict[str, float]:
    """Distil one variant from a teacher's weights; return its one-step metrics."""
    teacher = ToyVelocityModel(cfg)
    teacher.load_state_dict(teacher_state)
    teacher.eval()
    student = distill(teacher, variant_config(variant, cfg), cfg, seed)
    return Evaluator(cfg, seed).score_model(student, 1, True)


def _init_worker() -> None:
    torch.set_num_threads(1)


def run_per_seed(seeds: Sequence[int], cfg: ToyConfig, workers: int = 1) -> list[Metrics]:
    """Teachers, then every (seed, variant) distillation; ``workers`` > 1 uses processes.

    Each job is a pure function of (cfg, seed, variant), so results do not depend on
    ``workers`` as long as every process uses the same number of torch threads.
    """
    if workers <= 1:
        teachers = [teacher_job(cfg, seed) for seed in seeds]
        for (state, res), seed in zip(teachers, seeds, strict=True):
            for v in cfg.variants:
                res[VARIANT_LABELS[v]] = distill_job(cfg, seed, v, state)
        return [res for _, res in teachers]
    ctx = multiprocessing.get_context("spawn")
    results: list[Metrics] = [{} for _ in seeds]
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
        teacher_futs = {pool.submit(teacher_job, cfg, seed): i for i, seed in enumerate(seeds)}
        distill_futs = {}
        for fut in as_completed(teacher_futs):  # queue a seed's variants once its teacher is done
            i = teacher_futs[fut]
            state, results[i] = fut.result()
            for v in cfg.variants:
                distill_futs[(i, v)] = pool.submit(distill_job, cfg, seeds[i], v, state)
        for (i, v), fut in distill_futs.items():
            results[i][VARIANT_LABELS[v]] = fut.result()
    return results


def summarize(per_seed: list[Metrics]) -> Metrics:
    """Mean and (sample) standard deviation of each metric over seeds."""
    out: Metrics = {}
    for method in per_seed[0]:
        row = {}
        for metric in per_seed[0][method]:
            vals = [r[method][metric] for r in per_seed]
            row[f"{metric}_mean"] = statistics.fmean(vals)
            row[f"{metric}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out[method] = row
    return out


def markdown_table(summary: Metrics, num_seeds: int) -> str:
    """Markdown table of mean ± std per method."""
    lines = [
        f"| method | sliced W2 (mean ± std, {num_seeds} seeds) | MMD² (mean ± std) |",
        "|---|---|---|",
    ]
    for method, r in summary.items():
        lines.append(
            f"| {method} | {r['sw_mean']:.4f} ± {r['sw_std']:.4f} "
            f"| {r['mmd_mean']:.4f} ± {r['mmd_std']:.4f} |"
        )
    return "\n".join(lines)


def run(seeds: Sequence[int], cfg: ToyConfig, workers: int = 1) -> dict[str, object]:
    """Run all seeds; return config, per-seed metrics and the summary."""
    per_seed = run_per_seed(seeds, cfg, workers)
    return {
        "config": asdict(cfg),
        "seeds": list(seeds),
        "per_seed": per_seed,
        "summary": summarize(per_seed),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: run the toy proof, print a markdown table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=str, default=None, help="JSON output path")
    parser.add_argument(
        "--variants", nargs="+", default=list(ToyConfig.variants), choices=list(VARIANT_LABELS)
    )
    parser.add_argument("--teacher-steps", type=int, default=ToyConfig.teacher_steps)
    parser.add_argument("--distill-steps", type=int, default=ToyConfig.distill_steps)
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes (1 torch thread each; the models are too small for more threads)",
    )
    args = parser.parse_args(argv)
    if len(args.seeds) < 2:
        parser.error("need at least 2 seeds for a standard deviation")
    torch.set_num_threads(1)
    cfg = ToyConfig(
        variants=tuple(args.variants),
        teacher_steps=args.teacher_steps,
        distill_steps=args.distill_steps,
    )
    start = time.perf_counter()
    result = run(args.seeds, cfg, args.workers)
    result["seconds"] = time.perf_counter() - start
    print(markdown_table(result["summary"], len(args.seeds)))  # type: ignore[arg-type]
    print(f"\n{len(args.seeds)} seeds, {args.workers} workers, {result['seconds']:.1f} s")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
