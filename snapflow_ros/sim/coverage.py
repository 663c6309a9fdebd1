"""Do a demonstration set's initial states cover the benchmark's? A check, dimension by dimension.

A policy learns the start conditions its demonstrations show. When one dimension of the
initial state varies across the benchmark's initial states but not across the demonstrations'
(LIBERO's reset starts the arm from one exact pose, while the benchmark perturbs every arm
joint), the policy meets inputs at evaluation that it never saw in training. This module reads
both sets as named dimensions (robot arm joints, gripper joints, each movable object's position
and yaw) and names every dimension that varies in one set and not in the other, or whose spread
differs by more than a factor. One more dimension is physical: how far the reset's settle
steps move the object that moves most (``settle_shift_m``). Overlapping placement regions can
put one object into another, and the reset then throws it (in libero_spatial task 0, 1 in 5
of LIBERO's draws move an object further than any benchmark state does, up to a metre); a
demonstration whose scene moved an object further than any benchmark state's did is named.

    python -m snapflow_ros.sim.coverage DATASET [--states 50] [--out JSON]

``DATASET`` is a demonstration dataset (``snapflow_ros.training_data.demonstrations``): its
placements are redrawn from the seeds in its ledger, exactly as they were recorded. Needs the
simulator (physics only, no rendering); about 0.5 s per state. Exit 0: covered; 1: a dimension
is not covered; 2: bad arguments or not a demonstration dataset.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

CONSTANT = 1e-6  # a spread below this is "does not vary" (radians or metres)
SPREAD_FACTOR = 3.0  # spreads further apart than this are named too


@dataclass(frozen=True)
class Dimension:
    """One dimension of the initial state in two sets: spreads (std) and means."""

    name: str
    std_demo: float
    std_bench: float
    mean_demo: float
    mean_bench: float
    problem: str  # "" when covered


def quat_yaw(quat_wxyz: np.ndarray) -> np.ndarray:
    """Yaw (rotation about world z, rad) of MuJoCo quaternions (w, x, y, z), N x 4."""
    w, x, y, z = np.asarray(quat_wxyz, np.float64).T
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def named_dimensions(sim: Any, states: np.ndarray) -> dict[str, np.ndarray]:
    """The named dimensions of flattened MuJoCo initial states (N x D) of ``sim``'s task."""
    states = np.atleast_2d(np.asarray(states, np.float64))
    qpos = states[:, 1:]  # flattened state: time, qpos, qvel
    index = sim.robot_qpos_index()
    arm, gripper = index[:7], index[7:]
    out = {f"arm_joint{k + 1}": qpos[:, i] for k, i in enumerate(arm)}
    out.update({f"gripper_joint{k + 1}": qpos[:, i] for k, i in enumerate(gripper)})
    for name, obj in sim.movable_objects().items():
        start, _ = obj
        out[f"{name}.x"] = qpos[:, start]
        out[f"{name}.y"] = qpos[:, start + 1]
        out[f"{name}.z"] = qpos[:, start + 2]
        out[f"{name}.yaw"] = quat_yaw(qpos[:, start + 3 : start + 7])
    return out


def _spread(values: np.ndarray, angle: bool) -> tuple[float, float]:
    """Mean and std; angles through their unit vectors (a yaw near +-pi is one place)."""
    if not angle:
        return float(values.mean()), float(values.std())
    c, s = np.cos(values).mean(), np.sin(values).mean()
    r = min(float(np.hypot(c, s)), 1.0)
    return float(np.arctan2(s, c)), float(np.sqrt(abs(-2.0 * np.log(max(r, 1e-12)))))


def compare(
    demo: dict[str, np.ndarray],
    bench: dict[str, np.ndarray],
    constant: float = CONSTANT,
    factor: float = SPREAD_FACTOR,
) -> list[Dimension]:
    """Every dimension of both sets, with what is wrong with it ('' when covered): it varies
    in one set only, its spreads differ by more than ``factor``, or one set lacks it."""
    rows = []
    for name in [*bench, *(n for n in demo if n not in bench)]:
        if name not in demo or name not in bench:
            where = "demonstrations" if name in demo else "benchmark"
            rows.append(Dimension(name, np.nan, np.nan, np.nan, np.nan, f"only in the {where}"))
            continue
        angle = name.endswith(".yaw")
        mean_d, std_d = _spread(demo[name], angle)
        mean_b, std_b = _spread(bench[name], angle)
        problem = ""
        if std_b > constant and std_d <= constant:
            problem = "varies in the benchmark, not in the demonstrations"
        elif std_d > constant and std_b <= constant:
            problem = "varies in the demonstrations, not in the benchmark"
        elif std_b > constant and not 1.0 / factor <= std_d / std_b <= factor:
            problem = f"spreads differ by more than {factor:g}x"
        rows.append(Dimension(name, std_d, std_b, mean_d, mean_b, problem))
    return rows


def settle_row(demo_shifts: list[float], bench_shifts: list[float], limit: float) -> Dimension:
    """The ``settle_shift_m`` dimension: a problem when a demonstration's reset moved an object
    further than ``limit`` (the largest a fresh placement may have:
    :meth:`~snapflow_ros.sim.libero_env.LiberoSim.settle_limit_m`)."""
    demo, bench = np.asarray(demo_shifts, np.float64), np.asarray(bench_shifts, np.float64)
    over = int((demo > limit).sum())
    problem = (
        f"{over} of {len(demo)} scenes throw an object at reset (up to {demo.max():.3f} m; "
        f"the benchmark's move one at most {bench.max():.3f} m): record with --placements "
        "settled"
        if over
        else ""
    )
    return Dimension(
        "settle_shift_m", float(demo.std()), float(bench.std()), float(demo.mean()),
        float(bench.mean()), problem,
    )  # fmt: skip


def table(rows: list[Dimension]) -> str:
    """The comparison as a plain-text table."""
    width = max([28, *(len(r.name) for r in rows)])  # the longest object name sets the column
    lines = [f"{'dimension':<{width}} {'std demo':>10} {'std bench':>10}  problem"]
    for r in rows:
        lines.append(
            f"{r.name:<{width}} {r.std_demo:>10.4f} {r.std_bench:>10.4f}  {r.problem or 'ok'}"
        )
    return "\n".join(lines)


def dataset_placements(root: Path) -> tuple[dict[str, Any], list[int]]:
    """A demonstration dataset's spec and the placement seed of each of its episodes."""
    spec = json.loads((root / "meta/snapflow_demos.json").read_text())["spec"]
    lines = (root / "meta/snapflow_episodes.jsonl").read_text().splitlines()
    seeds = [int(json.loads(line)["seed"]) for line in lines if line.strip()]
    return spec, seeds


def recorded_placement_options(spec: dict[str, Any]) -> dict[str, str]:
    """The ``SimConfig`` placement options a demonstration dataset was recorded with
    (datasets from before an option: that option's old behaviour)."""
    return {
        # before the option every arm started from the reset pose
        "arm_start": spec.get("arm_start", "fixed"),
        # before the option LIBERO's first draw was kept
        "placements": spec.get("placements", "any"),
    }


def check_dataset(root: Path, states: int = 50) -> list[Dimension]:
    """Compare the demonstrations' initial states at ``root`` with the first ``states``
    benchmark initial states of their task, dimension by dimension, then how far their
    resets move objects (:func:`settle_row`)."""
    from snapflow_ros.sim.libero_env import LiberoSim, SimConfig

    spec, seeds = dataset_placements(root)
    if not seeds:
        raise ValueError(f"{root}: the dataset holds no episode")
    sim = LiberoSim(
        SimConfig(
            suite=spec["suite"],
            task_index=int(spec["task_index"]),
            render=False,
            init_states="benchmark",
            **recorded_placement_options(spec),
        )
    )
    try:
        demo = np.stack([sim.sample_init_state(s) for s in seeds])
        bench = np.asarray(sim.benchmark_states()[:states], np.float64)
        rows = compare(named_dimensions(sim, demo), named_dimensions(sim, bench))
        settle = settle_row(
            [sim.settle_shift_m(s) for s in demo],
            sim.benchmark_settle_shifts_m()[:states],
            sim.settle_limit_m(),
        )
        return [*rows, settle]
    finally:
        sim.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(
        prog="python -m snapflow_ros.sim.coverage", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("dataset", type=Path, help="a demonstration dataset folder")
    ap.add_argument("--states", type=int, default=50, help="benchmark initial states 0..N-1")
    ap.add_argument("--out", type=Path, help="write the comparison as JSON here")
    args = ap.parse_args(argv)
    if args.states < 2:
        ap.error("--states must be >= 2 (a spread needs two states)")
    try:
        rows = check_dataset(args.dataset, args.states)
    except (OSError, KeyError, ValueError) as exc:
        print(f"coverage: not a demonstration dataset: {args.dataset}: {exc}", file=sys.stderr)
        return 2
    print(table(rows))
    bad = [r for r in rows if r.problem]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"dataset": str(args.dataset), "dimensions": [asdict(r) for r in rows]}
        args.out.write_text(json.dumps(report, indent=1))
    if bad:
        print(f"NOT COVERED: {', '.join(r.name for r in bad)}", file=sys.stderr)
        return 1
    print(f"covered: all {len(rows)} dimensions vary in both sets alike")
    return 0


if __name__ == "__main__":
    sys.exit(main())
