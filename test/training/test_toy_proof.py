"""Toy proof: SnapFlow's one step matches the 10-step teacher on a multimodal distribution."""

from __future__ import annotations

import os
import statistics

import torch
from snapflow_training.objective import SnapFlowConfig
from snapflow_training.toy import (
    VARIANT_LABELS,
    ToyConfig,
    ToyVelocityModel,
    distill,
    run_per_seed,
    train_teacher,
    variant_config,
)

from snapflow_ros.runtime.sampling import euler_sample


def _outputs(model: ToyVelocityModel, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((32, model.cfg.horizon, model.cfg.action_dim), generator=g)
    t = torch.rand(32, generator=g)
    s = t * torch.rand(32, generator=g)
    cond = torch.rand(32, generator=g) * 2 - 1
    with torch.no_grad():
        return model(x, t, s, cond), model(x, t, t, cond), model(x, t, torch.zeros(32), cond)


def test_zero_initialised_target_time_embedding() -> None:
    cfg = ToyConfig(teacher_steps=30, distill_steps=30, batch=64)
    fresh = ToyVelocityModel(cfg)
    v_s, v_t, v_0 = _outputs(fresh)
    assert torch.equal(v_s, v_t) and torch.equal(v_0, v_t)

    teacher = train_teacher(cfg, seed=0)  # flow matching only: the embedding stays at zero
    assert not teacher.target_embed.weight.any() and not teacher.target_embed.bias.any()
    v_s, v_t, v_0 = _outputs(teacher)
    assert torch.equal(v_s, v_t) and torch.equal(v_0, v_t)

    student = distill(teacher, SnapFlowConfig(), cfg, seed=0)  # now s matters ...
    v_s, v_t, v_0 = _outputs(student)
    assert not torch.equal(v_0, v_t)
    # ... and the one-step sampler asks for exactly v(eps, 1, 0).
    noise = torch.randn((8, cfg.horizon, cfg.action_dim), generator=torch.Generator())
    cond = torch.zeros(8)
    with torch.no_grad():
        one = euler_sample(student.velocity_fn(cond), noise, 1, target_time=True)
        direct = noise - student(noise, torch.ones(8), torch.zeros(8), cond)
    assert torch.equal(one, direct)


def _closure(naive: float, snap: float, teacher: float) -> float:
    """Fraction of the naive-one-step -> 10-step-teacher gap that a sampler closes."""
    return (naive - snap) / (naive - teacher)


def test_snapflow_one_step_matches_teacher_on_toy() -> None:
    # Reduced toy (the module's defaults are 2000 teacher / 500 distillation steps and 1000
    # evaluation samples). The default SnapFlowConfig is what is tested:
    assert variant_config("recursive", ToyConfig()) == SnapFlowConfig()
    cfg = ToyConfig(
        teacher_steps=1500,
        distill_steps=400,
        eval_samples=500,
        variants=("recursive", "conditional"),
    )
    seeds = [0, 1, 2]
    per_seed = run_per_seed(seeds, cfg, workers=min(2, os.cpu_count() or 1))

    def mean(method: str, metric: str) -> float:
        return statistics.fmean(r[method][metric] for r in per_seed)

    teacher, naive = "teacher 10-step", "teacher 1-step (naive)"
    snap, cond = VARIANT_LABELS["recursive"], VARIANT_LABELS["conditional"]

    # Margins from this exact configuration run for seeds 0..9 (1 worker process, 1 torch
    # thread; default objective, lam 3), per-seed mean ± sd:
    #   MMD²: teacher 10-step 0.0043 ± 0.0012, SnapFlow 1-step 0.0177 ± 0.0022, gap
    #         SnapFlow - teacher 0.0134 ± 0.0015 (range 0.011 .. 0.015), naive 1-step 1.044,
    #         conditional ablation 1.125. With lam 0.1 (the earlier default) the gap was
    #         0.038 ± 0.011; progressive="none" 0.091; the teacher's own 2-step sampler 0.138.
    #   sliced W2: teacher 0.185 ± 0.022, SnapFlow 0.230 ± 0.031, gap 0.045 ± 0.024 (range
    #         0.005 .. 0.076), naive 1.022, conditional 1.074 (lam 0.1: gap 0.096 ± 0.031).
    # The test averages 3 seeds, so the sd of a mean gap is about sd/sqrt(3): 0.0009 (MMD²)
    # and 0.014 (SW). Thresholds at about 6 such sds above the measured mean gap: MMD² 0.02,
    # SW 0.13. The earlier default (lam 0.1), progressive="none" and the teacher's 2-step
    # sampler fail the MMD² one.
    gap_mmd = mean(snap, "mmd") - mean(teacher, "mmd")
    gap_sw = mean(snap, "sw") - mean(teacher, "sw")
    assert gap_mmd < 0.02, (gap_mmd, per_seed)
    assert gap_sw < 0.13, (gap_sw, per_seed)

    # Clearly better than naive one-step: fraction of the naive -> teacher gap closed.
    # Measured per seed: MMD² 0.985 .. 0.990 (mean 0.987, sd 0.0015), SW 0.913 .. 0.994
    # (mean 0.947, sd 0.029); the 3-seed mean has sd about 0.001 / 0.017, so >= 0.98 and
    # >= 0.85 leave >= 5 sds. The conditional-target ablation closes about -0.08 (it collapses
    # to the conditional mean like the naive step): the same check must reject it, so the
    # metric discriminates.
    args = {m: (mean(naive, m), mean(teacher, m)) for m in ("mmd", "sw")}
    close_mmd = _closure(args["mmd"][0], mean(snap, "mmd"), args["mmd"][1])
    close_sw = _closure(args["sw"][0], mean(snap, "sw"), args["sw"][1])
    assert close_mmd >= 0.98, (close_mmd, per_seed)
    assert close_sw >= 0.85, (close_sw, per_seed)
    assert _closure(args["mmd"][0], mean(cond, "mmd"), args["mmd"][1]) < 0.5, per_seed
    assert _closure(args["sw"][0], mean(cond, "sw"), args["sw"][1]) < 0.5, per_seed
