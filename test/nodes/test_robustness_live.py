"""Every class of bad input against the policy node as a separate process, over real DDS.

For each class (NaN joint, wrong image size, unknown encoding, duplicate joint names, stamps
10 s in the future, a 100 kB task) the node must hold (no command while it lasts), say what
is wrong on /diagnostics (ERROR naming the problem), announce a ``rejected`` observation on
``~/status``, and recover by itself when good input returns; no non-finite command is ever
published. The in-process tests (test_robustness_inprocess.py) check the same things in more
detail; this one shows them across processes, as a robot runs the node.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from .harness import Harness, domain_id, fed_node_process, wait_for, write_params

DOMAIN = domain_id(13)
HUGE_TASK = "put the cube in the bowl " * 4000  # 100 kB

CASES = [
    # feed change, text the inputs diagnostic must contain, input named by the rejection
    ("nan_joint", "NaN", "state.joints"),
    ("bad_size", "bytes", "camera.wrist"),
    ("bad_encoding", "yuv422", "camera.wrist"),
    ("duplicate_joint", "more than once", "state.joints"),
    ("future_stamp", "clock skew", "camera.front"),
    ("huge_task", "100000 characters", "task"),
]


@pytest.fixture(scope="module")
def running(tiny_smolvla_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("robustness_live")
    params = write_params(
        tmp / "params.yaml",
        {
            "policy_path": str(tiny_smolvla_dir),
            "control_rate": 20.0,
            "num_steps": 1,
            "torch_threads": 1,
            "input_timeout": 1.0,
            "status_rate": 5.0,
            "hold_mode": "none",
        },
    )
    with fed_node_process(params, DOMAIN, tmp / "node.log") as (harness, proc):
        yield harness, proc
    assert len(proc.log()) < 200_000, "the log repeats something long (the task?)"
    values = [np.asarray(c.msg.position) for c in harness.snapshot(harness.commands)]
    assert values and all(np.all(np.isfinite(v)) for v in values), "a non-finite command"


def _apply(harness: Harness, case: str, bad: bool) -> None:
    if case == "future_stamp":
        harness.feed.stamp_offset = 10.0 if bad else 0.0
    elif case == "huge_task":
        harness.publish_task(HUGE_TASK if bad else "pick up the red cube")
    else:
        harness.feed.mode = case if bad else "good"


@pytest.mark.parametrize(("case", "text", "slot"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_holds_is_named_and_recovers(running, case, text, slot):
    harness, proc = running
    harness.wait_commands(3, timeout=60)  # good input first (whatever ran before)
    since = time.time_ns()
    _apply(harness, case, bad=True)
    try:
        level, message, _ = wait_for(
            lambda: (d := harness.latest_diagnostics()["inputs"]) and text in d[1] and d,
            20,
            f"an inputs diagnostic naming {text!r}",
        )
        assert level == 2, message
        quiet = time.time_ns()
        time.sleep(0.5)
        assert not harness.snapshot(harness.commands, quiet), "a command from bad input"
        assert any(e.input == slot for e in harness.events("rejected", since))
        assert len(message) < 2000
    finally:
        _apply(harness, case, bad=False)
    harness.wait_commands(5, timeout=30)
    wait_for(
        lambda: harness.latest_diagnostics()["inputs"][0] == 0, 20, "the inputs to be OK again"
    )
    assert proc.alive()
