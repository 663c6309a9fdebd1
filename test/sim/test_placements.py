"""Fresh object placements: seeds, the initial-states folder, and LiberoSim starting from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from snapflow_ros.sim import LiberoSim, SimConfig
from snapflow_ros.sim.libero_env import sample_fresh_init_states
from snapflow_ros.sim.placements import (
    INIT_STATES_ENV,
    episode_seed,
    init_states_file,
    noise_seed,
    read_init_states,
    write_init_states,
)
from test.test_layers import REPO, imports_of

OBJECT, BASKET = "alphabet_soup_1", "basket_1"


def test_episode_seeds_are_reproducible_and_distinct():
    seeds = {episode_seed(s, i, p) for s in (0, 1) for i in range(50) for p in ("demo", "eval")}
    assert len(seeds) == 200 and all(0 <= s < 2**31 for s in seeds)
    assert episode_seed(4, 2, "eval") == episode_seed(4, 2, "eval")
    with pytest.raises(ValueError, match="purpose"):
        episode_seed(0, 0, "train")
    with pytest.raises(ValueError, match=">= 0"):
        episode_seed(-1, 0, "demo")


def test_init_states_folder_round_trip(tmp_path):
    states = np.random.default_rng(0).normal(size=(3, 5))
    path = write_init_states(tmp_path, "libero_object", 2, states, [7, 8, 9])
    assert path == init_states_file(tmp_path, "libero_object", 2) and path.is_file()
    np.testing.assert_array_equal(read_init_states(tmp_path, "libero_object", 2), states)
    with pytest.raises(FileNotFoundError, match="libero_object task 3"):
        read_init_states(tmp_path, "libero_object", 3)
    with pytest.raises(ValueError, match="N seeds"):
        write_init_states(tmp_path, "libero_object", 2, states, [1])


@pytest.fixture(scope="module")
def sim():
    sim = LiberoSim(
        SimConfig(suite="libero_object", task_index=0, render=False, init_states="benchmark")
    )
    yield sim
    sim.close()


def test_fresh_placements_are_seeded_and_replace_the_benchmark_states(sim, tmp_path, monkeypatch):
    seeds = [episode_seed(0, i, "eval") for i in range(2)]
    states = np.stack([sim.sample_init_state(s) for s in seeds])
    np.testing.assert_array_equal(sim.sample_init_state(seeds[0]), states[0])  # reproducible
    assert not np.array_equal(states[0], states[1])
    fresh = [sim.reset(init_state=s).object_pos for s in states]
    bench = sim.reset(init_state_index=0).object_pos
    assert np.abs(fresh[0][BASKET] - fresh[1][BASKET]).max() > 1e-3  # the basket moved
    assert min(np.abs(f[BASKET] - bench[BASKET]).max() for f in fresh) > 1e-3
    np.testing.assert_allclose(fresh[0][OBJECT], bench[OBJECT], atol=0.01)  # the can's spot

    folder = tmp_path / "fresh"
    write_init_states(folder, "libero_object", 0, states, seeds)
    monkeypatch.setenv(INIT_STATES_ENV, str(folder))
    config = SimConfig(suite="libero_object", task_index=0, render=False)
    assert config.init_states == str(folder)  # what the bridge gets from libero_eval
    monkeypatch.setattr(sim.config, "init_states", config.init_states)
    obs = sim.reset(init_state_index=1)
    assert sim.num_init_states == 2
    for name in (OBJECT, BASKET):
        np.testing.assert_array_equal(obs.object_pos[name], fresh[1][name])
    with pytest.raises(ValueError, match=r"0\.\.1"):
        sim.reset(init_state_index=2)
    monkeypatch.delenv(INIT_STATES_ENV)
    assert SimConfig().init_states == "benchmark"


def test_a_drawn_set_is_the_simulators_draw_at_each_episode_seed(sim):
    states, seeds = sample_fresh_init_states("libero_object", 0, 3, 2, "demo")
    assert seeds == [episode_seed(3, i, "demo") for i in range(2)]
    assert states.shape == (2, len(sim.benchmark_states()[0]))
    for state, seed in zip(states, seeds, strict=True):
        np.testing.assert_array_equal(state, sim.sample_init_state(seed))


def test_placements_import_nothing_of_the_simulator():
    path = Path(REPO, "snapflow_ros", "sim", "placements.py")
    ours = [n for _, n in imports_of(path, "snapflow_ros.sim.placements") if "snapflow" in n]
    assert ours == []  # libero_env imports placements, never the other way round


def test_noise_seed_is_the_base_plus_the_state_or_none_to_leave_the_node_alone():
    assert [noise_seed(100, i) for i in (0, 7)] == [100, 107]
    assert noise_seed(-1, 7) is None
    for base, index in ((-2, 0), (0, -1)):
        with pytest.raises(ValueError, match="base must be >= -1 and index >= 0"):
            noise_seed(base, index)
