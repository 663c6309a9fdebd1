"""``scripts/closed_loop_probe.py``: one policy drives LIBERO, others are asked on the same
observations (a real run with the embedded tiny LIBERO policy, and the summary's arithmetic)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "closed_loop_probe.py"


def _load():
    spec = importlib.util.spec_from_file_location("closed_loop_probe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


probe = _load()


def test_policy_specs_name_a_path_and_a_step_count():
    spec = probe.parse_spec("student=/m/s:1")
    assert (spec.name, spec.path, spec.steps) == ("student", "/m/s", 1)
    assert probe.parse_spec("libero:teacher:10").path == "libero:teacher"
    for bad in ("/m/s", "/m/s:0", "x=/m/s:ten"):
        with pytest.raises(argparse.ArgumentTypeError, match="PATH:STEPS"):
            probe.parse_spec(bad)


def test_gripper_disagreement_is_against_the_references_majority_per_action():
    def boundary(ref: list[list[float]], other: list[list[float]]) -> dict:
        mean = [[0.0] * 7, [0.0] * 7]
        return {
            "reference": {"gripper": ref, "mean": mean},
            "p": {"gripper": other, "mean": [[0.3, 0.4, 0.0, 0, 0, 0, 0], [0.0] * 7]},
        }

    rows = [
        {
            "reason": "success",
            "boundaries": [
                boundary([[-1, -1], [-1, -0.5]], [[-1, 1], [-1, -1]]),  # open: 1 of 4 differ
                boundary([[1, 1], [1, 1]], [[1, 1], [-1, -1]]),  # closes: 2 of 4 differ
            ],
        },
        {"reason": "max_steps", "boundaries": []},
    ]
    out = probe.summarise(rows, ["p"])
    assert (out["success"], out["scenes"]) == (1, 2)
    assert out["p.before_close.gripper_disagreement"] == pytest.approx(0.25)
    assert out["p.after_close.gripper_disagreement"] == pytest.approx(0.5)
    assert out["p.before_close.xyz_distance"] == pytest.approx(0.5)
    assert (out["p.before_close.boundaries"], out["p.after_close.boundaries"]) == (1, 1)


def test_side_split_is_where_the_draws_would_bring_the_hand_relative_to_the_object():
    def at(hand_y: float, ys: list[float]) -> dict:
        return {
            "eef_pos": [0.0, hand_y, 1.0],
            "object_pos": {"bowl": [0.0, 0.1, 0.9]},
            "reference": {"net_xyz": [[0.0, y, 0.0] for y in ys]},
        }

    # 0.05 m per unit: from 0.1 (over the bowl) +-1 unit goes 5 cm to either side
    rows = [
        {"boundaries": [at(-0.1, [1.0, 1.0, 1.0, 1.0]), at(0.1, [1.0, -1.0, 1.0, -0.5])]},
        {"boundaries": [at(-0.1, [2.0, 3.0, 1.0, 1.0])]},  # ended after one chunk
    ]
    first, second, third = probe.side_split_by_chunk(rows, "bowl", chunks=3)
    # far to the right, moving left by 5-15 cm: every draw stays on the right side
    assert first == {
        "chunk": 0, "scenes": 2, "minority_share": 0.0, "scenes_split": 0,
        "hand_object_y_m": pytest.approx(0.2),
    }  # fmt: skip
    assert second["scenes"] == 1 and second["minority_share"] == 0.5  # over it: 2 and 2
    assert second["scenes_split"] == 1 and second["hand_object_y_m"] == pytest.approx(0.0)
    assert third["scenes"] == 0 and third["minority_share"] != third["minority_share"]  # NaN


def test_a_tiny_policy_drives_two_scenes_and_is_asked_again(tmp_path):
    out = tmp_path / "probe"
    probe.main(
        [
            "--driver", "tiny:libero:1", "--reference", "tiny:libero:2",
            "--probe", "again=tiny:libero:1", "--scenes", "benchmark:3,5", "--count", "2",
            "--draws", "2", "--max-steps", "12", "--out", str(out),
        ]
    )  # fmt: skip
    rows = json.loads((out / "probe.json").read_text())["rows"]
    assert [r["scene"] for r in rows] == ["benchmark:3", "benchmark:5"]
    assert all(r["steps"] == 12 and r["reason"] == "max_steps" for r in rows)
    first = rows[0]["boundaries"][0]
    assert first["step"] == 0 and len(first["reference"]["gripper"]) == 2  # two draws
    assert len(first["driver"]["gripper"]) == 1 and len(first["again"]["mean"][0]) == 7
    assert rows[0]["boundaries"][1]["step"] > 0  # the next chunk came from a later observation
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenes"] == 2 and "again.before_close.gripper_disagreement" in summary
    assert len(first["reference"]["net_xyz"]) == 2 and len(first["reference"]["net_xyz"][0]) == 3
    assert "reference.side_split_by_chunk" not in summary  # only with --side-object
