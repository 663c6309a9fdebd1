"""``libero_eval``: argument errors (exit 2) and a short real run comparing configurations.

The run starts the bridge and the policy node as processes (plain-Python launcher), evaluates
one task with a tiny LIBERO-shaped checkpoint at 10 and 1 denoising steps (and 10 again: the
lock-step loop must reproduce the first run exactly), and checks every output file.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from snapflow_ros.eval.libero_eval import (
    EvalPlan,
    UsageError,
    build_parser,
    main,
    parse_config,
    privileged_hint,
    privileged_source,
    validate,
)
from snapflow_ros.eval.results import initial_states_line, percentile_ms, wilson_interval
from snapflow_ros.policies import libero_tiny_spec
from snapflow_ros.policies.tiny import ensure_tiny_checkpoint
from snapflow_ros.sim.placements import episode_seed, init_states_file
from test.config_files import flat_parameters
from test.nodes.harness import domain_id

STEPS = 12
DOMAIN = domain_id(31)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--suites", "libero_99"], "unknown ['libero_99']"),
        (["--tasks", "3,10"], "libero_spatial has tasks 0..9, got [10]"),
        (["--tasks", "one"], "comma-separated integers"),
        (["--episodes", "0"], "--episodes: must be >= 1"),
        (["--init-offset", "45", "--episodes", "10"], "50 initial states"),
        (["--config", "nameonly"], "expected NAME=POLICY_PATH"),
        (["--config", "a=tiny:libero,x"], "NUM_STEPS must be an integer"),
        (["--config", "a=tiny:libero,0"], "NUM_STEPS must be >= 1"),
        (["--config", "a=tiny:smolvla"], "unknown policy name"),
        (["--config", "a=libero:nope"], "unknown policy name"),
        (["--config", "a=/no/such/ckpt"], "is not a checkpoint folder"),
        (["--config", "a=no/such/ckpt"], "is not a checkpoint folder"),  # nor a Hub id
        (["--config", "a=tiny:libero", "--config", "a=tiny:libero,1"], "duplicate names"),
        (["--video", "top"], "--video: agentview, wrist or both"),
        (["--policy-arg", "device=cuda"], "expected NAME:=VALUE"),
        (["--image-size", "8"], "--image-size"),
        (["--namespace", "no slash"], "not a ROS namespace"),
        (["--bridge-params", "/no/file.yaml"], "does not exist"),
        (["--init-states", "fresh", "--seed", "-1"], "--seed: must be >= 0"),
        (["--noise-seed", "-2"], "--noise-seed: must be >= -1"),
        (["--policy-arg", "seed:=3"], "pass --noise-seed -1 to run every episode with that seed"),
        (
            ["--privileged-state", "--suites", "libero_goal", "--tasks", "0"],
            "--privileged-state: no scripted expert for libero_goal task 0",
        ),
    ],
)
def test_bad_arguments_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_argparse_errors_and_the_console_script_exit_2():
    exe = Path(sys.executable).parent / "libero_eval"
    done = subprocess.run([str(exe), "--mode", "fast"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "invalid choice: 'fast'" in done.stderr
    done = subprocess.run(
        [str(exe), "--suites", "libero_99"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "unknown ['libero_99']" in done.stderr


def test_configs_and_defaults_parse():
    cfg = parse_config("student=tiny:libero-pi05,1")
    assert (cfg.name, cfg.policy_path, cfg.num_steps) == ("student", "tiny:libero-pi05", 1)
    plan = validate(
        build_parser().parse_args(
            ["--suites", "libero_goal,libero_10", "--tasks", "0,9", "--video", "both"]
        )
    )
    assert isinstance(plan, EvalPlan) and plan.tasks == {"libero_goal": [0, 9], "libero_10": [0, 9]}
    assert (plan.init_states, plan.seed) == ("benchmark", 0)  # the default: benchmark states
    fresh = validate(build_parser().parse_args(["--init-states", "fresh", "--seed", "7"]))
    assert (fresh.init_states, fresh.seed) == ("fresh", 7)
    assert plan.video == ("agentview", "wrist") and plan.configs[0].policy_path == "tiny:libero"
    with pytest.raises(UsageError):
        parse_config("x=tiny:libero,-1")
    # a Hub id is the policy registry's to download when the run starts
    hub = parse_config("hub=HuggingFaceVLA/smolvla_libero,10")
    assert (hub.policy_path, hub.num_steps) == ("HuggingFaceVLA/smolvla_libero", 10)


def test_eval_compares_configurations(tmp_path, tiny_cache):
    """Three configurations, two checkpoint folders: the policy node is restarted under the
    same name between them (a request sent before the new node's services match is lost;
    the read-only lifecycle query is resent)."""
    ckpt = ensure_tiny_checkpoint(libero_tiny_spec("smolvla"), tiny_cache)
    copy = tmp_path / "copy_of_ckpt"
    shutil.copytree(ckpt, copy)
    out = tmp_path / "eval"
    cmd = [
        str(Path(sys.executable).parent / "libero_eval"),
        "--suites",
        "libero_spatial",
        "--tasks",
        "0",
        "--episodes",
        "1",
        "--config",
        f"a={ckpt},10",
        "--config",
        f"b={ckpt},1",
        "--config",
        f"c={copy},10",
        "--max-steps",
        str(STEPS),
        "--image-size",
        "64",
        "--fast-render",
        "--video",
        "--out",
        str(out),
        "--domain-id",
        str(DOMAIN),
        "--namespace",
        f"/ev{os.getpid()}",
        "--policy-arg",
        "torch_threads:=1",
        "--startup-timeout",
        "300",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    logs = "\n".join(p.read_text()[-3000:] for p in (out / "logs").glob("*.log"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + logs
    results = json.loads((out / "results.json").read_text())
    eps = {e["config"]: e for e in results["episodes"]}
    assert sorted(eps) == ["a", "b", "c"]
    for e in eps.values():
        assert (e["steps"], e["reason"], e["success"]) == (STEPS, "max_steps", False)
        assert e["chunks"] == 2 and e["rejected_commands"] == 0 and e["task"].startswith("pick")
        assert len(e["inference_s"]) == 2 and 0 < e["latency_p50_ms"] <= e["latency_p95_ms"]
    assert eps["a"]["chunk_num_steps"] == [10] and eps["b"]["chunk_num_steps"] == [1]
    assert eps["a"]["final_state"] == eps["c"]["final_state"]  # lock-step: reproducible
    assert eps["a"]["final_state"] != eps["b"]["final_state"]
    # the scene's movable objects, measured by the bridge; a random policy lifts none
    assert "akita_black_bowl_1" in eps["a"]["objects"]
    assert eps["a"]["objects"] == eps["c"]["objects"]
    assert all(o["max_rise_m"] < 0.03 for o in eps["a"]["objects"].values())
    assert {e["outcome"] for e in eps.values()} == {"nothing lifted"}
    assert results["outcomes"]["a"]["nothing lifted"] == 1
    with (out / "episodes.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["config"] for r in rows] == ["a", "b", "c"] and rows[1]["num_steps"] == "1"
    assert rows[0]["outcome"] == "nothing lifted"
    with (out / "summary.csv").open() as f:
        summary = list(csv.DictReader(f))
    assert {(r["config"], r["suite"], r["task_index"]) for r in summary} >= {
        ("a", "libero_spatial", "0"),
        ("b", "all", "all"),
    }
    table = (out / "summary.md").read_text()
    assert "| suite | task | a | b | c |" in table and "| libero_spatial | 0: pick up" in table
    assert "0/1 (0%)" in table and "Machine:" in table
    assert "| 0-79% |" in table and "chunk latency p50 / p95 (ms)" in table  # Wilson, n = 1
    video = Path(eps["a"]["video"])
    assert video == out / "videos" / "a" / "libero_spatial_task0_init0.mp4"
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == STEPS + 1
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 256  # 64 px renders, enlarged 4x
    cap.release()


def test_bridge_config_uses_only_declared_parameters():
    import yaml

    from snapflow_ros.params.libero_bridge import PARAMS

    repo = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((repo / "config" / "libero_bridge.yaml").read_text())
    flat = flat_parameters(data["/**/libero_bridge"]["ros__parameters"])
    declared = {p.name: p.default for p in PARAMS}
    assert sorted(set(flat) - set(declared)) == []
    for name, value in flat.items():  # same types as the declared defaults (or a string list)
        default = declared[name]
        assert isinstance(value, list) if default is None else type(value) is type(default), name


def test_launch_file_matches_the_eval_and_setup():
    import ast

    repo = Path(__file__).resolve().parents[2]
    source = (repo / "launch" / "libero_eval.launch.py").read_text()
    tree = ast.parse(source)
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    # the arguments libero_eval --launcher ros2launch passes, and the executables it starts
    assert {
        "bridge_params",
        "policy_params",
        "start_bridge",
        "start_policy",
        "namespace",
    } <= strings
    assert {"libero_bridge", "policy_node", "libero_bridge.yaml", "libero_policy.yaml"} <= strings
    setup = (repo / "setup.py").read_text()
    assert "libero_bridge = {PACKAGE}.nodes.libero_bridge:main" in setup
    assert "libero_eval = {PACKAGE}.eval.libero_eval:main" in setup
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions


def test_success_interval_and_latency_percentiles():
    low, high = wilson_interval(45, 50)
    assert round(low, 3) == 0.786 and round(high, 3) == 0.957
    assert wilson_interval(0, 10)[0] == 0.0 and round(wilson_interval(0, 10)[1], 3) == 0.278
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0) and wilson_interval(0, 0) == (0.0, 1.0)
    assert percentile_ms([0.04, 0.01, 0.03, 0.02], 50) == pytest.approx(25.0)
    assert percentile_ms([0.01, 0.02, float("nan")], 95) == pytest.approx(19.5)
    assert percentile_ms([], 50) is None


def test_initial_states_line_names_the_source():
    assert initial_states_line({"init_offset": 0, "episodes": 50}) == (
        "Initial states: the benchmark's initial states 0..49 of each task."
    )
    line = initial_states_line({"init_offset": 2, "episodes": 3, "init_states": "fresh", "seed": 9})
    assert "fresh object placements 2..4" in line and "seed 9" in line


def test_eval_on_fresh_placements(tmp_path):
    """Also the shipped SnapFlow student (libero:snapflow, what `make demo` runs) in the node."""
    out = tmp_path / "fresh"
    cmd = [
        str(Path(sys.executable).parent / "libero_eval"),
        "--suites", "libero_object", "--tasks", "0", "--episodes", "2",
        "--init-states", "fresh", "--seed", "11", "--noise-seed", "20",
        "--config", "a=libero:snapflow", "--max-steps", "3", "--image-size", "64", "--fast-render",
        "--out", str(out), "--domain-id", str(domain_id(32)), "--namespace", f"/fr{os.getpid()}",
        "--policy-arg", "torch_threads:=1", "--startup-timeout", "300",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    logs = "\n".join(p.read_text()[-3000:] for p in (out / "logs").glob("*.log"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + logs
    seeds = [episode_seed(11, i, "eval") for i in range(2)]
    with np.load(init_states_file(out / "init_states", "libero_object", 0)) as states:
        assert states["seeds"].tolist() == seeds and states["states"].shape[0] == 2
        assert not np.array_equal(states["states"][0], states["states"][1])
    results = json.loads((out / "results.json").read_text())
    assert results["plan"]["init_states"] == "fresh" and results["plan"]["seed"] == 11
    eps = results["episodes"]
    assert [(e["init_state_index"], e["init_states"], e["placement_seed"]) for e in eps] == [
        (0, "fresh", seeds[0]),
        (1, "fresh", seeds[1]),
    ]
    assert [e["noise_seed"] for e in eps] == [20, 21]  # set on the node (a refusal fails the run)
    assert all(e["steps"] == 3 and e["reason"] == "max_steps" for e in eps)
    assert all(e["chunk_num_steps"] == [1] and e["rejected_commands"] == 0 for e in eps)
    with (out / "episodes.csv").open() as f:
        assert [int(r["placement_seed"]) for r in csv.DictReader(f)] == seeds
    assert "fresh object placements 0..1" in (out / "summary.md").read_text()
    assert "task 0 fresh 1:" in done.stdout


def test_privileged_source_follows_the_policy_nodes_own_sources(tmp_path):
    params = tmp_path / "both.yaml"  # the policy node's section is not the first one
    params.write_text(
        "/**/libero_bridge:\n  ros__parameters:\n    suite: libero_object\n"
        "/**/policy_node:\n  ros__parameters:\n    state:\n      sources: [arm, gripper]\n"
    )
    overrides = privileged_source(params)
    assert overrides["state.sources"] == ["arm", "gripper", "privileged"]
    assert overrides["state.privileged.topic"] == "libero/privileged_state"


@pytest.mark.parametrize(
    ("log", "flag", "hinted"),
    [
        ("state: the sources give 8 values (libero=8), the policy expects 14", False, True),
        ("state: the sources give 8 values (libero=8), the policy expects 14", True, False),
        ("state: the sources give 8 values (libero=8), the policy expects 10", False, False),
        (
            "cameras: the policy expects image keys ['a']; missing ['a'], unknown ['b']",
            False,
            False,
        ),
        ("", False, False),
    ],
)
def test_privileged_hint_only_for_a_state_short_by_the_privileged_values(log, flag, hinted):
    assert ("add --privileged-state" in privileged_hint(log, flag)) is hinted


def test_privileged_state_reaches_a_policy_that_takes_it(tmp_path, tiny_cache):
    """A policy with a 14-D state (LIBERO's 8 + the object's and target's positions) runs with
    --privileged-state; without it the node refuses the policy and the error says why."""
    ckpt = ensure_tiny_checkpoint(replace(libero_tiny_spec("smolvla"), state_dim=14), tiny_cache)

    def run(name: str, *extra: str) -> tuple[Path, subprocess.CompletedProcess]:
        out = tmp_path / name
        cmd = [
            str(Path(sys.executable).parent / "libero_eval"),
            "--suites", "libero_object", "--tasks", "0", "--episodes", "1",
            "--config", f"a={ckpt},1", "--max-steps", "3", "--image-size", "32", "--fast-render",
            "--out", str(out), "--domain-id", str(domain_id(33)),
            "--namespace", f"/pv{os.getpid()}",
            "--policy-arg", "torch_threads:=1", "--startup-timeout", "300", *extra,
        ]  # fmt: skip
        return out, subprocess.run(cmd, capture_output=True, text=True, timeout=600)

    out, done = run("privileged", "--privileged-state")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["plan"]["privileged_state"] is True
    (ep,) = results["episodes"]
    # lock-step: each of the 3 steps waited for a command computed from all inputs
    assert ep["steps"] == 3 and ep["reason"] == "max_steps" and ep["chunks"] >= 1
    assert ep["rejected_commands"] == 0
    node = yaml.safe_load((out / "params" / "policy_node_0.yaml").read_text())
    state = next(iter(node.values()))["ros__parameters"]["state"]
    assert state["sources"] == ["libero", "privileged"]
    assert state["privileged"]["topic"] == "libero/privileged_state"
    assert len(state["privileged"]["names"]) == 6
    _, plain = run("plain")
    assert plain.returncode == 1, plain.stdout[-3000:]
    assert "the policy expects 14" in plain.stderr, plain.stderr[-3000:]
    assert "add --privileged-state" in plain.stderr


def test_sigterm_stops_the_run_and_keeps_the_episodes(tmp_path, tiny_cache):
    ckpt = ensure_tiny_checkpoint(libero_tiny_spec("smolvla"), tiny_cache)
    out = tmp_path / "term"
    cmd = [
        str(Path(sys.executable).parent / "libero_eval"),
        "--suites", "libero_object", "--tasks", "0", "--episodes", "5",
        "--config", f"a={ckpt},1", "--max-steps", "3", "--image-size", "32", "--fast-render",
        "--out", str(out), "--domain-id", str(domain_id(34)), "--namespace", f"/tm{os.getpid()}",
        "--policy-arg", "torch_threads:=1", "--startup-timeout", "300",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the first episode's line, then SIGTERM
            lines.append(line)
            if "init 0:" in line:
                proc.send_signal(signal.SIGTERM)
                break
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(lines) + (rest or "")
    assert proc.returncode == 130, text[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert 1 <= len(results["episodes"]) < 5 and results["episodes"][0]["init_state_index"] == 0
    assert "interrupted" in text
    left = subprocess.run(["pgrep", "-f", str(out / "params")], capture_output=True, text=True)
    assert left.stdout == "", f"bridge or node still running: {left.stdout}"


def test_a_second_run_on_the_same_names_is_refused(tmp_path):
    """Two runs on one domain and namespace would reset each other's episodes."""
    import rclpy
    from rclpy.context import Context

    domain, ns = domain_id(35), f"/busy{os.getpid()}"
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    squatter = rclpy.create_node("libero_bridge", namespace=ns, context=context)
    try:
        out = tmp_path / "busy"
        cmd = [
            str(Path(sys.executable).parent / "libero_eval"),
            "--suites", "libero_object", "--tasks", "0", "--config", "a=tiny:libero",
            "--out", str(out), "--domain-id", str(domain), "--namespace", ns,
        ]  # fmt: skip
        env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    finally:
        squatter.destroy_node()
        rclpy.shutdown(context=context)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"{ns}/libero_bridge already running on ROS_DOMAIN_ID {domain}" in done.stderr
    # Found before anything starts, or (when discovery is slow under load) as a twin of the
    # run's own bridge before the first episode: either way no episode ran.
    if (out / "results.json").exists():
        assert json.loads((out / "results.json").read_text())["episodes"] == []


def test_a_twin_found_after_start_stops_the_run(tmp_path):
    """A node of the run's name seen twice (the run's own and another) is a twin for certain:
    checked before every episode, for the participant the check before start missed."""
    import rclpy
    from rclpy.context import Context

    from snapflow_ros.client import wait_until
    from snapflow_ros.eval.client import EvalError
    from snapflow_ros.eval.libero_eval import Runner

    domain, ns = domain_id(36), f"/twin{os.getpid()}"
    args = ["--config", "a=tiny:libero", "--out", str(tmp_path / "twin"), "--namespace", ns]
    plan = validate(build_parser().parse_args([*args, "--domain-id", str(domain)]))
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    first = rclpy.create_node("libero_bridge", namespace=ns, context=context)
    runner = Runner(plan)
    second = None
    try:
        wait_until(lambda: runner.client.ros.node_count(f"{ns}/libero_bridge") == 1, 60, "one")
        runner._check_no_twins()  # one node of the name: the run's own, no twin
        second = rclpy.create_node("libero_bridge", namespace=ns, context=context)
        wait_until(lambda: runner.client.ros.node_count(f"{ns}/libero_bridge") == 2, 60, "two")
        with pytest.raises(EvalError, match=f"{ns}/libero_bridge already running"):
            runner._check_no_twins(grace=0.5)
        second.destroy_node()  # a stopped node leaving the graph within the grace: no twin
        second = None
        runner._check_no_twins(grace=60.0)
    finally:
        runner.client.close()
        for node in (first, second):
            if node is not None:
                node.destroy_node()
        rclpy.shutdown(context=context)
