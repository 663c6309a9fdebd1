"""The policy node's run-time parameters, declared once, and the :class:`Settings` made of them.

These rows of the policy node's parameter table (:mod:`snapflow_ros.params.policy_node` takes
them in place) are what may change while the node runs (``ros2 param set``); the controller
reads them as one frozen :class:`Settings` record whose fields, types and defaults are built
from the rows (``task.text`` is the field ``task_text``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from snapflow_ros.control.input_slots import MAX_FUTURE_STAMP
from snapflow_ros.control.loop import HOLD_MODES
from snapflow_ros.control.scheduler import DEFAULT_MAX_LEAD
from snapflow_ros.params.schema import ParamSpec, attribute, bounded, one_of, record_type, text

MAX_TASK_CHARS = 1000  # longer task instructions are rejected (prompts are 48-200 tokens)

SETTINGS_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "num_steps",
        0,
        "Denoising steps per chunk; 0 = the checkpoint's default (1 for SnapFlow). "
        "Can be changed at run time (A/B comparisons).",
        runtime=True,
        checks=(bounded(0, 1000),),
    ),
    ParamSpec(
        "seed",
        0,
        "Seed of the denoising noise (-1: random). The noise restarts from it at activation "
        "and at every `~/reset`, so episodes started with `~/reset` draw the same noise "
        "sequence unless the seed changes between them (`libero_eval` and the bridge's "
        "`auto_next` give each initial state its own). Changes apply at the next reset.",
        runtime=True,
        checks=(bounded(-1),),
    ),
    ParamSpec(
        "replan_threshold",
        -1.0,
        "Start a new inference when the plan's remaining horizon (s) drops below this; "
        "<0: automatic (1.5 x p95 inference latency + 2 periods).",
        runtime=True,
        checks=(bounded(unit="s"),),
    ),
    ParamSpec(
        "hold_mode",
        "none",
        "What a tick publishes with no valid action (bad inputs, paused, starved): "
        "none (nothing), last (repeat the last command), zero (zeros, clamped).",
        runtime=True,
        checks=(one_of(*HOLD_MODES),),
    ),
    ParamSpec(
        "dry_run", False, "Compute and log, but publish no command and no chunk.", runtime=True
    ),
    ParamSpec(
        "input_timeout",
        0.5,
        "Inputs whose header stamp is older than this (s) are stale: no command from them.",
        runtime=True,
        checks=(bounded(0, low_open=True, unit="s"),),
    ),
    ParamSpec(
        "max_future_stamp",
        DEFAULT_MAX_LEAD,
        "Inputs stamped more than this (s) AHEAD of the node clock are a fault (clock skew): "
        f"hold, no command from them. At most {MAX_FUTURE_STAMP:g} s.",
        runtime=True,
        checks=(bounded(0, MAX_FUTURE_STAMP, low_open=True, unit="s"),),
    ),
    ParamSpec(
        "task.text",
        "",
        f"Task instruction used until one arrives on `task.topic` (at most {MAX_TASK_CHARS} "
        "characters).",
        runtime=True,
        checks=(text(MAX_TASK_CHARS),),
    ),
)
SETTING_OF = {p.name: attribute(p.name) for p in SETTINGS_PARAMS}  # parameter -> field


def runtime_seed(seed: int) -> int | None:
    """The noise seed the runtime takes for the ``seed`` parameter: None (random) for -1."""
    return seed if seed >= 0 else None


class _Steps:
    num_steps: int
    seed: int

    @property
    def steps(self) -> int | None:
        """Denoising steps to ask the runtime for (None: its default)."""
        return self.num_steps if self.num_steps > 0 else None

    @property
    def noise_seed(self) -> int | None:
        """The noise seed to restart from at the next reset (None: random)."""
        return runtime_seed(self.seed)


Settings = record_type(
    "Settings",
    SETTINGS_PARAMS,
    bases=(_Steps,),
    doc="What may change while the node runs: one field per row of SETTINGS_PARAMS "
    "(num_steps, seed, replan_threshold, hold_mode, dry_run, input_timeout, max_future_stamp, "
    "task_text), with its type and default.",
)
Settings.__module__ = __name__


def settings_from(value: Callable[[str], Any]) -> Any:
    """The :class:`Settings` of the parameter values ``value(name)`` gives."""
    return Settings(**{f: value(p) for p, f in SETTING_OF.items()})
