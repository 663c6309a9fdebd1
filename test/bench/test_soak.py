"""The soak benchmark end to end, shortened: it runs, the node survives every bad-input class,
no non-finite command goes out, and bad inputs show as unhealthy windows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from snapflow_ros.bench.soak import BAD_INPUTS


@pytest.mark.ros
@pytest.mark.slow
def test_short_soak_runs_every_bad_input_class(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    cycle = 4.0
    bad = cycle * len(BAD_INPUTS)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snapflow_ros.bench.soak",
            "--good",
            "4",
            "--bad",
            str(bad),
            "--cycle",
            str(cycle),
            "--window",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["node_alive_at_end"]
    summary = result["summary"]
    assert set(summary) == {"good", "recovery", *BAD_INPUTS}
    assert all(s["nonfinite_commands"] == 0 for s in summary.values())
    assert summary["good"]["command_rate_hz_mean"] > 0
    # Malformed input holds: the status reports of those windows are not all healthy.
    for name in ("nan_joint", "duplicate_joint", "future_stamp", "huge_task"):
        healthy = summary[name]["healthy_fraction"]
        assert healthy is not None and healthy < 1.0, (name, summary[name])
    assert out.with_suffix(".png").stat().st_size > 0
