"""``libero_eval`` on an ONNX export of the shipped student, against the student itself.

The shipped LIBERO student (``libero:snapflow``) is exported with ``snapflow_export`` into the
test's folder; one ``libero_eval`` run then drives one benchmark initial state of
libero_object task 0 through the real bridge and policy node with the torch student and with
the export (which libero_eval runs with ``engine: onnxruntime`` by itself), both with the
same noise seed, and a 2-step configuration of the torch student that shows what a real
difference in the actions does to the same episode. Wrong engine / folder combinations are
refused before anything starts (exit 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from snapflow_ros.eval.libero_eval import EXPORT_MANIFEST, main
from snapflow_ros.runtime import onnx_format
from test.nodes.harness import domain_id

STEPS = 30  # 3 chunks of the student's 10 actions
INIT = 5  # the benchmark initial state
# Largest accepted difference between the two episodes' final LeRobot states (eef position
# in m, axis-angle in rad, gripper finger positions in m). Per-step actions are not in
# libero_eval's records, so the episodes are compared where they end. The export passed its
# parity check (every graph within 1024 float32 ulps of the torch engine; about 1e-6 on this
# student's normalised chunk), so the first chunk's actions differ by about 1e-6. In closed
# loop the end effector then ends up a little elsewhere, the next renders differ in a few
# uint8 pixels, and later chunks by more than float rounding: measured here 2.1e-5 after 30
# steps. A policy that really acts differently (the same student at 2 steps) ends 8.4e-3
# away. 5e-4 (half a millimetre) is 24x the first and 17x below the second; the test asserts
# both sides, so the bound tells the two cases apart.
FINAL_STATE_TOL = 5e-4


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    """``snapflow_export libero:snapflow OUT``, as a user would run it."""
    out = tmp_path_factory.mktemp("onnx_eval") / "snapflow_onnx"
    exe = Path(sys.executable).parent / "snapflow_export"
    done = subprocess.run(
        [str(exe), "libero:snapflow", str(out)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "one_step.onnx").is_file()
    return out


def test_the_export_manifest_name_is_the_runtimes():
    # libero_eval may not import the runtime (layer rules): it keeps the name itself
    assert EXPORT_MANIFEST == onnx_format.MANIFEST


def test_wrong_engine_and_folder_combinations_exit_2(export_dir, capsys):
    assert main(["--config", f"x={export_dir}", "--policy-arg", "engine:=fast"]) == 2
    err = capsys.readouterr().err
    assert f"--config x: {export_dir} is an ONNX export, which only engine 'onnxruntime'" in err
    assert "engine is set to 'fast'" in err
    assert main(["--config", "t=libero:snapflow", "--policy-arg", "engine:=onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert "--config t: libero:snapflow is not an ONNX export" in err
    assert "snapflow_export libero:snapflow OUT" in err


@pytest.mark.numerics
def test_the_export_replays_the_students_episode(export_dir, tmp_path):
    out = tmp_path / "eval"
    cmd = [
        str(Path(sys.executable).parent / "libero_eval"),
        "--suites", "libero_object", "--tasks", "0", "--episodes", "1",
        "--init-offset", str(INIT), "--noise-seed", "0",
        "--config", "torch=libero:snapflow", "--config", f"onnx={export_dir}",
        "--config", "torch2=libero:snapflow,2",
        "--max-steps", str(STEPS), "--image-size", "64", "--fast-render",
        "--out", str(out), "--domain-id", str(domain_id(38)), "--namespace", f"/ox{os.getpid()}",
        "--policy-arg", "torch_threads:=1", "--startup-timeout", "300",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    logs = "\n".join(p.read_text()[-3000:] for p in (out / "logs").glob("*.log"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + logs
    results = json.loads((out / "results.json").read_text())
    engines = {c["name"]: c["engine"] for c in results["plan"]["configs"]}
    assert engines == {"torch": "eager", "onnx": "onnxruntime", "torch2": "eager"}
    eps = {e["config"]: e for e in results["episodes"]}
    assert sorted(eps) == ["onnx", "torch", "torch2"]
    torch_ep, onnx_ep = eps["torch"], eps["onnx"]
    for e in eps.values():  # every episode ran its steps through the node, nothing refused
        assert e["init_state_index"] == INIT and e["noise_seed"] == INIT
        assert e["steps"] == STEPS and e["chunks"] == STEPS // 10 and e["rejected_commands"] == 0
    assert onnx_ep["engine"] == "onnxruntime" and onnx_ep["chunk_num_steps"] == [1]
    assert torch_ep["chunk_num_steps"] == [1] and eps["torch2"]["chunk_num_steps"] == [2]
    # the node ran the export in ONNX Runtime (its log names the loaded folder)
    assert str(export_dir) in (out / "logs" / "policy_node_1.log").read_text()
    for key in ("steps", "success", "reason", "commands"):
        assert onnx_ep[key] == torch_ep[key], key
    final_torch = np.array(torch_ep["final_state"])
    diff = np.abs(np.array(onnx_ep["final_state"]) - final_torch).max()
    other = np.abs(np.array(eps["torch2"]["final_state"]) - final_torch).max()
    print(f"final state: export vs torch {diff:.3g}, 2 steps vs 1 step {other:.3g}")
    assert diff <= FINAL_STATE_TOL, (onnx_ep["final_state"], torch_ep["final_state"])
    assert other > 4 * FINAL_STATE_TOL  # the bound tells a different policy apart
    assert onnx_ep["objects"].keys() == torch_ep["objects"].keys()
    for name, obj in torch_ep["objects"].items():
        np.testing.assert_allclose(
            onnx_ep["objects"][name]["max_rise_m"], obj["max_rise_m"], rtol=0, atol=1e-4
        )
