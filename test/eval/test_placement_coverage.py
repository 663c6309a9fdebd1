"""``scripts/placement_coverage.py``: benchmark scenes against demonstration scenes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "placement_coverage.py"


def _load():
    spec = importlib.util.spec_from_file_location("placement_coverage", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


coverage = _load()


def test_nearest_scene_distances_exclude_the_scene_itself():
    pool = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    assert coverage.nearest(pool, pool).tolist() == [0.0, 0.0, 0.0]
    assert coverage.nearest(pool, pool, exclude_self=True).tolist() == [1.0, np.sqrt(18), 1.0]


def test_successes_are_joined_per_benchmark_state_of_the_task():
    def ep(config, index, success, source="benchmark", task=0):
        return {
            "config": config,
            "suite": "libero_object",
            "task_index": task,
            "init_states": source,
            "init_state_index": index,
            "success": success,
        }

    run = {
        "episodes": [
            ep("a", 0, True),
            ep("b", 0, False),
            ep("a", 1, True),
            ep("a", 0, False, source="fresh"),
            ep("a", 2, False, task=1),
        ]
    }
    assert coverage.successes(run, "libero_object", 0) == {0: [True, False], 1: [True]}


def test_a_results_path_that_is_no_evaluation_is_refused_before_the_simulator(tmp_path, capsys):
    data = tmp_path / "demos"
    (data / "meta").mkdir(parents=True)
    (data / "meta/snapflow_demos.json").write_text(
        json.dumps({"spec": {"suite": "libero_object", "task_index": 0}})
    )
    (data / "meta/snapflow_episodes.jsonl").write_text('{"episode_index": 0, "seed": 7}\n')
    out = tmp_path / "o.json"
    assert coverage.main([str(data), "--results", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not out.exists()


def test_a_folder_that_is_no_demonstration_dataset_is_refused(tmp_path, capsys):
    assert coverage.main([str(tmp_path), "--out", str(tmp_path / "o.json")]) == 2
    assert "not a demonstration dataset" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_a_real_run_measures_scenes_of_both_sets(tmp_path):
    data = tmp_path / "demos"
    (data / "meta").mkdir(parents=True)
    spec = {"suite": "libero_object", "task_index": 0}
    (data / "meta/snapflow_demos.json").write_text(json.dumps({"spec": spec}))
    (data / "meta/snapflow_episodes.jsonl").write_text(
        "".join(json.dumps({"episode_index": i, "seed": s}) + "\n" for i, s in enumerate([7, 8]))
    )
    out = tmp_path / "coverage.json"
    assert coverage.main([str(data), "--states", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert "basket_1" in result["objects"]
    assert len(result["benchmark_to_nearest_demo_mm"]) == 2
    assert len(result["demo_to_nearest_demo_mm"]) == 2
    # two different placements of the basket: the nearest other scene is not the scene itself
    assert all(d > 0 for d in result["demo_to_nearest_demo_mm"])
