"""Action limits: per-dimension bounds and a per-tick rate limit, applied to every command."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class LimitError(ValueError):
    """A limit specification or an action that cannot be limited (wrong size, NaN/inf)."""


def _vector(values: Sequence[float] | np.ndarray | None, dim: int, name: str, fill: float):
    if values is None or len(values) == 0:
        return np.full(dim, fill, np.float64)
    arr = np.asarray(values, np.float64).reshape(-1)
    if np.any(np.isnan(arr)):
        raise LimitError(f"{name}: NaN is not a limit")
    if np.any(arr == -fill):  # lower = +inf, upper = -inf or max_delta = -inf: nothing allowed
        raise LimitError(f"{name}: {-fill} is not a limit (leave it empty for no limit)")
    if arr.size == 1:
        return np.full(dim, float(arr[0]))
    if arr.size != dim:
        raise LimitError(f"{name}: expected {dim} values (or 1 or none), got {arr.size}")
    return arr


@dataclass
class ActionLimits:
    """Clamp actions to ``[lower, upper]`` and each tick's change to ``max_delta``.

    Empty lists mean "no limit" (+-inf); one value applies to every dimension.
    """

    lower: np.ndarray
    upper: np.ndarray
    max_delta: np.ndarray

    @classmethod
    def build(
        cls,
        dim: int,
        lower: Sequence[float] | None = None,
        upper: Sequence[float] | None = None,
        max_delta: Sequence[float] | None = None,
    ) -> ActionLimits:
        """Limits for ``dim``-dimensional actions (validated)."""
        lo = _vector(lower, dim, "lower", -np.inf)
        hi = _vector(upper, dim, "upper", np.inf)
        md = _vector(max_delta, dim, "max_delta", np.inf)
        if np.any(lo > hi):
            bad = np.nonzero(lo > hi)[0].tolist()
            raise LimitError(f"lower > upper for dimensions {bad}")
        if np.any(md <= 0):
            raise LimitError("max_delta must be > 0 (leave it empty for no rate limit)")
        return cls(lo, hi, md)

    @property
    def dim(self) -> int:
        """Action size these limits apply to."""
        return int(self.lower.shape[0])

    def clamp(self, action: np.ndarray) -> np.ndarray:
        """Clamp to the bounds only (used for published chunks)."""
        a = self._check(action)
        return np.clip(a, self.lower, self.upper)

    def clamp_chunk(self, actions: np.ndarray) -> np.ndarray:
        """Clamp every action of an H x D chunk to the bounds (raises on NaN/inf or shape)."""
        a = np.asarray(actions, np.float64)
        if a.ndim != 2 or a.shape[1] != self.dim:
            raise LimitError(f"chunk: expected H x {self.dim}, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise LimitError("chunk contains NaN/inf")
        return np.clip(a, self.lower, self.upper)

    def apply(self, action: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
        """Clamp to the bounds, then limit the change from ``previous`` to ``max_delta``."""
        a = self.clamp(action)
        if previous is not None:
            prev = np.asarray(previous, np.float64)
            if prev.shape == a.shape and np.all(np.isfinite(prev)):
                a = np.clip(a, prev - self.max_delta, prev + self.max_delta)
                a = np.clip(a, self.lower, self.upper)
        return a

    def _check(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, np.float64)
        if a.shape != (self.dim,):
            raise LimitError(f"action: expected shape ({self.dim},), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise LimitError("action contains NaN/inf")
        return a
