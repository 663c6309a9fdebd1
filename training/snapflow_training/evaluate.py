"""Held-out evaluation: teacher N steps, teacher 1 step (naive) and SnapFlow 1 step.

All methods see the same observations and the same noise. Metrics: action MSE to the recorded
actions (in the dataset's units and in the policy's normalised space), per action dimension,
per horizon step, the spread of samples across noise draws, and latency per chunk (batch 1).
MSE rewards averaging: a blurry one-step model that predicts the mean of several valid action
modes can score WELL on MSE and still fail in closed loop, which is why the report also gives
the sample spread and why closed-loop success is the real test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snapflow_ros.runtime.sampling import euler_sample

MSE_CAVEAT = (
    "MSE against recorded actions rewards predicting the average: a blurry one-step model that "
    "averages several valid action modes can score well on MSE and still fail in closed loop. "
    "Compare sample_spread (diversity across noise draws) with the teacher's, and judge the "
    "checkpoint by closed-loop success in simulation or on the robot, not by MSE alone."
)


@dataclass
class Method:
    """One way of sampling a chunk: the adapter to use, the steps, and the target-time flag."""

    name: str
    adapter: Any
    num_steps: int
    target_time: bool


@dataclass
class Predictions:
    """Normalised action chunks of one method over the evaluation set (N, H, D)."""

    actions: torch.Tensor
    spread: float = float("nan")
    latency: dict[str, float] = field(default_factory=dict)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sample_chunk(method: Method, cache: Any, noise: torch.Tensor, dim: int) -> torch.Tensor:
    """Normalised (B, H, D) chunk for a prefix cache and noise, as the runtime samples it."""
    adapter = method.adapter
    actions = euler_sample(
        lambda x, t, s: adapter.velocity(cache, x, t, s),
        noise,
        method.num_steps,
        target_time=method.target_time,
    )
    return adapter.finalize(actions.float())[..., :dim]


@torch.no_grad()
def predict(
    methods: list[Method],
    batch: dict[str, Any],
    noise: torch.Tensor,
    dim: int,
    autocast: Callable[[], Any],
) -> dict[str, torch.Tensor]:
    """Chunks (on the CPU) of every method for one preprocessed batch (prefix encoded once)."""
    out: dict[str, torch.Tensor] = {}
    caches: dict[int, Any] = {}
    with autocast():
        for m in methods:
            key = id(m.adapter)
            if key not in caches:
                caches[key] = m.adapter.encode_prefix(m.adapter.model_inputs(batch))
            out[m.name] = sample_chunk(m, caches[key], noise.to(_device(m)), dim).float().cpu()
    return out


def _device(method: Method) -> torch.device:
    return next(method.adapter.policy.parameters()).device


@torch.no_grad()
def sample_spread(
    method: Method,
    batch: dict[str, Any],
    noise_draws: torch.Tensor,
    dim: int,
    autocast: Callable[[], Any],
) -> float:
    """Mean std across noise draws (K, B, H, Dmax) of the normalised chunks for ``batch``."""
    with autocast():
        cache = method.adapter.encode_prefix(method.adapter.model_inputs(batch))
        chunks = torch.stack(
            [sample_chunk(method, cache, n.to(_device(method)), dim) for n in noise_draws]
        )
    return float(chunks.float().std(dim=0).mean())


@torch.no_grad()
def latency(
    methods: list[Method],
    batch: dict[str, Any],
    noise: torch.Tensor,
    dim: int,
    autocast: Callable[[], Any],
    repeats: int,
) -> dict[str, dict[str, float]]:
    """Median milliseconds per chunk (prefix, denoise, total) at batch size 1, per method.

    The methods are timed in turn within each repeat (after one warm-up round), so slow drift
    of the machine affects them alike.
    """
    times: dict[str, tuple[list[float], list[float]]] = {m.name: ([], []) for m in methods}
    for round_index in range(repeats + 1):
        for m in methods:
            device = _device(m)
            _sync(device)
            t0 = time.perf_counter()
            with autocast():
                cache = m.adapter.encode_prefix(m.adapter.model_inputs(batch))
                _sync(device)
                t1 = time.perf_counter()
                sample_chunk(m, cache, noise.to(device), dim)
            _sync(device)
            t2 = time.perf_counter()
            if round_index:  # round 0 is warm-up
                times[m.name][0].append((t1 - t0) * 1e3)
                times[m.name][1].append((t2 - t1) * 1e3)
    out = {}
    for name, (prefix_ms, denoise_ms) in times.items():
        prefix, denoise = float(np.median(prefix_ms)), float(np.median(denoise_ms))
        out[name] = {"prefix_ms": prefix, "denoise_ms": denoise, "total_ms": prefix + denoise}
    return out


def error_metrics(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> dict[str, Any]:
    """MSE overall, per dimension and per horizon step over valid (not padded) actions."""
    err = (pred - target).square()
    mask = valid[..., None].to(err.dtype).expand_as(err)
    count = mask.sum()
    per_dim = (err * mask).sum(dim=(0, 1)) / mask.sum(dim=(0, 1)).clamp_min(1)
    per_step = (err * mask).sum(dim=(0, 2)) / mask.sum(dim=(0, 2)).clamp_min(1)
    return {
        "mse": float((err * mask).sum() / count.clamp_min(1)),
        "per_dim_mse": per_dim.tolist(),
        "per_horizon_mse": per_step.tolist(),
    }


def build_report(
    preds: dict[str, Predictions],
    normalised_target: torch.Tensor,
    raw_target: torch.Tensor,
    valid: torch.Tensor,
    unnormalise: Callable[[torch.Tensor], torch.Tensor],
    context: dict[str, Any],
) -> dict[str, Any]:
    """The evaluation report (JSON-ready)."""
    methods: dict[str, Any] = {}
    for name, p in preds.items():
        raw = error_metrics(unnormalise(p.actions), raw_target, valid)
        methods[name] = {
            "mse": raw["mse"],
            "normalized_mse": error_metrics(p.actions, normalised_target, valid)["mse"],
            "per_dim_mse": raw["per_dim_mse"],
            "per_horizon_mse": raw["per_horizon_mse"],
            "sample_spread": p.spread,
            "latency": p.latency,
        }
    names = list(methods)
    report: dict[str, Any] = {**context, "methods": methods, "note": MSE_CAVEAT}
    if len(names) == 3:
        teacher_n, teacher_1, student = names
        base = methods[teacher_n]["mse"]
        naive = methods[teacher_1]["mse"]
        ours = methods[student]["mse"]
        report["summary"] = {
            "snapflow_vs_teacher_n_mse_change_pct": 100.0 * (ours - base) / max(base, 1e-12),
            "snapflow_vs_naive_1_step_mse_change_pct": 100.0 * (ours - naive) / max(naive, 1e-12),
            "denoise_speedup_vs_teacher_n": _ratio(methods, teacher_n, student, "denoise_ms"),
            "total_speedup_vs_teacher_n": _ratio(methods, teacher_n, student, "total_ms"),
        }
    return report


def _ratio(methods: dict[str, Any], slow: str, fast: str, key: str) -> float | None:
    a, b = methods[slow]["latency"].get(key), methods[fast]["latency"].get(key)
    return float(a / b) if a and b else None


def write_report(report: dict[str, Any], path: Path) -> Path:
    """Write ``report`` as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return path


def plot_report(
    report: dict[str, Any],
    raw_preds: dict[str, torch.Tensor],
    raw_target: torch.Tensor,
    path: Path,
) -> Path:
    """PNG: recorded vs predicted first action of each chunk over the evaluation frames (one
    panel per action dimension) and MSE by horizon step per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dim = raw_target.shape[-1]
    cols = 4
    rows = -(-(dim + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    frames = np.arange(raw_target.shape[0])
    for d in range(dim):
        ax = axes[d // cols][d % cols]
        ax.plot(frames, raw_target[:, 0, d].numpy(), "k-", lw=2, label="recorded")
        for name, pred in raw_preds.items():
            ax.plot(frames, pred[:, 0, d].numpy(), lw=1, label=name)
        ax.set_title(f"action[{d}] (first of chunk)", fontsize=9)
        ax.set_xlabel("eval frame", fontsize=8)
    ax = axes[dim // cols][dim % cols]
    for name, m in report["methods"].items():
        ax.plot(np.arange(1, len(m["per_horizon_mse"]) + 1), m["per_horizon_mse"], label=name)
    ax.set_title("MSE by horizon step", fontsize=9)
    ax.set_xlabel("step in chunk", fontsize=8)
    ax.legend(fontsize=7)
    for k in range(dim + 1, rows * cols):
        axes[k // cols][k % cols].axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"SnapFlow eval at step {report.get('step')} (MSE rewards averaging)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
