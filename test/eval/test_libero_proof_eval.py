"""The proof script's ``eval`` stage: five configurations as two runs side by side, merged.

Runs ``scripts/libero_proof.sh eval`` on the shipped teacher and student (one initial state, a
few steps) so that the stage's shell, the two ROS domains and ``libero_eval_merge`` are
exercised as ``make libero-proof`` uses them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test.nodes.harness import domain_id

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "libero_proof.sh"
MODELS = REPO / "snapflow_ros" / "models" / "libero_object_t0"
DOMAIN = domain_id(36, span=2)  # the script runs on DOMAIN and DOMAIN + 1
CONFIGS = ["teacher10", "teacher2", "teacher1", "snapflow1", "snapflow2"]


def _env(work: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(VENV=str(Path(sys.executable).parent.parent), WORK=str(work), **extra)
    env.pop("ROS_DOMAIN_ID", None)
    return env


@pytest.mark.slow
def test_eval_stage_runs_two_domains_and_merges(tmp_path):
    work = tmp_path / "proof"
    (work / "teacher").mkdir(parents=True)
    (work / "snapflow").mkdir()
    (work / "teacher" / "teacher").symlink_to(MODELS / "teacher")
    (work / "snapflow" / "model").symlink_to(MODELS / "snapflow")
    env = _env(work, EVAL_EPISODES="1", EVAL_MAX_STEPS="3", VIDEO="", EVAL_DOMAIN=str(DOMAIN))
    done = subprocess.run(
        ["bash", str(SCRIPT), "eval"], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    merged = json.loads((work / "eval" / "results.json").read_text())
    assert [e["config"] for e in merged["episodes"]] == CONFIGS
    assert {e["steps"] for e in merged["episodes"]} == {3}
    assert [e["num_steps"] for e in merged["episodes"]] == [10, 2, 1, 1, 2]
    assert [r["config"] for r in merged["paired"]] == CONFIGS[1:]  # paired with teacher10
    assert {
        json.loads((work / f"eval_{g}" / "results.json").read_text())["domain_id"] for g in "ab"
    } == {DOMAIN, DOMAIN + 1}
    summary = json.loads((work / "eval" / "summary.json").read_text())
    assert {r["config"] for r in summary} == set(CONFIGS)
    assert "libero_eval_merge: 5 episodes from 2 runs" in done.stdout
    assert not list(work.rglob("*.mp4"))  # VIDEO= (empty) means no video


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EVAL_JOBS", "3", "EVAL_JOBS must be 1 or 2, got '3'"),
        ("EVAL_EPISODES", "ten", "EVAL_EPISODES must be a whole number, got 'ten'"),
        ("EVAL_DOMAIN", "-1", "EVAL_DOMAIN must be a whole number"),
        ("DEMO_WORKERS", "0", "DEMO_WORKERS must be a whole number >= 1, got '0'"),
    ],
)
def test_bad_settings_stop_before_any_stage(tmp_path, name, value, message):
    done = subprocess.run(
        ["bash", str(SCRIPT), "eval"],
        env=_env(tmp_path / "proof", **{name: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and message in done.stderr
    assert not (tmp_path / "proof").exists()
