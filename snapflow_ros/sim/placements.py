"""Fresh object placements: seeded initial states drawn from a task's own placement distribution.

LIBERO evaluates on 50 fixed benchmark initial states per task. Demonstrations must not replay
those scenes, and an evaluation may want scenes no policy has seen: both draw *fresh* initial
states with :meth:`LiberoSim.sample_init_state` (LIBERO's reset, numpy seeded), one per episode.

Seeds: episode ``i`` of a run with base seed ``S`` uses :func:`episode_seed` ``(S, i, purpose)``,
a 32-bit integer derived from all three, so demonstrations (``"demo"``) and evaluations
(``"eval"``) never share a scene even with the same base seed, and any single episode can be
replayed from its recorded seed alone.

A set of fresh initial states can replace a task's benchmark states in :class:`LiberoSim`
(``SimConfig.init_states`` or ``$SNAPFLOW_LIBERO_INIT_STATES``): a folder holding
``<suite>/task<k>.npz`` with ``states`` (N x state size, flattened MuJoCo states) and ``seeds``
(N). ``libero_eval --init-states fresh`` writes one and hands it to the bridge that way.

This module holds the seeds and the folder format only and imports nothing of the simulator;
:func:`snapflow_ros.sim.libero_env.sample_fresh_init_states` draws a task's set.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

INIT_STATES_ENV = "SNAPFLOW_LIBERO_INIT_STATES"
PURPOSES = {"demo": 0, "eval": 1}


def episode_seed(seed: int, index: int, purpose: str) -> int:
    """The seed of episode ``index`` of a run with base ``seed`` (``purpose``: demo or eval)."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {sorted(PURPOSES)}, got {purpose!r}")
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got {seed}, {index}")
    state = np.random.SeedSequence([int(seed), int(index), PURPOSES[purpose]]).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)  # LIBERO's env.seed takes numpy's 32-bit seeds


def noise_seed(base: int, init_state_index: int) -> int | None:
    """The policy node's noise seed for an episode on initial state ``init_state_index``
    (``libero_eval --noise-seed`` and the bridge's ``auto_next``): ``base + index``, so each
    state draws its own noise and every configuration draws the same noise on a state; None
    for ``base`` -1 (leave the node's own seed)."""
    if base < -1 or init_state_index < 0:
        raise ValueError(f"base must be >= -1 and index >= 0, got {base}, {init_state_index}")
    return None if base == -1 else int(base) + int(init_state_index)


def init_states_file(folder: str | Path, suite: str, task_index: int) -> Path:
    """Where a folder of fresh initial states keeps those of one task."""
    return Path(folder) / suite / f"task{int(task_index)}.npz"


def write_init_states(
    folder: str | Path, suite: str, task_index: int, states: np.ndarray, seeds: list[int]
) -> Path:
    """Save initial states (and the seed each was drawn with) for one task; returns the file."""
    states = np.asarray(states, np.float64)
    if states.ndim != 2 or len(states) != len(seeds):
        raise ValueError(f"expected N x D states and N seeds, got {states.shape} and {len(seeds)}")
    path = init_states_file(folder, suite, task_index)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, states=states, seeds=np.asarray(seeds, np.int64))
    return path


def read_init_states(folder: str | Path, suite: str, task_index: int) -> np.ndarray:
    """The initial states of one task from a folder written by :func:`write_init_states`."""
    path = init_states_file(folder, suite, task_index)
    if not path.is_file():
        raise FileNotFoundError(
            f"no initial states for {suite} task {task_index} in {folder} (expected {path})"
        )
    with np.load(path) as data:
        return np.array(data["states"], np.float64)


def default_init_states() -> str:
    """``$SNAPFLOW_LIBERO_INIT_STATES`` if set, else ``"benchmark"``."""
    return os.environ.get(INIT_STATES_ENV) or "benchmark"
