"""The node's run-time settings: derived values the controller asks the runtime for."""

from __future__ import annotations

import pytest

from snapflow_ros.control.settings import Settings, runtime_seed


@pytest.mark.parametrize(("seed", "expected"), [(0, 0), (7, 7), (-1, None)])
def test_the_seed_parameter_as_the_runtime_takes_it(seed, expected):
    assert runtime_seed(seed) == expected
    assert Settings(seed=seed).noise_seed == expected


@pytest.mark.parametrize(("num_steps", "expected"), [(0, None), (1, 1), (10, 10)])
def test_steps_zero_means_the_checkpoints_default(num_steps, expected):
    assert Settings(num_steps=num_steps).steps == expected
