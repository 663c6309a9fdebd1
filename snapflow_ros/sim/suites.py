"""LIBERO suites: sizes and the evaluation protocol's step limits (no heavy imports).

The step limits are LeRobot 0.6.1's ``TASK_SUITE_MAX_STEPS`` (``lerobot/envs/libero.py``):
the longest training demonstration of each suite plus a margin. Every LIBERO task ships 50
benchmark initial states; evaluations use them in order (episode ``i`` -> init state ``i``).
"""

from __future__ import annotations

SUITE_MAX_STEPS: dict[str, int] = {
    "libero_spatial": 280,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}
SUITE_NUM_TASKS: dict[str, int] = {
    "libero_spatial": 10,
    "libero_object": 10,
    "libero_goal": 10,
    "libero_10": 10,
    "libero_90": 90,
}
SUITES: tuple[str, ...] = tuple(SUITE_MAX_STEPS)
NUM_INIT_STATES = 50
SETTLE_STEPS = 10
CONTROL_FREQ = 20
ACTION_DIM = 7
STATE_DIM = 8
# LeRobot's get_libero_dummy_action(): no motion, gripper open.
NOOP_ACTION: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def check_suite(suite: str) -> str:
    """``suite`` if it is a known LIBERO suite, else ValueError naming the known ones."""
    if suite not in SUITE_MAX_STEPS:
        raise ValueError(f"unknown LIBERO suite {suite!r} (known: {', '.join(SUITES)})")
    return suite


def check_task(suite: str, task_index: int) -> int:
    """``task_index`` if the suite has that task, else ValueError."""
    n = SUITE_NUM_TASKS[check_suite(suite)]
    if not 0 <= int(task_index) < n:
        raise ValueError(f"{suite} has tasks 0..{n - 1}, got task index {task_index}")
    return int(task_index)


def check_init_state(index: int) -> int:
    """``index`` if it names one of a task's benchmark initial states, else ValueError."""
    if not 0 <= int(index) < NUM_INIT_STATES:
        raise ValueError(f"init state index must be in 0..{NUM_INIT_STATES - 1}, got {index}")
    return int(index)


def max_steps_for(suite: str, override: int = 0) -> int:
    """The episode step limit: ``override`` if > 0, else the suite's protocol value."""
    return int(override) if override > 0 else SUITE_MAX_STEPS[check_suite(suite)]
