"""Evaluation reports: how failed episodes failed, from the bridge's object motion."""

from __future__ import annotations

import json
from typing import Any

import pytest

from snapflow_ros.eval.report import LIFT_M, outcome, outcome_counts, write_reports


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
