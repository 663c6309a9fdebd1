"""Where the time of one chunk goes: vision encoder, projector, language prefix, expert, rest.

Usage::

    python -m snapflow_ros.bench.stage_profile --policies smolvla,pi05 --size full \\
        --steps 1 --engine fast --device cuda --dtype bfloat16 --out artifacts/profile.json

Each part is measured on its own: preprocess, expert (denoise) and postprocess are the
runtime's stage timings; the vision encoder and the image projector are timed by forward hooks;
the language prefix (the VLM's transformer over image + text tokens, filling its KV cache) by a
timer around the with-expert model's prefix pass. The device is synchronised around each
timed part, so on a GPU the numbers are kernel time, not launch time. The total is timed
separately around the whole prediction; what the parts leave of it is reported as "other"
(image preparation, text embedding, masks, Python glue): small unless a part is missed, never
negative unless parts overlap. Reports the mean per prediction and each part's share of the
total: the part to attack next for the latency targets.
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
from snapflow_ros.bench.output import emit
from snapflow_ros.bench.runtime_latency import spec_for
from snapflow_ros.policies.tiny import ensure_tiny_checkpoint
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
PREFIX_PASS_MODULES = {  # the VLM + expert pair whose prefix pass is the language prefix
    "smolvla": "model.vlm_with_expert",
    "pi05": "model.paligemma_with_expert",
}
PARTS = (
    "preprocess",
    "vision encoder",
    "image projector",
    "language prefix",
    "expert (denoise)",
    "postprocess",
)
OTHER = "other"  # the measured total minus the parts


class _Timer:
    """Accumulated wall time of the timed calls (device synchronised around each)."""

    def __init__(self, device: str) -> None:
        self.total = 0.0
        self.calls = 0
        self._cuda = device.startswith("cuda")

    def _sync(self) -> None:
        if self._cuda:
            torch.cuda.synchronize()

    def reset(self) -> None:
        """Start accumulating again from zero."""
        self.total, self.calls = 0.0, 0


class ModuleTimer(_Timer):
    """Accumulates the wall time of a module's forward passes (forward hooks)."""

    def __init__(self, module: nn.Module, device: str) -> None:
        super().__init__(device)
        self._start = 0.0
        self._handles = [
            module.register_forward_pre_hook(self._before),
            module.register_forward_hook(self._after),
        ]

    def _before(self, *_: Any) -> None:
        self._sync()
        self._start = time.perf_counter()

    def _after(self, *_: Any) -> None:
        self._sync()
        self.total += time.perf_counter() - self._start
        self.calls += 1

    def remove(self) -> None:
        """Detach the hooks."""
        for handle in self._handles:
            handle.remove()


class PrefixPassTimer(_Timer):
    """Accumulates the wall time of the with-expert model's passes over the prefix.

    The runtime calls that model's ``forward`` directly (module hooks do not fire), once with
    the prefix embeddings (``inputs_embeds=[prefix, None]``: the language prefix) and once per
    denoising step without them (not counted). ``forward`` is wrapped on the instance while
    the timer is installed.
    """

    def __init__(self, module: nn.Module, device: str) -> None:
        super().__init__(device)
        self._module = module
        self._own = module.__dict__.get("forward")  # an instance attribute to put back
        original = module.forward

        def timed_forward(*args: Any, **kwargs: Any) -> Any:
            embeds = kwargs.get("inputs_embeds")
            if not isinstance(embeds, list | tuple) or embeds[0] is None:
                return original(*args, **kwargs)
            self._sync()
            start = time.perf_counter()
            out = original(*args, **kwargs)
            self._sync()
            self.total += time.perf_counter() - start
            self.calls += 1
            return out

        module.forward = timed_forward

    def remove(self) -> None:
        """Put the module's own ``forward`` back."""
        if self._own is not None:
            self._module.forward = self._own
        else:
            del self._module.forward


@contextmanager
def timed_modules(runtime: PolicyRuntime) -> Iterator[list[_Timer]]:
    """Timers on the vision encoder, the projector and the language prefix pass (in that
    order) while the context is open."""
    modules = dict(runtime.policy.named_modules())
    vision, projector = VISION_MODULES[runtime.policy_type]
    prefix = modules[PREFIX_PASS_MODULES[runtime.policy_type]]
    timers: list[_Timer] = [
        ModuleTimer(modules[vision], runtime.device),
        ModuleTimer(modules[projector], runtime.device),
    ]
    try:
        timers.append(PrefixPassTimer(prefix, runtime.device))
        yield timers
    finally:
        for timer in timers:
            timer.remove()


def profile_one(
    policy_type: str, size: str, steps: int, repeats: int, options: RuntimeOptions
) -> dict[str, Any]:
    """Mean time per part of one prediction; returns a JSON-ready row.

    ``total_ms`` is timed around the whole prediction, independently of the parts;
    ``prefix_stage_ms`` is the runtime's prefix stage, which contains the vision encoder,
    the projector and the language prefix; ``other_ms_per_repeat``: what the parts left of
    each prediction's total.
    """
    runtime = PolicyRuntime(ensure_tiny_checkpoint(spec_for(policy_type, size)), options)
    obs = runtime.dummy_observation()
    obs.task = "pick up the black bowl and place it on the plate"
    cuda = runtime.device.startswith("cuda")
    parts: dict[str, list[float]] = {p: [] for p in PARTS}
    totals, prefix_stage, calls, unattributed = [], [], [], []
    with timed_modules(runtime) as timers:
        vision, projector, language = timers
        runtime.predict_chunk(obs, num_steps=steps)  # warm (and compile) with the timers in
        for _ in range(repeats):
            for timer in timers:
                timer.reset()
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            t = runtime.predict_chunk(obs, num_steps=steps).timings
            if cuda:
                torch.cuda.synchronize()
            totals.append(time.perf_counter() - start)
            parts["preprocess"].append(t.preprocess)
            parts["vision encoder"].append(vision.total)
            parts["image projector"].append(projector.total)
            parts["language prefix"].append(language.total)
            parts["expert (denoise)"].append(t.denoise)
            parts["postprocess"].append(t.postprocess)
            prefix_stage.append(t.prefix)
            calls.append([timer.calls for timer in timers])
            unattributed.append(totals[-1] - sum(v[-1] for v in parts.values()))
    total_ms = float(np.mean(totals)) * 1000
    parts_ms = {p: float(np.mean(v)) * 1000 for p, v in parts.items()}
    other_ms = total_ms - sum(parts_ms.values())
    return {
        "policy": policy_type,
        "size": size,
        "engine": options.engine,
        "dtype": options.dtype,
        "steps": steps,
        "repeats": repeats,
        "total_ms": total_ms,
        "prefix_stage_ms": float(np.mean(prefix_stage)) * 1000,
        "parts_ms": parts_ms,
        "other_ms": other_ms,
        "other_ms_per_repeat": [o * 1000 for o in unattributed],
        "share": {**{p: v / total_ms for p, v in parts_ms.items()}, OTHER: other_ms / total_ms},
        "timed_calls": dict(
            zip(("vision encoder", "image projector", "language prefix"), max(calls), strict=True)
        ),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """One table row per profiled configuration: ms (share) of every part and of the rest."""
    lines = [
        "| policy | size | engine | dtype | steps | total (ms) | "
        + " | ".join(f"{p} ms (%)" for p in (*PARTS, OTHER))
        + " |",
        "|---|---|---|---|---|---|" + "---|" * (len(PARTS) + 1),
    ]
    for r in rows:
        ms = {**r["parts_ms"], OTHER: r["other_ms"]}
        cells = " | ".join(f"{ms[p]:.1f} ({100 * r['share'][p]:.0f}%)" for p in (*PARTS, OTHER))
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
