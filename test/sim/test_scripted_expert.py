"""The scripted LIBERO expert: its rotation maths, its via-point distribution, and one real
episode (libero_object task 0, physics only) that must put the soup can in the basket."""

from __future__ import annotations

import numpy as np
import pytest

from snapflow_ros.sim import LiberoSim, SimConfig
from snapflow_ros.sim.scripted_expert import (
    ViaPoints,
    episode_rng,
    expert_task,
    move_action,
    quat_to_matrix,
    rotation_error,
    run_expert_episode,
    sample_via_points,
)

TASK = expert_task("libero_object", 0)


def _rot(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def test_rotation_error_is_the_world_frame_axis_angle():
    current = _rot("x", np.pi) @ _rot("z", 0.2)  # gripper pointing down, turned a little
    np.testing.assert_allclose(rotation_error(current, current), np.zeros(3), atol=1e-12)
    np.testing.assert_allclose(
        rotation_error(_rot("z", 0.3) @ current, current), [0, 0, 0.3], atol=1e-9
    )
    np.testing.assert_allclose(
        rotation_error(_rot("x", -0.25) @ current, current), [-0.25, 0, 0], atol=1e-9
    )
    half = rotation_error(_rot("z", np.pi) @ current, current)
    np.testing.assert_allclose(np.abs(half), [0, 0, np.pi], atol=1e-6)
    n = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)  # half turn about an oblique axis: +-n * pi
    oblique = rotation_error((2 * np.outer(n, n) - np.eye(3)) @ current, current)
    np.testing.assert_allclose(np.abs(oblique @ n), np.pi, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(oblique), np.pi, atol=1e-6)
    # (x, y, z, w) quaternion of a half turn about x
    np.testing.assert_allclose(
        quat_to_matrix(np.array([1.0, 0, 0, 0])), _rot("x", np.pi), atol=1e-12
    )


def test_move_action_caps_the_speed_and_turns_back_to_the_goal_orientation():
    down = np.array([1.0, 0.0, 0.0, 0.0])  # eef quaternion: pointing down
    goal_rot = _rot("z", 0.1) @ quat_to_matrix(down)
    action = move_action(np.array([0.3, 0.0, 0.1]), np.zeros(3), goal_rot, down, 0.7, 1.0)
    np.testing.assert_allclose(action[:3], [0.7, 0.0, 0.7 / 3], atol=1e-12)
    np.testing.assert_allclose(action[3:6], [0, 0, 0.2], atol=1e-9)  # 0.1 rad / 0.5 rad per unit
    assert action[6] == 1.0
    near = move_action(np.array([0.001, 0, 0]), np.zeros(3), quat_to_matrix(down), down, 1.0, -1)
    np.testing.assert_allclose(near[:3], [0.02, 0, 0], atol=1e-12)  # proportional near the goal


def test_via_points_vary_within_the_documented_ranges():
    rng = np.random.default_rng(0)
    draws = [sample_via_points(rng, TASK) for _ in range(300)]
    radius = np.array([np.hypot(*v.approach_offset) for v in draws])
    assert radius.max() <= 0.04 and radius.max() > 0.03
    for name, lo, hi in [
        ("approach_height", TASK.clearance, TASK.clearance + 0.08),
        ("grasp_dz", -0.003, 0.008),
        ("carry_height", *TASK.carry_range),
        ("speed", 0.6, 1.0),
        ("release_height", *TASK.release_above),
    ]:
        values = np.array([getattr(v, name) for v in draws])
        assert lo <= values.min() and values.max() <= hi, name
        assert values.std() > (hi - lo) / 6, name  # spread over the range, not a constant
    drops = np.array([v.drop_offset for v in draws])
    assert np.abs(drops).max() <= TASK.drop_radius and drops.std() > 0.005
    assert {v.close_steps for v in draws} == set(range(12, 19))
    assert {v.grasp_side for v in draws} == {0}  # one way to hold a can
    bowl = expert_task("libero_spatial", 0)  # a bowl is pinched at either side of its rim
    assert {sample_via_points(rng, bowl).grasp_side for _ in range(50)} == {0, 1}
    assert sample_via_points(episode_rng(3, 1), TASK) == sample_via_points(episode_rng(3, 1), TASK)
    assert sample_via_points(episode_rng(3, 1), TASK) != sample_via_points(episode_rng(3, 2), TASK)


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="no scripted expert for libero_goal task 3"):
        expert_task("libero_goal", 3)


def test_one_randomised_episode_puts_the_can_in_the_basket():
    sim = LiberoSim(SimConfig(suite="libero_object", task_index=0, render=False))
    try:
        via = sample_via_points(episode_rng(0, 7), TASK)
        assert via != ViaPoints()
        actions = []
        result = run_expert_episode(
            sim, via, init_state_index=7, on_step=lambda obs, a: actions.append(a)
        )
        assert result.success and result.reason == "success" and sim.check_success()
        assert 100 < result.steps < sim.max_steps and len(actions) == result.steps
        actions = np.array(actions)
        assert np.abs(actions).max() <= 1.0
        assert actions[0, 6] == -1.0 and (actions[:, 6] == 1.0).any()  # opened, closed, ...
        assert actions[-1, 6] == -1.0  # ... and let go
        can = sim.observation.object_pos[TASK.object]
        region = sim.site_pos(TASK.target)
        assert np.abs(can[:2] - region[:2]).max() < 0.06  # inside the basket's region
    finally:
        sim.close()
