"""The node-overhead benchmark (snapflow_ros.bench.node_overhead) end to end, a short run:
bare runtime, then the policy node over DDS, and the overhead table."""

from __future__ import annotations

import json
import subprocess
import sys

from ..nodes.harness import domain_id, tool_env_with_cache


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
        env=tool_env_with_cache(tiny_cache, tmp_path, domain_id(5)),
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
