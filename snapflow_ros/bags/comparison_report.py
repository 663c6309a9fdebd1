"""The comparison report: building it from two bags, JSON and a PNG plot."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snapflow_ros.bags.chunks import (
    Chunk,
    Matching,
    find_chunk_topic,
    find_status_topic,
    match_chunks,
    read_chunks,
    read_rejections,
    read_status_events,
    split_rejected,
)
from snapflow_ros.bags.errors import BagError
from snapflow_ros.bags.io import BagReader
from snapflow_ros.bags.lockstep import Rejection
from snapflow_ros.bags.metrics import action_errors, chunk_rate, latency_samples, summary
from snapflow_ros.control.status import ChunkEvent


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as None and numpy scalars as Python numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    return value


@dataclass
class CompareOptions:
    """Which topics to compare and how to match chunks."""

    topic: str | None = None  # chunk topic of the outputs bag (auto)
    ref_topic: str | None = None  # chunk topic of the reference bag (auto)
    status_topic: str | None = None  # status topic of the outputs bag (auto)
    match: str = "stamp"  # stamp | order
    tolerance_ns: int = 0


@dataclass
class Comparison:
    """The report and what the plot needs."""

    report: dict[str, Any]
    reference: list[Chunk] = field(default_factory=list)
    output: list[Chunk] = field(default_factory=list)
    matching: Matching | None = None
    latency_samples: dict[str, list[float]] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)


@dataclass
class _Loaded:
    """One bag's chunks and (outputs bag) status events."""

    chunk_topic: str
    chunks: list[Chunk]
    status_topic: str | None
    events: list[ChunkEvent]  # chunk events
    rejections: list[Rejection]
    shift: int
    info: dict[str, Any]


def _load(
    path: str | os.PathLike, topic: str | None, status: str | None, with_status: bool
) -> _Loaded:
    """Chunks (stamp shift undone) and, if wanted, status chunk events and rejections."""
    with BagReader(path) as reader:
        shift = int(reader.replay_info().get("stamp_shift_ns", 0) or 0)
        chunk_topic = find_chunk_topic(reader, topic)
        chunks = read_chunks(reader, chunk_topic, shift)
        events: list[ChunkEvent] = []
        rejections: list[Rejection] = []
        status_topic = None
        if with_status:
            status_topic = find_status_topic(reader, chunk_topic, status)
            if status_topic:
                events = read_status_events(reader, status_topic, "chunk", shift)
                rejections = read_rejections(reader, status_topic, shift)
        info = reader.replay_info()
    return _Loaded(chunk_topic, chunks, status_topic, events, rejections, shift, info)


def compare_bags(
    output_path: str | os.PathLike, reference_path: str | os.PathLike, options: CompareOptions
) -> Comparison:
    """Match the chunks of ``output_path`` to those of ``reference_path`` and measure.

    Observations the node rejected (its ``rejected`` status events in the outputs bag) are
    reported as ``rejected``; a reference chunk of such an observation (stamp matching) is
    ``missing_rejected``, not ``missing`` (the gate's ``max_rejected`` checks them).
    """
    out = _load(output_path, options.topic, options.status_topic, True)
    ref = _load(reference_path, options.ref_topic or options.topic, None, False)
    output, reference, events = out.chunks, ref.chunks, out.events
    if not reference:
        raise BagError(f"reference bag {reference_path} has no chunks on {ref.chunk_topic}")
    matching = match_chunks(reference, output, options.match, options.tolerance_ns)
    missing_rejected: list[int] = []
    if options.match == "stamp" and out.rejections:
        still, missing_rejected = split_rejected(
            reference, matching.missing, out.rejections, options.tolerance_ns
        )
        matching = Matching(matching.pairs, still, matching.extra)
    errors = action_errors(reference, output, matching)
    if errors["name_mismatch"]:
        ri, oi = next(
            (r, o)
            for r, o in matching.pairs
            if reference[r].joint_names != output[o].joint_names
            or reference[r].actions.shape[1:] != output[o].actions.shape[1:]
        )
        raise BagError(
            f"the chunks do not have the same action dimensions: reference "
            f"{list(reference[ri].joint_names)} ({reference[ri].actions.shape[1]} values), "
            f"output {list(output[oi].joint_names)} ({output[oi].actions.shape[1]} values)"
        )
    samples = latency_samples(output, events)
    lat = {name: summary(values) for name, values in samples.items()}
    report = {
        "output": {
            "bag": str(output_path),
            "topic": out.chunk_topic,
            "status_topic": out.status_topic,
            "stamp_shift_ns": out.shift,
            "replay": out.info,
        },
        "reference": {
            "bag": str(reference_path),
            "topic": ref.chunk_topic,
            "stamp_shift_ns": ref.shift,
        },
        "match": {"by": options.match, "tolerance_ns": options.tolerance_ns},
        "chunks": {
            "reference": len(reference),
            "output": len(output),
            "matched": len(matching.pairs),
            "missing": len(matching.missing),
            "extra": len(matching.extra),
            "missing_stamps_ns": [reference[i].stamp_ns for i in matching.missing[:50]],
            "extra_stamps_ns": [output[i].stamp_ns for i in matching.extra[:50]],
            "rejected": len(out.rejections),
            "missing_rejected": len(missing_rejected),
            "missing_rejected_stamps_ns": [reference[i].stamp_ns for i in missing_rejected[:50]],
            "rate_hz": chunk_rate(output),
            "reference_rate_hz": chunk_rate(reference),
        },
        "rejections": [r.as_dict() for r in out.rejections[:50]],
        "actions": errors,
        "latency_s": lat,
    }
    return Comparison(report, reference, output, matching, samples, out.rejections)


def write_json(report: dict[str, Any], path: str | os.PathLike) -> None:
    """Write the report as indented JSON."""
    Path(path).write_text(json.dumps(jsonable(report), indent=2) + "\n")


def write_plot(
    comp: Comparison, path: str | os.PathLike, latency_metric: str = "inference"
) -> None:
    """PNG: first action of each chunk over time (reference vs output), per-dimension
    error, RMSE along the horizon, and a latency histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = comp.report
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ax = axes[0][0]
    t0 = min([c.stamp_ns for c in comp.reference + comp.output] or [0])
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    dims = comp.reference[0].actions.shape[1] if comp.reference else 0
    names = comp.reference[0].joint_names if comp.reference else ()
    for d in range(min(dims, 8)):
        colour = colours[d % len(colours)]
        for chunks, style, label in ((comp.reference, "-", "ref"), (comp.output, "--", "out")):
            pts = sorted((c.stamp_ns, c.actions[0, d]) for c in chunks if c.actions.shape[0])
            if pts:
                xs = [(s - t0) * 1e-9 for s, _ in pts]
                ax.plot(
                    xs,
                    [v for _, v in pts],
                    style,
                    color=colour,
                    lw=1,
                    label=f"{names[d] if d < len(names) else d} {label}",
                )
    ax.set_title("first action of each chunk (solid: reference, dashed: output)")
    ax.set_xlabel("observation time (s)")
    if dims:
        ax.legend(fontsize=6, ncol=2)
    ax = axes[0][1]
    per_dim = report["actions"]["per_dimension"]
    if per_dim:
        labels = list(per_dim)
        x = np.arange(len(labels))
        ax.bar(x - 0.2, [per_dim[k]["rmse"] for k in labels], 0.4, label="RMSE")
        ax.bar(x + 0.2, [per_dim[k]["max_abs"] for k in labels], 0.4, label="max abs")
        ax.set_xticks(x, labels, rotation=45, fontsize=7)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no matched chunks", ha="center", va="center")
    ax.set_title("action error per dimension (matched chunks)")
    ax = axes[1][0]
    per_step = report["actions"]["rmse_per_step"]
    if per_step:
        ax.plot(range(len(per_step)), per_step, "o-")
    ax.set_title("RMSE along the chunk (action index)")
    ax.set_xlabel("action index in chunk")
    ax = axes[1][1]
    samples = comp.latency_samples.get(latency_metric)
    if samples:
        ax.hist(np.asarray(samples) * 1e3, bins=30)
        ax.set_xlabel("ms")
    else:
        ax.text(0.5, 0.5, "no latency samples", ha="center", va="center")
    ch = report["chunks"]
    ax.set_title(
        f"{latency_metric} latency; chunks: {ch['matched']} matched, "
        f"{ch['missing']} missing, {ch['extra']} extra, {ch['rejected']} rejected",
        fontsize=9,
    )
    fig.suptitle(f"{report['output']['bag']}  vs  {report['reference']['bag']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
