"""Euler integration of a flow-matching velocity field (LeRobot convention).

Time runs from t=1 (noise) to t=0 (data). With ``N`` steps the step is ``dt = 1/N`` and
``x <- x - dt * v``. A plain model is asked for the instantaneous velocity (``s = t``). A
SnapFlow model also takes a target time ``s``: it is asked for the *average* velocity from
``t`` to ``s = t - dt`` only when ``dt`` is a jump length it was trained on (``trained_jumps``,
recorded in ``snapflow.json``), otherwise for its instantaneous velocity (``s = t``, which the
flow-matching half of its training keeps). One SnapFlow step is ``a = eps - v(eps, 1, 0)``.
A jump length the student never saw is extrapolation: on the 2-D toy (lam 0.1, 3 seeds), 10
steps with ``s = t - 1/10`` from a student trained on jumps 1, 1/2, 1/4 land at energy distance
0.35 from the 10-step teacher (its own floor: 0.24), 10 steps with ``s = t`` at 0.24
(docs/distillation.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``v(x_t, t, s)``: ``x_t`` is (B, ...) and ``t``, ``s`` are (B,) float tensors."""

JUMP_TOLERANCE = 1e-6


def jump_is_trained(length: float, trained_jumps: Sequence[float] | None) -> bool:
    """Whether a jump of ``length`` is one of ``trained_jumps`` (None: every length is)."""
    if trained_jumps is None:
        return True
    return any(abs(length - jump) <= JUMP_TOLERANCE for jump in trained_jumps)


def step_times(
    num_steps: int, target_time: bool, trained_jumps: Sequence[float] | None = None
) -> list[tuple[float, float]]:
    """Return the (t, s) pair of every Euler step, from t=1 down to t=1/N.

    ``s`` is the next time (``t - 1/N``) when ``target_time`` is true and ``1/N`` is a trained
    jump length (``trained_jumps``; None: any length), else ``t`` itself. The times are
    computed as LeRobot's samplers do (``1 + i * (-1/N)``) so that the N-step result matches
    theirs bit for bit.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    dt = -1.0 / num_steps
    jump = target_time and jump_is_trained(1.0 / num_steps, trained_jumps)
    pairs = []
    for i in range(num_steps):
        t = 1.0 + i * dt
        s = max(t + dt, 0.0) if jump else t
        pairs.append((t, s))
    return pairs


def euler_sample(
    velocity: VelocityFn,
    noise: torch.Tensor,
    num_steps: int,
    target_time: bool = False,
    trained_jumps: Sequence[float] | None = None,
) -> torch.Tensor:
    """Integrate ``velocity`` from ``noise`` (t=1) to data (t=0) in ``num_steps`` Euler steps.

    ``target_time`` / ``trained_jumps``: see :func:`step_times`.
    """
    x = noise
    batch = noise.shape[0]
    dt = -1.0 / num_steps
    for t, s in step_times(num_steps, target_time, trained_jumps):
        t_vec = torch.full((batch,), t, dtype=torch.float32, device=noise.device)
        s_vec = torch.full((batch,), s, dtype=torch.float32, device=noise.device)
        v = velocity(x, t_vec, s_vec)
        x = x + dt * v
    return x
