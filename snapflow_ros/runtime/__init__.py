"""Policy runtime: load a LeRobot SmolVLA / pi0.5 checkpoint and predict timed action chunks.

Nothing in this package imports ROS; the ROS nodes are thin layers around it. The names below
are imported on first use (PEP 562), so that ``import snapflow_ros.runtime.options`` (the
engine, compile-mode and dtype names, :class:`RuntimeOptions`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snapflow_ros.runtime.errors import (
        CheckpointError,
        NonFiniteOutputError,
        ObservationError,
        PolicyRuntimeError,
    )
    from snapflow_ros.runtime.options import RuntimeOptions
    from snapflow_ros.runtime.policy_runtime import PolicyRuntime
    from snapflow_ros.runtime.types import ActionChunk, Observation, StageTimings

_WHERE = {  # name -> the module defining it
    "ActionChunk": "types",
    "CheckpointError": "errors",
    "NonFiniteOutputError": "errors",
    "Observation": "types",
    "ObservationError": "errors",
    "PolicyRuntime": "policy_runtime",
    "PolicyRuntimeError": "errors",
    "RuntimeOptions": "options",
    "StageTimings": "types",
}

__all__ = [
    "ActionChunk",
    "CheckpointError",
    "NonFiniteOutputError",
    "Observation",
    "ObservationError",
    "PolicyRuntime",
    "PolicyRuntimeError",
    "RuntimeOptions",
    "StageTimings",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
