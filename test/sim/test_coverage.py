"""The coverage check (snapflow_ros.sim.coverage) and the arm start pose of fresh placements."""

from __future__ import annotations

import json

import numpy as np
import pytest

from snapflow_ros.sim import LiberoSim, SimConfig
from snapflow_ros.sim.coverage import (
    check_dataset,
    compare,
    main,
    named_dimensions,
    quat_yaw,
    settle_row,
    table,
)
from snapflow_ros.sim.placements import episode_seed

ARM = [f"arm_joint{k}" for k in range(1, 8)]


def test_compare_names_a_dimension_that_varies_in_one_set_only():
    rng = np.random.default_rng(0)
    bench = {"a": rng.normal(0, 0.02, 50), "b": rng.normal(1, 0.01, 50), "c": np.zeros(50)}
    demo = {"a": np.zeros(40), "b": rng.normal(1, 0.01, 40), "c": rng.normal(0, 0.01, 40)}
    rows = {r.name: r for r in compare(demo, bench)}
    assert rows["a"].problem == "varies in the benchmark, not in the demonstrations"
    assert rows["b"].problem == ""
    assert rows["c"].problem == "varies in the demonstrations, not in the benchmark"
    assert rows["b"].std_bench == pytest.approx(np.std(bench["b"]))


def test_compare_names_spreads_far_apart_and_missing_dimensions():
    rng = np.random.default_rng(1)
    bench = {"a": rng.normal(0, 0.02, 50), "only_bench": rng.normal(0, 1, 50)}
    demo = {"a": rng.normal(0, 0.002, 50), "only_demo": rng.normal(0, 1, 50)}
    rows = {r.name: r for r in compare(demo, bench)}
    assert rows["a"].problem == "spreads differ by more than 3x"
    assert rows["only_bench"].problem == "only in the benchmark"
    assert rows["only_demo"].problem == "only in the demonstrations"


def test_the_table_keeps_its_columns_for_long_object_names():
    rng = np.random.default_rng(2)
    long = "glazed_rim_porcelain_ramekin_1.x"  # libero_spatial 0 has it: longer than 28
    sets = {"a": rng.normal(0, 0.02, 20), long: rng.normal(0, 0.01, 20)}
    lines = table(compare(sets, sets)).splitlines()
    assert len({line.index(" ok") for line in lines[1:]}) == 1  # one column, every row
    assert lines[0].index("std demo") < lines[1].index(" ok") < lines[0].index("problem") + 3


def test_a_yaw_around_pi_is_one_place_not_a_spread():
    yaws = np.array([np.pi - 0.01, -np.pi + 0.01, np.pi - 0.02, -np.pi + 0.02])
    rows = compare({"box.yaw": yaws}, {"box.yaw": yaws[::-1].copy()})
    assert rows[0].std_bench < 0.05 and rows[0].problem == ""
    half = np.pi / 4  # a quaternion of yaw pi/2 about z
    assert quat_yaw(np.array([[np.cos(half), 0, 0, np.sin(half)]]))[0] == pytest.approx(np.pi / 2)


@pytest.fixture(scope="module")
def sim():
    sim = LiberoSim(
        SimConfig(suite="libero_object", task_index=0, render=False, init_states="benchmark")
    )
    yield sim
    sim.close()


def test_fresh_arm_start_is_drawn_like_the_benchmark_and_keeps_the_objects(sim, monkeypatch):
    seeds = [episode_seed(3, i, "demo") for i in range(8)]
    monkeypatch.setattr(sim.config, "arm_start", "fixed")
    fixed = np.stack([sim.sample_init_state(s) for s in seeds])
    monkeypatch.setattr(sim.config, "arm_start", "benchmark")
    drawn = np.stack([sim.sample_init_state(s) for s in seeds])
    np.testing.assert_array_equal(sim.sample_init_state(seeds[0]), drawn[0])  # seeded
    robot = [1 + i for i in sim.robot_qpos_index()]
    others = np.setdiff1d(np.arange(fixed.shape[1]), robot)
    np.testing.assert_array_equal(drawn[:, others], fixed[:, others])  # same placements
    assert np.ptp(fixed[:, robot], axis=0).max() == 0.0  # LIBERO's reset: one exact pose
    arm = robot[:7]
    spread = drawn[:, arm].std(axis=0)
    bench = sim.benchmark_states()[:, arm]
    assert np.all(spread > 0.004) and np.all(spread < 0.06), spread
    assert np.abs(drawn[:, arm].mean(axis=0) - bench.mean(axis=0)).max() < 0.03
    np.testing.assert_array_equal(drawn[:, robot[7:]], fixed[:, robot[7:]])  # fingers: no spread
    monkeypatch.setattr(sim.config, "arm_start", "bogus")
    with pytest.raises(ValueError, match="arm_start"):
        sim.sample_init_state(1)


def test_the_reset_pose_fails_the_check_and_the_fitted_pose_passes_it(sim, monkeypatch):
    bench = named_dimensions(sim, sim.benchmark_states())
    seeds = [episode_seed(0, i, "demo") for i in range(12)]
    for arm_start, expect_arm_problem in (("fixed", True), ("benchmark", False)):
        monkeypatch.setattr(sim.config, "arm_start", arm_start)
        demo = named_dimensions(sim, np.stack([sim.sample_init_state(s) for s in seeds]))
        rows = {r.name: r for r in compare(demo, bench)}
        assert set(ARM) <= set(rows) and "basket_1.yaw" in rows
        flagged = {n for n, r in rows.items() if r.problem}
        if expect_arm_problem:
            assert flagged == set(ARM), flagged
        else:
            assert not flagged, {n: rows[n].problem for n in flagged}


def _fake_dataset(root, seeds, arm_start, suite="libero_object", placements=None):
    (root / "meta").mkdir(parents=True)
    spec = {"suite": suite, "task_index": 0}
    if arm_start is not None:
        spec["arm_start"] = arm_start
    if placements is not None:
        spec["placements"] = placements
    (root / "meta/snapflow_demos.json").write_text(json.dumps({"spec": spec}))
    lines = [json.dumps({"episode_index": i, "seed": s}) for i, s in enumerate(seeds)]
    (root / "meta/snapflow_episodes.jsonl").write_text("\n".join(lines) + "\n")


def test_the_command_refuses_an_old_dataset_and_accepts_a_covering_one(tmp_path, capsys):
    """A dataset's ledger (its placement seeds) is all the command reads; datasets recorded
    before ``--arm-start`` existed (no key in their spec) started every arm at the reset pose."""
    seeds = [episode_seed(0, i, "demo") for i in range(12)]
    old, new = tmp_path / "old", tmp_path / "new"
    _fake_dataset(old, seeds, None)
    _fake_dataset(new, seeds, "benchmark")
    assert main([str(old), "--states", "50"]) == 1
    err = capsys.readouterr().err
    assert "NOT COVERED" in err and "arm_joint1" in err and "basket" not in err
    out = tmp_path / "cov.json"
    assert main([str(new), "--states", "50", "--out", str(out)]) == 0
    assert "covered: all" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert not [d for d in report["dimensions"] if d["problem"]]
    assert main([str(tmp_path / "missing")]) == 2
    assert "not a demonstration dataset" in capsys.readouterr().err


def test_scenes_whose_reset_throws_an_object_are_named(tmp_path):
    """libero_spatial 0: LIBERO's draw for seed 1175489816 puts the bowl into the plate and the
    reset throws it; datasets recorded before ``--placements`` (no key) kept such draws."""
    seeds = [532588115, 1175489816, episode_seed(0, 0, "demo")]
    old, new = tmp_path / "old", tmp_path / "new"
    _fake_dataset(old, seeds, "benchmark", "libero_spatial")
    _fake_dataset(new, seeds, "benchmark", "libero_spatial", "settled")
    old_row = check_dataset(old)[-1]
    assert old_row.name == "settle_shift_m"
    assert (
        "throw an object at reset" in old_row.problem and "--placements settled" in old_row.problem
    )
    new_row = check_dataset(new)[-1]
    assert new_row.name == "settle_shift_m" and new_row.problem == ""
    assert new_row.mean_demo < old_row.mean_demo


def test_settle_row_names_only_scenes_beyond_the_limit():
    assert settle_row([0.01, 0.05], [0.0, 0.056], 0.056).problem == ""
    row = settle_row([0.01, 0.3, 0.9], [0.0, 0.056], 0.056)
    assert row.problem.startswith("2 of 3 scenes") and "0.900 m" in row.problem
