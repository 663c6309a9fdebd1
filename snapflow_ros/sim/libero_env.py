"""A LIBERO task as a plain Python simulator with LeRobot's observation conventions.

:class:`LiberoSim` does what LeRobot 0.6.1's ``LiberoEnv`` + ``LiberoProcessorStep`` do for
its LIBERO datasets and evaluation, so a policy sees the same inputs here as there:

* reset: (hard) reset, benchmark initial state ``init_state_index`` of the task (or of a set
  of fresh placements, ``SimConfig.init_states``; or an explicit state), then
  ``settle_steps`` (10) no-op steps ``[0, 0, 0, 0, 0, 0, -1]``; relative (delta) OSC control;
* images: ``agentview_image`` and ``robot0_eye_in_hand_image`` flipped on both axes
  (``[::-1, ::-1]``: MuJoCo renders them upside down), HxWx3 uint8 RGB;
* state (8): end-effector position (3) + axis-angle of the end-effector quaternion (3,
  LeRobot's ``_quat2axisangle``: angle ``2*acos(w)``, NOT folded into [0, pi]) + gripper
  finger positions (2);
* actions: 7-D OSC_POSE deltas + gripper (-1 open, +1 close), in [-1, 1], 20 Hz;
* success: ``env.check_success()``; an episode ends on success or after the suite's step
  limit (LeRobot's ``TASK_SUITE_MAX_STEPS``), settle steps not counted.

Rendering can be switched off (physics only) and, for speed, shadows and reflections can be
dropped (``fast_render``: images then differ from the datasets'). The discarded frames of the
settle steps are not rendered (blank camera sensors): neither the physics nor the sampling of
the first observation change (tested against LeRobot's env). No ROS here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snapflow_ros.sim.libero_setup import LiberoPaths, prepare_libero
from snapflow_ros.sim.placements import default_init_states, episode_seed, read_init_states
from snapflow_ros.sim.suites import (
    ACTION_DIM,
    CONTROL_FREQ,
    NOOP_ACTION,
    SETTLE_STEPS,
    check_suite,
    max_steps_for,
)

CAMERAS: dict[str, str] = {"agentview": "agentview_image", "wrist": "robot0_eye_in_hand_image"}
MUJOCO_CAMERAS: dict[str, str] = {"agentview": "agentview", "wrist": "robot0_eye_in_hand"}
ARM_JOINTS = tuple(f"robot0_joint{i}" for i in range(1, 8))
GRIPPER_JOINTS = ("gripper0_finger_joint1", "gripper0_finger_joint2")
OUT_OF_RANGE = ("clip", "reject")
ARM_STARTS = ("benchmark", "fixed")
ARM_START_STREAM = 7  # mixed into a placement seed for the arm's start pose draw
# Fresh placements: "settled" redraws a placement whose reset moves an object further than the
# task's benchmark states ever move one (settle_limit_m); "any" keeps LIBERO's first draw.
PLACEMENTS = ("settled", "any")
PLACEMENT_STREAM = 11  # mixed into a placement seed for its redraws
MAX_PLACEMENT_DRAWS = 50
SETTLE_FLOOR_M = 0.02  # a settle shift up to this is always allowed
_BENCHMARK_SHIFTS: dict[tuple[str, int, int], list[float]] = {}  # (suite, task, settle steps)
LEROBOT_STATE_NAMES = (
    "eef_pos_x", "eef_pos_y", "eef_pos_z",
    "eef_axis_angle_x", "eef_axis_angle_y", "eef_axis_angle_z",
    "gripper_qpos_left", "gripper_qpos_right",
)  # fmt: skip


class ActionError(ValueError):
    """An action the simulator refuses; says why. ``kind``: type, length, nonfinite or range."""

    def __init__(self, message: str, kind: str = "type") -> None:
        super().__init__(message)
        self.kind = kind


def quat_to_axis_angle_lerobot(quat: np.ndarray) -> np.ndarray:
    """(x, y, z, w) quaternion -> axis-angle exactly as LeRobot's ``LiberoProcessorStep``.

    float32 like LeRobot; the angle is ``2*acos(w)`` (up to 2*pi for w < 0, no sign folding),
    zero vector when ``sqrt(1 - w^2) <= 1e-10``.
    """
    q = np.asarray(quat, np.float32).reshape(4)
    w = np.float32(min(max(float(q[3]), -1.0), 1.0))
    den = np.sqrt(np.float32(max(float(np.float32(1.0) - w * w), 0.0)))
    if not den > 1e-10:
        return np.zeros(3, np.float32)
    angle = np.float32(2.0) * np.arccos(w)
    return (q[:3] / den * angle).astype(np.float32)


def lerobot_state(
    eef_pos: np.ndarray, eef_quat: np.ndarray, gripper_qpos: np.ndarray
) -> np.ndarray:
    """LeRobot's 8-D LIBERO state: eef pos (3) + axis-angle (3) + gripper qpos (2), float32."""
    return np.concatenate(
        [
            np.asarray(eef_pos, np.float32).reshape(3),
            quat_to_axis_angle_lerobot(eef_quat),
            np.asarray(gripper_qpos, np.float32).reshape(2),
        ]
    ).astype(np.float32)


def validate_action(values: Any, out_of_range: str = "clip") -> tuple[np.ndarray, bool]:
    """Check a 7-D action; returns ``(action, clipped)`` or raises :class:`ActionError`.

    Wrong length and NaN/inf are always rejected. Values outside [-1, 1] are clipped
    (``out_of_range="clip"``, ``clipped`` is then True) or rejected (``"reject"``).
    """
    if out_of_range not in OUT_OF_RANGE:
        raise ValueError(f"out_of_range must be clip or reject, got {out_of_range!r}")
    try:
        action = np.asarray(values, np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ActionError(f"not a list of numbers: {exc}") from exc
    if action.size != ACTION_DIM:
        raise ActionError(
            f"{action.size} values, expected {ACTION_DIM} (dx dy dz droll dpitch dyaw gripper)",
            "length",
        )
    bad = np.nonzero(~np.isfinite(action))[0]
    if bad.size:
        raise ActionError(f"NaN/inf at indices {bad.tolist()}: {action.tolist()}", "nonfinite")
    outside = np.nonzero(np.abs(action) > 1.0)[0]
    if outside.size == 0:
        return action, False
    if out_of_range == "reject":
        raise ActionError(
            f"values outside [-1, 1] at indices {outside.tolist()}: "
            f"{np.round(action, 4).tolist()}",
            "range",
        )
    return np.clip(action, -1.0, 1.0), True


def joint_distribution(states: np.ndarray, qpos_index: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint mean and standard deviation of the robot joints over a set of initial
    states (flattened MuJoCo states: time, qpos, qvel; ``qpos_index`` into qpos)."""
    values = np.asarray(states, np.float64)[:, [1 + int(i) for i in qpos_index]]
    return values.mean(axis=0), values.std(axis=0)


@dataclass
class SimConfig:
    """What to simulate and how (see the module docstring)."""

    suite: str = "libero_spatial"
    task_index: int = 0
    init_state_index: int = 0
    image_height: int = 256
    image_width: int = 256
    render: bool = True
    fast_render: bool = False
    settle_steps: int = SETTLE_STEPS
    max_steps: int = 0  # 0: the suite's protocol value
    hard_reset: bool = True
    seed: int = 0  # LIBERO's env.seed (numpy global RNG); <0: not seeded
    assets_path: str = ""
    gl: str = "auto"
    # "benchmark": the task's 50 benchmark initial states; else a folder of fresh ones
    # (snapflow_ros.sim.placements); default $SNAPFLOW_LIBERO_INIT_STATES or "benchmark".
    init_states: str = field(default_factory=default_init_states)
    # Arm start pose of fresh placements (sample_init_state): "benchmark" draws each robot
    # joint from a normal fitted to the task's benchmark initial states; "fixed" keeps
    # LIBERO's reset pose (no noise: every fresh scene starts the arm in one exact pose).
    arm_start: str = "benchmark"
    # Which fresh placements sample_init_state keeps (PLACEMENTS): "settled" only those whose
    # reset moves no object further than the benchmark's states do; "any" LIBERO's first draw.
    placements: str = "settled"
    # Videos for people: these cameras also rendered at video_size x video_size (0: none) into
    # SimObservation.video; the policy's images stay at image_height x image_width.
    video_size: int = 0
    video_cameras: tuple[str, ...] = ("agentview",)


@dataclass
class SimObservation:
    """One observation: upright images, LeRobot state, and the raw robot state."""

    step: int
    images: dict[str, np.ndarray]
    state: np.ndarray
    eef_pos: np.ndarray
    eef_quat: np.ndarray  # x, y, z, w
    joint_pos: np.ndarray
    joint_vel: np.ndarray
    gripper_qpos: np.ndarray
    gripper_qvel: np.ndarray
    # Privileged scene state (scripted experts, privileged datasets): every object's position
    # (cans and bottles: their centre; bowls, plates, baskets: their base) and quaternion (x y z w).
    object_pos: dict[str, np.ndarray] = field(default_factory=dict)
    object_quat: dict[str, np.ndarray] = field(default_factory=dict)
    video: dict[str, np.ndarray] = field(default_factory=dict)  # SimConfig.video_size frames


@dataclass
class StepResult:
    """What one control step gave."""

    observation: SimObservation
    reward: float
    success: bool
    done: bool
    reason: str  # "" while running; success | max_steps | env_done
    step_s: float


@dataclass
class SimTiming:
    """Wall-clock durations of the simulator's work (seconds)."""

    build_s: float = 0.0
    reset_s: float = 0.0
    step_s: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Mean / median / p95 step time, steps, build and last reset time."""
        steps = np.asarray(self.step_s, np.float64)
        out = {"build_s": self.build_s, "reset_s": self.reset_s, "steps": int(steps.size)}
        if steps.size:
            out.update(
                step_mean_s=float(steps.mean()),
                step_median_s=float(np.median(steps)),
                step_p95_s=float(np.percentile(steps, 95)),
            )
        return out


def _blank_sensor(shape: tuple[int, int, int]) -> Any:
    from robosuite.utils.observables import sensor

    blank = np.zeros(shape, np.uint8)

    @sensor(modality="image")
    def blank_image(obs_cache: dict[str, Any]) -> np.ndarray:
        return blank

    return blank_image


class LiberoSim:
    """One LIBERO task at a time: build on first reset, rebuild when suite/task change."""

    def __init__(self, config: SimConfig | None = None, paths: LiberoPaths | None = None) -> None:
        self.config = config or SimConfig()
        check_suite(self.config.suite)
        self.paths = paths or prepare_libero(
            self.config.assets_path or None, gl=self.config.gl, render=self.config.render
        )
        self._env: Any = None
        self._built_for: tuple[str, int, str] | None = None
        self._task: Any = None
        self._init_states: Any = None
        self._benchmark_states: Any = None
        self._steps = 0
        self._done = True
        self._success = False
        self._last_obs: SimObservation | None = None
        self._real_sensors: dict[str, Any] = {}
        self.timing = SimTiming()

    # ------------------------------------------------------------------ properties
    @property
    def task_language(self) -> str:
        """The task instruction (LIBERO's ``task.language``)."""
        return "" if self._task is None else str(self._task.language)

    @property
    def task_name(self) -> str:
        """The task's LIBERO name."""
        return "" if self._task is None else str(self._task.name)

    def site_pos(self, name: str) -> np.ndarray:
        """World position of a MuJoCo site, e.g. a region such as ``basket_1_contain_region``."""
        if self._env is None:
            raise RuntimeError("no environment: call reset() first")
        return np.array(self._env.env.sim.data.get_site_xpos(name), np.float64)

    @property
    def num_init_states(self) -> int:
        """Number of initial states of the current task (benchmark or fresh ones)."""
        return 0 if self._init_states is None else len(self._init_states)

    @property
    def max_steps(self) -> int:
        """Step limit of an episode (settle steps not counted)."""
        return max_steps_for(self.config.suite, self.config.max_steps)

    @property
    def steps(self) -> int:
        """Control steps taken in this episode."""
        return self._steps

    @property
    def done(self) -> bool:
        """True when the episode has ended (or none started)."""
        return self._done

    @property
    def observation(self) -> SimObservation | None:
        """The latest observation."""
        return self._last_obs

    @property
    def dt(self) -> float:
        """Control period (s)."""
        return 1.0 / CONTROL_FREQ

    # ------------------------------------------------------------------ building
    def _build_key(self) -> tuple[str, int, str]:
        return (self.config.suite, self.config.task_index, self.config.init_states)

    def _ensure_built(self) -> None:
        """Build the environment unless it is built for the current suite, task and states."""
        if self._env is None or self._built_for != self._build_key():
            self._build()

    def _build(self) -> None:
        from libero.libero import benchmark, get_libero_path

        cfg = self.config
        self.close()
        start = time.perf_counter()
        suites = benchmark.get_benchmark_dict()
        suite = suites[cfg.suite]()
        if not 0 <= cfg.task_index < suite.n_tasks:
            raise ValueError(f"{cfg.suite} has tasks 0..{suite.n_tasks - 1}, got {cfg.task_index}")
        task = suite.get_task(cfg.task_index)
        if cfg.init_states == "benchmark":
            init_states = suite.get_task_init_states(cfg.task_index)
        else:
            init_states = read_init_states(cfg.init_states, cfg.suite, cfg.task_index)
        bddl = os.path.join(get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)
        kwargs = {
            "bddl_file_name": bddl,
            "camera_heights": cfg.image_height,
            "camera_widths": cfg.image_width,
            "control_freq": CONTROL_FREQ,
            "hard_reset": cfg.hard_reset,
        }
        try:
            if cfg.render:
                from libero.libero.envs.env_wrapper import OffScreenRenderEnv

                env = OffScreenRenderEnv(**kwargs)
            else:
                from libero.libero.envs.env_wrapper import ControlEnv

                env = ControlEnv(use_camera_obs=False, has_offscreen_renderer=False, **kwargs)
        except Exception as exc:
            text = str(exc)
            if str(self.paths.assets) in text or "No such file" in text or ".xml" in text:
                from snapflow_ros.sim.libero_setup import LiberoSetupError

                raise LiberoSetupError(
                    f"building {cfg.suite} task {cfg.task_index} failed, an asset file is "
                    f"missing or broken under {self.paths.assets}: {type(exc).__name__}: {exc} "
                    "(reinstall the assets: pip install -r requirements/libero.txt)"
                ) from exc
            raise
        self._env = env
        self._task = task
        self._init_states = init_states
        self._benchmark_states = suite.get_task_init_states(cfg.task_index)
        self._built_for = self._build_key()
        self.timing.build_s = time.perf_counter() - start

    def _blank_cameras(self, blank: bool) -> None:
        """Swap the camera sensors for (or back from) blank images of the same size.

        The observables keep their sampling timers, so the observation of the last settle step
        is sampled exactly as in LeRobot's env; only the discarded frames are not rendered.
        """
        if not self.config.render:
            return
        observables = self._env.env._observables
        if blank:
            self._real_sensors = {n: observables[n]._sensor for n in CAMERAS.values()}
            shape = (self.config.image_height, self.config.image_width, 3)
            for name in CAMERAS.values():
                observables[name]._sensor = _blank_sensor(shape)
        else:
            for name, sensor in self._real_sensors.items():
                observables[name]._sensor = sensor
            self._real_sensors = {}

    def pause_rendering(self, paused: bool) -> None:
        """Step without rendering the cameras (observations then hold no images) or resume."""
        if self._env is None or not self.config.render or paused == bool(self._real_sensors):
            return
        self._blank_cameras(paused)

    def set_fast_render(self, fast: bool) -> None:
        """Switch shadows and reflections off (``True``) or on for the next frames."""
        self.config.fast_render = fast
        if self._env is None or not self.config.render:
            return
        import mujoco

        ctx = self._env.env.sim._render_context_offscreen
        if ctx is not None:
            ctx.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0 if fast else 1
            ctx.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0 if fast else 1

    def _apply_render_options(self) -> None:
        if self.config.fast_render:
            self.set_fast_render(True)

    # ------------------------------------------------------------------ episode
    def reset(
        self,
        suite: str | None = None,
        task_index: int | None = None,
        init_state_index: int | None = None,
        init_state: np.ndarray | None = None,
    ) -> SimObservation:
        """Start an episode (optionally another suite/task/initial state); returns its first obs.

        ``init_state`` (a flattened MuJoCo state, e.g. from :meth:`sample_init_state`) replaces
        the benchmark initial state ``init_state_index``.
        """
        cfg = self.config
        if suite is not None:
            cfg.suite = check_suite(suite)
        if task_index is not None:
            cfg.task_index = int(task_index)
        if init_state_index is not None:
            cfg.init_state_index = int(init_state_index)
        self._ensure_built()
        n = len(self._init_states)
        if init_state is None and not 0 <= cfg.init_state_index < n:
            raise ValueError(f"init state index must be in 0..{n - 1}, got {cfg.init_state_index}")
        start = time.perf_counter()
        if init_state is None:
            init_state = self._init_states[cfg.init_state_index]
        raw = self._start_from(init_state, observe=True)
        for robot in self._env.robots:
            robot.controller.use_delta = True  # LeRobot's control_mode="relative"
        self._steps = 0
        self._done = False
        self._success = False
        self.timing.reset_s = time.perf_counter() - start
        self.timing.step_s = []
        self._last_obs = self._observation(raw)
        return self._last_obs

    def _start_from(self, init_state: np.ndarray, observe: bool) -> Any:
        """Start the physics of an episode from ``init_state``: LIBERO's (seeded) reset, the
        state, then the settle steps; returns the raw observation of the last one. As LeRobot:
        the first observation is the one the last no-op step returns. The cameras render only
        that observation, and nothing when not ``observe``."""
        cfg, env = self.config, self._env
        if self._real_sensors:  # rendering was paused
            self._blank_cameras(False)
        if cfg.seed >= 0:
            env.seed(cfg.seed)
        env.reset()
        self._apply_render_options()
        if observe and cfg.settle_steps == 0:
            return env.set_init_state(init_state)
        self._blank_cameras(True)
        try:
            raw = env.set_init_state(init_state)
            for i in range(cfg.settle_steps):
                if observe and i == cfg.settle_steps - 1:
                    self._blank_cameras(False)
                raw, _, _, _ = env.step(list(NOOP_ACTION))
        finally:
            if self._real_sensors:
                self._blank_cameras(False)
        return raw

    def sample_init_state(self, seed: int) -> np.ndarray:
        """A fresh initial state drawn from the task's own placement distribution.

        LIBERO's reset samples every object's placement from the regions of the task's BDDL
        file with numpy's global RNG; seeding it with ``seed`` makes the draw reproducible. The
        result is a flattened MuJoCo state like a benchmark initial state (pass it to
        :meth:`reset` as ``init_state``; like those, it holds the movable objects, not fixtures
        placed in the model). Ends any running episode.

        LIBERO's reset always starts the arm from one exact pose, while the benchmark's
        initial states perturb every arm joint (about 0.02 rad each). With
        ``arm_start="benchmark"`` (default) each arm joint is drawn from a normal with the
        per-joint mean and standard deviation of the task's benchmark states
        (:func:`joint_distribution`), seeded from ``seed``, so fresh scenes cover the
        start poses the benchmark evaluates.

        LIBERO's placement regions can overlap: in libero_spatial task 0, 10 of 50 draws put
        the bowl so close to the plate that the reset's settle steps move it further than any
        of the benchmark's 50 states moves an object (5.6 cm), 4 of them more than 20 cm (up
        to a metre: the bowl is thrown). With ``placements="settled"`` (default) such a draw
        is replaced by the next one (seeds derived from ``seed``) until the settle moves no
        object further than
        :meth:`settle_limit_m`; ValueError after ``MAX_PLACEMENT_DRAWS`` draws.
        """
        if self.config.arm_start not in ARM_STARTS:
            raise ValueError(
                f"arm_start must be one of {ARM_STARTS}, got {self.config.arm_start!r}"
            )
        if self.config.placements not in PLACEMENTS:
            raise ValueError(
                f"placements must be one of {PLACEMENTS}, got {self.config.placements!r}"
            )
        self._ensure_built()
        if self.config.placements == "any":
            return self._draw_placement(int(seed))
        limit = self.settle_limit_m()
        worst = 0.0
        for draw in range(MAX_PLACEMENT_DRAWS):
            derived = int(seed) if draw == 0 else _redraw_seed(int(seed), draw)
            state = self._draw_placement(derived)
            shift = self.settle_shift_m(state)
            if shift <= limit:
                return state
            worst = max(worst, shift)
        raise ValueError(
            f"{self.config.suite} task {self.config.task_index}: no placement of seed {seed} "
            f"settles within {limit:.3f} m in {MAX_PLACEMENT_DRAWS} draws (up to {worst:.3f} m)"
        )

    def _draw_placement(self, seed: int) -> np.ndarray:
        """LIBERO's placement for ``seed``, with the arm start of ``config.arm_start``."""
        self._done = True
        self._env.seed(int(seed))
        self._env.reset()
        state = np.array(self._env.sim.get_state().flatten(), np.float64)
        if self.config.arm_start == "benchmark":
            arm = self.robot_qpos_index()[: len(ARM_JOINTS)]  # the fingers start open
            mean, std = joint_distribution(self._benchmark_states, arm)
            rng = np.random.default_rng([int(seed), ARM_START_STREAM])
            state[[1 + i for i in arm]] = mean + std * rng.standard_normal(len(arm))
        return state

    def settle_shift_m(self, state: np.ndarray) -> float:
        """How far (metres, horizontally) the reset's settle steps move the movable object
        that moves most when an episode starts from ``state`` (physics only, nothing
        rendered). Ends any running episode."""
        self._ensure_built()
        self._done = True
        state = np.asarray(state, np.float64)
        self._start_from(state, observe=False)
        qpos = self._env.sim.data.qpos
        shifts = [
            float(np.hypot(qpos[a] - state[1 + a], qpos[a + 1] - state[2 + a]))
            for a, _ in self.movable_objects().values()
        ]
        return max(shifts, default=0.0)

    def benchmark_settle_shifts_m(self) -> list[float]:
        """:meth:`settle_shift_m` of each of the task's benchmark states; measured once per
        task and settle-step count in a process (~25 s for 50 states)."""
        key = (self.config.suite, int(self.config.task_index), int(self.config.settle_steps))
        if key not in _BENCHMARK_SHIFTS:
            _BENCHMARK_SHIFTS[key] = [self.settle_shift_m(s) for s in self.benchmark_states()]
        return _BENCHMARK_SHIFTS[key]

    def settle_limit_m(self) -> float:
        """The largest settle shift a fresh placement may have: the largest any of the
        task's benchmark states has (:meth:`benchmark_settle_shifts_m`), at least
        ``SETTLE_FLOOR_M``."""
        return max([SETTLE_FLOOR_M, *self.benchmark_settle_shifts_m()])

    def robot_qpos_index(self) -> list[int]:
        """qpos indices of the robot's arm joints, then its gripper joints."""
        self._ensure_built()
        robot = self._env.env.robots[0]
        joints = [*robot._ref_joint_pos_indexes, *robot._ref_gripper_joint_pos_indexes]
        return [int(i) for i in joints]

    def movable_objects(self) -> dict[str, tuple[int, int]]:
        """Each movable object's free joint as its (start, end) qpos addresses (position 3,
        quaternion w, x, y, z 4)."""
        self._ensure_built()
        model = self._env.sim.model
        out = {}
        for name, obj in self._env.env.objects_dict.items():
            start, end = model.get_joint_qpos_addr(obj.joints[0])
            out[name] = (int(start), int(end))
        return out

    def benchmark_states(self) -> np.ndarray:
        """The task's benchmark initial states (flattened MuJoCo states), whatever
        ``init_states`` the simulator episodes use."""
        self._ensure_built()
        return np.asarray(self._benchmark_states, np.float64)

    def step(self, action: Any) -> StepResult:
        """Apply one 7-D action (validated, clipped to [-1, 1]) for one control period."""
        if self._env is None or self._done:
            raise RuntimeError("no episode running: call reset() first")
        act, _ = validate_action(action, "clip")
        start = time.perf_counter()
        raw, reward, env_done, _ = self._env.step(act)
        success = bool(self._env.check_success())
        elapsed = time.perf_counter() - start
        self.timing.step_s.append(elapsed)
        self._steps += 1
        reason = ""
        if success:
            reason = "success"
        elif env_done:
            reason = "env_done"
        elif self._steps >= self.max_steps:
            reason = "max_steps"
        self._success = self._success or success
        self._done = bool(reason)
        self._last_obs = self._observation(raw)
        return StepResult(self._last_obs, float(reward), success, self._done, reason, elapsed)

    def check_success(self) -> bool:
        """LIBERO's success predicate for the current state."""
        return bool(self._env is not None and self._env.check_success())

    def _observation(self, raw: dict[str, Any]) -> SimObservation:
        images, video = {}, {}
        if self.config.render and not self._real_sensors:  # paused: blank frames, not sent
            for name, key in CAMERAS.items():
                images[name] = np.ascontiguousarray(raw[key][::-1, ::-1])
            size = self.config.video_size
            for name in self.config.video_cameras if size > 0 else ():
                frame = self._env.sim.render(
                    width=size, height=size, camera_name=MUJOCO_CAMERAS[name]
                )
                video[name] = np.ascontiguousarray(frame[::-1, ::-1])
        eef_pos = np.asarray(raw["robot0_eef_pos"], np.float64)
        eef_quat = np.asarray(raw["robot0_eef_quat"], np.float64)
        gripper_qpos = np.asarray(raw["robot0_gripper_qpos"], np.float64)
        names = self._env.env.objects_dict
        return SimObservation(
            step=self._steps,
            images=images,
            state=lerobot_state(eef_pos, eef_quat, gripper_qpos),
            eef_pos=eef_pos,
            eef_quat=eef_quat,
            joint_pos=np.asarray(raw["robot0_joint_pos"], np.float64),
            joint_vel=np.asarray(raw["robot0_joint_vel"], np.float64),
            gripper_qpos=gripper_qpos,
            gripper_qvel=np.asarray(raw["robot0_gripper_qvel"], np.float64),
            object_pos={n: np.asarray(raw[f"{n}_pos"], np.float64) for n in names},
            object_quat={n: np.asarray(raw[f"{n}_quat"], np.float64) for n in names},
            video=video,
        )

    def end_episode(self) -> None:
        """Mark the episode as over (e.g. interrupted); the next step needs a reset."""
        self._done = True

    def close(self) -> None:
        """Free the MuJoCo model and renderer."""
        if self._env is not None:
            try:
                self._env.close()
            finally:
                self._env = None
                self._built_for = None


def _redraw_seed(seed: int, draw: int) -> int:
    """The placement seed of redraw ``draw`` (>= 1) of placement seed ``seed``."""
    state = np.random.SeedSequence([seed, draw, PLACEMENT_STREAM]).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)


def sample_fresh_init_states(
    suite: str,
    task_index: int,
    seed: int,
    count: int,
    purpose: str = "eval",
    placements: str = "settled",
) -> tuple[np.ndarray, list[int]]:
    """``count`` fresh initial states of a task (physics only) and the seed of each
    (:func:`~snapflow_ros.sim.placements.episode_seed` ``(seed, i, purpose)``), drawn as
    ``placements`` says (``SimConfig.placements``)."""
    sim = LiberoSim(
        SimConfig(
            suite=suite,
            task_index=task_index,
            render=False,
            init_states="benchmark",
            placements=placements,
        )
    )
    try:
        seeds = [episode_seed(seed, i, purpose) for i in range(count)]
        states = np.stack([sim.sample_init_state(s) for s in seeds])
    finally:
        sim.close()
    return states, seeds
