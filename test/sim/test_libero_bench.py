"""The LIBERO benchmark's simulator part, at a tiny size and few steps."""

from __future__ import annotations

from snapflow_ros.bench.libero_sim import bench_steps, markdown


def test_step_times_with_and_without_rendering():
    rows = bench_steps([32], steps=3)
    by_variant = {r["variant"]: r for r in rows}
    assert sorted(by_variant) == ["no render", "render", "render, fast"]
    assert all(r["n"] == 3 and r["mean_s"] > 0 and r["size"] == 32 for r in rows)
    assert by_variant["no render"]["mean_s"] < by_variant["render"]["mean_s"]
    text = markdown(
        {
            "machine": {"cpu": "test cpu", "cpu_count": 2},
            "gl_backend": "egl",
            "steps": rows,
            "lockstep": [],
        }
    )
    assert "| 32x32 | no render |" in text and "test cpu" in text
