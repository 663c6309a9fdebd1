"""libero_eval_merge: split evaluations joined into one report, and inputs that must not join."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from snapflow_ros.eval.merge import main
from snapflow_ros.eval.results import initial_states_line, mcnemar_p, write_reports

PLAN = {
    "image_size": 64,
    "fast_render": False,
    "mode": "lockstep",
    "max_steps": 0,
    "init_states": "benchmark",
    "seed": 0,
}


def _episode(config: str, path: str, steps: int, init: int, success: bool) -> dict[str, Any]:
    return {
        "config": config,
        "policy_path": path,
        "num_steps": steps,
        "suite": "libero_object",
        "task_index": 0,
        "task": "pick up the alphabet soup and place it in the basket",
        "init_state_index": init,
        "init_states": "benchmark",
        "success": success,
        "steps": 120 if success else 280,
        "steps_per_s": 6.0,
        "inference_s": [0.010 * (init + 1), 0.020],
    }


def _run(folder: Path, episodes: list[dict[str, Any]], **plan: Any) -> Path:
    configs = list(dict.fromkeys((e["config"], e["policy_path"], e["num_steps"]) for e in episodes))
    meta = {
        "plan": {
            **PLAN,
            **plan,
            "configs": [{"name": n, "policy_path": p, "num_steps": s} for n, p, s in configs],
        },
        "machine": {"cpu": "test"},
        "finished": "2026-11-27T20:00:00",
    }
    write_reports(folder, meta, episodes)
    return folder


def test_split_runs_merge_into_one_table(tmp_path, capsys):
    a = _run(
        tmp_path / "a",
        [_episode("student", "/m/s", 1, i, i % 2 == 0) for i in (2, 3)]
        + [_episode("teacher10", "/m/t", 10, i, True) for i in (2, 3)],
    )
    b = _run(tmp_path / "b", [_episode("student", "/m/s", 1, i, True) for i in (0, 1)])
    assert main([str(a), str(b / "results.json"), "--out", str(tmp_path / "m")]) == 0
    merged = json.loads((tmp_path / "m" / "results.json").read_text())
    student = [e for e in merged["episodes"] if e["config"] == "student"]
    assert [e["init_state_index"] for e in student] == [0, 1, 2, 3]
    total = next(r for r in merged["summary"] if r["config"] == "student" and r["suite"] == "all")
    assert (total["episodes"], total["successes"]) == (4, 3)
    # latency percentiles come from all merged chunks, not from per-run summaries
    assert total["latency_p50_ms"] == pytest.approx(20.0)
    assert merged["plan"]["init_state_indices"] == {"student": [0, 1, 2, 3], "teacher10": [2, 3]}
    assert len(merged["plan"]["merged_from"]) == 2
    text = (tmp_path / "m" / "summary.md").read_text()
    assert "student: 0..3; teacher10: 2..3" in text
    assert "3/4 (75%)" in text and "2/2 (100%)" in text
    assert "6 episodes from 2 runs" in capsys.readouterr().out


def test_initial_states_line_of_a_merged_plan():
    plan = {"init_state_indices": {"a": [0, 1, 2, 5], "b": [0, 1, 2, 5]}}
    assert initial_states_line(plan) == (
        "Initial states: the benchmark's initial states 0..2, 5 of each task."
    )


@pytest.mark.parametrize(
    "second, message",
    [
        ([_episode("student", "/m/other", 1, 5, True)], "configuration 'student' is /m/other"),
        ([_episode("student", "/m/s", 2, 5, True)], "with num_steps 2"),
        ([_episode("student", "/m/s", 1, 0, True)], "init 0 is also in"),
    ],
)
def test_runs_that_do_not_compare_are_refused(tmp_path, capsys, second, message):
    a = _run(tmp_path / "a", [_episode("student", "/m/s", 1, 0, True)])
    b = _run(tmp_path / "b", second)
    assert main([str(a), str(b), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_different_settings_are_refused(tmp_path, capsys):
    a = _run(tmp_path / "a", [_episode("student", "/m/s", 1, 0, True)])
    b = _run(tmp_path / "b", [_episode("student", "/m/s", 1, 1, True)], image_size=128)
    assert main([str(a), str(b), "--out", str(tmp_path / "m")]) == 2
    assert "image_size 128 differs from 64" in capsys.readouterr().err


def test_fresh_placements_merge_only_with_the_same_seed(tmp_path, capsys):
    fresh = {"init_states": "fresh"}
    a = _run(tmp_path / "a", [_episode("student", "/m/s", 1, 0, True)], **fresh, seed=3)
    b = _run(tmp_path / "b", [_episode("student", "/m/s", 1, 1, True)], **fresh, seed=4)
    c = _run(tmp_path / "c", [_episode("student", "/m/s", 1, 1, False)], **fresh, seed=3)
    assert main([str(a), str(b), "--out", str(tmp_path / "m")]) == 2
    assert "seed 4 differs from 3" in capsys.readouterr().err
    assert main([str(a), str(c), "--out", str(tmp_path / "m")]) == 0
    assert "fresh object placements 0..1" in (tmp_path / "m" / "summary.md").read_text()


def test_fresh_placements_drawn_another_way_do_not_merge(tmp_path, capsys):
    """Runs from before thrown placements were redrawn (no ``placements``) are other scenes."""
    old = {"init_states": "fresh", "seed": 3}
    new = {**old, "placements": "settled"}
    a = _run(tmp_path / "a", [_episode("student", "/m/s", 1, 0, True)], **new)
    b = _run(tmp_path / "b", [_episode("student", "/m/s", 1, 1, True)], **old)
    assert main([str(a), str(b), "--out", str(tmp_path / "m")]) == 2
    assert "placements None differs from 'settled'" in capsys.readouterr().err
    c = _run(tmp_path / "c", [_episode("student", "/m/s", 1, 1, False)], **new)
    assert main([str(a), str(c), "--out", str(tmp_path / "m")]) == 0
    assert "is redrawn" in (tmp_path / "m" / "summary.md").read_text()


def test_runs_with_other_noise_seeds_are_more_pairs_of_the_same_states(tmp_path, capsys):
    """Two --noise-seed runs on states 0-1: four pairs; the same noise seed twice is refused."""

    def run(name: str, base: int, student: list[bool], teacher: list[bool]) -> Path:
        eps = [
            {**_episode(c, p, k, i, w), "noise_seed": base + i}
            for c, p, k, wins in (
                ("teacher10", "/m/t", 10, teacher),
                ("student", "/m/s", 1, student),
            )
            for i, w in enumerate(wins)
        ]
        return _run(tmp_path / name, eps, noise_seed=base)

    a = run("a", 0, [True, False], [False, False])
    b = run("b", 100, [True, True], [True, False])
    out = tmp_path / "m"
    assert main([str(a), str(b), "--out", str(out), "--configs", "teacher10"]) == 0
    (row,) = json.loads((out / "results.json").read_text())["paired"]
    assert row["pairs"] == 4 and (row["only_reference"], row["only_config"]) == (0, 2)
    assert "| student | /m/s | 1 | 4 | 3/4 (75%) |" in (out / "summary.md").read_text()
    again = run("c", 0, [True, True], [True, True])
    assert main([str(a), str(again), "--out", str(tmp_path / "n")]) == 2
    assert "init 0 is also in" in capsys.readouterr().err


def test_unreadable_inputs_give_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main([str(bad), "--out", str(tmp_path / "m")]) == 2
    assert "not a readable results.json" in capsys.readouterr().err
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "m")]) == 2
    assert "no such file" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"episodes": 3}))
    assert main([str(other), "--out", str(tmp_path / "m")]) == 2
    assert "no 'episodes' list" in capsys.readouterr().err


def test_paired_outcomes_against_the_reference_config(tmp_path, capsys):
    """teacher10 first (--configs): the student is paired with it state by state."""
    wins_teacher = {0: True, 1: True, 2: True, 3: False, 4: True}
    wins_student = {0: True, 1: False, 2: False, 3: True, 4: True}
    a = _run(
        tmp_path / "a", [_episode("student", "/m/s", 1, i, w) for i, w in wins_student.items()]
    )
    b = _run(
        tmp_path / "b", [_episode("teacher10", "/m/t", 10, i, w) for i, w in wins_teacher.items()]
    )
    out = tmp_path / "m"
    assert main([str(a), str(b), "--out", str(out), "--configs", "teacher10"]) == 0
    merged = json.loads((out / "results.json").read_text())
    assert merged["episodes"][0]["config"] == "teacher10"
    (row,) = merged["paired"]
    assert (row["reference"], row["config"], row["pairs"]) == ("teacher10", "student", 5)
    assert (row["both"], row["only_reference"], row["only_config"], row["neither"]) == (2, 2, 1, 0)
    assert row["mcnemar_p"] == pytest.approx(1.0)  # 2 vs 1 discordant: no evidence either way
    text = (out / "summary.md").read_text()
    assert "| student | 5 | 2 | 2 | 1 | 0 | 1.00 |" in text
    assert main([str(a), str(b), "--out", str(out), "--configs", "teacher1"]) == 2
    assert "--configs: ['teacher1'] not in the runs" in capsys.readouterr().err


def test_mcnemar_exact_p_values():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(3, 0) == pytest.approx(0.25)  # 2 * (1/2)^3
    assert mcnemar_p(1, 6) == pytest.approx(2 * 8 / 128)
    assert mcnemar_p(0, 6) == mcnemar_p(6, 0) == pytest.approx(2 / 64)
    assert mcnemar_p(5, 5) == 1.0
