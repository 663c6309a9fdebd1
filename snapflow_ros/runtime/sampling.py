"""Euler integration of a flow-matching velocity field (LeRobot convention).

Time runs from t=1 (noise) to t=0 (data). With ``N`` steps the step is ``dt = 1/N`` and
``x <- x - dt * v``. A SnapFlow model also takes a target time ``s``: at each step it is asked
for the *average* velocity from ``t`` to ``s = t - dt``; a plain model is asked for the
instantaneous velocity (``s = t``). One SnapFlow step is therefore ``a = eps - v(eps, 1, 0)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``v(x_t, t, s)``: ``x_t`` is (B, ...) and ``t``, ``s`` are (B,) float tensors."""


def step_times(num_steps: int, target_time: bool) -> list[tuple[float, float]]:
    """Return the (t, s) pair of every Euler step, from t=1 down to t=1/N.

    ``s`` is the next time (``t - 1/N``) when ``target_time`` is true, else ``t`` itself.
    The times are computed as LeRobot's samplers do (``1 + i * (-1/N)``) so that the
    N-step result matches theirs bit for bit.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    dt = -1.0 / num_steps
    pairs = []
    for i in range(num_steps):
        t = 1.0 + i * dt
        s = max(t + dt, 0.0) if target_time else t
        pairs.append((t, s))
    return pairs


def euler_sample(
    velocity: VelocityFn,
    noise: torch.Tensor,
    num_steps: int,
    target_time: bool = False,
) -> torch.Tensor:
    """Integrate ``velocity`` from ``noise`` (t=1) to data (t=0) in ``num_steps`` Euler steps."""
    x = noise
    batch = noise.shape[0]
    dt = -1.0 / num_steps
    for t, s in step_times(num_steps, target_time):
        t_vec = torch.full((batch,), t, dtype=torch.float32, device=noise.device)
        s_vec = torch.full((batch,), s, dtype=torch.float32, device=noise.device)
        v = velocity(x, t_vec, s_vec)
        x = x + dt * v
    return x
