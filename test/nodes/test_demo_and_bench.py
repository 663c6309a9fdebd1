"""`snapflow_demo` end to end (a short run); the node-overhead benchmark's smoke test is in
test/bench/test_node_overhead_smoke.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .harness import domain_id, tool_env_with_cache


def test_snapflow_demo_runs_and_exits_cleanly(tiny_smolvla_dir, tiny_cache, tmp_path):
    out = tmp_path / "demo.json"
    exe = Path(sys.executable).parent / "snapflow_demo"
    proc = subprocess.run(
        [str(exe), "--duration", "6", "--domain-id", str(domain_id(4)), "--json", str(out)],
        env=tool_env_with_cache(tiny_cache, tmp_path, domain_id(4)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    assert "| steps |" in text and "snapflow_demo OK" in text
    assert "Traceback" not in text
    result = json.loads(out.read_text())
    assert result["policy_node_exit"] == 0 and result["synthetic_source_exit"] == 0
    phases = result["phases"]
    assert [p["steps"] for p in phases] == [10, 1]  # checkpoint default, then the A/B switch
    assert all(p["chunks"] > 0 and p["commands"] > 0 for p in phases)
