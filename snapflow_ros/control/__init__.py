"""The policy node's logic in plain Python (no ROS, no torch): tested with a fake clock.

Chunk scheduling with latency compensation and blending (:mod:`.scheduler`), action limits
(:mod:`.limits`), the per-tick command loop with hold and starvation accounting (:mod:`.loop`),
latency / rate statistics and throttled logs (:mod:`.stats`), the inputs and the observation
they make (:mod:`.input_slots`), the controller that decides when to infer and what to command
(:mod:`.controller`), its run-time parameters and :class:`Settings` (:mod:`.settings`), the
status protocol (:mod:`.status`) and a configure without ROS (:mod:`.session`, imported by
name: it is not loaded with the package).
"""

from snapflow_ros.control.controller import Outputs, PolicyController, Runtime, Session
from snapflow_ros.control.input_slots import (
    InputProblem,
    InputSet,
    InputSlot,
    Observed,
    Problem,
    short,
    task_preview,
)
from snapflow_ros.control.limits import ActionLimits, LimitError
from snapflow_ros.control.loop import HOLD_MODES, CommandLoop, TickResult, auto_replan_threshold
from snapflow_ros.control.scheduler import (
    BLEND_MODES,
    DEFAULT_MAX_LEAD,
    BlendConfig,
    ChunkScheduler,
    MergeResult,
    Plan,
    action_index,
    skipped_actions,
)
from snapflow_ros.control.settings import Settings
from snapflow_ros.control.stats import (
    ChangeLog,
    LatencyStats,
    RateMeter,
    Throttle,
    ThrottledLog,
    percentiles,
)

__all__ = [
    "BLEND_MODES",
    "DEFAULT_MAX_LEAD",
    "HOLD_MODES",
    "ActionLimits",
    "BlendConfig",
    "ChangeLog",
    "ChunkScheduler",
    "CommandLoop",
    "InputProblem",
    "InputSet",
    "InputSlot",
    "LatencyStats",
    "LimitError",
    "MergeResult",
    "Observed",
    "Outputs",
    "Plan",
    "PolicyController",
    "Problem",
    "RateMeter",
    "Runtime",
    "Session",
    "Settings",
    "Throttle",
    "ThrottledLog",
    "TickResult",
    "action_index",
    "auto_replan_threshold",
    "percentiles",
    "short",
    "skipped_actions",
    "task_preview",
]
