"""Distillation throughput (training samples per second) for SmolVLA and pi0.5.

Usage::

    python -m snapflow_training.bench_throughput --policies smolvla,pi05 --size tiny \\
        --steps 20 --batch-size 16 --out artifacts/bench/distill.json

Each row is a real ``distill`` run (SnapFlow objective, expert training, no evaluation) on the
embedded synthetic LeRobotDataset, started from a generated checkpoint (``tiny`` test model or
``full`` real architecture with random weights). The reported number is the median of the
trainer's own samples/s over its logging windows (the first window, which includes warm-up,
is dropped when there are more).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from snapflow_ros.bench.machine import machine_info, resolve_device
from snapflow_ros.bench.output import emit
from snapflow_ros.policies.tiny import TinySpec, ensure_tiny_checkpoint
from snapflow_training.distill import distill
from snapflow_training.run_support import LOG_FILE
from snapflow_training.settings import DistillSettings
from snapflow_training.synthetic_dataset import SyntheticSpec, ensure_synthetic_dataset

DATASET_SPEC = SyntheticSpec(num_episodes=6, episode_length=30, seed=3)


def _window_rates(run_dir: Path) -> list[float]:
    rates = []
    log = run_dir / LOG_FILE
    if log.exists():
        for line in log.read_text().splitlines():
            record = json.loads(line)
            if "samples_per_s" in record:
                rates.append(float(record["samples_per_s"]))
    return rates


def bench_one(
    policy_type: str, size: str, steps: int, batch_size: int, device: str, dtype: str, work: Path
) -> dict[str, Any]:
    """One short distillation run; returns a JSON-ready row."""
    checkpoint = ensure_tiny_checkpoint(TinySpec(policy_type=policy_type, size=size))
    dataset = ensure_synthetic_dataset(work / "dataset", DATASET_SPEC)
    out = work / f"run_{policy_type}_{size}_{dtype}"
    interval = max(1, steps // 5)
    settings = DistillSettings(
        policy=str(checkpoint),
        dataset=str(dataset),
        output=str(out),
        steps=steps,
        batch_size=batch_size,
        warmup_steps=1,
        device=device,
        dtype=dtype,
        eval_episodes="1",
        eval_interval=10**9,
        eval_samples=1,
        eval_batch_size=1,
        latency_repeats=1,
        save_interval=10**9,
        log_interval=interval,
        num_workers=0,
        overwrite=True,
        progress_bar=False,
    )
    start = time.perf_counter()
    result = distill(settings)
    wall = time.perf_counter() - start
    rates = _window_rates(out)
    steady = rates[1:] if len(rates) > 1 else rates
    steady_sorted = sorted(steady)
    median = steady_sorted[len(steady_sorted) // 2] if steady_sorted else result.samples_per_s
    return {
        "policy": policy_type,
        "size": size,
        "dtype": dtype,
        "device": device,
        "steps": steps,
        "batch_size": batch_size,
        "samples_per_s": median,
        "window_samples_per_s": rates,
        "wall_s": round(wall, 1),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """Rows as a markdown table."""
    lines = [
        "| policy | size | dtype | batch | steps | samples/s (median window) | run wall (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sps = f"{r['samples_per_s']:.1f}" if r.get("samples_per_s") else "n/a"
        lines.append(
            f"| {r['policy']} | {r['size']} | {r['dtype']} | {r['batch_size']} | {r['steps']} "
            f"| {sps} | {r['wall_s']} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(prog="python -m snapflow_training.bench_throughput")
    p.add_argument("--policies", default="smolvla,pi05", help="comma list: smolvla,pi05")
    p.add_argument("--size", choices=("tiny", "full"), default="tiny")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps per run")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtypes", default="float32", help="comma list: float32,bfloat16")
    p.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = p.parse_args(argv)
    args.policies = [x for x in args.policies.split(",") if x]
    args.dtypes = [x for x in args.dtypes.split(",") if x]
    if not args.policies or not set(args.policies) <= {"smolvla", "pi05"}:
        p.error(f"--policies: expected smolvla and/or pi05, got {args.policies}")
    if not args.dtypes or not set(args.dtypes) <= {"float32", "bfloat16"}:
        p.error(f"--dtypes: expected float32 and/or bfloat16, got {args.dtypes}")
    if args.steps < 2 or args.batch_size < 1:
        p.error("--steps must be >= 2 and --batch-size >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the markdown table, write JSON."""
    args = parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="snapflow_bench_distill_") as tmp:
        for policy_type in args.policies:
            for dtype in args.dtypes:
                print(f"[bench] distill {policy_type}/{args.size}/{dtype}", file=sys.stderr)
                rows.append(
                    bench_one(
                        policy_type,
                        args.size,
                        args.steps,
                        args.batch_size,
                        args.device,
                        dtype,
                        Path(tmp),
                    )
                )
    report = {
        "benchmark": "distill_throughput",
        "machine": machine_info(resolve_device(args.device)),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rows": rows,
    }
    emit(report, markdown(rows), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
