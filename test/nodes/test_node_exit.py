"""Ctrl-C and SIGTERM end a running policy node cleanly and at once.

The node is inferring (inputs flowing) when the signal comes. It must finish its shutdown
(one "policy node stopped" line, exit status 0, no traceback) and the process must end well
within the grace ``ros2 launch`` gives it before escalating (``SIGINT_GRACE_S``): it used to
spend 3-6 s idle, over 15 s loaded, in Python's exit-time clean-up of the model after saying
"stopped", so launch killed it.
"""

from __future__ import annotations

import signal

import pytest

from snapflow_ros.launch_args import SIGINT_GRACE_S

from .harness import Harness, NodeProcess, domain_id, write_params

DOMAIN = domain_id(15)


@pytest.mark.timing
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_running_node_ends_promptly_on_a_signal(tiny_smolvla_dir, tmp_path, sig):
    params = write_params(
        tmp_path / "params.yaml",
        {"policy_path": str(tiny_smolvla_dir), "control_rate": 30.0, "torch_threads": 1},
    )
    harness = Harness(DOMAIN)
    try:
        with NodeProcess(params, DOMAIN, tmp_path / "node.log") as proc:
            harness.start_feed()
            harness.wait_matched(120)
            harness.wait_commands(5, timeout=120)
            proc.proc.send_signal(sig)
            rc = proc.proc.wait(SIGINT_GRACE_S)  # raises if launch would have escalated
    finally:
        harness.close()
    log = proc.log()
    assert rc == 0, log[-3000:]
    assert "Traceback" not in log and log.count("policy node stopped") == 1, log[-3000:]
