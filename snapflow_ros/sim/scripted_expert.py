"""A scripted pick-and-place expert for LIBERO tasks: way-points on the simulator's object poses.

The expert reads privileged state (object and region positions from the simulator) and drives
the end effector through a short sequence of phases with LIBERO's own action space (7-D OSC
deltas + gripper, 20 Hz):

``approach`` (above the object, from a side) -> ``align`` (straight above the grasp point,
fingertips clear of the object) -> ``descend`` (vertically to the grasp point) -> ``close``
-> ``lift`` (straight up to the carry height, before any sideways motion) -> ``carry`` (the
OBJECT, not the end effector, over the target) -> ``lower`` (object at the release height
above the target) -> ``release`` -> ``retreat``. If the object slips out of the hand while it
is carried, the expert opens and starts again from ``approach``.

Per-episode randomness lives in :class:`ViaPoints` (drawn by :func:`sample_via_points`): the
approach side and height, the grasp height, how long the gripper closes, the carry height, the
speed and the drop point, so that demonstrations of one scene differ. The distribution is
documented in ``docs/libero.md``. No ROS here; the controller itself needs only
:class:`~snapflow_ros.sim.libero_env.SimObservation` values and a target position.

Success over the 50 benchmark initial states (physics only)::

    python -m snapflow_ros.sim.scripted_expert --suite libero_object --task 0 --init-states 0-49
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from snapflow_ros.sim.libero_env import LiberoSim, SimObservation

POS_SCALE = 0.05  # m per action unit per step (OSC_POSE output_max)
ROT_SCALE = 0.5  # rad per action unit per step
OPEN, CLOSE = -1.0, 1.0


@dataclass(frozen=True)
class PickPlaceTask:
    """What the expert moves where, for one LIBERO task.

    ``target`` is a MuJoCo site (a region such as ``basket_1_contain_region``) when
    ``target_is_site``, otherwise an object whose base position is the target. Ranges are the
    bounds of the per-episode uniform draws (:func:`sample_via_points`), in metres.
    """

    suite: str
    task_index: int
    object: str
    target: str
    target_is_site: bool = True
    # eef - object at the grasp; one of these per episode (e.g. either side of a bowl's rim)
    grasp_offsets: tuple[tuple[float, float, float], ...] = ((0.0, 0.0, 0.0),)
    clearance: float = 0.06  # align point above the grasp point: fingertips clear the object
    carry_range: tuple[float, float] = (0.24, 0.30)  # end-effector z while carrying (world)
    release_above: tuple[float, float] = (0.08, 0.12)  # object above the target at release
    drop_radius: float = 0.02  # drop point: up to this far from the target centre in x and y


EXPERT_TASKS: dict[tuple[str, int], PickPlaceTask] = {
    # Alphabet soup can -> basket: the can's position is its centre (8 cm tall can); the hand
    # cannot go lower than ~7 mm above it (the palm meets the can's top), so the grasp point is
    # 1 cm above the centre. The basket region's "In" check only needs the can's centre inside
    # the region, so the can is dropped from ~10 cm above the region's centre.
    ("libero_object", 0): PickPlaceTask(
        "libero_object",
        0,
        "alphabet_soup_1",
        "basket_1_contain_region",
        grasp_offsets=((0.0, 0.0, 0.01),),
    ),
    # Black bowl -> plate (table at z 0.90): the bowl's position is its base; it is pinched at
    # its rim, on either side along y (the fingers close along y), 3.5 cm above the base, and
    # set down just above the plate ("On" needs contact and the centres within 3 cm).
    ("libero_spatial", 0): PickPlaceTask(
        "libero_spatial",
        0,
        "akita_black_bowl_1",
        "plate_1",
        target_is_site=False,
        grasp_offsets=((0.0, 0.05, 0.035), (0.0, -0.05, 0.035)),
        carry_range=(1.05, 1.12),
        release_above=(0.02, 0.04),
        drop_radius=0.01,
    ),
}


def expert_task(suite: str, task_index: int) -> PickPlaceTask:
    """The expert's description of a task, or ValueError naming the tasks it knows."""
    try:
        return EXPERT_TASKS[(suite, int(task_index))]
    except KeyError:
        known = ", ".join(f"{s} {t}" for s, t in EXPERT_TASKS)
        raise ValueError(
            f"no scripted expert for {suite} task {task_index} (known: {known})"
        ) from None


@dataclass(frozen=True)
class ViaPoints:
    """One episode's via-point parameters (metres, steps, action units)."""

    approach_offset: tuple[float, float] = (0.0, 0.0)  # approach point - object, x y
    approach_height: float = 0.10  # approach point above the grasp point (>= the clearance)
    grasp_side: int = 0  # which of the task's grasp offsets
    grasp_dz: float = 0.0  # grasp point above the task's grasp offset
    close_steps: int = 15
    carry_height: float = 0.25  # end-effector z while carrying (world frame)
    speed: float = 1.0  # largest action component while moving
    drop_offset: tuple[float, float] = (0.0, 0.0)  # object over target centre + this, x y
    release_height: float = 0.10  # object above the target when the gripper opens
    release_steps: int = 10  # open-gripper steps before retreating

    def as_dict(self) -> dict[str, object]:
        """Plain values (for dataset metadata and logs)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def sample_via_points(rng: np.random.Generator, task: PickPlaceTask) -> ViaPoints:
    """Draw one episode's via-points (the distribution ``docs/libero.md`` documents)."""
    angle = rng.uniform(0.0, 2.0 * np.pi)
    radius = rng.uniform(0.0, 0.04)
    lo, hi = task.release_above
    sides = len(task.grasp_offsets)
    return ViaPoints(
        approach_offset=(float(radius * np.cos(angle)), float(radius * np.sin(angle))),
        approach_height=float(task.clearance + rng.uniform(0.0, 0.08)),
        # (no draw for a single grasp: the other draws stay those of the first datasets)
        grasp_side=int(rng.integers(sides)) if sides > 1 else 0,
        grasp_dz=float(rng.uniform(-0.003, 0.008)),
        close_steps=int(rng.integers(12, 19)),
        carry_height=float(rng.uniform(*task.carry_range)),
        speed=float(rng.uniform(0.6, 1.0)),
        drop_offset=(
            float(rng.uniform(-task.drop_radius, task.drop_radius)),
            float(rng.uniform(-task.drop_radius, task.drop_radius)),
        ),
        release_height=float(rng.uniform(lo, hi)),
        release_steps=int(rng.integers(8, 13)),
    )


def quat_to_matrix(quat: np.ndarray) -> np.ndarray:
    """(x, y, z, w) unit quaternion -> 3x3 rotation matrix."""
    x, y, z, w = np.asarray(quat, np.float64) / np.linalg.norm(quat)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_error(goal: np.ndarray, current: np.ndarray) -> np.ndarray:
    """World-frame axis-angle of ``goal @ current.T`` (what OSC's rotation delta applies)."""
    rot = goal @ current.T
    cos = np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos))
    axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    if angle < 1e-6:
        return 0.5 * axis
    if np.pi - angle < 1e-4:  # half turn: rot = 2 n n^T - I, either sign of n will do
        outer = (rot + np.eye(3)) / 2.0
        i = int(np.argmax(np.diag(outer)))
        return outer[:, i] / np.sqrt(outer[i, i]) * angle
    return axis / (2.0 * np.sin(angle)) * angle


def move_action(
    goal: np.ndarray,
    eef: np.ndarray,
    goal_rot: np.ndarray,
    eef_quat: np.ndarray,
    speed: float,
    gripper: float,
) -> np.ndarray:
    """7-D action towards an end-effector goal: proportional, position components <= speed."""
    pos = (np.asarray(goal) - np.asarray(eef)) / POS_SCALE
    peak = float(np.max(np.abs(pos)))
    if peak > speed:
        pos *= speed / peak
    rot = np.clip(rotation_error(goal_rot, quat_to_matrix(eef_quat)) / ROT_SCALE, -1.0, 1.0)
    return np.concatenate([pos, rot, [gripper]]).astype(np.float64)


class ScriptedExpert:
    """Way-point pick-and-place controller; call :meth:`reset` then :meth:`act` every step."""

    def __init__(self, task: PickPlaceTask, via: ViaPoints | None = None) -> None:
        self.task = task
        self.via = via or ViaPoints()
        self.phase = "approach"
        self.retries = 0
        self._phase_steps = 0
        self._goal_rot = np.eye(3)
        self._hold = np.zeros(3)
        self._grip_offset = np.zeros(3)  # object - eef while held
        self._last_z = 0.0

    def reset(self, first: SimObservation, via: ViaPoints | None = None) -> None:
        """Start an episode; the end effector keeps its first orientation (gripper down)."""
        if via is not None:
            self.via = via
        self.phase = "approach"
        self.retries = 0
        self._phase_steps = 0
        self._goal_rot = quat_to_matrix(first.eef_quat)
        self._hold = np.asarray(first.eef_pos, np.float64).copy()

    def _enter(self, phase: str, eef: np.ndarray) -> None:
        self.phase = phase
        self._phase_steps = 0
        self._hold = eef.copy()

    def act(self, obs: SimObservation, target: np.ndarray) -> np.ndarray:
        """The action for this step given the observation and the target's position."""
        via, task = self.via, self.task
        eef = np.asarray(obs.eef_pos, np.float64)
        obj = np.asarray(obs.object_pos[task.object], np.float64)
        offset = task.grasp_offsets[via.grasp_side]
        grasp = obj + np.asarray(offset) + np.array([0.0, 0.0, via.grasp_dz])
        self._phase_steps += 1
        steps = self._phase_steps
        held = self.phase in ("lift", "carry", "lower")
        if held and np.linalg.norm(obj - eef - self._grip_offset) > 0.04:
            self.retries += 1  # dropped: open and start over
            self._enter("approach", eef)
        phase = self.phase
        if phase == "approach":
            goal = grasp + np.array([*via.approach_offset, via.approach_height])
            if np.linalg.norm(goal - eef) < 0.01 or steps > 60:
                self._enter("align", eef)
            return self._move(goal, obs, OPEN)
        if phase == "align":
            goal = grasp + np.array([0.0, 0.0, task.clearance])
            if np.linalg.norm(goal - eef) < 0.005 or steps > 40:
                self._enter("descend", eef)
            return self._move(goal, obs, OPEN)
        if phase == "descend":
            stalled = steps > 5 and abs(eef[2] - self._last_z) < 2e-4
            self._last_z = float(eef[2])
            if np.linalg.norm(grasp - eef) < 0.006 or stalled or steps > 50:
                self._enter("close", eef)
            return self._move(grasp, obs, OPEN)
        if phase == "close":
            if steps >= via.close_steps:
                self._grip_offset = obj - eef
                self._enter("lift", eef)
            return self._move(self._hold, obs, CLOSE)
        if phase == "lift":
            goal = np.array([self._hold[0], self._hold[1], via.carry_height])
            if eef[2] > via.carry_height - 0.01 or steps > 60:
                self._enter("carry", eef)
            return self._move(goal, obs, CLOSE)
        offset = obj - eef
        drop = np.asarray(target, np.float64) + np.array([*via.drop_offset, 0.0])
        if phase == "carry":
            goal = np.array([drop[0] - offset[0], drop[1] - offset[1], via.carry_height])
            if np.linalg.norm((goal - eef)[:2]) < 0.01 or steps > 80:
                self._enter("lower", eef)
            return self._move(goal, obs, CLOSE)
        if phase == "lower":
            goal = drop - offset + np.array([0.0, 0.0, via.release_height])
            goal[2] = min(goal[2], via.carry_height)
            if np.linalg.norm(goal - eef) < 0.01 or steps > 40:
                self._enter("release", eef)
            return self._move(goal, obs, CLOSE)
        if phase == "release":
            if steps >= via.release_steps:
                self._enter("retreat", eef)
            return self._move(self._hold, obs, OPEN)
        goal = np.array([self._hold[0], self._hold[1], via.carry_height])
        return self._move(goal, obs, OPEN)

    def _move(self, goal: np.ndarray, obs: SimObservation, gripper: float) -> np.ndarray:
        return move_action(goal, obs.eef_pos, self._goal_rot, obs.eef_quat, self.via.speed, gripper)


@dataclass
class ExpertEpisode:
    """What one expert episode gave."""

    success: bool
    steps: int
    reason: str
    retries: int
    via: ViaPoints


StepCallback = Callable[[SimObservation, np.ndarray], None]


def target_position(sim: LiberoSim, obs: SimObservation, task: PickPlaceTask) -> np.ndarray:
    """Where the task's object goes: the target site's position or the target object's base."""
    if task.target_is_site:
        return sim.site_pos(task.target)
    return np.asarray(obs.object_pos[task.target], np.float64)


PRIVILEGED_STATE_NAMES: tuple[str, ...] = tuple(
    f"privileged_{part}_pos_{axis}" for part in ("object", "target") for axis in "xyz"
)


def privileged_state(obs: SimObservation, target: np.ndarray, task: PickPlaceTask) -> np.ndarray:
    """The task object's position and its target's (6 values, world frame, metres; names
    :data:`PRIVILEGED_STATE_NAMES`): what a ``--privileged`` dataset appends to
    ``observation.state`` and the bridge publishes with ``privileged_state: true``."""
    return np.concatenate(
        [np.asarray(obs.object_pos[task.object], np.float64), np.asarray(target, np.float64)]
    )


def run_expert_episode(
    sim: LiberoSim,
    via: ViaPoints,
    init_state_index: int | None = None,
    init_state: np.ndarray | None = None,
    on_step: StepCallback | None = None,
) -> ExpertEpisode:
    """Reset ``sim`` (benchmark state or an explicit one) and run the expert until the end.

    ``on_step(observation, action)`` sees every observation with the action taken from it.
    """
    task = expert_task(sim.config.suite, sim.config.task_index)
    obs = sim.reset(init_state_index=init_state_index, init_state=init_state)
    expert = ScriptedExpert(task, via)
    expert.reset(obs)
    result = None
    while not sim.done:
        action = np.clip(expert.act(obs, target_position(sim, obs, task)), -1.0, 1.0)
        if on_step is not None:
            on_step(obs, action)
        result = sim.step(action)
        obs = result.observation
    return ExpertEpisode(
        success=bool(result is not None and result.success),
        steps=sim.steps,
        reason=result.reason if result is not None else "",
        retries=expert.retries,
        via=via,
    )


def episode_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of episode ``index`` of a run seeded with ``seed``."""
    return np.random.default_rng([int(seed), int(index)])


def _indices(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        first, dash, last = part.partition("-")
        out += list(range(int(first), int(last) + 1)) if dash else [int(first)]
    return out


def main(argv: list[str] | None = None) -> int:
    """Success of the expert over benchmark initial states, physics only (no rendering)."""
    import argparse
    import json
    import time

    from snapflow_ros.sim.libero_env import SimConfig

    p = argparse.ArgumentParser(
        prog="python -m snapflow_ros.sim.scripted_expert",
        description="Run the scripted LIBERO expert on benchmark initial states (physics only).",
    )
    p.add_argument("--suite", default="libero_object")
    p.add_argument("--task", type=int, default=0)
    p.add_argument("--init-states", default="0-49", help="e.g. 0-49 or 0,3,7")
    p.add_argument("--seed", type=int, default=0, help="seed of the via-point randomness")
    p.add_argument("--fixed", action="store_true", help="nominal via-points, no randomness")
    p.add_argument("--json", default="", help="write per-episode results here")
    args = p.parse_args(argv)
    task = expert_task(args.suite, args.task)
    sim = LiberoSim(SimConfig(suite=args.suite, task_index=args.task, render=False))
    episodes = []
    start = time.perf_counter()
    try:
        for i in _indices(args.init_states):
            via = ViaPoints() if args.fixed else sample_via_points(episode_rng(args.seed, i), task)
            ep = run_expert_episode(sim, via, init_state_index=i)
            episodes.append({"init_state_index": i, **asdict(ep), "via": via.as_dict()})
            print(
                f"init {i:2d}: {'SUCCESS' if ep.success else 'fail'} ({ep.reason}) "
                f"{ep.steps} steps, {ep.retries} retries",
                flush=True,
            )
    finally:
        sim.close()
    wins = sum(e["success"] for e in episodes)
    summary = {
        "suite": args.suite,
        "task_index": args.task,
        "seed": args.seed,
        "randomized": not args.fixed,
        "episodes": len(episodes),
        "successes": wins,
        "success_rate": wins / len(episodes) if episodes else None,
        "mean_steps": float(np.mean([e["steps"] for e in episodes])) if episodes else None,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary))
    if args.json:
        Path(args.json).write_text(json.dumps({**summary, "episodes": episodes}, indent=2))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
