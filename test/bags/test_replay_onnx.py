"""The bag gate with an exported student: the golden inputs replayed lock-step through the
policy node running the shipped LIBERO student (``libero:snapflow``, torch) and through one
running its ONNX export (``engine: onnxruntime``); ``compare`` gates the two outputs bags
chunk by chunk.

The golden bag (LIBERO renders at 64x64, LeRobot's 8-D state) fits the student's cameras and
state; its chunks were made by another policy, so the reference here is the torch student's
own replay. Lock-step replay re-seeds the node's noise before every observation: both nodes
draw the same noise for the same observation, and every chunk must agree within the export's
float32 budget.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from snapflow_ros.export.onnx_export import FLOAT32_EPS, ULP_BUDGET, export_policy
from snapflow_ros.policies import resolve_policy
from test.nodes.harness import NodeProcess, domain_id, ros_env

from .helpers import GOLDEN, GOLDEN_INPUTS, Run, run_cli

# The export's parity budget at unit scale (1024 float32 ulps, 1.2e-4), on the actions the
# node publishes. Both nodes get the same observation and the same noise per chunk, so the
# chunks differ only by the graphs' float rounding, which the export checked to stay within
# 1024 ulps of max(1, |output|) on the normalised chunk; un-normalising multiplies by the
# action std, below 1 in every dimension of this student (0.0036..0.95), and the node's limits
# keep |action| <= 1. Measured: 1.7e-6. A wrong graph is off by orders of magnitude more.
ACTION_TOL = ULP_BUDGET * FLOAT32_EPS


@contextmanager
def student_node(policy_path: Path, engine: str, tmp: Path, domain: int) -> Iterator[NodeProcess]:
    """The golden node's parameters with ``policy_path`` and ``engine``, on sim time, as a
    separate process; it must stop with exit code 0 and no traceback."""
    params = yaml.safe_load((GOLDEN / "policy_params.yaml").read_text())
    node = params["/**/policy_node"]["ros__parameters"]
    node.update({"policy_path": str(policy_path), "engine": engine})
    params_file = tmp / f"params_{engine}.yaml"
    params_file.write_text(yaml.safe_dump(params))
    proc = NodeProcess(params_file, domain, tmp / f"node_{engine}.log", ["use_sim_time:=true"])
    try:
        yield proc
    finally:
        rc = proc.stop()
        log = proc.log()
    assert rc == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def replay_through(policy_path: Path, engine: str, tmp: Path, domain: int) -> Path:
    """Replay the golden inputs lock-step through a student node; the outputs bag."""
    out = tmp / f"out_{engine}"
    with student_node(policy_path, engine, tmp, domain) as proc:
        run = run_cli(
            ["replay", str(GOLDEN_INPUTS), "-o", str(out), "--wait", "180"],
            env=ros_env(domain),
            timeout=400,
        )
        assert run.rc == 0, run.text + proc.log()[-2000:]
    return out


def compare(out: Path, ref: Path, *extra: str) -> tuple[Run, dict]:
    """``compare`` with a JSON report."""
    report = out.parent / f"{out.name}.json"
    run = run_cli(["compare", str(out), str(ref), "--report", str(report), *extra])
    assert report.exists(), run.text
    return run, json.loads(report.read_text())


@pytest.mark.numerics
def test_the_exported_student_passes_the_gate_against_the_torch_student(tmp_path):
    student = resolve_policy("libero:snapflow")
    export = tmp_path / "export"
    export_policy(student, export)
    torch_out = replay_through(student, "eager", tmp_path, domain_id(28))
    onnx_out = replay_through(export, "onnxruntime", tmp_path, domain_id(29))
    gate = ["--max-action-abs", repr(ACTION_TOL), "--max-missing", "0", "--max-extra", "0"]
    run, report = compare(onnx_out, torch_out, *gate)
    assert run.rc == 0, run.text
    max_abs = report["actions"]["overall"]["max_abs"]
    print(f"export vs torch student: max abs action difference {max_abs:.3g}, tol {ACTION_TOL:.3g}")
    assert report["chunks"]["matched"] == report["chunks"]["reference"] >= 20
    assert max_abs <= ACTION_TOL
    # the same gate catches a different policy: the golden chunks (the tiny SmolVLA) fail it
    run, _ = compare(onnx_out, GOLDEN / "outputs", *gate)
    assert run.rc == 1, run.text
