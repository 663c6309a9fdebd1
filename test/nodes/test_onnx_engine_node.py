"""The policy node with ``engine: onnxruntime`` on an exported tiny SnapFlow policy.

The node runs in this process (its own rclpy Context, real DDS to a :class:`Harness`), loads
the export folder given as ``policy_path`` and publishes chunks and commands computed by ONNX
Runtime; a LeRobot checkpoint given to the same engine is refused at configure with the
runtime's message.
"""

from __future__ import annotations

import numpy as np
import pytest

from snapflow_ros.export.onnx_export import export_policy
from snapflow_ros.runtime import PolicyRuntime, RuntimeOptions
from snapflow_ros.runtime.onnx_engine import OnnxPolicyRuntime

from ..runtime.helpers import make_snapflow_copy
from .harness import InProcessNode, active_in_process_node, domain_id, node_parameters, wait_for

DOMAIN = domain_id(51)
RATE = 20.0
HORIZON, ACTION_DIM = 10, 7  # the tiny policy's chunk


def _overrides(policy_path: str) -> dict:
    return {
        "policy_path": policy_path,
        "engine": "onnxruntime",
        "control_rate": RATE,
        "torch_threads": 1,
        "input_timeout": 1.0,
        "status_rate": 4.0,
        "limits.max_delta": [],
        "task.text": "pick up the red cube",
    }


@pytest.fixture(scope="module")
def exported(tiny_smolvla_dir, tmp_path_factory):
    """A SnapFlow copy of the tiny SmolVLA and its ONNX export folder."""
    root = tmp_path_factory.mktemp("onnx_node")
    plain = PolicyRuntime(tiny_smolvla_dir, RuntimeOptions(device="cpu", warmup=0))
    snap = make_snapflow_copy(plain, tiny_smolvla_dir, root / "snap", scale=0.5)
    export_policy(snap, root / "export")
    return root / "export"


def test_node_runs_an_export_with_engine_onnxruntime(exported):
    with active_in_process_node(DOMAIN, _overrides(str(exported))) as (harness, node):
        harness.start_feed()
        harness.wait_matched(120)
        commands = harness.wait_commands(5, timeout=120)
        runtime = node.controller.session.runtime
        assert isinstance(runtime, OnnxPolicyRuntime)
        assert runtime.default_num_steps == 1 and runtime.graphs.has_one_step
        report = wait_for(
            lambda: (r := harness.latest_report()).policy and r, 20, "a status with the policy"
        )
        assert report.policy["engine"] == "onnxruntime"
        assert report.policy["providers"] == ["CPUExecutionProvider"]
        wait_for(lambda: harness.snapshot(harness.chunks), 60, "a published chunk")
        for chunk in harness.snapshot(harness.chunks):
            actions = np.array([list(p.positions) for p in chunk.msg.points])
            assert actions.shape == (HORIZON, ACTION_DIM) and np.all(np.isfinite(actions))
        assert all(np.all(np.isfinite(c.msg.position)) for c in commands)


def test_engine_onnxruntime_refuses_a_checkpoint_at_configure(tiny_smolvla_dir):
    proc = InProcessNode(DOMAIN, node_parameters(_overrides(str(tiny_smolvla_dir))))
    try:
        proc.node.autostart()
        assert proc.node.state_label != "active"
        error = proc.node.report().configure_error
        assert "is not an ONNX export" in error and "snapflow_export" in error
    finally:
        proc.close()
