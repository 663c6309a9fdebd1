"""Latency of the policy runtime per stage, for SmolVLA and pi0.5, by denoising step count.

Usage::

    python -m snapflow_ros.bench.runtime_latency --sizes tiny,full --out artifacts/bench.json

For each policy and architecture size (``tiny`` test model, or ``full`` real architecture with
random weights), every step count is run ``--repeats`` times, interleaved so that slow drifts
of the machine hit all step counts alike. Reported per step count: median and p90 of the
prefix (vision + language), of ONE denoise step, and of the whole chunk; and, measured in the
same run, the 10-step / 1-step ratio of denoise time and of total time.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from snapflow_ros.bench.machine import machine_info, resolve_device
from snapflow_ros.bench.output import emit
from snapflow_ros.policies.tiny import TinySpec, ensure_tiny_checkpoint
from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions
from snapflow_ros.runtime.fast_path import COMPILE_MODES, ENGINES

FULL_PI05_MIN_MEMORY_GB = 48  # fp32 weights (16 GB) + the state dict being loaded + activations


def spec_for(policy_type: str, size: str) -> TinySpec:
    """The generated checkpoint used for a benchmark row."""
    if size == "full":  # 2 cameras, 224 px, chunk 50 (the published settings)
        return TinySpec(
            policy_type=policy_type,
            size="full",
            image_height=224,
            image_width=224,
            chunk_size=50,
        )
    return TinySpec(policy_type=policy_type)


def _stats(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values) * 1000.0
    return {"median_ms": float(np.median(arr)), "p90_ms": float(np.percentile(arr, 90))}


def _row(runtime: PolicyRuntime, samples: dict[int, list], load_s: float) -> dict[str, Any]:
    results = {}
    for n, timings in samples.items():
        results[str(n)] = {
            "preprocess": _stats([t.preprocess for t in timings]),
            "prefix": _stats([t.prefix for t in timings]),
            "denoise_step": _stats([t.denoise / n for t in timings]),
            "denoise": _stats([t.denoise for t in timings]),
            "postprocess": _stats([t.postprocess for t in timings]),
            "total": _stats([t.total for t in timings]),
        }
    row: dict[str, Any] = {
        "policy": runtime.policy_type,
        "engine": runtime.options.engine + ("+prefix" if runtime.options.compile_prefix else ""),
        "dtype": runtime.options.dtype,
        "params_m": round(sum(p.numel() for p in runtime.policy.parameters()) / 1e6, 1),
        "load_s": round(load_s, 1),
        "steps": results,
    }
    if "1" in results and "10" in results:
        row["ratio_10_to_1"] = {
            key: results["10"][key]["median_ms"] / results["1"][key]["median_ms"]
            for key in ("denoise", "total")
        }
    return row


def bench_one(
    policy_type: str,
    size: str,
    steps: list[int],
    repeats: int,
    options: RuntimeOptions,
    engines: tuple[str, ...] = ("eager",),
) -> list[dict[str, Any]]:
    """Measure one (policy, size, dtype) for every engine; returns JSON-ready rows.

    All engines are loaded side by side and their runs interleaved (engine and step count
    change every prediction) so that drifts of a shared machine hit them alike; ratios
    between engines and step counts are therefore measured within one run.
    """
    checkpoint = ensure_tiny_checkpoint(spec_for(policy_type, size))
    runtimes, load_s = {}, {}
    for engine in engines:
        t0 = time.perf_counter()
        compile_prefix = options.compile_prefix and engine == "compiled"
        runtimes[engine] = PolicyRuntime(
            checkpoint, replace(options, engine=engine, compile_prefix=compile_prefix)
        )
        load_s[engine] = time.perf_counter() - t0  # includes warm-up (and compilation)
    obs = runtimes[engines[0]].dummy_observation()
    obs.task = "pick up the black bowl and place it on the plate"
    for runtime in runtimes.values():  # compile / warm every step count before timing
        for n in steps:
            runtime.predict_chunk(obs, num_steps=n)
    samples = {e: {n: [] for n in steps} for e in engines}
    for _ in range(repeats):
        for n in steps:
            for engine, runtime in runtimes.items():
                samples[engine][n].append(runtime.predict_chunk(obs, num_steps=n).timings)
    rows = []
    for engine, runtime in runtimes.items():
        row = _row(runtime, samples[engine], load_s[engine])
        row.update(size=size, repeats=repeats)
        rows.append(row)
    add_speedups(rows)
    return rows


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """Give every row ``speedup_vs_eager``: the eager row's median over its own, per step count
    (denoise and total); nothing without an eager row."""
    eager = next((r for r in rows if r["engine"] == "eager"), None)
    if eager is None:
        return
    for row in rows:
        row["speedup_vs_eager"] = {
            n: {
                key: eager["steps"][n][key]["median_ms"] / row["steps"][n][key]["median_ms"]
                for key in ("denoise", "total")
            }
            for n in row["steps"]
        }


def _fmt_ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else ""


def markdown(rows: list[dict[str, Any]]) -> str:
    """Render rows as a markdown table."""
    lines = [
        "| policy | size | dtype | engine | steps | preprocess p50 (ms) | prefix p50 / p90 (ms) "
        "| 1 denoise step p50 (ms) | total p50 / p90 (ms) | 10/1 denoise | 10/1 total "
        "| total vs eager |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "skipped" in row:
            lines.append(
                f"| {row['policy']} | {row['size']} | | | | skipped: {row['skipped']} " "|||||||"
            )
            continue
        ratio = row.get("ratio_10_to_1", {})
        for n, res in row["steps"].items():
            first = n == next(iter(row["steps"]))
            vs_eager = row.get("speedup_vs_eager", {}).get(n, {}).get("total")
            lines.append(
                f"| {row['policy']} | {row['size']} | {row['dtype']} | {row['engine']} | {n} "
                f"| {res['preprocess']['median_ms']:.1f} "
                f"| {res['prefix']['median_ms']:.1f} / {res['prefix']['p90_ms']:.1f} "
                f"| {res['denoise_step']['median_ms']:.2f} "
                f"| {res['total']['median_ms']:.1f} / {res['total']['p90_ms']:.1f} "
                f"| {_fmt_ratio(ratio.get('denoise')) if first else ''} "
                f"| {_fmt_ratio(ratio.get('total')) if first else ''} "
                f"| {_fmt_ratio(vs_eager) if row['engine'] != 'eager' else ''} |"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--policies", default="smolvla,pi05", help="comma list: smolvla,pi05")
    p.add_argument("--sizes", default="tiny", help="comma list: tiny,full")
    p.add_argument("--steps", default="1,2,5,10", help="comma list of denoising step counts")
    p.add_argument("--repeats", type=int, default=None, help="runs per step count (default 10/3)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtypes", default="float32", help="comma list: float32,bfloat16")
    p.add_argument(
        "--engines", default="eager,fast", help="comma list: eager,fast,compiled (see README)"
    )
    p.add_argument("--compile-mode", default="default", choices=COMPILE_MODES)
    p.add_argument(
        "--compile-prefix", action="store_true", help="compiled engine: also compile the prefix"
    )
    p.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = p.parse_args(argv)
    try:
        args.policies = [x for x in args.policies.split(",") if x]
        args.sizes = [x for x in args.sizes.split(",") if x]
        args.steps = [int(x) for x in args.steps.split(",") if x]
        args.dtypes = [x for x in args.dtypes.split(",") if x]
        args.engines = tuple(x for x in args.engines.split(",") if x)
    except ValueError:
        p.error("--steps must be a comma list of integers")
    if not set(args.policies) <= {"smolvla", "pi05"}:
        p.error(f"--policies: unknown policy in {args.policies} (smolvla, pi05)")
    if not set(args.sizes) <= {"tiny", "full"}:
        p.error(f"--sizes: unknown size in {args.sizes} (tiny, full)")
    if not args.dtypes or not set(args.dtypes) <= {"float32", "bfloat16"}:
        p.error(f"--dtypes: unknown dtype in {args.dtypes} (float32, bfloat16)")
    torch_engines = [e for e in ENGINES if e != "onnxruntime"]  # that one: bench.onnx_latency
    if not args.engines or not set(args.engines) <= set(torch_engines):
        p.error(
            f"--engines: unknown engine in {list(args.engines)} ({', '.join(torch_engines)}; "
            "onnxruntime: python -m snapflow_ros.bench.onnx_latency)"
        )
    if not args.steps or min(args.steps) < 1:
        p.error("--steps must be integers >= 1")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the markdown table, write JSON."""
    args = parse_args(argv)
    info = machine_info(resolve_device(args.device))
    rows = []
    for policy_type in args.policies:
        for size in args.sizes:
            if (
                policy_type == "pi05"
                and size == "full"
                and info.get("memory_gb", 0) < FULL_PI05_MIN_MEMORY_GB
                and not args.device.startswith("cuda")
            ):
                reason = (
                    f"needs >= {FULL_PI05_MIN_MEMORY_GB} GB host RAM, have {info.get('memory_gb')}"
                )
                rows.append({"policy": policy_type, "size": size, "skipped": reason})
                print(f"[bench] {policy_type}/{size}: skipped ({reason})", file=sys.stderr)
                continue
            repeats = args.repeats or (10 if size == "tiny" else 3)
            for dtype in args.dtypes:
                print(
                    f"[bench] {policy_type}/{size}/{dtype}: engines {list(args.engines)}, "
                    f"{repeats} repeats x steps {args.steps}",
                    file=sys.stderr,
                )
                options = RuntimeOptions(
                    device=args.device,
                    dtype=dtype,
                    warmup=1,
                    seed=0,
                    compile_mode=args.compile_mode,
                    compile_prefix=args.compile_prefix,
                )
                rows.extend(
                    bench_one(policy_type, size, args.steps, repeats, options, args.engines)
                )
    report = {
        "benchmark": "runtime_latency",
        "machine": info,
        "settings": {
            "policies": args.policies,
            "sizes": args.sizes,
            "steps": args.steps,
            "dtypes": args.dtypes,
            "engines": list(args.engines),
            "compile_mode": args.compile_mode,
            "compile_prefix": args.compile_prefix,
            "device": args.device,
            "argv": argv if argv is not None else sys.argv[1:],
        },
        "rows": rows,
    }
    emit(report, markdown(rows), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
