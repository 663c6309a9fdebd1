"""The node-overhead benchmark (snapflow_ros.bench.node_overhead) end to end, a short run:
bare runtime, then the policy node over DDS, and the overhead table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ..nodes.harness import domain_id, ros_env


def _env_with_cache(tiny_cache: Path, tmp_path: Path, domain: int) -> dict[str, str]:
    """Reuse the session's tiny checkpoints through $SNAPFLOW_CACHE/tiny."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tiny").symlink_to(tiny_cache)
    env = ros_env(domain)
    env.pop("ROS_DOMAIN_ID")  # the benchmark isolates DDS itself
    env["SNAPFLOW_CACHE"] = str(cache)
    return env


def test_node_overhead_benchmark_smoke(tiny_smolvla_dir, tiny_cache, tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snapflow_ros.bench.node_overhead",
            "--duration",
            "3",
            "--repeats",
            "5",
            "--out",
            str(out),
        ],
        env=_env_with_cache(tiny_cache, tmp_path, domain_id(5)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    assert "| **overhead = in + internal + out** |" in text
    result = json.loads(out.read_text())
    node = result["node"]
    assert node["exit_code"] == 0 and node["chunks"] > 0 and node["commands"] > 0
    assert node["overhead_ms"]["n"] == node["chunks"]
