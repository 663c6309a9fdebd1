"""Pure-Python control logic of the policy node (no ROS imports).

Chunk scheduling with latency compensation and blending (:mod:`.scheduler`), action limits
(:mod:`.limits`), the per-tick command loop with hold and starvation accounting (:mod:`.loop`)
and latency / rate statistics (:mod:`.stats`).
"""

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
from snapflow_ros.control.stats import LatencyStats, RateMeter, Throttle, percentiles

__all__ = [
    "BLEND_MODES",
    "DEFAULT_MAX_LEAD",
    "HOLD_MODES",
    "ActionLimits",
    "BlendConfig",
    "ChunkScheduler",
    "CommandLoop",
    "LatencyStats",
    "LimitError",
    "MergeResult",
    "Plan",
    "RateMeter",
    "Throttle",
    "TickResult",
    "action_index",
    "auto_replan_threshold",
    "percentiles",
    "skipped_actions",
]
