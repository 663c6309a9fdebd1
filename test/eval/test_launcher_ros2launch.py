"""``libero_eval --launcher ros2launch``: the bridge and the policy node started through
``ros2 launch snapflow_ros libero_eval.launch.py`` (one launch per node), one short episode.

Needs ROS 2's launch tools (``launch_ros`` importable, ``ros2`` on PATH): they are not on
PyPI, so this is skipped where they are missing. The launch file and configs under test are
the working tree's (an install prefix laid out like colcon's is put first on
AMENT_PREFIX_PATH), the executables the venv's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from snapflow_ros.policies import libero_tiny_spec
from snapflow_ros.policies.tiny import ensure_tiny_checkpoint
from test.nodes.harness import domain_id
from test.nodes.test_launch_and_config import fake_prefix

STEPS = 6

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("launch_ros") is None or shutil.which("ros2") is None,
    reason="needs ROS 2's launch tools (launch_ros importable and `ros2` on PATH; not on PyPI)",
)


def test_eval_runs_both_nodes_through_ros2_launch(tmp_path, tiny_cache):
    ckpt = ensure_tiny_checkpoint(libero_tiny_spec("smolvla"), tiny_cache)
    prefix = fake_prefix(tmp_path / "install")
    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(
        [str(prefix), *filter(None, [env.get("AMENT_PREFIX_PATH")])]
    )
    out = tmp_path / "eval"
    cmd = [
        str(Path(sys.executable).parent / "libero_eval"),
        "--launcher",
        "ros2launch",
        "--suites",
        "libero_spatial",
        "--tasks",
        "0",
        "--episodes",
        "1",
        "--config",
        f"a={ckpt},1",
        "--max-steps",
        str(STEPS),
        "--image-size",
        "64",
        "--fast-render",
        "--out",
        str(out),
        "--domain-id",
        str(domain_id(24)),
        "--namespace",
        f"/rl{os.getpid()}",
        "--policy-arg",
        "torch_threads:=1",
        "--startup-timeout",
        "300",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    logs = {p.name: p.read_text() for p in (out / "logs").glob("*.log")}
    tails = "\n".join(f"--- {name}\n{text[-3000:]}" for name, text in logs.items())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + tails
    (episode,) = json.loads((out / "results.json").read_text())["episodes"]
    assert (episode["config"], episode["steps"], episode["reason"]) == ("a", STEPS, "max_steps")
    assert episode["chunk_num_steps"] == [1] and episode["rejected_commands"] == 0
    # both nodes went through launch: its log lines, a clean exit on SIGINT, no traceback
    launched = [text for text in logs.values() if "[INFO] [launch]" in text]
    assert len(launched) == 2, tails
    for text in launched:
        assert "process started with pid" in text and "[ERROR]" not in text, tails
        assert "Traceback" not in text, tails
    assert any("[libero_bridge-1]" in t for t in launched), tails
    assert any("[policy_node-1]" in t for t in launched), tails
