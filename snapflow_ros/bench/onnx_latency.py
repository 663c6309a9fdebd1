"""ONNX Runtime against the torch engines: whole-chunk latency, same process, same inputs.

Usage::

    python -m snapflow_ros.bench.onnx_latency --models tiny-smolvla,student --threads 1

Each model is exported (``snapflow_export``'s code, parity checked; the export is kept in
``--export-dir`` and reused while its source checkpoint is the same), then the torch engines
(``--engines``, default eager and fast) and the ``onnxruntime`` engine are loaded side by side
and their predictions interleaved (engine and step count change every prediction) so that
drifts of a shared machine hit them alike. Reported per step count: median and p90 of the
whole chunk per engine, and the onnxruntime speed-up over the fastest torch engine of the
same run. Torch and ONNX Runtime use the same number of threads (``--threads``).
``--raw-export`` adds a second export without the exact graph clean-ups
(``snapflow_export --no-graph-passes``), timed as ``onnxruntime-raw`` in the same loop: what
the clean-ups buy on this machine.

Models: ``tiny-smolvla`` / ``tiny-pi05`` (test-size, random weights; exported with the fused
one-step graph, which for a plain checkpoint is the naive one-step baseline), ``student``
(the shipped ``libero:snapflow``), ``full-smolvla`` (the real SmolVLA architecture, 450 M
parameters, random weights; the export takes minutes and about 5 GB of RAM).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snapflow_ros.bench.machine import machine_info, resolve_device
from snapflow_ros.bench.output import emit
from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions
from snapflow_ros.runtime import onnx_format as fmt

MODELS = ("tiny-smolvla", "tiny-pi05", "student", "full-smolvla")
TORCH_ENGINES = ("eager", "fast", "compiled")
ORT = "onnxruntime"
ORT_RAW = "onnxruntime-raw"  # the same export without graph passes
DEFAULT_EXPORT_DIR = Path.home() / ".cache" / "snapflow_ros" / "onnx_bench"


def model_checkpoint(model: str) -> str:
    """The checkpoint folder of a benchmark model (tiny ones are built on first use)."""
    from snapflow_ros.policies import resolve_policy

    if model == "full-smolvla":
        from snapflow_ros.bench.runtime_latency import spec_for
        from snapflow_ros.policies.tiny import ensure_tiny_checkpoint

        return str(ensure_tiny_checkpoint(spec_for("smolvla", "full")))
    names = {"tiny-smolvla": "tiny:smolvla", "tiny-pi05": "tiny:pi05", "student": "libero:snapflow"}
    return str(resolve_policy(names[model]))


def ensure_export(
    checkpoint: str, folder: Path, graph_passes: bool = True
) -> tuple[dict[str, Any], float | None]:
    """The export of ``checkpoint`` in ``folder`` (written unless one of it, with the same
    ``graph_passes`` setting, is there); returns its manifest and the seconds the export took
    now (None: reused)."""
    from snapflow_ros.export.onnx_export import export_policy

    manifest_path = folder / fmt.MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        same = manifest.get("source_checkpoint") == str(Path(checkpoint).resolve())
        same_passes = "graph_passes" in manifest and (manifest["graph_passes"] is not None) == (
            graph_passes
        )
        if same and same_passes and manifest.get("parity", {}).get("passed"):
            return manifest, None
    if folder.exists():
        shutil.rmtree(folder)
    start = time.perf_counter()
    manifest = export_policy(checkpoint, folder, one_step=True, graph_passes=graph_passes, log=_say)
    return manifest, time.perf_counter() - start


def _say(text: str) -> None:
    print(f"[onnx] {text}", file=sys.stderr, flush=True)


def _stats(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values) * 1000.0
    return {"median_ms": float(np.median(arr)), "p90_ms": float(np.percentile(arr, 90))}


def bench_model(
    model: str,
    engines: tuple[str, ...],
    steps: list[int],
    repeats: int,
    device: str,
    export_dir: Path,
    raw_export: bool = False,
) -> dict[str, Any]:
    """Export (or reuse), load every engine, time interleaved chunks; one JSON-ready row."""
    checkpoint = model_checkpoint(model)
    manifest, export_s = ensure_export(checkpoint, export_dir / model)
    folders = {ORT: export_dir / model}
    if raw_export:
        folders[ORT_RAW] = export_dir / f"{model}-raw"
        ensure_export(checkpoint, folders[ORT_RAW], graph_passes=False)
    runtimes: dict[str, PolicyRuntime] = {}
    for engine in (*engines, *folders):
        path, kind = (folders[engine], ORT) if engine in folders else (checkpoint, engine)
        runtimes[engine] = PolicyRuntime(
            path, RuntimeOptions(device=device, engine=kind, warmup=1, seed=0)
        )
    obs = runtimes[ORT].dummy_observation()
    obs.task = "pick up the alphabet soup and place it in the basket"
    for runtime in runtimes.values():  # warm every step count before timing
        for n in steps:
            runtime.predict_chunk(obs, num_steps=n)
    samples: dict[str, dict[int, list[float]]] = {e: {n: [] for n in steps} for e in runtimes}
    for _ in range(repeats):
        for n in steps:
            for engine, runtime in runtimes.items():
                samples[engine][n].append(runtime.predict_chunk(obs, num_steps=n).timings.total)
    results: dict[str, Any] = {}
    for n in steps:
        per_engine = {e: _stats(samples[e][n]) for e in runtimes}
        torch_medians = {e: per_engine[e]["median_ms"] for e in engines}
        fastest = min(torch_medians, key=torch_medians.get)
        results[str(n)] = {
            "total": per_engine,
            "fastest_torch": fastest,
            "ort_speedup": torch_medians[fastest] / per_engine[ORT]["median_ms"],
        }
        if raw_export:
            raw = per_engine[ORT_RAW]["median_ms"]
            results[str(n)]["graph_passes_speedup"] = raw / per_engine[ORT]["median_ms"]
    chunk_rows = {k: v for k, v in manifest["parity"]["outputs"].items() if k.startswith("chunk/")}
    return {
        "model": model,
        "policy": manifest["policy_type"],
        "snapflow": manifest["snapflow"],
        "checkpoint": checkpoint,
        "threads": torch.get_num_threads(),
        "providers": runtimes[ORT].describe()["providers"],
        "repeats": repeats,
        "export_s": None if export_s is None else round(export_s, 1),
        "export_bytes": sum(g["bytes"] for g in manifest["graphs"].values()),
        "graph_passes": manifest.get("graph_passes"),
        "parity_max_abs_diff": max(v["max_abs_diff"] for v in chunk_rows.values()),
        "steps": results,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table: one line per model and step count (with ``--raw-export``
    a last column: the export without graph passes and how much slower it is)."""
    raw_column = any("graph_passes_speedup" in res for row in rows for res in row["steps"].values())
    lines = [
        "| model | steps | threads | torch engines p50 (ms) | onnxruntime p50 / p90 (ms) "
        "| ORT vs fastest torch | parity max abs |"
        + (" ORT without graph passes p50 (ms) |" if raw_column else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if raw_column else ""),
    ]
    for row in rows:
        for n, res in row["steps"].items():
            torch_text = ", ".join(
                f"{e} {v['median_ms']:.1f}" for e, v in res["total"].items() if e in TORCH_ENGINES
            )
            ort_stats = res["total"][ORT]
            line = (
                f"| {row['model']} | {n} | {row['threads']} | {torch_text} "
                f"| {ort_stats['median_ms']:.1f} / {ort_stats['p90_ms']:.1f} "
                f"| {res['ort_speedup']:.2f}x ({res['fastest_torch']}) "
                f"| {row['parity_max_abs_diff']:.1e} |"
            )
            if raw_column:
                raw = res["total"].get(ORT_RAW)
                line += (
                    f" {raw['median_ms']:.1f} ({res['graph_passes_speedup']:.2f}x slower) |"
                    if raw
                    else " - |"
                )
            lines.append(line)
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default="tiny-smolvla,tiny-pi05,student", help=", ".join(MODELS))
    p.add_argument("--engines", default="eager,fast", help="torch engines: eager,fast,compiled")
    p.add_argument("--steps", default="1,10", help="comma list of denoising step counts")
    p.add_argument("--repeats", type=int, default=10, help="chunks per engine and step count")
    p.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--export-dir", type=Path, default=DEFAULT_EXPORT_DIR)
    p.add_argument(
        "--raw-export",
        action="store_true",
        help="also time an export without graph passes (onnxruntime-raw)",
    )
    p.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.engines = tuple(e for e in args.engines.split(",") if e)
    try:
        args.steps = [int(x) for x in args.steps.split(",") if x]
    except ValueError:
        p.error("--steps must be a comma list of integers")
    if not args.models or not set(args.models) <= set(MODELS):
        p.error(f"--models: unknown model in {args.models} ({', '.join(MODELS)})")
    if not args.engines or not set(args.engines) <= set(TORCH_ENGINES):
        p.error(f"--engines: unknown torch engine in {list(args.engines)}")
    if not args.steps or min(args.steps) < 1:
        p.error("--steps must be integers >= 1")
    if args.repeats < 1 or args.threads < 1:
        p.error("--repeats and --threads must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the markdown table, write JSON."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)  # one device for torch and ONNX Runtime alike
    info = machine_info(device)
    rows = []
    for model in args.models:
        _say(f"{model}: engines {[*args.engines, ORT]}, {args.repeats} repeats x {args.steps}")
        rows.append(
            bench_model(
                model,
                args.engines,
                args.steps,
                args.repeats,
                device,
                args.export_dir,
                args.raw_export,
            )
        )
    report = {
        "benchmark": "onnx_latency",
        "machine": info,
        "settings": {
            "models": args.models,
            "engines": list(args.engines),
            "steps": args.steps,
            "repeats": args.repeats,
            "threads": args.threads,
            "device": device,
            "raw_export": args.raw_export,
        },
        "rows": rows,
    }
    emit(report, markdown(rows), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
