"""The CI-sized multimodal benchmark: dataset -> lerobot-train teacher -> distill -> report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from snapflow_training.bench_multimodal import MULTI_STEPS, BenchConfig, run


@pytest.mark.slow
def test_ci_benchmark_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "modes.json"
    result = run(BenchConfig(work=tmp_path / "work", size="ci", seeds=[0]), out)
    saved = json.loads(out.read_text())
    assert saved["markdown"].startswith("| method | energy distance to teacher-10")
    assert saved["teacher_recipe"]["command"][1:3] == ["-m", "lerobot.scripts.lerobot_train"]
    assert saved["budget"]["distill_steps"] == 30 and saved["seeds"] == [0]
    (row,) = result["rows"]
    methods = row["methods"]
    assert list(methods) == [
        "teacher_second_noise",
        "teacher_10_steps",
        "teacher_2_steps",
        "teacher_1_step",
        "snapflow_1_step",
    ]
    assert row["floor"] > 0 and methods["teacher_second_noise"]["energy"] == row["floor"]
    for name, m in methods.items():
        assert 0 <= m["commit_hidden"] <= 1 and 0 <= m["right_sign_visible"] <= 1, name
        assert 0 <= m["plus_hidden"] <= m["commit_hidden"], name  # a part of the committed draws
        if name not in ("teacher_second_noise", "teacher_10_steps"):
            assert m["energy"] > 0 and m["same_noise_rms"] > 0, name
            assert math.isfinite(m["mse"])
    # two Euler steps land nearer the ten-step chunk than one (smooth velocity field)
    rms = {name: m.get("same_noise_rms") for name, m in methods.items()}
    assert rms["teacher_2_steps"] < rms["teacher_1_step"]
    assert set(row["multi_step"]) == {
        f"{n}_{kind}" for n in MULTI_STEPS for kind in ("any", "trained", "instant")
    }
    # the default recursive objective trains 1/2 and 1/4 but not 1/3 or 1/10
    assert row["multi_step"]["2_trained"] == row["multi_step"]["2_any"]
    assert row["multi_step"]["4_trained"] == row["multi_step"]["4_any"]
    assert row["multi_step"]["10_trained"] == row["multi_step"]["10_instant"]
    assert row["multi_step"]["3_trained"] == row["multi_step"]["3_instant"]
