"""The LIBERO benchmark's simulator part, at a tiny size and few steps."""

from __future__ import annotations

import pytest

from snapflow_ros.bench.libero_sim import bench_steps, markdown

STEPS = 5


@pytest.mark.slow
@pytest.mark.timing
def test_step_times_with_and_without_rendering():
    rows = bench_steps([32], steps=STEPS)
    by_variant = {r["variant"]: r for r in rows}
    assert sorted(by_variant) == ["no render", "render", "render, fast"]
    assert all(r["n"] == STEPS and r["median_s"] > 0 and r["size"] == 32 for r in rows)
    # two cameras cost several times the physics step (about 90 ms vs 7.5-19 ms here);
    # medians: up to two stalled steps of five change nothing
    assert by_variant["no render"]["median_s"] < by_variant["render"]["median_s"], rows
    text = markdown(
        {
            "machine": {"cpu": "test cpu", "cpu_count": 2},
            "gl_backend": "egl",
            "steps": rows,
            "lockstep": [],
        }
    )
    assert "| 32x32 | no render |" in text and "test cpu" in text
