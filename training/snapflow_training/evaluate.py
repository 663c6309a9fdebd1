"""Held-out evaluation: teacher N steps, teacher 2 steps, teacher 1 step (naive), SnapFlow 1 step.

All methods see the same observations and the same noise. Metrics:

* fidelity to the N-step teacher (:mod:`snapflow_training.fidelity`), on K noise draws per
  observation: the RMS distance of each chunk to the teacher's chunk from the same noise
  (mean, p90), the energy distance between the K chunks of a method and the teacher's, with
  the teacher's own floor (a second noise set), and, for data whose modes are the sign of
  an action dimension, how often draws commit to a mode and pick the recorded sign;
* action MSE to the recorded actions (in the dataset's units and in the policy's normalised
  space), per action dimension and per horizon step; the spread of samples across draws;
* latency per chunk (batch 1).

MSE rewards averaging: a blurry one-step model that predicts the mean of several valid action
modes can score WELL on MSE and still fail in closed loop; the energy distance and the mode
commitment do not reward it, and closed-loop success is the real test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snapflow_ros.runtime.adapters import PrefixCache
from snapflow_ros.runtime.sampling import euler_sample
from snapflow_training import fidelity

MSE_CAVEAT = (
    "MSE against recorded actions rewards predicting the average: a blurry one-step model that "
    "averages several valid action modes can score well on MSE and still fail in closed loop. "
    "Read the fidelity metrics (energy distance to the N-step teacher against its floor, mode "
    "commitment), and judge the checkpoint by closed-loop success in simulation or on the "
    "robot, not by MSE alone."
)
METRICS_GUIDE = {
    "mse": "MSE to the recorded actions (dataset units); REWARDS averaging the modes",
    "normalized_mse": "the same in the policy's normalised action space",
    "sample_spread": "mean std of the normalised chunk across the noise draws",
    "sample_spread_per_dim": "the same for each action dimension (a student more spread out "
    "than its teacher on one dimension, e.g. the gripper, shows here)",
    "fidelity.same_noise_rms": "RMS distance to the N-step teacher's chunk from the same "
    "noise, per (frame, draw): mean and p90 (normalised units)",
    "fidelity.energy_distance": "energy distance between the method's draws and the N-step "
    "teacher's draws from an independent noise set, per frame, averaged (normalised units, "
    "V-statistic); compare with fidelity_floor.energy_distance, the teacher's own first "
    "noise set against that second one (what a sampler equal to the teacher scores)",
    "mode.commitment": "fraction of draws whose mode score (mean of action[mode_dim] over the "
    "chunk) is at least half the recorded one's in size: committed to a mode, not averaging",
    "mode.right_sign": "fraction of draws with the recorded sign of that score",
}


@dataclass
class Method:
    """One way of sampling a chunk: the adapter, the steps, the target-time flag and the jump
    lengths the student was trained on (see :func:`~snapflow_ros.runtime.sampling.step_times`).
    """

    name: str
    adapter: Any
    num_steps: int
    target_time: bool
    trained_jumps: Sequence[float] | None = None


@dataclass
class Predictions:
    """Normalised chunks of one method: one per eval frame (N, H, D) and, on the fidelity
    frames, K draws each (Nf, K, H, D)."""

    actions: torch.Tensor
    draws: torch.Tensor | None = None
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
        trained_jumps=method.trained_jumps,
    )
    return adapter.finalize(actions.float())[..., :dim]


def repeat_prefix(cache: PrefixCache, repeats: int) -> PrefixCache:
    """The prefix of every observation repeated ``repeats`` times (in place for the KV cache)."""
    cache.past_key_values.batch_repeat_interleave(repeats)
    return PrefixCache(cache.pad_masks.repeat_interleave(repeats, dim=0), cache.past_key_values)


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
def predict_draws(
    methods: list[Method],
    batch: dict[str, Any],
    noise: torch.Tensor,
    dim: int,
    autocast: Callable[[], Any],
) -> dict[str, torch.Tensor]:
    """K chunks per observation (B, K, H, D) of every method for noise (B, K, H, Dmax).

    The prefix is encoded once per network and repeated K times.
    """
    batch_size, draws = noise.shape[:2]
    flat = noise.reshape(batch_size * draws, *noise.shape[2:])
    out: dict[str, torch.Tensor] = {}
    caches: dict[int, Any] = {}
    with autocast():
        for m in methods:
            key = id(m.adapter)
            if key not in caches:
                cache = m.adapter.encode_prefix(m.adapter.model_inputs(batch))
                caches[key] = repeat_prefix(cache, draws)
            chunks = sample_chunk(m, caches[key], flat.to(_device(m)), dim).float().cpu()
            out[m.name] = chunks.reshape(batch_size, draws, *chunks.shape[1:])
    return out


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


@dataclass
class ModeSetup:
    """Recorded actions of the fidelity frames for the mode metrics (dataset units)."""

    dim: int
    recorded: torch.Tensor  # (Nf, H, D)
    valid: torch.Tensor  # (Nf, H) bool
    groups: list[str] | None = None


def _mode_block(
    draws: torch.Tensor, mode: ModeSetup, unnormalise: Callable[[torch.Tensor], torch.Tensor]
) -> dict[str, Any]:
    n, k = draws.shape[:2]
    raw = unnormalise(draws.reshape(n * k, *draws.shape[2:])).reshape(n, k, *draws.shape[2:])
    scores = fidelity.mode_scores(raw, mode.valid, mode.dim)
    recorded = fidelity.mode_scores(mode.recorded, mode.valid, mode.dim)
    return fidelity.mode_metrics(scores, recorded, mode.groups)


def fidelity_report(
    preds: dict[str, Predictions],
    reference: str,
    second_draws: torch.Tensor,
    unnormalise: Callable[[torch.Tensor], torch.Tensor],
    mode: ModeSetup | None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per-method fidelity to the N-step teacher, and the teacher's own floor.

    Every method's draws use the first noise set. The same-noise distance compares them with
    the teacher's draws from that set; the energy distance compares them with the teacher's
    draws from the SECOND, independent set, so that a method whose distribution equals the
    teacher's scores the floor (the teacher's first set against its second) in expectation.
    """
    same = preds[reference].draws
    assert same is not None
    per_method: dict[str, dict[str, Any]] = {}
    for name, p in preds.items():
        if p.draws is None:
            continue
        block: dict[str, Any] = {}
        if name != reference:
            block["same_noise_rms"] = fidelity.summary(fidelity.same_noise_rms(p.draws, same))
            block["energy_distance"] = float(fidelity.energy_distance(p.draws, second_draws).mean())
        if mode is not None:
            block["mode"] = _mode_block(p.draws, mode, unnormalise)
        per_method[name] = block
    floor: dict[str, Any] = {
        "energy_distance": float(fidelity.energy_distance(same, second_draws).mean()),
        "num_frames": int(same.shape[0]),
        "draws_per_frame": int(same.shape[1]),
    }
    if mode is not None:
        floor["mode"] = _mode_block(second_draws, mode, unnormalise)
    return per_method, floor


def build_report(
    preds: dict[str, Predictions],
    normalised_target: torch.Tensor,
    raw_target: torch.Tensor,
    valid: torch.Tensor,
    unnormalise: Callable[[torch.Tensor], torch.Tensor],
    context: dict[str, Any],
    floor_draws: torch.Tensor | None = None,
    mode: ModeSetup | None = None,
) -> dict[str, Any]:
    """The evaluation report (JSON-ready).

    ``preds`` is ordered: the N-step teacher (the reference) first, the student last.
    ``floor_draws``: the N-step teacher's draws from a second, independent noise set (enables
    the fidelity part; see :func:`fidelity_report`).
    """
    names = list(preds)
    reference, student = names[0], names[-1]
    fid: dict[str, dict[str, Any]] = {}
    floor = None
    if floor_draws is not None and preds[reference].draws is not None:
        fid, floor = fidelity_report(preds, reference, floor_draws, unnormalise, mode)
    methods: dict[str, Any] = {}
    for name, p in preds.items():
        raw = error_metrics(unnormalise(p.actions), raw_target, valid)
        methods[name] = {
            "mse": raw["mse"],
            "normalized_mse": error_metrics(p.actions, normalised_target, valid)["mse"],
            "per_dim_mse": raw["per_dim_mse"],
            "per_horizon_mse": raw["per_horizon_mse"],
            "sample_spread": (
                fidelity.sample_spread(p.draws) if p.draws is not None else float("nan")
            ),
            "sample_spread_per_dim": (
                fidelity.sample_spread_per_dim(p.draws) if p.draws is not None else None
            ),
            "fidelity": fid.get(name),
            "latency": p.latency,
        }
    report: dict[str, Any] = {**context, "methods": methods, "note": MSE_CAVEAT}
    report["metrics_guide"] = METRICS_GUIDE
    if floor is not None:
        report["fidelity_floor"] = floor
    naive = next((n for n in names if n.endswith("_1_step") and n != student), None)
    if len(names) >= 2 and naive is not None:
        base, ours = methods[reference]["mse"], methods[student]["mse"]
        summary: dict[str, Any] = {
            "snapflow_vs_teacher_n_mse_change_pct": 100.0 * (ours - base) / max(base, 1e-12),
            "snapflow_vs_naive_1_step_mse_change_pct": 100.0
            * (ours - methods[naive]["mse"])
            / max(methods[naive]["mse"], 1e-12),
            "denoise_speedup_vs_teacher_n": _ratio(methods, reference, student, "denoise_ms"),
            "total_speedup_vs_teacher_n": _ratio(methods, reference, student, "total_ms"),
        }
        # above 1 the student samples wider than its teacher (in a nearly unimodal task the
        # closed loop pays for that; docs/libero.md)
        teacher_spread = max(methods[reference]["sample_spread"], 1e-12)

        def spread_ratio(name: str) -> float | None:
            spread = methods[name]["sample_spread"]
            return spread / teacher_spread if np.isfinite(spread) else None

        summary["snapflow_spread_over_teacher_by_steps"] = _snapflow_by_steps(names, spread_ratio)
        if floor is not None and fid.get(student):
            energy = fid[student]["energy_distance"]
            summary["snapflow_energy_distance_over_floor"] = energy / max(
                floor["energy_distance"], 1e-12
            )
            summary["snapflow_energy_distance_over_floor_by_steps"] = _snapflow_by_steps(
                names,
                lambda name: fid[name]["energy_distance"] / max(floor["energy_distance"], 1e-12)
                if fid.get(name)
                else None,
            )
            if mode is not None:
                ours_c = fid[student]["mode"]["commitment"]
                summary["snapflow_commitment_minus_teacher"] = (
                    ours_c - fid[reference]["mode"]["commitment"]
                )
        report["summary"] = summary
    return report


def _snapflow_by_steps(names: list[str], value: Callable[[str], float | None]) -> dict[str, float]:
    """``value`` of each SnapFlow row (``snapflow_<N>_step[s]``) keyed by its step count
    ``"<N>"``, in row order; rows whose value is None are left out."""
    values = {name.split("_")[1]: value(name) for name in names if name.startswith("snapflow_")}
    return {steps: v for steps, v in values.items() if v is not None}


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
