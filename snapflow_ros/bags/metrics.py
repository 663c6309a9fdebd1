"""Metrics of an outputs bag against a reference, and the pass/fail gate.

* action error over matched chunks: per dimension and overall mean/max absolute error and
  RMSE, and RMSE per chunk index (how error grows along the horizon);
* chunk rate (chunks per second of observation time);
* latency percentiles: ``inference`` (the node's compute time per chunk, from its status
  events), ``e2e`` (trigger to chunk, node clock), ``obs_age`` (observation capture to chunk,
  node clock), ``receive`` (observation capture to the chunk's arrival in the bag);
* missing / extra chunks, and observations the node rejected (not counted as missing:
  gated on their own by ``max_rejected``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from snapflow_ros.bags.chunks import Chunk, Matching
from snapflow_ros.control.status import ChunkEvent

LATENCY_METRICS = ("inference", "e2e", "obs_age", "receive")


def summary(values: list[float] | np.ndarray) -> dict[str, Any]:
    """Count, mean, p50/p90/p95/p99 and max of ``values`` (None entries when empty)."""
    arr = np.asarray(values, np.float64)
    if arr.size == 0:
        return {
            "count": 0,
            "mean": None,
            "p50": None,
            "p90": None,
            "p95": None,
            "p99": None,
            "max": None,
        }
    q = np.percentile(arr, [50, 90, 95, 99])
    return {
        "count": int(arr.size),
        "mean": float(arr.mean()),
        "p50": float(q[0]),
        "p90": float(q[1]),
        "p95": float(q[2]),
        "p99": float(q[3]),
        "max": float(arr.max()),
    }


def _stats(diff: np.ndarray) -> dict[str, float]:
    return {
        "mean_abs": float(np.mean(np.abs(diff))),
        "max_abs": float(np.max(np.abs(diff))),
        "rmse": float(np.sqrt(np.mean(diff**2))),
    }


def action_errors(
    reference: list[Chunk], output: list[Chunk], matching: Matching
) -> dict[str, Any]:
    """Error statistics over the matched chunks (their common horizon and dimensions).

    Chunks with different joint names are not compared value by value: they are counted in
    ``name_mismatch`` (the caller reports them as bad input).
    """
    diffs = []
    names: tuple[str, ...] | None = None
    horizon_mismatch = name_mismatch = 0
    for ri, oi in matching.pairs:
        ref, out = reference[ri], output[oi]
        if ref.joint_names != out.joint_names or ref.actions.shape[1:] != out.actions.shape[1:]:
            name_mismatch += 1
            continue
        if ref.actions.shape[0] != out.actions.shape[0]:
            horizon_mismatch += 1
        h = min(ref.actions.shape[0], out.actions.shape[0])
        diffs.append(out.actions[:h] - ref.actions[:h])
        names = names or ref.joint_names
    result: dict[str, Any] = {
        "compared_chunks": len(diffs),
        "horizon_mismatch": horizon_mismatch,
        "name_mismatch": name_mismatch,
        "overall": None,
        "per_dimension": {},
        "rmse_per_step": [],
    }
    if not diffs or all(d.size == 0 for d in diffs):
        return result
    horizon = max(d.shape[0] for d in diffs)
    dim = diffs[0].shape[1]
    flat = np.concatenate([d.reshape(-1, dim) for d in diffs])
    result["overall"] = _stats(flat)
    labels = list(names) if names and len(names) == dim else [f"dim_{i}" for i in range(dim)]
    result["per_dimension"] = {labels[i]: _stats(flat[:, i]) for i in range(dim)}
    per_step = []
    for k in range(horizon):
        rows = [d[k] for d in diffs if d.shape[0] > k]
        per_step.append(float(np.sqrt(np.mean(np.square(rows)))))
    result["rmse_per_step"] = per_step
    return result


def chunk_rate(chunks: list[Chunk]) -> float | None:
    """Chunks per second of observation time (None with fewer than two chunks)."""
    if len(chunks) < 2:
        return None
    stamps = sorted(c.stamp_ns for c in chunks)
    span = (stamps[-1] - stamps[0]) * 1e-9
    return (len(stamps) - 1) / span if span > 0 else None


def latency_samples(chunks: list[Chunk], events: list[ChunkEvent]) -> dict[str, list[float]]:
    """Latency samples (seconds) from the node's chunk status events and the bag times."""
    out: dict[str, list[float]] = {name: [] for name in LATENCY_METRICS}
    for ev in events:
        total = ev.timings.get("total")
        if isinstance(total, int | float):
            out["inference"].append(float(total))
        if ev.received_ns is not None and ev.trigger_ns is not None:
            out["e2e"].append((ev.received_ns - ev.trigger_ns) * 1e-9)
        if ev.received_ns is not None and ev.stamp_ns is not None:
            out["obs_age"].append((ev.received_ns - ev.stamp_ns) * 1e-9)
    out["receive"] = [(c.log_ns - c.stamp_ns) * 1e-9 for c in chunks]
    return out


def latencies(chunks: list[Chunk], events: list[ChunkEvent]) -> dict[str, dict[str, Any]]:
    """Latency summaries (seconds) per metric (see :data:`LATENCY_METRICS`)."""
    return {name: summary(v) for name, v in latency_samples(chunks, events).items()}


@dataclass
class Gate:
    """Thresholds of the CI gate (None: not checked)."""

    max_action_rmse: float | None = None
    max_action_abs: float | None = None
    max_missing: int | None = None
    max_extra: int | None = None
    max_latency_p95: float | None = None
    latency_metric: str = "inference"
    min_chunk_rate: float | None = None
    min_matched: int | None = None
    max_rejected: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Thresholds as a plain dict."""
        return dict(self.__dict__)


def _fails(value: float | None, limit: float, above: bool = True) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return value > limit if above else value < limit


def evaluate(report: dict[str, Any], gate: Gate) -> list[str]:
    """The gate's failures (empty: pass), one sentence each."""
    failures = []
    errors = report["actions"]
    overall = errors["overall"]
    matched = report["chunks"]["matched"]
    if gate.max_action_rmse is not None or gate.max_action_abs is not None:
        if overall is None:
            failures.append("no matched chunks to compare actions")
        else:
            if gate.max_action_rmse is not None and _fails(overall["rmse"], gate.max_action_rmse):
                worst = max(errors["per_dimension"].items(), key=lambda kv: kv[1]["rmse"])
                failures.append(
                    f"action RMSE {overall['rmse']:.3g} > {gate.max_action_rmse:g} "
                    f"(worst dimension {worst[0]}: {worst[1]['rmse']:.3g})"
                )
            if gate.max_action_abs is not None and _fails(overall["max_abs"], gate.max_action_abs):
                failures.append(
                    f"max abs action error {overall['max_abs']:.3g} > {gate.max_action_abs:g}"
                )
    missing, extra = report["chunks"]["missing"], report["chunks"]["extra"]
    if gate.max_missing is not None and missing > gate.max_missing:
        failures.append(f"{missing} missing chunks > {gate.max_missing}")
    if gate.max_extra is not None and extra > gate.max_extra:
        failures.append(f"{extra} extra chunks > {gate.max_extra}")
    if gate.min_matched is not None and matched < gate.min_matched:
        failures.append(f"{matched} matched chunks < {gate.min_matched}")
    rejected = report["chunks"].get("rejected", 0)
    if gate.max_rejected is not None and rejected > gate.max_rejected:
        failures.append(f"{rejected} observations rejected by the node > {gate.max_rejected}")
    if gate.max_latency_p95 is not None:
        p95 = report["latency_s"][gate.latency_metric]["p95"]
        if p95 is None:
            failures.append(f"no {gate.latency_metric} latency samples in the outputs bag")
        elif p95 > gate.max_latency_p95:
            failures.append(
                f"{gate.latency_metric} latency p95 {p95:.3g} s > {gate.max_latency_p95:g} s"
            )
    if gate.min_chunk_rate is not None:
        rate = report["chunks"]["rate_hz"]
        if _fails(rate, gate.min_chunk_rate, above=False):
            shown = "n/a" if rate is None else f"{rate:.3g}"
            failures.append(f"chunk rate {shown} Hz < {gate.min_chunk_rate:g} Hz")
    return failures
