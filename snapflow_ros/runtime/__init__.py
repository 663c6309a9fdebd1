"""Policy runtime: load a LeRobot SmolVLA / pi0.5 checkpoint and predict timed action chunks.

Nothing in this package imports ROS; the ROS nodes are thin layers around it.
"""

from snapflow_ros.runtime.errors import CheckpointError, ObservationError
from snapflow_ros.runtime.policy_runtime import PolicyRuntime, RuntimeOptions
from snapflow_ros.runtime.types import ActionChunk, Observation, StageTimings

__all__ = [
    "ActionChunk",
    "CheckpointError",
    "Observation",
    "ObservationError",
    "PolicyRuntime",
    "RuntimeOptions",
    "StageTimings",
]
