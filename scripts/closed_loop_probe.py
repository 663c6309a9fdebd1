"""Where in a closed loop do two policies part? Drive LIBERO with one policy, ask others.

A plain loop (no ROS; the bridge's simulator settings, whole chunks executed, rendering only
on the steps whose observation a policy reads) drives each scene with ``--driver``. At every
chunk boundary the reference policy (``--reference``, e.g. the 10-step teacher) and every
``--probe`` are asked for ``--draws`` chunks on the SAME observation. Per scene it records the
driver's success, and per boundary and policy the draws' mean action, spread and gripper sign
(LIBERO: +1 closes). The summary compares each probe with the reference on the observations
the driver visits: gripper-decision disagreement (share of draws whose gripper sign differs
from the reference's majority) and the distance between the probe's and the reference's mean
chunks over x, y, z (the reference asked again as a probe gives the floor), split by episode
phase (before the reference first wants to close the gripper / after).

Scenes: ``benchmark`` (the task's 50 initial states; ``benchmark:0,2,7`` a subset),
``demo:DATASET`` (the placements of a demonstration dataset, its training scenes),
``fresh:SEED`` (new placements, ``episode_seed(SEED, i, "eval")``).

    .venv/bin/python scripts/closed_loop_probe.py --driver STUDENT:1 \
        --reference TEACHER:10 --probe student=STUDENT:1 --probe naive=TEACHER:1 \
        --scenes benchmark --count 50 --out /tmp/probe
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from snapflow_ros.runtime.options import RuntimeOptions
from snapflow_ros.runtime.policy_runtime import PolicyRuntime
from snapflow_ros.runtime.types import Observation
from snapflow_ros.sim.coverage import dataset_placements, recorded_placement_options
from snapflow_ros.sim.libero_env import LiberoSim, SimConfig
from snapflow_ros.sim.placements import episode_seed
from snapflow_ros.training_data.demonstrations import IMAGE_KEYS

GRIPPER = 6


@dataclass
class Spec:
    """A policy and the number of steps it samples with."""

    name: str
    path: str
    steps: int


def parse_spec(text: str, name: str | None = None) -> Spec:
    """``[NAME=]PATH:STEPS``."""
    if "=" in text and name is None:
        name, text = text.split("=", 1)
    path, _, steps = text.rpartition(":")
    if not path or not steps.isdigit() or int(steps) < 1:
        raise argparse.ArgumentTypeError(f"expected [NAME=]PATH:STEPS, got {text!r}")
    return Spec(name or path, path, int(steps))


def scene_states(sim: LiberoSim, scenes: str, count: int) -> list[tuple[str, np.ndarray | None]]:
    """(label, initial state or None for benchmark index) for each scene."""
    kind, _, arg = scenes.partition(":")
    if kind == "benchmark":
        indices = [int(i) for i in arg.split(",")] if arg else range(count)
        return [(f"benchmark:{i}", None) for i in list(indices)[:count]]
    if kind == "demo":
        spec, seeds = dataset_placements(Path(arg))
        seeds = seeds[:count]
        for option, value in recorded_placement_options(spec).items():  # as recorded
            setattr(sim.config, option, value)
    elif kind == "fresh":
        seeds = [episode_seed(int(arg), i, "eval") for i in range(count)]
    else:
        raise SystemExit(f"--scenes: benchmark, demo:DATASET or fresh:SEED, got {scenes!r}")
    return [(f"{kind}:{s}", sim.sample_init_state(s)) for s in seeds]


def draws(runtime: PolicyRuntime, obs: Observation, steps: int, count: int) -> np.ndarray:
    """``count`` chunks (count x H x D) for one observation."""
    return np.stack([runtime.predict_chunk(obs, steps).actions for _ in range(count)])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--driver", required=True, type=parse_spec, help="PATH:STEPS")
    ap.add_argument("--reference", required=True, type=parse_spec, help="PATH:STEPS")
    ap.add_argument("--probe", action="append", default=[], type=parse_spec)
    ap.add_argument("--scenes", default="benchmark")
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--draws", type=int, default=6)
    ap.add_argument("--suite", default="libero_object")
    ap.add_argument("--task", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--max-steps", type=int, default=0, help="0: the suite's limit")
    ap.add_argument("--seed", type=int, default=0, help="probes' noise seed of scene i: seed+i")
    ap.add_argument(
        "--driver-seed",
        type=int,
        default=0,
        help="the driver's noise seed, set at every scene's start as the node does (its "
        "`seed` parameter, default 0); -1: seed + i for scene i",
    )
    ap.add_argument("--engine", default="eager", help="runtime engine (the node's default)")
    ap.add_argument(
        "--side-object",
        default="",
        help="an object of the scene (e.g. akita_black_bowl_1): the summary then gives, per "
        "chunk, how the reference's draws split between its two sides along y",
    )
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    specs = {"driver": args.driver, "reference": args.reference}
    specs.update({p.name: p for p in args.probe})
    options = RuntimeOptions(device="cpu", warmup=0, engine=args.engine)
    runtimes = {path: PolicyRuntime(path, options) for path in {s.path for s in specs.values()}}
    driver = PolicyRuntime(args.driver.path, options)  # its own noise stream, as the node's
    size = args.image_size
    sim = LiberoSim(
        SimConfig(
            suite=args.suite,
            task_index=args.task,
            image_height=size,
            image_width=size,
            max_steps=args.max_steps,
        )
    )
    rows = []
    for i, (label, state) in enumerate(scene_states(sim, args.scenes, args.count)):
        for k, rt in enumerate(runtimes.values()):
            rt.reset_noise(args.seed + 1000 * (k + 1) + i)
        driver.reset_noise(args.driver_seed if args.driver_seed >= 0 else args.seed + i)
        if state is None:
            first = sim.reset(init_state_index=int(label.split(":")[1]))
        else:
            first = sim.reset(init_state=state)
        obs_sim, done, boundaries, reason = first, False, [], ""
        start = time.perf_counter()
        while not done:
            obs = Observation(
                images={key: obs_sim.images[cam] for cam, key in IMAGE_KEYS.items()},
                state=obs_sim.state,
                task=sim.task_language,
            )
            asked = {}
            for name, spec in specs.items():
                if name == "driver":
                    asked[name] = draws(driver, obs, spec.steps, 1)
                else:
                    asked[name] = draws(runtimes[spec.path], obs, spec.steps, args.draws)
            boundaries.append(
                {
                    "step": sim.steps,
                    "gripper_qpos": float(np.mean(np.abs(obs_sim.gripper_qpos))),
                    "eef_pos": obs_sim.eef_pos.tolist(),
                    "object_pos": {k: v.tolist() for k, v in obs_sim.object_pos.items()},
                    **{
                        name: {
                            "mean": c.mean(0).tolist(),
                            "gripper": c[:, :, GRIPPER].tolist(),
                            "net_xyz": c[:, :, :3].sum(1).tolist(),  # per draw: the chunk's sum
                        }
                        for name, c in asked.items()
                    },
                }
            )
            chunk = asked["driver"][0]
            for j, action in enumerate(chunk):
                sim.pause_rendering(j < len(chunk) - 1)
                result = sim.step(action)
                obs_sim = result.observation
                if result.done:
                    done, reason = True, result.reason
                    break
        sim.pause_rendering(False)
        rows.append(
            {"scene": label, "reason": reason, "steps": sim.steps, "boundaries": boundaries}
        )
        print(f"{label} {reason} {sim.steps} steps {time.perf_counter() - start:.1f}s", flush=True)
    sim.close()
    summary = summarise(rows, [n for n in specs if n not in ("driver", "reference")])
    if args.side_object:
        summary["reference.side_split_by_chunk"] = side_split_by_chunk(rows, args.side_object)
    (args.out / "probe.json").write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}) + "\n"
    )
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


def summarise(rows: list[dict], probes: list[str]) -> dict:
    """Success and, per probe and phase, gripper disagreement and mean-chunk xyz distance."""
    out: dict = {
        "success": sum(r["reason"] == "success" for r in rows),
        "scenes": len(rows),
    }
    for name in probes:
        for phase in ("before_close", "after_close"):
            disagree, dist = [], []
            for r in rows:
                closed = False
                for b in r["boundaries"]:
                    ref_grip = np.asarray(b["reference"]["gripper"])  # draws x H
                    majority = np.sign(np.mean(np.sign(ref_grip), axis=0))
                    closed = closed or bool(np.any(majority > 0))
                    if (phase == "after_close") != closed:
                        continue
                    probe_grip = np.sign(np.asarray(b[name]["gripper"]))
                    disagree.append(float(np.mean(probe_grip != majority)))
                    ref_mean = np.asarray(b["reference"]["mean"])[:, :3]
                    probe_mean = np.asarray(b[name]["mean"])[:, :3]
                    dist.append(float(np.linalg.norm(probe_mean - ref_mean)))
            out[f"{name}.{phase}.gripper_disagreement"] = float(np.mean(disagree or [np.nan]))
            out[f"{name}.{phase}.xyz_distance"] = float(np.mean(dist or [np.nan]))
            out[f"{name}.{phase}.boundaries"] = len(dist)
    return out


# LIBERO's controller moves the hand by about this much per step per unit of position action
# (robosuite OSC_POSE output_max 0.05 m): a chunk's summed y action x this ~ its y motion.
POSITION_SCALE_M = 0.05


def side_split_by_chunk(
    rows: list[dict], obj: str, chunks: int = 8, name: str = "reference"
) -> list[dict]:
    """When does ``name`` choose a side of ``obj``? Per chunk boundary k (0: the episode's
    first observation): where each draw would bring the hand along y relative to the object
    (hand y + :data:`POSITION_SCALE_M` x the chunk's summed y action - object y), and the
    minority share of the draws on either side, averaged over scenes (0.5: the draws split
    evenly, a bimodal choice still open; 0: all on one side), with the number of scenes split
    at least 20/80 and the mean |hand - object| y distance (m). Scenes that ended earlier are
    left out."""
    out = []
    for k in range(chunks):
        shares, apart = [], []
        for r in rows:
            if k >= len(r["boundaries"]) or "net_xyz" not in r["boundaries"][k][name]:
                continue
            b = r["boundaries"][k]
            offset = b["eef_pos"][1] - b["object_pos"][obj][1]
            y = np.asarray(b[name]["net_xyz"])[:, 1]
            left = float(np.mean(offset + POSITION_SCALE_M * y > 0))
            shares.append(min(left, 1.0 - left))
            apart.append(abs(offset))
        out.append(
            {
                "chunk": k,
                "scenes": len(shares),
                "minority_share": float(np.mean(shares)) if shares else float("nan"),
                "scenes_split": int(sum(sh >= 0.2 for sh in shares)),
                "hand_object_y_m": float(np.mean(apart)) if apart else float("nan"),
            }
        )
    return out


if __name__ == "__main__":
    main()
