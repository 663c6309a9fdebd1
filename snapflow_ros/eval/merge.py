"""Merge the results of several ``libero_eval`` runs into one report.

A long evaluation is often split: configurations run side by side on separate ROS domains (one
core each), or a later run adds initial states to an earlier one. ``libero_eval_merge`` joins
their ``results.json`` files into one ``results.json`` / ``episodes.csv`` / ``summary.csv`` /
``summary.md``, after checking that they can be compared:

- a configuration name means the same checkpoint and step count in every input;
- the settings that change what a policy sees or how an episode ends (image size, fast render,
  mode, step limit, initial-state source and seed) are the same in every input;
- no episode (configuration, suite, task, initial state) appears twice.

Usage: ``libero_eval_merge RUN_A RUN_B ... --out OUT [--configs REF,B,C]`` where a RUN is a
``libero_eval`` output folder or its ``results.json``; ``--configs`` orders the configurations,
the first being the reference that the report pairs the others with on the same initial states
(McNemar's exact test, see :mod:`snapflow_ros.eval.results`). Exit codes: 0 merged, 2 bad
arguments or inputs that do not merge (one line on stderr says which and why).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from snapflow_ros.eval.results import recorded_path, start_key, write_reports

SAME_SETTINGS = ("image_size", "fast_render", "mode", "max_steps", "init_states")


class MergeError(ValueError):
    """Inputs that cannot be merged into one comparison."""


def load_results(path: Path) -> dict[str, Any]:
    """Read a run's ``results.json`` (``path``: the file or its output folder)."""
    file = path / "results.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError as exc:
        raise MergeError(f"{file}: no such file (a libero_eval output folder?)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MergeError(f"{file}: not a readable results.json ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("episodes"), list):
        raise MergeError(f"{file}: not a libero_eval results.json (no 'episodes' list)")
    if not isinstance(data.get("plan"), dict):
        raise MergeError(f"{file}: not a libero_eval results.json (no 'plan')")
    data["_source"] = str(file)
    return data


def merge_runs(
    runs: list[dict[str, Any]], order: list[str] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Check that ``runs`` compare and return (merged meta, episodes in a stable order).

    ``order``: configuration names, first the reference of the paired comparison; the others
    follow in the order they appear (None: all in that order).
    """
    if not runs:
        raise MergeError("nothing to merge")
    first = runs[0]
    # fresh placements are the same scenes only when drawn from the same seed the same way
    fresh = first["plan"].get("init_states") == "fresh"
    same = (*SAME_SETTINGS, "seed", "placements") if fresh else SAME_SETTINGS
    for run in runs[1:]:
        for key in same:
            a, b = first["plan"].get(key), run["plan"].get(key)
            if a != b:
                raise MergeError(
                    f"{run['_source']}: {key} {b!r} differs from {a!r} in {first['_source']}"
                )
    configs: dict[str, dict[str, Any]] = {}
    seen: dict[tuple[Any, ...], str] = {}
    episodes: list[dict[str, Any]] = []
    for run in runs:
        for ep in run["episodes"]:
            try:
                key = (ep["config"], *start_key(ep))
                identity = (str(ep["policy_path"]), ep.get("num_steps"))
            except (KeyError, TypeError) as exc:
                raise MergeError(f"{run['_source']}: an episode lacks {exc}") from exc
            known = configs.setdefault(ep["config"], {"identity": identity, "source": run})
            if known["identity"] != identity:
                raise MergeError(
                    f"{run['_source']}: configuration {ep['config']!r} is {identity[0]} with "
                    f"num_steps {identity[1]}, but {known['identity'][0]} with num_steps "
                    f"{known['identity'][1]} in {known['source']['_source']}"
                )
            if key in seen:
                raise MergeError(
                    f"{run['_source']}: episode {ep['config']} {ep['suite']} task "
                    f"{ep['task_index']} init {ep.get('init_state_index')} is also in {seen[key]}"
                )
            seen[key] = run["_source"]
            episodes.append(ep)
    unknown = [name for name in order or [] if name not in configs]
    if unknown:
        raise MergeError(f"--configs: {unknown} not in the runs (they have {list(configs)})")
    names = list(dict.fromkeys([*(order or []), *configs]))
    rank = {name: i for i, name in enumerate(names)}
    configs = {name: configs[name] for name in names}
    episodes.sort(
        key=lambda e: (
            rank[e["config"]],
            e["suite"],
            e["task_index"],
            e.get("init_state_index") or 0,
        )
    )
    plan = dict(first["plan"])
    plan["configs"] = [c for run in runs for c in run["plan"].get("configs", [])]
    plan["init_state_indices"] = {
        name: sorted({e.get("init_state_index") or 0 for e in episodes if e["config"] == name})
        for name in configs
    }
    plan["merged_from"] = [recorded_path(run["_source"]) for run in runs]
    machines = [run.get("machine") for run in runs if run.get("machine")]
    meta = {
        "plan": plan,
        "machine": machines[0] if machines else {},
        "machines": machines,
        "finished": max(str(run.get("finished", "")) for run in runs),
        "merged": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return meta, episodes


def build_parser() -> argparse.ArgumentParser:
    """The command line (``libero_eval_merge --help``)."""
    p = argparse.ArgumentParser(
        prog="libero_eval_merge",
        description="Merge libero_eval runs (output folders or results.json) into one report.",
    )
    p.add_argument("runs", nargs="+", type=Path, help="libero_eval output folders or results.json")
    p.add_argument("--out", type=Path, required=True, help="output folder of the merged report")
    p.add_argument(
        "--configs",
        default="",
        help="comma-separated configuration order; the first is the reference the others are "
        "paired with (default: the order of the runs)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``libero_eval_merge`` (exit 2 when the runs do not merge)."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        order = [name.strip() for name in args.configs.split(",") if name.strip()]
        meta, episodes = merge_runs([load_results(p) for p in args.runs], order or None)
    except MergeError as exc:
        print(f"libero_eval_merge: error: {exc}", file=sys.stderr)
        return 2
    paths = write_reports(args.out, meta, episodes)
    print(f"libero_eval_merge: {len(episodes)} episodes from {len(args.runs)} runs")
    print(paths["markdown"].read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
