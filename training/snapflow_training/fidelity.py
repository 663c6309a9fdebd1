"""Fidelity of a few-step sampler to its N-step teacher: distances and mode commitment.

All functions work on chunks drawn for the SAME observations with the SAME noise by every
method, ``(N, K, H, D)``: N observations, K noise draws each.

* :func:`same_noise_rms`: per (observation, draw), the RMS difference of a method's chunk and
  the teacher's chunk made from the same noise: how well one step reproduces the teacher's
  deterministic noise -> action map.
* :func:`energy_distance`: per observation, the energy distance between the K chunks of a
  method and the K chunks of the teacher (V-statistic, so two finite samples of one
  distribution give a positive value: the teacher's second noise set sets that FLOOR).
  It compares distributions: a sampler that averages two modes is far even when its mean is
  right.
* :func:`mode_scores` / :func:`mode_metrics`: for data whose modes are the sign of one action
  dimension (left/right), whether each draw commits to a mode (``|score|`` at least half the
  recorded one's) and whether it picks the recorded sign.

MSE to recorded actions rewards the average of the modes; these metrics do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def _flat(chunks: torch.Tensor) -> torch.Tensor:
    """(N, K, H, D) -> (N, K, H*D) float64."""
    return chunks.reshape(chunks.shape[0], chunks.shape[1], -1).double()


def same_noise_rms(chunks: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(N, K) RMS over (H, D) of ``chunks - reference`` (same observations, same noise)."""
    if chunks.shape != reference.shape:
        raise ValueError(f"shapes differ: {tuple(chunks.shape)} vs {tuple(reference.shape)}")
    return (_flat(chunks) - _flat(reference)).square().mean(dim=-1).sqrt()


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) energy distances between the draws of ``x`` and ``y`` ((N, K, H, D) each).

    ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` with Euclidean norms over the flattened chunk, all
    pairs included (V-statistic): zero only for identical samples.
    """
    if x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
        raise ValueError(f"shapes do not match: {tuple(x.shape)} vs {tuple(y.shape)}")
    a, b = _flat(x), _flat(y)
    xy = torch.cdist(a, b).mean(dim=(1, 2))
    xx = torch.cdist(a, a).mean(dim=(1, 2))
    yy = torch.cdist(b, b).mean(dim=(1, 2))
    return 2 * xy - xx - yy


def summary(values: torch.Tensor) -> dict[str, float]:
    """Mean and 90th percentile of a tensor of per-item values."""
    flat = values.flatten().double()
    return {"mean": float(flat.mean()), "p90": float(torch.quantile(flat, 0.9))}


def mode_scores(chunks: torch.Tensor, valid: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of action dimension ``dim`` over the valid steps of each chunk.

    ``chunks``: (N, K, H, D) or (N, H, D) in the dataset's units; ``valid``: (N, H) bool.
    Returns (N, K) or (N,).
    """
    weights = valid.to(torch.float64)
    if chunks.ndim == 4:
        weights = weights[:, None, :]
    values = chunks[..., dim].double()
    return (values * weights).sum(dim=-1) / weights.sum(dim=-1).clamp_min(1.0)


def mode_metrics(
    scores: torch.Tensor,
    recorded: torch.Tensor,
    groups: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Commitment and right-sign rates of draws ``scores`` (N, K) vs ``recorded`` (N,).

    A draw commits when ``|score| >= |recorded| / 2`` (it is nearer one of the two modes
    ``+-recorded`` than their average, 0); it has the right sign when
    ``sign(score) == sign(recorded)``. ``plus_share`` / ``minus_share``: the fractions of
    draws committed to the positive / negative mode (they add up to ``commitment``; how a
    sampler splits its draws between the modes when the observation does not decide). With
    ``groups`` (one label per observation) the rates are also given per group (e.g. mode
    hidden / visible in the images).
    """
    half = 0.5 * recorded.abs()[:, None]
    plus, minus = scores >= half, scores <= -half
    commits = plus | minus
    right = torch.sign(scores) == torch.sign(recorded)[:, None]
    out: dict[str, Any] = {
        "commitment": float(commits.double().mean()),
        "right_sign": float(right.double().mean()),
        "plus_share": float(plus.double().mean()),
        "minus_share": float(minus.double().mean()),
        "num_observations": int(scores.shape[0]),
    }
    if groups is not None:
        per_group = {}
        for label in sorted(set(groups)):
            rows = torch.tensor([g == label for g in groups])
            per_group[label] = {
                "commitment": float(commits[rows].double().mean()),
                "right_sign": float(right[rows].double().mean()),
                "plus_share": float(plus[rows].double().mean()),
                "minus_share": float(minus[rows].double().mean()),
                "num_observations": int(rows.sum()),
            }
        out["groups"] = per_group
    return out


def sample_spread(chunks: torch.Tensor) -> float:
    """Mean std across the K draws of (N, K, H, D) chunks: the diversity of a sampler."""
    return float(chunks.double().std(dim=1).mean())


def sample_spread_per_dim(chunks: torch.Tensor) -> list[float]:
    """:func:`sample_spread` of each action dimension (D values)."""
    return [float(v) for v in chunks.double().std(dim=1).mean(dim=(0, 1))]
