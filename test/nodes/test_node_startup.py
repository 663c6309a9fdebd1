"""Operator mistakes at start-up end in one clear line, never in a traceback.

A malformed parameters file (rcl cannot parse it) ends the process with exit status 2 and one
line saying why; a wrongly typed value leaves the node running, unconfigured, with a one-line
reason (like every other bad value); an argument outside ``--ros-args`` is refused.
"""

from __future__ import annotations

import subprocess

from .harness import REPO, NodeProcess, console_script, domain_id, ros_env, wait_for

DOMAIN = domain_id(14)


def _run(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [console_script("policy_node"), *args],
        env=ros_env(DOMAIN),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def test_malformed_yaml_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text('/**/policy_node:\n  ros__parameters:\n    num_steps: [1, "a"\n')
    out = _run(["--ros-args", "--params-file", str(bad)], tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) <= 2, text  # rcl's own "[ERROR] [rcl]: ..." line, then ours
    assert "policy_node: cannot start" in lines[-1] and str(bad) in lines[-1]


def test_arguments_outside_ros_args_are_refused(tmp_path):
    out = _run(["--params-file", "x.yaml"], tmp_path)
    assert out.returncode == 2
    assert "unrecognized arguments: --params-file x.yaml" in out.stderr
    assert "--ros-args" in out.stderr and "Traceback" not in out.stderr


def test_wrongly_typed_value_leaves_the_node_unconfigured_with_one_reason(tmp_path):
    config = (REPO / "config" / "policy.yaml").read_text()
    params = tmp_path / "typed.yaml"
    params.write_text(config.replace("num_steps: 0 ", 'num_steps: "one" ', 1))
    assert 'num_steps: "one"' in params.read_text()
    with NodeProcess(params, DOMAIN, tmp_path / "node.log") as proc:
        wait_for(
            lambda: "autostart: the node stays unconfigured" in proc.log() or not proc.alive(),
            120,
            "the configure failure",
        )
        assert proc.alive(), proc.log()
        rc = proc.stop()
    log = proc.log()
    assert rc == 0 and "Traceback" not in log, log
    assert "bad parameter: num_steps: expected an integer; got 'one'" in log
    reasons = [line for line in log.splitlines() if "num_steps: expected an integer" in line]
    assert len(reasons) == 1, log  # one ERROR line for one cause (not again at configure)
    assert len([line for line in log.splitlines() if "[ERROR]" in line]) == 1, log
