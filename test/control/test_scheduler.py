"""Chunk scheduling: latency compensation, per-tick indices and blending, with exact values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from snapflow_ros.control import (
    BlendConfig,
    ChunkScheduler,
    action_index,
    skipped_actions,
)

DT = 0.1


def ramp(h: int = 10, d: int = 2, offset: float = 0.0) -> np.ndarray:
    """Action k = offset + k in every dimension (dimension j adds 100*j)."""
    return offset + np.arange(h, dtype=np.float64)[:, None] + 100.0 * np.arange(d)[None, :]


# ---------------------------------------------------------------- indices and skipping
@pytest.mark.parametrize(
    ("t", "expected"),
    [(0.0, 0), (0.05, 1), (0.1, 1), (0.1000001, 1), (0.13, 2), (0.2, 2), (-0.3, -3)],
)
def test_action_index_is_first_action_not_in_the_past(t, expected):
    assert action_index(t, stamp=0.0, dt=DT) == expected


@pytest.mark.parametrize(
    ("latency", "expected"),
    [(0.0, 0), (0.01, 1), (0.1, 1), (0.23, 3), (0.3, 3), (0.95, 10), (5.0, 10), (-1.0, 0)],
)
def test_skipped_actions_are_those_whose_time_passed(latency, expected):
    # action k is due at 100 + k*dt; it is skipped when 100 + k*dt < arrival time
    assert skipped_actions(100.0 + latency, 100.0, DT, 10) == expected


def test_latency_compensation_starts_at_first_future_action():
    s = ChunkScheduler(DT, BlendConfig("none"))
    res = s.add_chunk(ramp(), stamp=50.0, now=50.23)
    assert res.accepted and res.skipped == 3 and res.overlap == 0 and res.horizon == 10
    # a tick just after arrival sends action 3 (due at 50.3), never 0..2
    np.testing.assert_array_equal(s.command_at(50.24), [3.0, 103.0])
    np.testing.assert_array_equal(s.command_at(50.30), [3.0, 103.0])
    np.testing.assert_array_equal(s.command_at(50.31), [4.0, 104.0])
    np.testing.assert_array_equal(s.command_at(50.9), [9.0, 109.0])
    assert s.command_at(50.91) is None  # plan exhausted
    # a tick stamped before the arrival still cannot reach a skipped action
    np.testing.assert_array_equal(s.command_at(50.05), [3.0, 103.0])


def test_late_chunk_is_rejected_and_keeps_the_old_plan():
    s = ChunkScheduler(DT, BlendConfig("none"))
    s.add_chunk(ramp(), stamp=10.0, now=10.05)
    res = s.add_chunk(ramp(offset=50.0), stamp=9.0, now=10.1)
    assert not res.accepted and res.skipped == 10
    np.testing.assert_array_equal(s.command_at(10.2), [2.0, 102.0])


def test_remaining_and_needs_chunk():
    s = ChunkScheduler(DT)
    assert s.remaining(0.0) == -math.inf and s.needs_chunk(0.0, 0.0)
    s.add_chunk(ramp(), stamp=1.0, now=1.0)
    assert s.remaining(1.5) == pytest.approx(0.4)  # last action due at 1.9
    assert s.needs_chunk(1.5, 0.5) and not s.needs_chunk(1.5, 0.3)


def test_rejects_nan_and_bad_shapes():
    s = ChunkScheduler(DT)
    bad = ramp()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        s.add_chunk(bad, 0.0, 0.0)
    with pytest.raises(ValueError, match="H x D"):
        s.add_chunk(np.zeros(5), 0.0, 0.0)


# ---------------------------------------------------------------- blending
def test_blend_weights_exact():
    np.testing.assert_allclose(BlendConfig("linear").weights(3), [0.25, 0.5, 0.75])
    np.testing.assert_allclose(BlendConfig("exponential", alpha=0.5).weights(3), [0.5, 0.75, 0.875])
    np.testing.assert_allclose(BlendConfig("none").weights(2), [1.0, 1.0])
    with pytest.raises(ValueError):
        BlendConfig("cubic")
    with pytest.raises(ValueError):
        BlendConfig("exponential", alpha=0.0)


def _two_chunks(mode: str, **kw) -> ChunkScheduler:
    s = ChunkScheduler(DT, BlendConfig(mode, **kw))
    s.add_chunk(np.zeros((10, 1)), stamp=0.0, now=0.0)  # old plan: 0 at 0.0 .. 0.9
    # new chunk of ones captured at 0.5, arriving at 0.62: skips 0.5, 0.6; overlap 0.7..0.9
    res = s.add_chunk(np.ones((10, 1)), stamp=0.5, now=0.62)
    assert res.skipped == 2 and res.overlap == 3
    return s


def test_linear_blend_exact_values():
    s = _two_chunks("linear")
    got = [s.command_at(t)[0] for t in (0.7, 0.8, 0.9, 1.0, 1.4)]
    np.testing.assert_allclose(got, [0.25, 0.5, 0.75, 1.0, 1.0])


def test_exponential_blend_exact_values():
    s = _two_chunks("exponential", alpha=0.5)
    got = [s.command_at(t)[0] for t in (0.7, 0.8, 0.9, 1.0)]
    np.testing.assert_allclose(got, [0.5, 0.75, 0.875, 1.0])


def test_no_blend_switches_at_once():
    s = _two_chunks("none")
    got = [s.command_at(t)[0] for t in (0.7, 0.8, 0.9, 1.0)]
    np.testing.assert_allclose(got, [1.0, 1.0, 1.0, 1.0])


def test_max_blend_steps_caps_the_overlap():
    s = ChunkScheduler(DT, BlendConfig("linear", max_steps=1))
    s.add_chunk(np.zeros((10, 1)), stamp=0.0, now=0.0)
    res = s.add_chunk(np.ones((10, 1)), stamp=0.5, now=0.62)
    assert res.overlap == 1
    got = [s.command_at(t)[0] for t in (0.7, 0.8, 0.9)]
    np.testing.assert_allclose(got, [0.5, 1.0, 1.0])


def test_blend_against_offset_grid_uses_what_old_plan_would_command():
    # old plan stamped 0.0; new chunk stamped 0.27 (not on the old grid), arrives at 0.3
    s = ChunkScheduler(DT, BlendConfig("linear"))
    s.add_chunk(ramp(d=1), stamp=0.0, now=0.0)  # old: k at k*0.1
    s.add_chunk(np.full((10, 1), 100.0), stamp=0.27, now=0.3)
    # new actions k=1.. due at 0.37, 0.47, ...; skipped: k=0 (0.27 < 0.3)
    # old plan at 0.37 -> index ceil(3.7)=4 -> 4.0 ; at 0.47 -> 5 ; ... ; 0.87 -> 9 ; 0.97 -> none
    # overlap n = 6 (0.37 .. 0.87), linear weights (i+1)/7
    plan = s.plan
    assert plan.first == 1
    expected = [(i + 1) / 7 * 100 + (1 - (i + 1) / 7) * (4 + i) for i in range(6)]
    np.testing.assert_allclose(plan.values[1:7, 0], expected)
    np.testing.assert_allclose(plan.values[7:, 0], 100.0)


def test_linear_blending_is_continuous_at_the_boundary():
    """The step at a chunk switch is a fraction of the gap between the two chunks."""
    for mode, max_jump in (("linear", 0.25 + 1e-9), ("exponential", 0.5 + 1e-9), ("none", 1.0)):
        s = _two_chunks(mode)
        seq = [s.command_at(t)[0] for t in np.arange(0.7, 1.2, 0.1)]
        # old plan commanded 0 up to 0.6; first blended command must move at most max_jump
        jumps = np.abs(np.diff([0.0, *seq]))
        assert jumps.max() <= max_jump, (mode, seq)


def test_blend_skips_when_action_size_changes():
    s = ChunkScheduler(DT, BlendConfig("linear"))
    s.add_chunk(np.zeros((10, 2)), 0.0, 0.0)
    res = s.add_chunk(np.ones((10, 3)), 0.5, 0.5)
    assert res.overlap == 0
    np.testing.assert_array_equal(s.command_at(0.6), [1.0, 1.0, 1.0])


@pytest.mark.parametrize(("lead", "accepted"), [(0.0, True), (0.25, True), (0.26, False)])
def test_first_action_further_ahead_than_max_lead_is_rejected(lead, accepted):
    s = ChunkScheduler(DT, BlendConfig("none"), max_lead=0.25)
    s.add_chunk(ramp(), stamp=0.0, now=0.0)
    res = s.add_chunk(ramp(offset=50.0), stamp=1.0 + lead, now=1.0)
    assert res.accepted is accepted and res.early is not accepted
    if not accepted:  # the old plan stays
        np.testing.assert_array_equal(s.command_at(0.5), [5.0, 105.0])
    # a stamp in the past is never early, although its first future action is due later
    s2 = ChunkScheduler(DT, max_lead=0.0)
    assert s2.add_chunk(ramp(), stamp=0.98, now=1.0).accepted


def test_max_lead_must_be_finite():
    with pytest.raises(ValueError, match="max_lead"):
        ChunkScheduler(DT, max_lead=math.inf)
    with pytest.raises(ValueError, match="max_lead"):
        ChunkScheduler(DT, max_lead=-0.1)
