"""CommandLoop: ticks, hold modes, starvation accounting, limits on every command."""

from __future__ import annotations

import numpy as np
import pytest

from snapflow_ros.control import (
    ActionLimits,
    BlendConfig,
    CommandLoop,
    auto_replan_threshold,
)

DT = 0.1


def make_loop(**kw) -> CommandLoop:
    kw.setdefault("blend", BlendConfig("none"))
    return CommandLoop(dt=DT, action_dim=2, **kw)


def chunk(value: float, h: int = 5) -> np.ndarray:
    return np.full((h, 2), value) + np.arange(h)[:, None]


def test_idle_before_first_chunk_is_not_starvation():
    loop = make_loop()
    res = loop.tick(0.0)
    assert res.command is None and res.source == "idle" and not res.starved
    assert loop.counters.starved_ticks == 0


def test_plan_then_starvation_then_recovery():
    loop = make_loop()
    loop.add_chunk(chunk(0.0), stamp=0.0, now=0.0)  # actions 0..4 at 0.0..0.4
    cmds = [loop.tick(t) for t in (0.0, 0.1, 0.2, 0.3, 0.4)]
    assert [c.index for c in cmds] == [0, 1, 2, 3, 4]
    assert all(c.source == "plan" for c in cmds)
    starved = [loop.tick(t) for t in (0.5, 0.6)]
    assert all(s.starved and s.command is None for s in starved)
    assert loop.counters.starved_ticks == 2 and loop.counters.starvation_events == 1
    loop.add_chunk(chunk(10.0), stamp=0.6, now=0.65)
    res = loop.tick(0.7)
    assert res.source == "plan" and res.index == 1
    np.testing.assert_array_equal(res.command, [11.0, 11.0])
    assert loop.tick(1.2).starved  # runs out again: provisional while the clock stands
    assert loop.counters.starvation_events == 1
    loop.tick(1.3)  # the clock moved on without a plan: a second event
    assert loop.counters.starvation_events == 2 and loop.counters.starved_ticks == 4


def test_lock_step_wait_is_not_starvation():
    """A simulation clock stands still until the node answers: no plan at that tick is a wait.

    Lock-step LIBERO: the last action of a chunk is sent at t, the clock advances to t + dt,
    the tick there finds the plan used up, the clock stays at t + dt (the bridge re-triggers
    the tick at the same time) until the next chunk arrives; its first action goes out at
    t + dt.
    """
    loop = make_loop()
    loop.add_chunk(chunk(0.0), stamp=0.0, now=0.0)  # actions 0..4 at 0.0..0.4
    for t in (0.0, 0.1, 0.2, 0.3, 0.4):
        assert loop.tick(t).source == "plan"
    assert loop.tick(0.5).starved  # plan used up; the clock now waits for the chunk
    assert loop.tick(0.5).starved  # re-triggered at the same time, still computing
    loop.add_chunk(chunk(10.0), stamp=0.5, now=0.5)
    res = loop.tick(0.5)
    assert res.source == "plan" and res.index == 0
    c = loop.counters
    assert (c.starvation_events, c.starved_ticks, c.plan_waits) == (0, 0, 1)


def test_one_missed_tick_on_a_moving_clock_is_starvation():
    loop = make_loop()
    loop.add_chunk(chunk(0.0), stamp=0.0, now=0.0)
    for t in (0.0, 0.1, 0.2, 0.3, 0.4):
        loop.tick(t)
    loop.tick(0.5)  # no plan; the next chunk arrives 30 ms later (the clock moved)
    loop.add_chunk(chunk(10.0), stamp=0.45, now=0.53)
    c = loop.counters
    assert (c.starvation_events, c.starved_ticks, c.plan_waits) == (1, 1, 0)


def test_a_clock_jump_is_not_starvation_and_drops_the_plan():
    """A simulator's next episode moves the clock 10 s on; a stalled timer by seconds."""
    loop = make_loop()
    loop.add_chunk(chunk(0.0), stamp=0.0, now=0.0)
    assert [loop.tick(t).source for t in (0.0, 0.1, 0.2)] == ["plan"] * 3
    res = loop.tick(10.2)  # the plan ended long ago, but the clock skipped: no starvation
    assert res.command is None and not res.starved
    loop.tick(10.3)  # nothing was executing since the jump: still no starvation
    assert loop.counters.starvation_events == 0 and loop.counters.starved_ticks == 0
    assert loop.counters.clock_jumps == 1 and loop.last_jump == pytest.approx(10.0)
    loop.add_chunk(chunk(5.0), stamp=10.3, now=10.3)
    assert loop.tick(10.3).source == "plan"


def test_a_plan_computed_before_a_jump_is_not_executed_after_it():
    loop = make_loop()
    loop.add_chunk(chunk(0.0, h=40), stamp=0.0, now=0.0)  # covers 0.0..3.9 s
    assert loop.tick(0.0).index == 0
    res = loop.tick(1.5)  # 1.5 s without a tick (> jump_after 1 s): the plan is dropped
    assert res.source == "idle" and res.command is None
    assert loop.counters.clock_jumps == 1 and loop.counters.starvation_events == 0
    loop.tick(1.6)
    assert loop.counters.clock_jumps == 1  # one jump, one event
    short = make_loop(jump_after=5.0)
    short.add_chunk(chunk(0.0, h=40), stamp=0.0, now=0.0)
    short.tick(0.0)
    assert short.tick(1.5).index == 15 and short.counters.clock_jumps == 0


def test_jump_after_must_be_positive():
    with pytest.raises(ValueError, match="jump_after"):
        make_loop(jump_after=0.0)


def test_a_chunk_from_the_future_never_blocks_the_plan():
    """A stamp 10 s ahead (clock skew) must not become a plan that holds off re-planning."""
    loop = make_loop()
    res = loop.add_chunk(chunk(0.0), stamp=110.0, now=100.0)
    assert not res.accepted and res.early and "10.000 s ahead" in res.reason
    assert loop.scheduler.plan is None and loop.needs_chunk(100.0, 0.0)
    assert loop.counters.chunks_early == 1 and loop.counters.chunks_late == 0
    assert loop.tick(100.0).command is None
    # a lead within max_lead (lock-step: observation stamped just after the tick) is fine
    assert loop.add_chunk(chunk(0.0), stamp=100.00001, now=100.0).accepted
    loop.set_max_lead(0.0)
    assert not loop.add_chunk(chunk(0.0), stamp=100.1, now=100.0).accepted
    with pytest.raises(ValueError, match="max_lead"):
        loop.set_max_lead(float("inf"))


@pytest.mark.parametrize(
    ("mode", "expected"), [("none", None), ("last", [1.0, 1.0]), ("zero", [0.5, 0.5])]
)
def test_unhealthy_drops_plan_and_holds(mode, expected):
    limits = ActionLimits.build(2, lower=[0.5], upper=[10.0])
    loop = make_loop(hold_mode=mode, limits=limits)
    loop.add_chunk(chunk(0.0), stamp=0.0, now=0.0)
    loop.tick(0.0)
    loop.tick(0.1)  # last command: [1, 1]
    res = loop.tick(0.2, healthy=False)
    if expected is None:
        assert res.command is None and res.source == "idle"
    else:
        assert res.source == "hold"
        np.testing.assert_array_equal(res.command, expected)
    # the plan is gone: healthy again but nothing until a new chunk; not starvation
    res = loop.tick(0.3, healthy=True)
    assert res.source != "plan" and not res.starved
    assert loop.counters.unhealthy_ticks == 1


def test_every_command_is_limited():
    limits = ActionLimits.build(2, lower=[-1.0], upper=[1.0], max_delta=[0.5])
    loop = make_loop(limits=limits)
    loop.add_chunk(np.array([[0.0, 0.0], [5.0, -5.0], [5.0, -5.0], [5.0, -5.0]]), 0.0, 0.0)
    got = [loop.tick(t).command.tolist() for t in (0.0, 0.1, 0.2, 0.3)]
    assert got == [[0.0, 0.0], [0.5, -0.5], [1.0, -1.0], [1.0, -1.0]]


def test_add_chunk_rejects_wrong_dim_and_counts_late():
    loop = make_loop()
    with pytest.raises(ValueError):
        loop.add_chunk(np.zeros((5, 3)), 0.0, 0.0)
    res = loop.add_chunk(chunk(0.0), stamp=0.0, now=10.0)
    assert not res.accepted and loop.counters.chunks_late == 1
    assert loop.counters.actions_skipped == 5


def test_reset_clears_everything():
    loop = make_loop(hold_mode="last")
    loop.add_chunk(chunk(0.0), 0.0, 0.0)
    loop.tick(0.0)
    loop.reset()
    assert loop.last_command is None and loop.counters.commands == 0
    assert loop.tick(0.1).command is None
    loop.reset()  # e.g. a node activated again after a while: no clock jump from before
    loop.tick(60.0)
    assert loop.counters.clock_jumps == 0


@pytest.mark.parametrize(
    ("latency", "expected"), [(0.0, 0.2), (0.1, 0.35), (0.2, 0.5), (10.0, 0.9)]
)
def test_auto_replan_threshold(latency, expected):
    assert auto_replan_threshold(latency, dt=0.1, horizon=10) == pytest.approx(expected)
