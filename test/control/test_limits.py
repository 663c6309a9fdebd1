"""Action limits: bounds and per-tick rate limits, exact values."""

from __future__ import annotations

import numpy as np
import pytest

from snapflow_ros.control import ActionLimits, LimitError


def test_no_limits_is_identity():
    lim = ActionLimits.build(3)
    a = np.array([1e9, -1e9, 0.5])
    np.testing.assert_array_equal(lim.apply(a, previous=np.zeros(3)), a)


def test_bounds_clamp_each_dimension():
    lim = ActionLimits.build(3, lower=[-1, -2, 0], upper=[1, 2, 0.5])
    np.testing.assert_array_equal(lim.clamp(np.array([-5.0, 3.0, 0.25])), [-1.0, 2.0, 0.25])


def test_single_value_applies_to_all_dimensions():
    lim = ActionLimits.build(2, lower=[-0.5], upper=[0.5])
    np.testing.assert_array_equal(lim.clamp(np.array([-3.0, 3.0])), [-0.5, 0.5])


def test_rate_limit_from_previous_command():
    lim = ActionLimits.build(2, max_delta=[0.1, 1.0])
    out = lim.apply(np.array([1.0, 1.0]), previous=np.array([0.0, 0.0]))
    np.testing.assert_allclose(out, [0.1, 1.0])
    out = lim.apply(np.array([-1.0, -0.5]), previous=np.array([0.0, 0.0]))
    np.testing.assert_allclose(out, [-0.1, -0.5])


def test_rate_limit_never_leaves_bounds():
    lim = ActionLimits.build(1, lower=[0.0], upper=[1.0], max_delta=[0.3])
    # previous outside the bounds (e.g. limits tightened): result still inside
    np.testing.assert_allclose(lim.apply(np.array([0.5]), previous=np.array([5.0])), [1.0])


def test_rejects_nan_and_wrong_size():
    lim = ActionLimits.build(2, lower=[-1], upper=[1])
    with pytest.raises(LimitError, match="NaN"):
        lim.apply(np.array([np.nan, 0.0]))
    with pytest.raises(LimitError, match="shape"):
        lim.apply(np.zeros(3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lower": [1.0], "upper": [0.0]}, "lower > upper"),
        ({"lower": [0.0, 1.0, 2.0]}, "expected 2 values"),
        ({"max_delta": [0.0]}, "max_delta"),
        ({"lower": [float("nan")]}, "NaN"),  # one value for every dimension
        ({"upper": [float("nan"), 1.0]}, "NaN"),
        ({"lower": [float("inf")]}, "inf is not a limit"),
        ({"upper": [0.0, float("-inf")]}, "inf is not a limit"),
    ],
)
def test_invalid_specs(kwargs, match):
    with pytest.raises(LimitError, match=match):
        ActionLimits.build(2, **kwargs)


def test_infinite_bounds_in_the_open_direction_mean_no_limit():
    lim = ActionLimits.build(2, lower=[float("-inf"), 0.0], upper=[1.0, float("inf")])
    np.testing.assert_array_equal(lim.clamp(np.array([-1e9, 1e9])), [-1e9, 1e9])
