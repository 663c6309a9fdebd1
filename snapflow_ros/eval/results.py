"""Evaluation outputs: per-episode CSV, summary CSV, a markdown success table and JSON."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from snapflow_ros.policies import is_embedded, is_tiny
from snapflow_ros.sim.episode_events import LIFT_M

EPISODE_FIELDS = [
    "config",
    "policy_path",
    "num_steps",
    "suite",
    "task_index",
    "task",
    "init_state_index",
    "init_states",
    "placement_seed",
    "noise_seed",
    "episode_id",
    "success",
    "steps",
    "reason",
    "max_steps",
    "wall_s",
    "steps_per_s",
    "sim_step_mean_s",
    "wait_mean_s",
    "chunks",
    "inference_mean_s",
    "latency_p50_ms",
    "latency_p95_ms",
    "kicks",
    "rejected_commands",
    "outcome",
    "grasp_side",
    "video",
]
SUMMARY_FIELDS = [
    "config",
    "suite",
    "task_index",
    "task",
    "episodes",
    "successes",
    "success_rate",
    "success_ci95_low",
    "success_ci95_high",
    "mean_steps",
    "mean_steps_per_s",
    "latency_p50_ms",
    "latency_p95_ms",
]
Z95 = 1.959963984540054
OUTCOMES = (
    "success",
    "nothing lifted",
    "lifted, still up at the end",
    "lifted, then put down or dropped",
    "not recorded",
)
# Where the hand held the lifted object, along the world y axis (the robot faces +x, so +y is
# its left): beyond this distance from the object's centre it held one side (a bowl's rim).
SIDE_M = 0.02
GRASP_SIDES = ("left", "middle", "right", "nothing lifted", "not recorded")


def repository_root() -> Path | None:
    """The source checkout this package runs from (None when it is installed elsewhere)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "package.xml").is_file() and (root / "snapflow_ros").is_dir() else None


def recorded_path(given: str | Path, root: Path | None = None) -> str:
    """How a checkpoint, file or folder named by the user is written into results.

    A policy name (``tiny:...``, ``libero:...``) and anything that is not a local path (a
    Hub id) stay as given; an existing path inside the repository (``root``, default
    :func:`repository_root`) becomes relative to it; any other path stays as given. Results
    then name what a reader can resolve, not where one machine kept its files.
    """
    text = str(given)
    if not text or is_tiny(text) or is_embedded(text):
        return text
    local = Path(text).expanduser()
    if not local.exists():
        return text
    base = repository_root() if root is None else root
    if base is None:
        return text
    try:
        return local.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return text


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate (``(0, 1)`` when ``n`` is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile_ms(seconds: Sequence[float], q: float) -> float | None:
    """The ``q`` percentile (0-100, linear interpolation) of durations in s, in ms."""
    vals = sorted(float(v) for v in seconds if v is not None and math.isfinite(float(v)))
    if not vals:
        return None
    pos = (len(vals) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(vals) - 1)
    return 1000.0 * (vals[lo] + (vals[hi] - vals[lo]) * (pos - lo))


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else None


def summarize(episodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows per (config, suite, task), per (config, suite) (task ``all``) and per config."""
    rows: list[dict[str, Any]] = []
    configs = list(dict.fromkeys(e["config"] for e in episodes))
    for config in configs:
        mine = [e for e in episodes if e["config"] == config]
        suites = list(dict.fromkeys(e["suite"] for e in mine))
        for suite in suites:
            in_suite = [e for e in mine if e["suite"] == suite]
            for task in sorted({e["task_index"] for e in in_suite}):
                group = [e for e in in_suite if e["task_index"] == task]
                rows.append(_row(config, suite, task, group[0]["task"], group))
            rows.append(_row(config, suite, "all", "", in_suite))
        rows.append(_row(config, "all", "all", "", mine))
    return rows


def _row(
    config: str, suite: str, task: Any, text: str, group: list[dict[str, Any]]
) -> dict[str, Any]:
    n = len(group)
    wins = sum(1 for e in group if e["success"])
    low, high = wilson_interval(wins, n)
    latencies = [t for e in group for t in e.get("inference_s") or []]
    return {
        "config": config,
        "suite": suite,
        "task_index": task,
        "task": text,
        "episodes": n,
        "successes": wins,
        "success_rate": wins / n if n else None,
        "success_ci95_low": low,
        "success_ci95_high": high,
        "mean_steps": _mean([e["steps"] for e in group]),
        "mean_steps_per_s": _mean([e["steps_per_s"] for e in group]),
        "latency_p50_ms": percentile_ms(latencies, 50),
        "latency_p95_ms": percentile_ms(latencies, 95),
    }


def outcome(episode: dict[str, Any]) -> str:
    """How an episode ended, from the bridge's object motion (``objects`` of its end event):
    one of :data:`OUTCOMES`. A failure is ``nothing lifted`` when no object rose
    :data:`LIFT_M` (never grasped, or grasped without lifting), ``lifted, still up at the end``
    when a lifted object was still that high at the step limit (carried, not placed in time),
    else ``lifted, then put down or dropped`` (let go outside the goal)."""
    if episode.get("success"):
        return "success"
    objects = episode.get("objects")
    if not objects:
        return "not recorded"
    lifted = [o for o in objects.values() if o["max_rise_m"] >= LIFT_M]
    if not lifted:
        return "nothing lifted"
    if any(o["final_rise_m"] >= LIFT_M for o in lifted):
        return "lifted, still up at the end"
    return "lifted, then put down or dropped"


def grasp_side(episode: dict[str, Any]) -> str:
    """Where the hand held the object it lifted highest, from the bridge's ``lift_eef_dy_m``
    (end-effector minus object, y, when the object first rose :data:`LIFT_M`): ``left``
    (+y, the robot's left) or ``right`` beyond :data:`SIDE_M`, else ``middle``; ``nothing
    lifted``; ``not recorded`` when the bridge did not report it (older recordings)."""
    objects = episode.get("objects")
    if not objects:
        return "not recorded"
    lifted = [o for o in objects.values() if o["max_rise_m"] >= LIFT_M]
    if not lifted:
        return "nothing lifted"
    held = max(lifted, key=lambda o: o["max_rise_m"])
    dy = held.get("lift_eef_dy_m")
    if dy is None:
        return "not recorded"
    if dy >= SIDE_M:
        return "left"
    if dy <= -SIDE_M:
        return "right"
    return "middle"


def counts_per_config(
    episodes: list[dict[str, Any]], label: Callable[[dict[str, Any]], str], labels: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Per configuration, how many episodes ``label`` gives each of ``labels`` (all listed,
    zero included)."""
    counts: dict[str, dict[str, int]] = {}
    for e in episodes:
        row = counts.setdefault(e["config"], dict.fromkeys(labels, 0))
        row[label(e)] += 1
    return counts


def grasp_side_counts(episodes: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per configuration, how many episodes held the lifted object at each side
    (:func:`grasp_side`)."""
    return counts_per_config(episodes, grasp_side, GRASP_SIDES)


def grasp_side_table(counts: dict[str, dict[str, int]]) -> str:
    """Markdown table of :func:`grasp_side_counts` with each side's share of the lifts."""
    lines = [
        f"Where the hand held the lifted object (end-effector - object along y when it first "
        f"rose {100 * LIFT_M:.0f} cm; left = +y, the robot's left, beyond {100 * SIDE_M:.0f} cm):",
        "",
        "| config | left | middle | right | nothing lifted | not recorded | left share of sides |",
        "|---|---|---|---|---|---|---|",
    ]
    for config, row in counts.items():
        sides = row["left"] + row["right"]
        share = f"{row['left'] / sides:.2f}" if sides else "-"
        cells = " | ".join(str(row[s]) for s in GRASP_SIDES)
        lines.append(f"| {config} | {cells} | {share} |")
    return "\n".join(lines) + "\n"


def outcome_counts(episodes: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per configuration, how many episodes ended each way (:func:`outcome`)."""
    return counts_per_config(episodes, outcome, OUTCOMES)


def outcome_table(counts: dict[str, dict[str, int]]) -> str:
    """Markdown table of :func:`outcome_counts` (the ``not recorded`` column only if used)."""
    if not counts:
        return ""
    used = [o for o in OUTCOMES if o != "not recorded" or any(c[o] for c in counts.values())]
    lines = [
        f"How the episodes ended (an object counts as lifted when it rose {100 * LIFT_M:.0f} cm):",
        "",
        "| config | " + " | ".join(used) + " |",
        "|---|" + "---|" * len(used),
    ]
    for config, row in counts.items():
        lines.append(f"| {config} | " + " | ".join(str(row[o]) for o in used) + " |")
    return "\n".join(lines) + "\n"


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: discordant pairs under "both equally likely to win"."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def start_key(episode: dict[str, Any]) -> tuple[Any, ...]:
    """Where an episode started: suite, task, initial-state source and index, and the policy
    node's noise seed (runs with other ``--noise-seed`` values are other episodes)."""
    return (
        episode["suite"],
        episode["task_index"],
        episode.get("init_states"),
        episode.get("init_state_index"),
        episode.get("noise_seed"),
    )


def paired_outcomes(episodes: list[dict[str, Any]], reference: str) -> list[dict[str, Any]]:
    """Each other configuration against ``reference`` on the episodes both ran (same suite,
    task and initial state): how often both, only one or neither succeeded, and McNemar's p."""
    ref = {start_key(e): bool(e["success"]) for e in episodes if e["config"] == reference}
    rows = []
    for config in dict.fromkeys(e["config"] for e in episodes):
        if config == reference:
            continue
        pairs = [
            (ref[start_key(e)], bool(e["success"]))
            for e in episodes
            if e["config"] == config and start_key(e) in ref
        ]
        if not pairs:
            continue
        only_ref = sum(1 for a, b in pairs if a and not b)
        only_other = sum(1 for a, b in pairs if b and not a)
        rows.append(
            {
                "reference": reference,
                "config": config,
                "pairs": len(pairs),
                "both": sum(1 for a, b in pairs if a and b),
                "only_reference": only_ref,
                "only_config": only_other,
                "neither": sum(1 for a, b in pairs if not a and not b),
                "mcnemar_p": mcnemar_p(only_ref, only_other),
            }
        )
    return rows


def paired_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`paired_outcomes`."""
    if not rows:
        return ""
    ref = rows[0]["reference"]
    lines = [
        f"Paired with {ref} on the same initial states (McNemar's exact test: p is the chance of "
        "a split at least this uneven if both were equally good):",
        "",
        f"| config | pairs | both succeed | only {ref} | only config | neither | p |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['pairs']} | {r['both']} | {r['only_reference']} "
            f"| {r['only_config']} | {r['neither']} | {r['mcnemar_p']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _cell(row: dict[str, Any] | None) -> str:
    if row is None or not row["episodes"]:
        return "-"
    return f"{row['successes']}/{row['episodes']} ({100 * row['success_rate']:.0f}%)"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(episodes: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    """Success table (rows: suite/task, columns: configs) and a per-config overview."""
    configs = list(dict.fromkeys(e["config"] for e in episodes))
    index = {(r["config"], r["suite"], r["task_index"]): r for r in rows}
    keys = list(dict.fromkeys((r["suite"], r["task_index"], r["task"]) for r in rows))
    lines = [
        "| suite | task | " + " | ".join(configs) + " |",
        "|---|---|" + "---|" * len(configs),
    ]
    for suite, task, text in keys:
        label = f"{task}: {text[:60]}" if task != "all" else "**all**"
        suite_label = f"**{suite}**" if suite == "all" else suite
        cells = [_cell(index.get((c, suite, task))) for c in configs]
        lines.append(f"| {suite_label} | {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| config | policy | num_steps | episodes | success | 95 % interval | mean steps "
        "| steps/s (wall) | chunk latency p50 / p95 (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for config in configs:
        mine = [e for e in episodes if e["config"] == config]
        total = index[(config, "all", "all")]
        lines.append(
            f"| {config} | {mine[0]['policy_path']} | {mine[0]['num_steps'] or 'default'} "
            f"| {total['episodes']} | {_cell(total)} "
            f"| {100 * total['success_ci95_low']:.0f}-{100 * total['success_ci95_high']:.0f}% "
            f"| {_fmt(total['mean_steps'], 1)} | {_fmt(total['mean_steps_per_s'], 2)} "
            f"| {_fmt(total['latency_p50_ms'], 1)} / {_fmt(total['latency_p95_ms'], 1)} |"
        )
    return "\n".join(lines) + "\n"


def index_ranges(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` as ``0..2, 5, 7..8``."""
    parts: list[str] = []
    values = sorted(set(indices))
    start = prev = None
    for value in [*values, None]:
        if start is not None and (value is None or value != prev + 1):
            parts.append(str(start) if start == prev else f"{start}..{prev}")
            start = None
        if start is None:
            start = value
        prev = value
    return ", ".join(parts)


def initial_states_line(plan: dict[str, Any]) -> str:
    """Which initial states the episodes started from (benchmark or seeded fresh placements).

    A merged report (``plan["init_state_indices"]``: config name to indices) names the indices
    of each configuration, or one list when all configurations ran the same ones.
    """
    per_config = plan.get("init_state_indices")
    if per_config:
        lists = {name: index_ranges(v) for name, v in per_config.items()}
        if len(set(lists.values())) == 1:
            which = next(iter(lists.values()))
        else:
            which = "; ".join(f"{name}: {text}" for name, text in lists.items())
    else:
        first = int(plan.get("init_offset", 0))
        which = f"{first}..{first + int(plan.get('episodes', 1)) - 1}"
    if plan.get("init_states") == "fresh":
        redrawn = (
            "; a draw whose reset throws an object further than the benchmark's states move "
            "one is redrawn"
            if plan.get("placements") == "settled"
            else ""
        )
        return (
            f"Initial states: fresh object placements {which} drawn from each task's "
            f"placement distribution with seed {plan.get('seed', 0)} (not the benchmark's"
            f"{redrawn})."
        )
    return f"Initial states: the benchmark's initial states {which} of each task."


def write_reports(
    out: Path, meta: dict[str, Any], episodes: list[dict[str, Any]]
) -> dict[str, Path]:
    """Write results.json, episodes.csv, summary.csv and summary.md into ``out``.

    Both the JSON and the markdown pair every configuration with the first one on the
    initial states both ran (:func:`paired_outcomes`).
    """
    out.mkdir(parents=True, exist_ok=True)
    rows = summarize(episodes) if episodes else []
    paired = paired_outcomes(episodes, episodes[0]["config"]) if episodes else []
    episodes = [{**e, "outcome": outcome(e), "grasp_side": grasp_side(e)} for e in episodes]
    outcomes = outcome_counts(episodes)
    sides = grasp_side_counts(episodes)
    paths = {
        "json": out / "results.json",
        "episodes_csv": out / "episodes.csv",
        "summary_csv": out / "summary.csv",
        "markdown": out / "summary.md",
    }
    paths["json"].write_text(
        json.dumps(
            {
                **meta,
                "episodes": episodes,
                "summary": rows,
                "paired": paired,
                "outcomes": outcomes,
                "grasp_sides": sides,
            },
            indent=2,
            default=str,
        )
    )
    with paths["episodes_csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=EPISODE_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(episodes)
    with paths["summary_csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    text = "# LIBERO evaluation\n\n"
    text += initial_states_line(meta.get("plan", {})) + "\n\n"
    if meta.get("machine"):
        m = meta["machine"]
        text += f"Machine: {m.get('cpu')} ({m.get('cpu_count')} cores), {m.get('platform')}.\n\n"
    text += markdown_table(episodes, rows) if episodes else "No episode ran.\n"
    if paired:
        text += "\n" + paired_table(paired)
    if outcomes:
        text += "\n" + outcome_table(outcomes)
    if any(row["left"] + row["middle"] + row["right"] for row in sides.values()):
        text += "\n" + grasp_side_table(sides)
    paths["markdown"].write_text(text)
    return paths
