"""The bridge's ``auto_next`` gives the policy node each new initial state's noise seed, as
``libero_eval --noise-seed`` does: real ``libero_bridge`` and ``policy_node`` processes over
DDS, the bridge going from state to state by itself (what ``ros2 launch snapflow_ros
libero_eval.launch.py`` runs)."""

from __future__ import annotations

import os
from pathlib import Path

from snapflow_ros.client import wait_until
from snapflow_ros.eval.client import EvalClient, Names
from snapflow_ros.eval.launchers import start_node
from snapflow_ros.launching import config_dir, ros_env, stop_all, watch, write_params
from snapflow_ros.sim.placements import noise_seed
from test.nodes.harness import domain_id

STEPS = 4  # per episode: the bridge moves on after 4 steps


def test_auto_next_sets_each_states_noise_seed_on_the_policy_node(tmp_path: Path):
    domain = domain_id(33)
    names = Names(ns=f"/an{os.getpid()}")
    env = ros_env(domain)
    bridge_file = write_params(
        config_dir() / "libero_bridge.yaml",
        "libero_bridge",
        {
            "suite": "libero_object",
            "task_index": 0,
            "init_state_index": 7,
            "image_height": 64,
            "image_width": 64,
            "fast_render": True,
            "episode_length": STEPS,
            "auto_next": True,
            "policy_node": "policy_node",
            "policy_noise_seed": 100,
        },
        tmp_path / "bridge.yaml",
    )
    policy_file = write_params(
        config_dir() / "libero_policy.yaml",
        "policy_node",
        {"policy_path": "tiny:libero", "torch_threads": 1, "use_sim_time": True, "seed": 107},
        tmp_path / "policy.yaml",
    )
    procs = [
        start_node(kind, params, "subprocess", tmp_path / f"{kind}.log", env, names.ns)
        for kind, params in (("libero_bridge", bridge_file), ("policy_node", policy_file))
    ]
    client = EvalClient(domain, names)
    alive = watch(*procs, log_lines=30)
    try:
        starts = client.start_events
        wait_until(lambda: len(starts()) >= 3, 600.0, "three episode starts", alive)
        assert [e.init_state_index for e in starts()[:3]] == [7, 8, 9]
        # Before each new episode's first command the bridge publishes its start event, then
        # sets the node's seed and resets it. The seed read is that of a state at or after the
        # one before the last start seen (not the node's own 107, nor an old state's) ...
        before = starts()[-1].init_state_index
        value = client.ros.get_parameters(["seed"], names.policy)["seed"]
        seeded = [s for s in range(before - 1, before + 20) if noise_seed(100, s) == value]
        assert seeded, (value, before)
        # ... and that state's start event was published before its seed was set: it arrives
        # (on a loaded machine, maybe after the parameter answer that overtook it).
        wait_until(
            lambda: any(e.init_state_index == seeded[0] for e in starts()),
            60.0,
            f"the start event of state {seeded[0]}, whose seed the node has",
            alive,
        )
    finally:
        client.close()
        stop_all(procs)
    bridge_log = (tmp_path / "libero_bridge.log").read_text()
    assert "auto_next: policy node" not in bridge_log, bridge_log[-3000:]
