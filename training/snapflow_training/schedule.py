"""Learning-rate schedule: linear warm-up, then cosine decay to ``min_lr`` (or constant)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SCHEDULES = ("cosine", "constant")


@dataclass
class WarmupCosine:
    """Multiplier of the base lr at optimizer step ``step`` (a LambdaLR lambda).

    Warm-up: ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps. Then
    ``cosine``: from 1 down to ``min_lr / lr`` at ``total_steps``; ``constant``: 1.
    """

    lr: float
    min_lr: float
    warmup_steps: int
    total_steps: int
    schedule: str = "cosine"

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return 1.0
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        floor = self.min_lr / self.lr if self.lr > 0 else 0.0
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(
    params: list[torch.nn.Parameter],
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters (LeRobot's SmolVLA / pi0.5 betas by default)."""
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, schedule: WarmupCosine
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR stepping ``schedule`` once per optimizer step.

    The lambda is a plain function, which LambdaLR neither saves nor restores: a resumed
    run follows the schedule of its own settings (a larger ``--steps`` re-plans the decay),
    while the step count comes from the checkpoint.
    """

    def factor(step: int) -> float:
        return schedule(step)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
