"""How far the benchmark scenes of a LIBERO task lie from the scenes of a demonstration dataset.

For each of the task's benchmark initial states and each demonstration (its placement seed from
``meta/snapflow_episodes.jsonl``), the scene is reset and the movable objects' positions are read
(after LIBERO's settle steps, as an episode starts). Printed: how much every object moves across
the scenes of each set, and the distance from each benchmark scene to its nearest demonstration
scene (all object positions together) next to the same distance among demonstrations. With
``--results`` (a ``libero_eval`` output folder or its ``results.json``) the per-state successes
are joined to it.

    python scripts/placement_coverage.py DATASET [--states 50] [--results RUN] [--out JSON]

Needs the simulator (no rendering); about 1.5 s per scene on one core.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from snapflow_ros.eval.merge import MergeError, load_results
from snapflow_ros.eval.results import start_key
from snapflow_ros.sim.libero_env import LiberoSim, SimConfig


def scene_positions(sim: LiberoSim, **reset: object) -> dict[str, list[float]]:
    """The movable objects' positions (m, world frame) at the start of an episode."""
    obs = sim.reset(**reset)
    return {name: np.asarray(p, float).round(5).tolist() for name, p in obs.object_pos.items()}


def nearest(scenes: np.ndarray, pool: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """Distance from each scene (flattened positions) to its nearest scene in ``pool``."""
    d = np.linalg.norm(scenes[:, None, :] - pool[None, :, :], axis=2)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


def successes(run: dict, suite: str, task_index: int) -> dict[int, list[bool]]:
    """Per benchmark initial state of the task, the success of every evaluated configuration
    (``run``: a ``libero_eval`` results.json as ``load_results`` reads it)."""
    out: dict[int, list[bool]] = {}
    for episode in run["episodes"]:
        ep_suite, ep_task, source, index, _noise_seed = start_key(episode)
        if (ep_suite, ep_task, source) == (suite, task_index, "benchmark"):
            out.setdefault(int(index), []).append(bool(episode["success"]))
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure, print the tables, write the JSON; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path, help="a demonstration dataset (its meta/ is read)")
    ap.add_argument("--states", type=int, default=50, help="benchmark initial states 0..N-1")
    ap.add_argument("--results", type=Path, help="a libero_eval output folder to join")
    ap.add_argument("--out", type=Path, default=Path("artifacts/placement_coverage.json"))
    args = ap.parse_args(argv)
    try:
        spec = json.loads((args.dataset / "meta/snapflow_demos.json").read_text())["spec"]
        lines = (args.dataset / "meta/snapflow_episodes.jsonl").read_text().splitlines()
        seeds = [int(json.loads(line)["seed"]) for line in lines if line.strip()]
    except (OSError, KeyError, ValueError) as exc:
        print(f"not a demonstration dataset: {args.dataset}: {exc}", file=sys.stderr)
        return 2
    if args.states < 1 or not seeds:
        print("need at least one benchmark state and one demonstration", file=sys.stderr)
        return 2
    try:
        run = load_results(args.results) if args.results else None
    except MergeError as exc:
        print(f"placement_coverage: {exc}", file=sys.stderr)
        return 2
    sim = LiberoSim(
        SimConfig(suite=spec["suite"], task_index=int(spec["task_index"]), render=False)
    )
    try:
        bench = [scene_positions(sim, init_state_index=i) for i in range(args.states)]
        demos = [scene_positions(sim, init_state=sim.sample_init_state(s)) for s in seeds]
    finally:
        sim.close()
    names = sorted(bench[0])
    flat_b = np.array([[c for n in names for c in scene[n]] for scene in bench])
    flat_d = np.array([[c for n in names for c in scene[n]] for scene in demos])
    result: dict[str, object] = {
        "suite": spec["suite"],
        "task_index": int(spec["task_index"]),
        "dataset": str(args.dataset),
        "objects": {},
    }
    print(
        f"{spec['suite']} task {spec['task_index']}: {args.states} benchmark scenes, "
        f"{len(seeds)} demonstration scenes"
    )
    print("| object | benchmark xy std (mm) | demonstrations xy std (mm) |")
    print("|---|---|---|")
    for name in names:
        b = np.array([s[name] for s in bench])[:, :2].std(0) * 1e3
        d = np.array([s[name] for s in demos])[:, :2].std(0) * 1e3
        result["objects"][name] = {"benchmark_std_mm": b.tolist(), "demos_std_mm": d.tolist()}
        print(f"| {name} | {b[0]:.1f}, {b[1]:.1f} | {d[0]:.1f}, {d[1]:.1f} |")
    to_demo = nearest(flat_b, flat_d) * 1e3
    among = nearest(flat_d, flat_d, exclude_self=True) * 1e3
    result["benchmark_to_nearest_demo_mm"] = to_demo.round(2).tolist()
    result["demo_to_nearest_demo_mm"] = among.round(2).tolist()
    print(
        f"nearest demonstration scene (all objects, mm): benchmark scenes mean "
        f"{to_demo.mean():.1f} (max {to_demo.max():.1f}); demonstrations among themselves "
        f"mean {among.mean():.1f} (max {among.max():.1f})"
    )
    if run is not None:
        wins = successes(run, spec["suite"], int(spec["task_index"]))
        idx = [i for i in range(args.states) if i in wins]
        rate = np.array([np.mean(wins[i]) for i in idx])
        corr = float(np.corrcoef(rate, to_demo[idx])[0, 1]) if len(idx) > 2 else float("nan")
        result["success_vs_nearest_corr"] = corr
        print(
            f"success rate per state (all configurations) vs nearest-demo distance: "
            f"correlation {corr:+.2f} over {len(idx)} states"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
