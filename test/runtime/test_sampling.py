"""Euler sampler: step times and integration against closed forms."""

import pytest
import torch

from snapflow_ros.runtime.sampling import euler_sample, step_times


def test_step_times_plain_and_target_time():
    assert step_times(1, target_time=False) == [(1.0, 1.0)]
    assert step_times(1, target_time=True) == [(1.0, 0.0)]
    pairs = step_times(4, target_time=True)
    assert [t for t, _ in pairs] == [1.0, 0.75, 0.5, 0.25]
    assert [s for _, s in pairs] == [0.75, 0.5, 0.25, 0.0]
    assert all(t == s for t, s in step_times(10, target_time=False))


@pytest.mark.parametrize("bad", [0, -3])
def test_step_times_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match="num_steps"):
        step_times(bad, target_time=False)


def test_constant_velocity_reaches_data_in_any_step_count():
    noise = torch.randn(3, 5, 2)
    data = torch.randn(3, 5, 2)
    for n in (1, 2, 7):
        out = euler_sample(lambda x, t, s: noise - data, noise, n)
        torch.testing.assert_close(out, data)


def test_linear_field_matches_explicit_euler():
    # v = x: each step multiplies by (1 - 1/N), so N steps give (1 - 1/N)^N * x0.
    x0 = torch.ones(1, 1, 1)
    out = euler_sample(lambda x, t, s: x, x0, 4)
    assert out.item() == pytest.approx((1 - 0.25) ** 4)


def test_velocity_receives_target_times():
    seen = []

    def velocity(x, t, s):
        seen.append((t[0].item(), s[0].item()))
        return torch.zeros_like(x)

    euler_sample(velocity, torch.zeros(2, 1, 1), 2, target_time=True)
    assert seen == [(1.0, 0.5), (0.5, 0.0)]


def test_step_times_ask_only_for_trained_jumps():
    jumps = [1.0, 0.5, 0.25]
    assert step_times(1, True, jumps) == [(1.0, 0.0)]
    assert [s for _, s in step_times(2, True, jumps)] == [0.5, 0.0]
    assert [s for _, s in step_times(4, True, jumps)] == [0.75, 0.5, 0.25, 0.0]
    for steps in (3, 5, 10):  # 1/N never trained: instantaneous velocity, s = t
        assert all(t == s for t, s in step_times(steps, True, jumps))
    assert all(t == s for t, s in step_times(2, True, [1.0]))
    assert step_times(2, True, None) == [(1.0, 0.5), (0.5, 0.0)]  # None: any jump length
    assert all(t == s for t, s in step_times(4, False, jumps))  # plain models: always s = t
