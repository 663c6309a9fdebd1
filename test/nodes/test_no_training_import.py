"""The policy node and the runtime run a distilled checkpoint without the training code
(``snapflow_training``): README, "Layout"."""

from __future__ import annotations

import subprocess
import sys


def test_the_shipped_student_runs_with_the_training_code_unimportable():
    code = (
        "import sys\n"
        "sys.modules['snapflow_training'] = None  # any import of it raises ImportError\n"
        "import snapflow_ros.nodes.policy_node\n"
        "from snapflow_ros.policies import resolve_policy\n"
        "from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions\n"
        "path = resolve_policy('libero:snapflow')\n"
        "rt = PolicyRuntime(path, RuntimeOptions(device='cpu', warmup=0))\n"
        "assert rt.is_snapflow and rt.default_num_steps == 1\n"
        "chunk = rt.predict_chunk(rt.dummy_observation())\n"
        "print('OK', chunk.actions.shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith("OK (10, 7)"), result.stdout
