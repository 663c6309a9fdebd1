"""Evaluation reports: how failed episodes failed, from the bridge's object motion."""

from __future__ import annotations

import json
from typing import Any

import pytest

from snapflow_ros.eval.results import (
    LIFT_M,
    SIDE_M,
    grasp_side,
    grasp_side_counts,
    outcome,
    outcome_counts,
    recorded_path,
    repository_root,
    write_reports,
)


def _episode(config: str, success: bool, **rises: tuple[float, float]) -> dict[str, Any]:
    """An episode whose objects rose (max, final) metres; no ``objects`` when none given."""
    episode: dict[str, Any] = {
        "config": config,
        "policy_path": "/m",
        "num_steps": 1,
        "suite": "libero_object",
        "task_index": 0,
        "task": "pick up the alphabet soup and place it in the basket",
        "init_state_index": 0,
        "init_states": "benchmark",
        "success": success,
        "steps": 280,
        "steps_per_s": 6.0,
    }
    if rises:
        episode["objects"] = {
            name: {"max_rise_m": top, "final_rise_m": end, "moved_xy_m": 0.0}
            for name, (top, end) in rises.items()
        }
    return episode


@pytest.mark.parametrize(
    ("success", "rises", "expected"),
    [
        (True, {"soup": (0.2, 0.05)}, "success"),
        (False, {"soup": (0.004, 0.0), "basket": (0.001, 0.0)}, "nothing lifted"),
        (False, {"soup": (LIFT_M - 1e-4, 0.0)}, "nothing lifted"),
        (False, {"soup": (0.15, 0.12), "basket": (0.0, 0.0)}, "lifted, still up at the end"),
        (False, {"soup": (0.15, 0.001)}, "lifted, then put down or dropped"),
        (False, {}, "not recorded"),
    ],
)
def test_outcome_of_an_episode(success, rises, expected):
    assert outcome(_episode("a", success, **rises)) == expected


def test_counts_per_config_and_the_table_in_the_reports(tmp_path):
    episodes = [
        _episode("teacher", True, soup=(0.2, 0.05)),
        _episode("teacher", False, soup=(0.01, 0.0)),
        _episode("student", False, soup=(0.2, 0.0)),
        _episode("student", False),
    ]
    counts = outcome_counts(episodes)
    assert counts["teacher"]["success"] == 1 and counts["teacher"]["nothing lifted"] == 1
    assert counts["student"]["lifted, then put down or dropped"] == 1
    assert counts["student"]["not recorded"] == 1
    assert sum(counts["student"].values()) == 2
    write_reports(tmp_path, {"plan": {}}, episodes)
    assert "outcome" not in episodes[0]  # the caller's episodes are left as they were
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["outcomes"] == counts
    assert [e["outcome"] for e in results["episodes"]] == [
        "success",
        "nothing lifted",
        "lifted, then put down or dropped",
        "not recorded",
    ]
    table = (tmp_path / "summary.md").read_text()
    assert "| config | success | nothing lifted | lifted, still up at the end |" in table
    assert "| student | 0 | 0 | 0 | 1 | 1 |" in table and "| teacher | 1 | 1 | 0 | 0 | 0 |" in table


def test_the_not_recorded_column_appears_only_when_needed(tmp_path):
    write_reports(tmp_path, {"plan": {}}, [_episode("a", False, soup=(0.0, 0.0))])
    table = (tmp_path / "summary.md").read_text()
    assert "nothing lifted" in table and "not recorded" not in table


# --------------------------------------------------------------------------- recorded paths
def test_recorded_paths_name_what_a_reader_can_resolve(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "runs" / "ckpt").mkdir(parents=True)
    outside = tmp_path / "elsewhere" / "ckpt"
    outside.mkdir(parents=True)
    # policy names stay as given (also where a folder of that name exists), Hub ids too
    (repo / "libero:teacher").mkdir()
    monkeypatch.chdir(repo)
    for name in ("libero:teacher", "libero:snapflow", "tiny:libero", "lerobot/smolvla_base"):
        assert recorded_path(name, repo) == name
    # a path inside the repository: relative to it, however it was given
    assert recorded_path(repo / "runs" / "ckpt", repo) == "runs/ckpt"
    assert recorded_path("runs/ckpt", repo) == "runs/ckpt"
    monkeypatch.chdir(repo / "runs")
    assert recorded_path("ckpt", repo) == "runs/ckpt"
    assert recorded_path("../runs/./ckpt", repo) == "runs/ckpt"
    # outside it: as given (absolute or relative), not resolved
    assert recorded_path(str(outside), repo) == str(outside)
    assert recorded_path("../../elsewhere/ckpt", repo) == "../../elsewhere/ckpt"
    # a path that does not exist here is not guessed at
    assert recorded_path("runs/missing", repo) == "runs/missing"
    assert recorded_path("", repo) == ""


def test_the_repository_root_is_this_checkout():
    root = repository_root()
    if root is None:
        pytest.skip("snapflow_ros is installed, not run from its source checkout")
    assert (root / "snapflow_ros" / "eval" / "results.py").is_file()
    assert recorded_path(root / "config" / "libero_policy.yaml") == "config/libero_policy.yaml"


def test_an_eval_plan_records_names_and_repository_paths(tmp_path):
    """What results.json gets for the plan: the shipped name and the repository's configs
    without this machine's absolute paths; a folder outside the repository as given."""
    from snapflow_ros.eval.libero_eval import build_parser, plan_record, validate
    from snapflow_ros.policies import embedded_dir

    root = repository_root()
    if root is None:
        pytest.skip("snapflow_ros is installed, not run from its source checkout")
    try:
        embedded_dir("libero:teacher")
    except ValueError:
        pytest.skip("the shipped policies are not installed")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    args = ["--config", "t=libero:teacher,10", "--config", f"x={ckpt}", "--out", str(tmp_path)]
    plan = validate(build_parser().parse_args(args))
    assert plan.policy_params.is_absolute()  # found by the package: this machine's path
    plan.configs[0].resolved_path = str(embedded_dir("libero:teacher"))
    plan.configs[1].resolved_path = str(ckpt.resolve())
    record = plan_record(plan)
    assert record["configs"][0]["policy_path"] == "libero:teacher"
    assert record["configs"][0]["resolved_path"] == "snapflow_ros/models/libero_object_t0/teacher"
    assert record["configs"][1]["policy_path"] == str(ckpt)
    if not plan.policy_params.resolve().is_relative_to(root.resolve()):
        pytest.skip("the configs come from an install prefix outside the repository")
    assert record["policy_params"] == "config/libero_policy.yaml"
    assert record["bridge_params"] == "config/libero_bridge.yaml"
    assert str(root) not in json.dumps(record)


def _held(config: str, success: bool, dy: float | None, rise: float = 0.2) -> dict[str, Any]:
    """An episode whose bowl rose ``rise`` m, held ``dy`` m from its centre along y (None:
    an older bridge that did not report where)."""
    episode = _episode(config, success, bowl=(rise, 0.0), plate=(0.0, 0.0))
    if dy is not None:
        episode["objects"]["bowl"].update(lift_eef_dx_m=0.0, lift_eef_dy_m=dy, lift_eef_dz_m=0.03)
    return episode


@pytest.mark.parametrize(
    ("dy", "rise", "expected"),
    [
        (0.05, 0.2, "left"),
        (SIDE_M, 0.2, "left"),
        (-0.048, 0.2, "right"),
        (SIDE_M - 1e-4, 0.2, "middle"),
        (0.0, 0.2, "middle"),
        (0.05, LIFT_M - 1e-4, "nothing lifted"),
        (None, 0.2, "not recorded"),
    ],
)
def test_grasp_side_of_an_episode(dy, rise, expected):
    assert grasp_side(_held("a", False, dy, rise)) == expected
    assert grasp_side(_episode("a", False)) == "not recorded"  # no objects at all


def test_grasp_side_counts_and_their_table_in_the_reports(tmp_path):
    episodes = [
        _held("teacher", True, 0.05),
        _held("teacher", True, -0.05),
        _held("teacher", False, 0.05),
        _held("naive", False, 0.001),
        _held("naive", False, 0.0, rise=0.0),
    ]
    counts = grasp_side_counts(episodes)
    assert counts["teacher"] == {
        "left": 2,
        "middle": 0,
        "right": 1,
        "nothing lifted": 0,
        "not recorded": 0,
    }
    assert counts["naive"]["middle"] == 1 and counts["naive"]["nothing lifted"] == 1
    write_reports(tmp_path, {"plan": {}}, episodes)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["grasp_sides"] == counts
    assert [e["grasp_side"] for e in results["episodes"]][:3] == ["left", "right", "left"]
    text = (tmp_path / "summary.md").read_text()
    assert "| teacher | 2 | 0 | 1 | 0 | 0 | 0.67 |" in text
    assert "| naive | 0 | 1 | 0 | 1 | 0 | - |" in text
    assert "grasp_side" in (tmp_path / "episodes.csv").read_text().splitlines()[0]


def test_no_grasp_table_when_no_episode_reports_where_it_held(tmp_path):
    write_reports(tmp_path, {"plan": {}}, [_episode("a", False, soup=(0.2, 0.0))])
    assert "Where the hand held" not in (tmp_path / "summary.md").read_text()
