"""Where the time of one chunk goes: vision encoder, projector, language prefix, expert, rest.

Usage::

    python -m snapflow_ros.bench.stage_profile --policies smolvla,pi05 --size full \\
        --steps 1 --engine fast --device cuda --dtype bfloat16 --out artifacts/profile.json

The runtime's own stage timings (preprocess, prefix, denoise, postprocess) are split further
with timing hooks on the vision encoder and the image projector (the device is synchronised
around them, so on a GPU the numbers are kernel time, not launch time). "language prefix" is
the prefix stage minus those two (text embedding, the VLM's transformer over the prefix and
its KV cache). Reports the mean per prediction and each part's share of the total: the part
to attack next for the latency targets.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from snapflow_ros.bench.machine import machine_info, resolve_device
from snapflow_ros.bench.report import emit
from snapflow_ros.bench.runtime_latency import spec_for
from snapflow_ros.fixtures.tiny_checkpoints import ensure_tiny_checkpoint
from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions
from snapflow_ros.runtime.fast_path import ENGINES

VISION_MODULES = {
    "smolvla": (
        "model.vlm_with_expert.vlm.model.vision_model",
        "model.vlm_with_expert.vlm.model.connector",
    ),
    "pi05": (
        "model.paligemma_with_expert.paligemma.model.vision_tower",
        "model.paligemma_with_expert.paligemma.model.multi_modal_projector",
    ),
}  # fmt: skip
PARTS = (
    "preprocess",
    "vision encoder",
    "image projector",
    "language prefix",
    "expert (denoise)",
    "postprocess",
)


class ModuleTimer:
    """Accumulates the wall time of a module's forward passes (device synchronised)."""

    def __init__(self, module: nn.Module, device: str) -> None:
        self.total = 0.0
        self._start = 0.0
        self._cuda = device.startswith("cuda")
        self._handles = [
            module.register_forward_pre_hook(self._before),
            module.register_forward_hook(self._after),
        ]

    def _sync(self) -> None:
        if self._cuda:
            torch.cuda.synchronize()

    def _before(self, *_: Any) -> None:
        self._sync()
        self._start = time.perf_counter()

    def _after(self, *_: Any) -> None:
        self._sync()
        self.total += time.perf_counter() - self._start

    def remove(self) -> None:
        """Detach the hooks."""
        for handle in self._handles:
            handle.remove()


@contextmanager
def timed_modules(runtime: PolicyRuntime) -> Iterator[list[ModuleTimer]]:
    """Timers on the policy's vision encoder and projector while the context is open."""
    names = VISION_MODULES[runtime.policy_type]
    modules = dict(runtime.policy.named_modules())
    timers = [ModuleTimer(modules[name], runtime.device) for name in names]
    try:
        yield timers
    finally:
        for timer in timers:
            timer.remove()


def profile_one(
    policy_type: str, size: str, steps: int, repeats: int, options: RuntimeOptions
) -> dict[str, Any]:
    """Mean time per part of one prediction; returns a JSON-ready row."""
    runtime = PolicyRuntime(ensure_tiny_checkpoint(spec_for(policy_type, size)), options)
    obs = runtime.dummy_observation()
    obs.task = "pick up the black bowl and place it on the plate"
    runtime.predict_chunk(obs, num_steps=steps)  # warm (and compile) this step count
    parts: dict[str, list[float]] = {p: [] for p in PARTS}
    totals = []
    with timed_modules(runtime) as (vision, projector):
        for _ in range(repeats):
            vision.total = projector.total = 0.0
            t = runtime.predict_chunk(obs, num_steps=steps).timings
            parts["preprocess"].append(t.preprocess)
            parts["vision encoder"].append(vision.total)
            parts["image projector"].append(projector.total)
            parts["language prefix"].append(max(0.0, t.prefix - vision.total - projector.total))
            parts["expert (denoise)"].append(t.denoise)
            parts["postprocess"].append(t.postprocess)
            totals.append(t.total)
    total_ms = float(np.mean(totals)) * 1000
    return {
        "policy": policy_type,
        "size": size,
        "engine": options.engine,
        "dtype": options.dtype,
        "steps": steps,
        "repeats": repeats,
        "total_ms": total_ms,
        "parts_ms": {p: float(np.mean(v)) * 1000 for p, v in parts.items()},
        "share": {p: float(np.mean(v)) * 1000 / total_ms for p, v in parts.items()},
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """One table row per profiled configuration: ms (share) of every part."""
    lines = [
        "| policy | size | engine | dtype | steps | total (ms) | "
        + " | ".join(f"{p} ms (%)" for p in PARTS)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(PARTS),
    ]
    for r in rows:
        cells = " | ".join(f"{r['parts_ms'][p]:.1f} ({100 * r['share'][p]:.0f}%)" for p in PARTS)
        lines.append(
            f"| {r['policy']} | {r['size']} | {r['engine']} | {r['dtype']} | {r['steps']} "
            f"| {r['total_ms']:.1f} | {cells} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(prog="python -m snapflow_ros.bench.stage_profile")
    p.add_argument("--policies", default="smolvla,pi05", help="comma list: smolvla,pi05")
    p.add_argument("--size", choices=("tiny", "full"), default="tiny")
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--engine", choices=ENGINES, default="fast")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = p.parse_args(argv)
    args.policies = [x for x in args.policies.split(",") if x]
    if not args.policies or not set(args.policies) <= set(VISION_MODULES):
        p.error(f"--policies: expected smolvla and/or pi05, got {args.policies}")
    if args.steps < 1 or args.repeats < 1:
        p.error("--steps and --repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Profile, print the table, write JSON."""
    args = parse_args(argv)
    options = RuntimeOptions(
        device=args.device, dtype=args.dtype, engine=args.engine, warmup=1, seed=0
    )
    rows = []
    for policy_type in args.policies:
        print(f"[profile] {policy_type}/{args.size}/{args.engine}", file=sys.stderr)
        rows.append(profile_one(policy_type, args.size, args.steps, args.repeats, options))
    report = {
        "benchmark": "stage_profile",
        "machine": machine_info(resolve_device(args.device)),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rows": rows,
    }
    emit(report, markdown(rows), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
