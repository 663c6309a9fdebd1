"""LIBERO simulation benchmark: step time with and without rendering, lock-step throughput.

``python -m snapflow_ros.bench.libero_sim [--sizes 128,256] [--steps 40] [--out FILE.json]``

1. Simulator step time (one control step = 25 physics substeps + OSC controller, plus the two
   cameras when rendering) on this machine, per image size: rendering as in the LeRobot
   datasets, rendering without shadows/reflections (``fast_render``), and no rendering. One
   environment per size; "no rendering" swaps the camera sensors out on the same env.
2. Lock-step throughput through ROS 2: ``libero_eval`` runs one episode of ``--episode-steps``
   steps with bridge + policy node (a tiny LIBERO-shaped SmolVLA), and reports the bridge's
   steps per second (simulation + rendering + publishing + policy + transport).

Prints a markdown table and writes everything (with the machine description) as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

VARIANTS = (("render", False, False), ("render, fast", False, True), ("no render", True, False))


def _stats(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples, np.float64)
    return {
        "mean_s": float(arr.mean()),
        "median_s": float(np.median(arr)),
        "p95_s": float(np.percentile(arr, 95)),
        "steps_per_s": float(1.0 / arr.mean()),
        "n": int(arr.size),
    }


def bench_steps(
    sizes: list[int], steps: int, suite: str = "libero_spatial", task: int = 0, seed: int = 0
) -> list[dict[str, Any]]:
    """Step times per image size and rendering variant (random actions in [-1, 1])."""
    from snapflow_ros.sim import LiberoSim, SimConfig

    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.0, 1.0, size=(steps, 7))
    rows = []
    for size in sizes:
        sim = LiberoSim(
            SimConfig(
                suite=suite,
                task_index=task,
                image_height=size,
                image_width=size,
                max_steps=10 * steps + 10,
            )
        )
        try:
            sim.reset()
            build_s, reset_s = sim.timing.build_s, sim.timing.reset_s
            for label, blind, fast in VARIANTS:
                sim.reset()
                sim.pause_rendering(blind)
                sim.set_fast_render(fast)
                sim.step(actions[0])  # warm-up
                times = [sim.step(a).step_s for a in actions]
                sim.pause_rendering(False)
                rows.append(
                    {
                        "size": size,
                        "variant": label,
                        "build_s": build_s,
                        "reset_s": reset_s,
                        **_stats(times),
                    }
                )
        finally:
            sim.close()
    return rows


def bench_lockstep(size: int, steps: int, fast: bool, domain: int, out_dir: Path) -> dict[str, Any]:
    """One lock-step episode through bridge + policy node (``libero_eval``); its throughput."""
    from snapflow_ros.policies import resolve_policy

    ckpt = resolve_policy("tiny:libero")
    cmd = [
        sys.executable,
        "-m",
        "snapflow_ros.eval.libero_eval",
        "--suites",
        "libero_spatial",
        "--tasks",
        "0",
        "--episodes",
        "1",
        "--config",
        f"tiny={ckpt}",
        "--max-steps",
        str(steps),
        "--image-size",
        str(size),
        "--out",
        str(out_dir),
        "--domain-id",
        str(domain),
        "--policy-arg",
        "torch_threads:=1",
    ]
    if fast:
        cmd.append("--fast-render")
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"libero_eval failed ({done.returncode}): {done.stderr[-2000:]}")
    episode = json.loads((out_dir / "results.json").read_text())["episodes"][0]
    return {
        "size": size,
        "fast_render": fast,
        "steps": episode["steps"],
        "wall_s": episode["wall_s"],
        "steps_per_s": episode["steps_per_s"],
        "sim_step_mean_s": episode["sim_step_mean_s"],
        "wait_mean_s": episode["wait_mean_s"],
        "inference_mean_s": episode["inference_mean_s"],
        "chunks": episode["chunks"],
        "kicks": episode["kicks"],
        "eval_total_s": time.monotonic() - start,
    }


def markdown(result: dict[str, Any]) -> str:
    """The result as markdown tables."""
    m = result["machine"]
    lines = [
        f"Machine: {m.get('cpu')}, {m.get('cpu_count')} cores, {m.get('memory_gb')} GB, "
        f"{m.get('platform')}; MuJoCo rendering: {result['gl_backend']}.",
        "",
        "| image size | variant | step mean (ms) | median (ms) | p95 (ms) | steps/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["steps"]:
        lines.append(
            f"| {r['size']}x{r['size']} | {r['variant']} | {1e3 * r['mean_s']:.1f} "
            f"| {1e3 * r['median_s']:.1f} | {1e3 * r['p95_s']:.1f} | {r['steps_per_s']:.1f} |"
        )
    if result.get("lockstep"):
        lines += [
            "",
            "| lock-step episode (bridge + policy node) | steps | steps/s | sim step (ms) "
            "| wait for command (ms) | inference / chunk (ms) |",
            "|---|---|---|---|---|---|",
        ]
        for r in result["lockstep"]:
            label = f"{r['size']}x{r['size']}" + (", fast render" if r["fast_render"] else "")
            lines.append(
                f"| {label} | {r['steps']} | {r['steps_per_s']:.2f} "
                f"| {1e3 * r['sim_step_mean_s']:.1f} | {1e3 * r['wait_mean_s']:.1f} "
                f"| {1e3 * (r['inference_mean_s'] or 0):.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints markdown, writes JSON with ``--out``."""
    p = argparse.ArgumentParser(prog="python -m snapflow_ros.bench.libero_sim")
    p.add_argument("--sizes", default="128,256", help="camera image sizes (square)")
    p.add_argument("--steps", type=int, default=40, help="timed steps per variant")
    p.add_argument("--episode-steps", type=int, default=60, help="lock-step episode length")
    p.add_argument(
        "--lockstep-sizes",
        default="256,64f",
        help="lock-step runs: sizes, 'f' suffix = fast render ('' to skip)",
    )
    p.add_argument("--domain-id", type=int, default=(os.getpid() % 90) + 5)
    p.add_argument("--out", default="", help="JSON output file")
    args = p.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        runs = [
            (int(s.rstrip("f")), s.endswith("f"))
            for s in args.lockstep_sizes.split(",")
            if s.strip()
        ]
    except ValueError:
        p.error("--sizes / --lockstep-sizes: comma-separated integers (lock-step: optional 'f')")
    if args.steps < 1 or args.episode_steps < 1 or not sizes:
        p.error("--steps and --episode-steps must be >= 1, --sizes not empty")

    from snapflow_ros.bench.machine import machine_info
    from snapflow_ros.bench.output import emit
    from snapflow_ros.sim import prepare_libero

    paths = prepare_libero()
    result: dict[str, Any] = {
        "machine": machine_info("cpu"),
        "gl_backend": paths.gl_backend,
        "load_average": os.getloadavg(),
        "steps": bench_steps(sizes, args.steps),
        "lockstep": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for i, (size, fast) in enumerate(runs):
            result["lockstep"].append(
                bench_lockstep(size, args.episode_steps, fast, args.domain_id, Path(tmp) / str(i))
            )
    result["load_average_after"] = os.getloadavg()
    emit(result, markdown(result), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
