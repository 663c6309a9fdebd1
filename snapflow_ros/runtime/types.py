"""Plain data types crossing the runtime boundary (numpy in, numpy out)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Observation:
    """One observation of the robot.

    ``images`` maps camera keys (``observation.images.<name>`` or just ``<name>``) to HxWx3
    uint8 RGB arrays; ``state`` is the policy's state vector; ``stamp`` is the capture time in
    seconds (any clock, it is passed through to the chunk).
    """

    images: dict[str, np.ndarray]
    state: np.ndarray
    task: str
    stamp: float = 0.0


@dataclass
class StageTimings:
    """Seconds spent in each stage of one chunk prediction."""

    preprocess: float = 0.0
    prefix: float = 0.0
    denoise: float = 0.0
    postprocess: float = 0.0
    total: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """Timings as a plain dict."""
        return {
            "preprocess": self.preprocess,
            "prefix": self.prefix,
            "denoise": self.denoise,
            "postprocess": self.postprocess,
            "total": self.total,
        }


@dataclass
class ActionChunk:
    """A predicted action chunk: ``actions`` is (H, D) float32 in the dataset's action space."""

    actions: np.ndarray
    stamp: float
    num_steps: int
    timings: StageTimings = field(default_factory=StageTimings)

    @property
    def horizon(self) -> int:
        """Number of actions in the chunk."""
        return int(self.actions.shape[0])
