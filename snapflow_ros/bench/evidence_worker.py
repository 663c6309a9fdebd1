"""Run GPU evidence items in this process; one JSON line per event into a results file.

Started by :mod:`snapflow_ros.bench.gpu_evidence` (``python -m
snapflow_ros.bench.evidence_worker --plan PLAN.json --results RESULTS.jsonl``). Writes an
``env`` line (versions, GPU, settings of torch), then per item a ``start`` line and a ``done``
line holding its status (``ok`` or ``failed`` with the traceback), wall time, GPU memory peak,
JSON rows and markdown table. Items reuse the benchmark modules: ``runtime_latency.bench_one``,
``stage_profile.profile_one`` and the distillation ``Trainer``'s step
(:mod:`snapflow_ros.bench.evidence_distill`).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from snapflow_ros.bench import evidence_distill, runtime_latency, stage_profile
from snapflow_ros.bench.evidence_plan import EvidenceItem, PlanSettings, from_json
from snapflow_ros.bench.machine import machine_info
from snapflow_ros.policies.tiny import ensure_tiny_checkpoint
from snapflow_ros.runtime import RuntimeOptions

VERSIONED = (
    "torch", "transformers", "lerobot", "numpy", "accelerate", "safetensors", "tokenizers",
    "huggingface_hub", "torchvision", "pillow", "draccus",
)  # fmt: skip
ENV_VARS = (
    "PYTORCH_CUDA_ALLOC_CONF", "TORCH_COMPILE_DISABLE", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
)  # fmt: skip


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _opencv() -> str | None:
    """OpenCV's version, ``stand-in`` for the run script's import-only cv2, None without."""
    try:
        import cv2
    except ImportError:
        return None
    return "stand-in" if getattr(cv2, "SNAPFLOW_STAND_IN", False) else str(cv2.__version__)


def environment(device: str) -> dict[str, Any]:
    """Machine, GPU and software this worker runs with (the versions actually imported)."""
    import lerobot
    import numpy
    import transformers

    info = machine_info(device)
    info["versions"].update({d: _version(d) for d in VERSIONED})
    info["module_files"] = {
        m.__name__: getattr(m, "__file__", None) for m in (torch, transformers, lerobot, numpy)
    }
    info["torch_cuda"] = torch.version.cuda
    info["env"] = {k: os.environ.get(k) for k in ENV_VARS}
    info["cv2"] = _opencv()
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(device)
        info["gpu_properties"] = {
            "name": props.name,
            "total_memory_gib": round(props.total_memory / 2**30, 1),
            "multi_processor_count": props.multi_processor_count,
            "capability": f"{props.major}.{props.minor}",
        }
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def _reset_memory(device: str) -> None:
    """Free what earlier items left on the GPU and restart its peak statistics."""
    if device.startswith("cuda"):
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def gpu_memory(device: str) -> dict[str, float] | None:
    """Peak allocated / reserved GPU memory (GiB) since the last reset; None on the CPU."""
    if not device.startswith("cuda"):
        return None
    return {
        "max_allocated_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2),
        "max_reserved_gib": round(torch.cuda.max_memory_reserved(device) / 2**30, 2),
    }


def _checkpoint(item: EvidenceItem, settings: PlanSettings) -> Path:
    return ensure_tiny_checkpoint(runtime_latency.spec_for(item.policy, settings.size))


def run_latency(item: EvidenceItem, settings: PlanSettings) -> dict[str, Any]:
    """One- and N-step chunk latency of every engine of ``item`` (engines interleaved)."""
    options = RuntimeOptions(
        device=settings.device,
        dtype=settings.dtype,
        warmup=1,
        seed=0,
        compile_mode=item.compile_mode,
        compile_prefix=item.compile_prefix,
    )
    rows = runtime_latency.bench_one(
        item.policy, settings.size, list(settings.steps), settings.repeats, options, item.engines
    )
    return {"rows": rows, "markdown": runtime_latency.markdown(rows)}


def run_profile(item: EvidenceItem, settings: PlanSettings) -> dict[str, Any]:
    """Where one one-step chunk's time goes (vision, projector, language prefix, expert)."""
    options = RuntimeOptions(
        device=settings.device,
        dtype=settings.dtype,
        engine=settings.profile_engine,
        warmup=1,
        seed=0,
    )
    row = stage_profile.profile_one(
        item.policy, settings.size, 1, settings.profile_repeats, options
    )
    return {"rows": [row], "markdown": stage_profile.markdown([row])}


def run_distill(item: EvidenceItem, settings: PlanSettings) -> dict[str, Any]:
    """Distillation samples/s; on a GPU out-of-memory error the batch is halved and retried."""
    checkpoint = _checkpoint(item, settings)
    batch = settings.distill_batch[item.policy]
    out_of_memory: list[int] = []
    while True:
        with tempfile.TemporaryDirectory(prefix="snapflow_evidence_") as tmp:
            try:
                row = evidence_distill.distill_throughput(
                    checkpoint,
                    settings.device,
                    settings.dtype,
                    batch,
                    settings.distill_warmup,
                    settings.distill_steps,
                    Path(tmp),
                )
                break
            except torch.OutOfMemoryError:
                if batch == 1:
                    raise
                out_of_memory.append(batch)
        _reset_memory(settings.device)  # after the failed attempt's frames are gone
        batch //= 2
    row["out_of_memory_at_batch"] = out_of_memory
    return {"rows": [row], "markdown": evidence_distill.markdown([row])}


RUNNERS = {"latency": run_latency, "profile": run_profile, "distill": run_distill}


def run_item(item: EvidenceItem, settings: PlanSettings) -> dict[str, Any]:
    """Run one item; never raises (a failure is recorded with its traceback).

    The generated checkpoint is built (or found in the cache) first and timed apart:
    ``checkpoint_s``; ``seconds`` is the whole item.
    """
    _reset_memory(settings.device)
    start = time.perf_counter()
    checkpoint_s = None
    try:
        _checkpoint(item, settings)
        checkpoint_s = round(time.perf_counter() - start, 1)
        result: dict[str, Any] = {"status": "ok", **RUNNERS[item.kind](item, settings)}
    except Exception as exc:  # recorded, and the next item still runs
        result = {
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc()[-4000:],
        }
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["checkpoint_s"] = checkpoint_s
    result["gpu_memory"] = gpu_memory(settings.device)
    return result


def _emit(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run every item of the plan file in order, appending events to the results file."""
    p = argparse.ArgumentParser(prog="python -m snapflow_ros.bench.evidence_worker")
    p.add_argument("--plan", type=Path, required=True)
    p.add_argument("--results", type=Path, required=True)
    args = p.parse_args(argv)
    settings, items = from_json(json.loads(args.plan.read_text()))
    _emit(args.results, {"event": "env", "env": environment(settings.device)})
    for item in items:
        _emit(args.results, {"event": "start", "item": item.name, "time": time.time()})
        print(f"[evidence] {item.name}: start", file=sys.stderr, flush=True)
        result = run_item(item, settings)
        _emit(args.results, {"event": "done", "item": item.name, "result": result})
        print(
            f"[evidence] {item.name}: {result['status']} ({result['seconds']} s)",
            file=sys.stderr,
            flush=True,
        )
        if result["status"] == "failed":
            print(result["traceback"], file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
